"""The noise -> image GAN family: DCGAN, SN-GAN (self-attention, pixel norm, minibatch std), the vanilla GAN
of Goodfellow et al. 2014, BigGAN/SAGAN-style residual networks, each with a class-conditional `_cond` twin
(projection D)."""

from __future__ import annotations

from dataclasses import dataclass

from kompete.algorithms import AlgorithmSpec, register
from kompete.schema import opt


@dataclass(frozen=True)
class GanConfig:
    """Keys of the `gan:` section; the loop's keys (lr, batch, schedule, d_steps, g_steps) are in `train:`."""

    z_dim: int = opt(128, "generator noise dimension", ge=1)
    self_attention: bool = opt(True, "sngan, biggan: self-attention block at 32x32 in G and D")
    pixel_norm: bool = opt(True, "sngan: pixelwise feature normalisation in G (else batch norm)")
    minibatch_std: bool = opt(True, "sngan: minibatch standard deviation feature in D")
    label_smoothing: float = opt(0.0, "bce: real labels become 1 - this (one-sided)", ge=0, le=0.5)
    label_noise: float = opt(0.0, "bce: fraction of labels flipped at random", ge=0, le=0.5)
    gp_weight: float = opt(10.0, "wgan_gp: weight of the gradient penalty (lambda)", ge=0)
    ema_decay: float = opt(0.999, "EMA of G weights (0 = off); generation uses the EMA copy", ge=0, le=0.99999)
    ema_start: int = opt(0, "step at which the EMA starts averaging (before it, it copies G)", ge=0)


def _task_class() -> type:
    from kompete.algorithms.gan.task import GanTask

    return GanTask


FAMILIES = ("dcgan", "sngan", "vanilla", "biggan")

SPEC = register(AlgorithmSpec(
    name="gan", task="generate", section=GanConfig,
    models={m: {} for f in FAMILIES for m in (f, f"{f}_cond")},
    task_class=_task_class,
    summary="G and D (+ EMA of G) from noise; `_cond` models take the class labels"))
