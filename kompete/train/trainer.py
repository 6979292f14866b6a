"""The one training loop: time-budgeted, checkpointing, NaN-guarded, signal-safe. It never learns the GAN maths.

Per step it only enqueues device work (`task.step` returns device tensors); every `log_every` steps it
stacks the pending losses and reads them once (the only host sync), checks they are finite, and writes
a metrics row. The clock (host time, cheap) decides when to stop.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import click
import torch

from kompete.config import Config, save_config
from kompete.errors import TrainingError
from kompete.train import state as ckpt
from kompete.train.budget import Budget
from kompete.train.monitor import MetricsLog, Progress, plot_metrics, save_grid
from kompete.train.schedule import lr_factor
from kompete.train.task import Task


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

    def lines(self) -> list[str]:
        return [f"stopped       {self.reason}" + (f" ({self.signal_name})" if self.signal_name else ""),
                f"steps         {self.steps} ({self.epochs} epochs)",
                f"time          {self.seconds:.1f} s, {self.images_per_s:.0f} images/s",
                f"checkpoint    {self.checkpoint}",
                f"run           {self.run_dir}"]


class Trainer:
    """Runs `task` until the budget's training window closes, the epoch cap, or a signal.

    `on_step(trainer)` (optional) is called after every step; tests use it to inject faults.
    `max_steps` caps the run (tests, benchmarks).
    """

    def __init__(self, cfg: Config, task: Task, run_dir: str | Path, budget: Budget, progress: bool = True,
                 on_step: Callable[["Trainer"], None] | None = None, max_steps: int | None = None):
        self.cfg, self.task, self.budget = cfg, task, budget
        self.run_dir = Path(run_dir)
        self.progress, self.on_step, self.max_steps = progress, on_step, max_steps
        self.lr_scale = 1.0
        self.nan_restores = 0
        self.last_checkpoint: Path | None = None
        self.stop_signal: int | None = None
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
        t, task, ctx = self.cfg.train, self.task, self.task.ctx
        main = ctx.is_main
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.cfg, self.run_dir / "config.yaml")
        fields = ["step", "epoch", *task.loss_names, *[f"lr_{k}" for k in task.base_lrs()],
                  "images_per_s", "elapsed_s", "time_left_s"]
        log = MetricsLog(self.run_dir / "metrics.csv", fields) if main else None
        bar = Progress(self.budget.train_seconds, self.progress and main)
        restore = self._install_signals()
        start = time.monotonic()
        start_step = task.step_count
        self._reset_rate_window()  # a resume since __init__ moved the step count
        last_ckpt_time = start
        last_epoch = task.epoch
        reason = "deadline"
        try:
            if self.last_checkpoint is None:
                self._checkpoint()  # step 0: something to restore if the very first steps blow up
            while True:
                now = time.monotonic()
                if task.epoch >= t.epochs:
                    reason = "epochs"
                    break
                if self.max_steps is not None and task.step_count >= self.max_steps:
                    reason = "max_steps"
                    break
                # alone, the clock and signals are checked every step (host time: no sync); under DDP the
                # ranks agree on them at log steps instead, so that all stop at the same step
                if not ctx.ddp:
                    if self.stop_signal is not None:
                        reason = "signal"
                        break
                    if now >= self.budget.train_end:
                        break
                if t.lr_over == "epochs":  # survives resumes: the step count comes from the checkpoint
                    progress = task.step_count / max(1, task.steps_per_epoch * t.epochs)
                else:
                    progress = (now - self.budget.start) / max(1e-9, self.budget.train_seconds)
                self._set_lrs(lr_factor(t, progress) * self.lr_scale)
                batch = task.next_batch()
                if task.epoch != last_epoch:
                    last_epoch = task.epoch
                    if main and task.epoch % t.sample_every_epochs == 0:
                        save_grid(task.sample_grid(), self.run_dir / "samples" / f"epoch-{task.epoch:04d}.png")
                self._pending.append(task.step(batch))
                if self.on_step is not None:
                    self.on_step(self)
                at_log = task.step_count % t.log_every == 0
                due_ckpt = now - last_ckpt_time >= t.checkpoint_minutes * 60
                stop = False
                if ctx.ddp:
                    due_ckpt = False
                    if at_log:
                        late, signalled, due_ckpt = ctx.agree([time.monotonic() >= self.budget.train_end,
                                                               self.stop_signal is not None,
                                                               now - last_ckpt_time >= t.checkpoint_minutes * 60])
                        stop = late or signalled
                        reason = "signal" if signalled else "deadline"
                if at_log or due_ckpt:
                    if not self._flush(log, bar, now - start):
                        continue  # restored from the last checkpoint
                if due_ckpt:
                    self._checkpoint()
                    last_ckpt_time = time.monotonic()
                bar.update(now - start)
                if stop:
                    break
            if self._flush(log, bar, time.monotonic() - start):
                self._checkpoint()
            if main:
                save_grid(task.sample_grid(), self.run_dir / "samples" / "final.png")
                plot_metrics(self.run_dir / "metrics.csv", self.run_dir, task.loss_names)
        finally:
            restore()
            bar.close()
            if log is not None:
                log.close()
        seconds = time.monotonic() - start
        steps = task.step_count - start_step
        sig = signal.Signals(self.stop_signal).name if self.stop_signal is not None else ""
        return TrainResult(task.step_count, task.epoch, seconds, reason, self.last_checkpoint,
                           steps * task.images_per_step / max(seconds, 1e-9), self.run_dir, self.nan_restores, sig)

    # ----------------------------------------------------------------- pieces
    def _set_lrs(self, factor: float) -> None:
        base = self.task.base_lrs()
        for name, groups in self.task.param_groups().items():
            for group in groups:
                group["lr"] = base[name] * factor

    def _flush(self, log: MetricsLog | None, bar: Progress, elapsed: float) -> bool:
        """Read the pending losses (one sync). False when they were not finite and the run was restored."""
        if not self._pending:
            return True
        names = list(self._pending[0])
        values = torch.stack([torch.stack([p[n].float() for n in names]) for p in self._pending]).cpu()
        self._pending.clear()
        (bad,) = self.task.ctx.agree([not bool(torch.isfinite(values).all())])  # all ranks restore, or none
        if bad:
            self._restore_after_nan()
            return False
        means = dict(zip(names, values.mean(0).tolist()))
        now = time.monotonic()
        rate = (self.task.step_count - self._window_step) * self.task.images_per_step / max(1e-9, now - self._window_start)
        self._window_start, self._window_step = now, self.task.step_count
        lrs = {f"lr_{k}": groups[0]["lr"] for k, groups in self.task.param_groups().items()}
        row = {"step": self.task.step_count, "epoch": self.task.epoch, **means, **lrs, "images_per_s": rate,
               "elapsed_s": elapsed, "time_left_s": self.budget.left(now)}
        if log is not None:
            log.write(row)
        bar.update(elapsed, step=self.task.step_count, ep=self.task.epoch,
                   **{k: v for k, v in means.items() if k in ("d", "g")}, left=f"{self.budget.left(now):.0f}s")
        return True

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

    def _checkpoint(self) -> Path:
        """Rank 0 writes; every rank then knows the path (a NaN restore loads it on all of them)."""
        ctx, step = self.task.ctx, self.task.step_count
        if ctx.is_main:
            payload: dict[str, Any] = {"task": self.task.state_dict(), "trainer": {"lr_scale": self.lr_scale},
                                       "config": self.cfg.to_dict(), "meta": self.task.checkpoint_meta(),
                                       "step": step}
            ckpt.save_checkpoint(self.run_dir, step, payload, self.cfg.train.keep_checkpoints)
        ctx.barrier()
        self.last_checkpoint = ckpt.checkpoint_path(self.run_dir, step)
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
