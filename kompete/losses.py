"""Adversarial losses, registered by name in kompete.registry.LOSSES.

Each entry is a builder `build(section) -> AdversarialLoss`, given the algorithm's config section (the
`gan:` keys: label smoothing, the penalty weight). A loss sees the discriminator, not only its logits:
`discriminator_loss(D, real, fake)` and `generator_loss(D, real, fake)` run D themselves, so a penalty
that needs D's input gradients (WGAN-GP, R1) lives here with the rest of its loss. `D` is a callable
images -> logits that already holds the augmentation and the class labels. Subclasses usually define
only the logit maths `d(real, fake)` and `g(real, fake)`. All maths is on tensors: no host sync.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from kompete.penalties import gradient_penalty
from kompete.registry import LOSSES

Critic = Callable[[torch.Tensor], torch.Tensor]


class AdversarialLoss:
    needs_real_for_g = False  # relativistic losses compare with D(real) in G's step too
    batch_norm_in_critic = True  # False: the penalty is per sample, so D's batch norm is swapped for layer norm

    def d(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g(self, real: torch.Tensor | None, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def discriminator_loss(self, D: Critic, real: torch.Tensor,
                           fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """D's objective on a real and a (detached) fake batch, with the logits for the D-output curves."""
        real_logits, fake_logits = D(real), D(fake)
        return self.d(real_logits, fake_logits), real_logits, fake_logits

    def generator_loss(self, D: Critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """G's objective; D is frozen by the caller, gradients flow through `fake` only."""
        real_logits = None
        if self.needs_real_for_g:
            with torch.no_grad():
                real_logits = D(real)
        return self.g(real_logits, D(fake))


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


class WGANGPLoss(AdversarialLoss):
    """Wasserstein loss with gradient penalty (Gulrajani et al. 2017): the critic maximises
    D(real) - D(fake) under weight x (||grad D(mix)|| - 1)^2 at random mixes of real and fake images.

    The penalty is computed in fp32 with autocast off, on the unscaled critic output, so a GradScaler
    scales it once with the rest of the loss (kompete.penalties explains why that is right). n_critic is
    `train.d_steps` (the paper: 5); the paper's critic has no batch norm (`batch_norm_in_critic`).
    """

    batch_norm_in_critic = False

    def __init__(self, weight: float = 10.0):
        self.weight = weight

    def d(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return fake.float().mean() - real.float().mean()

    def g(self, real: torch.Tensor | None, fake: torch.Tensor) -> torch.Tensor:
        return -fake.float().mean()

    def discriminator_loss(self, D: Critic, real: torch.Tensor,
                           fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        loss, real_logits, fake_logits = super().discriminator_loss(D, real, fake)
        return loss + gradient_penalty(D, real, fake, weight=self.weight), real_logits, fake_logits


@LOSSES.register("bce")
def build_bce(section: Any) -> AdversarialLoss:
    return BCELoss(section.label_smoothing, section.label_noise)


@LOSSES.register("lsgan")
def build_lsgan(section: Any = None) -> AdversarialLoss:
    return LSGANLoss()


@LOSSES.register("ralsgan")
def build_ralsgan(section: Any = None) -> AdversarialLoss:
    return RaLSGANLoss()


@LOSSES.register("hinge")
def build_hinge(section: Any = None) -> AdversarialLoss:
    return HingeLoss()


@LOSSES.register("wgan_gp")
def build_wgan_gp(section: Any) -> AdversarialLoss:
    return WGANGPLoss(section.gp_weight)
