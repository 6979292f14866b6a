"""`kompete score --neighbours FILE.png`: the generated images closest to the training set, each beside its
nearest training image (by the memorization distance's 1 - |cos| on Inception features), so copying is seen,
not only measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from kompete.archive import scan_folder, scan_zip
from kompete.config import Config
from kompete.data import reference_files
from kompete.data.images import open_rgb
from kompete.errors import KompeteError
from kompete.paths import atomic_output

SHOWN = 8        # pairs drawn: the closest ones
MIN_TILE = 96    # small images are enlarged (nearest neighbour) to at least this side
CAPTION_W = 300  # the text column


def draw(cfg: Config, kept: dict[str, Any], out: str | Path, data_dir: str | Path | None = None,
         shown: int = SHOWN) -> Path:
    """Write the neighbours PNG from what `score_path(..., keep=kept)` left, atomically; return its path."""
    near, ref = kept["nearest"], kept["reference"]
    files = reference_files(cfg, data_dir)
    files = files[:kept["ref_limit"]] if kept["ref_limit"] else files
    if len(ref.features) != len(files):  # the reference skipped unreadable files: find them (rare, seconds)
        files = [f for f in files if open_rgb(f) is not None]
    if len(ref.features) != len(files):
        raise KompeteError(f"cannot draw neighbours: the reference has {len(ref.features)} feature rows for "
                           f"{len(files)} readable images, so rows cannot be matched to files",
                           hint="`kompete score ... --rebuild-reference` rebuilds it from the files as they are now")
    order = np.argsort(near.distance, kind="stable")[:shown]
    generated = _pick(cfg, kept["target"], [int(near.kept[i]) for i in order])
    pairs = [(generated[int(near.kept[i])], files[int(near.index[i])], float(near.distance[i])) for i in order]
    return _save(_sheet(pairs, cfg.output.image_size, cfg.metric.eps), Path(out))


class _Picker:
    """A scan consumer that keeps the images at the given positions among the valid images."""

    def __init__(self, wanted: list[int]):
        self.wanted, self.seen, self.found = set(wanted), 0, {}

    def add(self, batch: np.ndarray) -> None:
        for i in range(len(batch)):
            if self.seen + i in self.wanted:
                self.found[self.seen + i] = batch[i].copy()
        self.seen += len(batch)


def _pick(cfg: Config, target: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    picker, out = _Picker(wanted), cfg.output
    if target.is_dir():
        scan_folder(target, out.format, out.image_size, out.n_min, out.n_max, consumer=picker.add)
    else:
        scan_zip(target, out.format, out.image_size, out.n_min, out.n_max, consumer=picker.add, layout=out.layout)
    missing = set(wanted) - set(picker.found)
    if missing:
        raise KompeteError(f"{target} changed while it was scored: {len(missing)} generated images are gone")
    return picker.found


def _sheet(pairs: list[tuple[np.ndarray, Path, float]], size: int, eps: float) -> Image.Image:
    """One row per pair: generated | nearest training image | distance and file name."""
    tile = max(size, MIN_TILE)
    head, pad = 18, 4
    sheet = Image.new("RGB", (2 * tile + 3 * pad + CAPTION_W, head + len(pairs) * (tile + pad) + pad), "white")
    pen, font = ImageDraw.Draw(sheet), ImageFont.load_default()
    pen.text((pad, 3), "generated", fill="black", font=font)
    pen.text((tile + 2 * pad, 3), "nearest training image", fill="black", font=font)
    for row, (pixels, file, distance) in enumerate(pairs):
        top = head + row * (tile + pad)
        sheet.paste(Image.fromarray(pixels).resize((tile, tile), Image.NEAREST), (pad, top))
        real = open_rgb(file)
        if real is not None:
            sheet.paste(real.resize((tile, tile), Image.LANCZOS), (tile + 2 * pad, top))
        verdict = "closer than eps: counts as copying" if distance < eps else "not closer than eps"
        pen.text((2 * tile + 3 * pad, top + 4), f"distance {distance:.4f} (eps {eps:g})\n{verdict}\n{file.name}",
                 fill="firebrick" if distance < eps else "black", font=font)
    return sheet


def _save(sheet: Image.Image, out: Path) -> Path:
    with atomic_output(out) as tmp:
        sheet.save(tmp, "PNG")
    return out
