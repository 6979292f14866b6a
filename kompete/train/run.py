"""The train stage as a library call: context, data, task, budget with its reserve, resume, loop.

`kompete.pipeline.train` is the run builder every caller uses (CLI, demo, benches): it adds the generation
reserve, the evaluation callbacks, the empty-run check, generation and the ledger row around this."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import click

from kompete.algorithms.base import Task, build_task, load_data, task_class
from kompete.config import Config
from kompete.train import rundir
from kompete.train import state as ckpt
from kompete.train.budget import Budget, set_closing_reserve, set_reserve
from kompete.train.callbacks import Callback, default_callbacks
from kompete.runtime.context import Context, make_context
from kompete.train.plateau import plateau_callbacks
from kompete.train.trainer import Trainer, TrainResult


PROGRESS_ENV = "KOMPETE_PROGRESS_S"  # seconds between plain progress lines (the kernel sets it)
PROGRESS_S = 60.0


class ProgressLines(Callback):
    """Without a progress bar (--quiet, a kernel's log): the first step's time, then every `every_s` a line with
    the step, images/s, the last losses, the time left and the last in-training score."""

    def __init__(self, every_s: float):
        self.every_s = every_s
        self.row: dict[str, Any] = {}
        self.score = ""

    def on_start(self, trainer: Trainer) -> None:
        self._last, self._step = time.monotonic(), trainer.task.step_count
        self._first = True

    def on_step(self, trainer: Trainer) -> None:
        now = time.monotonic()
        if self._first:
            self._first = False
            click.echo(f"first step done {now - trainer.budget.start:.0f} s into the budget "
                       f"(compile and warm-up included); {trainer.budget.left(now):.0f} s of training left")
        elif now - self._last >= self.every_s:
            self._line(trainer, now)

    def on_tick(self, trainer: Trainer, row: dict[str, Any]) -> None:
        self.row = row
        if row.get("eval_mifid") not in (None, ""):
            self.score = f", last in-training score {row['eval_mifid']:.3f} at step {row['step']}"

    def _line(self, trainer: Trainer, now: float) -> None:
        task = trainer.task
        rate = (task.step_count - self._step) * task.images_per_step / max(now - self._last, 1e-9)
        losses = " ".join(f"{k} {self.row[k]:.3g}" for k in task.loss_names if isinstance(self.row.get(k), float))
        click.echo(f"step {task.step_count} (epoch {task.epoch}), {rate:.0f} images/s, {losses or 'no losses yet'}"
                   f"{self.score}; {max(0.0, trainer.budget.left(now)):.0f} s of training left")
        self._last, self._step = now, task.step_count


def train_run(cfg: Config, run_dir: str | Path, budget: Budget, data_dir: str | None = None,
              resume: str | Path | None = None, fresh: bool = False, max_steps: int | None = None,
              device: str | None = None, progress: bool = True,
              generation_estimate: Callable[[Task, Config], float] | None = None,
              callbacks: Sequence[Callback] = ()) -> TrainResult | None:
    """Train until the budget's window closes; returns None on DDP ranks other than 0.

    `generation_estimate(task, cfg)` (kompete.generate.estimate_seconds: the same writer generation will
    use) reserves time so that generation fits in the budget too; without it, only a closing margin is kept.
    `callbacks` run before the default ones (metrics.csv, sample grids, plots), so the columns they fill
    in a metrics row are written with it.

    Without --resume, a run folder that already holds checkpoints is continued (a preempted or
    interrupted run picks up where it stopped); `fresh` moves the old run aside (see rundir.py), once every
    input has been checked.
    """
    run_dir = Path(run_dir)
    rundir.check_fresh_resume(fresh, resume)
    task_class(cfg)  # the algorithm's code and names resolve before any work starts
    ctx = make_context(cfg, device)
    lock = rundir.RunLock(run_dir) if ctx.is_main else None
    try:
        if lock is not None:
            lock.acquire()  # a second training into this folder stops here; also proves it writable
        task = _build(cfg, ctx, budget, data_dir, progress, generation_estimate)
        if fresh:  # only now: every input is checked, so a failure above leaves the old run whole
            if ctx.is_main and (aside := rundir.set_aside(run_dir)) is not None:
                click.echo(f"moved the previous run to {aside}")
            ctx.barrier()
        lines = [] if progress else [ProgressLines(float(os.environ.get(PROGRESS_ENV, PROGRESS_S)))]
        trainer = Trainer(cfg, task, run_dir, budget, progress=progress, max_steps=max_steps,
                          callbacks=[*callbacks, *plateau_callbacks(cfg), *default_callbacks(), *lines])
        source = resume if resume is not None else (run_dir if ckpt.list_checkpoints(run_dir) else None)
        ctx.barrier()  # every rank has looked for checkpoints before rank 0 can write its step-0 one
        if ctx.is_main:
            for note in ctx.notes:
                click.echo(note)
            click.echo(budget.describe())
        if source is not None:
            _resume(trainer, source, run_dir)
        result = trainer.run()
        return result if ctx.is_main else None
    finally:
        if lock is not None:
            lock.release()
        ctx.close()


def _build(cfg: Config, ctx: Context, budget: Budget, data_dir: str | None, progress: bool,
           generation_estimate: Callable[[Task, Config], float] | None) -> Task:
    """Data, the task and the budget's reserve, each stage announced with the seconds spent so far."""
    say = click.echo if ctx.is_main else (lambda line: None)
    say(f"loading {cfg.name}'s data ({time.monotonic() - budget.start:.0f} s into the budget)")
    data = load_data(cfg, data_dir, progress=progress and ctx.is_main)
    say(f"building {cfg.train.model} on {ctx.device} ({time.monotonic() - budget.start:.0f} s)")
    task = build_task(cfg, ctx, data)
    if generation_estimate is not None:
        say(f"measuring generation for the reserve ({time.monotonic() - budget.start:.0f} s)")
        set_reserve(budget, generation_estimate(task, cfg), cfg.train.safety_margin_s)
    else:
        set_closing_reserve(budget, cfg.train.safety_margin_s)
    return task


def _resume(trainer: Trainer, source: str | Path, run_dir: Path) -> None:
    task, main = trainer.task, trainer.task.ctx.is_main
    path = trainer.resume(source)
    if path.name == ckpt.BEST and path.parent.parent.resolve() == run_dir.resolve() and main:
        aside = ckpt.set_aside_later(run_dir, task.step_count)  # best-restart in place
        if aside is not None:
            click.echo(f"best-restart: later checkpoints moved to {aside}")
    if main:
        click.echo(f"resumed from {path} at step {task.step_count}")
        rundir.truncate_metrics(run_dir / "metrics.csv", task.step_count)  # rows after it are redone
