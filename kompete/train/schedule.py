"""Learning-rate schedules over the fraction of the time budget used (not epochs: the clock ends training)."""

from __future__ import annotations

import math

from kompete.config import TrainConfig


def lr_factor(t: TrainConfig, progress: float) -> float:
    """Multiplier of the base learning rate at `progress` in [0, 1] of the training window."""
    p = min(max(progress, 0.0), 1.0)
    if t.lr_schedule == "constant":
        return 1.0
    if t.lr_schedule == "cosine":  # cosine with warm restarts: lr_cycles equal cycles over the budget
        phase = (p * t.lr_cycles) % 1.0 if p < 1.0 else 1.0
        return 0.5 * (1.0 + math.cos(math.pi * phase))
    if t.lr_schedule == "linear":  # constant, then linear to 0 (the CycleGAN recipe)
        if p <= t.lr_decay_start:
            return 1.0
        return max(0.0, 1.0 - (p - t.lr_decay_start) / max(1e-9, 1.0 - t.lr_decay_start))
    raise ValueError(t.lr_schedule)
