"""Per-class output: generate.class_counts, output.layout by_class, and the zip checks that go with them."""

from __future__ import annotations

import zipfile
from collections import Counter

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from kompete.algorithms.base import GenerateOptions, balanced_counts, build_task, class_order, task_class
from kompete.archive import ZipImageWriter, encode_image, scan_zip, validate_zip
from kompete.cli import main
from kompete.config import load_config
from kompete.errors import ArchiveError, ConfigError
from kompete.generate import generate_zip, write_zip
from kompete.train.budget import make_budget
from kompete.runtime.context import make_context
from kompete.train.trainer import Trainer

TINY = ["data.image_size=16", "train.g_channels=8", "train.d_channels=8", "gan.z_dim=16", "train.batch_size=16",
        "train.log_every=1", "output.n_min=1", "output.image_size=16", "generate.batch_size=8",
        "gan.ema_decay=0", "train.sample_every_epochs=1000", "generate.n_images=20"]
CLASSES = ["Roundhound", "Boxer_Block", "Pointy_Terrier", "Diamond_Setter"]  # sample-dogs' four "breeds"

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_cfg(*extra: str):
    return load_config("sample-dogs", [*TINY, *extra])


@pytest.fixture(scope="module")
def dogs16(tmp_path_factory):
    cfg = tiny_cfg()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KOMPETE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kompete-cache"))
        return task_class(cfg).load_data(cfg, progress=False)


def trained_run(cfg, data, run_dir):
    """A run folder with a checkpoint after two steps (weights do not matter here, only the labels)."""
    task = build_task(cfg, make_context(cfg, "cpu"), data)
    Trainer(cfg, task, run_dir, make_budget(cfg, 600.0), progress=False, max_steps=2).run()
    return task


def members(path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def folder_counts(names: list[str]) -> dict[str, int]:
    return dict(Counter(n.split("/")[0] for n in names))


# --------------------------------------------------------------------------- the split


@pytest.mark.parametrize("n, k, want", [(10, 4, [3, 3, 2, 2]), (8, 4, [2, 2, 2, 2]), (3, 5, [1, 1, 1, 0, 0]),
                                        (10000, 3, [3334, 3333, 3333]), (7, 1, [7])])
def test_balanced_counts_split_evenly_with_the_remainder_first(n, k, want):
    assert balanced_counts(n, k) == want


def test_a_balanced_class_order_is_round_robin():
    assert torch.equal(class_order(balanced_counts(23, 4)), torch.arange(23) % 4)


def test_a_class_order_gives_each_class_its_count_and_interleaves_them():
    order = class_order([5, 0, 1, 3]).tolist()
    assert Counter(order) == {0: 5, 2: 1, 3: 3}
    assert order[:3] == [0, 2, 3] and order[3:5] == [0, 3]  # round after round, not one class after another


# --------------------------------------------------------------------------- config errors


@pytest.mark.parametrize("setting, key", [
    ("generate.class_counts={a: 15, b: 4}", "generate.class_counts"),  # adds up to 19, not 20
    ("generate.class_counts={a: 21, b: -1}", "generate.class_counts.b"),
    ("generate.class_counts={a: 2.5, b: 17.5}", "generate.class_counts.a"),
    ("generate.class_counts=[10, 10]", "generate.class_counts"),
    ("output.layout=nested", "output.layout"),
])
def test_bad_class_settings_are_config_errors_naming_the_key(setting, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        tiny_cfg(setting)


def test_class_counts_must_add_up_to_n_images():
    with pytest.raises(ConfigError, match="adds up to 19 images, but 'generate.n_images' is 20"):
        tiny_cfg("generate.class_counts={a: 15, b: 4}")


@pytest.mark.parametrize("setting", ["output.layout=by_class", "generate.class_counts={a: 100}"])
def test_translation_has_no_classes(setting):
    with pytest.raises(ConfigError, match="needs class-conditional generation"):
        load_config("sample-monet", ["generate.n_images=100", setting])


def test_an_unconditional_model_refuses_per_class_output_before_training(dogs16):
    for setting, key in (("output.layout=by_class", "output.layout"),
                         (f"generate.class_counts={{{CLASSES[0]}: 20}}", "generate.class_counts")):
        cfg = tiny_cfg("train.model=dcgan", setting)
        with pytest.raises(ConfigError, match=f"'{key}' needs a class-conditional model"):
            build_task(cfg, make_context(cfg, "cpu"), dogs16)


def test_an_unknown_class_name_lists_the_model_classes(dogs16):
    cfg = tiny_cfg("generate.class_counts={Poodle: 10, Roundhound: 10}")
    with pytest.raises(ConfigError, match="'Poodle', not a class of this model; its classes: Roundhound, Boxer_Block"):
        build_task(cfg, make_context(cfg, "cpu"), dogs16)


# --------------------------------------------------------------------------- generated zips


def test_class_counts_are_honoured_exactly_in_a_by_class_zip(dogs16, tmp_path):
    counts = {"Roundhound": 11, "Pointy_Terrier": 6, "Diamond_Setter": 3}  # Boxer_Block gets none
    sets = "{" + ", ".join(f"{k}: {v}" for k, v in counts.items()) + "}"
    cfg = tiny_cfg("output.layout=by_class", f"generate.class_counts={sets}")
    task = trained_run(cfg, dogs16, tmp_path / "run")
    assert task.meta["classes"] == CLASSES  # the checkpoint knows the class names
    path = generate_zip(tmp_path / "run", tmp_path / "images.zip", progress=False)
    names = members(path)
    assert folder_counts(names) == counts
    assert sorted(n.split("/")[1] for n in names) == [f"{i:05d}.png" for i in range(20)]  # numbered across classes
    report = validate_zip(cfg, path)
    assert report.ok, report.message()
    assert report.class_counts == counts and report.n_images == 20

    with pytest.raises(ConfigError, match="'generate.class_counts' add up to 20"):
        generate_zip(tmp_path / "run", tmp_path / "x.zip", n=19, progress=False)

def test_by_class_and_flat_zips_hold_the_same_images(dogs16, tmp_path):
    cfg = tiny_cfg("output.layout=by_class")
    task = trained_run(cfg, dogs16, tmp_path / "run")
    opts = GenerateOptions(n=18, batch_size=5, progress=False)
    by_class = write_zip(task, cfg, tmp_path / "by_class.zip", opts)
    flat = write_zip(task, tiny_cfg(), tmp_path / "flat.zip", opts)
    names = members(by_class)
    assert folder_counts(names) == dict(zip(CLASSES, balanced_counts(18, 4)))  # balanced by default
    with zipfile.ZipFile(by_class) as zb, zipfile.ZipFile(flat) as zf:
        for name in names:  # image i is the same picture whichever the layout, and its folder is its label
            folder, number = name.split("/")
            assert zb.read(name) == zf.read(number)
            assert CLASSES[int(number[:5]) % 4] == folder


def test_a_class_the_zip_cannot_name_is_refused(tmp_path):
    with pytest.raises(ArchiveError, match="cannot name a folder"):
        with ZipImageWriter(tmp_path / "x.zip") as zw:
            zw.add_batch(np.zeros((2, 8, 8, 3), np.uint8), folders=["ok", "../up"])
    assert not (tmp_path / "x.zip").exists()


# --------------------------------------------------------------------------- validation


def write_members(path, names: list[str], size: int = 16):
    blob = encode_image(np.full((size, size, 3), 128, np.uint8))
    with zipfile.ZipFile(path, "w") as zf:
        for name in names:
            if name.endswith("/"):
                zf.writestr(zipfile.ZipInfo(name), b"")
            else:
                zf.writestr(name, blob)
    return path


def scan(path, layout):
    return scan_zip(path, "png", 16, 1, 100, layout=layout)


def test_by_class_validation_counts_each_class_and_allows_folder_entries(tmp_path):
    path = write_members(tmp_path / "ok.zip", ["a/", "a/0.png", "a/1.png", "b/", "b/2.png"])
    report = scan(path, "by_class")
    assert report.ok and report.n_images == 3 and report.class_counts == {"a": 2, "b": 1}
    assert report.classes_line() == "2 class folders: a 2, b 1"


def test_by_class_validation_rejects_flat_and_nested_members(tmp_path):
    path = write_members(tmp_path / "bad.zip", ["a/0.png", "loose.png", "a/deep/1.png", "b/../2.png"])
    report = scan(path, "by_class")
    assert not report.ok
    assert report.problems == {"not in a class folder": ["loose.png"],
                               "nested or unsafe names": ["a/deep/1.png", "b/../2.png"]}
    assert "not in a class folder: 1 (e.g. loose.png)" in report.message()
    assert "1 class folders: a 1" in report.message()


def test_flat_validation_still_rejects_folders(tmp_path):
    path = write_members(tmp_path / "classes.zip", ["a/", "a/0.png", "1.png"])
    report = scan(path, "flat")
    assert report.problems == {"folders": ["a/"], "nested or unsafe names": ["a/0.png"]}
    assert report.n_images == 1 and report.class_counts == {}


def test_validate_command_shows_the_counts_per_class(tmp_path):
    path = write_members(tmp_path / "ok.zip", ["a/0.png", "a/1.png", "b/2.png"])
    sets = ["--set", "output.n_min=3", "--set", "output.n_max=3", "--set", "generate.n_images=3",
            "--set", "output.image_size=16"]
    ok = CliRunner().invoke(main, ["validate", "sample-dogs", str(path), *sets, "--set", "output.layout=by_class"])
    assert ok.exit_code == 0, ok.output
    assert "OK, 3 PNG images at 16x16 in 2 class folders: a 2, b 1" in ok.output
    flat = CliRunner().invoke(main, ["validate", "sample-dogs", str(path), *sets])
    assert flat.exit_code != 0 and "nested or unsafe names: 3" in flat.output


def test_a_by_class_zip_read_back_gives_every_image_to_the_consumer(tmp_path):
    path = write_members(tmp_path / "ok.zip", ["b/2.png", "a/0.png", "a/1.png"])
    seen = []
    report = scan_zip(path, "png", 16, 1, 100, consumer=seen.append, layout="by_class")
    assert report.ok and sum(len(b) for b in seen) == 3 and seen[0].shape[1:] == (16, 16, 3)
