"""The noise -> image GAN family: DCGAN, SN-GAN (self-attention, pixel norm, minibatch std), the vanilla GAN
of Goodfellow et al. 2014, BigGAN/SAGAN-style residual networks, each with a class-conditional `_cond` twin
(projection D)."""

from __future__ import annotations

from dataclasses import dataclass

from kompete.algorithms import AlgorithmSpec, register
from kompete.schema import opt


@dataclass(frozen=True)
class GanConfig:
    """Keys of the `gan:` section every network reads; the loop's keys (lr, batch, schedule, d_steps, g_steps)
    are in `train:`, the loss's in `loss:`, a network's own keys in its options below."""

    z_dim: int = opt(128, "generator noise dimension", ge=1)
    ema_decay: float = opt(0.999, "EMA of G weights (0 = off); generation uses the EMA copy", ge=0, le=0.99999)
    ema_start: int = opt(0, "step at which the EMA starts averaging (before it, it copies G)", ge=0)


@dataclass(frozen=True)
class SnganOptions:
    """sngan's own keys in the `gan:` section (models/sngan.py reads them)."""

    self_attention: bool = opt(True, "self-attention block at 32x32 in G and D")
    pixel_norm: bool = opt(True, "pixelwise feature normalisation in G (else batch norm)")
    minibatch_std: bool = opt(True, "minibatch standard deviation feature in D")


@dataclass(frozen=True)
class BigganOptions:
    """biggan's own keys in the `gan:` section (models/biggan.py reads them)."""

    self_attention: bool = opt(True, "self-attention block at 32x32 in G and D (D has 32x32 maps from 64 px up)")


def _task_class() -> type:
    from kompete.algorithms.gan.task import GanTask

    return GanTask


# The network families (kompete/models/<family>.py registers its builder with `gan_family`), each with the
# dataclass of its own `gan:` keys (None: only the shared ones). A new network: its module, one line here.
FAMILIES: dict[str, type | None] = {"dcgan": None, "sngan": SnganOptions, "vanilla": None, "biggan": BigganOptions}

SPEC = register(AlgorithmSpec(
    name="gan", task="generate", section=GanConfig,
    models={m: {} for f in FAMILIES for m in (f, f"{f}_cond")},
    options={m: o for f, o in FAMILIES.items() if o is not None for m in (f, f"{f}_cond")},
    task_class=_task_class,
    tiny=("sample-dogs", "train.model=dcgan_cond", "data.image_size=16", "train.g_channels=8", "train.d_channels=8",
          "gan.z_dim=16", "train.batch_size=16", "train.log_every=2", "gan.ema_decay=0.9", "output.n_min=10",
          "generate.n_images=20", "generate.batch_size=16"),
    summary="G and D (+ EMA of G) from noise; `_cond` models take the class labels"))
