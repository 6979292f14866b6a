"""Kaggle's I'm Something of a Painter Myself: photo_jpg/ (to translate) and monet_jpg/ (the style)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from kompete.layouts import LayoutSpec, register
from kompete.schema import opt


@dataclass(frozen=True)
class MonetOptions:
    source_dir: str = opt("photo_jpg", "the photos to translate")
    target_dir: str = opt("monet_jpg", "the paintings whose style is learned")
    load_size: int = opt(286, "resize before the random crop to image_size", ge=8)


def _loader() -> Callable:
    from kompete.data.monet import load_domains

    return load_domains


SPEC = register(LayoutSpec(
    name="monet", task="translate", options=MonetOptions,
    roles={"source": ("source_dir", "images"), "target": ("target_dir", "images")},
    train_role="source", load=_loader, summary="two domains: photos and paintings"))
