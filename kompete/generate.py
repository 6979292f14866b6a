"""Submission images from a trained run, encoded straight into the zip (no loose files), deterministic per seed.

`WRITERS` maps `cfg.task` to a function that fills a ZipImageWriter from a Task: "generate" samples
noise; other tasks (e.g. "translate") register their own writer here.
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import click
import torch
import torch.nn.functional as F
from tqdm import tqdm

from kompete.archive import ZipImageWriter
from kompete.config import Config, config_from_dict
from kompete.errors import ConfigError
from kompete.train import build_task, make_context
from kompete.train import state as ckpt
from kompete.train.task import Task


@dataclass(frozen=True)
class GenerateOptions:
    n: int
    seed: int = 0
    truncation: float = 0.0
    batch_size: int = 500
    progress: bool = True
    data_dir: str | None = None  # translate: where the photos are (default: the config's data folders)


Writer = Callable[[Task, Config, ZipImageWriter, GenerateOptions], int]
WRITERS: dict[str, Writer] = {}


def writer(task_name: str) -> Callable[[Writer], Writer]:
    def add(fn: Writer) -> Writer:
        WRITERS[task_name] = fn
        return fn

    return add


def truncated_noise(n: int, dim: int, threshold: float, generator: torch.Generator) -> torch.Tensor:
    """N(0, 1) noise, with every value beyond +-threshold redrawn until it falls inside (0 = no truncation)."""
    z = torch.randn(n, dim, generator=generator)
    if threshold > 0:
        bad = z.abs() > threshold
        while bad.any():
            z[bad] = torch.randn(int(bad.sum()), generator=generator)
            bad = z.abs() > threshold
    return z


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 NCHW -> uint8 NCHW at size x size (anti-aliased), only when the model's size differs."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    x = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)


def _encode_copied(zw: ZipImageWriter, pending: tuple[torch.Tensor, "torch.cuda.Event | None"],
                   pool: ThreadPoolExecutor) -> None:
    host, copied = pending
    if copied is not None:
        copied.synchronize()
    zw.add_batch(host.numpy(), pool)


def _write_batches(zw: ZipImageWriter, batches: Iterator[torch.Tensor], n: int, desc: str, progress: bool) -> int:
    """Encode uint8 NCHW device batches into the zip while the device makes the next one.

    Each batch is copied to the host without blocking; a CUDA event says when the copy is readable.
    """
    bar = tqdm(total=n, desc=desc, unit="img", disable=not progress, leave=False)
    done = 0
    with ThreadPoolExecutor(max_workers=4) as pool:
        pending = None
        for images in batches:
            host = images.permute(0, 2, 3, 1).contiguous().to("cpu", non_blocking=True)
            copied = torch.cuda.Event() if images.is_cuda else None
            if copied is not None:
                copied.record()
            if pending is not None:
                _encode_copied(zw, pending, pool)
                bar.update(len(pending[0]))
            pending = (host, copied)
            done += len(images)
        if pending is not None:
            _encode_copied(zw, pending, pool)
            bar.update(len(pending[0]))
    bar.close()
    return done


@writer("generate")
def write_generated(task: Task, cfg: Config, zw: ZipImageWriter, opts: GenerateOptions) -> int:
    """opts.n images from seeded noise; conditional models cycle through the classes in order."""
    gen = torch.Generator().manual_seed(opts.seed)
    n_classes = max(1, int(task.meta.get("n_classes", 1)))

    def batches() -> Iterator[torch.Tensor]:
        for done in range(0, opts.n, opts.batch_size):
            b = min(opts.batch_size, opts.n - done)
            z = truncated_noise(b, task.z_dim, opts.truncation, gen)  # type: ignore[attr-defined]
            y = torch.arange(done, done + b) % n_classes
            yield _resize(task.generate(z, y), cfg.output.image_size)  # type: ignore[attr-defined]

    return _write_batches(zw, batches(), opts.n, "generate", opts.progress)


@writer("translate")
def write_translated(task: Task, cfg: Config, zw: ZipImageWriter, opts: GenerateOptions) -> int:
    """Every photo through the photo -> painting generator, in order; past the last photo, the photos again,
    mirrored (so up to twice as many distinct images as photos). Deterministic: no noise involved."""
    from kompete.data.augment import to_float, to_uint8
    from kompete.train.context import eval_mode

    photos = _photos(task, cfg, opts.data_dir)  # uint8 NCHW, on the task's device when it trains on them
    n_photos = len(photos)
    if opts.n > 2 * n_photos:
        raise ConfigError(f"{opts.n} translations asked for, but {n_photos} photos give at most {2 * n_photos} "
                          "(each photo and its mirror image)")
    ctx = task.ctx
    G = task.generator_for_inference()

    def batches() -> Iterator[torch.Tensor]:
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
            yield _resize(to_uint8(y.float()), cfg.output.image_size)

    with eval_mode(G), torch.no_grad():
        return _write_batches(zw, batches(), opts.n, "translate", opts.progress)


def _photos(task: Task, cfg: Config, data_dir: str | None) -> torch.Tensor:
    """The photos to translate as uint8 NCHW: the training task's own copy, else read (cached) from disk."""
    held = getattr(task, "photos", None)
    if held is not None:
        return held
    from kompete.data import resolve_data_dir
    from kompete.data.monet import load_domain

    photos = load_domain(cfg, resolve_data_dir(cfg, data_dir) / cfg.data.source_dir, progress=False)
    return torch.from_numpy(photos.images).permute(0, 3, 1, 2)


def load_run(where: str | Path, device: str | None = None, overrides: dict | None = None) -> tuple[Config, Task, Path]:
    """Config and Task (weights loaded, no training data) from a run folder or checkpoint file."""
    path, payload = ckpt.load_newest(where, lambda m: click.echo(m, err=True))  # a damaged newest: the one before
    raw = payload["config"]
    for section, values in (overrides or {}).items():
        raw[section] = {**(raw.get(section) or {}), **values}
    cfg = config_from_dict(raw, origin=str(path))
    ctx = make_context(cfg, device)
    task = build_task(cfg, ctx, None, payload.get("meta"))
    load = getattr(task, "load_weights", task.load_state_dict)
    load(payload["task"])
    return cfg, task, path


def write_zip(task: Task, cfg: Config, out: str | Path, opts: GenerateOptions) -> Path:
    """Fill `out` (atomically) with opts.n images by the writer registered for cfg.task."""
    if cfg.task not in WRITERS:
        raise ConfigError(f"no image writer for task {cfg.task!r}; known: {', '.join(sorted(WRITERS))}")
    if not cfg.output.n_min <= opts.n <= cfg.output.n_max:
        raise ConfigError(f"{opts.n} images is outside what {cfg.name} accepts "
                          f"({cfg.output.n_min}-{cfg.output.n_max})")
    with ZipImageWriter(out, cfg.output.format, cfg.output.jpeg_quality) as zw:
        count = WRITERS[cfg.task](task, cfg, zw, opts)
        if count != opts.n or zw.count != opts.n:
            raise ConfigError(f"the {cfg.task} writer produced {zw.count} images, expected {opts.n}")
    return Path(out)


def generate_zip(where: str | Path, out: str | Path | None = None, n: int | None = None, seed: int | None = None,
                 truncation: float | None = None, device: str | None = None, progress: bool = True,
                 data_dir: str | None = None) -> Path:
    """images.zip from the newest checkpoint in `where` (run folder or file). Defaults from the run's config;
    `out` defaults to <run folder>/<output.archive>."""
    cfg, task, path = load_run(where, device)
    if out is None:
        out = path.parent.parent / cfg.output.archive
    g = cfg.generate
    opts = GenerateOptions(n=g.n_images if n is None else n, seed=g.seed if seed is None else seed,
                           truncation=g.truncation if truncation is None else truncation,
                           batch_size=g.batch_size, progress=progress, data_dir=data_dir)
    return write_zip(task, cfg, out, opts)


def estimate_seconds(task: Task, cfg: Config, probe: int = 256) -> float:
    """Seconds the configured generation will take, measured on a probe into a throwaway zip.

    A small untimed warm-up first (first calls pay for allocation, cudnn autotuning, thread start-up).
    """
    if cfg.task not in WRITERS:
        return 0.0
    n = cfg.generate.n_images
    probe = min(n, probe)
    with tempfile.TemporaryDirectory() as tmp:
        times = []
        for size in (min(probe, 16), probe):
            opts = GenerateOptions(n=size, seed=cfg.generate.seed, truncation=cfg.generate.truncation,
                                   batch_size=min(cfg.generate.batch_size, size), progress=False)
            start = time.perf_counter()
            with ZipImageWriter(Path(tmp) / "probe.zip", cfg.output.format, cfg.output.jpeg_quality) as zw:
                WRITERS[cfg.task](task, cfg, zw, opts)
            times.append(time.perf_counter() - start)
    return times[-1] * n / probe
