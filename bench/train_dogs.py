"""Training throughput: kompete's Trainer against the usual Kaggle-notebook loop, same model and batch.

kompete:  data held on the device as uint8, flipped there; AMP (bf16, or fp16 + scaler) and channels_last
          on CUDA; losses read back only every `log_every` steps.
plain:    a torch DataLoader over the same uint8 array (per-item float conversion and flip in workers),
          fp32, NCHW, `.item()` on the losses every step - the way most public dog kernels trained.

Both run the same G/D (built by the same registered builder), loss, optimiser settings and batch size.
Images/s counts real images D sees (batch x d_steps). Default: the generative-dog-images recipe at 64x64 on a
GPU; on a CPU-only box a smaller setting (CPU_SETTINGS: 32x32, width 16, batch 32) so the run finishes in a
minute or two. A second table times the step alone: kompete's GanTask.step against the plain loop's body on
the same networks and device batches (no data loading, no logging), the generator run once per step in both.

    python bench/train_dogs.py [--steps 200] [--warmup 20] [--rounds 3] [--set train.model=dcgan_cond ...]
    python bench/train_dogs.py --smoke
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Harness, bench_arguments  # noqa: E402
from kompete.config import load_config  # noqa: E402
from kompete import losses  # noqa: E402
from kompete.models import GAN_NETWORKS  # noqa: E402
from kompete.algorithms.base import build_task, task_class  # noqa: E402
from kompete.runtime.context import make_context  # noqa: E402
from kompete.train.budget import make_budget  # noqa: E402
from kompete.train.trainer import Trainer  # noqa: E402

RECIPE = "generative-dog-images"
CPU_SETTINGS = ["data.image_size=32", "train.g_channels=16", "train.d_channels=16", "train.batch_size=32",
                "gan.self_attention=false"]
SMOKE_SETTINGS = ["data.image_size=16", "train.g_channels=4", "train.d_channels=4", "train.batch_size=8",
                  "gan.self_attention=false"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_kompete(cfg, data, steps: int, warmup: int, run_dir: Path) -> tuple[float, float]:
    """(seconds of the timed steps, peak GPU GiB) of kompete's Trainer."""
    ctx = make_context(cfg)
    task = build_task(cfg, ctx, data)
    marks: dict[int, float] = {}

    def mark(trainer: Trainer) -> None:
        if trainer.task.step_count in (warmup, warmup + steps):
            sync(ctx.device)
            marks[trainer.task.step_count] = time.perf_counter()

    if ctx.is_cuda:
        torch.cuda.reset_peak_memory_stats(ctx.device)
    Trainer(cfg, task, run_dir, make_budget(cfg, 3600), progress=False, on_step=mark,
            max_steps=warmup + steps).run()
    seconds = marks[warmup + steps] - marks[warmup]
    peak = torch.cuda.max_memory_allocated(ctx.device) / 2**30 if ctx.is_cuda else 0.0
    return seconds, peak


class UInt8Dataset(torch.utils.data.Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        x = torch.from_numpy(self.images[i]).permute(2, 0, 1).float().div(127.5).sub(1)
        if np.random.rand() < 0.5:
            x = x.flip(2)
        return x, int(self.labels[i])


def bench_plain(cfg, data, steps: int, warmup: int, workers: int) -> tuple[float, float]:
    """(seconds of the timed steps, peak GPU GiB) of the notebook loop."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    t = cfg.train
    torch.manual_seed(t.seed)
    built = GAN_NETWORKS.get(t.model)(cfg, max(1, len(data.classes)))
    G, D = built.generator.to(device), built.discriminator.to(device)
    loss = losses.build(t.loss, cfg.loss)
    opt_g = torch.optim.Adam(G.parameters(), t.lr_g, betas=(t.beta1, t.beta2))
    opt_d = torch.optim.Adam(D.parameters(), t.lr_d, betas=(t.beta1, t.beta2))
    loader = torch.utils.data.DataLoader(UInt8Dataset(data.images, data.labels), batch_size=t.batch_size,
                                         shuffle=True, drop_last=True, num_workers=workers,
                                         persistent_workers=workers > 0)
    cond = built.conditional
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step, start, history = 0, 0.0, []
    while step < warmup + steps:
        for x, y in loader:
            if step == warmup:
                sync(device)
                start = time.perf_counter()
            if step == warmup + steps:
                break
            x, y = x.to(device), y.to(device)
            yc = y if cond else None
            z = torch.randn(x.shape[0], built.z_dim, device=device)
            d_loss, g_loss = plain_update(G, D, opt_g, opt_d, loss, x, yc, z)
            history.append((d_loss.item(), g_loss.item()))  # the usual per-step logging
            step += 1
    sync(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    return seconds, peak


def plain_update(G, D, opt_g, opt_d, loss, x, yc, z):
    """The textbook GAN update: one G forward, a D step on it (detached), then a G step through D."""
    fake = G(z, yc)
    d_loss = loss.d(D(x, yc), D(fake.detach(), yc))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_real = D(x, yc).detach() if loss.needs_real_for_g else None
    g_loss = loss.g(g_real, D(fake, yc))
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return d_loss, g_loss


def plain_step_fn(task, loss):
    """The plain loop's step body on kompete's own networks and batches: one G forward, fp32, `.item()` each step."""
    G, D = task.G, task.D
    opt_g = torch.optim.Adam(G.parameters(), task.cfg.train.lr_g, betas=(task.cfg.train.beta1, task.cfg.train.beta2))
    opt_d = torch.optim.Adam(D.parameters(), task.cfg.train.lr_d, betas=(task.cfg.train.beta1, task.cfg.train.beta2))

    def step() -> None:
        x, y = task.next_batch()
        yc = y if task.conditional else None
        d_loss, g_loss = plain_update(G, D, opt_g, opt_d, loss, x, yc,
                                      torch.randn(x.shape[0], task.z_dim, device=x.device))
        d_loss.item(), g_loss.item()
    return step


def step_cases(cfg, data, steps: int) -> dict:
    """The step alone, kompete's against the plain body, on the same networks (a copy each) and device batches."""
    def kompete() -> float:
        task = build_task(cfg, make_context(cfg), data)
        task.step(task.next_batch())  # warm-up
        sync(task.ctx.device)
        start = time.perf_counter()
        for _ in range(steps):
            losses = task.step(task.next_batch())
        float(losses["g"])
        sync(task.ctx.device)
        return time.perf_counter() - start

    def plain() -> float:
        task = build_task(cfg, make_context(cfg), data)
        step = plain_step_fn(task, losses.build(cfg.train.loss, cfg.loss))
        step()
        sync(task.ctx.device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync(task.ctx.device)
        return time.perf_counter() - start

    return {"plain step body": plain, "kompete GanTask.step": kompete}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 200 on GPU, 40 on CPU)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 20 GPU, 5 CPU)")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the plain loop")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    bench_arguments(ap, rounds=3)
    args = ap.parse_args(argv)
    gpu = torch.cuda.is_available()
    size = ([] if gpu else CPU_SETTINGS) + (SMOKE_SETTINGS if args.smoke else [])
    overrides = size + ["train.log_every=50", "train.sample_every_epochs=1000",
                        f"data.sample.n_images={64 if args.smoke else 2048}", *args.overrides]
    cfg = load_config("sample-dogs", [*recipe_settings(), "data.image_size=64", *overrides])
    steps = args.steps or (3 if args.smoke else 200 if gpu else 40)
    warmup = args.warmup or (1 if args.smoke else 20 if gpu else 5)
    if args.smoke:
        args.rounds, args.workers = 1, 0
    data = task_class(cfg).load_data(cfg, progress=False)
    t = cfg.train
    h = Harness("train_dogs", args)
    h.note("setting", f"model {t.model}, loss {t.loss}, {cfg.data.image_size}x{cfg.data.image_size}, batch "
                      f"{t.batch_size}, G/D width {t.g_channels}/{t.d_channels}, {len(data.images)} images, {steps} "
                      f"timed steps after {warmup}")
    peaks: dict[str, float] = {}

    def run(name: str, fn, *extra) -> float:
        seconds, peaks[name] = fn(cfg, data, steps, warmup, *extra)
        return seconds

    runs = Path(tempfile.mkdtemp(prefix="kompete-bench-train-"))  # a fresh run folder per round: no resume
    rounds = iter(range(1000))
    h.compare("training loop, images/s of real images D sees", {
        "plain fp32 loop": lambda: run("plain", bench_plain, args.workers),
        "kompete Trainer": lambda: run("kompete", bench_kompete, runs / str(next(rounds)))},
        units=steps * t.batch_size * t.d_steps)
    h.compare("the step alone, same networks and batches (no data loading, no logging)", step_cases(cfg, data, steps),
              units=steps * t.batch_size * t.d_steps)
    h.note("peak GPU memory GiB (last round)", {k: round(v, 2) for k, v in peaks.items()})
    h.finish()
    shutil.rmtree(runs, ignore_errors=True)


def recipe_settings() -> list[str]:
    """The dog recipe's model and optimiser as overrides, to run on the offline sample images."""
    recipe = load_config(RECIPE)
    keys = [f"train.{k}={v}" for k, v in recipe.train.__dict__.items()
            if k in ("model", "loss", "batch_size", "lr_g", "lr_d", "beta1", "beta2", "g_channels", "d_channels")]
    return keys + [f"gan.{k}={v}" for k, v in recipe.algo.__dict__.items()
                   if k in ("z_dim", "self_attention", "pixel_norm", "minibatch_std", "ema_decay")]


if __name__ == "__main__":
    main()
