"""What `kompete score` shows beyond the number: the zip checked before the reference is built, memorization
warned about (with the share of copies) and drawn (--neighbours), FID per class (--per-class)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from kompete.archive import ZipImageWriter
from kompete.config import load_config
from kompete.data import reference_files
from kompete.errors import ArchiveError
from kompete.metrics import score as score_mod


class TinyInception(torch.nn.Module):
    """Stands in for the FID Inception (whose CPU pass takes minutes): a fixed random projection of an 8x8
    thumbnail to 2048 non-negative features, returned as pytorch-fid's InceptionV3 does."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.proj = torch.nn.Parameter(torch.randn(3 * 8 * 8, 2048, generator=gen), requires_grad=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        thumb = torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1)
        thumb = thumb - thumb.mean(1, keepdim=True)  # centred: unrelated images get unrelated features
        return [torch.relu(thumb @ self.proj)[:, :, None, None]]


@pytest.fixture
def tiny_inception(monkeypatch):
    monkeypatch.setattr(score_mod, "load_inception", lambda *a, **k: TinyInception())


def _copies_zip(cfg, path: Path, per_class: bool = True) -> Path:
    """A by_class zip of the training images themselves: a memorizer."""
    with zipfile.ZipFile(path, "w") as zf:
        for f in reference_files(cfg):
            name = f"{f.parent.name}/{f.name}" if per_class else f.name
            zf.write(f, name)
    return path


def _noise_zip(cfg, path: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    classes = ["masked", "unmasked"]
    with ZipImageWriter(path, fmt="png") as w:
        for i in range(n):
            img = rng.integers(0, 256, (cfg.output.image_size, cfg.output.image_size, 3), dtype=np.uint8)
            w.add(img, name=f"{classes[i % 2]}/{i:05d}.png")
    return path


def _score(*args: str):
    from kompete.cli import main

    return CliRunner().invoke(main, ["score", *args, "--quiet"], catch_exceptions=False)


# --------------------------------------------------------------------------- item 9: the zip before the reference


@pytest.mark.parametrize("content", ["empty", "no-images", "not-a-zip", "undecodable"])
def test_score_checks_the_zip_before_building_the_reference(tmp_path, monkeypatch, content):
    """A bad or empty zip fails at once: the reference statistics (minutes on a real set) are never started."""
    cfg = load_config("sample-faces")
    path = tmp_path / "images.zip"
    if content == "not-a-zip":
        path.write_bytes(b"")
    else:
        with zipfile.ZipFile(path, "w") as zf:
            if content == "no-images":
                zf.writestr("masked/readme.txt", "hello")
            elif content == "undecodable":
                zf.writestr("masked/00000.png", b"not a png")
                zf.writestr("masked/00001.png", b"nor this")

    def no_reference(*args, **kwargs):
        raise AssertionError("the reference was built before the zip was checked")

    monkeypatch.setattr(score_mod, "load_reference", no_reference)
    monkeypatch.setattr(score_mod, "load_inception", no_reference)
    with pytest.raises(ArchiveError):
        score_mod.score_path(cfg, path)


# --------------------------------------------------------------------------- item 16: memorization shown


MIFID_FACES = ("--set", "metric.name=mifid")  # sample-faces scores plain FID; the thresholded distance needs MiFID


def test_a_zip_of_training_images_is_warned_about_in_one_line(tmp_path, tiny_inception):
    cfg = load_config("sample-faces")
    copies = _copies_zip(cfg, tmp_path / "copies.zip")
    res = _score("sample-faces", str(copies), *MIFID_FACES)
    assert res.exit_code == 0, res.output
    warning = [line for line in res.stdout.splitlines() if line.startswith("warning: memorization")]
    assert warning == ["warning: memorization distance 0.0000 is below eps 0.1; 100.0% of generated images have "
                       "a training image closer than eps: MiFID divides FID by it, and Kaggle disqualified "
                       "memorizers"]
    res = _score("sample-faces", str(copies), *MIFID_FACES, "--json")
    out = json.loads(res.stdout)
    assert out["memorizes"] and out["closer_than_eps"] == 1.0 and res.stderr.startswith("warning: memorization")


def test_honest_images_and_plain_fid_get_no_warning(tmp_path, tiny_inception):
    cfg = load_config("sample-faces")
    noise = _noise_zip(cfg, tmp_path / "noise.zip", 120)
    res = _score("sample-faces", str(noise), *MIFID_FACES, "--json")
    out = json.loads(res.stdout)
    assert out["memorization_distance"] > 0.1 and not out["memorizes"] and out["warning"] is None
    assert out["closer_than_eps"] == 0.0 and "warning" not in res.stderr
    copies = _copies_zip(cfg, tmp_path / "copies.zip")
    res = _score("sample-faces", str(copies))  # metric.name fid: no memorization term to warn about
    assert res.exit_code == 0 and "warning" not in res.output
    assert "closer than eps        100.0% of generated images" in res.stdout


def test_neighbours_draws_each_close_image_beside_its_training_image(tmp_path, tiny_inception):
    cfg = load_config("sample-faces")
    copies = _copies_zip(cfg, tmp_path / "copies.zip")
    out = tmp_path / "pictures" / "neighbours.png"
    res = _score("sample-faces", str(copies), "--neighbours", str(out))
    assert res.exit_code == 0, res.output
    sheet = np.asarray(Image.open(out).convert("RGB"))
    tile, head, pad = 96, 18, 4  # 64 px images enlarged to neighbours.MIN_TILE
    generated = sheet[head:head + tile, pad:pad + tile]
    training = sheet[head:head + tile, tile + 2 * pad:2 * tile + 2 * pad]
    assert generated.std() > 10 and np.abs(generated.astype(int) - training).mean() < 8  # a copy beside its source
    assert sheet.shape[0] == head + 8 * (tile + pad) + pad  # the 8 closest pairs


@pytest.mark.parametrize("where", ["the-zip", "txt"])
def test_neighbours_never_overwrites_the_zip_and_is_a_png(tmp_path, where):
    cfg = load_config("sample-faces")
    copies = _copies_zip(cfg, tmp_path / "copies.zip")
    before = copies.read_bytes()
    target = copies if where == "the-zip" else tmp_path / "n.txt"
    res = _score("sample-faces", str(copies), "--neighbours", str(target))
    assert res.exit_code != 0 and "Traceback" not in res.output and copies.read_bytes() == before
    assert ("would overwrite" if where == "the-zip" else "PNG") in res.stderr


# --------------------------------------------------------------------------- item 19: FID per class


def test_per_class_scores_each_class_folder_against_its_own_references(tmp_path, tiny_inception):
    cfg = load_config("sample-faces")
    copies = _copies_zip(cfg, tmp_path / "copies.zip")
    res = _score("sample-faces", str(copies), "--per-class", "--json")
    out = json.loads(res.stdout)
    assert set(out["per_class"]) == {"masked", "unmasked"}
    for c in out["per_class"].values():
        assert (c["n_images"], c["n_reference"]) == (128, 128) and abs(c["fid"]) < 1e-3  # each class is its copy
    swapped = tmp_path / "swapped.zip"  # masked faces filed as unmasked and back: each class far from its own
    with zipfile.ZipFile(copies) as src, zipfile.ZipFile(swapped, "w") as dst:
        for info in src.infolist():
            cls, name = info.filename.split("/")
            dst.writestr(f"{'unmasked' if cls == 'masked' else 'masked'}/{name}", src.read(info))
    swapped_out = json.loads(_score("sample-faces", str(swapped), "--per-class", "--json").stdout)
    assert swapped_out["fid"] == pytest.approx(out["fid"], abs=1e-3)  # the whole set is the same
    assert all(c["fid"] > 1.0 for c in swapped_out["per_class"].values())
    text = _score("sample-faces", str(copies), "--per-class").stdout
    assert "FID of class           masked: 0.0000 (128 generated, 128 reference)" in text


def test_per_class_needs_a_by_class_zip(tmp_path, monkeypatch):
    monkeypatch.setattr(score_mod, "load_reference", lambda *a, **k: pytest.fail("reference built"))
    cfg = load_config("sample-faces")
    flat = _copies_zip(cfg, tmp_path / "flat.zip", per_class=False)
    res = _score("sample-dogs", str(flat), "--per-class")
    assert res.exit_code == 1 and "--per-class needs a zip with one folder per class" in res.stderr
    assert "Traceback" not in res.output


def test_neighbours_and_per_class_survive_an_unreadable_reference_image(tmp_path, tiny_inception):
    """The reference skips an unreadable file, so its feature rows no longer line up with the file list: the
    neighbours picture finds the readable files again instead of pairing images with the wrong files."""
    import shutil

    cfg = load_config("sample-faces")
    copies = _copies_zip(cfg, tmp_path / "copies.zip")
    data_dir = tmp_path / "faces"
    shutil.copytree(reference_files(cfg)[0].parent.parent, data_dir)
    (data_dir / "masked" / "00000-broken.png").write_bytes(b"\x89PNG broken")  # sorts first: shifts every row
    out = tmp_path / "n.png"
    res = _score("sample-faces", str(copies), "--data-dir", str(data_dir), "--neighbours", str(out), "--per-class",
                 "--json")
    assert res.exit_code == 0, res.output
    assert {c["n_reference"] for c in json.loads(res.stdout)["per_class"].values()} == {128}
    sheet = np.asarray(Image.open(out).convert("RGB")).astype(int)
    tile, head, pad = 96, 18, 4
    for row in range(8):
        top = head + row * (tile + pad)
        pair = sheet[top:top + tile, pad:pad + tile], sheet[top:top + tile, tile + 2 * pad:2 * tile + 2 * pad]
        assert np.abs(pair[0] - pair[1]).mean() < 8  # each copy beside its own source
