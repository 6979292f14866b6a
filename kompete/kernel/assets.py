"""What kernels need offline, as a private Kaggle dataset: Inception weights (when found here), extra files.

Kernels run with internet off, so scoring inside a kernel needs the FID Inception weights attached as a
dataset; list it in `kernel.dataset_sources` (`kompete kernel build --set kernel.dataset_sources=[OWNER/SLUG]`).
The weights are all it needs: the FID Inception graph itself comes with kompete (kompete/metrics/inception.py),
so pytorch-fid, absent from Kaggle's image, need not travel.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from kompete.errors import KompeteError

DEFAULT_SLUG = "kompete-assets"


def find_inception_weights() -> Path | None:
    """The local FID Inception weights, if kompete's scorer can find any offline (never downloads)."""
    try:
        from kompete.metrics.weights import find_weights
    except ImportError:
        return None
    try:
        return Path(find_weights(None, download=False).path)
    except KompeteError:
        return None


def stage(folder: Path, owner: str, slug: str, files: list[Path]) -> Path:
    """A dataset folder: dataset-metadata.json plus the files (hard links when possible, else copies)."""
    if not files:
        raise KompeteError("no assets to upload", hint="pass --file PATH, or make the Inception weights findable "
                                                       "(kompete score --download once, or KOMPETE_INCEPTION_WEIGHTS)")
    if len(slug) < 6 or not slug.replace("-", "").isalnum():
        raise KompeteError(f"dataset slug {slug!r} must be at least 6 letters, digits or hyphens")
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        if not (folder / "dataset-metadata.json").is_file():  # only an earlier staging is ours to replace
            raise KompeteError(f"staging folder {folder} is not empty and is not an earlier staging",
                               hint="pass an empty or new folder to --stage")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = set()
    for f in files:
        f = Path(f)
        if not f.is_file():
            raise KompeteError(f"asset {f} is not a file")
        if f.name in names or f.name in ("dataset-metadata.json", "kaggle.json", "access_token", "credentials.json"):
            raise KompeteError(f"asset name {f.name!r} is taken or not allowed")
        names.add(f.name)
        try:
            os.link(f, folder / f.name)
        except OSError:
            shutil.copy2(f, folder / f.name)
    meta = {"title": slug, "id": f"{owner}/{slug}", "licenses": [{"name": "other"}]}
    (folder / "dataset-metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    return folder
