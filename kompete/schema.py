"""The field helper every config section uses: a default, its help text and numeric bounds. Torch-free."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def opt(default: Any, help: str = "", *, ge: float | None = None, le: float | None = None,
        gt: float | None = None):
    """A config field with a documented default and optional numeric bounds."""
    meta = {"help": help, "ge": ge, "le": le, "gt": gt}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)
