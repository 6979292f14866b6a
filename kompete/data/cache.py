"""Prepared data cached as one uncompressed .npz keyed by a hash of the input files and settings."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from kompete import paths

FORMAT_VERSION = 1  # bump when the preparation code changes what it produces


def inputs_key(files: list[Path], settings: dict[str, Any]) -> str:
    """Hash of every input file's name, size and modification time, plus the settings that shape the output."""
    h = hashlib.sha256(json.dumps({"v": FORMAT_VERSION, **settings}, sort_keys=True).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def cache_file(kind: str, key: str) -> Path:
    return paths.cache_dir() / "data" / f"{kind}-{key}.npz"


def load(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except Exception:  # noqa: BLE001 - BadZipFile, zlib errors, truncation: a damaged cache is rebuilt, not trusted
        return None


def save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with paths.atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
