"""Where the metric runs, and in what precision: always exact float32 (the score must not drift)."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


def default_device(requested: str | torch.device | None = None) -> torch.device:
    """The requested device (checked: a typo is a plain error), else cuda if available."""
    from kompete.runtime.device import parse_device

    return parse_device(requested)


@contextlib.contextmanager
def exact_float32(device: torch.device) -> Iterator[None]:
    """TF32 off for the block: training turns it on process-wide, and 10-bit mantissas move MiFID."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
