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
from kompete.config import Config, EvalConfig
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

# Below these an evaluation says nothing worth its time: the plan switches evaluation off instead.
MIN_EVAL_IMAGES = 32
MIN_REFERENCE_IMAGES = 64
GENERATION_OVERHEAD = 1.3  # an evaluation also generates and resizes its images: x1.3 the Inception time
# Inception images/s no device of the kind beats (a 2-core CPU makes 2-10): a plan that fails even at this speed
# switches evaluation off before the weights are loaded (loading them alone can take 10 s on a busy CPU).
FASTEST_IMAGES_PER_S = {"cpu": 50.0, "cuda": 3000.0}


@dataclass(frozen=True)
class EvalPlan:
    """How big the evaluations can be so that preparing and running them stays inside eval.max_fraction."""

    n_images: int  # per evaluation
    reference_limit: int  # 0: every reference image
    seconds_each: float  # estimated seconds of one evaluation
    reference_s: float  # estimated seconds to build the reference statistics (0 when cached)
    note: str  # one line for the log: what was cut and why, or why evaluation is off
    enabled: bool = True


def plan_evaluation(e: EvalConfig, allowed_s: float, train_left_s: float, images_per_s: float, n_reference: int,
                    reference_cached: Callable[[int], bool], n_cap: int | None = None) -> EvalPlan:
    """Fit the reference preparation and the expected evaluations into `allowed_s` seconds.

    `images_per_s`: the measured Inception speed on this device; `n_reference`: the reference images the
    config asks for; `reference_cached(limit)`: whether statistics for that subset are on disk. Sizes are cut
    (the reference to a power of two, so the next run finds it cached) before evaluation is switched off."""
    want = min(e.n_images, n_cap) if n_cap else e.n_images
    count = max(1, math.ceil(train_left_s / (e.every_minutes * 60))) if e.every_minutes else 1
    each = lambda n: GENERATION_OVERHEAD * n / images_per_s  # noqa: E731
    ref_s = 0.0 if reference_cached(0) else n_reference / images_per_s
    if ref_s + count * each(want) <= allowed_s:
        return EvalPlan(want, 0, each(want), ref_s, f"{count} evaluation(s) of {want} images fit "
                                                    f"{allowed_s:.0f} s (eval.max_fraction)")
    limit, ref_s = 0, 0.0
    if not reference_cached(0):
        limit = _power_of_two_below(min(n_reference, images_per_s * allowed_s / 2))
        ref_s = 0.0 if reference_cached(limit) else limit / images_per_s
    n = min(want, int((allowed_s - ref_s) * images_per_s / (GENERATION_OVERHEAD * count)))
    sizes = f"{n} images per evaluation" + (f", a {limit}-image reference subset" if limit else "")
    if n < MIN_EVAL_IMAGES or (limit and limit < MIN_REFERENCE_IMAGES):
        return EvalPlan(0, limit, 0.0, ref_s, f"in-training evaluation off: {count} evaluation(s) at "
                        f"{images_per_s:.1f} images/s would fit {allowed_s:.0f} s (eval.max_fraction of the budget) "
                        f"only with {sizes}; give a longer budget, a larger eval.max_fraction or a rarer "
                        f"eval.every_minutes", enabled=False)
    return EvalPlan(n, limit, each(n), ref_s, f"evaluations cut to {sizes} ({count} expected at "
                                             f"{images_per_s:.1f} images/s inside {allowed_s:.0f} s, "
                                             f"eval.max_fraction of the budget)")


def _device_type(device: Any) -> str:
    return str(device).split(":")[0]


def _power_of_two_below(x: float) -> int:
    return 0 if x < 1 else 2 ** int(math.floor(math.log2(x)))


def measure_inception_rate(model: Any, device: Any, size: int, batch: int = 8) -> float:
    """Images per second through Inception on `device`: one image untimed (warm-up), then `batch` images, or
    only 2 when the warm-up showed a slow device (a busy CPU: the measurement must not eat the share)."""
    import torch

    from kompete.metrics.features import FeatureExtractor

    images = np.zeros((batch, size, size, 3), np.uint8)

    def seconds_for(n: int) -> float:
        extractor = FeatureExtractor(model, n, device)
        t = time.perf_counter()
        extractor.add(images[:n])
        extractor.result()
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    n = 2 if seconds_for(1) > 0.25 else batch
    return n / max(seconds_for(n), 1e-6)


class InceptionScorer:
    """The real scorer, sized by `plan`: `scorer(task, n)` -> (fid, distance, score) against `ref`."""

    def __init__(self, cfg: Config, model: Any, ref: Any, device: Any, plan: EvalPlan):
        self.cfg, self.model, self.ref, self.device, self.plan = cfg, model, ref, device, plan

    def __call__(self, task: Task, n: int) -> tuple[float, float, float]:
        import torch

        from kompete.generate import generate_batches
        from kompete.metrics.features import FeatureExtractor
        from kompete.metrics.fid import RankDeficientWarning, frechet_distance_to
        from kompete.metrics.mifid import memorization_distance, score_from_parts

        cfg = self.cfg
        extractor = FeatureExtractor(self.model, cfg.eval.batch_size, self.device)
        opts = GenerateOptions(n=n, seed=cfg.generate.seed + 7919, truncation=cfg.generate.truncation,
                               batch_size=cfg.eval.batch_size, progress=False)
        for images in generate_batches(task, cfg, opts):
            extractor.add(images.permute(0, 2, 3, 1).cpu().numpy())
        feats = extractor.result()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RankDeficientWarning)
            fid = frechet_distance_to(feats, self.ref.mu, self.ref.sigma)
        distance = memorization_distance(feats, self.ref.features, device=torch.device(self.device), normalized=True)
        result = score_from_parts(cfg.metric.name, fid, distance, cfg.metric.eps)
        return result.fid, result.memorization_distance, result.mifid


def inception_scorer(cfg: Config, device: Any, data_dir: str | None = None, progress: bool = False,
                     allowed_s: float = math.inf, train_left_s: float = 0.0,
                     echo: Callable[[str], None] | None = None) -> InceptionScorer:
    """Weights found offline, the Inception speed measured, the evaluations sized to `allowed_s` seconds
    (`plan_evaluation`), then the reference loaded (or built) once. Evaluation off: a KompeteError saying why."""
    from kompete import data
    from kompete.metrics.features import load_inception
    from kompete.metrics.fid import RankDeficientWarning
    from kompete.metrics.reference import load_reference, reference_cache_file, reference_key
    from kompete.metrics.weights import find_weights

    source = find_weights(None)
    sha, configured = source.describe()["sha256"], cfg.metric.reference_limit
    files = data.reference_files(cfg, data_dir)
    n_reference = min(len(files), configured) if configured else len(files)

    def cached(limit: int) -> bool:
        limit = limit or configured
        return reference_cache_file(reference_key(files[:limit] if limit else files, cfg, sha, limit)).is_file()

    def plan_at(rate: float, fastest: bool = False) -> EvalPlan:
        plan = plan_evaluation(cfg.eval, allowed_s, train_left_s, rate, n_reference, cached)
        if not plan.enabled:
            note = plan.note.removeprefix("in-training evaluation off: ")
            raise KompeteError(note.replace(" at ", " even at ", 1) if fastest else note)
        return plan

    if math.isfinite(allowed_s):  # hopeless even at the device's best speed: off before loading anything
        plan_at(FASTEST_IMAGES_PER_S.get(_device_type(device), math.inf), fastest=True)
    model = load_inception(source, device, preprocess=cfg.metric.preprocess)
    rate = measure_inception_rate(model, device, cfg.output.image_size) if math.isfinite(allowed_s) else math.inf
    plan = plan_at(rate)
    if echo is not None:
        echo(plan.note)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankDeficientWarning)
        ref = load_reference(cfg, sha, lambda: model, data_dir, limit=plan.reference_limit or configured,
                             batch_size=cfg.metric.batch_size, progress=progress)
    return InceptionScorer(cfg, model, ref, device, plan)


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
        try:  # weights, the speed, the sizes and the reference, once; all of it counts against eval.max_fraction
            self.scorer = self.make_scorer(trainer)
        except KompeteError as exc:  # no weights, no reference, no time: training goes on without evaluations
            self.echo(f"warning: in-training evaluation disabled: {exc.render()}")
            return
        finally:
            self.spent_s += time.monotonic() - t
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
        planned = getattr(self.scorer, "plan", None)
        n = planned.n_images if planned is not None else self.cfg.eval.n_images
        return min(n, cap) if cap else n

    def _allowed(self, trainer: "Trainer") -> bool:
        """Whether one more evaluation (as long as the last, or the plan's estimate for the first) stays inside
        eval.max_fraction of the budget and inside the training window."""
        planned = getattr(self.scorer, "plan", None)
        expected = self.history[-1].seconds if self.history else (planned.seconds_each if planned else 0.0)
        share_ok = self.spent_s + expected <= self.cfg.eval.max_fraction * trainer.budget.total
        time_ok = expected < trainer.budget.left()
        if not (share_ok and time_ok) and not self.paused_said:
            self.paused_said = True
            why = (f"{self.spent_s:.0f} s spent of the {self.cfg.eval.max_fraction:.0%} of the budget allowed "
                   f"(eval.max_fraction)" if not share_ok else
                   f"one takes ~{expected:.0f} s, more than the {max(0.0, trainer.budget.left()):.0f} s of training left")
            self.echo(f"note: evaluations paused: {why}")
        return share_ok and time_ok

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
    def make(trainer: "Trainer") -> InceptionScorer:
        budget = trainer.budget
        cb = next(c for c in trainer.callbacks if isinstance(c, TrainingEvaluation))
        allowed = cfg.eval.max_fraction * budget.total - cb.spent_s
        return inception_scorer(cfg, trainer.task.ctx.device, data_dir, allowed_s=allowed,
                                train_left_s=max(0.0, budget.left()), echo=cb.echo)

    return [TrainingEvaluation(cfg, make)]
