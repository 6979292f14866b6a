"""Networks. The noise -> image families register builders `build(cfg, n_classes) -> GanModels` by name in
kompete.models.base.GAN_NETWORKS (the gan algorithm's `train.model` values, listed torch-free with
their options in kompete.algorithms.gan.FAMILIES); translation networks (CycleGAN, CUT)
are plain modules their algorithms build.
"""

from kompete.models.base import GAN_NETWORKS, GanModels, gan_family
from kompete.models import dcgan, sngan, vanilla  # noqa: F401,E402  (importing registers them)
from kompete.models.ema import EMA

__all__ = ["EMA", "GAN_NETWORKS", "GanModels", "gan_family"]
