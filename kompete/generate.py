"""Submission images from a trained run, encoded straight into the zip (no loose files), deterministic per seed.

The images come from the Task's own writer (`Task.image_batches`: noise for the gan algorithm, the photos
for translation); this module only resizes them to the competition's size and encodes them while the
device makes the next batch, each in its class folder when `output.layout` is by_class.
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, Sequence

import click
import torch
import torch.nn.functional as F
from tqdm import tqdm

from kompete.algorithms.base import GenerateOptions, Task, build_task, resolve_class_counts
from kompete.archive import ZipImageWriter
from kompete.config import Config, config_from_dict
from kompete.errors import ConfigError
from kompete.train import state as ckpt
from kompete.runtime.context import make_context

__all__ = ["GenerateOptions", "class_folders", "estimate_seconds", "generate_batches", "generate_zip", "load_run",
           "write_zip"]


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 NCHW -> uint8 NCHW at size x size (anti-aliased), only when the model's size differs."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    x = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)


def _encode_copied(zw: ZipImageWriter, pending: tuple[torch.Tensor, "torch.cuda.Event | None", int],
                   pool: ThreadPoolExecutor, folders: Sequence[str] | None) -> None:
    host, copied, first = pending
    if copied is not None:
        copied.synchronize()
    zw.add_batch(host.numpy(), pool, None if folders is None else folders[first:first + len(host)])


def _write_batches(zw: ZipImageWriter, batches: Iterator[torch.Tensor], n: int, desc: str, progress: bool,
                   folders: Sequence[str] | None = None) -> int:
    """Encode uint8 NCHW device batches into the zip while the device makes the next one; image i goes
    into `folders[i]` when given.

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
                _encode_copied(zw, pending, pool, folders)
                bar.update(len(pending[0]))
            pending = (host, copied, done)
            done += len(images)
        if pending is not None:
            _encode_copied(zw, pending, pool, folders)
            bar.update(len(pending[0]))
    bar.close()
    return done


def generate_batches(task: Task, cfg: Config, opts: GenerateOptions) -> Iterator[torch.Tensor]:
    """The Task's images at the competition's size: uint8 NCHW device batches, exactly what the zip gets."""
    size = cfg.output.image_size
    return (_resize(b, size) for b in task.image_batches(opts))


def class_folders(task: Task, cfg: Config, opts: GenerateOptions) -> list[str] | None:
    """The class folder of each image when `output.layout` is by_class (None when flat)."""
    if cfg.output.layout != "by_class":
        return None
    names, labels = task.class_names, task.image_labels(opts)
    if names is None or labels is None:
        raise ConfigError(f"{cfg.name}: 'output.layout' is by_class, but {cfg.train.model} takes no class labels",
                          hint="train a class-conditional (`_cond`) model, or set output.layout=flat")
    return [names[i] for i in labels.tolist()]


def fill_zip(task: Task, cfg: Config, zw: ZipImageWriter, opts: GenerateOptions) -> int:
    """The Task's images, at the competition's size, into an open zip writer; returns the count."""
    folders = class_folders(task, cfg, opts)
    return _write_batches(zw, generate_batches(task, cfg, opts), opts.n, cfg.spec.task, opts.progress, folders)


def load_run(where: str | Path, device: str | None = None, overrides: dict | None = None,
             which: str = "auto") -> tuple[Config, Task, Path]:
    """Config and Task (weights loaded, no training data) from a run folder or checkpoint file.

    `which`: best, last, or auto (best.pt when the run kept one, else the newest); a damaged newest
    checkpoint falls back to the one before, with a warning."""
    path, payload = ckpt.load_chosen(where, which, lambda m: click.echo(m, err=True))
    raw = payload["config"]
    for section, values in (overrides or {}).items():
        raw[section] = {**(raw.get(section) or {}), **values}
    cfg = config_from_dict(raw, origin=str(path))
    ctx = make_context(cfg, device)
    task = build_task(cfg, ctx, None, payload.get("meta"))
    task.load_weights(payload["task"])
    return cfg, task, path


def write_zip(task: Task, cfg: Config, out: str | Path, opts: GenerateOptions) -> Path:
    """Fill `out` (atomically) with opts.n images from the Task's writer."""
    if not cfg.output.n_min <= opts.n <= cfg.output.n_max:
        raise ConfigError(f"{opts.n} images is outside what {cfg.name} accepts "
                          f"({cfg.output.n_min}-{cfg.output.n_max})")
    with ZipImageWriter(out, cfg.output.format, cfg.output.jpeg_quality) as zw:
        count = fill_zip(task, cfg, zw, opts)
        if count != opts.n or zw.count != opts.n:
            raise ConfigError(f"the {cfg.spec.name} writer produced {zw.count} images, expected {opts.n}")
    return Path(out)


def generate_zip(where: str | Path, out: str | Path | None = None, n: int | None = None, seed: int | None = None,
                 truncation: float | None = None, device: str | None = None, progress: bool = True,
                 data_dir: str | None = None, which: str = "auto",
                 on_checkpoint: Callable[[Path], None] | None = None, fit_runtime: bool = False) -> Path:
    """images.zip from a run folder (its best checkpoint when it kept one, else the newest: `which`) or a
    checkpoint file. Defaults from the run's config; `out` defaults to <run folder>/<output.archive>.
    `on_checkpoint(path)` hears which checkpoint was loaded. `fit_runtime` (a kernel): fewer images when the
    configured count would not fit the runtime limit left (`fit_count`), never fewer than the competition takes."""
    cfg, task, path = load_run(where, device, which=which)
    if on_checkpoint is not None:
        on_checkpoint(path)
    if out is None:
        out = path.parent.parent / cfg.output.archive
    g = cfg.generate
    counts: tuple[int, ...] = ()
    if g.class_counts:
        if n is not None and n != g.n_images:
            raise ConfigError(f"--n {n}: the run's 'generate.class_counts' add up to {g.n_images} images",
                              hint="leave out --n, or generate from a config with other class counts")
        counts = resolve_class_counts(g.class_counts, task.class_names or [])
    if fit_runtime and not counts:
        n = fit_count(task, cfg, g.n_images if n is None else n)
    opts = GenerateOptions(n=g.n_images if n is None else n, seed=g.seed if seed is None else seed,
                           truncation=g.truncation if truncation is None else truncation,
                           batch_size=g.batch_size, progress=progress, data_dir=data_dir, class_counts=counts)
    return write_zip(task, cfg, out, opts)


FIT_MARGIN_S = 30.0  # kept after generation for validation and the kernel's summary
FIT_SLACK = 1.25  # the estimate is a probe: allow this much more


def fit_count(task: Task, cfg: Config, n: int, echo: Callable[[str], None] | None = None) -> int:
    """How many of `n` images fit the time left before the runtime limit (KOMPETE_KERNEL_START), at least
    `output.n_min`: a zip Kaggle takes, stopped before the hard limit, even from a late start."""
    from kompete.train.budget import make_budget

    say = echo or (lambda line: click.echo(line, err=True))
    left = make_budget(cfg).left() - FIT_MARGIN_S
    if left > 3600:  # hours left: no probe needed
        return n
    seconds = estimate_seconds(task, cfg) * n / cfg.generate.n_images
    if FIT_SLACK * seconds <= left:
        return n
    fitted = max(cfg.output.n_min, min(n, int(n * max(left, 0.0) / (FIT_SLACK * seconds))))
    say(f"generating {fitted} of {n} images: {n} take ~{seconds:.0f} s and {max(left, 0):.0f} s are left before "
        f"the runtime limit" + (" (the competition's minimum; it may run past the limit)" if fitted == cfg.output.n_min
                                and FIT_SLACK * seconds * fitted / n > left else ""))
    return fitted


def estimate_seconds(task: Task, cfg: Config, probe: int = 256, repeats: int = 2) -> float:
    """Seconds the configured generation will take, measured on a probe into a throwaway zip.

    A small untimed warm-up first (first calls pay for allocation, cudnn autotuning, thread start-up), then
    the fastest of `repeats` probes: a neighbour's burst of load only ever slows a probe down, so the
    minimum is the machine's speed (the budget's 25 % slack and safety margin cover the rest).
    """
    n = cfg.generate.n_images
    probe = min(n, probe)
    with tempfile.TemporaryDirectory() as tmp:
        times = []
        for size in (min(probe, 16), *[probe] * repeats):
            opts = GenerateOptions(n=size, seed=cfg.generate.seed, truncation=cfg.generate.truncation,
                                   batch_size=min(cfg.generate.batch_size, size), progress=False)
            start = time.perf_counter()
            with ZipImageWriter(Path(tmp) / "probe.zip", cfg.output.format, cfg.output.jpeg_quality) as zw:
                fill_zip(task, cfg, zw, opts)
            times.append(time.perf_counter() - start)
    return min(times[1:]) * n / probe
