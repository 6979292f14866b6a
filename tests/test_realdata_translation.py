"""bench/realdata.py --translation (wallpaper crops -> clip art, a Monet-layout competition) and that
bench/recipes.py's quality-per-image-seen mode runs the translation recipes on it. The wallpapers and the clip
art are made here: no Debian package is needed."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
from PIL import Image

from kompete.config import load_config
from kompete.data import reference_files
from tests.conftest import REPO
from tests.test_bench import run_script


@pytest.fixture(scope="module")
def realdata():
    spec = importlib.util.spec_from_file_location("bench_realdata", REPO / "bench" / "realdata.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_realdata"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench_realdata", None)


def noise_png(path, size, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def make_inputs(tmp_path, side=16):
    """Three themes (one offering a portrait, a 5K and a 1920 px file) and a prepared clip-art side."""
    walls = tmp_path / "wallpapers"
    noise_png(walls / "Aurora" / "contents" / "images" / "1080x1920.png", (108, 192), 0)
    noise_png(walls / "Aurora" / "contents" / "images" / "1920x1080.png", (192, 108), 1)
    noise_png(walls / "Aurora" / "contents" / "images" / "5120x2880.png", (512, 288), 2)
    noise_png(walls / "Birch" / "contents" / "images" / "2560x1440.jpg", (256, 144), 3)
    noise_png(walls / "Cove" / "contents" / "images" / "screenshot.png", (300, 300), 4)  # size from the header
    (walls / "NotATheme").mkdir()
    px = tmp_path / "clipart" / f"px{side}"
    for i in range(12):
        noise_png(px / "train" / ("animals" if i % 2 else "shapes") / f"c{i}.png", (side, side), 10 + i)
    for i in range(10):
        noise_png(px / "heldout" / f"shapes__h{i}.png", (side, side), 30 + i)
    return walls, px


def test_one_landscape_wallpaper_per_theme_nearest_1920_wide(realdata, tmp_path):
    walls, _ = make_inputs(tmp_path)
    chosen = realdata.wallpaper_files(walls)
    assert [(p.parents[2].name, p.name) for p in chosen] == [
        ("Aurora", "1920x1080.png"), ("Birch", "2560x1440.jpg"), ("Cove", "screenshot.png")]


def test_translation_set_is_a_monet_competition_scored_against_held_out_clip_art(realdata, tmp_path):
    walls, px = make_inputs(tmp_path)
    out = tmp_path / "wallclip"
    assert realdata.main(["--translation", str(px), "--wallpapers", str(walls), "--out", str(out),
                          "--crops", "4"]) == 0
    photos = sorted(out.glob("photo/*.png"))
    assert len(photos) == 3 * 4 and all(Image.open(p).size == (16, 16) for p in photos)
    assert len(list(out.glob("clipart/*.png"))) == 12 and len(list(out.glob("heldout/*.png"))) == 10
    cfg = load_config(str(out / "wallclip16.yaml"))
    assert cfg.task == "translate" and cfg.data.layout == "monet" and cfg.metric.name == "fid"
    assert {p.name for p in reference_files(cfg)} == {f"shapes__h{i}.png" for i in range(10)}
    again = tmp_path / "again"  # the same seed: the same crops
    assert realdata.main(["--translation", str(px), "--wallpapers", str(walls), "--out", str(again),
                          "--crops", "4"]) == 0
    assert (again / "photo" / "Birch_003.png").read_bytes() == (out / "photo" / "Birch_003.png").read_bytes()


def test_translation_refuses_a_missing_input_or_a_full_out_in_one_line(realdata, tmp_path, capsys):
    walls, px = make_inputs(tmp_path)
    assert realdata.main(["--translation", str(px), "--wallpapers", str(tmp_path / "none"),
                          "--out", str(tmp_path / "o")]) == 2
    assert "plasma-workspace-wallpapers" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert realdata.main(["--translation", str(px), "--wallpapers", str(walls), "--out", str(tmp_path / "full")]) == 2
    assert "not empty" in capsys.readouterr().err and (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_translation_recipes_run_through_the_images_seen_curves(realdata, tmp_path):
    walls, px = make_inputs(tmp_path, side=32)  # the smallest side the CycleGAN discriminator takes
    out = tmp_path / "wallclip"
    assert realdata.main(["--translation", str(px), "--wallpapers", str(walls), "--out", str(out),
                          "--crops", "4"]) == 0
    proc = run_script("bench/recipes.py", str(out / "wallclip32.yaml"), "--profile", "cpu",
                      "--only", "kompete,fastcut", "--images-seen", "4", "--points", "2", "--fid-images", "8",
                      "--rounds", "1", "--round-steps", "1", "--set", "data.load_size=36",
                      "--out", str(tmp_path / "bench"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "bench" / "wallclip32" / "results-seen.json").read_text())
    assert set(report["curves"]) == {"kompete", "fastcut"} and report["reference_images"] == 10
    for name, points in report["curves"].items():
        assert [p["images_seen"] for p in points] == [2, 4] and all(p["fid"] > 0 for p in points)
        assert report["costs"][name]["cpu_s"] > 0 and report["operations"][name]["flops"] > 0
    assert report["projections"]["fastcut"]["Monet 5 h T4"]["images"] > 0


def test_photo_set_is_a_folder_competition_with_themes_as_classes(realdata, tmp_path, capsys):
    walls, _ = make_inputs(tmp_path)
    out = tmp_path / "wallphoto"
    assert realdata.main(["--photos", "--wallpapers", str(walls), "--out", str(out), "--crops", "8",
                          "--sizes", "16,8", "--holdout-every", "4"]) == 0
    for side in (16, 8):
        cfg = load_config(str(out / f"wallphoto{side}.yaml"))
        assert cfg.data.layout == "folder" and cfg.metric.reference == "heldout"
        train = sorted(out.glob(f"px{side}/train/*/*.png"))
        held = sorted(out.glob(f"px{side}/heldout/*.png"))
        assert len(train) + len(held) == 3 * 8 and held and all(Image.open(p).size == (side, side) for p in train)
        assert {p.parent.name for p in train} == {"Aurora", "Birch", "Cove"} and len(held) == 3 * 2  # 1 in 4
        assert {p.name for p in reference_files(cfg)} == {p.name for p in held}
    # the 8 px side is the 16 px crop made smaller, not another crop
    one = next(out.glob("px16/train/Birch/*.png")).relative_to(out / "px16")
    big = np.asarray(Image.open(out / "px16" / one).resize((8, 8), Image.LANCZOS))
    small = np.asarray(Image.open(out / "px8" / one))
    assert np.abs(big.astype(int) - small.astype(int)).max() <= 1
    assert realdata.main(["--photos", "--wallpapers", str(walls), "--out", str(out)]) == 2
    assert "already holds a prepared set" in capsys.readouterr().err
