"""Writing the submission: kompete's generate_zip against the usual notebook loop, same generator, same count.

kompete:  batches generated on the device, PNGs encoded in threads straight into the zip while the next batch
          is generated; no loose files; the zip appears atomically.
plain:    the public-kernel way: each image saved as a PNG file (PIL defaults), then the folder zipped with
          shutil.make_archive (deflate), then the folder deleted.
layouts:  for a conditional model, write_zip flat against output.layout=by_class (<class>/00000.png), the
          model loaded once, only the writing timed.

The run to generate from is trained for a few steps first (weights do not change the cost).

    python bench/generate.py [--n 10000] [--competition sample-dogs] [--set key=value ...] [--rounds 3]
    python bench/generate.py --smoke
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

from bench.harness import Harness, bench_arguments  # noqa: E402
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


def layout_case(run: Path, n: int, out_dir: Path, layout: str):
    """write_zip of n images with output.layout=`layout`; only the writing is timed."""
    cfg, task, _ = load_run(run, overrides={"output": {"layout": layout}})
    opts = GenerateOptions(n=n, seed=cfg.generate.seed, batch_size=cfg.generate.batch_size, progress=False)
    return lambda: write_zip(task, cfg, out_dir / f"{layout}.zip", opts)


SMOKE = ["data.image_size=16", "train.g_channels=4", "train.d_channels=4", "train.batch_size=8",
         "data.sample.n_images=32", "output.n_min=1", "generate.batch_size=8"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--competition", default="sample-dogs")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    bench_arguments(ap, rounds=3)
    args = ap.parse_args(argv)
    if args.smoke:
        args.n, args.rounds, args.overrides = 16, 1, [*SMOKE, *args.overrides]
    cfg = load_config(args.competition, [*args.overrides, "train.sample_every_epochs=1000"])
    h = Harness("generate", args)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = task_class(cfg).load_data(cfg, progress=False)
        task = build_task(cfg, make_context(cfg), data)
        Trainer(cfg, task, tmp / "run", make_budget(cfg, 3600), progress=False, max_steps=2).run()
        t = cfg.train
        h.note("setting", f"{args.competition}: model {t.model} at {cfg.data.image_size}x{cfg.data.image_size} -> "
                          f"{cfg.output.image_size}x{cfg.output.image_size} {cfg.output.format}, {args.n} images, "
                          f"device {task.ctx.device}")
        counts: dict[str, int] = {}

        def kompete() -> None:
            path = generate_zip(tmp / "run", tmp / "kompete.zip", n=args.n, progress=False)
            with zipfile.ZipFile(path) as z:
                counts["kompete"] = len(z.namelist())

        def plain_zip() -> float:
            shutil.rmtree(tmp / "plain", ignore_errors=True)
            (tmp / "plain").mkdir()
            seconds, counts["plain"] = plain(tmp / "run", args.n, tmp / "plain")
            return seconds

        h.compare(f"{args.n} images into a zip", {"plain files + zip": plain_zip, "kompete generate_zip": kompete},
                  units=args.n)
        assert counts["kompete"] == counts["plain"] == args.n, counts
        h.note("zip MiB", f"kompete {(tmp / 'kompete.zip').stat().st_size / 2**20:.1f}, plain "
                          f"{(tmp / 'plain' / 'images.zip').stat().st_size / 2**20:.1f}")
        if task.class_names:
            h.compare(f"write_zip layouts, {args.n} images, model loaded once",
                      {layout: layout_case(tmp / "run", args.n, tmp, layout) for layout in ("flat", "by_class")},
                      units=args.n)
    h.finish()


if __name__ == "__main__":
    main()
