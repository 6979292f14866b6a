"""Writing the submission: kompete's generate_zip against the usual notebook loop, same generator, same count.

kompete:  batches generated on the device, PNGs encoded in threads straight into the zip while the next batch
          is generated; no loose files; the zip appears atomically.
plain:    the public-kernel way: each image saved as a PNG file (PIL defaults), then the folder zipped with
          shutil.make_archive (deflate), then the folder deleted.
layouts:  for a conditional model, write_zip flat against output.layout=by_class (<class>/00000.png), the
          model loaded once, only the writing timed.

The run to generate from is trained for a few steps first (weights do not change the cost).

    python bench/generate.py [--n 10000] [--competition sample-dogs] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kompete.config import load_config  # noqa: E402
from kompete.data.augment import to_uint8  # noqa: E402
from kompete.generate import GenerateOptions, generate_zip, load_run, write_zip  # noqa: E402
from kompete.algorithms.base import build_task, task_class  # noqa: E402
from kompete.runtime.context import make_context  # noqa: E402
from kompete.train.budget import make_budget  # noqa: E402
from kompete.train.trainer import Trainer  # noqa: E402


def plain(run: Path, n: int, out_dir: Path) -> tuple[float, int]:
    cfg, task, _ = load_run(run)
    G = task.generator_for_inference().eval()
    device = task.ctx.device
    folder = out_dir / "images"
    folder.mkdir(parents=True)
    start = time.perf_counter()
    n_classes = int(task.meta.get("n_classes", 1))
    with torch.no_grad():
        for first in range(0, n, 100):  # the usual 100-image loop
            b = min(100, n - first)
            z = torch.randn(b, task.z_dim, device=device)
            y = (torch.arange(first, first + b, device=device) % n_classes) if task.conditional else None
            x = G(z, y)
            x = torch.nn.functional.interpolate(x, size=cfg.output.image_size, mode="bilinear", antialias=True)
            for i, img in enumerate(to_uint8(x).permute(0, 2, 3, 1).cpu().numpy()):
                Image.fromarray(img).save(folder / f"{first + i}.png")
    shutil.make_archive(str(out_dir / "images"), "zip", folder)
    shutil.rmtree(folder)
    seconds = time.perf_counter() - start
    with zipfile.ZipFile(out_dir / "images.zip") as z:
        return seconds, len(z.namelist())


def layouts(run: Path, n: int, out_dir: Path) -> dict[str, float]:
    """Seconds write_zip takes for n images, flat and by_class, from the same loaded model."""
    seconds = {}
    for layout in ("flat", "by_class"):
        cfg, task, _ = load_run(run, overrides={"output": {"layout": layout}})
        opts = GenerateOptions(n=n, seed=cfg.generate.seed, batch_size=cfg.generate.batch_size, progress=False)
        start = time.perf_counter()
        write_zip(task, cfg, out_dir / f"{layout}.zip", opts)
        seconds[layout] = time.perf_counter() - start
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--competition", default="sample-dogs")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    cfg = load_config(args.competition, [*args.overrides, "train.sample_every_epochs=1000"])
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = task_class(cfg).load_data(cfg, progress=False)
        task = build_task(cfg, make_context(cfg), data)
        Trainer(cfg, task, tmp / "run", make_budget(cfg, 3600), progress=False, max_steps=2).run()
        t = cfg.train
        print(f"{args.competition}: model {t.model} at {cfg.data.image_size}x{cfg.data.image_size} -> "
              f"{cfg.output.image_size}x{cfg.output.image_size} {cfg.output.format}, {args.n} images, device "
              f"{task.ctx.device}")
        start = time.perf_counter()
        path = generate_zip(tmp / "run", tmp / "kompete.zip", n=args.n, progress=False)
        k_seconds = time.perf_counter() - start
        with zipfile.ZipFile(path) as z:
            k_count = len(z.namelist())
            k_size = path.stat().st_size
        (tmp / "plain").mkdir()
        p_seconds, p_count = plain(tmp / "run", args.n, tmp / "plain")
        p_size = (tmp / "plain" / "images.zip").stat().st_size
        by_layout = layouts(tmp / "run", args.n, tmp) if task.class_names else {}
    print(f"kompete generate_zip : {k_seconds:7.1f} s  {k_count} images  {k_size / 2**20:.1f} MiB")
    print(f"plain files + zip    : {p_seconds:7.1f} s  {p_count} images  {p_size / 2**20:.1f} MiB")
    print(f"ratio (plain/kompete): {p_seconds / k_seconds:7.2f}x")
    for layout, seconds in by_layout.items():
        print(f"write_zip {layout:<10} : {seconds:7.1f} s")


if __name__ == "__main__":
    main()
