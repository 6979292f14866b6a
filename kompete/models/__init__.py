"""Networks. The noise -> image families register builders `build(cfg, n_classes) -> GanModels` by name in
kompete.models.base.GAN_NETWORKS (the gan algorithm's `train.model` values, listed torch-free with
their options in kompete.algorithms.gan.FAMILIES); translation networks (CycleGAN, CUT) are plain modules
their algorithms build. Every module here is imported with the package, so a new family's
`gan_family(...)` call needs no import line anywhere.
"""


from kompete.models.base import GAN_NETWORKS, GanModels, gan_family
from kompete.models.ema import EMA
from kompete.registry import import_submodules

import_submodules(__name__, __path__)  # registers the families (dcgan, sngan, vanilla, biggan, ...)

__all__ = ["EMA", "GAN_NETWORKS", "GanModels", "gan_family"]
