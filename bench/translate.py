"""Photo -> painting translation into images.zip: kompete's writer against the usual notebook loop.

kompete: photos decoded once into a cached uint8 array, translated in batches on the device (AMP and
channels_last on CUDA), JPEGs encoded in threads while the next batch runs, written straight into the zip.
plain: the tutorials' way: one photo at a time (PIL open, to tensor, generator, back to PIL), each JPG
saved into a folder, then the folder zipped (shutil.make_archive).

Both use the same (untrained) ResNet generator; speed does not depend on the weights. The photos are
synthetic 256x256 JPGs. Prints seconds, images/s and the ratio; kompete cold includes decoding the
photos into its cache, warm reads the cache.

    python bench/translate.py [--n 7038] [--size 256] [--blocks 9] [--channels 64] [--batch 64] [--rounds 3]
    python bench/translate.py --smoke
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Harness, bench_arguments  # noqa: E402


def make_photos(folder: Path, n: int, size: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    base = np.clip(rng.normal(128, 50, (size + 64, size + 64, 3)), 0, 255).astype(np.uint8)
    for i in range(n):
        dx, dy = rng.integers(0, 64, 2)
        Image.fromarray(base[dy:dy + size, dx:dx + size]).save(folder / f"{i:05d}.jpg", quality=90)


def check_zip(path: Path, n: int, size: int) -> None:
    with zipfile.ZipFile(path) as zf:
        names = [m for m in zf.namelist() if m.endswith(".jpg")]
        assert len(names) == n, (len(names), n)
        im = Image.open(zf.open(names[-1]))
        assert im.size == (size, size) and im.mode == "RGB"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    gpu = torch.cuda.is_available()  # the CPU defaults finish in minutes; the GPU ones are the real job
    p.add_argument("--n", type=int, default=7038 if gpu else 24)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--blocks", type=int, default=9)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--batch", type=int, default=64 if gpu else 1)
    p.add_argument("--device", default=None)
    p.add_argument("--skip-plain", action="store_true", help="only time kompete (e.g. the full 7,038 on a GPU)")
    bench_arguments(p, rounds=3)
    a = p.parse_args(argv)
    if a.smoke:
        a.n, a.size, a.blocks, a.channels, a.batch, a.rounds = 4, 32, 1, 8, 2, 1
    tmp = Path(tempfile.mkdtemp(prefix="kompete-bench-translate-"))
    os.environ["KOMPETE_CACHE_DIR"] = str(tmp / "cache")
    try:
        run(a, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(a: argparse.Namespace, tmp: Path) -> None:
    from kompete.algorithms.cyclegan.task import CycleGanTask
    from kompete.config import config_from_dict
    from kompete.generate import GenerateOptions, write_zip
    from kompete.runtime.context import make_context

    data = tmp / "data"
    make_photos(data / "photo_jpg", a.n, a.size)
    (data / "monet_jpg").mkdir()
    cfg = config_from_dict({
        "name": "bench-translate", "task": "translate",
        "data": {"layout": "monet", "image_size": a.size, "load_size": a.size},
        "output": {"n_min": 1, "n_max": 2 * a.n, "format": "jpg", "image_size": a.size, "jpeg_quality": 95},
        "generate": {"n_images": a.n},  # the default (10,000) is outside this run's n_min..n_max
        "train": {"model": "cyclegan", "loss": "lsgan", "g_channels": a.channels, "d_channels": 8},
        "cyclegan": {"n_blocks": a.blocks}})
    ctx = make_context(cfg, a.device)
    task = CycleGanTask(cfg, ctx, None)
    opts = GenerateOptions(n=a.n, batch_size=a.batch, progress=False, data_dir=str(data))

    def kompete(name: str, cold: bool):
        def case() -> float:
            if cold:  # the decoded photos' cache, cleared so each round decodes again
                shutil.rmtree(tmp / "cache", ignore_errors=True)
            start = time.perf_counter()
            write_zip(task, cfg, tmp / f"{name}.zip", opts)
            seconds = time.perf_counter() - start
            check_zip(tmp / f"{name}.zip", a.n, a.size)
            return seconds
        return case

    cases = {"kompete (cold cache)": kompete("cold", True), "kompete (warm cache)": kompete("warm", False)}
    if not a.skip_plain:
        cases = {"plain loop": lambda: plain_loop(task.generator_for_inference(), ctx.device, data, tmp, a), **cases}
    h = Harness("translate", a)
    where = torch.cuda.get_device_name() if ctx.is_cuda else f"cpu ({torch.get_num_threads()} threads)"
    h.note("setting", f"translate {a.n} photos {a.size}px, ResNet-{a.blocks} ch{a.channels}, batch {a.batch} "
                      f"on {where}")
    h.compare(f"{a.n} photos translated into a zip", cases, units=a.n)
    h.finish()


def plain_loop(G, device, data: Path, tmp: Path, a: argparse.Namespace) -> float:
    """The tutorials' way: one photo at a time, each JPG saved to a folder, then the folder zipped."""
    out = tmp / "images"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    start = time.perf_counter()
    with torch.no_grad():
        for f in sorted((data / "photo_jpg").iterdir()):
            x = torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1)
            x = (x.float() / 127.5 - 1).unsqueeze(0).to(device)
            y = G(x)[0].permute(1, 2, 0).add(1).mul(127.5).clamp(0, 255).to(torch.uint8).cpu().numpy()
            Image.fromarray(y).save(out / f"{f.stem}.jpg", quality=95)
    shutil.make_archive(str(tmp / "plain"), "zip", out)
    seconds = time.perf_counter() - start
    check_zip(tmp / "plain.zip", a.n, a.size)
    return seconds


if __name__ == "__main__":
    main()
