"""How fast `kompete data` prepares the dog competition, cold and from its cache.

Makes a synthetic copy of the real layout (20,579 JPGs of about 500x375 with Pascal-VOC boxes in
120 breed folders; ~1.2 boxes per image as in Stanford Dogs), then times:
  cold  - decode, crop every box, anti-aliased resize to 64, write the cache
  warm  - load the cached uint8 array
and a plain baseline: the usual notebook loop (PIL open, crop, resize, one process).

    python bench/data_dogs.py [--n 20579] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kompete.config import config_from_dict  # noqa: E402
from kompete.data import prepare_images  # noqa: E402
from kompete.data.dogs import read_boxes  # noqa: E402


def make_layout(root: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    (root / "all-dogs").mkdir(parents=True)
    breeds = [f"n{2085620 + k:08d}-breed_{k}" for k in range(120)]
    for b in breeds:
        (root / "Annotation" / b).mkdir(parents=True)
    # a few textures re-used with random shifts: realistic JPEG sizes without spending minutes on noise
    textures = [np.clip(rng.normal(128, 60, (375 + 64, 500 + 64, 3)), 0, 255).astype(np.uint8) for _ in range(4)]
    for i in range(n):
        breed = breeds[i % 120]
        w, h = int(rng.integers(400, 500)), int(rng.integers(300, 375))
        dx, dy = rng.integers(0, 64, 2)
        arr = textures[i % 4][dy:dy + h, dx:dx + w]
        stem = f"{breed.split('-')[0]}_{i}"
        Image.fromarray(arr).save(root / "all-dogs" / f"{stem}.jpg", quality=90)
        boxes = []
        for _ in range(2 if rng.random() < 0.2 else 1):
            bw, bh = int(rng.integers(80, w)), int(rng.integers(80, h))
            x, y = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
            boxes.append(f"<object><name>d</name><bndbox><xmin>{x}</xmin><ymin>{y}</ymin><xmax>{x + bw}</xmax>"
                         f"<ymax>{y + bh}</ymax></bndbox></object>")
        (root / "Annotation" / breed / stem).write_text(f"<annotation>{''.join(boxes)}</annotation>")


def plain_loop(root: Path, size: int) -> int:
    """What a typical public kernel does: one process, full decode, crop, resize."""
    crops = []
    breeds = {p.name.split("-")[0]: p for p in (root / "Annotation").iterdir()}
    for f in sorted((root / "all-dogs").iterdir()):
        img = Image.open(f).convert("RGB")
        for box in read_boxes(breeds[f.stem.split("_")[0]] / f.stem):
            crops.append(np.asarray(img.crop(tuple(map(int, box))).resize((size, size), Image.LANCZOS)))
    return len(crops)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20579)
    ap.add_argument("--plain-n", type=int, default=2000, help="images for the single-process baseline")
    ap.add_argument("--keep", type=Path, default=None, help="reuse/keep the synthetic layout here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kompete-bench-"))
    os.environ["KOMPETE_CACHE_DIR"] = str(work / "cache")
    root = args.keep or work / "dogs"
    try:
        if not (root / "all-dogs").is_dir():
            t = time.perf_counter()
            make_layout(root, args.n)
            print(f"made {args.n} synthetic JPGs in {time.perf_counter() - t:.1f} s")
        cfg = config_from_dict({"name": "bench-dogs", "task": "generate", "data": {"layout": "dogs", "image_size": 64}})
        t = time.perf_counter()
        cold = prepare_images(cfg, root, progress=False)
        cold_s = time.perf_counter() - t
        t = time.perf_counter()
        warm = prepare_images(cfg, root, progress=False)
        warm_s = time.perf_counter() - t
        assert warm.summary.cache_hit and np.array_equal(cold.images, warm.images)
        plain_root = work / "plain"
        (plain_root / "all-dogs").mkdir(parents=True)
        shutil.copytree(root / "Annotation", plain_root / "Annotation")
        for f in sorted((root / "all-dogs").iterdir())[: args.plain_n]:
            os.link(f, plain_root / "all-dogs" / f.name)
        t = time.perf_counter()
        plain_crops = plain_loop(plain_root, 64)
        plain_s = time.perf_counter() - t
        n_img = len(list((root / "all-dogs").iterdir()))
        print(f"cpus                {os.cpu_count()}")
        print(f"kompete cold        {cold_s:7.2f} s  {n_img / cold_s:8.0f} images/s  ({len(cold)} crops)")
        print(f"kompete warm cache  {warm_s:7.2f} s  {n_img / warm_s:8.0f} images/s")
        print(f"plain loop          {plain_s:7.2f} s  {args.plain_n / plain_s:8.0f} images/s  ({plain_crops} crops of {args.plain_n} images)")
        print(f"warm vs cold        {cold_s / warm_s:7.1f}x faster")
        print(f"cold vs plain loop  {(n_img / cold_s) / (args.plain_n / plain_s):7.2f}x the images/s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
