"""The submission archive: images encoded straight into `images.zip`, and the checks Kaggle applies."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from types import TracebackType

import numpy as np
from PIL import Image

from kompete.errors import ArchiveError
from kompete.paths import atomic_output

FORMATS = {"png": "PNG", "jpg": "JPEG"}


class ZipImageWriter:
    """Encode uint8 HxWx3 arrays into a zip as 00000.png, 00001.png, ... without loose files.

    The zip is built under a temporary name and renamed into place only when the `with` block
    ends cleanly, so an interrupted generation never leaves a zip that looks complete.
    PNGs are stored (they are already compressed); JPGs likewise.
    """

    def __init__(self, path: str | Path, fmt: str = "png", quality: int = 95):
        if fmt not in FORMATS:
            raise ArchiveError(f"unknown image format {fmt!r}; choose one of: {', '.join(FORMATS)}")
        self.path = Path(path)
        self.fmt = fmt
        self.quality = quality
        self.count = 0
        self._atomic = atomic_output(self.path)
        self._zip: zipfile.ZipFile | None = None

    def __enter__(self) -> "ZipImageWriter":
        tmp = self._atomic.__enter__()
        self._zip = zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED)
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        assert self._zip is not None
        self._zip.close()
        return bool(self._atomic.__exit__(exc_type, exc, tb))

    def add(self, image: np.ndarray, name: str | None = None) -> str:
        """Encode one HxWx3 uint8 image; returns its member name."""
        if self._zip is None:
            raise RuntimeError("ZipImageWriter.add outside its `with` block")
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a uint8 HxWx3 image, got {image.dtype} {image.shape}")
        name = name or f"{self.count:05d}.{self.fmt}"
        self._zip.writestr(name, encode_image(image, self.fmt, self.quality))
        self.count += 1
        return name

    def add_batch(self, images: np.ndarray) -> None:
        """Encode a uint8 NxHxWx3 batch."""
        for image in images:
            self.add(image)


def encode_image(image: np.ndarray, fmt: str = "png", quality: int = 95) -> bytes:
    buf = io.BytesIO()
    options = {"quality": quality} if fmt == "jpg" else {"compress_level": 1}
    Image.fromarray(image, "RGB").save(buf, FORMATS[fmt], **options)
    return buf.getvalue()
