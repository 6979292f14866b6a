"""The contract between the Trainer and an algorithm: the loop never learns what it trains.

A `Task` is an algorithm's torch side. It owns its networks, objective, optimisers, data (GPU-resident)
and fixed sample inputs, and it writes its own submission images. The Trainer asks it for batches,
calls `step`, schedules learning rates through `param_groups`, checkpoints through `state_dict` and
draws sample grids through `sample_grid`; `kompete generate` (and the run's generation estimate)
encodes what `image_batches` yields, placing each image in its class folder (`image_labels`) when the
zip is laid out by class. `build_task(cfg, ...)` builds the Task of the algorithm that
`cfg.train.model` names (kompete.algorithms registers them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import torch

from kompete.config import Config
from kompete.errors import ConfigError
from kompete.runtime.context import Context


@dataclass(frozen=True)
class GenerateOptions:
    """What a Task's writer is asked for."""

    n: int
    seed: int = 0
    truncation: float = 0.0
    batch_size: int = 500
    progress: bool = True
    data_dir: str | None = None  # translate: where the photos are (default: the config's data folders)
    class_counts: tuple[int, ...] = ()  # conditional: images per class index, summing to n (() = balanced)


def balanced_counts(n: int, n_classes: int) -> list[int]:
    """n images split over n_classes as evenly as possible, the first classes taking the remainder."""
    base, extra = divmod(n, n_classes)
    return [base + (c < extra) for c in range(n_classes)]


def class_order(counts: tuple[int, ...] | list[int]) -> torch.Tensor:
    """The class of every image: round after round through the classes that still have images to make.

    Balanced counts give `arange(n) % n_classes`, so a balanced zip is the same whatever the class counts
    say; a prefix of the order is as balanced as the counts allow (an interrupted zip is not one class)."""
    counts_t = torch.as_tensor(list(counts), dtype=torch.int64)
    labels = torch.repeat_interleave(torch.arange(len(counts_t)), counts_t)
    rank = torch.cat([torch.arange(int(c)) for c in counts_t]) if len(labels) else labels
    return labels[torch.sort(rank * len(counts_t) + labels).indices]


def resolve_class_counts(counts: Mapping[Any, int], classes: list[str]) -> tuple[int, ...]:
    """`generate.class_counts` (class name -> count) as counts per class index; unlisted classes get none."""
    unknown = [str(k) for k in counts if str(k) not in classes]
    if unknown:
        raise ConfigError(f"'generate.class_counts' names {', '.join(repr(u) for u in unknown)}, not a class of "
                          f"this model; its classes: {', '.join(classes)}")
    by_name = {str(k): int(v) for k, v in counts.items()}
    return tuple(by_name.get(c, 0) for c in classes)


class Task:
    """Base class of everything the Trainer can train. Subclasses fill in the marked methods.

    Construction: `Task(cfg, ctx, data)` where `data` is what `load_data(cfg, data_dir)` returned, or
    None when only generating from a checkpoint (then `meta` from the checkpoint gives the shapes).
    """

    #: short names of the losses `step` returns, in a stable order (the metrics.csv columns)
    loss_names: tuple[str, ...] = ()

    def __init__(self, cfg: Config, ctx: Context, data: Any = None, meta: dict | None = None):
        self.cfg = cfg
        self.ctx = ctx
        self.meta: dict = dict(meta or {})
        self.step_count = 0
        self.epoch = 0

    @classmethod
    def check_names(cls, cfg: Config) -> None:
        """Registry names in cfg (networks, losses) exist; raises ConfigError listing the valid ones."""

    # ----------------------------------------------------------------- data
    @classmethod
    def load_data(cls, cfg: Config, data_dir: str | None = None, progress: bool = True) -> Any:
        """Read (and cache) the training data on the host; the Task moves it to the device."""
        raise NotImplementedError

    def next_batch(self) -> Any:
        """The next training batch, already on the device; advances `epoch` when the data wraps."""
        raise NotImplementedError

    @property
    def images_per_step(self) -> int:
        """Real images one `step` consumes (for images/s)."""
        return self.cfg.train.batch_size

    @property
    def steps_per_epoch(self) -> int:
        raise NotImplementedError

    # ----------------------------------------------------------------- training
    def step(self, batch: Any) -> dict[str, torch.Tensor]:
        """One optimisation step. Returns detached 0-d loss tensors (never `.item()`: no host sync)."""
        raise NotImplementedError

    def param_groups(self) -> dict[str, list[dict]]:
        """Name -> optimiser param groups whose 'lr' the Trainer scales; by default a GAN's `opt_g` and `opt_d`."""
        return {"g": self.opt_g.param_groups, "d": self.opt_d.param_groups}  # type: ignore[attr-defined]

    def base_lrs(self) -> dict[str, float]:
        """Name -> the configured learning rate of each optimiser in `param_groups`."""
        return {"g": self.cfg.train.lr_g, "d": self.cfg.train.lr_d}

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimisers, scalers, data position, RNG."""
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def rng_state(self) -> dict[str, torch.Tensor]:
        """The global random streams (noise, augmentation), for a checkpoint."""
        state = {"rng_cpu": torch.get_rng_state()}
        if self.ctx.is_cuda:
            state["rng_cuda"] = torch.cuda.get_rng_state(self.ctx.device)
        return state

    def load_rng_state(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["rng_cpu"])
        if self.ctx.is_cuda and "rng_cuda" in state:
            torch.cuda.set_rng_state(state["rng_cuda"], self.ctx.device)
        if self.ctx.ddp:  # the checkpoint holds rank 0's streams; each rank needs its own
            self.ctx.seed_streams(self.cfg.train.seed + int(self.step_count))

    def checkpoint_meta(self) -> dict:
        """Small JSON-able facts a checkpoint needs to rebuild the Task without data (n_classes, ...)."""
        return dict(self.meta)

    # ----------------------------------------------------------------- outputs
    @torch.no_grad()
    def sample_grid(self) -> torch.Tensor:
        """uint8 NCHW images from the fixed sample inputs (same inputs all run long)."""
        raise NotImplementedError

    def grid_captions(self) -> list[str] | None:
        """A caption under each image of `sample_grid` (its class, or input/output), or None for none."""
        return None

    def generator_for_inference(self) -> torch.nn.Module:
        """The network that makes submission images (the EMA copy when there is one); callers set eval mode."""
        raise NotImplementedError

    def image_batches(self, opts: GenerateOptions) -> Iterator[torch.Tensor]:
        """The writer: uint8 NCHW batches on the device, `opts.n` images in all, deterministic per seed.

        Checks the request before yielding anything (e.g. more translations than the photos allow)."""
        raise NotImplementedError

    @property
    def class_names(self) -> list[str] | None:
        """The classes a conditional model generates, in label order (None: it takes no labels)."""
        return None

    def image_labels(self, opts: GenerateOptions) -> torch.Tensor | None:
        """The class index of each image `image_batches(opts)` yields, in order, on the CPU (None: no labels)."""
        return None

    def max_images(self) -> int | None:
        """The most images `image_batches` can make (None: no limit)."""
        return None

    def load_weights(self, state: dict[str, Any]) -> None:
        """Only what generation needs from a checkpoint (by default, everything)."""
        self.load_state_dict(state)


def task_class(cfg: Config) -> type[Task]:
    """The Task of the algorithm that trains `cfg.train.model` (imports its torch code), its names checked."""
    cls = cfg.spec.task_class()
    cls.check_names(cfg)
    return cls


def build_task(cfg: Config, ctx: Context, data: Any = None, meta: dict | None = None) -> Task:
    return task_class(cfg)(cfg, ctx, data, meta)


def load_data(cfg: Config, data_dir: str | None = None, progress: bool = True) -> Any:
    """The training data of cfg's algorithm, read (and cached) on the host."""
    return task_class(cfg).load_data(cfg, data_dir, progress)


class IndexSampler:
    """Shuffled index batches over n items, epoch after epoch, with a state that resumes mid-epoch.

    Indices are drawn on the CPU from a seeded generator (cheap, identical on every device) once per epoch
    and the permutation moves to `device` then: a step only slices it, with no host-to-device copy. In DDP
    each rank takes its own slice of the same permutation.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 device: torch.device | str = "cpu"):
        if n < batch_size * world_size:
            batch_size = max(1, n // world_size)
        self.n, self.batch_size, self.rank, self.world = n, batch_size, rank, world_size
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0
        self.pos = 0
        self.perm = self._shuffle()

    def _shuffle(self) -> torch.Tensor:
        return torch.randperm(self.n, generator=self.generator).to(self.device, non_blocking=True)

    @property
    def steps_per_epoch(self) -> int:
        return self.n // (self.batch_size * self.world)

    def next(self) -> torch.Tensor:
        span = self.batch_size * self.world
        if self.pos + span > self.n:
            self.perm = self._shuffle()
            self.pos = 0
            self.epoch += 1
        start = self.pos + self.rank * self.batch_size
        self.pos += span
        return self.perm[start:start + self.batch_size]

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "pos": self.pos, "perm": self.perm.cpu(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.pos = state["epoch"], state["pos"]
        self.perm = state["perm"].to(self.device)
        self.generator.set_state(state["generator"])
