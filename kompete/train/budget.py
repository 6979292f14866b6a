"""The deadline: one clock from the process start, and a training window that leaves time for what follows.

The hard end is `--time-budget` counted from the start of the process (`process_started`: loading data,
weights, reference statistics and compile warm-up are inside it), else the competition's runtime limit
counted from the kernel's start (env KOMPETE_KERNEL_START, Unix seconds, set by the kernel script). The
training window ends `reserve_s` before the hard end. Only what this process (or the kernel's next stage)
will spend is reserved: when it generates, the measured generation time with 25 % slack plus a safety
margin (the configured one, at most 10 % of the budget); otherwise a closing margin for the last
checkpoint and plots (the safety margin, at most 10 % of the budget).
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass

from kompete.config import Config
from kompete.errors import ConfigError, TrainingError


@dataclass
class Budget:
    start: float  # time.monotonic() when the run began (the process start for the CLI)
    end: float  # monotonic hard deadline for training + generation
    reserve_s: float = 0.0  # kept for generation and safety
    reserve_for: str = "closing"  # what the reserve is for, in the summary

    @property
    def train_end(self) -> float:
        return self.end - self.reserve_s

    @property
    def train_seconds(self) -> float:
        return self.train_end - self.start

    def left(self, now: float | None = None) -> float:
        """Seconds of training left."""
        return self.train_end - (time.monotonic() if now is None else now)

    @property
    def total(self) -> float:
        return self.end - self.start

    def describe(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        return (f"budget {self.total:.0f} s: setup {now - self.start:.0f} s so far, train until "
                f"{max(0.0, self.train_end - self.start):.0f} s ({max(0.0, self.train_end - now):.0f} s left), "
                f"reserve {self.reserve_s:.0f} s for {self.reserve_for}")


def process_started() -> float:
    """time.monotonic() at which this process started (Linux: from /proc), else at kompete's first import.

    The budget counts from here: the seconds spent importing torch and loading are the user's too."""
    try:
        ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        uptime = float(open("/proc/uptime").read().split()[0])
        age = uptime - ticks / os.sysconf("SC_CLK_TCK")
        if 0 <= age < 86400:
            return time.monotonic() - age
    except (OSError, ValueError, IndexError):
        pass
    return _IMPORTED


_IMPORTED = time.monotonic()


def parse_duration(text: str) -> float:
    """'8h30m', '90m', '60s', '45' (seconds), '1.5h' -> seconds."""
    s = text.strip().lower()
    if not s:
        raise ConfigError("--time-budget is empty: expected a duration like 8h30m, 90m, 60s or 45")
    if re.fullmatch(r"\d+(\.\d+)?", s):
        if float(s) <= 0:
            raise ConfigError(f"--time-budget {text!r} must be positive")
        return float(s)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(h|m|s)", s)
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*(h|m|s)", "", s).strip():
        raise ConfigError(f"--time-budget {text!r}: expected a duration like 8h30m, 90m, 60s or 45")
    seconds = sum(float(v) * {"h": 3600, "m": 60, "s": 1}[u] for v, u in parts)
    if seconds <= 0:
        raise ConfigError(f"--time-budget {text!r} must be positive")
    return seconds


def make_budget(cfg: Config, time_budget_s: float | None = None, now: float | None = None,
                started: float | None = None) -> Budget:
    """The hard deadline, before any reserve is known. `now`: the current time.monotonic(); `started`: when
    the clock began (the CLI: its process start), default now. Inside a kernel (KOMPETE_KERNEL_START) without
    --time-budget, the budget starts at the kernel's start: its preflight and earlier stages are in it too."""
    mono = time.monotonic() if now is None else now
    origin = mono if started is None else started
    if time_budget_s is not None:
        return Budget(origin, origin + time_budget_s)
    kernel_started = os.environ.get("KOMPETE_KERNEL_START")
    limit = cfg.limits.runtime_hours * 3600
    if kernel_started:
        start = mono - _kernel_elapsed(kernel_started, limit)
        return Budget(start, start + limit)
    return Budget(origin, origin + limit)


def _kernel_elapsed(started: str, limit: float) -> float:
    """Seconds since KOMPETE_KERNEL_START, refusing values that cannot be this kernel's start."""
    name = f"KOMPETE_KERNEL_START={started!r}"
    try:
        start = float(started)
    except ValueError:
        raise ConfigError(f"{name} is not a Unix time in seconds") from None
    if not math.isfinite(start):
        raise ConfigError(f"{name} is not a Unix time in seconds")
    elapsed = time.time() - start
    if elapsed < -60:  # clocks differ a little, never by minutes
        raise ConfigError(f"{name} is {-elapsed:.0f} s in the future", hint="unset it, or pass --time-budget")
    if elapsed >= limit:
        raise ConfigError(f"{name} was {elapsed:.0f} s ago: the whole {limit:.0f} s runtime limit has passed",
                          hint="unset it (it is set by the kernel script), or pass --time-budget")
    return max(0.0, elapsed)


CLOSING_FRACTION = 0.1  # without generation: the last checkpoint and plots, at most this share of the budget


def set_reserve(budget: Budget, generation_s: float, safety_margin_s: float) -> Budget:
    """Keep 1.25 x the generation estimate plus a safety margin after training: this run will generate."""
    total = budget.total
    generation_s = max(0.0, generation_s)
    margin = min(safety_margin_s, 0.1 * total)
    budget.reserve_s = 1.25 * generation_s + margin
    budget.reserve_for = f"generation ({generation_s:.0f} s estimated, x1.25) and a {margin:.0f} s margin"
    if budget.left() <= 0:
        raise TrainingError(f"no time left to train: {time.monotonic() - budget.start:.0f} s of setup, then generating "
                            f"the submission is estimated at {generation_s:.0f} s (reserved x1.25) plus a "
                            f"{margin:.0f} s safety margin, out of a {total:.0f} s budget",
                            hint=f"give a longer --time-budget (at least {suggest_seconds(budget):.0f} s), "
                                 "or train on a faster device (--device)")
    return budget


def set_closing_reserve(budget: Budget, safety_margin_s: float) -> Budget:
    """Nothing generates after this run: keep only a margin for its last checkpoint and plots."""
    budget.reserve_s = min(safety_margin_s, CLOSING_FRACTION * budget.total)
    budget.reserve_for = "the last checkpoint and plots"
    return budget


def suggest_seconds(budget: Budget, train_s: float = 60.0, now: float | None = None) -> float:
    """A budget that would train `train_s` seconds after the setup spent so far and the same reserve."""
    now = time.monotonic() if now is None else now
    return math.ceil((now - budget.start + budget.reserve_s + train_s) / 10) * 10
