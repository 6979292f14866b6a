"""What every noise -> image algorithm shares, the twin of `translate.DomainPairTask`: the training images
and class labels on the device and their sampler, the EMA of G, the fixed grid noise, the class names and
the class of each written image, the writer (seeded noise -> uint8 batches), and the state of all that.

A subclass builds its own networks, optimisers and objective in `build_networks()` and steps in `step()`;
it documents what it adds to the checkpoint in `extra_state()` / `load_extra_state()`. It never touches
the base's privates: the hooks and the attributes listed in `NoiseToImageTask`'s docstring are the contract.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch

from kompete.algorithms.base import (GenerateOptions, IndexSampler, Task, balanced_counts, class_order,
                                     resolve_class_counts)
from kompete.config import Config
from kompete.data.augment import random_flip, to_float, to_uint8
from kompete.data.diffaugment import diff_augment, parse_policy
from kompete.errors import ConfigError
from kompete.models import EMA
from kompete.runtime.context import Context, eval_mode

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


class NoiseToImageTask(Task):
    """Base of the noise -> image algorithms.

    `build_networks()` (called once, after `torch.manual_seed(train.seed)`, with `self.meta` holding
    n_classes, image_size and classes) must set `self.G` (the generator, after `ctx.prepare`; called as
    G(z, y or None)), `self.z_dim`, `self.conditional` and `self.n_classes`, and may build anything else.
    The base then keeps an EMA of G (`ema_decay` / `ema_start` of the algorithm's section, when it has
    them), seeds the device streams, draws the fixed grid noise and puts the data on the device.
    A step reads `next_batch()` -> (images NCHW float, labels), `classes(y)` (None when unconditional),
    `augment(x)` (train.diffaugment) and calls `update_ema()` once at its end.
    """

    G: torch.nn.Module
    z_dim: int
    conditional: bool = False
    n_classes: int = 0

    def __init__(self, cfg: Config, ctx: Context, data: Any = None, meta: dict | None = None):
        super().__init__(cfg, ctx, data, meta)
        t = cfg.train
        if data is not None:
            self.meta.update(n_classes=max(1, len(data.classes)), image_size=int(data.images.shape[1]),
                             classes=[str(c) for c in data.classes])
        self.meta.setdefault("n_classes", 1)
        self.meta.setdefault("image_size", cfg.data.image_size)
        torch.manual_seed(t.seed)
        self.build_networks()
        self._check_class_output(cfg)
        decay = getattr(cfg.algo, "ema_decay", 0.0)
        self.ema = EMA(self.G, decay, getattr(cfg.algo, "ema_start", 0)) if decay > 0 else None
        ctx.seed_streams(t.seed)  # after the nets: their initial weights stay the same on every rank
        self.policy = parse_policy(t.diffaugment)
        # fixed sample inputs, drawn on the CPU so every device shows the same grid
        gen = torch.Generator().manual_seed(t.seed + 1)
        self.z_fixed = torch.randn(GRID_SIZE, self.z_dim, generator=gen).to(ctx.device)
        self.y_fixed = (torch.arange(GRID_SIZE) % max(1, self.n_classes)).to(ctx.device)
        self.images: torch.Tensor | None = None
        if data is not None:
            self._hold_data(data)

    # ----------------------------------------------------------------- hooks
    def build_networks(self) -> None:
        """Set self.G, self.z_dim, self.conditional, self.n_classes; build D, optimisers, the objective."""
        raise NotImplementedError

    def extra_state(self) -> dict[str, Any]:
        """What the subclass adds to a checkpoint (D, optimisers, scalers, its loss's state)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what `extra_state` saved (called after G, the EMA and the counters are restored)."""

    # ----------------------------------------------------------------- set-up
    def _hold_data(self, data: Any) -> None:
        cfg, ctx, t = self.cfg, self.ctx, self.cfg.train
        if len(data.images) < 2:
            raise ConfigError(f"{cfg.name}: need at least 2 training images, found {len(data.images)}")
        # uint8 NHWC on the device; permuting a batch gives an NCHW view with channels_last strides
        self.images = torch.from_numpy(data.images).to(ctx.device)
        self.labels = torch.from_numpy(data.labels.astype("int64")).to(ctx.device)
        self.sampler = IndexSampler(len(data.images), t.batch_size, t.seed, ctx.rank, ctx.world_size, ctx.device)

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

    # ----------------------------------------------------------------- for the step
    def augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.policy) if self.policy else x

    def classes(self, y: torch.Tensor) -> torch.Tensor | None:
        return y if self.conditional else None

    def update_ema(self) -> None:
        if self.ema is not None:
            self.ema.update(self.G, self.step_count)

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        state = {"G": self.G.state_dict(), "step": self.step_count, "epoch": self.epoch, **self.extra_state(),
                 **self.rng_state()}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        if self.images is not None:
            state["sampler"] = self.sampler.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_weights(state)
        self.step_count, self.epoch = int(state["step"]), int(state["epoch"])
        self.load_extra_state(state)
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
            x = g(z.to(self.ctx.device), self.classes(y.to(self.ctx.device)) if y is not None else None)
        return to_uint8(x.float())

    @torch.no_grad()
    def sample_grid(self) -> torch.Tensor:
        return self.generate(self.z_fixed, self.y_fixed if self.conditional else None)

    def grid_captions(self) -> list[str] | None:
        """A conditional grid names the class each image was asked for."""
        names = self.class_names
        return None if names is None else [names[int(y)] for y in self.y_fixed.tolist()]

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
