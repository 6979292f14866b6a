"""Adversarial losses: each registered by name with the dataclass of its options. Torch-free.

A YAML picks one with `train.loss` and sets its options in the top-level `loss:` section, checked against
that loss's dataclass when the config is read (an option of another loss is an error naming the key). The
torch side (`adversarial.py`, or a module of its own) is imported only when something trains: a spec's
`implementation()` returns the class, built as `cls(options)`. A loss may run a lazy regulariser (R1 every
16 D steps, as StyleGAN2 does) itself; see `adversarial.AdversarialLoss`.

Adding a loss: its class (torch) and one `register(LossSpec(...))` below, with its options dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from kompete.registry import Registry
from kompete.schema import opt


@dataclass(frozen=True)
class NoOptions:
    """A loss without options: any key under `loss:` is an error."""


@dataclass(frozen=True)
class LossSpec:
    name: str  # the train.loss value
    implementation: Callable[[], type]  # imports and returns the torch class; built as cls(options)
    options: type = NoOptions  # the dataclass of its keys under `loss:`
    summary: str = ""


LOSSES: Registry[LossSpec] = Registry("loss")


def register(spec: LossSpec) -> LossSpec:
    return LOSSES.register(spec.name)(spec)


def spec_for(name: str, key: str = "train.loss") -> LossSpec:
    """The registered loss; an unknown name is a ConfigError naming `key` and listing the valid ones."""
    return LOSSES.get(name, key)


def build(name: str, options: Any = None) -> Any:
    """The torch loss `name` with its options (imports torch)."""
    spec = spec_for(name)
    # a config made with dataclasses.replace may carry another loss's options: the defaults are then meant
    return spec.implementation()(options if isinstance(options, spec.options) else spec.options())


def _adversarial(cls_name: str) -> Callable[[], type]:
    def load() -> type:
        from kompete.losses import adversarial

        return getattr(adversarial, cls_name)

    return load


@dataclass(frozen=True)
class BceOptions:
    label_smoothing: float = opt(0.0, "real labels become 1 - this (one-sided)", ge=0, le=0.5)
    label_noise: float = opt(0.0, "fraction of labels flipped at random", ge=0, le=0.5)


@dataclass(frozen=True)
class WganGpOptions:
    gp_weight: float = opt(10.0, "weight of the gradient penalty (lambda)", ge=0)


@dataclass(frozen=True)
class R1Options:
    gamma: float = opt(10.0, "R1 weight: gamma / 2 x E[|grad D(real)|^2]", ge=0)
    every: int = opt(16, "lazy regularisation: R1 on every N-th D step, times N (StyleGAN2: 16; 1 = every step)",
                     ge=1)


register(LossSpec("bce", _adversarial("BCELoss"), BceOptions, "non-saturating logistic loss"))
register(LossSpec("lsgan", _adversarial("LSGANLoss"), summary="least squares (Mao et al. 2017)"))
register(LossSpec("ralsgan", _adversarial("RaLSGANLoss"), summary="relativistic average least squares"))
register(LossSpec("hinge", _adversarial("HingeLoss"), summary="hinge (SN-GAN, BigGAN)"))
register(LossSpec("wgan_gp", _adversarial("WGANGPLoss"), WganGpOptions, "Wasserstein + gradient penalty"))
register(LossSpec("r1", _adversarial("R1Loss"), R1Options, "non-saturating logistic + lazy R1 (StyleGAN2)"))
