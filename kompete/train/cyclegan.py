"""The CycleGAN task: unpaired photo -> painting translation, trained by the shared Trainer.

Per step (as in the paper and its reference code): the generators minimise the least-squares
adversarial loss plus lambda_cycle x the cycle-consistency L1 plus lambda_identity x lambda_cycle x
the identity L1; then each discriminator minimises half the least-squares loss on a real batch and
on fakes drawn from a 50-image history pool. Both domains live on the device as uint8 and are
augmented there (resize to load_size, random crop, flip). Each generator runs once per input kind
with the batches concatenated: instance norm is per image, so the results are the same, and the
GPU sees bigger launches.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kompete.config import Config
from kompete.data import DomainPair, load_domains
from kompete.data.augment import random_flip, resize_random_crop, to_float, to_uint8
from kompete.data.diffaugment import diff_augment, parse_policy
from kompete.errors import ConfigError, DataError
from kompete.losses import LSGANLoss
from kompete.models.cyclegan import CycleGan
from kompete.models.image_pool import ImagePool
from kompete.train.context import Context, eval_mode
from kompete.train.task import TASKS, IndexSampler, Task

LOSS_NAMES = ("g", "d", "g_adv", "cycle", "identity", "d_monet", "d_photo", "d_real", "d_fake")


@TASKS.register("translate")
class CycleGanTask(Task):
    loss_names = LOSS_NAMES

    def __init__(self, cfg: Config, ctx: Context, data: DomainPair | None = None, meta: dict | None = None):
        super().__init__(cfg, ctx, data, meta)
        if cfg.train.model != "cyclegan":
            raise ConfigError(f"{cfg.name} is a 'translate' competition: set train.model to 'cyclegan' "
                              f"(got {cfg.train.model!r})")
        if cfg.train.loss != "lsgan":
            raise ConfigError(f"the CycleGAN task trains with train.loss 'lsgan' (the paper's); got {cfg.train.loss!r}")
        t, c = cfg.train, cfg.cyclegan
        torch.manual_seed(t.seed)
        self.nets = ctx.prepare(CycleGan.from_config(cfg))
        # compiled views for the forward passes; the plain modules keep the state_dict names
        run = (lambda m: torch.compile(m)) if ctx.compile and ctx.is_cuda else (lambda m: m)
        self.g_monet, self.g_photo = run(self.nets.to_monet), run(self.nets.to_photo)
        self.d_monet, self.d_photo = run(self.nets.d_monet), run(self.nets.d_photo)
        g_params = [*self.nets.to_monet.parameters(), *self.nets.to_photo.parameters()]
        d_params = [*self.nets.d_monet.parameters(), *self.nets.d_photo.parameters()]
        fused = {"fused": True} if ctx.is_cuda else {}
        self.opt_g = torch.optim.Adam(g_params, lr=t.lr_g, betas=(t.beta1, t.beta2), **fused)
        self.opt_d = torch.optim.Adam(d_params, lr=t.lr_d, betas=(t.beta1, t.beta2), **fused)
        self.scaler = ctx.grad_scaler()  # one scaler for both optimisers, updated once per step
        self.loss = LSGANLoss()
        ctx.seed_streams(t.seed)  # after the nets: their initial weights stay the same on every rank
        self.pool_monet = ImagePool(c.pool_size, seed=t.seed + 11)
        self.pool_photo = ImagePool(c.pool_size, seed=t.seed + 12)
        self.policy = parse_policy(t.diffaugment)
        self.meta.setdefault("image_size", cfg.data.image_size)
        self.photos = self.monets = None
        if data is not None:
            if len(data.source) == 0 or len(data.target) == 0:
                raise DataError("the CycleGAN task needs images in both domains")
            # uint8 NCHW on the device: 7,038 photos at 256x256 are 1.4 GB, fine on any Kaggle GPU
            self.photos = torch.from_numpy(data.source.images).to(ctx.device).permute(0, 3, 1, 2).contiguous()
            self.monets = torch.from_numpy(data.target.images).to(ctx.device).permute(0, 3, 1, 2).contiguous()
            b = t.batch_size
            self.photo_sampler = IndexSampler(len(self.photos), b, t.seed, ctx.rank, ctx.world_size)
            self.monet_sampler = IndexSampler(len(self.monets), b, t.seed + 1, ctx.rank, ctx.world_size)
            # an epoch is one pass over the larger domain (the photos, in practice), as in the reference code
            self._photos_lead = len(self.photos) >= len(self.monets)
            k = min(c.grid_photos, len(self.photos))
            pick = torch.linspace(0, len(self.photos) - 1, k).long().to(ctx.device)
            self.grid_photos = ctx.images(to_float(self.photos[pick]))

    # ----------------------------------------------------------------- data
    @classmethod
    def load_data(cls, cfg: Config, data_dir: str | None = None, progress: bool = True) -> DomainPair:
        return load_domains(cfg, data_dir, progress)

    @property
    def steps_per_epoch(self) -> int:
        lead = self.photo_sampler if self._photos_lead else self.monet_sampler
        return max(1, lead.steps_per_epoch)

    def _lsgan_g(self, fake: torch.Tensor) -> torch.Tensor:
        """The paper's generator term, (D(G(x)) - 1)^2 unhalved: twice the registry's lsgan G loss."""
        return 2 * self.loss.g(None, fake)

    @property
    def images_per_step(self) -> int:
        return 2 * self.photo_sampler.batch_size * self.ctx.world_size  # a photo and a painting per item, per rank

    def _augment(self, images: torch.Tensor) -> torch.Tensor:
        d = self.cfg.data
        x = resize_random_crop(to_float(images), max(d.load_size, d.image_size), d.image_size)
        if d.random_flip:
            x = random_flip(x)
        return self.ctx.images(x)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.photos is None:
            raise DataError("this CycleGAN task was built without data; it can only translate")
        p_idx = self.photo_sampler.next().to(self.ctx.device, non_blocking=True)
        m_idx = self.monet_sampler.next().to(self.ctx.device, non_blocking=True)
        self.epoch = (self.photo_sampler if self._photos_lead else self.monet_sampler).epoch
        return self._augment(self.photos[p_idx]), self._augment(self.monets[m_idx])

    # ----------------------------------------------------------------- training
    def step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        photo, monet = batch
        n = photo.shape[0]
        c, ctx = self.cfg.cyclegan, self.ctx
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
            g_adv = self._lsgan_g(self.d_monet(self._d_in(fake_monet))) + self._lsgan_g(self.d_photo(self._d_in(fake_photo)))
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
        self._sync_grads(self.opt_g)
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
        self._sync_grads(self.opt_d)
        self.scaler.step(self.opt_d)
        self.scaler.update()
        self.step_count += 1
        return {"g": loss_g.detach(), "d": (d_monet + d_photo).detach(), "g_adv": g_adv.detach(), "cycle": cycle.detach(), "identity": identity.detach(),
                "d_monet": d_monet.detach(), "d_photo": d_photo.detach(),
                "d_real": real_m.detach().float().mean(), "d_fake": fake_m.detach().float().mean()}

    def _d_in(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.policy) if self.policy else x

    def _sync_grads(self, opt: torch.optim.Optimizer) -> None:
        """Average gradients over DDP ranks in one flat all-reduce (four nets, several passes: no DDP wrapper)."""
        if not self.ctx.ddp:
            return
        import torch.distributed as dist

        grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat.div_(self.ctx.world_size)
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        state = {"nets": self.nets.state_dict(), "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                 "scaler": self.scaler.state_dict(), "pool_monet": self.pool_monet.state_dict(),
                 "pool_photo": self.pool_photo.state_dict(), "step": self.step_count, "epoch": self.epoch,
                 **self.rng_state()}
        if self.photos is not None:
            state["photo_sampler"] = self.photo_sampler.state_dict()
            state["monet_sampler"] = self.monet_sampler.state_dict()
        return state

    def load_weights(self, state: dict[str, Any]) -> None:
        """Only the networks: what translation needs from a checkpoint."""
        self.nets.load_state_dict(state["nets"])

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.nets.load_state_dict(state["nets"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.scaler.load_state_dict(state["scaler"])
        self.pool_monet.load_state_dict(state["pool_monet"], self.ctx.device)
        self.pool_photo.load_state_dict(state["pool_photo"], self.ctx.device)
        self.step_count, self.epoch = state["step"], state["epoch"]
        self.load_rng_state(state)
        if self.photos is not None and "photo_sampler" in state:
            self.photo_sampler.load_state_dict(state["photo_sampler"])
            self.monet_sampler.load_state_dict(state["monet_sampler"])

    # ----------------------------------------------------------------- outputs
    @torch.no_grad()
    def sample_grid(self) -> torch.Tensor:
        """Each fixed photo followed by its translation: pairs side by side in a grid of even width."""
        with eval_mode(self.nets.to_monet), self.ctx.autocast():
            fake = self.g_monet(self.grid_photos).float()
        pairs = torch.stack([self.grid_photos.float(), fake], 1).flatten(0, 1)
        return to_uint8(pairs).contiguous()

    def generator_for_inference(self) -> torch.nn.Module:
        """The photo -> painting generator; callers set eval mode (kompete.train.context.eval_mode)."""
        return self.nets.to_monet

