"""gan-getting-started layout: `photo_jpg/` and `monet_jpg/`, two unpaired 256x256 domains.

Both domains are decoded once into uint8 arrays (cached) and go to the GPU whole; the CycleGAN
augmentation (resize to load_size, random crop, flip) runs there, per batch (kompete.data.augment).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kompete.config import Config
from kompete.data import locate
from kompete.data.images import (DataSummary, DomainPair, ImageSet, Timer, center_square, list_images, load_or_prepare,
                                 open_rgb, parallel_map, resize_square, stack)
from kompete.data.locate import download_hint
from kompete.errors import DataError


def load_domains(cfg: Config, root: Path, progress: bool = True) -> DomainPair:
    d = cfg.data
    found = locate.find(cfg, root).folders  # flat or a nested copy (kompete.data.locate)
    return DomainPair(source=load_domain(cfg, found.get("source", root / d.source_dir), progress),
                      target=load_domain(cfg, found.get("target", root / d.target_dir), progress))


def load_domain(cfg: Config, folder: Path, progress: bool = True) -> ImageSet:
    """Every readable image in `folder` at data.image_size, cached by the files and size."""
    size = cfg.data.image_size
    if not folder.is_dir():
        raise DataError(f"no {folder.name}/ folder in {folder.parent}",
                        hint=download_hint(cfg))
    with Timer() as timer:
        files, others = list_images(folder)
        if not files:
            raise DataError(f"no images in {folder}", hint=download_hint(cfg))
        image_set = load_or_prepare(f"monet-{folder.name}", files, {"layout": "monet", "size": size},
                                    lambda: _decode_all(files, others, size, progress, folder.name))
    image_set.summary.data_dir, image_set.summary.seconds = str(folder), timer.seconds
    if len(image_set) == 0:
        raise DataError(f"none of the {len(files)} images in {folder} could be read")
    return image_set


def _decode_all(files: list[Path], others: list[Path], size: int, progress: bool, name: str) -> ImageSet:
    summary = DataSummary(n_files=len(files) + len(others), image_size=size)
    for other in others:
        summary.skip("non-image files", other.name)
    decoded = parallel_map(decode_square, [(f, size) for f in files], desc=f"reading {name}", progress=progress)
    images, names = [], []
    for f, arr in zip(files, decoded):
        if arr is None:
            summary.skip("unreadable images", f.name)
        else:
            images.append(arr)
            names.append(f.name)
    summary.n_images = len(images)
    return ImageSet(stack(images, size), np.zeros(len(images), np.int64), [], summary, names)


def decode_square(job: tuple[Path, int]) -> np.ndarray | None:
    path, size = job
    img = open_rgb(path)
    return None if img is None else np.asarray(resize_square(center_square(img), size))
