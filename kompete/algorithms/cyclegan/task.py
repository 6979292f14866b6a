"""The cyclegan algorithm's Task: unpaired photo -> painting translation, trained by the shared Trainer.

Per step (as in the paper and its reference code): the generators minimise the least-squares
adversarial loss plus lambda_cycle x the cycle-consistency L1 plus lambda_identity x lambda_cycle x
the identity L1; then each discriminator minimises half the least-squares loss on a real batch and
on fakes drawn from a 50-image history pool. Each generator runs once per input kind with the batches
concatenated: instance norm is per image, so the results are the same, and the GPU sees bigger launches.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kompete.algorithms.translate import DomainPairTask
from kompete.config import Config
from kompete.data import DomainPair
from kompete import losses
from kompete.models.cyclegan import CycleGan
from kompete.models.image_pool import ImagePool
from kompete.runtime.context import Context

LOSS_NAMES = ("g", "d", "g_adv", "cycle", "identity", "d_monet", "d_photo", "d_real", "d_fake")


class CycleGanTask(DomainPairTask):
    loss_names = LOSS_NAMES

    def __init__(self, cfg: Config, ctx: Context, data: DomainPair | None = None, meta: dict | None = None):
        t, c = cfg.train, cfg.algo
        torch.manual_seed(t.seed)
        self.nets = ctx.prepare(CycleGan.from_config(cfg))
        run = ctx.compiled  # the plain modules in self.nets keep the state_dict names
        self.g_monet, self.g_photo = run(self.nets.to_monet), run(self.nets.to_photo)
        self.d_monet, self.d_photo = run(self.nets.d_monet), run(self.nets.d_photo)
        self.translator, self.translator_module = self.g_monet, self.nets.to_monet
        g_params = [*self.nets.to_monet.parameters(), *self.nets.to_photo.parameters()]
        d_params = [*self.nets.d_monet.parameters(), *self.nets.d_photo.parameters()]
        fused = {"fused": True} if ctx.is_cuda else {}
        self.opt_g = torch.optim.Adam(g_params, lr=t.lr_g, betas=(t.beta1, t.beta2), **fused)
        self.opt_d = torch.optim.Adam(d_params, lr=t.lr_d, betas=(t.beta1, t.beta2), **fused)
        self.scaler = ctx.grad_scaler()  # one scaler for both optimisers, updated once per step
        self.loss = losses.build(t.loss, cfg.loss)  # lsgan (the paper's) unless train.loss says hinge
        ctx.seed_streams(t.seed)  # after the nets: their initial weights stay the same on every rank
        self.pool_monet = ImagePool(c.pool_size, seed=t.seed + 11)
        self.pool_photo = ImagePool(c.pool_size, seed=t.seed + 12)
        super().__init__(cfg, ctx, data, meta)

    def _adversarial_g(self, fake: torch.Tensor) -> torch.Tensor:
        """Twice the registry's G loss: for lsgan, the paper's unhalved (D(G(x)) - 1)^2."""
        return 2 * self.loss.g(None, fake)

    # ----------------------------------------------------------------- training
    def step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        photo, monet = batch
        n = photo.shape[0]
        c, ctx = self.cfg.algo, self.ctx
        lam_cyc, lam_idt = c.lambda_cycle, c.lambda_cycle * c.lambda_identity
        use_idt = lam_idt > 0

        # ---- generators
        self.nets.discriminators_learn(False)
        with ctx.autocast():
            out_m = self.g_monet(torch.cat([photo, monet]) if use_idt else photo)
            fake_monet = out_m[:n]
            out_p = self.g_photo(torch.cat([monet, fake_monet, photo] if use_idt else [monet, fake_monet]))
            fake_photo, rec_photo = out_p[:n], out_p[n:2 * n]
            rec_monet = self.g_monet(fake_photo)
            g_adv = self._adversarial_g(self.d_monet(self._d_in(fake_monet))) + self._adversarial_g(self.d_photo(self._d_in(fake_photo)))
            cycle = F.l1_loss(rec_photo.float(), photo.float()) + F.l1_loss(rec_monet.float(), monet.float())
            loss_g = g_adv + lam_cyc * cycle
            if use_idt:  # G(painting) should stay the painting, F(photo) the photo
                identity = (F.l1_loss(out_m[n:].float(), monet.float())
                            + F.l1_loss(out_p[2 * n:].float(), photo.float()))
                loss_g = loss_g + lam_idt * identity
            else:
                identity = torch.zeros((), device=photo.device)
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(loss_g).backward()
        self.sync_grads(self.opt_g)
        self.scaler.step(self.opt_g)

        # ---- discriminators, on pooled fakes
        self.nets.discriminators_learn(True)
        old_monet = ctx.images(self.pool_monet.query(fake_monet))
        old_photo = ctx.images(self.pool_photo.query(fake_photo))
        with ctx.autocast():
            real_m, fake_m = self.d_monet(self._d_in(monet)), self.d_monet(self._d_in(old_monet))
            real_p, fake_p = self.d_photo(self._d_in(photo)), self.d_photo(self._d_in(old_photo))
            d_monet, d_photo = self.loss.d(real_m, fake_m), self.loss.d(real_p, fake_p)  # halved: slows D, as the paper does
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(d_monet + d_photo).backward()
        self.sync_grads(self.opt_d)
        self.scaler.step(self.opt_d)
        self.scaler.update()
        self.step_count += 1
        return {"g": loss_g.detach(), "d": (d_monet + d_photo).detach(), "g_adv": g_adv.detach(),
                "cycle": cycle.detach(), "identity": identity.detach(),
                "d_monet": d_monet.detach(), "d_photo": d_photo.detach(),
                "d_real": real_m.detach().float().mean(), "d_fake": fake_m.detach().float().mean()}

    # ----------------------------------------------------------------- state
    def extra_state(self) -> dict[str, Any]:
        return {"pool_monet": self.pool_monet.state_dict(), "pool_photo": self.pool_photo.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.pool_monet.load_state_dict(state["pool_monet"], self.ctx.device)
        self.pool_photo.load_state_dict(state["pool_photo"], self.ctx.device)
