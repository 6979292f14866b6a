"""What in-training MiFID costs: a real training run with the evaluation callback (real FID Inception weights,
reference cached first), printing each evaluation's seconds and their share of the training time.

Goal (issue 13): at most 5 % of the budget at default settings on a GPU. On the CPU the sample's figures
use small evaluations (the default 2,000 images would take minutes of Inception per evaluation there).

    python bench/eval_cost.py [--competition sample-dogs] [--seconds 120] [--every 0.5] [--images 256]
    python bench/eval_cost.py --set data.image_size=64 --images 2000 --seconds 900   # the dog default on a GPU
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kompete.config import load_config  # noqa: E402
from kompete.metrics.evaluation import TrainingEvaluation, inception_scorer  # noqa: E402
from kompete.pipeline import TrainRequest, train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--competition", default="sample-dogs")
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--every", type=float, default=0.5, help="minutes between evaluations")
    ap.add_argument("--images", type=int, default=256 if not torch.cuda.is_available() else 2000)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    a = ap.parse_args()
    cfg = load_config(a.competition, [f"eval.every_minutes={a.every}", f"eval.n_images={a.images}",
                                      "eval.max_fraction=1", "train.sample_every_epochs=100000", *a.overrides])
    lines: list[str] = []
    built: dict[str, float] = {}

    def make(trainer):
        t = time.perf_counter()
        scorer = inception_scorer(cfg, trainer.task.ctx.device)
        built["reference"] = time.perf_counter() - t
        return scorer

    cb = TrainingEvaluation(cfg, make, echo=lambda line: (lines.append(line), print(line)))
    with tempfile.TemporaryDirectory() as tmp:
        result = train(TrainRequest(cfg, Path(tmp) / "run", a.seconds, progress=False, evaluate=False, callbacks=[cb]))
    evals = [e.seconds for e in cb.history]
    spent = sum(evals)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    print(f"\n{a.competition}: model {cfg.train.model}, {cfg.data.image_size}px, {result.steps} steps in "
          f"{result.seconds:.0f} s on {device}")
    print(f"weights + reference (once, at start): {built.get('reference', 0):.1f} s")
    print(f"evaluations: {len(evals)} x {a.images} images, {spent:.1f} s in all "
          f"({spent / max(1, len(evals)):.1f} s each)")
    print(f"share of the training time: {spent / result.seconds:.1%} "
          f"(with the reference: {(spent + built.get('reference', 0)) / result.seconds:.1%})")


if __name__ == "__main__":
    main()
