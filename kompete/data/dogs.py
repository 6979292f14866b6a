"""Generative Dog Images layout: `all-dogs/*.jpg` plus `Annotation/<wnid>-<breed>/<image id>` VOC XML.

Every bounding box becomes one training sample: the box plus a margin, squared, kept inside the
image, resized with an anti-aliased filter. The whole prepared set is cached as one uint8 array.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from kompete.config import Config
from kompete.data import locate
from kompete.data.images import (DataSummary, ImageSet, Timer, center_square, list_images, load_or_prepare,
                                 parallel_map, resize_square, stack)
from kompete.data.locate import download_hint
from kompete.errors import DataError

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class CropSettings:
    size: int
    margin: float
    min_box: int
    use_boxes: bool


@dataclass(frozen=True)
class DogJob:
    image: Path
    annotation: Path | None
    label: int
    settings: CropSettings


def prepare_dogs(cfg: Config, root: Path, progress: bool = True) -> ImageSet:
    """Crops of every annotated dog under `root`, cached by the inputs and crop settings."""
    d = cfg.data
    found = locate.find(cfg, root).folders  # flat, nested or zipped (kompete.data.locate)
    images_dir = found.get("images", root / d.images_dir)
    annotations_dir = found.get("annotations", root / d.annotations_dir)
    if not images_dir.is_dir():
        raise DataError(f"no {d.images_dir}/ folder in {root}",
                        hint=download_hint(cfg))
    if d.use_boxes and not annotations_dir.is_dir():
        raise DataError(f"no {d.annotations_dir}/ folder in {root}; bounding boxes are needed to crop dogs",
                        hint="download the annotations too, or --set data.use_boxes=false for whole images")
    settings = CropSettings(d.image_size, d.crop_margin, d.min_box_size, d.use_boxes)
    with Timer() as timer:
        files, others = list_images(images_dir)
        if not files:
            raise DataError(f"no images in {images_dir}", hint=download_hint(cfg))
        breeds = _breed_folders(annotations_dir) if annotations_dir.is_dir() else {}
        xmls = sorted(p for folder in breeds.values() for p in folder.iterdir()) if d.use_boxes else []
        image_set = load_or_prepare("dogs", files + xmls, {"layout": "dogs", **settings.__dict__},
                                    lambda: _prepare(files, others, breeds, settings, progress))
    image_set.summary.data_dir, image_set.summary.seconds = str(root), timer.seconds
    if len(image_set.images) == 0:
        raise DataError(f"none of the {len(files)} images in {images_dir} gave a usable crop",
                        hint="check that the images open (are they all damaged?) and, with boxes, that the "
                             f"{d.annotations_dir} folder matches them")
    return image_set


def _breed_folders(annotations_dir: Path) -> dict[str, Path]:
    """wnid (e.g. n02085620) -> its folder (e.g. n02085620-Chihuahua)."""
    return {p.name.split("-", 1)[0]: p for p in sorted(annotations_dir.iterdir()) if p.is_dir()}


def _prepare(files: list[Path], others: list[Path], breeds: dict[str, Path], settings: CropSettings,
             progress: bool) -> ImageSet:
    summary = DataSummary(n_files=len(files) + len(others), image_size=settings.size)
    for other in others:
        summary.skip("non-image files", other.name)
    wnids = sorted(breeds)
    label_of = {w: i for i, w in enumerate(wnids)}
    jobs = []
    for f in files:
        wnid = f.stem.split("_", 1)[0]
        folder = breeds.get(wnid)
        annotation = folder / f.stem if folder is not None else None
        if settings.use_boxes and (annotation is None or not annotation.is_file()):
            summary.skip("images without an annotation file", f.name)
            continue
        jobs.append(DogJob(f, annotation, label_of.get(wnid, 0), settings))
    results = parallel_map(crop_dog, jobs, desc="cropping dogs", progress=progress)
    crops, labels = [], []
    for job, (job_crops, problem) in zip(jobs, results):
        if problem:
            summary.skip(problem, job.image.name)
        crops += job_crops
        labels += [job.label] * len(job_crops)
    classes = [breeds[w].name.split("-", 1)[-1] for w in wnids] or ["dog"]
    summary.n_images, summary.n_classes = len(crops), len(classes)
    return ImageSet(stack(crops, settings.size), np.asarray(labels, np.int64), classes, summary)


def crop_dog(job: DogJob) -> tuple[list[np.ndarray], str | None]:
    """The crops of one image, or ([], reason) when it cannot be used. Runs in worker processes."""
    boxes: list[Box] = []
    if job.settings.use_boxes:
        try:
            boxes = read_boxes(job.annotation)
        except (ET.ParseError, ValueError, OSError):
            return [], "unreadable annotation files"
        if job.settings.min_box:
            boxes = [b for b in boxes if min(b[2] - b[0], b[3] - b[1]) >= job.settings.min_box]
        if not boxes:
            return [], "annotations without a usable box"
    try:
        with Image.open(job.image) as img:
            scale = _draft(img, boxes, job.settings.size)
            img.load()
            rgb = img.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return [], "unreadable images"
    if not boxes:
        return [np.asarray(resize_square(center_square(rgb), job.settings.size))], None
    crops = []
    for box in boxes:
        square = square_box([v / scale for v in box], job.settings.margin, rgb.size)
        size = job.settings.size
        # resizing straight from the box with a reducing gap: a fast box-filter pre-shrink, then Lanczos
        crops.append(np.asarray(rgb.resize((size, size), Image.LANCZOS, box=square, reducing_gap=3.0)))
    return crops, None


def read_boxes(annotation: Path | None) -> list[Box]:
    """Every <object><bndbox> of a Pascal-VOC file as (xmin, ymin, xmax, ymax)."""
    if annotation is None:
        return []
    root = ET.parse(annotation).getroot()
    boxes = []
    for box in root.iter("bndbox"):
        xmin, ymin, xmax, ymax = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        if xmax > xmin and ymax > ymin:
            boxes.append((xmin, ymin, xmax, ymax))
    return boxes


def square_box(box: Box | list[float], margin: float, image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The box grown by `margin` of its size, made square, and moved (not squashed) to fit the image."""
    width, height = image_size
    xmin, ymin, xmax, ymax = box
    w, h = xmax - xmin, ymax - ymin
    side = min(max(w, h) * (1 + 2 * margin), width, height)
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    left = min(max(cx - side / 2, 0), width - side)
    top = min(max(cy - side / 2, 0), height - side)
    return round(left), round(top), round(left + side), round(top + side)


def _draft(img: Image.Image, boxes: list[Box], size: int) -> float:
    """Let the JPEG decoder skip detail the crops will not keep (2-4x faster); returns the scale used."""
    if img.format != "JPEG":
        return 1.0
    smallest = min((min(b[2] - b[0], b[3] - b[1]) for b in boxes), default=min(img.size))
    reduce = 2 ** max(0, min(3, int(math.log2(max(smallest, 1) / (1.5 * size)))))
    if reduce == 1:
        return 1.0
    full = img.size
    img.draft("RGB", (math.ceil(full[0] / reduce), math.ceil(full[1] / reduce)))
    return full[0] / img.size[0]
