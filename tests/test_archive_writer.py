from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from kompete.archive import ZipImageWriter


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_writer_encodes_every_image_into_the_zip(tmp_path, fmt):
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, size=(5, 16, 16, 3), dtype=np.uint8)
    path = tmp_path / "images.zip"
    with ZipImageWriter(path, fmt=fmt, quality=90) as zw:
        zw.add_batch(batch)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert names == [f"{i:05d}.{fmt}" for i in range(5)]
        first = Image.open(io.BytesIO(zf.read(names[0])))
        assert first.format == {"png": "PNG", "jpg": "JPEG"}[fmt] and first.size == (16, 16) and first.mode == "RGB"
        if fmt == "png":  # lossless
            assert np.array_equal(np.asarray(first), batch[0])
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_interrupted_writer_leaves_no_zip(tmp_path):
    path = tmp_path / "images.zip"
    with pytest.raises(KeyboardInterrupt):
        with ZipImageWriter(path) as zw:
            zw.add(np.zeros((8, 8, 3), np.uint8))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_wrong_arrays(tmp_path):
    with ZipImageWriter(tmp_path / "x.zip") as zw:
        with pytest.raises(ValueError):
            zw.add(np.zeros((8, 8), np.uint8))
        with pytest.raises(ValueError):
            zw.add(np.zeros((8, 8, 3), np.float32))
