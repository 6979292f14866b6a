"""The field helper every config section uses: a default, its help text and numeric bounds. Torch-free."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import field
from typing import Any


def opt(default: Any, help: str = "", *, ge: float | None = None, le: float | None = None,
        gt: float | None = None):
    """A config field with a documented default and optional numeric bounds."""
    meta = {"help": help, "ge": ge, "le": le, "gt": gt}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@functools.cache
def joined(section: type, *options: type | None) -> type:
    """A frozen dataclass with the keys of `section` and of each options dataclass (a network's, a layout's):
    one section in the YAML, each part declared beside what reads it. The same parts give the same class."""
    bases = tuple(dict.fromkeys(o for o in options if o is not None))
    if not bases:
        return section
    name = "_".join(c.__name__ for c in (section, *bases))
    return dataclasses.make_dataclass(name, [], bases=(*bases, section), frozen=True)
