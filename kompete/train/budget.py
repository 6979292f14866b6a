"""The deadline: training stops early enough that generation and zipping still fit before it.

The hard end is `--time-budget` from now, else the competition's runtime limit counted from the kernel's
start (env KOMPETE_KERNEL_START, Unix seconds, set by the kernel script; without it, from now). The
training window ends `reserve_s` before the hard end: the measured generation time with 25 % slack,
plus a safety margin (the configured one, at most 10 % of the whole budget so short runs still train).
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
    start: float  # time.monotonic() when the run began
    end: float  # monotonic hard deadline for training + generation
    reserve_s: float = 0.0  # kept for generation and safety

    @property
    def train_end(self) -> float:
        return self.end - self.reserve_s

    @property
    def train_seconds(self) -> float:
        return self.train_end - self.start

    def left(self, now: float | None = None) -> float:
        """Seconds of training left."""
        return self.train_end - (time.monotonic() if now is None else now)

    def describe(self) -> str:
        return (f"budget {self.end - self.start:.0f} s: train {max(0.0, self.train_seconds):.0f} s, "
                f"reserve {self.reserve_s:.0f} s for generation and safety")


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


def make_budget(cfg: Config, time_budget_s: float | None = None, now: float | None = None) -> Budget:
    """The hard deadline, before any reserve is known."""
    mono = time.monotonic() if now is None else now
    if time_budget_s is not None:
        return Budget(mono, mono + time_budget_s)
    started = os.environ.get("KOMPETE_KERNEL_START")
    limit = cfg.limits.runtime_hours * 3600
    if started:
        return Budget(mono, mono + limit - _kernel_elapsed(started, limit))
    return Budget(mono, mono + limit)


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


def set_reserve(budget: Budget, generation_s: float, safety_margin_s: float) -> Budget:
    total = budget.end - budget.start
    generation_s = max(0.0, generation_s)
    budget.reserve_s = 1.25 * generation_s + min(safety_margin_s, 0.1 * total)
    if budget.train_seconds <= 0:
        raise TrainingError(f"no time left to train: generating the submission is estimated at {generation_s:.0f} s "
                            f"(reserved x1.25) plus a {min(safety_margin_s, 0.1 * total):.0f} s safety margin, "
                            f"out of a {total:.0f} s budget",
                            hint="give a longer --time-budget, or train on a faster device (--device)")
    return budget
