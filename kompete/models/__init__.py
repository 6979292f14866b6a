"""GAN model families, registered by name in kompete.registry.MODELS.

Each entry is a builder `build(cfg, n_classes) -> GanModels` with a `task` attribute naming the
`cfg.task` it serves ("generate" for noise -> image models).
"""

from kompete.models.base import GanModels, model_builder
from kompete.models import dcgan, sngan  # noqa: F401,E402  (importing registers them)
from kompete.models.ema import EMA

__all__ = ["EMA", "GanModels", "model_builder"]
