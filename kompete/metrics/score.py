"""Score a submission locally the way Kaggle's public leaderboard does: validate, extract, MiFID (or FID).

The report names the metric, the Inception input path (`metric.preprocess`) and the reference resize
(`metric.resize`): scores made with different settings are not comparable with each other."""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kompete.archive import scan_folder, scan_zip
from kompete.config import Config
from kompete.errors import ArchiveError
from kompete.metrics.device import default_device
from kompete.metrics.features import FeatureExtractor, load_inception
from kompete.metrics.fid import RankDeficientWarning, frechet_distance_to
from kompete.metrics.mifid import memorization_distance, score_from_parts
from kompete.metrics.reference import load_reference
from kompete.metrics.weights import find_weights


@dataclass
class ScoreResult:
    fid: float
    memorization_distance: float
    thresholded_distance: float
    mifid: float
    eps: float
    n_images: int
    n_reference: int
    comparable: bool
    notes: list[str] = field(default_factory=list)
    weights: dict[str, Any] = field(default_factory=dict)
    reference_cache: str = ""
    reference_cache_hit: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    source: str = ""
    device: str = ""
    metric: str = "mifid"          # metric.name: the score is `mifid`, or FID for "fid"
    preprocess: str = "tf"         # metric.preprocess: the Inception input path
    resize: str = "antialias"      # metric.resize: how the reference images were brought to size

    @property
    def score(self) -> float:
        """The leaderboard number: MiFID, or FID when the competition scores plain FID."""
        return self.fid if self.metric == "fid" else self.mifid

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "score": self.score}

    def lines(self) -> list[str]:
        w = self.weights
        if self.metric == "fid":
            out = [f"FID (the score)        {self.fid:.4f}",
                   f"memorization distance  {self.memorization_distance:.4f} (reported; plain FID has no memorization term)"]
        else:
            out = [f"FID                    {self.fid:.4f}",
                   f"memorization distance  {self.memorization_distance:.4f}",
                   f"thresholded (eps {self.eps:g})  {self.thresholded_distance:.4f}",
                   f"MiFID                  {self.mifid:.4f}"]
        out += [f"preprocessing          {self.preprocess} (metric.preprocess), reference resize {self.resize} "
                f"(metric.resize)",
               f"images                 {self.n_images} generated, {self.n_reference} reference",
               f"weights                {w.get('name', '?')} ({w.get('found_via', '?')})",
               f"reference cache        {'hit' if self.reference_cache_hit else 'built'} ({self.reference_cache})",
               f"time                   " + ", ".join(f"{k} {v:.2f} s" for k, v in self.seconds.items())]
        for note in self.notes:
            out.append(f"note                   {note}")
        return out


def resolve_submission(cfg: Config, path: str | Path) -> Path:
    """An images.zip, a folder of images, or a run directory holding the competition's archive."""
    p = Path(path)
    if p.is_dir() and (p / cfg.output.archive).is_file():
        return p / cfg.output.archive
    if not p.exists():
        raise ArchiveError(f"{p}: no such file or folder")
    if p.is_dir() and ((p / "checkpoints").is_dir() or (p / "metrics.csv").is_file()):  # a run, not loose images
        raise ArchiveError(f"{p} is a run folder without its {cfg.output.archive}",
                           hint=f"write it with `kompete generate {p}`, then score again")
    return p


def score_path(cfg: Config, path: str | Path, data_dir: str | Path | None = None,
               weights: str | Path | None = None, download: bool = False, limit: int = 0,
               reference_limit: int | None = None, rebuild_reference: bool = False,
               device: str | None = None, progress: bool = False) -> ScoreResult:
    """Kaggle's public-leaderboard MiFID (or FID, `metric.name`) of a submission, with the reference
    statistics cached. The Inception input path is `metric.preprocess`, for the reference and the submission.

    `limit` scores only the first N valid images (quick checks; not comparable to Kaggle's).
    A zip Kaggle would reject for its format, size or contents raises ArchiveError; a wrong image
    count is scored anyway and reported as not comparable.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    target = resolve_submission(cfg, path)  # a mistyped path fails before minutes of reference features
    dev = default_device(device)
    source = find_weights(weights, download=download)
    weights_info = source.describe()
    model_box: list = []

    def model_fn():
        if not model_box:
            t = time.perf_counter()
            model_box.append(load_inception(source, dev, preprocess=cfg.metric.preprocess))
            timings["load weights"] = time.perf_counter() - t
        return model_box[0]

    ref_limit = cfg.metric.reference_limit if reference_limit is None else reference_limit
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankDeficientWarning)  # reported once below, as notes
        t = time.perf_counter()
        ref = load_reference(cfg, weights_info["sha256"], model_fn, data_dir, limit=ref_limit,
                             rebuild=rebuild_reference, batch_size=cfg.metric.batch_size, progress=progress)
        timings["reference"] = time.perf_counter() - t

        t = time.perf_counter()
        extractor = FeatureExtractor(model_fn(), cfg.metric.batch_size, dev)
        front = _Limited(extractor, limit)
        out = cfg.output
        if target.is_dir():
            report = scan_folder(target, out.format, out.image_size, out.n_min, out.n_max, consumer=front.add)
        else:
            report = scan_zip(target, out.format, out.image_size, out.n_min, out.n_max, consumer=front.add,
                              layout=out.layout)
        if report.problems:
            hint = None if target.is_dir() else f"`kompete validate {cfg.name} {target}` lists them"
            raise ArchiveError(report.message(), hint=hint)
        gen = extractor.result()
        timings["generated"] = time.perf_counter() - t
        if len(gen) < 2:
            raise ArchiveError(f"{target}: {len(gen)} valid images; need at least 2 to score")

        t = time.perf_counter()
        fid = frechet_distance_to(gen, ref.mu, ref.sigma)
        distance = memorization_distance(gen, ref.features, device=dev, normalized=True)
        result = score_from_parts(cfg.metric.name, fid, distance, cfg.metric.eps)
        timings["metric"] = time.perf_counter() - t
    if report.count_problem:
        notes.append(f"Kaggle would reject this zip: {report.count_problem}")
    if limit and report.n_images > limit:
        notes.append(f"scored only the first {limit} of {report.n_images} images (--limit)")
    if ref_limit:
        notes.append(f"reference limited to the first {ref.n_images} images (reference_limit)")
    if len(gen) < cfg.metric.min_images:
        notes.append(f"{len(gen)} images is below {cfg.metric.min_images}: FID is biased upward at this count")
    dims = ref.features.shape[1]
    if ref.n_images <= dims:
        notes.append(f"{ref.n_images} reference images for {dims} feature dimensions: the reference covariance "
                     f"is singular, FID is biased upward")
    if not weights_info["fid_inception"]:
        notes.append(f"weights {source.path} are not the FID Inception (sha256 {weights_info['sha256'][:12]}): "
                     f"numbers are not comparable to Kaggle's")
    comparable = not notes
    timings["total"] = time.perf_counter() - t0
    return ScoreResult(fid=result.fid, memorization_distance=result.memorization_distance,
                       thresholded_distance=result.thresholded_distance, mifid=result.mifid, eps=result.eps,
                       n_images=len(gen), n_reference=ref.n_images, comparable=comparable, notes=notes,
                       weights=weights_info, reference_cache=str(ref.path), reference_cache_hit=ref.cache_hit,
                       seconds=timings, source=str(target), device=str(dev), metric=cfg.metric.name,
                       preprocess=cfg.metric.preprocess, resize=cfg.metric.resize)


class _Limited:
    """A FeatureExtractor front that stops taking images after `limit` (0: no limit)."""

    def __init__(self, extractor: FeatureExtractor, limit: int):
        self.extractor, self.limit, self.fed = extractor, limit, 0

    def add(self, batch: np.ndarray) -> None:
        if self.limit:
            batch = batch[:max(self.limit - self.fed, 0)]
        if len(batch):
            self.fed += len(batch)
            self.extractor.add(batch)
