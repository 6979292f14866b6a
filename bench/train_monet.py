"""Translation training throughput: kompete's CycleGAN, CUT and FastCUT steps side by side, and CycleGAN
against the usual notebook loop with the same networks.

kompete: both domains on the device as uint8, augmented there; generators run once per input kind
(batches concatenated); AMP (bf16, or fp16 with a scaler) and channels_last on CUDA; a tensor image pool.
plain: a CPU DataLoader with torchvision transforms, fp32, one forward per image kind, and the reference
implementation's list-based image pool (as in most Kaggle notebooks and pytorch-CycleGAN-and-pix2pix).

Same networks, same batch size, same number of timed steps after warm-up. Prints images/s (a photo and a
painting count as two), the ratios, and peak GPU memory. CUT and FastCUT train one generator and one
PatchGAN (CycleGAN: two of each), so in the same 5 hours they make more steps.

    python bench/train_monet.py [--size 256] [--batch 1] [--steps 30] [--blocks 9] [--channels 64] [--rounds 3]
    python bench/train_monet.py --smoke
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Harness, bench_arguments  # noqa: E402
from kompete.algorithms.base import build_task  # noqa: E402
from kompete.config import config_from_dict  # noqa: E402
from kompete.data.images import DomainPair, ImageSet  # noqa: E402
from kompete.models.cyclegan import CycleGan  # noqa: E402
from kompete.runtime.context import make_context  # noqa: E402

MODELS = ("cyclegan", "cut", "fastcut")


def make_config(a: argparse.Namespace, model: str = "cyclegan"):
    section = "cyclegan" if model == "cyclegan" else "cut"
    return config_from_dict({
        "name": "bench-monet", "task": "translate",
        "data": {"layout": "monet", "image_size": a.size, "load_size": int(a.size * 286 / 256)},
        "train": {"model": model, "loss": "lsgan", "batch_size": a.batch, "g_channels": a.channels,
                  "d_channels": a.channels, "seed": 0},
        section: {"n_blocks": a.blocks}})


def make_domains(a: argparse.Namespace) -> DomainPair:
    rng = np.random.default_rng(0)
    photos = rng.integers(0, 256, (a.photos, a.size, a.size, 3), dtype=np.uint8)
    monets = rng.integers(0, 256, (a.monets, a.size, a.size, 3), dtype=np.uint8)
    return DomainPair(ImageSet(photos, np.zeros(len(photos), np.int64), []),
                      ImageSet(monets, np.zeros(len(monets), np.int64), []))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_kompete(cfg, pair: DomainPair, a: argparse.Namespace) -> tuple[float, float]:
    ctx = make_context(cfg, a.device)
    task = build_task(cfg, ctx, pair)
    for _ in range(a.warmup):
        task.step(task.next_batch())
    sync(ctx.device)
    if ctx.is_cuda:
        torch.cuda.reset_peak_memory_stats(ctx.device)
    start = time.perf_counter()
    for _ in range(a.steps):
        losses = task.step(task.next_batch())
    float(losses["g"])  # one host sync at the end, as the Trainer's log rows do
    sync(ctx.device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(ctx.device) / 2**30 if ctx.is_cuda else 0.0
    return 2 * a.batch * a.steps / seconds, peak


class ListPool:
    """The reference implementation's pool: a Python list, one image at a time."""

    def __init__(self, size: int):
        self.size, self.images = size, []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.uniform(0, 1) > 0.5:
                k = random.randint(0, self.size - 1)
                out.append(self.images[k].clone())
                self.images[k] = image
            else:
                out.append(image)
        return torch.cat(out, 0)


class Unpaired(torch.utils.data.Dataset):
    def __init__(self, photos: np.ndarray, monets: np.ndarray, size: int, load: int):
        import torchvision.transforms as T

        self.photos, self.monets = photos, monets
        self.tf = T.Compose([T.ToPILImage(), T.Resize(load), T.RandomCrop(size), T.RandomHorizontalFlip(),
                             T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)])

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, i: int):
        return self.tf(self.photos[i]), self.tf(self.monets[random.randrange(len(self.monets))])


def bench_plain(cfg, pair: DomainPair, a: argparse.Namespace) -> tuple[float, float]:
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)
    nets = CycleGan.from_config(cfg).to(device)
    G, Fg, DY, DX = nets.to_monet, nets.to_photo, nets.d_monet, nets.d_photo
    opt_g = torch.optim.Adam([*G.parameters(), *Fg.parameters()], lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([*DY.parameters(), *DX.parameters()], lr=2e-4, betas=(0.5, 0.999))
    pool_y, pool_x = ListPool(50), ListPool(50)
    mse = torch.nn.MSELoss()
    loader = torch.utils.data.DataLoader(Unpaired(pair.source.images, pair.target.images, a.size,
                                                  cfg.data.load_size),
                                         batch_size=a.batch, shuffle=True, num_workers=a.workers, drop_last=True,
                                         persistent_workers=a.workers > 0)

    def batches():
        while True:
            yield from loader

    it = batches()

    def step():
        x, y = next(it)
        x, y = x.to(device), y.to(device)
        for p in [*DY.parameters(), *DX.parameters()]:
            p.requires_grad_(False)
        fake_y, fake_x = G(x), Fg(y)
        rec_x, rec_y = Fg(fake_y), G(fake_x)
        idt_y, idt_x = G(y), Fg(x)
        py, px = DY(fake_y), DX(fake_x)
        loss_g = (mse(py, torch.ones_like(py)) + mse(px, torch.ones_like(px))
                  + 10 * (F.l1_loss(rec_x, x) + F.l1_loss(rec_y, y)) + 5 * (F.l1_loss(idt_y, y) + F.l1_loss(idt_x, x)))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        for p in [*DY.parameters(), *DX.parameters()]:
            p.requires_grad_(True)
        loss_d = 0.0
        for D, real, fake in ((DY, y, pool_y.query(fake_y)), (DX, x, pool_x.query(fake_x))):
            pr, pf = D(real), D(fake.detach())
            loss_d = loss_d + 0.5 * (mse(pr, torch.ones_like(pr)) + mse(pf, torch.zeros_like(pf)))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        return loss_g.item()  # what notebooks print every step

    for _ in range(a.warmup):
        step()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    sync(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    return 2 * a.batch * a.steps / seconds, peak


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    gpu = torch.cuda.is_available()  # the CPU defaults finish in minutes; the GPU ones are the real job
    p.add_argument("--size", type=int, default=256 if gpu else 128)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=30 if gpu else 10)
    p.add_argument("--warmup", type=int, default=5 if gpu else 2)
    p.add_argument("--blocks", type=int, default=9)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--photos", type=int, default=256)
    p.add_argument("--monets", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default=None)
    p.add_argument("--models", default=",".join(MODELS), help="kompete models to time, comma-separated")
    bench_arguments(p, rounds=3)
    a = p.parse_args(argv)
    if a.smoke:
        a.size, a.steps, a.warmup, a.blocks, a.channels, a.photos, a.monets, a.workers, a.rounds = \
            32, 1, 1, 6, 4, 4, 4, 0, 1  # CUT takes its NCE features from residual blocks 1 and 5
    pair = make_domains(a)
    peaks: dict[str, float] = {}

    def case(name: str, fn, cfg):
        def run() -> float:
            torch.manual_seed(0)
            rate, peaks[name] = fn(cfg, pair, a)
            return 2 * a.batch * a.steps / rate  # the timed steps' seconds, warm-up excluded
        return run

    cases = {"plain fp32 CycleGAN loop": case("plain", bench_plain, make_config(a))}
    cases.update({f"kompete {m}": case(m, bench_kompete, make_config(a, m)) for m in a.models.split(",")})
    h = Harness("train_monet", a)
    where = torch.cuda.get_device_name() if torch.cuda.is_available() and a.device != "cpu" else "cpu"
    h.note("setting", f"{a.size}px, ResNet-{a.blocks} ch{a.channels}, batch {a.batch}, {a.steps} timed steps "
                      f"after {a.warmup} on {where}")
    h.compare("translation training, images/s (a photo and a painting count as two)", cases,
              units=2 * a.batch * a.steps)
    h.note("peak GPU memory GiB (last round)", {k: round(v, 2) for k, v in peaks.items()})
    h.finish()


if __name__ == "__main__":
    main()
