"""Competition layouts: how a competition's files lie on disk, one torch-free module each (`layouts/<name>.py`).

A layout registers a `LayoutSpec`: its `data.layout` name, the kind of data it gives (`generate`: one
ImageSet, `translate`: a DomainPair), the dataclass of its own `data:` keys (joined to the shared ones and
checked after the lookup, like an algorithm's section), its folders by role, and `load()`, which imports its
loader (`kompete/data/<name>.py`) only when the data is read. Reading a config needs no more than this.

Adding a layout: `layouts/<name>.py` (the spec) and `data/<name>.py` (the loader); nothing else to edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from kompete.registry import Registry, import_submodules

# what a role's folder must hold (kompete.data.locate checks it): plain images, images or class folders of
# images, or folders of files (dogs' Annotation/<breed>/<id>)
FOLDER_KINDS = ("images", "images_or_classes", "file_folders")


@dataclass(frozen=True)
class LayoutSpec:
    name: str  # the data.layout value
    task: str  # "generate" (one ImageSet) or "translate" (a DomainPair: source and target domains)
    options: type  # the dataclass of its own data: keys
    roles: dict[str, tuple[str, str]]  # role -> (the options key naming its folder, one of FOLDER_KINDS)
    train_role: str  # the role whose folder holds the training images (metric.reference: train_images)
    load: Callable[[], Callable]  # imports and returns loader(cfg, data_dir, progress) -> ImageSet | DomainPair
    summary: str = ""


LAYOUTS: Registry[LayoutSpec] = Registry("layout")


def register(spec: LayoutSpec) -> LayoutSpec:
    bad = [kind for _, kind in spec.roles.values() if kind not in FOLDER_KINDS]
    if bad or spec.train_role not in spec.roles:
        raise ValueError(f"layout {spec.name}: roles {spec.roles} / train_role {spec.train_role!r} do not fit")
    return LAYOUTS.register(spec.name)(spec)


def specs() -> list[LayoutSpec]:
    """Every registered layout (importing each module of this package registers it)."""
    import_submodules(__name__, __path__)
    return [LAYOUTS.get(n) for n in LAYOUTS.names()]


def layout(name: str, key: str = "data.layout") -> LayoutSpec:
    """The registered layout; an unknown name is a ConfigError naming `key` and listing the valid ones."""
    specs()
    return LAYOUTS.get(name, key)
