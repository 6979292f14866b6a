"""The one place that chains the stages: data -> train -> generate -> zip -> score -> kernel bundle.

`train(TrainRequest)` is the run builder: `kompete train`, the demo and the benches all call it, so they share
one clock, the generation reserve (only when something will generate), the in-training evaluation callbacks,
the check that a run trained at all, and the ledger row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import click

from kompete import data
from kompete.config import Config, load_config
from kompete.errors import ArchiveError, TrainingError

if TYPE_CHECKING:
    from kompete.train.callbacks import Callback
    from kompete.train.trainer import TrainResult

DEMO_COMPETITIONS = ("sample-dogs", "sample-monet", "sample-faces")  # dogs, monet and folder layouts
# Scoring every image through Inception on a CPU takes minutes; the demo scores a sample of each side.
DEMO_SCORE_LIMIT = 64
DEMO_REFERENCE_LIMIT = 128
# In-training MiFID on the dog sample: small and frequent, so 45 s of CPU training draws a curve (mifid.png)
DEMO_EVAL = {"sample-dogs": ["eval.every_minutes=0.15", "eval.n_images=64", "eval.batch_size=64",
                             "eval.max_fraction=0.5", f"metric.reference_limit={DEMO_REFERENCE_LIMIT}"]}


@dataclass(frozen=True)
class TrainRequest:
    """What a training run is asked to do; every caller builds one of these and calls `train`."""

    cfg: Config
    run_dir: Path
    time_budget_s: float | None = None  # None: the competition's runtime limit from the kernel's start
    started: float | None = None  # time.monotonic() the clock starts at (the CLI: its process start); None: now
    data_dir: str | None = None
    resume: Path | None = None
    fresh: bool = False
    max_steps: int | None = None  # 0: build and checkpoint only (the one run allowed to train no step)
    device: str | None = None
    progress: bool = True
    generate: bool = False  # write the zip after training, in this process: its time is reserved
    reserve_generation: bool = False  # the next process writes it (a kernel's generate stage): reserve only
    evaluate: bool = True  # in-training evaluation, when the config's eval section asks for it
    callbacks: Sequence["Callback"] = ()  # more callbacks, run before the evaluation and the defaults
    record: bool = False  # a row in the ledger (see `record_training`)
    db_path: Path | None = None
    echo: Callable[[str], None] = click.echo


def train(req: TrainRequest) -> "TrainResult | None":
    """Train as asked; None on DDP ranks other than 0. A run that trained no step raises TrainingError
    (saying where the time went and what budget would work) unless `max_steps` was 0."""
    from kompete.generate import estimate_seconds
    from kompete.metrics.evaluation import evaluation_callbacks
    from kompete.train.budget import make_budget
    from kompete.train.run import train_run

    cfg = req.cfg
    budget = make_budget(cfg, req.time_budget_s, started=req.started)
    callbacks = [*req.callbacks, *(evaluation_callbacks(cfg, req.data_dir) if req.evaluate else [])]
    reserve = req.generate or req.reserve_generation
    result = train_run(cfg, req.run_dir, budget, data_dir=req.data_dir, resume=req.resume, fresh=req.fresh,
                       max_steps=req.max_steps, device=req.device, progress=req.progress,
                       generation_estimate=estimate_seconds if reserve else None, callbacks=callbacks)
    if result is None:
        return None
    req.echo("\n".join(result.lines()))
    if req.record:
        record_training(cfg, result, req.db_path, req.echo)
    check_trained(result, req.max_steps, budget)
    if req.generate and result.reason != "signal":
        generate_and_validate(cfg, result.run_dir, req.device, req.progress, req.data_dir, req.echo)
    return result


def check_trained(result: "TrainResult", max_steps: int | None, budget) -> None:
    """No silent empty run: zero steps by the deadline is an error that says where the time went."""
    if result.steps_run > 0 or result.reason != "deadline" or max_steps == 0:
        return
    from kompete.train.budget import suggest_seconds

    raise TrainingError(f"trained 0 steps: the deadline came first ({result.time_line().split(':', 1)[1].strip()})",
                        hint=f"give a longer --time-budget (at least {suggest_seconds(budget):.0f} s), train on a "
                             "faster device, or pass --max-steps 0 to only build and checkpoint")


def generate_and_validate(cfg: Config, run_dir: Path, device: str | None, progress: bool, data_dir: str | None,
                          echo: Callable[[str], None] = click.echo) -> Path:
    """The run's zip (its best checkpoint when it kept one), checked as Kaggle would; returns its path."""
    from kompete.archive import validate_zip
    from kompete.generate import generate_zip

    t = time.perf_counter()
    zip_path = generate_zip(run_dir, run_dir / cfg.output.archive, device=device, progress=progress,
                            data_dir=data_dir)
    report = validate_zip(cfg, zip_path)
    if not report.ok:
        raise ArchiveError(report.message())
    echo(f"wrote {zip_path} in {time.perf_counter() - t:.1f} s: {report.n_images} images, valid")
    return zip_path


def record_training(cfg: Config, result: "TrainResult", db_path: Path | None = None,
                    echo: Callable[[str], None] = click.echo) -> int | None:
    """The run's row in the ledger (never inside a kernel: its ledger would vanish with it); a broken
    ledger is one warning, never a failed run."""
    from kompete.config import config_hash
    from kompete.ledger.record import record_safely, record_score
    from kompete.paths import on_kaggle

    if on_kaggle():
        return None
    return record_safely(record_score, cfg.name, db_path=db_path, warn=echo, run_dir=result.run_dir,
                         images_per_s=result.images_per_s, config=cfg.to_dict(), config_hash=config_hash(cfg))


def demo(out: Path, train_seconds: float = 45.0, score: bool = True) -> None:
    """Everything kompete does, offline on the CPU, on the sample competitions."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for name in DEMO_COMPETITIONS:
        cfg = load_config(name, DEMO_EVAL.get(name, []) if score else [])
        zip_path = run_competition(cfg, out / name, train_seconds, score)
        click.echo(f"  {name}: {zip_path}")
    _step("sample-dogs: build the Kaggle kernel bundle (nothing is pushed)")
    from kompete.kernel.bundle import build_bundle

    b = build_bundle(load_config("sample-dogs"), owner="demo", out_root=out / "kernels")
    click.echo(f"  {b.folder}/kernel.py ({b.kernel_id}): {b.script_bytes / 1e3:.0f} kB, config {b.config_hash}")
    click.echo(f"\ndemo finished in {time.perf_counter() - started:.0f} s; outputs in {out}")


def run_competition(cfg: Config, run_dir: Path, train_seconds: float, score: bool = True) -> Path:
    """prepare -> train (for `train_seconds`) -> generate images.zip -> validate -> score; returns the zip."""
    from kompete.archive import validate_zip
    from kompete.generate import generate_zip

    _step(f"{cfg.name}: prepare data")
    for summary in data.summarise(cfg, progress=True):
        click.echo("  " + "\n  ".join(summary.lines()))

    # The demo has no hard end after its training, so its generation is not reserved: `train_seconds` train.
    _step(f"{cfg.name}: train for {train_seconds:.0f} s, loading included ({cfg.train.model}, {cfg.train.loss} loss)")
    result = train(TrainRequest(cfg, run_dir, train_seconds, fresh=True,
                                echo=lambda text: click.echo("  " + text.replace("\n", "\n  "))))
    assert result is not None  # a single process is always rank 0
    plots = [p.name for p in (run_dir / "losses.png", run_dir / "d_outputs.png") if p.is_file()]
    click.echo(f"  {', '.join(plots) or 'no loss curves (too few steps)'} and sample grids: {run_dir}")
    if (run_dir / "mifid.png").is_file():
        click.echo(f"  in-training MiFID curve: {run_dir / 'mifid.png'}")

    _step(f"{cfg.name}: generate {cfg.output.archive}")
    zip_path = generate_zip(run_dir, run_dir / cfg.output.archive)

    _step(f"{cfg.name}: validate as Kaggle would")
    report = validate_zip(cfg, zip_path)
    if not report.ok:
        raise ArchiveError(report.message())
    click.echo(f"  OK: {report.n_images} {cfg.output.format.upper()} images at "
               f"{cfg.output.image_size}x{cfg.output.image_size}"
               + (f" in {report.classes_line()}" if cfg.output.layout == "by_class" else ""))

    if score:
        from kompete.metrics.score import score_path

        metric = "FID" if cfg.metric.name == "fid" else "MiFID"
        _step(f"{cfg.name}: {metric} on {DEMO_SCORE_LIMIT} images vs {DEMO_REFERENCE_LIMIT} reference images")
        scored = score_path(cfg, zip_path, limit=DEMO_SCORE_LIMIT, reference_limit=DEMO_REFERENCE_LIMIT,
                            progress=True)
        click.echo("  " + "\n  ".join(scored.lines()))
    return zip_path


def _step(title: str) -> None:
    click.secho(f"\n== {title}", bold=True)
