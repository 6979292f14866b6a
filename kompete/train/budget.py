"""The deadline: training stops early enough that generation and zipping still fit before it.

The hard end is `--time-budget` from now, else the competition's runtime limit counted from the kernel's
start (env KOMPETE_KERNEL_START, Unix seconds, set by the kernel script; without it, from now). The
training window ends `reserve_s` before the hard end: the measured generation time with 25 % slack,
plus a safety margin (the configured one, at most 10 % of the whole budget so short runs still train).
"""

from __future__ import annotations

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
    if re.fullmatch(r"\d+(\.\d+)?", s):
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
        try:
            elapsed = time.time() - float(started)
        except ValueError:
            raise ConfigError(f"KOMPETE_KERNEL_START={started!r} is not a Unix time in seconds") from None
        return Budget(mono, mono + limit - max(0.0, elapsed))
    return Budget(mono, mono + limit)


def set_reserve(budget: Budget, generation_s: float, safety_margin_s: float) -> Budget:
    total = budget.end - budget.start
    budget.reserve_s = 1.25 * generation_s + min(safety_margin_s, 0.1 * total)
    if budget.train_seconds <= 0:
        raise TrainingError(f"no time left to train: {budget.describe()}",
                            hint="give a longer --time-budget, or fewer generate.n_images")
    return budget
