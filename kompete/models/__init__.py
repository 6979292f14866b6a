"""Networks. The noise -> image families register builders `build(cfg, n_classes) -> GanModels` by name in
kompete.registry.MODELS (the gan algorithm's `train.model` values); translation networks (CycleGAN, CUT)
are plain modules their algorithms build.
"""

from kompete.models.base import GanModels, gan_family
from kompete.models import biggan, dcgan, sngan, vanilla  # noqa: F401,E402  (importing registers them)
from kompete.models.ema import EMA

__all__ = ["EMA", "GanModels", "gan_family"]
