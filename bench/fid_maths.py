"""The FID maths alone: kompete's frechet_distance against scipy's sqrtm (pytorch-fid's formula) and torchmetrics'
general eigenvalue solve, on the same float64 statistics, in interleaved rounds; and how far each is from scipy.

Covariances at --dim dimensions (2048: Inception pool3), from --samples feature rows each (well-conditioned), and a
near-singular pair (eigenvalues from 1e-9 to 10). Goal (issue 27): kompete at least as fast as torchmetrics and at
least 5x scipy, agreeing with scipy to 1e-6 relative.

    python bench/fid_maths.py [--dim 2048] [--rounds 3]
    python bench/fid_maths.py --smoke
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
from kompete.metrics.fid import frechet_distance  # noqa: E402


def scipy_fid(mu1, s1, mu2, s2) -> float:
    """pytorch-fid's calculate_frechet_distance without its prints: sqrtm of the product."""
    from scipy import linalg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(root.real))


def torchmetrics_fid(mu1, s1, mu2, s2) -> float:
    """torchmetrics.image.fid._compute_fid, in float64 as torchmetrics calls it."""
    from torchmetrics.image.fid import _compute_fid

    t = [torch.from_numpy(a) for a in (mu1, s1, mu2, s2)]
    return float(_compute_fid(*t))


def statistics_pair(rng, dim: int, samples: int | None, low: float | None):
    """Two (mu, sigma): from `samples` random feature rows each, or with eigenvalues from `low` to 10."""
    out = []
    for scale in (1.0, 1.2):
        if samples:
            x = rng.standard_normal((samples, dim)) * scale + rng.standard_normal(dim) * 0.1
            out += [x.mean(0), np.cov(x, rowvar=False)]
        else:
            q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
            out += [rng.standard_normal(dim), (q * np.geomspace(low, 10 * scale, dim)) @ q.T]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--samples", type=int, default=4096, help="feature rows behind each well-conditioned covariance")
    bench_arguments(ap)
    args = ap.parse_args(argv)
    if args.smoke:
        args.dim, args.samples, args.rounds = 64, 256, 2
    from scipy import linalg  # noqa: F401  (imported before the clock starts)
    from torchmetrics.image import fid  # noqa: F401

    h = Harness("fid_maths", args)
    rng = np.random.default_rng(0)
    for label, samples, low in (("well-conditioned", args.samples, None), ("near-singular", None, 1e-9)):
        stats = statistics_pair(rng, args.dim, samples, low)
        values: dict[str, float] = {}
        methods = {"scipy sqrtm": scipy_fid, "torchmetrics": torchmetrics_fid, "kompete": frechet_distance}

        def case(name):
            return lambda: values.__setitem__(name, methods[name](*stats))

        h.compare(f"FID maths, {args.dim}-d, {label}", {name: case(name) for name in methods}, baseline="scipy sqrtm")
        for name in ("torchmetrics", "kompete"):
            h.note(f"{label}: {name} relative difference from scipy",
                   f"{abs(values[name] - values['scipy sqrtm']) / abs(values['scipy sqrtm']):.2e}")
    h.finish()


if __name__ == "__main__":
    main()
