"""In-training MiFID: a Trainer callback that scores the generator every few minutes (or epochs), keeps the
best checkpoint, raises a memorization alarm and draws mifid.png.

Each evaluation generates `eval.n_images` with the inference generator (EMA when there is one; translation:
the first photos, fixed), resizes them to the submission size as `kompete generate` does, extracts
Inception pool3 features on the training device in fp32 with the same input path as `kompete score`
(`metric.preprocess`), and computes FID, the memorization distance and the score (MiFID, or FID when
`metric.name` is fid) against the competition's reference statistics (loaded once, from the cache `kompete
score` builds).
These are N-image figures: biased upward against a 10,000-image score, comparable with each other.

It never stops training: without weights it disables itself with one warning, a failing evaluation logs
one line, and evaluations pause when they would take more than `eval.max_fraction` of the budget.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click
import numpy as np

from kompete.algorithms.base import GenerateOptions, Task
from kompete.config import Config
from kompete.errors import KompeteError
from kompete.paths import write_text_atomic
from kompete.train import state as ckpt
from kompete.train.callbacks import Callback, plot_title
from kompete.train.monitor import read_metrics, save_grid

if TYPE_CHECKING:
    from kompete.train.trainer import Trainer, TrainResult

FIELDS = ("eval_fid", "eval_distance", "eval_mifid", "eval_images")


@dataclass
class Evaluation:
    step: int
    epoch: int
    fid: float
    distance: float
    mifid: float
    n_images: int
    seconds: float
    elapsed_s: float


Scorer = Callable[[Task, int], tuple[float, float, float]]  # (task, n) -> fid, distance, mifid


def inception_scorer(cfg: Config, device: Any, data_dir: str | None = None, progress: bool = False) -> Scorer:
    """The real scorer: weights found offline, the reference loaded (or built) once, features on `device`."""
    import torch

    from kompete.generate import generate_batches
    from kompete.metrics.features import FeatureExtractor, load_inception
    from kompete.metrics.fid import RankDeficientWarning, frechet_distance_to
    from kompete.metrics.mifid import memorization_distance, score_from_parts
    from kompete.metrics.reference import load_reference
    from kompete.metrics.weights import find_weights

    source = find_weights(None)
    model = load_inception(source, device, preprocess=cfg.metric.preprocess)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankDeficientWarning)
        ref = load_reference(cfg, source.describe()["sha256"], lambda: model, data_dir,
                             limit=cfg.metric.reference_limit, batch_size=cfg.metric.batch_size, progress=progress)

    def score(task: Task, n: int) -> tuple[float, float, float]:
        extractor = FeatureExtractor(model, cfg.eval.batch_size, device)
        opts = GenerateOptions(n=n, seed=cfg.generate.seed + 7919, truncation=cfg.generate.truncation,
                               batch_size=cfg.eval.batch_size, progress=False)
        for images in generate_batches(task, cfg, opts):
            extractor.add(images.permute(0, 2, 3, 1).cpu().numpy())
        feats = extractor.result()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RankDeficientWarning)
            fid = frechet_distance_to(feats, ref.mu, ref.sigma)
        distance = memorization_distance(feats, ref.features, device=torch.device(device), normalized=True)
        result = score_from_parts(cfg.metric.name, fid, distance, cfg.metric.eps)
        return result.fid, result.memorization_distance, result.mifid

    return score


class TrainingEvaluation(Callback):
    """Scores during training, keeps checkpoints/best.pt + best.json, warns on memorization."""

    fields = FIELDS

    def __init__(self, cfg: Config, make_scorer: Callable[["Trainer"], Scorer],
                 echo: Callable[[str], None] | None = None):
        self.cfg, self.make_scorer = cfg, make_scorer
        self.echo = echo or (lambda line: click.echo(line, err=True))
        self.scorer: Scorer | None = None
        self.history: list[Evaluation] = []
        self.best: Evaluation | None = None
        self.spent_s = 0.0
        self.alarmed = self.paused_said = False
        self._last_time = 0.0
        self._unlogged: dict[str, float] = {}

    # ----------------------------------------------------------------- hooks
    def on_start(self, trainer: "Trainer") -> None:
        e = self.cfg.eval
        t = time.monotonic()
        try:  # weights and the reference, once (cached across runs: not counted against eval.max_fraction)
            self.scorer = self.make_scorer(trainer)
        except KompeteError as exc:  # no weights, no reference: training goes on without evaluations
            self.echo(f"warning: in-training evaluation disabled: {exc.render()}")
            return
        self.best = _read_best(trainer.run_dir)
        self._last_time = time.monotonic()
        every = f"every {e.every_minutes:g} min" if e.every_minutes else f"every {e.every_epochs} epochs"
        self.echo(f"evaluating {every} on {self._n(trainer)} images (N-image MiFID: biased upward against a "
                  f"10,000-image score, comparable with each other); weights and reference ready in "
                  f"{time.monotonic() - t:.1f} s")

    def on_tick(self, trainer: "Trainer", row: dict[str, Any]) -> None:
        e = self.cfg.eval
        if e.every_minutes and time.monotonic() - self._last_time >= e.every_minutes * 60:
            self._evaluate(trainer)
        row.update(self._unlogged)  # into this row of metrics.csv (an epoch's evaluation waits for it)
        self._unlogged = {}

    def on_epoch(self, trainer: "Trainer") -> None:
        e = self.cfg.eval
        if e.every_epochs and trainer.task.epoch % e.every_epochs == 0:
            self._evaluate(trainer)

    def on_end(self, trainer: "Trainer", result: "TrainResult") -> None:
        if self.history:
            plot_mifid(trainer.run_dir / "metrics.csv", trainer.run_dir / "mifid.png", self.best,
                       title=plot_title(trainer))
        if self.best is not None:
            self.echo(f"best in-training MiFID {self.best.mifid:.3f} at step {self.best.step} "
                      f"({ckpt.CHECKPOINT_DIR}/{ckpt.BEST})")

    # ----------------------------------------------------------------- pieces
    def _n(self, trainer: "Trainer") -> int:
        cap = trainer.task.max_images()
        return min(self.cfg.eval.n_images, cap) if cap else self.cfg.eval.n_images

    def _allowed(self, trainer: "Trainer") -> bool:
        """Whether one more evaluation (as long as the last) stays inside eval.max_fraction of the budget."""
        budget = trainer.budget.end - trainer.budget.start
        last = self.history[-1].seconds if self.history else 0.0
        ok = self.spent_s + last <= self.cfg.eval.max_fraction * budget
        if not ok and not self.paused_said:
            self.paused_said = True
            self.echo(f"note: evaluations paused: {self.spent_s:.0f} s spent of the {self.cfg.eval.max_fraction:.0%} "
                      f"of the budget allowed (eval.max_fraction)")
        return ok

    def _evaluate(self, trainer: "Trainer") -> None:
        if self.scorer is None or not self._allowed(trainer):
            return
        task, n = trainer.task, self._n(trainer)
        t, at = time.monotonic(), trainer.elapsed  # `at` matches the metrics row's elapsed_s, for the plot
        try:
            fid, distance, mifid = self.scorer(task, n)
        except Exception as exc:  # an evaluation never ends a training (out of memory, a bad batch ...)
            self.echo(f"warning: evaluation at step {task.step_count} failed: {str(exc).splitlines()[0][:200]}")
            return
        finally:  # the cadence counts from each evaluation's start: "every 30 s" means every 30 s
            self._last_time = t
            self.spent_s += time.monotonic() - t
        ev = Evaluation(task.step_count, task.epoch, fid, distance, mifid, n, time.monotonic() - t, at)
        self.history.append(ev)
        self._unlogged = dict(eval_fid=fid, eval_distance=distance, eval_mifid=mifid, eval_images=n)
        self._alarm(ev)
        kept = self._keep_if_best(trainer, ev)
        self.echo(f"eval step {ev.step}: FID {fid:.3f}  memorization {distance:.4f}  MiFID {mifid:.3f} "
                  f"({n} images, {ev.seconds:.1f} s){'  new best' if kept else ''}")

    def _alarm(self, ev: Evaluation) -> None:
        eps = self.cfg.metric.eps
        if self.cfg.metric.name == "fid":  # plain FID has no memorization term: nothing to warn about
            return
        if not self.alarmed and ev.distance < self.cfg.eval.alarm_factor * eps:
            self.alarmed = True
            self.echo(f"warning: memorization alarm at step {ev.step}: distance {ev.distance:.4f} is below "
                      f"{self.cfg.eval.alarm_factor:g} x eps ({eps:g}); Kaggle's private dog board disqualified "
                      f"memorizers, and a checkpoint below eps is never kept as best")

    def _keep_if_best(self, trainer: "Trainer", ev: Evaluation) -> bool:
        memorized = self.cfg.metric.name == "mifid" and ev.distance < self.cfg.metric.eps
        if not self.cfg.eval.keep_best or not math.isfinite(ev.mifid) or memorized:
            return False
        if self.best is not None and ev.mifid >= self.best.mifid:
            return False
        folder = trainer.run_dir / ckpt.CHECKPOINT_DIR
        ckpt.write_checkpoint(folder / ckpt.BEST, {**trainer.checkpoint_payload(), "evaluation": asdict(ev)})
        write_text_atomic(folder / ckpt.BEST_JSON, json.dumps(asdict(ev), indent=2) + "\n")
        save_grid(trainer.task.sample_grid(), trainer.run_dir / "samples" / "best.png",
                  captions=trainer.task.grid_captions())
        self.best = ev
        return True


def _read_best(run_dir: Path) -> Evaluation | None:
    """The best a resumed run already kept: a later evaluation must beat it."""
    path = run_dir / ckpt.CHECKPOINT_DIR / ckpt.BEST_JSON
    try:
        return Evaluation(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def plot_mifid(metrics_csv: Path, out: Path, best: Evaluation | None = None, title: str = "") -> Path | None:
    """mifid.png: FID, memorization distance and MiFID against steps and against minutes, the best marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kompete.paths import atomic_output

    data = read_metrics(metrics_csv)
    if not data or "eval_mifid" not in data:
        return None
    keep = ~np.isnan(data["eval_mifid"])
    if not keep.any():
        return None
    n = int(np.nanmax(data["eval_images"]))
    fig, axes = plt.subplots(2, 2, figsize=(10, 6), sharey="row")
    for col, (xkey, xlabel, scale) in enumerate((("step", "step", 1.0), ("elapsed_s", "minutes", 1 / 60))):
        x = data[xkey][keep] * scale
        top, bottom = axes[0][col], axes[1][col]
        top.plot(x, data["eval_fid"][keep], "o-", label="FID")
        top.plot(x, data["eval_mifid"][keep], "s-", label="MiFID")
        bottom.plot(x, data["eval_distance"][keep], "o-", color="tab:green", label="memorization distance")
        if best is not None:
            bx = best.step if xkey == "step" else best.elapsed_s * scale
            top.axvline(bx, color="tab:red", ls="--", alpha=0.6, label=f"best {best.mifid:.2f}")
        bottom.set_xlabel(xlabel)
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    axes[0][0].set_ylabel(f"score ({n} images)")
    axes[1][0].set_ylabel("distance")
    fig.suptitle((f"{title}: " if title else "") + f"in-training scores on {n} images (biased upward against "
                 f"10,000; comparable with each other)", fontsize=9)
    fig.tight_layout()
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return out


def evaluation_callbacks(cfg: Config, data_dir: str | None = None) -> list[Callback]:
    """What a run registers for in-training MiFID: nothing when eval is off."""
    if not cfg.eval.enabled:
        return []
    return [TrainingEvaluation(cfg, lambda trainer: inception_scorer(cfg, trainer.task.ctx.device, data_dir))]
