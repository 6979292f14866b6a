"""FID per class of a by_class submission: each class folder of the zip against the reference images of that
class (the masked/unmasked faces write-up scored each class), for `kompete score --per-class`.

A class's reference is the competition's reference restricted to one class folder: `metric.reference` pointed
at that folder, so its statistics are cached like any reference (the key covers the files).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from kompete.archive import ZipReport
from kompete.config import Config
from kompete.data import locate, resolve_data_dir
from kompete.errors import DataError
from kompete.metrics.fid import frechet_distance_to


def split_by_class(gen: np.ndarray, report: ZipReport) -> dict[str, np.ndarray]:
    """The generated features of each class folder. A by_class zip is read in name order, so each class's
    images arrive together, and `class_counts` holds the classes in the order they arrived (with --limit
    only the first rows were scored: the split stops there)."""
    out, start = {}, 0
    for name, count in report.class_counts.items():
        out[name] = gen[start:start + count]
        start += count
    return {name: rows for name, rows in out.items() if len(rows)}


def reference_root(cfg: Config, data_root: Path) -> Path:
    """The folder whose class sub-folders hold the reference images."""
    ref = cfg.metric.reference
    if ref == "train_images":
        return locate.folder(cfg, data_root, locate.TRAIN_ROLE[cfg.data.layout])
    if ref == "target_images":
        return locate.folder(cfg, data_root, "target")
    return data_root / ref


def class_config(cfg: Config, data_root: Path, name: str) -> Config:
    """`cfg` with metric.reference narrowed to the reference images of class `name`."""
    folder = reference_root(cfg, data_root) / name
    if not folder.is_dir():
        raise DataError(f"the zip has a class folder {name}/, but the reference has no class {name} ({folder} "
                        "is not a folder)", hint=f"`kompete validate {cfg.name} ZIP` shows the zip's class folders")
    return replace(cfg, metric=replace(cfg.metric, reference=os.path.relpath(folder, data_root)))


def class_fids(scorer: Any, gen: np.ndarray, report: ZipReport, ref_limit: int) -> dict[str, dict[str, Any]]:
    """{class: {fid, n_images, n_reference}}; `scorer` is score.py's (it loads references through the cache).
    A class with fewer than 2 generated images has no FID (None)."""
    cfg = scorer.cfg
    data_root = resolve_data_dir(cfg, scorer.data_dir)
    out = {}
    for name, rows in split_by_class(gen, report).items():
        ref = scorer.reference(class_config(cfg, data_root, name), ref_limit, label="class references")
        fid = frechet_distance_to(rows, ref.mu, ref.sigma) if len(rows) >= 2 else None
        out[name] = {"fid": fid, "n_images": len(rows), "n_reference": ref.n_images}
    return out
