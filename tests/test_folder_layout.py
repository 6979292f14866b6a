"""The folder layout: class sub-folders or flat, any image mode, corrupt files counted, the crop modes, the
cache, a held-out reference folder, and the sample-faces competition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kompete import data
from kompete.config import config_from_dict, load_config
from kompete.data import locate
from kompete.errors import ConfigError, DataError


def folder_config(metric: dict | None = None, seed: int = 0, **data_overrides):
    return config_from_dict({"name": "folder-test", "task": "generate", "train": {"seed": seed},
                             "metric": metric or {},
                             "data": {"layout": "folder", "images_dir": "", "image_size": 16, **data_overrides}})


def save(path: Path, img: Image.Image) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


@pytest.fixture
def classes_dir(tmp_path) -> Path:
    """Two classes in every mode people's folders hold, with the defects the loader must survive."""
    root = tmp_path / "faces"
    rng = np.random.default_rng(0)
    for i in range(3):
        save(root / "unmasked" / f"{i}.jpg", Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)))
    save(root / "masked" / "grey.png", Image.new("L", (20, 20), 77))
    clear = Image.new("RGBA", (24, 24), (0, 0, 0, 0))  # fully transparent: its hidden RGB is black
    save(root / "masked" / "clear.png", clear)
    palette = Image.new("P", (18, 18), 1)
    palette.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    save(root / "masked" / "palette.gif", palette)
    save(root / "masked" / "deep" / "sixteen.png", Image.fromarray(np.full((20, 20), 65535, np.uint16)))
    (root / "masked" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "masked" / "notes.txt").write_text("not an image")
    (root / "masked" / ".DS_Store").write_bytes(b"\0\0")
    (root / "empty-class").mkdir()
    return root


def test_class_folders_are_the_labels_and_every_mode_becomes_rgb(classes_dir):
    images = data.prepare_images(folder_config(), classes_dir, progress=False)
    assert images.classes == ["masked", "unmasked"]  # sorted; a folder without images is no class
    assert images.images.shape == (7, 16, 16, 3) and images.images.dtype == np.uint8
    assert images.labels.tolist() == [0, 0, 0, 0, 1, 1, 1]
    by_name = dict(zip(["clear", "grey", "palette", "sixteen"], images.images[:4]))
    assert (by_name["grey"] == 77).all()  # grey repeated into three channels
    assert (by_name["clear"] == 255).all()  # transparency over white, not its hidden black
    assert tuple(by_name["palette"][8, 8]) == (200, 10, 10)
    assert (by_name["sixteen"] == 255).all()  # 16-bit white stays white, not clipped to 255/65535
    s = images.summary
    assert s.n_files == 9 and s.n_images == 7 and s.n_classes == 2
    assert s.skipped == {"unreadable images": 1, "non-image files": 1}
    assert s.class_counts == {"masked": 4, "unmasked": 3}
    lines = "\n".join(s.lines())
    assert "  masked    4" in lines and "  unmasked  3" in lines and "1 unreadable images (e.g. broken.png)" in lines


def test_a_flat_folder_is_one_class_and_loose_images_beside_classes_are_skipped(tmp_path):
    flat = tmp_path / "flat"
    for i in range(3):
        save(flat / f"{i}.png", Image.new("RGB", (20, 30), (i * 50, 0, 0)))
    images = data.prepare_images(folder_config(), flat, progress=False)
    assert images.classes == ["flat"] and images.labels.tolist() == [0, 0, 0]
    save(flat / "a" / "x.png", Image.new("RGB", (20, 20)))  # now a class folder: the loose images are in none
    mixed = data.prepare_images(folder_config(), flat, progress=False)
    assert mixed.classes == ["a"] and len(mixed) == 1
    assert mixed.summary.skipped == {"images outside the class folders": 3}


def test_images_dir_names_a_folder_under_the_data_dir_nested_or_zipped(tmp_path):
    save(tmp_path / "data" / "train" / "train" / "cats" / "1.png", Image.new("RGB", (20, 20)))
    cfg = folder_config(images_dir="train")
    found = locate.require(cfg, tmp_path / "data")
    assert found.folders["images"] == tmp_path / "data" / "train" / "train" and found.layout == "nested"
    assert data.prepare_images(cfg, tmp_path / "data", progress=False).classes == ["cats"]
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "readme.md").write_text("no images")
    with pytest.raises(DataError, match="no images or class folders of images in"):
        locate.require(folder_config(), tmp_path / "none")
    with pytest.raises(DataError, match="no images in"):
        data.prepare_images(folder_config(), tmp_path / "none")


def stripes(path: Path) -> Path:
    """40x20: 10 red columns, 20 green, 10 blue."""
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :10, 0] = arr[:, 10:30, 1] = arr[:, 30:, 2] = 255
    return save(path, Image.fromarray(arr))


def test_crop_modes_centre_whole_and_seeded_random(tmp_path):
    root = tmp_path / "wide"
    for i in range(6):
        stripes(root / f"{i}.png")
    centre = data.prepare_images(folder_config(crop="center", image_size=8), root, progress=False).images
    assert (centre[..., 1] == 255).all() and (centre[..., [0, 2]] == 0).all()  # only the green middle
    whole = data.prepare_images(folder_config(crop="none", image_size=8), root, progress=False).images
    assert whole[0, 4, 0, 0] > 200 and whole[0, 4, 4, 1] > 200 and whole[0, 4, 7, 2] > 200  # all three, squashed
    random = data.prepare_images(folder_config(crop="random", image_size=8), root, progress=False)
    again = data.prepare_images(folder_config(crop="random", image_size=8), root, progress=False)
    assert again.summary.cache_hit and np.array_equal(random.images, again.images)
    red = random.images[..., 0].mean(axis=(1, 2))
    assert len(set(red.round(1))) > 1  # the squares differ between images
    other = data.prepare_images(folder_config(crop="random", image_size=8, seed=1), root, progress=False)
    assert not other.summary.cache_hit and not np.array_equal(other.images, random.images)


def test_random_crops_are_the_same_from_a_cold_cache(tmp_path, monkeypatch):
    root = tmp_path / "wide"
    for i in range(4):
        stripes(root / f"{i}.png")
    runs = []
    for cache in ("a", "b"):
        monkeypatch.setenv("KOMPETE_CACHE_DIR", str(tmp_path / cache))
        got = data.prepare_images(folder_config(crop="random", image_size=8), root, progress=False)
        assert not got.summary.cache_hit
        runs.append(got.images)
    assert np.array_equal(*runs)


def test_cache_hit_and_a_file_moved_to_another_class_rebuilds(classes_dir):
    cfg = folder_config()
    first = data.prepare_images(cfg, classes_dir, progress=False)
    second = data.prepare_images(cfg, classes_dir, progress=False)
    assert second.summary.cache_hit and np.array_equal(first.images, second.images)
    assert second.summary.class_counts == first.summary.class_counts and second.classes == first.classes
    (classes_dir / "unmasked" / "0.jpg").rename(classes_dir / "masked" / "0.jpg")
    moved = data.prepare_images(cfg, classes_dir, progress=False)
    assert not moved.summary.cache_hit and moved.summary.class_counts == {"masked": 5, "unmasked": 2}


def test_reference_is_the_training_images_or_a_held_out_folder(tmp_path, classes_dir):
    names = [p.name for p in data.reference_files(folder_config(), classes_dir)]
    assert sorted(names) == sorted(["grey.png", "clear.png", "palette.gif", "sixteen.png", "broken.png",
                                    "0.jpg", "1.jpg", "2.jpg"])  # every image file of every class
    save(classes_dir / "held-out" / "b" / "h1.png", Image.new("RGB", (20, 20)))
    save(classes_dir / "held-out" / "h0.png", Image.new("RGB", (20, 20)))
    held = data.reference_files(folder_config(metric={"reference": "held-out"}), classes_dir)
    assert [p.name for p in held] == ["h0.png", "h1.png"]
    with pytest.raises(DataError, match="'metric.reference' is 'test'.*not a folder"):
        data.reference_files(folder_config(metric={"reference": "test"}), classes_dir)
    with pytest.raises(DataError, match="'metric.reference' is target_images"):
        data.reference_files(folder_config(metric={"reference": "target_images"}), classes_dir)
    (classes_dir / "empty-class" / "x.txt").write_text("")
    with pytest.raises(DataError, match="holds no images"):
        data.reference_files(folder_config(metric={"reference": "empty-class"}), classes_dir)


def test_sample_faces_is_two_classes_that_differ_in_the_lower_face(isolated_cache):
    cfg = load_config("sample-faces")
    root = data.resolve_data_dir(cfg)
    assert sorted(p.name for p in root.iterdir()) == ["masked", "unmasked"]
    assert len(list((root / "masked").glob("*.png"))) == cfg.data.sample.n_images // 2
    with Image.open(next((root / "masked").glob("*.png"))) as img:
        assert img.size == (64, 64) and img.format == "PNG"
    images = data.prepare_images(load_config("sample-faces", ["data.image_size=64"]), progress=False)
    assert images.classes == ["masked", "unmasked"] and images.summary.class_counts == {"masked": 128, "unmasked": 128}
    x = images.images.astype(np.float64)
    mean = [x[images.labels == k].mean(axis=0) for k in (0, 1)]
    gap = np.abs(mean[0] - mean[1]).mean(axis=2)  # per pixel, between the class means
    lower, upper = gap[40:50, 24:40].mean(), gap[14:24, 24:40].mean()  # mouth and chin vs forehead and eyes
    assert lower > 3 * upper


def test_sample_faces_is_byte_identical_per_seed(tmp_path, monkeypatch):
    from kompete.data.samples import ensure_sample

    sample = load_config("sample-faces", ["data.sample.n_images=8"]).data.sample
    trees = []
    for cache in ("a", "b"):
        monkeypatch.setenv("KOMPETE_CACHE_DIR", str(tmp_path / cache))
        root = ensure_sample("s", sample)
        trees.append({p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()})
    assert trees[0] == trees[1] and len(trees[0]) == 8
    other = load_config("sample-faces", ["data.sample.n_images=8", "data.sample.seed=1"]).data.sample
    root = ensure_sample("s", other)
    assert {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()} != trees[0]


@pytest.mark.parametrize("layout, kind", [("dogs", "faces"), ("folder", "dogs"), ("folder", "monet")])
def test_the_sample_kind_must_match_the_layout(layout, kind):
    with pytest.raises(ConfigError, match="'data.sample.kind'"):
        config_from_dict({"name": "x", "task": "generate", "data": {"layout": layout, "sample": {"kind": kind}}})


def test_the_crop_key_is_checked():
    with pytest.raises(ConfigError, match="'data.crop' must be one of center, random, none"):
        folder_config(crop="middle")
