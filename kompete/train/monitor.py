"""What a run shows and leaves behind: progress bar, metrics.csv, loss/D-output plots, sample grids."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from kompete.paths import atomic_output


class MetricsLog:
    """Appends rows to metrics.csv (a log, flushed per row); reopening an existing file continues it."""

    def __init__(self, path: Path, fields: Sequence[str]):
        self.path, self.fields = path, list(fields)
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists() or path.stat().st_size == 0
        if not fresh:
            with path.open() as f:
                header = next(csv.reader(f), [])
            if header != self.fields:  # a different schema: keep the old file aside
                path.rename(path.with_suffix(".old.csv"))
                fresh = True
        self._file = path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, self.fields)
        if fresh:
            self._writer.writeheader()
            self._file.flush()

    def write(self, row: dict[str, float]) -> None:
        self._writer.writerow({k: _fmt(row.get(k, "")) for k in self.fields})
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _fmt(v: object) -> object:
    return f"{v:.6g}" if isinstance(v, float) else v


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    with path.open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {k: np.array([float(r[k]) if r[k] not in ("", None) else math.nan for r in rows]) for k in rows[0]}


FEW_POINTS = 10      # below this many rows a plot says how many points it has (a line of two points looks empty)
MARKERS_UP_TO = 200  # rows up to which every point gets a marker


def plot_metrics(metrics_csv: Path, out_dir: Path, loss_names: Sequence[str], title: str = "") -> list[Path]:
    """losses.png (every loss against step) and d_outputs.png (mean D(x), mean D(G(z))), written atomically.
    `title` (the run and competition) heads both; every point has a marker while there are few; a run that
    logged no row yet gets plots that say so (not blank axes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = read_metrics(metrics_csv) if metrics_csv.is_file() else {}
    written = []
    panels = [("losses.png", [k for k in loss_names if k not in ("d_real", "d_fake")], "loss"),
              ("d_outputs.png", [k for k in ("d_real", "d_fake") if k in loss_names], "mean D logit")]
    for name, keys, ylabel in panels:
        keys = [k for k in keys if k in data or not data]
        if not keys:
            continue
        fig, ax = plt.subplots(figsize=(7, 4))
        _draw_metrics(ax, data, keys, ylabel, title)
        fig.tight_layout()
        path = out_dir / name
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format="png", dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def _draw_metrics(ax, data: dict[str, np.ndarray], keys: Sequence[str], ylabel: str, title: str) -> None:
    n = len(data.get("step", ()))
    for k in keys if n else ():
        ax.plot(data["step"], data[k], label={"d_real": "D(x)", "d_fake": "D(G(z))"}.get(k, k),
                marker="o" if n <= MARKERS_UP_TO else None, ms=4 if n <= FEW_POINTS else 2.5)
    few = f" ({n} point{'s' if n != 1 else ''}, one per train.log_every steps)" if n < FEW_POINTS else ""
    ax.set_title((f"{ylabel}: {title}" if title else ylabel) + few, fontsize=10)
    if not n:
        ax.text(0.5, 0.5, "no row logged: training stopped before its first step ended",
                ha="center", va="center", transform=ax.transAxes, color="gray")
        return
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(alpha=0.3)


CAPTION_H = 12          # the text strip under each captioned tile
CAPTIONED_TILE = 64     # captioned tiles are enlarged (nearest neighbour) to at least this side, room for the text


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8, padding: int = 2,
              captions: Sequence[str] | None = None) -> Path:
    """uint8 NCHW images tiled into one PNG (atomic); `captions` (one per image: its class, or input/output)
    are written under the tiles."""
    x = images.cpu().permute(0, 2, 3, 1).numpy()
    if captions is not None:
        k = -(-CAPTIONED_TILE // x.shape[2])
        x = x.repeat(k, axis=1).repeat(k, axis=2)
    n, h, w, c = x.shape
    strip = CAPTION_H if captions is not None else 0
    cols = min(nrow, n)
    rows = -(-n // cols)
    grid = np.zeros((rows * (h + strip + padding) + padding, cols * (w + padding) + padding, c), np.uint8)
    corners = []
    for i in range(n):
        r, k = divmod(i, cols)
        top, left = padding + r * (h + strip + padding), padding + k * (w + padding)
        grid[top:top + h, left:left + w] = x[i]
        corners.append((left, top + h))
    picture = Image.fromarray(grid, "RGB")
    if captions is not None:
        _write_captions(picture, captions, corners, w)
    with atomic_output(path) as tmp:
        picture.save(tmp, "PNG")
    return path


def _write_captions(picture: Image.Image, captions: Sequence[str], corners: list[tuple[int, int]], width: int) -> None:
    from PIL import ImageDraw, ImageFont

    pen, font = ImageDraw.Draw(picture), ImageFont.load_default()
    for text, (left, top) in zip(captions, corners):
        text = str(text)
        while text and pen.textlength(text, font=font) > width - 2:
            text = text[:-1]
        pen.text((left + 1, top + 1), text, fill=(255, 255, 255), font=font)


class Progress:
    """A tqdm bar over the training window's seconds, showing step, epoch, losses and the time left."""

    def __init__(self, total_s: float, enabled: bool):
        self.bar = tqdm(total=max(1, round(total_s)), unit="s", desc="train", disable=not enabled,
                        bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} s {postfix}",
                        dynamic_ncols=True)
        self._shown = 0

    def update(self, elapsed_s: float, **info: object) -> None:
        target = min(self.bar.total, int(elapsed_s))
        if target > self._shown:
            self.bar.update(target - self._shown)
            self._shown = target
        if info:
            self.bar.set_postfix({k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in info.items()},
                                 refresh=False)

    def close(self) -> None:
        self.bar.close()
