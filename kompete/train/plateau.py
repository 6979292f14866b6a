"""`train.plateau`: lower the learning rates, or stop, when the in-training score has not improved for
`patience` evaluations (the evaluation callback, metrics/evaluation.py, writes the score into the metrics row).

Lowering multiplies the Trainer's `lr_scale`, the factor every schedule is multiplied by (a NaN restore halves
the same factor), so it is saved in checkpoints and survives a resume. After `max_lowerings` lowerings the next
plateau stops, like `action: stop`: the evaluation has already kept the best checkpoint (checkpoints/best.pt).
The plateau's own counters start afresh on a resume. Under DDP only rank 0 scores, so the ranks could not agree:
the callback turns itself off there with one line.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

import click

from kompete.config import Config, PlateauConfig
from kompete.train.callbacks import Callback

if TYPE_CHECKING:
    from kompete.train.trainer import Trainer

SCORE = "eval_mifid"  # the evaluation's score column (FID when metric.name is fid); metrics/ is a later stage


class Plateau(Callback):
    """Watches the score column of each metrics row; lower is better."""

    main_only = False  # it changes the learning rates: it must see every rank (and turns off under DDP)

    def __init__(self, settings: PlateauConfig, echo: Callable[[str], None] | None = None):
        self.settings = settings
        self.echo = echo or (lambda line: click.echo(line, err=True))
        self.best = math.inf
        self.waited = 0  # evaluations since the last new best
        self.lowerings = 0
        self.active = True

    def on_start(self, trainer: "Trainer") -> None:
        if trainer.task.ctx.ddp:
            self.active = False
            if trainer.task.ctx.is_main:
                self.echo("note: train.plateau is off under DDP (only rank 0 scores; the ranks could not agree)")

    def on_tick(self, trainer: "Trainer", row: dict[str, Any]) -> None:
        score = row.get(SCORE)
        if not self.active or score is None or not math.isfinite(float(score)):
            return
        if float(score) < self.best - self.settings.min_delta:
            self.best, self.waited = float(score), 0
            return
        self.waited += 1
        if self.waited >= self.settings.patience:
            self.waited = 0
            self._act(trainer)

    def _act(self, trainer: "Trainer") -> None:
        s, step = self.settings, trainer.task.step_count
        if s.action == "lower_lr" and self.lowerings < s.max_lowerings:
            self.lowerings += 1
            trainer.lr_scale *= s.factor
            self.echo(f"plateau at step {step}: no better score than {self.best:.3f} in {s.patience} evaluations; "
                      f"learning rates x{trainer.lr_scale:g}")
            return
        # the loop's own stop test ends the run before the next step (reported as max_steps)
        trainer.max_steps = step
        self.active = False
        self.echo(f"plateau at step {step}: no better score than {self.best:.3f} in {s.patience} evaluations; "
                  "stopping")


def plateau_callbacks(cfg: Config) -> list[Callback]:
    """What a run registers for train.plateau: nothing while it is off."""
    return [Plateau(cfg.train.plateau)] if cfg.train.plateau.patience else []
