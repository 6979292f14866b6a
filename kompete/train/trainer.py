"""The one training loop: time-budgeted, checkpointing, NaN-guarded, signal-safe. It never learns the GAN maths.

Per step it only enqueues device work (`task.step` returns device tensors). The loop asks one question
before every step, `stop_reason()` (epochs, max steps, signal, deadline; under DDP the ranks agree on the
last two at ticks, so all stop at the same step), and every `train.log_every` steps it ticks: read the
pending losses once (the only host sync) and check they are finite, checkpoint when due, update the
progress bar, then hand the metrics row to the callbacks (metrics.csv, grids, plots, evaluations). The
clock (host time, cheap) decides when to stop.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import click
import torch

from kompete.algorithms.base import Task
from kompete.config import Config, save_config
from kompete.errors import TrainingError
from kompete.train import state as ckpt
from kompete.train.budget import Budget
from kompete.train.callbacks import Callback, StepHook, default_callbacks
from kompete.train.monitor import Progress
from kompete.train.schedule import lr_factor
@dataclass
class TrainResult:
    steps: int
    epochs: int
    seconds: float
    reason: str  # "deadline", "epochs", "signal", "max_steps"
    checkpoint: Path | None
    images_per_s: float
    run_dir: Path
    nan_restores: int = 0
    signal_name: str = ""
    notes: list[str] = field(default_factory=list)
    steps_run: int = 0  # steps made by this process (a resumed run started above 0)
    budget_s: float = 0.0  # the whole budget, from the process (or kernel) start
    setup_s: float = 0.0  # from the budget's start to the first step: data, model, estimates, evaluation set-up
    reserve_s: float = 0.0  # kept after training
    reserve_for: str = ""
    callback_s: dict[str, float] = field(default_factory=dict)  # seconds inside each callback, by name

    def lines(self) -> list[str]:
        return [f"stopped       {self.reason}" + (f" ({self.signal_name})" if self.signal_name else ""),
                f"steps         {self.steps} ({self.epochs} epochs; {self.steps_run} in this run)",
                f"time          {self.seconds:.1f} s, {self.images_per_s:.3g} images/s",
                *([self.time_line()] if self.budget_s else []),
                f"checkpoint    {self.checkpoint}",
                f"run           {self.run_dir}"]

    def time_line(self) -> str:
        """Where the budget went: setup, training (the evaluations' share), reserve, what is left unused."""
        evaluating = self.callback_s.get("TrainingEvaluation", 0.0)
        others = sum(self.callback_s.values()) - evaluating
        share = f"evaluation {evaluating:.0f} s = {evaluating / max(self.budget_s, 1e-9):.0%} of the budget, "
        done = self.setup_s + self.seconds
        return (f"budget        {self.budget_s:.0f} s: setup {self.setup_s:.0f} s, training {self.seconds:.0f} s "
                f"({share if evaluating else ''}other callbacks {others:.0f} s), done {done:.0f} s in: "
                f"{self.budget_s - done:.0f} s left of the {self.reserve_s:.0f} s kept for "
                f"{self.reserve_for or 'nothing'}")


class Trainer:
    """Runs `task` until the budget's training window closes, the epoch cap, or a signal.

    `callbacks` (default: metrics.csv, sample grids, loss plots) do everything around the loop.
    `on_step(trainer)` (optional) is called after every step; tests use it to inject faults.
    `max_steps` caps the run (tests, benchmarks).
    """

    def __init__(self, cfg: Config, task: Task, run_dir: str | Path, budget: Budget, progress: bool = True,
                 callbacks: Sequence[Callback] | None = None, on_step: Callable[["Trainer"], None] | None = None,
                 max_steps: int | None = None):
        self.cfg, self.task, self.budget = cfg, task, budget
        self.run_dir = Path(run_dir)
        self.progress, self.max_steps = progress, max_steps
        self.callbacks: list[Callback] = list(default_callbacks() if callbacks is None else callbacks)
        if on_step is not None:
            self.callbacks.append(StepHook(on_step))
        self.lr_scale = 1.0
        self.nan_restores = 0
        self.last_checkpoint: Path | None = None
        self.stop_signal: int | None = None
        self._agreed_stop: str | None = None  # DDP: what the ranks agreed on at the last tick
        self.callback_s: dict[str, float] = {}  # seconds spent in each callback (the run's summary)
        self._step_s = 0.0  # a step's usual host time: the loop does not start one that would end past the window
        self.start_step = 0
        self._pending: list[dict[str, torch.Tensor]] = []
        self._reset_rate_window()

    # ----------------------------------------------------------------- resume
    def resume(self, where: str | Path) -> Path:
        """Continue from the newest checkpoint of a run folder (or a checkpoint file)."""
        warn = (lambda m: click.echo(m, err=True)) if self.task.ctx.is_main else None
        path, payload = ckpt.load_newest(where, warn)  # on the CPU: RNG states must stay there; load_state_dict moves the rest
        try:
            self.task.load_state_dict(payload["task"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise TrainingError(f"checkpoint {path} does not fit this config "
                                f"({str(exc).splitlines()[0][:160]})",
                                hint="train into another --out, or pass --fresh to start over") from None
        self.lr_scale = float(payload.get("trainer", {}).get("lr_scale", 1.0))
        self.last_checkpoint = path
        return path

    # ----------------------------------------------------------------- loop
    def run(self) -> TrainResult:
        task = self.task
        if task.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.cfg, self.run_dir / "config.yaml")
        self.bar = Progress(self.budget.train_seconds, self.progress and task.ctx.is_main)
        restore_signals = self._install_signals()
        self.start_time = time.monotonic()
        self.bar.update(self.start_time - self.budget.start)  # the setup already spent part of the window
        self.start_step = task.step_count
        self._reset_rate_window()  # a resume since __init__ moved the step count
        self._last_ckpt_time = self.start_time
        self._last_epoch = task.epoch
        try:
            if self.last_checkpoint is None:
                self._checkpoint()  # step 0: something to restore if the very first steps blow up
            self._call("on_start")
            while (reason := self.stop_reason()) is None:
                self._advance()
                if self._tick_due():
                    self._tick()
            row = self._flush()
            if row is not None:
                self._checkpoint()
                if row:
                    self._call("on_tick", row)
            result = self._result(reason)
            self._call("on_end", result)
        finally:
            restore_signals()
            self.bar.close()
            self._call("on_close")
        return result

    def stop_reason(self) -> str | None:
        """Why training stops now, or None. Host facts only: asking costs no sync."""
        t, task = self.cfg.train, self.task
        if task.epoch >= t.epochs:
            return "epochs"
        if self.max_steps is not None and task.step_count >= self.max_steps:
            return "max_steps"
        if task.ctx.ddp:
            return self._agreed_stop
        if self.stop_signal is not None:
            return "signal"
        if self._past_deadline():
            return "deadline"
        return None

    def _past_deadline(self, now: float | None = None) -> bool:
        """Whether one more step would end past the training window: a slow step (a loaded CPU) must not
        start a few seconds before the end and finish well after it."""
        now = time.monotonic() if now is None else now
        return now + self._step_s >= self.budget.train_end

    def row_fields(self) -> list[str]:
        """The columns of a metrics row, in order."""
        return ["step", "epoch", *self.task.loss_names, *[f"lr_{k}" for k in self.task.base_lrs()],
                "images_per_s", "elapsed_s", "time_left_s", *[f for cb in self.callbacks for f in cb.fields]]

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start_time

    def _advance(self) -> None:
        """One step: learning rates for where the run is, a batch, the task's step."""
        t, task = self.cfg.train, self.task
        if t.lr_over == "epochs":  # survives resumes: the step count comes from the checkpoint
            progress = task.step_count / max(1, task.steps_per_epoch * t.epochs)
        else:
            progress = (time.monotonic() - self.budget.start) / max(1e-9, self.budget.train_seconds)
        self._set_lrs(lr_factor(t, progress) * self.lr_scale)
        batch = task.next_batch()
        if task.epoch != self._last_epoch:
            self._last_epoch = task.epoch
            self._call("on_epoch")
        task.ctx.mark_step()
        started = time.monotonic()
        self._pending.append(task.step(batch))
        self._time_step(time.monotonic() - started)
        self._call("on_step")

    def _time_step(self, seconds: float) -> None:
        """A running mean of a step's host time (on a GPU only the enqueueing: an underestimate, never a late
        stop). The run's first step (compiling, warm-up) is left out."""
        if self.task.step_count - self.start_step > 1:
            self._step_s = seconds if self._step_s == 0 else 0.7 * self._step_s + 0.3 * seconds

    def _checkpoint_due(self) -> bool:
        return time.monotonic() - self._last_ckpt_time >= self.cfg.train.checkpoint_minutes * 60

    def _tick_due(self) -> bool:
        at_log = self.task.step_count % self.cfg.train.log_every == 0
        return at_log if self.task.ctx.ddp else at_log or self._checkpoint_due()

    def _tick(self) -> None:
        """Maintenance in a fixed order: agree (DDP), flush + NaN check, checkpoint, progress, callbacks."""
        ctx = self.task.ctx
        due = self._checkpoint_due()
        if ctx.ddp:
            late, signalled, due = ctx.agree([self._past_deadline(),
                                              self.stop_signal is not None, due])
            if late or signalled:
                self._agreed_stop = "signal" if signalled else "deadline"
        row = self._flush()
        if row is None:
            return  # restored from the last checkpoint
        if due:
            self._checkpoint()
        self.bar.update(time.monotonic() - self.budget.start)
        if row:
            self._call("on_tick", row)

    def _call(self, hook: str, *args: Any) -> None:
        main = self.task.ctx.is_main
        for cb in self.callbacks:
            if main or not cb.main_only:
                if hook == "on_step":  # every step: not timed, it must stay cheap anyway
                    cb.on_step(self)
                    continue
                t = time.monotonic()
                getattr(cb, hook)(self, *args)
                name = type(cb).__name__
                self.callback_s[name] = self.callback_s.get(name, 0.0) + time.monotonic() - t

    def _result(self, reason: str) -> TrainResult:
        task = self.task
        seconds = self.elapsed
        steps = task.step_count - self.start_step
        sig = signal.Signals(self.stop_signal).name if self.stop_signal is not None else ""
        b = self.budget
        return TrainResult(task.step_count, task.epoch, seconds, reason, self.last_checkpoint,
                           steps * task.images_per_step / max(seconds, 1e-9), self.run_dir, self.nan_restores, sig,
                           steps_run=steps, budget_s=b.total, setup_s=self.start_time - b.start,
                           reserve_s=b.reserve_s, reserve_for=b.reserve_for, callback_s=dict(self.callback_s))

    # ----------------------------------------------------------------- pieces
    def _set_lrs(self, factor: float) -> None:
        base = self.task.base_lrs()
        for name, groups in self.task.param_groups().items():
            for group in groups:
                group["lr"] = base[name] * factor

    def _flush(self) -> dict[str, Any] | None:
        """Read the pending losses (one sync) into a metrics row ({} when nothing was pending).

        None when they were not finite and the run was restored from the last checkpoint."""
        if not self._pending:
            return {}
        names = list(self._pending[0])
        values = torch.stack([torch.stack([p[n].float() for n in names]) for p in self._pending]).cpu()
        self._pending.clear()
        (bad,) = self.task.ctx.agree([not bool(torch.isfinite(values).all())])  # all ranks restore, or none
        if bad:
            self._restore_after_nan()
            return None
        means = dict(zip(names, values.mean(0).tolist()))
        now = time.monotonic()
        rate = (self.task.step_count - self._window_step) * self.task.images_per_step / max(1e-9, now - self._window_start)
        self._window_start, self._window_step = now, self.task.step_count
        lrs = {f"lr_{k}": groups[0]["lr"] for k, groups in self.task.param_groups().items()}
        row = {"step": self.task.step_count, "epoch": self.task.epoch, **means, **lrs, "images_per_s": rate,
               "elapsed_s": now - self.start_time, "time_left_s": self.budget.left(now)}
        self.bar.update(now - self.budget.start, step=self.task.step_count, ep=self.task.epoch,
                        **{k: v for k, v in means.items() if k in ("d", "g")}, left=f"{self.budget.left(now):.0f}s")
        return row

    def _reset_rate_window(self) -> None:
        """images/s counts from here: after a resume or a restore, earlier steps were not made in this window."""
        self._window_start, self._window_step = time.monotonic(), self.task.step_count

    def _restore_after_nan(self) -> None:
        self.nan_restores += 1
        step = self.task.step_count
        if self.nan_restores > self.cfg.train.nan_retries or self.last_checkpoint is None:
            raise TrainingError(f"non-finite loss near step {step} after {self.nan_restores - 1} restores "
                                f"with lower learning rates; last good checkpoint: {self.last_checkpoint}",
                                hint="lower train.lr_g / train.lr_d, or try another train.loss")
        payload = ckpt.load_checkpoint(self.last_checkpoint)
        self.task.load_state_dict(payload["task"])
        self._reset_rate_window()  # the step count went back
        self.lr_scale *= 0.5
        if self.task.ctx.is_main:
            click.echo(f"\nwarning: non-finite loss near step {step}; restored {self.last_checkpoint.name}, "
                       f"learning rates x{self.lr_scale:g}", err=True)

    def checkpoint_payload(self) -> dict[str, Any]:
        """Everything a checkpoint holds: the task's state, the trainer's, the config, the rebuild facts."""
        return {"task": self.task.state_dict(), "trainer": {"lr_scale": self.lr_scale},
                "config": self.cfg.to_dict(), "meta": self.task.checkpoint_meta(), "step": self.task.step_count}

    def _checkpoint(self) -> Path:
        """Rank 0 writes; every rank then knows the path (a NaN restore loads it on all of them)."""
        ctx, step = self.task.ctx, self.task.step_count
        if ctx.is_main:
            ckpt.save_checkpoint(self.run_dir, step, self.checkpoint_payload(), self.cfg.train.keep_checkpoints)
        ctx.barrier()
        self.last_checkpoint = ckpt.checkpoint_path(self.run_dir, step)
        self._last_ckpt_time = time.monotonic()
        self._call("on_checkpoint", self.last_checkpoint)
        return self.last_checkpoint

    def _install_signals(self) -> Callable[[], None]:
        """SIGTERM/SIGINT end the loop cleanly (a checkpoint is saved); a second one acts as usual."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

        def handler(signum: int, frame: Any) -> None:
            if self.stop_signal is not None:
                signal.signal(signum, previous[signum])
                signal.raise_signal(signum)
                return
            self.stop_signal = signum

        for s in previous:
            signal.signal(s, handler)

        def restore() -> None:
            for s, h in previous.items():
                signal.signal(s, h)

        return restore
