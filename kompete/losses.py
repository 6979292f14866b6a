"""Adversarial losses, registered by name in kompete.registry.LOSSES.

Each entry is a builder `build(train_cfg) -> AdversarialLoss`. A loss turns D's logits on a real and
a fake batch into D's and G's objectives. Relativistic losses need D(real) in G's step too
(`needs_real_for_g`). All maths is on tensors: no host sync.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kompete.config import TrainConfig
from kompete.registry import LOSSES


class AdversarialLoss:
    needs_real_for_g = False

    def d(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g(self, real: torch.Tensor | None, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class BCELoss(AdversarialLoss):
    """Non-saturating GAN loss, with one-sided label smoothing and optional label flipping for D."""

    def __init__(self, smoothing: float = 0.0, noise: float = 0.0):
        self.smoothing, self.noise = smoothing, noise

    def d(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        real_t = torch.full_like(real, 1.0 - self.smoothing)
        fake_t = torch.zeros_like(fake)
        if self.noise > 0:
            flip_r = torch.rand_like(real) < self.noise
            flip_f = torch.rand_like(fake) < self.noise
            real_t = torch.where(flip_r, 0.0, real_t)
            fake_t = torch.where(flip_f, 1.0 - self.smoothing, fake_t)
        return (F.binary_cross_entropy_with_logits(real.float(), real_t.float())
                + F.binary_cross_entropy_with_logits(fake.float(), fake_t.float()))

    def g(self, real: torch.Tensor | None, fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake.float()).mean()


class LSGANLoss(AdversarialLoss):
    def d(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((real.float() - 1).pow(2).mean() + fake.float().pow(2).mean())

    def g(self, real: torch.Tensor | None, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * (fake.float() - 1).pow(2).mean()


class RaLSGANLoss(AdversarialLoss):
    """Relativistic average LSGAN (Jolicoeur-Martineau 2018), the popular public dog kernels' loss."""

    needs_real_for_g = True

    def d(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        real, fake = real.float(), fake.float()
        return ((real - fake.mean() - 1).pow(2).mean() + (fake - real.mean() + 1).pow(2).mean()) / 2

    def g(self, real: torch.Tensor | None, fake: torch.Tensor) -> torch.Tensor:
        assert real is not None
        real, fake = real.float(), fake.float()
        return ((real - fake.mean() + 1).pow(2).mean() + (fake - real.mean() - 1).pow(2).mean()) / 2


class HingeLoss(AdversarialLoss):
    def d(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return F.relu(1 - real.float()).mean() + F.relu(1 + fake.float()).mean()

    def g(self, real: torch.Tensor | None, fake: torch.Tensor) -> torch.Tensor:
        return -fake.float().mean()


@LOSSES.register("bce")
def build_bce(t: TrainConfig) -> AdversarialLoss:
    return BCELoss(t.label_smoothing, t.label_noise)


@LOSSES.register("lsgan")
def build_lsgan(t: TrainConfig) -> AdversarialLoss:
    return LSGANLoss()


@LOSSES.register("ralsgan")
def build_ralsgan(t: TrainConfig) -> AdversarialLoss:
    return RaLSGANLoss()


@LOSSES.register("hinge")
def build_hinge(t: TrainConfig) -> AdversarialLoss:
    return HingeLoss()
