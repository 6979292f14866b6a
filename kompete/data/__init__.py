"""Data for both competition layouts: find it, prepare it once, cache it, hand it over as uint8 arrays."""

from __future__ import annotations

from pathlib import Path

from kompete import paths
from kompete.config import Config
from kompete.data import locate
from kompete.data.locate import download_hint
from kompete.data.images import IMAGE_SUFFIXES, DataSummary, DomainPair, ImageSet, list_images
from kompete.errors import DataError


__all__ = ["DataSummary", "DomainPair", "ImageSet", "load_domains", "prepare_images", "reference_files",
           "resolve_data_dir"]


def resolve_data_dir(cfg: Config, data_dir: str | Path | None = None) -> Path:
    """Where the competition's files are: --data-dir, a sample made on demand, a kernel's input, or local_dir."""
    if data_dir is not None:
        candidates = [Path(data_dir)]
    elif cfg.data.sample is not None:
        from kompete.data.samples import ensure_sample

        return ensure_sample(cfg.name, cfg.data.sample)
    else:
        candidates = []
        if cfg.data.kaggle_dir:
            candidates.append(locate.competition_dir(paths.kaggle_input(), cfg.data.kaggle_dir))
        if cfg.data.local_dir:
            candidates.append(Path(cfg.data.local_dir))
    for folder in candidates:
        if folder.is_dir() and any(folder.iterdir()):
            return folder
    looked = ", ".join(str(c) for c in candidates) or "nowhere (the config sets no kaggle_dir or local_dir)"
    raise DataError(f"no data for {cfg.name}: looked in {looked}",
                    hint=download_hint(cfg))


def prepare_images(cfg: Config, data_dir: str | Path | None = None, progress: bool = True) -> ImageSet:
    """Training images of a `generate` competition (dogs layout), cropped, resized and cached."""
    if cfg.data.layout != "dogs":
        raise DataError(f"{cfg.name} has the {cfg.data.layout} layout; use load_domains()")
    from kompete.data.dogs import prepare_dogs

    return prepare_dogs(cfg, resolve_data_dir(cfg, data_dir), progress)


def load_domains(cfg: Config, data_dir: str | Path | None = None, progress: bool = True) -> DomainPair:
    """Photos (source) and paintings (target) of a `translate` competition (monet layout)."""
    if cfg.data.layout != "monet":
        raise DataError(f"{cfg.name} has the {cfg.data.layout} layout; use prepare_images()")
    from kompete.data import monet

    return monet.load_domains(cfg, resolve_data_dir(cfg, data_dir), progress)


def reference_files(cfg: Config, data_dir: str | Path | None = None) -> list[Path]:
    """The image files of the metric's real set: every training image, or the target-domain paintings."""
    root = resolve_data_dir(cfg, data_dir)
    if cfg.metric.reference == "train_images":
        folder = locate.folder(cfg, root, "images" if cfg.data.layout == "dogs" else "source")
    else:
        folder = locate.folder(cfg, root, "target")
    if not folder.is_dir():
        raise DataError(f"no reference images: {folder} does not exist",
                        hint=download_hint(cfg))
    files = list_images(folder)[0]
    if not files:
        raise DataError(f"no reference images in {folder}")
    return files


def summarise(cfg: Config, data_dir: str | Path | None = None, progress: bool = True) -> list[DataSummary]:
    """Load everything the competition trains on and return what was found (the `kompete data` report)."""
    if cfg.data.layout == "dogs":
        return [prepare_images(cfg, data_dir, progress).summary]
    pair = load_domains(cfg, data_dir, progress)
    return [pair.source.summary, pair.target.summary]


