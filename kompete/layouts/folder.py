"""Any folder of images, or of class sub-folders of images (`kompete init` writes its YAML)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

from kompete.layouts import LayoutSpec, register
from kompete.schema import opt


@dataclass(frozen=True)
class FolderOptions:
    images_dir: str = opt("all-dogs", "the folder of images or class subfolders ('' = the data dir itself)")
    crop: Literal["center", "random", "none"] = opt(
        "center", "the square taken before the resize: the centre, a random one (seeded by train.seed, "
                  "drawn once when the data is prepared), or none (the whole image, squashed)")


def _loader() -> Callable:
    from kompete.data.folder import prepare_folder

    return prepare_folder


SPEC = register(LayoutSpec(
    name="folder", task="generate", options=FolderOptions, roles={"images": ("images_dir", "images_or_classes")},
    train_role="images", load=_loader, summary="images, or class subfolders of images"))
