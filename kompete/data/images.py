"""Reading image files robustly, in parallel, and the summary of what was kept and skipped."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence, TypeVar

import numpy as np
from PIL import Image
from tqdm import tqdm

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
# the folder layout reads what people collect images as, not only what Kaggle ships
FOLDER_SUFFIXES = IMAGE_SUFFIXES | {".bmp", ".gif", ".tif", ".tiff", ".webp"}
BACKGROUND = (255, 255, 255)  # what transparent pixels become

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class DataSummary:
    """What a loader found: the `kompete data` report."""

    data_dir: str = ""
    n_files: int = 0
    n_images: int = 0
    n_classes: int = 0
    image_size: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    class_counts: dict[str, int] = field(default_factory=dict)  # images per class, where the layout names them
    cache_path: str = ""
    cache_hit: bool = False
    seconds: float = 0.0

    def skip(self, reason: str, name: str) -> None:
        self.skipped[reason] += 1
        self.examples.setdefault(reason, name)

    def lines(self) -> list[str]:
        out = [f"data          {self.data_dir}",
               f"files         {self.n_files}",
               f"images        {self.n_images} at {self.image_size}x{self.image_size}"]
        if self.n_classes:
            out.append(f"classes       {self.n_classes}")
        width = max((len(c) for c in self.class_counts), default=0)
        for name, count in self.class_counts.items():
            out.append(f"  {name:{width}}  {count}")
        for reason, count in sorted(self.skipped.items()):
            out.append(f"skipped       {count} {reason} (e.g. {self.examples[reason]})")
        out.append(f"cache         {self.cache_path} ({'hit' if self.cache_hit else 'built'})")
        out.append(f"time          {self.seconds:.2f} s")
        return out


def list_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """(image files, other files) directly inside `folder`, sorted by name."""
    images, others = [], []
    for entry in sorted(folder.iterdir()):
        if entry.is_file():
            (images if entry.suffix.lower() in IMAGE_SUFFIXES else others).append(entry)
    return images, others


def open_rgb(path: Path) -> Image.Image | None:
    """The decoded RGB image, or None when the file is not a readable image (truncated, corrupt).

    Any mode becomes RGB: grey is repeated into three channels, 16-bit grey is scaled to 8 bits, palette
    and alpha images are laid over a white background (their hidden RGB is often black or noise).
    """
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def to_rgb(img: Image.Image) -> Image.Image:
    """A new RGB image from `img` in any mode (never `img` itself: the caller may close it)."""
    if img.mode == "RGB":
        return img.copy()
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        img = Image.fromarray(np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        out = Image.new("RGB", rgba.size, BACKGROUND)
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    return img.convert("RGB")


def resize_square(img: Image.Image, size: int) -> Image.Image:
    """Anti-aliased resize to size x size (Lanczos, PIL's former ANTIALIAS)."""
    if img.size == (size, size):
        return img
    return img.resize((size, size), Image.LANCZOS)


def center_square(img: Image.Image) -> Image.Image:
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side))


def parallel_map(fn: Callable[[T], R], items: Sequence[T], desc: str, progress: bool = True,
                 workers: int | None = None) -> list[R]:
    """fn over items in worker processes, in order, with a progress bar; inline when small."""
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(items), desc=desc, unit="img", disable=not progress, leave=False)
    try:
        if workers == 1 or len(items) < 256:
            results = []
            for item in items:
                results.append(fn(item))
                bar.update()
            return results
        chunk = max(16, len(items) // (workers * 16))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = []
            for result in pool.map(fn, items, chunksize=chunk):
                results.append(result)
                bar.update()
            return results
    finally:
        bar.close()


def stack(images: Iterable[np.ndarray], size: int) -> np.ndarray:
    arrays = list(images)
    if not arrays:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack(arrays).astype(np.uint8, copy=False)


class Timer:
    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start


@dataclass
class ImageSet:
    """Prepared images held in memory as one uint8 array, ready to move to the GPU whole."""

    images: np.ndarray  # uint8 [N, H, W, 3]
    labels: np.ndarray  # int64 [N]
    classes: list[str]
    summary: DataSummary = field(default_factory=DataSummary)
    names: list[str] = field(default_factory=list)  # source file names, where they matter (photos to translate)

    def __len__(self) -> int:
        return len(self.images)

    def to_arrays(self) -> dict[str, np.ndarray]:
        meta = {"n_files": self.summary.n_files, "skipped": dict(self.summary.skipped),
                "examples": self.summary.examples, "image_size": self.summary.image_size,
                "class_counts": self.summary.class_counts}
        return {"images": self.images, "labels": self.labels, "classes": np.asarray(self.classes, dtype=str),
                "names": np.asarray(self.names, dtype=str), "meta": np.asarray(json.dumps(meta))}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "ImageSet":
        meta = json.loads(str(arrays["meta"]))
        summary = DataSummary(n_files=meta["n_files"], n_images=len(arrays["images"]),
                              n_classes=len(arrays["classes"]), image_size=meta["image_size"],
                              skipped=Counter(meta["skipped"]), examples=meta["examples"],
                              class_counts=meta.get("class_counts", {}))
        return cls(arrays["images"], arrays["labels"], [str(c) for c in arrays["classes"]], summary,
                   [str(n) for n in arrays["names"]])


@dataclass
class DomainPair:
    """Two unpaired image domains: photos (source) and paintings (target)."""

    source: ImageSet
    target: ImageSet

    @property
    def source_names(self) -> list[str]:
        return self.source.names


def load_or_prepare(kind: str, files: list[Path], settings: dict, prepare: Callable[[], ImageSet]) -> ImageSet:
    """The prepared set from the cache (keyed by the files and the settings), or `prepare()`d and cached;
    its summary says which, and where the cache file is."""
    from kompete.data import cache

    path = cache.cache_file(kind, cache.inputs_key(files, settings))
    cached = cache.load(path)
    if cached is None:
        image_set = prepare()
        cache.save(path, image_set.to_arrays())
    else:
        image_set = ImageSet.from_arrays(cached)
    image_set.summary.cache_path, image_set.summary.cache_hit = str(path), cached is not None
    return image_set
