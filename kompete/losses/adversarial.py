"""The adversarial losses' torch side; `kompete.losses` registers each by name with its options.

A loss sees the discriminator, not only its logits: `discriminator_loss(D, real, fake)` and
`generator_loss(D, real, fake)` run D themselves, so a penalty that needs D's input gradients (WGAN-GP,
R1) lives here with the rest of its loss. `D` is a callable images -> logits that already holds the
augmentation and the class labels. Subclasses usually define only the logit maths `d(real, fake)` and
`g(real, fake)`. All maths is on tensors: no host sync.

A lazy regulariser (`lazy_every` > 0, `regularizer`) runs on every `lazy_every`-th call of
`discriminator_loss`, multiplied by `lazy_every` (StyleGAN2's schedule); the loss counts its own D steps
(`d_calls`, in `state_dict`), so the Task's step does not change when a loss gains one.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from kompete.penalties import gradient_penalty, r1_penalty

Critic = Callable[[torch.Tensor], torch.Tensor]


class AdversarialLoss:
    needs_real_for_g = False  # relativistic losses compare with D(real) in G's step too
    batch_norm_in_critic = True  # False: the penalty is per sample, so D's batch norm is swapped for layer norm
    lazy_every = 0  # > 0: `regularizer` runs on every lazy_every-th D step, times lazy_every

    def __init__(self, options: Any = None):
        self.options = options  # the dataclass the spec registered (kompete.losses), validated at load
        self.d_calls = 0  # D steps so far: the lazy regulariser's clock

    def regularizer(self, D: Critic, real: torch.Tensor) -> torch.Tensor:
        """The lazy term for D (unscaled by the interval); only losses with lazy_every > 0 define it."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"d_calls": self.d_calls}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.d_calls = int(state["d_calls"])

    def d(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g(self, real: torch.Tensor | None, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def discriminator_loss(self, D: Critic, real: torch.Tensor,
                           fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """D's objective on a real and a (detached) fake batch, with the logits for the D-output curves."""
        real_logits, fake_logits = D(real), D(fake)
        loss = self.d(real_logits, fake_logits)
        if self.lazy_every and self.d_calls % self.lazy_every == 0:  # a Python int: no host sync, no graph break
            loss = loss + self.lazy_every * self.regularizer(D, real)
        self.d_calls += 1
        return loss, real_logits, fake_logits

    def generator_loss(self, D: Critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """G's objective; D is frozen by the caller, gradients flow through `fake` only."""
        real_logits = None
        if self.needs_real_for_g:
            with torch.no_grad():
                real_logits = D(real)
        return self.g(real_logits, D(fake))


class BCELoss(AdversarialLoss):
    """Non-saturating GAN loss, with one-sided label smoothing and optional label flipping for D."""

    def __init__(self, options: Any = None):
        super().__init__(options)
        self.smoothing = options.label_smoothing if options is not None else 0.0
        self.noise = options.label_noise if options is not None else 0.0

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

    def __init__(self, options: Any = None):
        super().__init__(options)
        self.weight = options.gp_weight if options is not None else 10.0

    def d(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return fake.float().mean() - real.float().mean()

    def g(self, real: torch.Tensor | None, fake: torch.Tensor) -> torch.Tensor:
        return -fake.float().mean()

    def discriminator_loss(self, D: Critic, real: torch.Tensor,
                           fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        loss, real_logits, fake_logits = super().discriminator_loss(D, real, fake)
        return loss + gradient_penalty(D, real, fake, weight=self.weight), real_logits, fake_logits


class R1Loss(AdversarialLoss):
    """StyleGAN2's objective (Karras et al. 2020): the non-saturating logistic loss, and R1 on real images
    (gamma / 2 x E[|grad D(x)|^2], Mescheder et al. 2018) lazily, every `every` D steps times `every`."""

    batch_norm_in_critic = False  # R1 is per sample

    def __init__(self, options: Any = None):
        super().__init__(options)
        self.gamma = options.gamma if options is not None else 10.0
        self.lazy_every = options.every if options is not None else 16

    def d(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(-real.float()).mean() + F.softplus(fake.float()).mean()

    def g(self, real: torch.Tensor | None, fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake.float()).mean()

    def regularizer(self, D: Critic, real: torch.Tensor) -> torch.Tensor:
        return r1_penalty(D, real, gamma=self.gamma)
