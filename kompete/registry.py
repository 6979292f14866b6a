"""Name -> object registries, so configs choose algorithms, networks and losses by name. Torch-free: each
registry lives with what it names (kompete.algorithms.ALGORITHMS, kompete.losses.LOSSES, the gan
algorithm's networks in kompete.models.base.GAN_NETWORKS)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Generic, Iterable, TypeVar

from kompete.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str, key: str = "") -> T:
        """The entry; an unknown name is a ConfigError listing the valid ones (naming the config `key`)."""
        try:
            return self._items[name]
        except KeyError:
            what = f"'{key}' is {name!r}" if key else f"unknown {self.kind} {name!r}"
            raise ConfigError(f"{what}; choose one of: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items



_imported: set[str] = set()


def import_submodules(package: str, path: Iterable[str], packages_only: bool = False) -> None:
    """Import each module (or only each sub-package) of `package` once: importing one registers what it names.
    The folder is scanned once per process, not at every lookup."""
    if package in _imported:
        return
    for info in pkgutil.iter_modules(path):
        if info.ispkg or not packages_only:
            importlib.import_module(f"{package}.{info.name}")
    _imported.add(package)
