"""What happens around the loop, registered by the run: metrics.csv, sample grids, plots, anything new
(an in-training evaluation, a ledger row). A callback that adds columns to the metrics rows lists them in
`fields` and runs before MetricsCsv (the run puts its own callbacks first). The Trainer calls every callback's hooks in order; a callback
never decides whether training stops.

Hooks, each given the Trainer: `on_start` (before the first step), `on_step` (after every step: keep it
cheap, no host syncs), `on_epoch` (the data wrapped), `on_tick(row)` (every `train.log_every` steps, with
the metrics row just read), `on_checkpoint(path)`, `on_end(result)`, and `on_close` always, even after an error. Only rank 0 runs file-writing
callbacks: `main_only = True`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from kompete.train.monitor import MetricsLog, plot_metrics, save_grid

if TYPE_CHECKING:
    from kompete.train.trainer import Trainer, TrainResult


class Callback:
    main_only = True  # most callbacks write files: only rank 0 runs them
    fields: tuple[str, ...] = ()  # metrics.csv columns this callback fills in the rows it is handed

    def on_start(self, trainer: "Trainer") -> None: ...
    def on_step(self, trainer: "Trainer") -> None: ...
    def on_epoch(self, trainer: "Trainer") -> None: ...
    def on_tick(self, trainer: "Trainer", row: dict[str, Any]) -> None: ...
    def on_checkpoint(self, trainer: "Trainer", path: Path) -> None: ...
    def on_end(self, trainer: "Trainer", result: "TrainResult") -> None: ...
    def on_close(self, trainer: "Trainer") -> None: ...  # always, after on_end or an error


class StepHook(Callback):
    """A function called after every step on every rank (tests inject faults and signals with it)."""

    main_only = False

    def __init__(self, fn: Callable[["Trainer"], None]):
        self.fn = fn

    def on_step(self, trainer: "Trainer") -> None:
        self.fn(trainer)


class MetricsCsv(Callback):
    """metrics.csv: one row per tick, with every column the row has (losses, lrs, images/s, times)."""

    def __init__(self) -> None:
        self.log: MetricsLog | None = None

    def on_start(self, trainer: "Trainer") -> None:
        self.log = MetricsLog(trainer.run_dir / "metrics.csv", trainer.row_fields())

    def on_tick(self, trainer: "Trainer", row: dict[str, Any]) -> None:
        assert self.log is not None
        self.log.write(row)

    def on_close(self, trainer: "Trainer") -> None:
        if self.log is not None:
            self.log.close()
            self.log = None


class SampleGrids(Callback):
    """A grid of the fixed sample inputs every `train.sample_every_epochs` epochs, and `final.png` at the end."""

    def on_epoch(self, trainer: "Trainer") -> None:
        task = trainer.task
        if task.epoch % trainer.cfg.train.sample_every_epochs == 0:
            save_grid(task.sample_grid(), trainer.run_dir / "samples" / f"epoch-{task.epoch:04d}.png",
                      captions=task.grid_captions())

    def on_end(self, trainer: "Trainer", result: "TrainResult") -> None:
        task = trainer.task
        save_grid(task.sample_grid(), trainer.run_dir / "samples" / "final.png", captions=task.grid_captions())


def plot_title(trainer: "Trainer") -> str:
    """What every plot of a run is titled with: the run and its competition."""
    return f"run {trainer.run_dir.resolve().name}, {trainer.cfg.name}"


class LossPlots(Callback):
    """losses.png and d_outputs.png from metrics.csv at the end, titled with the run and the competition."""

    def on_end(self, trainer: "Trainer", result: "TrainResult") -> None:
        plot_metrics(trainer.run_dir / "metrics.csv", trainer.run_dir, trainer.task.loss_names,
                     title=plot_title(trainer))


def default_callbacks() -> list[Callback]:
    return [MetricsCsv(), SampleGrids(), LossPlots()]
