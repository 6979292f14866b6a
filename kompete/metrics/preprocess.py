"""The Inception input path: Kaggle's TF graph (`tf`) or pytorch-fid's (`pytorch-fid`).

Kaggle's scorer fed 0-255 images to the 2015-12-05 TF Inception graph, which resized them to 299 inside
the graph with TF1 `ResizeBilinear` (align_corners=False, no half-pixel centres: output pixel i samples
source position i * in / out) and normalised with (x - 128) / 128. pytorch-fid resizes with
`F.interpolate(bilinear, align_corners=False)` (half-pixel centres: (i + 0.5) * in / out - 0.5) and
normalises with 2x - 1. The two differ by about 15 % relative L2 per feature vector at 64x64.

`tf1_resize_bilinear` is TF1's kernel in torch (gathers and the same lerps in the same order, float32),
on whatever device the images are; `tf1_resize_bilinear_np` is the same arithmetic in numpy, for the
reference images decoded in worker processes (`metric.resize: tf-bilinear`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import nn

PREPROCESS = ("tf", "pytorch-fid")
INCEPTION_SIZE = 299


@lru_cache(maxsize=32)
def _axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TF1's interpolation weights along one axis: lower index, upper index, lerp (float32, as TF computes them).

    scale = float(in) / out; src = float(i) * scale; lower = floor(src), upper = min(ceil(src), in - 1),
    lerp = src - floor(src).
    """
    scale = np.float32(n_in) / np.float32(n_out)
    src = np.arange(n_out, dtype=np.float32) * scale
    floor = np.floor(src)
    lower = np.maximum(floor.astype(np.int64), 0)
    upper = np.minimum(np.ceil(src).astype(np.int64), n_in - 1)
    return lower, upper, (src - floor).astype(np.float32)


def tf1_resize_bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TF1 `ResizeBilinear(align_corners=False)` of a float [N, C, H, W] tensor to `size` (h, w), on its device.

    top = tl + (tr - tl) * x_lerp, bottom = bl + (br - bl) * x_lerp, out = top + (bottom - top) * y_lerp,
    each step rounded to float32 as TF's kernel does. The horizontal lerps depend only on the source row, so
    they are computed once per source row (H of them, not 2 x out_h): the same values, 8x faster on a CPU.
    """
    h, w = x.shape[-2:]
    x = x.float()
    ylo, yhi, yl = (torch.from_numpy(a).to(x.device) for a in _axis(h, size[0]))
    xlo, xhi, xl = (torch.from_numpy(a).to(x.device) for a in _axis(w, size[1]))
    left = x[..., xlo]
    rows = left + (x[..., xhi] - left) * xl           # [N, C, H, out_w]
    top = rows[..., ylo, :]
    return top + (rows[..., yhi, :] - top) * yl[:, None]


def tf1_resize_bilinear_np(image: np.ndarray, size: int) -> np.ndarray:
    """The same resize of one HxWxC image to size x size in numpy: float32 values, not rounded."""
    h, w = image.shape[:2]
    x = np.asarray(image, dtype=np.float32)
    ylo, yhi, yl = _axis(h, size)
    xlo, xhi, xl = _axis(w, size)
    xl = xl[:, None]
    rows_top, rows_bottom = x[ylo], x[yhi]
    top = rows_top[:, xlo]
    top = top + (rows_top[:, xhi] - top) * xl
    bottom = rows_bottom[:, xlo]
    bottom = bottom + (rows_bottom[:, xhi] - bottom) * xl
    return top + (bottom - top) * yl[:, None, None]


def tf_inception_input(x01: torch.Tensor) -> torch.Tensor:
    """[0, 1] images [N, 3, H, W] to what Kaggle's TF graph fed its first convolution: 0-255, TF1 bilinear
    to 299x299, then (x - 128) * 0.0078125 (= / 128, exactly)."""
    x = x01.float() * 255.0
    if tuple(x.shape[-2:]) != (INCEPTION_SIZE, INCEPTION_SIZE):
        x = tf1_resize_bilinear(x, (INCEPTION_SIZE, INCEPTION_SIZE))
    return (x - 128.0) * 0.0078125


class TFInput(nn.Module):
    """An FID Inception built with resize_input and normalize_input off, fed Kaggle's TF input path.

    Takes [0, 1] images like pytorch-fid's `InceptionV3` (kompete's FeatureExtractor feeds every model so)
    and returns the same [pool3 features (N, 2048, 1, 1)].
    """

    preprocess = "tf"

    def __init__(self, inception: nn.Module):
        super().__init__()
        self.inception = inception

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # channels_last as pytorch-fid's path gets it (its interpolate keeps the NHWC strides of the uint8 batch):
        # the convolutions run about 1.4x faster so on a CPU, and the extractor asks for it on CUDA
        x = tf_inception_input(x).contiguous(memory_format=torch.channels_last)
        return self.inception(x)
