"""`kompete train` as a library call: context, data, task, budget with a generation reserve, resume, loop."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import click

from kompete.algorithms.base import Task, build_task, load_data, task_class
from kompete.config import Config
from kompete.train import rundir
from kompete.train import state as ckpt
from kompete.train.budget import Budget, set_reserve
from kompete.train.callbacks import Callback, default_callbacks
from kompete.train.context import make_context
from kompete.train.plateau import plateau_callbacks
from kompete.train.trainer import Trainer, TrainResult


def train_run(cfg: Config, run_dir: str | Path, budget: Budget, data_dir: str | None = None,
              resume: str | Path | None = None, fresh: bool = False, max_steps: int | None = None,
              device: str | None = None, progress: bool = True,
              generation_estimate: Callable[[Task, Config], float] | None = None,
              callbacks: Sequence[Callback] = ()) -> TrainResult | None:
    """Train until the budget's window closes; returns None on DDP ranks other than 0.

    `generation_estimate(task, cfg)` (kompete.generate.estimate_seconds: the same writer generation will
    use) reserves time so that generation fits in the budget too; without it, the whole budget trains.
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
        data = load_data(cfg, data_dir, progress=progress and ctx.is_main)
        task = build_task(cfg, ctx, data)
        if generation_estimate is not None:
            set_reserve(budget, generation_estimate(task, cfg), cfg.train.safety_margin_s)
        if fresh:  # only now: every input is checked, so a failure above leaves the old run whole
            if ctx.is_main and (aside := rundir.set_aside(run_dir)) is not None:
                click.echo(f"moved the previous run to {aside}")
            ctx.barrier()
        trainer = Trainer(cfg, task, run_dir, budget, progress=progress, max_steps=max_steps,
                          callbacks=[*callbacks, *plateau_callbacks(cfg), *default_callbacks()])
        source = resume if resume is not None else (run_dir if ckpt.list_checkpoints(run_dir) else None)
        ctx.barrier()  # every rank has looked for checkpoints before rank 0 can write its step-0 one
        if ctx.is_main:
            for note in ctx.notes:
                click.echo(note)
            click.echo(budget.describe())
        if source is not None:
            path = trainer.resume(source)
            if path.name == ckpt.BEST and path.parent.parent.resolve() == run_dir.resolve() and ctx.is_main:
                aside = ckpt.set_aside_later(run_dir, task.step_count)  # best-restart in place
                if aside is not None:
                    click.echo(f"best-restart: later checkpoints moved to {aside}")
            if ctx.is_main:
                click.echo(f"resumed from {path} at step {task.step_count}")
                rundir.truncate_metrics(run_dir / "metrics.csv", task.step_count)  # rows after it are redone
        result = trainer.run()
        return result if ctx.is_main else None
    finally:
        if lock is not None:
            lock.release()
        ctx.close()
