"""metric.preprocess tf vs pytorch-fid on the same images and weights: per-image feature difference, FID of
one half of sample-dogs' crops against the other, and the Inception time of each path (docs/scoring.md).

    python bench/preprocess.py [--n 256]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kompete.config import load_config  # noqa: E402
from kompete.data import prepare_images  # noqa: E402
from kompete.metrics.features import extract_features, load_inception  # noqa: E402
from kompete.metrics.fid import frechet_distance, statistics  # noqa: E402
from kompete.metrics.weights import find_weights  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256, help="images per half")
    args = ap.parse_args()
    images = prepare_images(load_config("sample-dogs"), progress=False).images  # 64x64 crops
    a, b = images[:args.n], images[args.n:2 * args.n]
    source = find_weights()
    feats, seconds = {}, {}
    for prep in ("pytorch-fid", "tf"):
        model = load_inception(source, "cpu", preprocess=prep)
        extract_features(model, a[:8], batch_size=8)  # warm-up
        t = time.perf_counter()
        feats[prep] = extract_features(model, a, batch_size=64)
        seconds[prep] = time.perf_counter() - t
        feats[prep + " b"] = extract_features(model, b, batch_size=64)
        print(f"{prep:12s} {len(a)} images {seconds[prep]:6.1f} s")
    p, t = feats["pytorch-fid"], feats["tf"]
    rel = np.linalg.norm(t - p, axis=1) / np.linalg.norm(p, axis=1)
    print(f"per-image feature difference: median {np.median(rel) * 100:.1f} % relative L2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n < 2048: a rank-deficient covariance, fine for a comparison
        fid = {k: float(frechet_distance(*statistics(feats[k]), *statistics(feats[k + " b"])))
               for k in ("pytorch-fid", "tf")}
    print(f"FID half vs half: pytorch-fid {fid['pytorch-fid']:.2f}, tf {fid['tf']:.2f} "
          f"({fid['tf'] / fid['pytorch-fid'] - 1:+.2%})")
    print(f"time tf / pytorch-fid: {seconds['tf'] / seconds['pytorch-fid']:.2f}x")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
