"""What in-training MiFID costs: a real training run with the evaluation callback (real FID Inception weights,
reference cached first), printing each evaluation's seconds and their share of the training time.

Goal (issue 13): at most 5 % of the budget at default settings on a GPU. On the CPU the sample's figures
use small evaluations (the default 2,000 images would take minutes of Inception per evaluation there).

    python bench/eval_cost.py [--competition sample-dogs] [--seconds 120] [--every 0.5] [--images 256]
    python bench/eval_cost.py --set data.image_size=64 --images 2000 --seconds 900   # the dog default on a GPU
    python bench/eval_cost.py --smoke
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Harness, bench_arguments  # noqa: E402
from kompete.config import load_config  # noqa: E402
from kompete.metrics.evaluation import TrainingEvaluation, inception_scorer  # noqa: E402
from kompete.pipeline import TrainRequest, train  # noqa: E402


SMOKE = ["data.image_size=16", "train.g_channels=4", "train.d_channels=4", "train.batch_size=8",
         "data.sample.n_images=32", "metric.reference_limit=8", "eval.batch_size=8"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--competition", default="sample-dogs")
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--every", type=float, default=0.5, help="minutes between evaluations")
    ap.add_argument("--images", type=int, default=256 if not torch.cuda.is_available() else 2000)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    bench_arguments(ap, rounds=1)
    a = ap.parse_args(argv)
    if a.smoke:
        a.seconds, a.every, a.images, a.rounds, a.overrides = 20.0, 0.05, 8, 1, [*SMOKE, *a.overrides]
    cfg = load_config(a.competition, [f"eval.every_minutes={a.every}", f"eval.n_images={a.images}",
                                      "eval.max_fraction=1", "train.sample_every_epochs=100000", *a.overrides])
    h = Harness("eval_cost", a)
    runs: list[dict] = []
    h.compare("training with in-training evaluation", {"train + evaluate": lambda: runs.append(one_run(cfg, a))},
              unit_name="runs")
    r = runs[-1]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    h.note("run", f"{a.competition}: model {cfg.train.model}, {cfg.data.image_size}px, {r['steps']} steps in "
                  f"{r['seconds']:.0f} s on {device}")
    h.note("weights + reference (once, at start) s", round(r["reference"], 2))
    h.note("evaluations", f"{len(r['evals'])} x {a.images} images, {sum(r['evals']):.1f} s in all")
    h.note("share of the training time", f"{sum(r['evals']) / r['seconds']:.1%} (with the reference: "
                                         f"{(sum(r['evals']) + r['reference']) / r['seconds']:.1%})")
    h.finish()


def one_run(cfg, a) -> dict:
    built: dict[str, float] = {}

    def make(trainer):
        t = time.perf_counter()
        scorer = inception_scorer(cfg, trainer.task.ctx.device)
        built["reference"] = time.perf_counter() - t
        return scorer

    cb = TrainingEvaluation(cfg, make, echo=print)
    with tempfile.TemporaryDirectory() as tmp:
        result = train(TrainRequest(cfg, Path(tmp) / "run", a.seconds, progress=False, evaluate=False, callbacks=[cb]))
    return {"steps": result.steps, "seconds": result.seconds, "evals": [e.seconds for e in cb.history],
            "reference": built.get("reference", 0.0)}


if __name__ == "__main__":
    main()
