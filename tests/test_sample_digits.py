"""sample-digits: an offline grey MNIST-style class competition (ten folders of 28 px digits) for the vanilla
GAN of the MNIST write-up, trained, generated into class folders and validated end to end."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from PIL import Image

from kompete import data
from kompete.archive import validate_zip
from kompete.config import load_config
from kompete.data.samples import ensure_sample
from kompete.generate import generate_zip
from kompete.train.budget import make_budget
from kompete.train.run import train_run

DIGITS = [str(d) for d in range(10)]


def test_sample_digits_is_ten_folders_of_grey_28px_digits():
    cfg = load_config("sample-digits", ["data.sample.n_images=40"])
    assert (cfg.train.model, cfg.output.layout, cfg.output.image_size) == ("vanilla_cond", "by_class", 28)
    root = data.resolve_data_dir(cfg)
    assert sorted(p.name for p in root.iterdir()) == DIGITS
    assert all(len(list((root / d).glob("*.png"))) == 4 for d in DIGITS)
    with Image.open(next((root / "7").glob("*.png"))) as img:
        assert (img.size, img.mode) == ((28, 28), "L")
        pixels = np.asarray(img)
    assert pixels[0].max() < 40 and pixels.max() > 180  # white strokes on black, clear of the border
    images = data.prepare_images(cfg, progress=False)
    assert images.classes == DIGITS and images.images.shape == (40, 28, 28, 3)
    mean = [images.images[images.labels == k].astype(float).mean() for k in (1, 8)]
    assert mean[1] > 1.3 * mean[0]  # an 8 has more ink than a 1: the classes differ


def test_sample_digits_is_byte_identical_per_seed(tmp_path, monkeypatch):
    sample = load_config("sample-digits", ["data.sample.n_images=20"]).data.sample
    trees = []
    for cache in ("a", "b"):
        monkeypatch.setenv("KOMPETE_CACHE_DIR", str(tmp_path / cache))
        root = ensure_sample("s", sample)
        trees.append({p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()})
    assert trees[0] == trees[1] and len(trees[0]) == 20


@pytest.mark.usefixtures("one_thread")
def test_the_vanilla_gan_trains_on_digits_and_writes_ten_class_folders(tmp_path):
    cfg = load_config("sample-digits", ["data.sample.n_images=40", "train.g_channels=4", "train.d_channels=4",
                                        "train.batch_size=8", "generate.n_images=100", "generate.batch_size=50"])
    result = train_run(cfg, tmp_path / "run", make_budget(cfg, 600.0), fresh=True, max_steps=3, progress=False)
    assert result is not None and result.steps == 3
    zip_path = generate_zip(tmp_path / "run", tmp_path / "images.zip", progress=False)
    report = validate_zip(cfg, zip_path)
    assert report.ok and report.class_counts == {d: 10 for d in DIGITS}
    with zipfile.ZipFile(zip_path) as zf:
        with zf.open(zf.namelist()[0]) as f, Image.open(f) as img:
            assert (img.size, img.mode) == ((28, 28), "RGB")  # Kaggle's checks want RGB; grey is replicated
