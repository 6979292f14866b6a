"""metric.preprocess tf vs pytorch-fid on the same images and weights: per-image feature difference, FID of
one half of sample-dogs' crops against the other, and the Inception time of each path (docs/scoring.md).

    python bench/preprocess.py [--n 256] [--rounds 3]
    python bench/preprocess.py --smoke
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Harness, bench_arguments  # noqa: E402
from kompete.config import load_config  # noqa: E402
from kompete.data import prepare_images  # noqa: E402
from kompete.metrics.features import extract_features, load_inception  # noqa: E402
from kompete.metrics.fid import frechet_distance_to, statistics  # noqa: E402
from kompete.metrics.weights import find_weights  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=256, help="images per half")
    bench_arguments(ap, rounds=3)
    args = ap.parse_args(argv)
    if args.smoke:
        args.n, args.rounds = 2, 1
    images = prepare_images(load_config("sample-dogs"), progress=False).images  # 64x64 crops
    a, b = images[:args.n], images[args.n:2 * args.n]
    source = find_weights()
    models = {prep: load_inception(source, "cpu", preprocess=prep) for prep in ("pytorch-fid", "tf")}
    feats: dict[str, np.ndarray] = {}

    def case(prep: str):
        def run() -> None:
            feats[prep] = extract_features(models[prep], a, batch_size=64)
        return run

    h = Harness("preprocess", args)
    h.compare(f"Inception features of {len(a)} images, by input path", {p: case(p) for p in models}, units=len(a),
              warmup=not args.smoke)
    for prep in models:
        feats[prep + " b"] = extract_features(models[prep], b, batch_size=64)
    p, t = feats["pytorch-fid"], feats["tf"]
    rel = np.linalg.norm(t - p, axis=1) / np.linalg.norm(p, axis=1)
    h.note("per-image feature difference, median relative L2", f"{np.median(rel) * 100:.1f} %")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n < 2048: a rank-deficient covariance, fine for a comparison
        fid = {k: frechet_distance_to(feats[k], *statistics(feats[k + " b"]))  # n < 2048: the n x n path
               for k in ("pytorch-fid", "tf")}
    h.note("FID half vs half", f"pytorch-fid {fid['pytorch-fid']:.2f}, tf {fid['tf']:.2f} "
                               f"({fid['tf'] / fid['pytorch-fid'] - 1:+.2%})")
    h.finish()


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
