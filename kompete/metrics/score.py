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

from kompete.archive import ZipReport, scan_folder, scan_zip
from kompete.config import Config
from kompete.errors import ArchiveError
from kompete.metrics.device import default_device
from kompete.metrics.features import FeatureExtractor, load_inception
from kompete.metrics.fid import RankDeficientWarning, frechet_distance_to
from kompete import memorization
from kompete.metrics.mifid import nearest, score_from_parts
from kompete.metrics.per_class import class_fids
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
    closer_than_eps: float = 0.0   # share of generated images whose nearest training image is closer than eps
    per_class: dict[str, dict[str, Any]] = field(default_factory=dict)  # --per-class: class -> fid, counts

    @property
    def memorizes(self) -> bool:
        """The thresholded distance applies: MiFID is FID divided by the memorization distance."""
        return memorization.memorizes(self.memorization_distance, self.eps, self.metric)

    @property
    def warning(self) -> str | None:
        """One line when the thresholded distance applies, None otherwise."""
        if not self.memorizes:
            return None
        return memorization.warning(self.memorization_distance, self.eps, self.closer_than_eps)

    @property
    def score(self) -> float:
        """The leaderboard number: MiFID, or FID when the competition scores plain FID."""
        return self.fid if self.metric == "fid" else self.mifid

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "score": self.score, "memorizes": self.memorizes, "warning": self.warning}

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
        out.append(f"closer than eps        {self.closer_than_eps:.1%} of generated images have a training image "
                   f"closer than eps {self.eps:g}")
        out += [f"FID of class           {name}: " + ("-" if c["fid"] is None else f"{c['fid']:.4f}")
                + f" ({c['n_images']} generated, {c['n_reference']} reference)" for name, c in self.per_class.items()]
        out += [f"preprocessing          {self.preprocess} (metric.preprocess), reference resize {self.resize} "
                f"(metric.resize)",
               f"images                 {self.n_images} generated, {self.n_reference} reference",
               f"weights                {w.get('name', '?')} ({w.get('found_via', '?')})",
               f"reference cache        {'hit' if self.reference_cache_hit else 'built'} ({self.reference_cache})",
               f"time                   " + ", ".join(f"{k} {v:.2f} s" for k, v in self.seconds.items())]
        for note in self.notes:
            out.append(f"note                   {note}")
        return out + ([self.warning] if self.warning else [])


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


def check_submission(cfg: Config, target: Path, per_class: bool = False) -> ZipReport:
    """Open and check every image of the submission as Kaggle would, before minutes of reference features:
    a defect Kaggle rejects, or fewer than 2 valid images, raises ArchiveError now (a 10,000-image zip
    decodes in about a second; the reference of a real competition takes minutes)."""
    out = cfg.output
    if per_class and (target.is_dir() or out.layout != "by_class"):
        raise ArchiveError(f"--per-class needs a zip with one folder per class (output.layout: by_class); "
                           f"{target} is {'a folder' if target.is_dir() else 'a flat zip'}"
                           + ("" if out.layout == "by_class" else f" and {cfg.name} writes flat zips"))
    if target.is_dir():
        report = scan_folder(target, out.format, out.image_size, out.n_min, out.n_max)
    else:
        report = scan_zip(target, out.format, out.image_size, out.n_min, out.n_max, layout=out.layout)
    if report.problems:
        hint = None if target.is_dir() else f"`kompete validate {cfg.name} {target}` lists them"
        raise ArchiveError(report.message(), hint=hint)
    if report.n_images < 2:
        raise ArchiveError(f"{target}: {report.n_images} valid images; need at least 2 to score")
    return report


def score_path(cfg: Config, path: str | Path, data_dir: str | Path | None = None,
               weights: str | Path | None = None, download: bool = False, limit: int = 0,
               reference_limit: int | None = None, rebuild_reference: bool = False,
               device: str | None = None, progress: bool = False, per_class: bool = False,
               keep: dict[str, Any] | None = None) -> ScoreResult:
    """Kaggle's public-leaderboard MiFID (or FID, `metric.name`) of a submission, with the reference
    statistics cached. The Inception input path is `metric.preprocess`, for the reference and the submission.

    `limit` scores only the first N valid images (quick checks; not comparable to Kaggle's).
    A zip Kaggle would reject for its format, size or contents raises ArchiveError, before the reference is
    built; a wrong image count is scored anyway and reported as not comparable. `per_class` adds the FID of
    each class folder against the reference images of that class (by_class zips). `keep` receives what
    `neighbours.draw` needs (the reference, each generated image's nearest reference row, the target).
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    target = resolve_submission(cfg, path)  # a mistyped path fails before minutes of reference features
    dev = default_device(device)
    source = find_weights(weights, download=download)
    t = time.perf_counter()
    check_submission(cfg, target, per_class)
    timings["check"] = time.perf_counter() - t
    scorer = _Scorer(cfg, source, dev, data_dir, rebuild_reference, progress, timings)
    ref_limit = cfg.metric.reference_limit if reference_limit is None else reference_limit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankDeficientWarning)  # reported once below, as notes
        ref = scorer.reference(cfg, ref_limit)
        gen, report = scorer.generated(target, limit)
        t = time.perf_counter()
        fid = frechet_distance_to(gen, ref.mu, ref.sigma)
        near = nearest(gen, ref.features, device=dev, normalized=True)
        result = score_from_parts(cfg.metric.name, fid, near.mean, cfg.metric.eps)
        timings["metric"] = time.perf_counter() - t
        classes = class_fids(scorer, gen, report, ref_limit) if per_class else {}
    if keep is not None:
        keep.update(reference=ref, nearest=near, target=target, ref_limit=ref_limit)
    notes = _notes(cfg, report, ref, len(gen), limit, ref_limit, source.describe(), source.path)
    timings["total"] = time.perf_counter() - t0
    return ScoreResult(fid=result.fid, memorization_distance=result.memorization_distance,
                       thresholded_distance=result.thresholded_distance, mifid=result.mifid, eps=result.eps,
                       n_images=len(gen), n_reference=ref.n_images, comparable=not notes, notes=notes,
                       weights=source.describe(), reference_cache=str(ref.path), reference_cache_hit=ref.cache_hit,
                       seconds=timings, source=str(target), device=str(dev), metric=cfg.metric.name,
                       preprocess=cfg.metric.preprocess, resize=cfg.metric.resize,
                       closer_than_eps=near.share_below(cfg.metric.eps), per_class=classes)


class _Scorer:
    """The Inception model (loaded once, at first need) and the two feature passes of one score."""

    def __init__(self, cfg: Config, source, dev, data_dir, rebuild: bool, progress: bool,
                 timings: dict[str, float]):
        self.cfg, self.source, self.dev, self.data_dir = cfg, source, dev, data_dir
        self.rebuild, self.progress, self.timings = rebuild, progress, timings
        self.sha256 = source.describe()["sha256"]
        self._model = None

    def model(self):
        if self._model is None:
            t = time.perf_counter()
            self._model = load_inception(self.source, self.dev, preprocess=self.cfg.metric.preprocess)
            self.timings["load weights"] = time.perf_counter() - t
        return self._model

    def reference(self, cfg: Config, limit: int, label: str = "reference"):
        """The cached reference statistics of `cfg` (the competition's, or one class's)."""
        t = time.perf_counter()
        ref = load_reference(cfg, self.sha256, self.model, self.data_dir, limit=limit, rebuild=self.rebuild,
                             batch_size=cfg.metric.batch_size, progress=self.progress)
        self.timings[label] = self.timings.get(label, 0.0) + time.perf_counter() - t
        return ref

    def generated(self, target: Path, limit: int) -> tuple[np.ndarray, ZipReport]:
        t = time.perf_counter()
        extractor = FeatureExtractor(self.model(), self.cfg.metric.batch_size, self.dev)
        front = _Limited(extractor, limit)
        out = self.cfg.output
        if target.is_dir():
            report = scan_folder(target, out.format, out.image_size, out.n_min, out.n_max, consumer=front.add)
        else:
            report = scan_zip(target, out.format, out.image_size, out.n_min, out.n_max, consumer=front.add,
                              layout=out.layout)
        if report.problems:  # checked a moment ago; only a file changed since gets here
            raise ArchiveError(report.message())
        gen = extractor.result()
        if len(gen) < 2:
            raise ArchiveError(f"{target}: {len(gen)} valid images; need at least 2 to score")
        self.timings["generated"] = time.perf_counter() - t
        return gen, report


def _notes(cfg: Config, report: ZipReport, ref, n_gen: int, limit: int, ref_limit: int, weights_info: dict,
           weights_path: Path) -> list[str]:
    """Why a score is not comparable to Kaggle's (none: it is)."""
    notes: list[str] = []
    if report.count_problem:
        notes.append(f"Kaggle would reject this zip: {report.count_problem}")
    if limit and report.n_images > limit:
        notes.append(f"scored only the first {limit} of {report.n_images} images (--limit)")
    if ref_limit:
        notes.append(f"reference limited to the first {ref.n_images} images (reference_limit)")
    if n_gen < cfg.metric.min_images:
        notes.append(f"{n_gen} images is below {cfg.metric.min_images}: FID is biased upward at this count")
    dims = ref.features.shape[1]
    if ref.n_images <= dims:
        notes.append(f"{ref.n_images} reference images for {dims} feature dimensions: the reference covariance "
                     f"is singular, FID is biased upward")
    if not weights_info["fid_inception"]:
        notes.append(f"weights {weights_path} are not the FID Inception (sha256 {weights_info['sha256'][:12]}): "
                     f"numbers are not comparable to Kaggle's")
    return notes


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
