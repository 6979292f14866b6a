"""The real set's Inception statistics and normalised features, computed once and cached on disk.

The cache key covers everything that shapes the numbers (clean-fid's lesson): every reference file's
name, size and modification time, the weights file's sha256, the Inception input path (`metric.preprocess`),
the resize mode and size, and the subset limit. Entries live in the user cache (never in the package) and are written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from kompete import paths
from kompete.config import Config
from kompete.data import cache, reference_files
from kompete.data.images import Timer, open_rgb, parallel_map
from kompete.errors import DataError
from kompete.metrics.fid import statistics
from kompete.metrics.mifid import normalize_rows
from kompete.metrics.preprocess import tf1_resize_bilinear_np

FORMAT_VERSION = 2


@dataclass
class Reference:
    mu: np.ndarray           # float64 [2048]
    sigma: np.ndarray        # float64 [2048, 2048]
    features: np.ndarray     # float32 [N, 2048], rows L2-normalised, zero-sum rows dropped
    n_images: int
    path: Path
    cache_hit: bool
    seconds: float


def decode_reference(job: tuple[Path, int, str]) -> np.ndarray | None:
    """Whole image resized straight to size x size, no crop: `antialias` as Kaggle's demo kernel (PIL
    Lanczos, uint8), `tf-bilinear` as its released scorer (TF1 ResizeBilinear, aliased; float32 0-255,
    not rounded)."""
    path, size, resize = job
    img = open_rgb(path)
    if img is None:
        return None
    if img.size == (size, size):
        return np.asarray(img)
    if resize == "tf-bilinear":
        return tf1_resize_bilinear_np(np.asarray(img), size)
    return np.asarray(img.resize((size, size), Image.LANCZOS))


def reference_key(files: list[Path], cfg: Config, weights_sha256: str, limit: int) -> str:
    m = cfg.metric
    return cache.inputs_key(files, {"kind": "reference", "v": FORMAT_VERSION, "weights": weights_sha256,
                                    "size": m.reference_size, "resize": m.resize, "limit": limit,
                                    "preprocess": m.preprocess,
                                    "reference": m.reference})


def reference_cache_file(key: str) -> Path:
    return paths.cache_dir() / "reference" / f"inception-{key}.npz"


def load_reference(cfg: Config, weights_sha256: str, model_fn, data_dir: str | Path | None = None,
                   limit: int = 0, rebuild: bool = False, batch_size: int = 50, progress: bool = False) -> Reference:
    """Cached statistics of the competition's real set; `model_fn()` gives the Inception model on a miss."""
    from kompete.metrics.features import FeatureExtractor

    with Timer() as timer:
        files = reference_files(cfg, data_dir)
        if limit:
            files = files[:limit]
        path = reference_cache_file(reference_key(files, cfg, weights_sha256, limit))
        cached = None if rebuild else cache.load(path)
        if cached is not None and {"mu", "sigma", "features", "n_images"} <= set(cached):
            ref = Reference(cached["mu"], cached["sigma"], cached["features"], int(cached["n_images"]), path, True, 0.0)
        else:
            extractor = FeatureExtractor(model_fn(), batch_size)
            jobs = [(f, cfg.metric.reference_size, cfg.metric.resize) for f in files]
            step = max(batch_size, 2048)
            n = 0
            for i in range(0, len(jobs), step):  # decode a slice in worker processes, then run it through Inception
                decoded = [a for a in parallel_map(decode_reference, jobs[i:i + step], desc="reference",
                                                   progress=progress) if a is not None]
                if decoded:
                    extractor.add(np.stack(decoded))
                    n += len(decoded)
            if n < 2:
                raise DataError(f"only {n} readable reference images for {cfg.name}; need at least 2")
            feats = extractor.result()
            mu, sigma = statistics(feats)
            normed = normalize_rows(feats).numpy()
            cache.save(path, {"mu": mu, "sigma": sigma, "features": normed, "n_images": np.asarray(n)})
            ref = Reference(mu, sigma, normed, n, path, False, 0.0)
    ref.seconds = timer.seconds
    return ref
