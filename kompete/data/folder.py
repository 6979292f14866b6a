"""Folder layout: any folder of images, flat (one class) or in class sub-folders (their names, sorted, are the
labels a conditional model learns).

Every readable image, whatever its size and mode (grey, 16-bit, palette, alpha: `images.to_rgb`), is squared
as `data.crop` says (the centre; a random square drawn once, at preparation, from `train.seed` and the file's
path; or none: the whole image, squashed) and resized with an anti-aliased filter to `data.image_size`. Corrupt
files are counted and skipped. The prepared set is cached as one uint8 array like the other layouts.
"""

from __future__ import annotations

import os
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from kompete.config import Config
from kompete.data import locate
from kompete.data.images import (FOLDER_SUFFIXES, DataSummary, ImageSet, Timer, center_square, load_or_prepare,
                                 open_rgb, parallel_map, resize_square, stack)
from kompete.data.locate import download_hint
from kompete.errors import DataError


@dataclass
class FolderScan:
    """What a folder holds, before anything is decoded (also what `kompete init` reports)."""

    root: Path
    classes: list[str]  # sorted class folder names; one class named after the folder when it is flat
    files: list[Path] = field(default_factory=list)  # every image of every class, class by class, sorted
    labels: list[int] = field(default_factory=list)
    others: list[Path] = field(default_factory=list)  # files that are not images
    loose: list[Path] = field(default_factory=list)  # images beside the class folders, in no class
    flat: bool = True

    def counts(self) -> dict[str, int]:
        per = Counter(self.labels)
        return {name: per[i] for i, name in enumerate(self.classes)}


def _hidden(name: str) -> bool:
    return name.startswith((".", "__"))  # .DS_Store, .ipynb_checkpoints, __MACOSX


def _walk(folder: Path) -> tuple[list[Path], list[Path]]:
    """(images, other files) anywhere under `folder`, sorted by relative path; hidden entries skipped."""
    images, others = [], []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        for name in sorted(filenames):
            if _hidden(name):
                continue
            path = Path(dirpath) / name
            (images if path.suffix.lower() in FOLDER_SUFFIXES else others).append(path)
    return images, others


def _direct(folder: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """(images, other files, sub-folders) directly inside `folder`, sorted, hidden entries skipped."""
    images, others, subs = [], [], []
    for entry in sorted(folder.iterdir()):
        if _hidden(entry.name) or _loops_back(entry, folder):
            continue
        if entry.is_dir():
            subs.append(entry)
        elif entry.is_file():
            (images if entry.suffix.lower() in FOLDER_SUFFIXES else others).append(entry)
    return images, others, subs


def _loops_back(entry: Path, folder: Path) -> bool:
    """A linked folder that leads back to `folder` or above it (a symlink loop) is no class: it would hold the
    real images a second time and turn them into loose files."""
    if not entry.is_symlink():
        return False
    try:
        target, here = entry.resolve(), folder.resolve()
    except (OSError, RuntimeError):  # a link to itself: Python reports the loop as RuntimeError
        return True
    return target == here or target in here.parents


def scan(root: Path) -> FolderScan:
    """Classes and files of `root`: its sub-folders holding images (at any depth) are the classes; with
    none, the images directly inside are one class."""
    root = Path(root)
    images, others, subs = _direct(root)
    per_class = [(sub, *_walk(sub)) for sub in subs]
    per_class = [(sub, imgs, other) for sub, imgs, other in per_class if imgs]
    if not per_class:
        return FolderScan(root, [root.name or "images"], images, [0] * len(images), others)
    found = FolderScan(root, [sub.name for sub, _, _ in per_class], others=others, loose=images, flat=False)
    for label, (_, imgs, other) in enumerate(per_class):
        found.files += imgs
        found.labels += [label] * len(imgs)
        found.others += other
    return found


def image_files(folder: Path) -> list[Path]:
    """Every image anywhere under `folder`, sorted (a held-out reference set may have class folders too)."""
    return _walk(Path(folder))[0]


@dataclass(frozen=True)
class FolderJob:
    path: Path
    size: int
    crop: str
    seed: int  # the random crop's, from train.seed and the file's path: the same in every worker and run


def prepare_folder(cfg: Config, root: Path, progress: bool = True) -> ImageSet:
    """Every readable image under the images folder, squared, resized and cached by the inputs and settings."""
    d = cfg.data
    images_dir = locate.folder(cfg, root, "images")
    where = f"{d.images_dir}/ in {root}" if d.images_dir else str(root)
    if not images_dir.is_dir():
        raise DataError(f"no {d.images_dir}/ folder in {root}", hint=download_hint(cfg))
    with Timer() as timer:
        found = scan(images_dir)
        if not found.files:
            raise DataError(f"no images in {where} (looked for {', '.join(sorted(FOLDER_SUFFIXES))} files in it "
                            "and in its sub-folders)", hint=download_hint(cfg))
        seed = cfg.train.seed if d.crop == "random" else 0
        settings = {"layout": "folder", "size": d.image_size, "crop": d.crop, "seed": seed,
                    "classes": found.classes, "labels": found.labels}
        image_set = load_or_prepare("folder", found.files, settings,
                                    lambda: _prepare(found, d.image_size, d.crop, seed, progress))
    image_set.summary.data_dir, image_set.summary.seconds = str(images_dir), timer.seconds
    if len(image_set) == 0:
        raise DataError(f"none of the {len(found.files)} images in {where} could be read")
    return image_set


def _prepare(found: FolderScan, size: int, crop: str, seed: int, progress: bool) -> ImageSet:
    summary = DataSummary(n_files=len(found.files) + len(found.others) + len(found.loose), image_size=size)
    for other in found.others:
        summary.skip("non-image files", other.name)
    for image in found.loose:
        summary.skip("images outside the class folders", image.name)
    jobs = [FolderJob(f, size, crop, zlib.crc32(f"{seed}/{f.relative_to(found.root).as_posix()}".encode()))
            for f in found.files]
    decoded = parallel_map(decode_folder_image, jobs, desc=f"reading {found.root.name or 'images'}",
                           progress=progress)
    images, labels = [], []
    for job, label, arr in zip(jobs, found.labels, decoded):
        if arr is None:
            summary.skip("unreadable images", job.path.name)
        else:
            images.append(arr)
            labels.append(label)
    summary.n_images, summary.n_classes = len(images), len(found.classes)
    per = Counter(labels)
    summary.class_counts = {name: per[i] for i, name in enumerate(found.classes)}
    return ImageSet(stack(images, size), np.asarray(labels, np.int64), found.classes, summary)


def decode_folder_image(job: FolderJob) -> np.ndarray | None:
    """One image at size x size, or None when it cannot be read. Runs in worker processes."""
    img = open_rgb(job.path)
    if img is None:
        return None
    return np.asarray(resize_square(square(img, job.crop, job.seed), job.size))


def square(img: Image.Image, crop: str, seed: int = 0) -> Image.Image:
    """The square `crop` takes: the centre, a random one (drawn from `seed`), or the whole image ("none")."""
    if crop == "center":
        return center_square(img)
    if crop == "none":
        return img
    w, h = img.size
    side = min(w, h)
    rng = np.random.default_rng(seed)
    left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    return img.crop((left, top, left + side, top + side))
