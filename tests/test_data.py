from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kompete import data
from kompete.config import config_from_dict, load_config
from kompete.data.augment import random_flip, resize_random_crop, to_float, to_uint8
from kompete.data.dogs import square_box
from kompete.data.download import safe_extract
from kompete.errors import DataError


def dogs_config(**data_overrides):
    return config_from_dict({"name": "dogs-test", "task": "generate",
                             "data": {"layout": "dogs", "image_size": 32, **data_overrides}})


def voc(boxes):
    objs = "".join(f"<object><name>d</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax>"
                   f"<ymax>{d}</ymax></bndbox></object>" for a, b, c, d in boxes)
    return f"<annotation><size><width>120</width><height>90</height></size>{objs}</annotation>"


@pytest.fixture
def dog_dir(tmp_path) -> Path:
    """The real Kaggle layout with every defect the loader must survive."""
    root = tmp_path / "dogs"
    (root / "all-dogs").mkdir(parents=True)
    rng = np.random.default_rng(0)
    layout = {"n02085620-Chihuahua": {"n02085620_1": [(10, 10, 60, 80)], "n02085620_2": [(0, 0, 50, 40), (60, 30, 119, 89)]},
              "n02085782-Japanese_spaniel": {"n02085782_1": [(20, 5, 100, 85)], "n02085782_9": [(1, 1, 30, 30)]}}
    for breed, images in layout.items():
        (root / "Annotation" / breed).mkdir(parents=True)
        for stem, boxes in images.items():
            Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(root / "all-dogs" / f"{stem}.jpg")
            (root / "Annotation" / breed / stem).write_text(voc(boxes))
    (root / "Annotation" / "n02085782-Japanese_spaniel" / "n02085782_9").unlink()  # missing XML
    Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(root / "all-dogs" / "n02085620_3.jpg")
    (root / "Annotation" / "n02085620-Chihuahua" / "n02085620_3").write_text("<annotation><object>")  # broken XML
    good = (root / "all-dogs" / "n02085620_1.jpg").read_bytes()
    (root / "all-dogs" / "n02085620_4.jpg").write_bytes(good[: len(good) // 3])  # truncated JPG
    (root / "Annotation" / "n02085620-Chihuahua" / "n02085620_4").write_text(voc([(0, 0, 50, 50)]))
    (root / "all-dogs" / "notes.txt").write_text("not an image")
    return root


def test_dog_loader_crops_every_box_and_counts_what_it_skipped(dog_dir):
    images = data.prepare_images(dogs_config(), dog_dir, progress=False)
    assert images.images.shape == (4, 32, 32, 3) and images.images.dtype == np.uint8
    assert images.classes == ["Chihuahua", "Japanese_spaniel"]
    assert sorted(images.labels.tolist()) == [0, 0, 0, 1]
    s = images.summary
    assert s.n_files == 7 and s.n_images == 4 and not s.cache_hit
    assert s.skipped == {"non-image files": 1, "images without an annotation file": 1,
                         "unreadable annotation files": 1, "unreadable images": 1}
    assert any("skipped" in line and "notes.txt" in line for line in s.lines())


def test_crop_matches_the_box_region(tmp_path):
    root = tmp_path / "d"
    (root / "all-dogs").mkdir(parents=True)
    (root / "Annotation" / "n1-A").mkdir(parents=True)
    img = np.zeros((90, 120, 3), np.uint8)
    img[20:60, 40:80] = [255, 0, 0]  # a red square "dog"
    Image.fromarray(img).save(root / "all-dogs" / "n1_1.png")
    (root / "Annotation" / "n1-A" / "n1_1").write_text(voc([(40, 20, 80, 60)]))
    crop = data.prepare_images(dogs_config(crop_margin=0.0), root, progress=False).images[0]
    assert crop[4:28, 4:28, 0].min() > 200 and crop[4:28, 4:28, 1].max() < 60  # all red: the crop is the box


def test_square_box_stays_inside_the_image():
    assert square_box((0, 0, 50, 20), 0.1, (120, 90)) == (0, 0, 60, 60)
    left, top, right, bottom = square_box((100, 70, 119, 89), 0.5, (120, 90))
    assert right - left == bottom - top and right <= 120 and bottom <= 90
    assert square_box((0, 0, 120, 90), 0.2, (120, 90)) == (15, 0, 105, 90)


def test_cache_hit_and_invalidation(dog_dir):
    cfg = dogs_config()
    first = data.prepare_images(cfg, dog_dir, progress=False)
    second = data.prepare_images(cfg, dog_dir, progress=False)
    assert second.summary.cache_hit and np.array_equal(first.images, second.images)
    assert second.summary.skipped == first.summary.skipped
    bigger = data.prepare_images(dogs_config(image_size=48), dog_dir, progress=False)  # settings change
    assert not bigger.summary.cache_hit and bigger.images.shape[1] == 48
    Image.new("RGB", (120, 90), "blue").save(dog_dir / "all-dogs" / "n02085782_1.jpg")  # an input changes
    changed = data.prepare_images(cfg, dog_dir, progress=False)
    assert not changed.summary.cache_hit and not np.array_equal(changed.images, first.images)


def test_missing_or_empty_data_is_a_clear_error(tmp_path, dog_dir):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="looked in .*empty"):
        data.prepare_images(dogs_config(), tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "readme.txt").write_text("hi")
    with pytest.raises(DataError, match="no all-dogs/ folder"):
        data.prepare_images(dogs_config(), tmp_path / "other")
    with pytest.raises(DataError, match="looked in"):
        data.prepare_images(dogs_config(local_dir=str(tmp_path / "nowhere")))
    (dog_dir / "Annotation").rename(dog_dir / "Ann")
    with pytest.raises(DataError, match="bounding boxes are needed"):
        data.prepare_images(dogs_config(), dog_dir)
    whole = data.prepare_images(dogs_config(use_boxes=False), dog_dir, progress=False)
    assert len(whole) == 5  # every decodable image, centre-cropped


def test_monet_domains_and_reference_files(tmp_path):
    root = tmp_path / "monet"
    for folder, n in (("photo_jpg", 5), ("monet_jpg", 3)):
        (root / folder).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (40, 40), (i * 40, 0, 0)).save(root / folder / f"{i}.jpg")
    (root / "photo_jpg" / "broken.jpg").write_bytes(b"\xff\xd8garbage")
    cfg = config_from_dict({"name": "m", "task": "translate", "metric": {"reference": "target_images"},
                            "data": {"layout": "monet", "image_size": 32}})
    pair = data.load_domains(cfg, root, progress=False)
    assert pair.source.images.shape == (5, 32, 32, 3) and pair.target.images.shape == (3, 32, 32, 3)
    assert pair.source_names == [f"{i}.jpg" for i in range(5)]
    assert pair.source.summary.skipped == {"unreadable images": 1}
    assert [p.name for p in data.reference_files(cfg, root)] == ["0.jpg", "1.jpg", "2.jpg"]
    with pytest.raises(DataError, match="has the monet layout"):
        data.prepare_images(cfg, root)


def test_sample_competitions_are_deterministic_and_use_the_real_layouts(isolated_cache):
    dogs = load_config("sample-dogs")
    root = data.resolve_data_dir(dogs)
    assert (root / "all-dogs").is_dir() and (root / "Annotation").is_dir()
    first = data.prepare_images(dogs, progress=False)
    assert len(first.classes) == dogs.data.sample.n_classes and len(first) >= dogs.data.sample.n_images
    assert not first.summary.skipped
    # a fresh generation from the same seed gives the same bytes
    other = load_config("sample-dogs", ["data.sample.seed=0"])
    assert data.resolve_data_dir(other) == root
    monet = load_config("sample-monet")
    pair = data.load_domains(monet, progress=False)
    assert len(pair.source) == monet.data.sample.n_images and len(pair.target) == monet.data.sample.n_target
    # the two domains differ in style: paintings are warmer (more red than blue) than photos
    warmth = lambda x: float((x[..., 0].astype(int) - x[..., 2]).mean())
    assert warmth(pair.target.images) > warmth(pair.source.images) + 20


def test_sample_generation_is_byte_identical(tmp_path, monkeypatch):
    from kompete.data.samples import ensure_sample

    cfg = load_config("sample-dogs", ["data.sample.n_images=8"]).data.sample
    monkeypatch.setenv("KOMPETE_CACHE_DIR", str(tmp_path / "a"))
    a = ensure_sample("s", cfg)
    monkeypatch.setenv("KOMPETE_CACHE_DIR", str(tmp_path / "b"))
    b = ensure_sample("s", cfg)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()) and len(files_a) == 16
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)


def test_augmentations_keep_shapes_and_values():
    x = torch.randint(0, 256, (6, 3, 40, 40), dtype=torch.uint8)
    assert torch.equal(to_uint8(to_float(x)), x)
    assert to_float(x).min() >= -1 and to_float(x).max() <= 1
    g = torch.Generator().manual_seed(0)
    flipped = random_flip(to_float(x), g)
    assert all(torch.equal(f, o) or torch.equal(f, o.flip(2)) for f, o in zip(flipped, to_float(x)))
    crops = resize_random_crop(to_float(x), 48, 32, g)
    assert crops.shape == (6, 3, 32, 32)
    same = resize_random_crop(to_float(x), 40, 40, g)
    assert torch.equal(same, to_float(x))
    big = torch.arange(40.0).repeat(1, 3, 40, 1)  # columns numbered: a crop is a contiguous window
    window = resize_random_crop(big, 40, 8, g)[0, 0, 0]
    assert torch.equal(window, torch.arange(window[0], window[0] + 8))


def test_safe_extract_refuses_traversal_and_links(tmp_path):
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("all-dogs/a.jpg", b"x")
        zf.writestr("Annotation/n1-A/a", b"y")
    assert safe_extract(good, tmp_path / "out") == 2
    assert (tmp_path / "out" / "all-dogs" / "a.jpg").read_bytes() == b"x"
    for name in ("../evil.txt", "/abs/evil.txt", "a/../../evil.txt", "C:/evil.txt"):
        bad = tmp_path / "bad.zip"
        with zipfile.ZipFile(bad, "w") as zf:
            zf.writestr(name, b"evil")
        with pytest.raises(DataError, match="outside the destination"):
            safe_extract(bad, tmp_path / "out2")
        assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out2").exists()
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as zf:
        info = zipfile.ZipInfo("l")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(DataError, match="symbolic link"):
        safe_extract(link, tmp_path / "out3")
    with pytest.raises(DataError, match="over the"):
        safe_extract(good, tmp_path / "out4", max_total=1)
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable zip"):
        safe_extract(tmp_path / "junk.zip", tmp_path / "out5")
