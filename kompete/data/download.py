"""Unpacking a downloaded competition archive safely: no path traversal, no links, bounded size."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from kompete.errors import DataError

MAX_TOTAL_BYTES = 64 * 2**30  # far above any competition here; stops a zip bomb filling the disk


def safe_member_path(name: str) -> PurePosixPath:
    """The member's relative path, or DataError when it would land outside the destination."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise DataError(f"refusing to extract {name!r}: it points outside the destination folder")
    return path


def safe_extract(archive: Path, dest: Path, max_total: int = MAX_TOTAL_BYTES) -> int:
    """Extract `archive` into `dest` (atomically, via a temporary sibling folder); returns the file count."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{archive} is not a readable zip: {exc}") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        for m in members:
            safe_member_path(m.filename)
            if stat.S_ISLNK(m.external_attr >> 16):
                raise DataError(f"refusing to extract {m.filename!r}: it is a symbolic link")
        total = sum(m.file_size for m in members)
        if total > max_total:
            raise DataError(f"{archive} would unpack to {total / 2**30:.1f} GiB, over the {max_total / 2**30:.0f} GiB limit")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}-"))
        try:
            for m in members:
                target = tmp.joinpath(*safe_member_path(m.filename).parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(m) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            _merge_into(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return len(members)


def _merge_into(src: Path, dest: Path) -> None:
    if not dest.exists():
        os.replace(src, dest)
        return
    for item in src.iterdir():
        target = dest / item.name
        if target.is_dir() and item.is_dir():
            _merge_into(item, target)
        else:
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
