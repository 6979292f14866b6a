"""`kompete init NAME --images DIR`: a folder the test makes (two classes, mixed sizes, a grey image, a corrupt
file) becomes a commented YAML that loads, is listed, prepares its data and trains."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from kompete.cli import main
from kompete.config import load_config
from kompete.init import accepted_metrics, init_competition


def invoke(*args: str, **kwargs):
    return CliRunner().invoke(main, list(args), **kwargs)


def one_error_line(result) -> str:
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


@pytest.fixture
def images(tmp_path) -> Path:
    root = tmp_path / "faces"
    rng = np.random.default_rng(0)
    for label, n in (("masked", 5), ("unmasked", 4)):
        (root / label).mkdir(parents=True)
        for i in range(n):
            w, h = (24, 24) if i % 2 else (40, 30)
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / label / f"{i}.png")
    Image.new("L", (32, 32), 128).save(root / "unmasked" / "grey.jpg")
    (root / "masked" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return root


def test_init_writes_a_commented_yaml_that_loads_and_is_listed(images, tmp_path, monkeypatch):
    out = tmp_path / "competitions"
    monkeypatch.setenv("KOMPETE_COMPETITIONS", str(out))
    result = invoke("init", "masked-faces", "--images", str(images), "--image-size", "16", "--count", "20",
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    path = out / "masked-faces.yaml"
    text = path.read_text()
    assert "#     masked    5 images" in text and "#     unmasked  5 images" in text  # readable ones, per class
    assert "skipped: 1 unreadable image file, e.g. corrupt.png" in text
    assert "sizes: 40x30 (5), 24x24 (4), 32x32 (1)" in text and "modes: RGB (9), L (1)" in text
    cfg = load_config(str(path))
    assert cfg.name == "masked-faces" and cfg.data.layout == "folder" and cfg.data.images_dir == ""
    assert Path(cfg.data.local_dir).resolve() == images.resolve()
    assert cfg.train.model == "dcgan_cond" and cfg.data.image_size == cfg.output.image_size == 16
    assert cfg.output.n_min == cfg.output.n_max == cfg.generate.n_images == 20
    assert cfg.metric.name == "fid" and cfg.metric.preprocess == "pytorch-fid"  # an in-class FID competition
    assert cfg.metric.reference == "train_images"
    assert "kompete competitions lists it" in result.output
    listed = invoke("competitions")
    assert listed.exit_code == 0 and "masked-faces" in listed.output


def test_init_refuses_to_overwrite_without_force_and_dry_run_writes_nothing(images, tmp_path):
    out = tmp_path / "competitions"
    args = ["init", "faces", "--images", str(images), "--out", str(out)]
    assert invoke(*args).exit_code == 0
    before = (out / "faces.yaml").read_text()
    assert "exists" in one_error_line(invoke(*args, "--count", "5"))
    assert (out / "faces.yaml").read_text() == before
    assert invoke(*args, "--count", "5", "--force").exit_code == 0
    assert "n_min: 5" in (out / "faces.yaml").read_text()
    dry = invoke("init", "other", "--images", str(images), "--out", str(out), "--dry-run")
    assert dry.exit_code == 0 and "name: other" in dry.output and not (out / "other.yaml").exists()
    assert sorted(p.name for p in out.iterdir()) == ["faces.yaml"]  # no temporary files left behind


def test_bad_folder_name_or_metric_is_one_plain_line(images, tmp_path):
    out = ["--out", str(tmp_path / "c")]
    assert "no such folder" in one_error_line(invoke("init", "x", "--images", str(tmp_path / "nowhere"), *out))
    (tmp_path / "file.png").write_bytes(b"")
    assert "not a folder" in one_error_line(invoke("init", "x", "--images", str(tmp_path / "file.png"), *out))
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert "no images" in one_error_line(invoke("init", "x", "--images", str(tmp_path / "empty"), *out))
    assert "competition name" in one_error_line(invoke("init", "../x", "--images", str(images), *out))
    fid = invoke("init", "x", "--images", str(images), *out, "--metric", "fid")
    if "fid" in accepted_metrics():  # metric.name: fid has landed
        assert fid.exit_code == 0 and load_config(str(tmp_path / "c" / "x.yaml")).metric.name == "fid"
    else:
        assert "--metric fid" in one_error_line(fid) and not (tmp_path / "c" / "x.yaml").exists()


def test_a_flat_folder_gives_an_unconditional_model(tmp_path):
    flat = tmp_path / "digits"
    flat.mkdir()
    for i in range(3):
        Image.new("L", (28, 28), i * 80).save(flat / f"{i}.png")
    result = init_competition("digits", flat, image_size=28, count=30, fmt="jpg", out=tmp_path / "c")
    cfg = load_config(str(result.path))
    assert cfg.train.model == "dcgan" and cfg.output.format == "jpg" and cfg.metric.min_images == 30
    assert "3 images, no class folders: one class (digits)" in result.text


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("layout", ["flat", "by_class"])
def test_an_initialised_competition_trains_generates_validates_and_scores(images, tmp_path, layout):
    from kompete.archive import validate_zip
    from kompete.generate import generate_zip
    from kompete.metrics.score import score_path
    from kompete.train.budget import make_budget
    from kompete.train.run import train_run

    out = tmp_path / "competitions"
    init_competition("faces", images, image_size=16, count=12, out=out)
    prepared = invoke("data", str(out / "faces.yaml"), "--quiet")
    assert prepared.exit_code == 0, prepared.output
    assert "  masked    5" in prepared.output and "  unmasked  5" in prepared.output
    assert "1 unreadable images (e.g. corrupt.png)" in prepared.output
    cfg = load_config(str(out / "faces.yaml"), ["train.g_channels=8", "train.d_channels=8", "gan.z_dim=16",
                                               "train.batch_size=4", "train.log_every=2", "generate.batch_size=12",
                                               f"output.layout={layout}", "metric.min_images=2"])
    run = tmp_path / "run"
    result = train_run(cfg, run, make_budget(cfg, 120), fresh=True, max_steps=2, device="cpu", progress=False)
    assert result is not None and result.steps == 2
    zip_path = generate_zip(run, run / "images.zip")
    with zipfile.ZipFile(zip_path) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
    assert len(names) == 12
    if layout == "by_class":  # balanced over the two class folders
        assert sorted(n.split("/")[0] for n in names) == ["masked"] * 6 + ["unmasked"] * 6
    else:
        assert all("/" not in n for n in names)
    report = validate_zip(cfg, zip_path)
    assert report.ok, report.message()
    score = score_path(cfg, zip_path)  # the real FID Inception weights, offline
    assert score.metric == "fid" and score.preprocess == "pytorch-fid" and score.n_images == 12
    assert score.score == score.fid and score.fid > 0 and score.memorization_distance >= 0  # distance still reported
