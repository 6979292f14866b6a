"""CUT and FastCUT (Park et al. 2020, "Contrastive Learning for Unpaired Image-to-Image Translation"):
one ResNet generator whose encoder features feed a PatchNCE loss, one 70x70 PatchGAN, LSGAN."""

from __future__ import annotations

from dataclasses import dataclass

from kompete.algorithms import AlgorithmSpec, register
from kompete.schema import opt


@dataclass(frozen=True)
class CutConfig:
    """Keys of the `cut:` section (train.model `cut` or `fastcut`; fastcut changes the defaults marked)."""

    n_blocks: int = opt(9, "ResNet generator: residual blocks (9 for 256x256)", ge=1)
    d_layers: int = opt(3, "PatchGAN layers; 3 gives 70x70 patches", ge=1)
    lambda_gan: float = opt(1.0, "weight of the adversarial term (train.loss: lsgan, or hinge)", ge=0)
    lambda_nce: float = opt(1.0, "weight of PatchNCE (fastcut: 10)", ge=0)
    nce_idt: bool = opt(True, "also PatchNCE between a painting and G(painting) (fastcut: false)")
    nce_blocks: list[int] = opt([1, 5], "residual blocks (counted from 1) whose outputs PatchNCE compares, besides "
                                        "the input and both downsamplings (the paper's layers 0, 4, 8, 12, 16)")
    num_patches: int = opt(256, "patches sampled per layer and image", ge=1)
    nce_temperature: float = opt(0.07, "PatchNCE softmax temperature", gt=0)
    mlp_channels: int = opt(256, "width of each layer's 2-layer MLP projection head", ge=1)
    init_gain: float = opt(0.02, "standard deviation of the N(0, gain) weight initialisation", gt=0)
    grid_photos: int = opt(8, "fixed photos translated into the side-by-side grid every epoch", ge=1)


def _task_class() -> type:
    from kompete.algorithms.cut.task import CutTask

    return CutTask


SPEC = register(AlgorithmSpec(
    name="cut", task="translate", section=CutConfig,
    models={"cut": {}, "fastcut": {"lambda_nce": 10.0, "nce_idt": False}},
    task_class=_task_class, losses=("lsgan", "hinge"), ignores=("d_steps", "g_steps"),
    summary="one generator, one PatchGAN; LSGAN + PatchNCE on the generator's encoder features"))
