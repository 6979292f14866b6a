"""The cut algorithm's Task: CUT and FastCUT (Park et al. 2020) on the shared domain-pair data.

Per step, as in the reference `cut_model.py`: D (a 70x70 PatchGAN) minimises half the least-squares loss
on real paintings and G(photo); then G and the patch heads minimise lambda_gan x (D(G(photo)) - 1)^2 plus
lambda_nce x PatchNCE between the encoder features of each photo and of its translation, averaged with
the identity term PatchNCE(painting, G(painting)) when `nce_idt` (CUT; FastCUT drops it and uses
lambda_nce 10). The keys come from the same generator pass that makes the fakes; one set of patch ids
serves the photo and the identity halves of a batch (the reference draws one per half).
"""

from __future__ import annotations


import torch

from kompete.algorithms.translate import DomainPairTask
from kompete.config import Config
from kompete.data import DomainPair
from kompete import losses
from kompete.models.cut import CutNetworks, encoder_features, patchnce, translate_with_features
from kompete.runtime.context import Context


class CutTask(DomainPairTask):
    loss_names = ("g", "d", "g_adv", "nce", "nce_idt", "d_real", "d_fake")

    def __init__(self, cfg: Config, ctx: Context, data: DomainPair | None = None, meta: dict | None = None):
        t, c = cfg.train, cfg.algo
        torch.manual_seed(t.seed)
        self.nets = ctx.prepare(CutNetworks(cfg.data.image_size, t.g_channels, t.d_channels, c.n_blocks, c.d_layers,
                                            c.mlp_channels, c.init_gain, tuple(c.nce_blocks)))
        self.translator = self.translator_module = self.nets.generator
        fused = {"fused": True} if ctx.is_cuda else {}
        g_params = [*self.nets.generator.parameters(), *self.nets.heads.parameters()]
        self.opt_g = torch.optim.Adam(g_params, lr=t.lr_g, betas=(t.beta1, t.beta2), **fused)
        self.opt_d = torch.optim.Adam(self.nets.discriminator.parameters(), lr=t.lr_d, betas=(t.beta1, t.beta2),
                                      **fused)
        self.scaler = ctx.grad_scaler()
        self.loss = losses.build(t.loss, cfg.loss)  # lsgan (the paper's) unless train.loss says hinge
        ctx.seed_streams(t.seed)  # after the nets: their initial weights stay the same on every rank
        super().__init__(cfg, ctx, data, meta)

    def _nce(self, keys: list[torch.Tensor], queries: list[torch.Tensor]) -> list[torch.Tensor]:
        """PatchNCE per half of the batch (photos, then paintings when nce_idt): one loss per half."""
        c = self.cfg.algo
        k, ids = self.nets.heads(keys, c.num_patches)
        q, _ = self.nets.heads(queries, c.num_patches, ids)
        halves = 2 if c.nce_idt else 1
        n = keys[0].shape[0] // halves
        return [patchnce([x[h * n:(h + 1) * n] for x in q], [x[h * n:(h + 1) * n] for x in k], c.nce_temperature)
                for h in range(halves)]

    def step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        photo, monet = batch
        n = photo.shape[0]
        c, ctx, nets = self.cfg.algo, self.ctx, self.nets
        D = nets.discriminator
        with ctx.autocast():
            x = torch.cat([photo, monet]) if c.nce_idt else photo
            out, keys = translate_with_features(nets.generator, x, nets.layers)
            fake = out[:n]

        # ---- discriminator
        D.requires_grad_(True)
        with ctx.autocast():
            real_logits, fake_logits = D(self._d_in(monet)), D(self._d_in(fake.detach()))
            loss_d = self.loss.d(real_logits, fake_logits)
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d).backward()
        self.sync_grads(self.opt_d)
        self.scaler.step(self.opt_d)

        # ---- generator and patch heads
        D.requires_grad_(False)
        with ctx.autocast():
            g_adv = 2 * self.loss.g(None, D(self._d_in(fake)))  # the reference's (D(G(x)) - 1)^2, unhalved
            queries = encoder_features(nets.generator, out, nets.layers)
            nce = self._nce([k.detach() for k in keys], queries)
            nce_x = nce[0]
            nce_y = nce[1] if c.nce_idt else torch.zeros((), device=photo.device)
            nce_total = (nce_x + nce_y) * 0.5 if c.nce_idt else nce_x
            loss_g = c.lambda_gan * g_adv + c.lambda_nce * nce_total
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(loss_g).backward()
        self.sync_grads(self.opt_g)
        self.scaler.step(self.opt_g)
        self.scaler.update()
        D.requires_grad_(True)
        self.step_count += 1
        return {"g": loss_g.detach(), "d": loss_d.detach(), "g_adv": g_adv.detach(), "nce": nce_x.detach(),
                "nce_idt": nce_y.detach(), "d_real": real_logits.detach().float().mean(),
                "d_fake": fake_logits.detach().float().mean()}
