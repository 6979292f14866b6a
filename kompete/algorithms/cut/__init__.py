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


def _check(section: CutConfig) -> tuple[str, str] | None:
    bad = [b for b in section.nce_blocks if not 1 <= b <= section.n_blocks]
    if bad:
        return "nce_blocks", f"names residual blocks {bad}, but cut.n_blocks is {section.n_blocks} (counted from 1)"
    return None


def _task_class() -> type:
    from kompete.algorithms.cut.task import CutTask

    return CutTask


SPEC = register(AlgorithmSpec(
    name="cut", task="translate", section=CutConfig,
    models={"cut": {}, "fastcut": {"lambda_nce": 10.0, "nce_idt": False}},
    task_class=_task_class, losses=("lsgan", "hinge"), ignores=("d_steps", "g_steps"), check=_check,
    tiny=("sample-monet", "train.model=cut", "data.image_size=32", "data.load_size=36", "data.sample.n_images=24",
          "data.sample.n_target=8", "data.sample.image_size=32", "train.batch_size=2", "train.g_channels=4",
          "train.d_channels=4", "train.log_every=2", "cut.n_blocks=2", "cut.nce_blocks=[1, 2]", "cut.num_patches=16",
          "cut.mlp_channels=8", "cut.grid_photos=2", "output.n_min=10", "generate.n_images=20",
          "generate.batch_size=8"),
    summary="one generator, one PatchGAN; LSGAN + PatchNCE on the generator's encoder features"))
