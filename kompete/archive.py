"""The submission archive: images encoded straight into `images.zip`, and the checks Kaggle applies."""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Callable, Literal, Sequence

import numpy as np
from PIL import Image

from kompete.errors import ArchiveError
from kompete.paths import atomic_output, remove_stale_temps

FORMATS = {"png": "PNG", "jpg": "JPEG"}
LAYOUTS = ("flat", "by_class")  # output.layout: 00000.png, ... or <class>/00000.png, ...
Layout = Literal["flat", "by_class"]


class ZipImageWriter:
    """Encode uint8 HxWx3 arrays into a zip as 00000.png, 00001.png, ... (or <class>/00000.png, numbered
    across all classes) without loose files.

    The zip is built under a temporary name and renamed into place only when the `with` block
    ends cleanly, so an interrupted generation never leaves a zip that looks complete.
    PNGs are stored (they are already compressed); JPGs likewise.
    """

    def __init__(self, path: str | Path, fmt: str = "png", quality: int = 95):
        if fmt not in FORMATS:
            raise ArchiveError(f"unknown image format {fmt!r}; choose one of: {', '.join(FORMATS)}")
        self.path = Path(path)
        self.fmt = fmt
        self.quality = quality
        self.count = 0
        self._atomic = atomic_output(self.path)
        self._zip: zipfile.ZipFile | None = None

    def __enter__(self) -> "ZipImageWriter":
        check_replaceable(self.path)
        remove_stale_temps(self.path)  # what a killed earlier run left (megabytes of half a zip)
        try:
            tmp = self._atomic.__enter__()
        except OSError as exc:  # before any image is made
            raise ArchiveError(f"cannot write {self.path}: {exc.strerror or exc}",
                               hint="choose a writable place with --out") from None
        self._zip = zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED)
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        assert self._zip is not None
        try:
            self._zip.close()
        except OSError as err:  # the central directory did not fit (a full disk)
            if exc is None:
                exc_type, exc, tb = type(err), err, err.__traceback__
        try:
            self._atomic.__exit__(exc_type, exc, tb)  # the temporary file is removed unless all went well
        except OSError as err:
            exc = err
        if isinstance(exc, OSError):  # one line naming the zip, not the hidden temporary file
            raise ArchiveError(f"cannot write {self.path}: {exc.strerror or exc}",
                               hint="choose a writable place with room for it with --out") from None
        return False

    def add(self, image: np.ndarray, name: str | None = None) -> str:
        """Encode one HxWx3 uint8 image; returns its member name."""
        _check_image(image)
        return self._store(encode_image(image, self.fmt, self.quality), name)

    def add_batch(self, images: np.ndarray, pool: Executor | None = None,
                  folders: Sequence[str] | None = None) -> None:
        """Encode a uint8 NxHxWx3 batch, in `pool`'s threads when given (zlib and libjpeg release the GIL),
        and store the images in order; image i inside `folders[i]` when given (a class name)."""
        for image in images:
            _check_image(image)
        if folders is not None:
            if len(folders) != len(images):
                raise ValueError(f"{len(folders)} folders for {len(images)} images")
            for folder in set(folders):
                _check_folder(folder)
        encode = lambda im: encode_image(im, self.fmt, self.quality)  # noqa: E731
        for i, blob in enumerate(pool.map(encode, images) if pool is not None else map(encode, images)):
            self._store(blob, folder=None if folders is None else folders[i])

    def _store(self, blob: bytes, name: str | None = None, folder: str | None = None) -> str:
        if self._zip is None:
            raise RuntimeError("ZipImageWriter used outside its `with` block")
        name = name or f"{self.count:05d}.{self.fmt}"
        if folder is not None:
            name = f"{folder}/{name}"
        self._zip.writestr(name, blob)
        self.count += 1
        return name


def check_replaceable(path: Path) -> None:
    """A file already at the zip's place is replaced only when it is an image zip (an earlier submission)
    or empty: `--out` naming a checkpoint, a config or any other file must not destroy it."""
    try:
        if path.is_dir():
            raise ArchiveError(f"cannot write {path}: it is a folder", hint="give a zip file name with --out")
        if not path.exists() or path.stat().st_size == 0:
            return
    except OSError:
        return  # unreadable here: writing it will say why
    if not _is_image_zip(path):
        raise ArchiveError(f"refusing to replace {path}: it is not an image zip (a checkpoint? another file?)",
                           hint="choose another --out")


def _is_image_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return False
    return all(n.endswith("/") or n.lower().endswith(IMAGE_NAMES) for n in names)


def _check_folder(folder: str) -> None:
    """A class name usable as one folder level inside the zip, as `scan_zip` will read it back."""
    if not folder or _unsafe(folder):
        raise ArchiveError(f"class {folder!r} cannot name a folder inside the zip",
                           hint="rename the class (no '/', '\\', ':' or leading '..'), or set output.layout=flat")


def _check_image(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 HxWx3 image, got {image.dtype} {image.shape}")


def encode_image(image: np.ndarray, fmt: str = "png", quality: int = 95) -> bytes:
    buf = io.BytesIO()
    options = {"quality": quality} if fmt == "jpg" else {"compress_level": 1}
    Image.fromarray(image, "RGB").save(buf, FORMATS[fmt], **options)
    return buf.getvalue()


# --------------------------------------------------------------------------- validation and reading

MAX_MEMBER_BYTES = 64 << 20   # no real submission image is anywhere near this
MAX_TOTAL_BYTES = 4 << 30     # 10,000 256x256 JPGs are ~0.3 GB; anything near 4 GB is a zip bomb
MAX_RATIO = 200               # uncompressed / compressed size of one member
SHOW = 3                      # offenders named per problem
SUFFIXES = {"png": (".png",), "jpg": (".jpg", ".jpeg")}
IMAGE_NAMES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")


@dataclass
class ZipReport:
    """What Kaggle would reject in a submission zip, all problems at once."""

    path: str
    n_members: int = 0
    n_images: int = 0
    n_min: int = 0
    n_max: int = 0
    layout: Layout = "flat"
    problems: dict[str, list[str]] = field(default_factory=dict)
    class_counts: dict[str, int] = field(default_factory=dict)  # by_class: valid images per class folder

    def add(self, problem: str, name: str) -> None:
        self.problems.setdefault(problem, []).append(name)

    @property
    def count_ok(self) -> bool:
        return self.n_min <= self.n_images <= self.n_max

    @property
    def count_problem(self) -> str | None:
        if self.count_ok:
            return None
        want = f"{self.n_min}" if self.n_min == self.n_max else f"{self.n_min}-{self.n_max}"
        return f"{self.n_images} valid images, Kaggle needs {want}"

    @property
    def ok(self) -> bool:
        return not self.problems and self.count_ok

    def defects(self) -> list[str]:
        """One line per problem: '<problem>: <count> (e.g. a.png, b.png)'."""
        lines = [f"{problem}: {len(names)} (e.g. {', '.join(names[:SHOW])})" for problem, names in self.problems.items()]
        if self.count_problem:
            lines.insert(0, f"image count: {self.count_problem}")
        return lines

    def classes_line(self) -> str:
        """by_class: 'K class folders: a 5000, b 5000' ('' when flat)."""
        if self.layout != "by_class":
            return ""
        counts = ", ".join(f"{name} {count}" for name, count in sorted(self.class_counts.items()))
        return f"{len(self.class_counts)} class folders: {counts or 'none'}"

    def message(self) -> str:
        text = f"{self.path} would be rejected by Kaggle: " + "; ".join(self.defects())
        return f"{text} ({self.classes_line()})" if self.layout == "by_class" else text


def _unsafe(part: str) -> bool:
    return "/" in part or "\\" in part or part in (".", "..") or part.startswith("..") or ":" in part


def _member_problem(info: zipfile.ZipInfo, fmt: str, seen: set[str], layout: Layout = "flat") -> str | None:
    """What is wrong with one member, or None. by_class: every image one folder level down (<class>/x.png);
    the folder entries zip tools add (<class>/) are allowed and not counted."""
    name = info.filename
    if layout == "by_class":
        parts = name.rstrip("/").split("/") if info.is_dir() else name.split("/")
        if any(not p or _unsafe(p) for p in parts):
            return "nested or unsafe names"
        if info.is_dir():
            return None if len(parts) == 1 else "nested or unsafe names"
        if len(parts) == 1:
            return "not in a class folder"
        if len(parts) > 2:
            return "nested or unsafe names"
    elif info.is_dir():
        return "folders"
    elif _unsafe(name):
        return "nested or unsafe names"
    if name in seen:
        return "duplicate names"
    if not name.lower().endswith(IMAGE_NAMES):
        return "non-image members"
    if not name.lower().endswith(SUFFIXES[fmt]):
        return f"not .{fmt}"
    if info.file_size > MAX_MEMBER_BYTES or info.file_size > MAX_RATIO * max(info.compress_size, 1) + 65536:
        return "oversized members (zip bomb?)"
    return None


def _decode(job: tuple[str, bytes, str, int, bool]) -> tuple[str, str | None, np.ndarray | None]:
    name, blob, fmt, size, keep = job
    try:
        with Image.open(io.BytesIO(blob)) as img:
            if img.format != FORMATS[fmt]:
                return name, f"not {FORMATS[fmt]} inside (found {img.format})", None
            if img.size != (size, size):
                return name, f"not {size}x{size}", None
            if img.mode != "RGB":
                return name, "not RGB", None
            img.load()
            return name, None, (np.asarray(img) if keep else None)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return name, "undecodable", None


def scan_zip(path: str | Path, fmt: str, image_size: int, n_min: int, n_max: int,
             consumer: Callable[[np.ndarray], None] | None = None, window: int = 256,
             workers: int | None = None, layout: Layout = "flat") -> ZipReport:
    """Check every member as Kaggle would; valid images go to `consumer` as uint8 [B, H, W, 3] batches, by name.

    `layout`: flat (every image at the top, no folders) or by_class (every image in one class folder,
    `<class>/<name>`; the report counts the valid images of each class).

    Nothing is extracted to disk and member names are never used as paths. Sizes come from the
    central directory and are bounded before anything is decompressed. Members are decoded in
    parallel threads, a window at a time, so memory stays bounded for 10,000 256x256 images.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ArchiveError(f"unknown image format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if layout not in LAYOUTS:
        raise ArchiveError(f"unknown zip layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")
    if path.is_dir():
        raise ArchiveError(f"{path} is a folder, not a zip")
    if not path.is_file():
        raise ArchiveError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise ArchiveError(f"{path} is not a zip archive")
    report = ZipReport(str(path), n_min=n_min, n_max=n_max, layout=layout)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(f"{path}: damaged zip ({exc})") from None
    with zf, ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        infos = zf.infolist()
        report.n_members = len(infos)
        total = sum(i.file_size for i in infos)
        if total > MAX_TOTAL_BYTES:
            raise ArchiveError(f"{path} would expand to {total / 2**30:.1f} GiB (limit {MAX_TOTAL_BYTES / 2**30:.0f} GiB); "
                               f"refusing to read it")
        seen: set[str] = set()
        good: list[zipfile.ZipInfo] = []
        for info in sorted(infos, key=lambda i: i.filename):
            problem = _member_problem(info, fmt, seen, layout)
            seen.add(info.filename)
            if problem:
                report.add(problem, info.filename)
            elif not info.is_dir():
                good.append(info)
        _decode_in_windows(report, [(i.filename, _zip_reader(zf, i)) for i in good], fmt, image_size,
                           consumer, pool, window)
    return report


def scan_folder(folder: str | Path, fmt: str, image_size: int, n_min: int, n_max: int,
                consumer: Callable[[np.ndarray], None] | None = None, window: int = 256,
                workers: int | None = None) -> ZipReport:
    """A folder of loose images, checked and read like a zip's members (the same per-image checks)."""
    from kompete.data.images import list_images

    folder = Path(folder)
    report = ZipReport(str(folder), n_min=n_min, n_max=n_max)
    files, others = list_images(folder)
    for other in others:
        report.add("non-image members", other.name)
    report.n_members = len(files) + len(others)
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        _decode_in_windows(report, [(f.name, f.read_bytes) for f in files], fmt, image_size, consumer, pool, window)
    return report


def _zip_reader(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            return zf.read(info)
        except (zipfile.BadZipFile, OSError, zlib.error, NotImplementedError, EOFError):
            return b""  # decodes as a damaged image
    return read


def _decode_in_windows(report: ZipReport, members: list[tuple[str, Callable[[], bytes]]], fmt: str,
                       image_size: int, consumer: Callable[[np.ndarray], None] | None,
                       pool: ThreadPoolExecutor, window: int) -> None:
    """Decode `window` members at a time in `pool`; tally problems; valid pixels go to `consumer` in batches."""
    keep = consumer is not None
    for start in range(0, len(members), window):
        jobs = [(name, read(), fmt, image_size, keep) for name, read in members[start:start + window]]
        batch = []
        for name, problem, pixels in pool.map(_decode, jobs):  # PIL decodes with the GIL released
            if problem:
                report.add(problem, name)
            else:
                report.n_images += 1
                if report.layout == "by_class":
                    folder = name.split("/", 1)[0]
                    report.class_counts[folder] = report.class_counts.get(folder, 0) + 1
                if keep:
                    batch.append(pixels)
        if batch and consumer is not None:
            consumer(np.stack(batch))


UNKNOWN_CLASS = "class folders the competition does not have"


def validate_zip(cfg, path: str | Path, classes: Sequence[str] | None = None) -> ZipReport:
    """The competition's checks on a submission zip (`cfg` is a Config); ok, or a list of defects.

    by_class: a folder that names none of the competition's `classes` is a defect (default: the class
    folders of its data, when the data is here; with no data, folder names cannot be checked).
    """
    out = cfg.output
    report = scan_zip(path, out.format, out.image_size, out.n_min, out.n_max, layout=out.layout)
    if out.layout == "by_class":
        known = competition_classes(cfg) if classes is None else list(classes)
        for folder in sorted(set(report.class_counts) - set(known or report.class_counts)):
            report.add(UNKNOWN_CLASS, f"{folder}/")
    return report


def competition_classes(cfg, data_dir: str | Path | None = None) -> list[str] | None:
    """The class folder names of a folder-layout competition's data (what a conditional model learns), or
    None when the data is not here. Only names are listed: nothing is decoded."""
    if cfg.data.layout != "folder":
        return None
    from kompete.data import locate, resolve_data_dir
    from kompete.data.folder import scan
    from kompete.errors import KompeteError

    try:
        found = scan(locate.folder(cfg, resolve_data_dir(cfg, data_dir), "images"))
    except (KompeteError, OSError):
        return None
    return None if found.flat or not found.files else found.classes
