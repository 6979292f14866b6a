"""Data for every competition layout: find it, prepare it once, cache it, hand it over as uint8 arrays.

Each layout is a torch-free spec in kompete/layouts/<name>.py (LAYOUTS): the kind of data it gives
(`generate`: one ImageSet, `translate`: a DomainPair of two domains), its folders by role (`locate.ROLES`)
and its loader here, `data/<name>.py`, imported only when it runs.
"""

from __future__ import annotations

from pathlib import Path

from kompete import paths
from kompete.config import Config
from kompete.data import locate
from kompete.data.locate import download_hint
from kompete.data.images import IMAGE_SUFFIXES, DataSummary, DomainPair, ImageSet, list_images
from kompete.errors import DataError
from kompete.layouts import LAYOUTS, LayoutSpec, layout


__all__ = ["LAYOUTS", "DataSummary", "DomainPair", "ImageSet", "load_domains", "prepare_images",
           "reference_files", "resolve_data_dir"]


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


def _layout(cfg: Config, task: str) -> LayoutSpec:
    spec = layout(cfg.data.layout)
    if spec.task != task:
        other = "load_domains()" if spec.task == "translate" else "prepare_images()"
        raise DataError(f"{cfg.name} has the {cfg.data.layout} layout; use {other}")
    return spec


def prepare_images(cfg: Config, data_dir: str | Path | None = None, progress: bool = True) -> ImageSet:
    """Training images of a `generate` competition (dogs or folder layout), cropped, resized and cached."""
    return _layout(cfg, "generate").load()(cfg, resolve_data_dir(cfg, data_dir), progress)


def load_domains(cfg: Config, data_dir: str | Path | None = None, progress: bool = True) -> DomainPair:
    """Photos (source) and paintings (target) of a `translate` competition (monet layout)."""
    return _layout(cfg, "translate").load()(cfg, resolve_data_dir(cfg, data_dir), progress)


def reference_files(cfg: Config, data_dir: str | Path | None = None) -> list[Path]:
    """The image files of the metric's real set (`metric.reference`): every training image, the target-domain
    paintings, or every image in a held-out folder (relative to the data dir, sub-folders included)."""
    from kompete.data.folder import image_files, scan

    root = resolve_data_dir(cfg, data_dir)
    ref, layout = cfg.metric.reference, cfg.data.layout
    if ref == "train_images":
        folder = locate.folder(cfg, root, locate.TRAIN_ROLE[layout])
    elif ref == "target_images":
        if "target" not in locate.ROLES[layout]:
            raise DataError(f"'metric.reference' is target_images, but the {layout} layout has no target domain "
                            "(only monet's paintings are one)", hint="use train_images or a folder of held-out images")
        folder = locate.folder(cfg, root, "target")
    elif not ref.strip():
        raise DataError("'metric.reference' is empty", hint="use train_images, target_images or a folder")
    else:
        folder = root / ref
        if not folder.is_dir():
            raise DataError(f"'metric.reference' is {ref!r}, but {folder} is not a folder",
                            hint=f"a held-out reference folder is named relative to the data dir {root}")
        files = image_files(folder)
        if not files:
            raise DataError(f"'metric.reference' is {ref!r}, but {folder} holds no images")
        return files
    if not folder.is_dir():
        raise DataError(f"no reference images: {folder} does not exist",
                        hint=download_hint(cfg))
    files = scan(folder).files if layout == "folder" else list_images(folder)[0]
    if not files:
        raise DataError(f"no reference images in {folder}")
    return files


def summarise(cfg: Config, data_dir: str | Path | None = None, progress: bool = True) -> list[DataSummary]:
    """Load everything the competition trains on and return what was found (the `kompete data` report)."""
    loaded = layout(cfg.data.layout).load()(cfg, resolve_data_dir(cfg, data_dir), progress)
    if isinstance(loaded, DomainPair):
        return [loaded.source.summary, loaded.target.summary]
    return [loaded.summary]


