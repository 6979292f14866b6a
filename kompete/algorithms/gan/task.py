"""The gan algorithm's Task: an unconditional or class-conditional GAN trained from noise on GPU-resident
images, with an EMA of G, `train.d_steps` D updates and `train.g_steps` G updates per step."""

from __future__ import annotations

from typing import Any, Iterator

import torch

from kompete import losses, models  # noqa: F401  (importing fills the LOSSES and MODELS registries)
from kompete.algorithms.base import (GenerateOptions, IndexSampler, Task, balanced_counts, class_order,
                                     resolve_class_counts)
from kompete.config import Config
from kompete.data.augment import random_flip, to_float, to_uint8
from kompete.data.diffaugment import diff_augment, parse_policy
from kompete.errors import ConfigError
from kompete.models import EMA
from kompete.models.base import without_batch_norm
from kompete.registry import LOSSES, MODELS
from kompete.train.context import Context, eval_mode

GRID_SIZE = 64


def truncated_noise(n: int, dim: int, threshold: float, generator: torch.Generator) -> torch.Tensor:
    """N(0, 1) noise, with every value beyond +-threshold redrawn until it falls inside (0 = no truncation)."""
    z = torch.randn(n, dim, generator=generator)
    if threshold > 0:
        bad = z.abs() > threshold
        while bad.any():
            z[bad] = torch.randn(int(bad.sum()), generator=generator)
            bad = z.abs() > threshold
    return z


class GanTask(Task):
    """G and D (+ EMA of G) for noise -> image models; `cfg.train.model` picks the networks."""

    loss_names = ("d", "g", "d_real", "d_fake")

    def __init__(self, cfg: Config, ctx: Context, data: Any = None, meta: dict | None = None):
        super().__init__(cfg, ctx, data, meta)
        t, g = cfg.train, cfg.algo
        builder = MODELS.get(t.model)
        self.loss = LOSSES.get(t.loss)(g)
        if data is not None:
            self.meta.update(n_classes=max(1, len(data.classes)), image_size=int(data.images.shape[1]),
                             classes=[str(c) for c in data.classes])
        self.meta.setdefault("n_classes", 1)
        self.meta.setdefault("image_size", cfg.data.image_size)
        torch.manual_seed(t.seed)
        built = builder(cfg, int(self.meta["n_classes"]))
        self.conditional, self.n_classes, self.z_dim = built.conditional, built.n_classes, built.z_dim
        self._check_class_output(cfg)
        self.G = ctx.prepare(built.generator)
        critic = built.discriminator if self.loss.batch_norm_in_critic else without_batch_norm(built.discriminator)
        self.D = ctx.prepare(critic)
        self.ema = EMA(self.G, g.ema_decay, g.ema_start) if g.ema_decay > 0 else None
        self.G_train, self.D_train = ctx.wrap(self.G), ctx.wrap(self.D)
        # D as G's step sees it: frozen and never DDP-wrapped, so no gradient of D is computed or all-reduced
        self.D_for_g = ctx.compiled(self.D)
        fused = {"fused": True} if ctx.is_cuda else {}
        self.opt_g = torch.optim.Adam(self.G.parameters(), t.lr_g, betas=(t.beta1, t.beta2), **fused)
        self.opt_d = torch.optim.Adam(self.D.parameters(), t.lr_d, betas=(t.beta1, t.beta2), **fused)
        self.scaler_g, self.scaler_d = ctx.grad_scaler(), ctx.grad_scaler()
        ctx.seed_streams(t.seed)  # after the nets: their initial weights stay the same on every rank
        self.policy = parse_policy(t.diffaugment)
        # fixed sample inputs, drawn on the CPU so every device shows the same grid
        gen = torch.Generator().manual_seed(t.seed + 1)
        self.z_fixed = torch.randn(GRID_SIZE, self.z_dim, generator=gen).to(ctx.device)
        self.y_fixed = (torch.arange(GRID_SIZE) % max(1, self.n_classes)).to(ctx.device)
        self.images: torch.Tensor | None = None
        if data is not None:
            if len(data.images) < 2:
                raise ConfigError(f"{cfg.name}: need at least 2 training images, found {len(data.images)}")
            # uint8 NHWC on the device; permuting a batch gives an NCHW view with channels_last strides
            self.images = torch.from_numpy(data.images).to(ctx.device)
            self.labels = torch.from_numpy(data.labels.astype("int64")).to(ctx.device)
            self.sampler = IndexSampler(len(data.images), t.batch_size, t.seed, ctx.rank, ctx.world_size,
                                        ctx.device)

    def _check_class_output(self, cfg: Config) -> None:
        """Per-class output needs labels and known class names: checked before any training or generation."""
        g = cfg.generate
        for key, used in (("generate.class_counts", bool(g.class_counts)),
                          ("output.layout", cfg.output.layout == "by_class")):
            if used and not self.conditional:
                raise ConfigError(f"{cfg.name}: '{key}' needs a class-conditional model (a `_cond` train.model); "
                                  f"{cfg.train.model} takes no class labels")
        if g.class_counts:
            resolve_class_counts(g.class_counts, self.class_names or [])

    @classmethod
    def check_names(cls, cfg: Config) -> None:
        MODELS.get(cfg.train.model, "train.model")
        LOSSES.get(cfg.train.loss, "train.loss")

    # ----------------------------------------------------------------- data
    @classmethod
    def load_data(cls, cfg: Config, data_dir: str | None = None, progress: bool = True) -> Any:
        from kompete.data import prepare_images

        return prepare_images(cfg, data_dir, progress)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.images is not None, "this task was built without data"
        idx = self.sampler.next()
        self.epoch = self.sampler.epoch
        x = to_float(self.images[idx].permute(0, 3, 1, 2))
        if self.cfg.data.random_flip:
            x = random_flip(x)
        return self.ctx.images(x), self.labels[idx]

    @property
    def images_per_step(self) -> int:
        return self.sampler.batch_size * self.cfg.train.d_steps * self.ctx.world_size

    @property
    def steps_per_epoch(self) -> int:
        return max(1, self.sampler.steps_per_epoch // self.cfg.train.d_steps)

    # ----------------------------------------------------------------- training
    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.policy) if self.policy else x

    def _classes(self, y: torch.Tensor) -> torch.Tensor | None:
        return y if self.conditional else None

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
    def state_dict(self) -> dict[str, Any]:
        state = {"G": self.G.state_dict(), "D": self.D.state_dict(), "opt_g": self.opt_g.state_dict(),
                 "opt_d": self.opt_d.state_dict(), "scaler_g": self.scaler_g.state_dict(),
                 "scaler_d": self.scaler_d.state_dict(), "step": self.step_count, "epoch": self.epoch,
                 **self.rng_state()}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        if self.images is not None:
            state["sampler"] = self.sampler.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        if self.ema is not None:
            self.ema.load_state_dict(state.get("ema", state["G"]))
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.scaler_g.load_state_dict(state["scaler_g"])
        self.scaler_d.load_state_dict(state["scaler_d"])
        self.step_count, self.epoch = int(state["step"]), int(state["epoch"])
        if self.images is not None and "sampler" in state:
            self.sampler.load_state_dict(state["sampler"])
        self.load_rng_state(state)

    def load_weights(self, state: dict[str, Any]) -> None:
        """Only what generation needs (G, EMA), e.g. from a checkpoint of another device."""
        self.G.load_state_dict(state["G"])
        if self.ema is not None:
            self.ema.load_state_dict(state.get("ema", state["G"]))

    # ----------------------------------------------------------------- outputs
    def generator_for_inference(self) -> torch.nn.Module:
        """The EMA copy when there is one (and generate.use_ema), else G; callers set eval mode."""
        use_ema = self.ema is not None and self.cfg.generate.use_ema
        return self.ema.shadow if use_ema else self.G

    @torch.no_grad()
    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 NCHW images from noise (and classes, for conditional models)."""
        g = self.generator_for_inference()
        with eval_mode(g), self.ctx.autocast():
            x = g(z.to(self.ctx.device), self._classes(y.to(self.ctx.device)) if y is not None else None)
        return to_uint8(x.float())

    @torch.no_grad()
    def sample_grid(self) -> torch.Tensor:
        return self.generate(self.z_fixed, self.y_fixed if self.conditional else None)

    @property
    def class_names(self) -> list[str] | None:
        if not self.conditional:
            return None
        names = [str(c) for c in self.meta.get("classes") or ()]
        # a checkpoint from before the names were kept knows only how many classes there were
        return names if len(names) == self.n_classes else [f"class{i}" for i in range(self.n_classes)]

    def image_labels(self, opts: GenerateOptions) -> torch.Tensor | None:
        """Round after round through the classes (`class_order`): balanced, or `opts.class_counts`."""
        if not self.conditional:
            return None
        counts = opts.class_counts or balanced_counts(opts.n, self.n_classes)
        if len(counts) != self.n_classes or sum(counts) != opts.n:
            raise ConfigError(f"class counts {list(counts)} do not give {opts.n} images over {self.n_classes} classes")
        return class_order(counts)

    def image_batches(self, opts: GenerateOptions) -> Iterator[torch.Tensor]:
        """opts.n images from seeded noise (drawn on the CPU: the same images on every device); conditional
        models take their classes from `image_labels`, so every class gets its share."""
        gen = torch.Generator().manual_seed(opts.seed)
        labels = self.image_labels(opts)
        for done in range(0, opts.n, opts.batch_size):
            b = min(opts.batch_size, opts.n - done)
            z = truncated_noise(b, self.z_dim, opts.truncation, gen)
            yield self.generate(z, labels[done:done + b] if labels is not None else None)
