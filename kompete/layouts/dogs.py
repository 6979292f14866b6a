"""Kaggle's Generative Dog Images: all-dogs/*.jpg and Annotation/<wnid>-<breed>/<image id> Pascal-VOC boxes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from kompete.layouts import LayoutSpec, register
from kompete.schema import opt


@dataclass(frozen=True)
class DogsOptions:
    images_dir: str = opt("all-dogs", "folder of training JPGs")
    annotations_dir: str = opt("Annotation", "folder of <breed>/<image id> Pascal-VOC XML files")
    crop_margin: float = opt(0.08, "margin added around each bounding box, as a fraction of its size", ge=0, le=1)
    min_box_size: int = opt(0, "skip boxes whose shorter side is below this many pixels", ge=0)
    use_boxes: bool = opt(True, "crop bounding boxes (False: whole images, centre-cropped)")


def _loader() -> Callable:
    from kompete.data.dogs import prepare_dogs

    return prepare_dogs


SPEC = register(LayoutSpec(
    name="dogs", task="generate", options=DogsOptions,
    roles={"images": ("images_dir", "images"), "annotations": ("annotations_dir", "file_folders")},
    train_role="images", load=_loader, summary="dog photos with breed bounding boxes (one crop per box)"))
