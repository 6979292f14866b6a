"""Competition data is found in every layout Kaggle or a user gives it: flat, nested, zipped, any case."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from kompete import data
from kompete.config import load_config
from kompete.data import locate
from kompete.errors import DataError

DOGS = load_config("sample-dogs", ["data.sample=null", "data.kaggle_dir=generative-dog-images"])
MONET = load_config("sample-monet", ["data.sample=null", "data.kaggle_dir=gan-getting-started"])


def _flat_dogs(root: Path) -> Path:
    """A flat copy of the sample dogs (real JPGs and VOC files) under `root`."""
    src = data.resolve_data_dir(load_config("sample-dogs", ["data.sample.n_images=8"]))
    shutil.copytree(src / "all-dogs", root / "all-dogs")
    shutil.copytree(src / "Annotation", root / "Annotation")
    return root


def _zip_folder(folder: Path, archive: Path) -> None:
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(folder.parent).as_posix())


def _layout(kind: str, root: Path) -> Path:
    flat = _flat_dogs(root / "flat-source")
    comp = root / "input" / "generative-dog-images"
    comp.mkdir(parents=True)
    if kind == "flat":
        shutil.copytree(flat / "all-dogs", comp / "all-dogs")
        shutil.copytree(flat / "Annotation", comp / "Annotation")
    elif kind == "nested":  # what most public kernels read
        shutil.copytree(flat / "all-dogs", comp / "all-dogs" / "all-dogs")
        shutil.copytree(flat / "Annotation", comp / "annotation" / "Annotation")
    elif kind == "zips":
        _zip_folder(flat / "all-dogs", comp / "all-dogs.zip")
        _zip_folder(flat / "Annotation", comp / "Annotation.zip")
    return comp


@pytest.mark.parametrize("kind, expected", [("flat", "flat"), ("nested", "nested"), ("zips", "zip")])
def test_dog_data_is_found_and_cropped_in_every_layout(tmp_path, kind, expected):
    comp = _layout(kind, tmp_path)
    found = locate.require(DOGS, comp)
    assert found.layout == expected, found.describe()
    assert locate.has_images(found.folders["images"]) and locate.has_file_folders(found.folders["annotations"])
    if kind == "zips":  # unpacked into the cache, never beside the read-only input
        assert sorted(p.name for p in comp.iterdir()) == ["Annotation.zip", "all-dogs.zip"]
        assert locate.require(DOGS, comp).folders == found.folders  # the second look reuses the copy
    image_set = data.prepare_images(DOGS, comp, progress=False)
    assert len(image_set.images) >= 8 and image_set.images.shape[1:] == (32, 32, 3)
    assert len(data.reference_files(DOGS, comp)) == 8


def test_the_competition_folder_is_found_through_kaggle_input(tmp_path, monkeypatch):
    comp = _layout("nested", tmp_path)
    monkeypatch.setenv("KOMPETE_KAGGLE_ROOT", str(tmp_path))
    assert data.resolve_data_dir(DOGS) == comp
    moved = tmp_path / "input" / "competitions" / "Generative-Dog-Images"
    moved.parent.mkdir()
    comp.rename(moved)
    assert data.resolve_data_dir(DOGS) == moved


def test_monet_folders_nested_copy_and_tfrec_folders_ignored(tmp_path):
    from PIL import Image

    comp = tmp_path / "gan-getting-started"
    for name in ("monet_tfrec", "photo_tfrec"):
        (comp / name).mkdir(parents=True)
        (comp / name / "x.tfrec").write_bytes(b"tfrec")
    for name, n in (("monet_jpg", 3), ("photo_jpg", 5)):
        (comp / "copy" / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (64, 64), (i * 40, 90, 10)).save(comp / "copy" / name / f"{i}.jpg")
    found = locate.require(MONET, comp)
    assert found.layout == "nested" and found.folders["target"] == comp / "copy" / "monet_jpg"
    pair = data.load_domains(MONET, comp, progress=False)
    assert (len(pair.source), len(pair.target)) == (5, 3)
    (comp / "MONET_JPG").mkdir()  # an empty, differently-cased folder higher up is no data
    assert locate.require(MONET, comp).folders["target"] == comp / "copy" / "monet_jpg"


def test_missing_data_names_what_was_looked_for(tmp_path):
    (tmp_path / "all-dogs").mkdir()  # empty: no images directly inside
    with pytest.raises(DataError, match="no all-dogs, Annotation in"):
        locate.require(DOGS, tmp_path)
    boxless = load_config("sample-dogs", ["data.sample=null", "data.use_boxes=false"])
    with pytest.raises(DataError, match="no all-dogs in"):
        locate.require(boxless, tmp_path)
