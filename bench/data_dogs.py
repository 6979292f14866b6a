"""How fast `kompete data` prepares the dog competition, cold and from its cache.

Makes a synthetic copy of the real layout (20,579 JPGs of about 500x375 with Pascal-VOC boxes in
120 breed folders; ~1.2 boxes per image as in Stanford Dogs), then times:
  cold  - decode, crop every box, anti-aliased resize to 64, write the cache
  warm  - load the cached uint8 array
and a plain baseline: the usual notebook loop (PIL open, crop, resize, one process).

    python bench/data_dogs.py [--n 20579] [--keep DIR] [--rounds 1]
    python bench/data_dogs.py --smoke
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

from bench.harness import Harness, bench_arguments  # noqa: E402
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20579)
    ap.add_argument("--plain-n", type=int, default=2000, help="images for the single-process baseline")
    ap.add_argument("--keep", type=Path, default=None, help="reuse/keep the synthetic layout here")
    bench_arguments(ap, rounds=1)
    args = ap.parse_args(argv)
    if args.smoke:
        args.n, args.plain_n, args.rounds = 48, 24, 1
    work = Path(tempfile.mkdtemp(prefix="kompete-bench-"))
    os.environ["KOMPETE_CACHE_DIR"] = str(work / "cache")
    root = args.keep or work / "dogs"
    try:
        if not (root / "all-dogs").is_dir():
            t = time.perf_counter()
            make_layout(root, args.n)
            print(f"made {args.n} synthetic JPGs in {time.perf_counter() - t:.1f} s")
        plain_root = work / "plain"
        (plain_root / "all-dogs").mkdir(parents=True)
        shutil.copytree(root / "Annotation", plain_root / "Annotation")
        for f in sorted((root / "all-dogs").iterdir())[: args.plain_n]:
            os.link(f, plain_root / "all-dogs" / f.name)
        compare(Harness("data_dogs", args), root, plain_root, args.plain_n)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def compare(h: Harness, root: Path, plain_root: Path, plain_n: int) -> None:
    """Per image: the plain loop on the first plain_n images, kompete cold (cache cleared each round) and warm."""
    cfg = config_from_dict({"name": "bench-dogs", "task": "generate", "data": {"layout": "dogs", "image_size": 64}})
    n_img = len(list((root / "all-dogs").iterdir()))
    got: dict[str, object] = {}

    def cold() -> float:
        shutil.rmtree(os.environ["KOMPETE_CACHE_DIR"], ignore_errors=True)
        t = time.perf_counter()
        got["cold"] = prepare_images(cfg, root, progress=False)
        return time.perf_counter() - t  # the cache clearing is not the bench

    def warm() -> None:
        got["warm"] = prepare_images(cfg, root, progress=False)

    h.compare("dog crops at 64x64 (the plain loop on fewer images: ratios per image)",
              {"plain loop": lambda: got.__setitem__("plain", plain_loop(plain_root, 64)), "kompete cold": cold,
               "kompete warm cache": warm}, units={"plain loop": plain_n, "kompete cold": n_img,
                                                   "kompete warm cache": n_img})
    assert got["warm"].summary.cache_hit and np.array_equal(got["cold"].images, got["warm"].images)
    h.note("crops", f"kompete {len(got['cold'])} of {n_img} images; plain {got['plain']} of {plain_n}")
    h.note("cpus", os.cpu_count())
    h.finish()


if __name__ == "__main__":
    main()
