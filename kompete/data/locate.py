"""Finding a competition's folders however Kaggle (or a user) laid them out.

The same data arrives in several shapes: flat (`all-dogs/`, `Annotation/`), nested as most public dog kernels
read it (`all-dogs/all-dogs/`, `annotation/Annotation/`), or as the two zips (`all-dogs.zip`, `Annotation.zip`),
which are unpacked once into the cache (a scratch folder, never /kaggle/working, which counts as output).
Names match case-insensitively; a folder counts only if it holds what its role needs (images directly inside,
or per-breed sub-folders of files), so `monet_tfrec/` and an outer `all-dogs/` holding only `all-dogs/` are passed over.
The folder layout has one role, `images`: a folder of images or of class sub-folders of images; its name `""`
is the data dir itself.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from kompete import layouts, paths
from kompete.config import Config
from kompete.data.images import FOLDER_SUFFIXES, IMAGE_SUFFIXES
from kompete.errors import DataError

MAX_DEPTH = 3  # root/name/name is the deepest copy seen; one more level for a zip's own top folder


@dataclass(frozen=True)
class Found:
    """The folders of one competition's data, by role, and how they were laid out."""

    root: Path
    folders: dict[str, Path]
    layouts: dict[str, str] = field(default_factory=dict)  # role -> "flat", "nested" or "zip"

    @property
    def layout(self) -> str:
        kinds = sorted(set(self.layouts.values()))
        return kinds[0] if len(kinds) == 1 else "mixed (" + ", ".join(
            f"{role} {kind}" for role, kind in self.layouts.items()) + ")"

    def describe(self) -> str:
        where = ", ".join(f"{role} {path}" for role, path in self.folders.items())
        return f"{self.layout} layout in {self.root}: {where or 'nothing found'}"


def has_images(folder: Path, suffixes: set[str] = IMAGE_SUFFIXES) -> bool:
    """At least one image file directly inside (stops at the first: folders of 20,000 files are common)."""
    try:
        with os.scandir(folder) as it:
            return any(e.is_file() and os.path.splitext(e.name)[1].lower() in suffixes for e in it)
    except OSError:
        return False


def has_images_or_classes(folder: Path) -> bool:
    """Images directly inside, or a sub-folder holding images (a class folder): the folder layout's root."""
    if has_images(folder, FOLDER_SUFFIXES):
        return True
    try:
        with os.scandir(folder) as it:
            subs = sorted(e.path for e in it if e.is_dir() and not e.name.startswith((".", "__")))
    except OSError:
        return False
    return any(has_images(Path(sub), FOLDER_SUFFIXES) for sub in subs)


def has_file_folders(folder: Path) -> bool:
    """A sub-folder holding files directly (a breed folder of VOC files), not only more folders: an outer
    `annotation/` that holds `Annotation/` is passed over for the inner one."""
    try:
        with os.scandir(folder) as it:
            subs = [e.path for e in it if e.is_dir()]
    except OSError:
        return False
    for sub in subs[:5]:
        try:
            with os.scandir(sub) as it:
                if any(e.is_file() for e in it):
                    return True
        except OSError:
            continue
    return False


def find_folder(root: Path, name: str, accept: Callable[[Path], bool], depth: int = MAX_DEPTH) -> Path | None:
    """The shallowest folder under `root` called `name` (any case) that `accept`s; breadth first, sorted."""
    level, want = [Path(root)], name.casefold()
    for _ in range(depth):
        below = []
        for folder in level:
            try:
                subs = sorted(p for p in folder.iterdir() if p.is_dir())
            except OSError:
                continue
            for sub in subs:
                if sub.name.casefold() == want and accept(sub):
                    return sub
            below += subs
        level = below
    return None


def find_zip(root: Path, name: str, depth: int = 2) -> Path | None:
    """`<name>.zip` (any case) in `root` or one folder down."""
    want = f"{name}.zip".casefold()
    level = [Path(root)]
    for _ in range(depth):
        below = []
        for folder in level:
            try:
                entries = sorted(folder.iterdir())
            except OSError:
                continue
            for entry in entries:
                if entry.is_file() and entry.name.casefold() == want:
                    return entry
            below += [e for e in entries if e.is_dir()]
        level = below
    return None


def unzip_once(archive: Path) -> Path:
    """`archive` unpacked into the cache, once per (path, size, mtime); later calls reuse the copy."""
    from kompete.data.download import safe_extract

    st = archive.stat()
    key = hashlib.sha256(f"{archive.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    dest = paths.cache_dir() / "unzipped" / f"{archive.stem}-{key}"
    done = dest / ".kompete-unzipped"
    if not done.is_file():
        safe_extract(archive, dest / "files")
        done.write_text(str(archive) + "\n")
    return dest / "files"


def locate(root: Path, name: str, accept: Callable[[Path], bool]) -> tuple[Path, str] | None:
    """(folder, "flat" | "nested" | "zip") for the role folder `name` under `root` (`""`: root itself), or None."""
    root = Path(root)
    if not name:
        return (root, "flat") if accept(root) else None
    folder = find_folder(root, name, accept)
    if folder is not None:
        return folder, "flat" if folder.parent == root else "nested"
    archive = find_zip(root, name)
    if archive is not None:
        unpacked = unzip_once(archive)
        # the zip's top folder is usually `name/`; a zip of loose files is the folder itself
        folder = find_folder(unpacked, name, accept) or (unpacked if accept(unpacked) else None)
        if folder is not None:
            return folder, "zip"
    return None


# what a folder of each kind (kompete.layouts.FOLDER_KINDS) must hold
ACCEPT = {"images": has_images, "images_or_classes": has_images_or_classes, "file_folders": has_file_folders}
# layout -> role -> (the data key naming its folder, what such a folder must hold), from the layout specs
ROLES: dict[str, dict[str, tuple[str, Callable[[Path], bool]]]] = {
    s.name: {role: (key, ACCEPT[kind]) for role, (key, kind) in s.roles.items()} for s in layouts.specs()}
# the role whose folder holds the training images (metric.reference: train_images)
TRAIN_ROLE = {s.name: s.train_role for s in layouts.specs()}


def roles(cfg: Config) -> dict[str, tuple[str, Callable[[Path], bool]]]:
    """role -> (configured folder name, what such a folder must hold)."""
    return {role: (getattr(cfg.data, key), accept) for role, (key, accept) in ROLES[cfg.data.layout].items()}


def find(cfg: Config, root: str | Path) -> Found:
    """Every role folder that exists under `root`; a missing one is left out (the loaders say what is missing)."""
    root = Path(root)
    folders, layouts = {}, {}
    for role, (name, accept) in roles(cfg).items():
        hit = locate(root, name, accept)
        if hit is not None:
            folders[role], layouts[role] = hit
    return Found(root, folders, layouts)


def folder(cfg: Config, root: str | Path, role: str) -> Path:
    """The folder for `role`, or where it would be in the flat layout (for the loaders' own error messages)."""
    name = roles(cfg)[role][0]
    return find(cfg, root).folders.get(role, Path(root) / name if name else Path(root))


def competition_dir(inputs: Path, kaggle_dir: str) -> Path:
    """`/kaggle/input/<kaggle_dir>` (any case), or `/kaggle/input/competitions/<kaggle_dir>`, else the plain path."""
    for base in (Path(inputs), Path(inputs) / "competitions"):
        hit = find_folder(base, kaggle_dir, lambda p: True, depth=1)
        if hit is not None:
            return hit
    return Path(inputs) / kaggle_dir


def require(cfg: Config, root: str | Path) -> Found:
    """`find`, raising DataError when a folder the loaders need is missing."""
    found = find(cfg, root)
    needed = [r for r in roles(cfg) if not (r == "annotations" and not cfg.data.use_boxes)]
    missing = [roles(cfg)[r][0] or "images or class folders of images" for r in needed if r not in found.folders]
    if missing:
        raise DataError(f"no {', '.join(missing)} in {root} (looked for folders or .zip files, any case, "
                        f"{MAX_DEPTH} levels deep)", hint=f"attach the {cfg.name} competition data, or pass --data-dir")
    return found


def download_hint(cfg: Config) -> str:
    """What fixes missing data: a sample is remade by `kompete data`, a real competition is downloaded."""
    if cfg.data.sample is not None:
        return f"run `kompete data {cfg.name}` to make the sample again, or pass --data-dir"
    return f"run `kompete data download {cfg.name}` or pass --data-dir"
