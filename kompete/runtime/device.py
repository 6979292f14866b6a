"""One reading of `--device` for every command (train, generate, score): a user's typo is one plain error.

A small shared piece (like `errors` and `paths`): the train loop and the metrics both take devices.
"""

from __future__ import annotations

import re

import torch

from kompete.errors import ConfigError

FORMS = "cpu, cuda, cuda:N or mps"


def parse_device(text: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """The device `text` names, checked against this machine; None: the best available.

    A bare `cuda` becomes `cuda:<local_rank>`: torch.cuda.set_device and device names need an index.
    """
    if isinstance(text, torch.device):
        text = str(text)
    if text is None:
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    s = text.strip().lower()
    if s == "cpu":
        return torch.device("cpu")
    if s == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError("--device mps: this machine has no Apple GPU (MPS)", hint=f"use one of {FORMS}")
        return torch.device("mps")
    m = re.fullmatch(r"cuda(?::(\d+))?", s)
    if m is None:
        raise ConfigError(f"--device {text!r}: not a device; expected {FORMS}")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {text}: no CUDA GPU is available here", hint="use --device cpu")
    index = int(m.group(1)) if m.group(1) is not None else local_rank
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(f"--device {text}: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}")
    return torch.device(f"cuda:{index}")
