"""The gan algorithm's Task: an unconditional or class-conditional GAN trained from noise on GPU-resident
images, with an EMA of G, `train.d_steps` D updates and `train.g_steps` G updates per step.

The data, the EMA, the fixed grid noise, the class names, the writer and the state of all that are the
noise -> image base's (`kompete.algorithms.noise`); this file holds the networks, the objective and the step.
"""

from __future__ import annotations

from typing import Any

import torch

from kompete import losses
from kompete.algorithms.noise import GRID_SIZE, NoiseToImageTask, truncated_noise  # noqa: F401  (old import path)
from kompete.models import GAN_NETWORKS
from kompete.models.base import without_batch_norm


class GanTask(NoiseToImageTask):
    """G and D (+ EMA of G) for noise -> image models; `cfg.train.model` picks the networks."""

    loss_names = ("d", "g", "d_real", "d_fake")

    def build_networks(self) -> None:
        cfg, ctx, t = self.cfg, self.ctx, self.cfg.train
        self.loss = losses.build(t.loss, cfg.loss)
        built = GAN_NETWORKS.get(t.model, "train.model")(cfg, int(self.meta["n_classes"]))
        self.conditional, self.n_classes, self.z_dim = built.conditional, built.n_classes, built.z_dim
        self.G = ctx.prepare(built.generator)
        critic = built.discriminator if self.loss.batch_norm_in_critic else without_batch_norm(built.discriminator)
        self.D = ctx.prepare(critic)
        self.G_train, self.D_train = ctx.wrap(self.G), ctx.wrap(self.D)
        # D as G's step sees it: frozen and never DDP-wrapped, so no gradient of D is computed or all-reduced
        self.D_for_g = ctx.compiled(self.D)
        fused = {"fused": True} if ctx.is_cuda else {}
        self.opt_g = torch.optim.Adam(self.G.parameters(), t.lr_g, betas=(t.beta1, t.beta2), **fused)
        self.opt_d = torch.optim.Adam(self.D.parameters(), t.lr_d, betas=(t.beta1, t.beta2), **fused)
        self.scaler_g, self.scaler_d = ctx.grad_scaler(), ctx.grad_scaler()

    # ----------------------------------------------------------------- training
    _classes = NoiseToImageTask.classes  # the step's names for the base's helpers
    _augment = NoiseToImageTask.augment

    def _critic(self, D: torch.nn.Module, y: torch.Tensor) -> Any:
        """D as the loss sees it: images -> logits, with the augmentation and the class labels inside."""
        cond = self._classes(y)
        return lambda x: D(self._augment(x), cond)

    def step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        t, ctx = self.cfg.train, self.ctx
        x_real, y = batch
        n = x_real.shape[0]
        fake_for_g = None
        for i in range(t.d_steps):
            if i:
                x_real, y = self.next_batch()
            z = torch.randn(n, self.z_dim, device=ctx.device)
            with ctx.autocast():
                if i == t.d_steps - 1 and t.g_steps > 0:
                    # one G forward serves D's last step (detached) and G's first, as in the plain loop
                    fake_for_g = self.G_train(z, self._classes(y))
                    fake = fake_for_g.detach()
                else:
                    with torch.no_grad():
                        fake = self.G_train(z, self._classes(y))
                loss_d, d_real, d_fake = self.loss.discriminator_loss(self._critic(self.D_train, y), x_real, fake)
            self.opt_d.zero_grad(set_to_none=True)
            self.scaler_d.scale(loss_d).backward()
            self.scaler_d.step(self.opt_d)
            self.scaler_d.update()
        self.D.requires_grad_(False)  # G's step needs no D weight gradients
        critic = self._critic(self.D_for_g, y)
        for j in range(t.g_steps):
            with ctx.autocast():
                if j:
                    fake_for_g = self.G_train(torch.randn(n, self.z_dim, device=ctx.device), self._classes(y))
                loss_g = self.loss.generator_loss(critic, x_real, fake_for_g)
            self.opt_g.zero_grad(set_to_none=True)
            self.scaler_g.scale(loss_g).backward()
            self.scaler_g.step(self.opt_g)
            self.scaler_g.update()
        self.D.requires_grad_(True)
        if self.ema is not None:
            self.ema.update(self.G, self.step_count)
        self.step_count += 1
        return {"d": loss_d.detach(), "g": loss_g.detach(), "d_real": d_real.detach().float().mean(),
                "d_fake": d_fake.detach().float().mean()}

    # ----------------------------------------------------------------- state
    def extra_state(self) -> dict[str, Any]:
        return {"D": self.D.state_dict(), "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "scaler_g": self.scaler_g.state_dict(), "scaler_d": self.scaler_d.state_dict(),
                "loss": self.loss.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.D.load_state_dict(state["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.scaler_g.load_state_dict(state["scaler_g"])
        self.scaler_d.load_state_dict(state["scaler_d"])
        # a checkpoint from before losses kept state: the loss has seen d_steps D steps per step
        self.loss.load_state_dict(state.get("loss", {"d_calls": self.step_count * self.cfg.train.d_steps}))
