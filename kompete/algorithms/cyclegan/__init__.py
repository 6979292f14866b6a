"""CycleGAN (Zhu et al. 2017) for `translate` competitions: two generators, two PatchGANs, cycle + identity L1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kompete.algorithms import AlgorithmSpec, register
from kompete.schema import opt


@dataclass(frozen=True)
class CycleGanConfig:
    """Keys of the `cyclegan:` section. Widths (train.g_channels, train.d_channels), Adam settings, the
    learning-rate schedule and DiffAugment are the shared `train` keys."""

    generator: Literal["resnet", "unet"] = opt("resnet", "ResNet (the paper's, best with many epochs) or U-Net "
                                                          "(reached better MiFID inside a 5 h budget)")
    n_blocks: int = opt(9, "ResNet generator: residual blocks (9 for 256x256)", ge=0)
    unet_levels: int = opt(0, "U-Net generator: stride-2 levels; 0 = down to 1x1 (log2 of the image size)", ge=0)
    d_layers: int = opt(3, "PatchGAN layers; 3 gives 70x70 patches", ge=1)
    lambda_cycle: float = opt(10.0, "weight of the cycle-consistency L1 loss", ge=0)
    lambda_identity: float = opt(0.5, "weight of the identity L1 loss, as a fraction of lambda_cycle", ge=0)
    pool_size: int = opt(50, "fakes kept in the history buffer that feeds the discriminators; 0 = none", ge=0)
    init_gain: float = opt(0.02, "standard deviation of the N(0, gain) weight initialisation", gt=0)
    grid_photos: int = opt(8, "fixed photos translated into the side-by-side grid every epoch", ge=1)


def _task_class() -> type:
    from kompete.algorithms.cyclegan.task import CycleGanTask

    return CycleGanTask


SPEC = register(AlgorithmSpec(
    name="cyclegan", task="translate", section=CycleGanConfig, models={"cyclegan": {}},
    task_class=_task_class, losses=("lsgan", "hinge"), ignores=("d_steps", "g_steps"),
    tiny=("sample-monet", "train.model=cyclegan", "data.image_size=32", "data.load_size=36", "data.sample.n_images=24",
          "data.sample.n_target=8", "data.sample.image_size=32", "train.batch_size=2", "train.g_channels=4",
          "train.d_channels=4", "train.log_every=2", "cyclegan.n_blocks=1", "cyclegan.pool_size=3",
          "cyclegan.grid_photos=2", "output.n_min=10", "generate.n_images=20", "generate.batch_size=8"),
    summary="two generators and two PatchGANs; LSGAN + cycle + identity L1"))
