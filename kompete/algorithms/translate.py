"""What every translation algorithm (CycleGAN, CUT) shares: two image domains on the device, their samplers
and augmentation, the fixed grid photos, DDP gradient averaging, and the writer that translates the photos.

Both domains live on the device as uint8 and are augmented there (resize to load_size, random crop, flip).
An epoch is one pass over the larger domain (the photos, in practice), as in the reference code.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch

from kompete.algorithms.base import GenerateOptions, IndexSampler, Task
from kompete.config import Config
from kompete.data import DomainPair, load_domains
from kompete.data.augment import random_flip, resize_random_crop, to_float, to_uint8
from kompete.data.diffaugment import diff_augment, parse_policy
from kompete.errors import ConfigError, DataError
from kompete.runtime.context import Context, eval_mode


class DomainPairTask(Task):
    """Base of the photo -> painting algorithms. Subclasses build their networks and set `self.translator`
    (the photo -> painting generator, possibly a compiled view) and `self.translator_module` (the plain module)."""

    translator: Any = None
    translator_module: torch.nn.Module | None = None

    def __init__(self, cfg: Config, ctx: Context, data: DomainPair | None = None, meta: dict | None = None):
        super().__init__(cfg, ctx, data, meta)
        t = cfg.train
        self.policy = parse_policy(t.diffaugment)
        self.meta.setdefault("image_size", cfg.data.image_size)
        self.photos = self.monets = None
        if data is None:
            return
        if len(data.source) == 0 or len(data.target) == 0:
            raise DataError(f"{cfg.name}: translation needs images in both domains")
        # uint8 NCHW on the device: 7,038 photos at 256x256 are 1.4 GB, fine on any Kaggle GPU
        self.photos = torch.from_numpy(data.source.images).to(ctx.device).permute(0, 3, 1, 2).contiguous()
        self.monets = torch.from_numpy(data.target.images).to(ctx.device).permute(0, 3, 1, 2).contiguous()
        b = t.batch_size
        self.photo_sampler = IndexSampler(len(self.photos), b, t.seed, ctx.rank, ctx.world_size, ctx.device)
        self.monet_sampler = IndexSampler(len(self.monets), b, t.seed + 1, ctx.rank, ctx.world_size, ctx.device)
        self._photos_lead = len(self.photos) >= len(self.monets)
        k = min(cfg.algo.grid_photos, len(self.photos))
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
            raise DataError("this task was built without data; it can only translate")
        p_idx = self.photo_sampler.next()
        m_idx = self.monet_sampler.next()
        self.epoch = (self.photo_sampler if self._photos_lead else self.monet_sampler).epoch
        return self._augment(self.photos[p_idx]), self._augment(self.monets[m_idx])

    def _d_in(self, x: torch.Tensor) -> torch.Tensor:
        """What a discriminator sees: DiffAugment when configured."""
        return diff_augment(x, self.policy) if self.policy else x

    # ----------------------------------------------------------------- state
    # Subclasses keep all their networks in `self.nets`, two optimisers `opt_g`/`opt_d` and one `scaler`;
    # anything else (CycleGAN's image pools) goes through `extra_state` / `load_extra_state`.
    def state_dict(self) -> dict[str, Any]:
        state = {"nets": self.nets.state_dict(), "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                 "scaler": self.scaler.state_dict(), "step": self.step_count, "epoch": self.epoch,
                 **self.rng_state(), **self.extra_state()}
        if self.photos is not None:
            state.update(photo_sampler=self.photo_sampler.state_dict(), monet_sampler=self.monet_sampler.state_dict())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.nets.load_state_dict(state["nets"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.scaler.load_state_dict(state["scaler"])
        self.load_extra_state(state)
        self.step_count, self.epoch = state["step"], state["epoch"]
        self.load_rng_state(state)
        if self.photos is not None and "photo_sampler" in state:
            self.photo_sampler.load_state_dict(state["photo_sampler"])
            self.monet_sampler.load_state_dict(state["monet_sampler"])

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what `extra_state` saved."""

    def load_weights(self, state: dict[str, Any]) -> None:
        """Only the networks: what translation needs from a checkpoint."""
        self.nets.load_state_dict(state["nets"])

    # ----------------------------------------------------------------- training
    def sync_grads(self, opt: torch.optim.Optimizer) -> None:
        """Average gradients over DDP ranks in one flat all-reduce (several nets and passes: no DDP wrapper)."""
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

    # ----------------------------------------------------------------- outputs
    def generator_for_inference(self) -> torch.nn.Module:
        """The photo -> painting generator; callers set eval mode (kompete.runtime.context.eval_mode)."""
        assert self.translator_module is not None
        return self.translator_module

    @torch.no_grad()
    def sample_grid(self) -> torch.Tensor:
        """Each fixed photo followed by its translation: pairs side by side in a grid of even width."""
        with eval_mode(self.generator_for_inference()), self.ctx.autocast():
            fake = self.translator(self.grid_photos).float()
        pairs = torch.stack([self.grid_photos.float(), fake], 1).flatten(0, 1)
        return to_uint8(pairs).contiguous()

    def grid_captions(self) -> list[str]:
        """Which tile of each pair is the photo given and which the generator's translation."""
        return ["input", "output"] * len(self.grid_photos)

    def max_images(self) -> int | None:
        return 2 * len(self.photos) if self.photos is not None else None

    def image_batches(self, opts: GenerateOptions) -> Iterator[torch.Tensor]:
        """Every photo through the photo -> painting generator, in order; past the last photo, the photos again,
        mirrored (so up to twice as many distinct images as photos). Deterministic: no noise involved."""
        photos = self._photos(opts.data_dir)  # uint8 NCHW, on the device when the task trains on them
        n_photos = len(photos)
        if opts.n > 2 * n_photos:
            raise ConfigError(f"{opts.n} translations asked for, but {n_photos} photos give at most {2 * n_photos} "
                              "(each photo and its mirror image)")
        return self._translate(photos, opts)

    def _translate(self, photos: torch.Tensor, opts: GenerateOptions) -> Iterator[torch.Tensor]:
        ctx, n_photos, G = self.ctx, len(photos), self.generator_for_inference()
        with eval_mode(G), torch.no_grad():
            for done in range(0, opts.n, opts.batch_size):
                order = torch.arange(done, min(done + opts.batch_size, opts.n))
                x = photos[(order % n_photos).to(photos.device)]
                if x.device != ctx.device:
                    x = (x.pin_memory() if ctx.is_cuda else x).to(ctx.device, non_blocking=True)
                mirror = (order >= n_photos).to(ctx.device)
                x = to_float(x)
                x = ctx.images(torch.where(mirror[:, None, None, None], x.flip(3), x))
                with ctx.autocast():
                    y = G(x)
                yield to_uint8(y.float())

    def _photos(self, data_dir: str | None) -> torch.Tensor:
        """The photos to translate as uint8 NCHW: the training copy, else read (cached) from disk."""
        if self.photos is not None:
            return self.photos
        from kompete.data import locate, resolve_data_dir
        from kompete.data.monet import load_domain

        photos = load_domain(self.cfg, locate.folder(self.cfg, resolve_data_dir(self.cfg, data_dir), "source"),
                             progress=False)
        return torch.from_numpy(photos.images).permute(0, 3, 1, 2)
