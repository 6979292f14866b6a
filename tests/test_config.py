from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kompete.config import (config_from_dict, config_hash, find_competition, list_competitions, load_config,
                            save_config)
from kompete.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "comp.yaml"
    path.write_text(text)
    return path


def test_every_shipped_competition_loads():
    names = list_competitions()
    assert {"generative-dog-images", "gan-getting-started", "sample-dogs", "sample-monet"} <= set(names)
    for name in names:
        cfg = load_config(name)
        assert cfg.name == name


def test_real_competition_facts():
    dogs = load_config("generative-dog-images")
    assert (dogs.output.n_min, dogs.output.n_max, dogs.output.format, dogs.output.image_size) == (10000, 10000, "png", 64)
    assert dogs.limits.runtime_hours == 9 and dogs.metric.eps == 0.1
    monet = load_config("gan-getting-started")
    assert (monet.output.n_min, monet.output.n_max, monet.output.format, monet.output.image_size) == (7000, 10000, "jpg", 256)
    assert monet.limits.runtime_hours == 5 and monet.metric.reference == "target_images"
    assert not dogs.kernel.enable_internet and not monet.kernel.enable_internet


@pytest.mark.parametrize("text, fragment", [
    ("name: x\ntask: generate\nbogus: 1\n", "unknown key 'bogus'"),
    ("name: x\ntask: generate\ndata: {imgsize: 3}\n", "unknown key 'data.imgsize'"),
    ("name: x\ntask: generate\ntrain: {batch_size: many}\n", "'train.batch_size' must be an integer"),
    ("name: x\ntask: generate\ntrain: {lr_g: fast}\n", "'train.lr_g' must be a number"),
    ("name: x\ntask: generate\ndata: {random_flip: 1}\n", "'data.random_flip' must be true or false"),
    ("name: x\ntask: generate\ndata: {layout: cats}\n", "'data.layout' is 'cats'; choose one of: dogs, folder, monet"),
    ("name: x\ntask: generate\nmetric: {eps: 0}\n", "'metric.eps' must be > 0"),
    ("name: x\ntask: generate\nmetric: {eps: 2}\n", "'metric.eps' must be <= 1"),
    ("name: x\ntask: generate\noutput: {n_min: 10, n_max: 5}\n", "'output.n_min' (10) exceeds"),
    ("name: x\ntask: generate\nkernel: {dataset_sources: abc}\n", "'kernel.dataset_sources' must be a list"),
    ("name: x\ntask: generate\ndata: 3\n", "'data' must be a mapping"),
    ("task: generate\n", "missing required key 'name'"),
    ("name: [unclosed\n", "not valid YAML"),
    ("- a\n- b\n", "expected a mapping"),
])
def test_bad_config_names_the_file_and_key(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    assert fragment in str(err.value)
    if "YAML" not in fragment and "missing" not in fragment:
        assert str(path) in str(err.value)


def test_overrides_are_typed_and_validated():
    cfg = load_config("sample-dogs", ["train.lr_g=1e-4", "data.sample.seed=7", "kernel.enable_internet=true"])
    assert cfg.train.lr_g == pytest.approx(1e-4) and cfg.data.sample.seed == 7 and cfg.kernel.enable_internet
    for bad, fragment in [("train.lr=1", "unknown key 'lr' in train"), ("train.lr_g", "expected key=value"),
                          ("train.batch_size=0", "must be >= 1"), ("data.image_size.x=1", "is a value, not a section"),
                          ("nope.x=1", "unknown key 'nope'")]:
        with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            load_config("sample-dogs", [bad])


def test_hash_follows_settings_and_saved_config_round_trips(tmp_path):
    base = load_config("sample-dogs")
    assert config_hash(base) == config_hash(load_config("sample-dogs"))
    assert config_hash(base) != config_hash(load_config("sample-dogs", ["train.seed=1"]))
    saved = save_config(base, tmp_path / "config.yaml")
    again = load_config(str(saved))
    assert again == base and config_hash(again) == config_hash(base)
    assert yaml.safe_load(saved.read_text())["name"] == "sample-dogs"


def test_unknown_competition_lists_the_known_ones():
    with pytest.raises(ConfigError, match="sample-dogs"):
        find_competition("no-such-competition")


def test_dict_configs_get_defaults():
    cfg = config_from_dict({"name": "x", "task": "generate"})
    assert cfg.data.layout == "dogs" and cfg.output.archive == "images.zip"


# --------------------------------------------------------------------------- algorithm sections


def test_the_algorithm_section_is_validated_after_the_model_names_its_algorithm():
    cfg = load_config("sample-monet", ["train.model=cut"])
    assert cfg.spec.name == "cut" and cfg.algo.lambda_nce == 1.0 and cfg.algo.nce_idt
    fast = load_config("sample-monet", ["train.model=fastcut"])
    assert fast.algo.lambda_nce == 10.0 and not fast.algo.nce_idt  # FastCUT's defaults
    assert load_config("sample-monet", ["train.model=fastcut", "cut.lambda_nce=3"]).algo.lambda_nce == 3.0
    with pytest.raises(ConfigError, match="unknown key 'cut.lambda_cycle' in 'cut'"):
        config_from_dict({"name": "x", "task": "translate", "train": {"model": "cut", "loss": "lsgan"},
                          "cut": {"lambda_cycle": 1}})


def test_another_algorithms_section_is_checked_but_neither_used_nor_hashed():
    # sample-monet.yaml tunes cyclegan; training CUT from it ignores that section, typos in it still fail
    cut = load_config("sample-monet", ["train.model=cut"])
    assert "cyclegan" not in cut.to_dict() and cut.to_dict()["cut"]["lambda_nce"] == 1.0
    assert config_hash(cut) == config_hash(load_config("sample-monet", ["train.model=cut", "cyclegan.n_blocks=5"]))
    with pytest.raises(ConfigError) as err:
        config_from_dict({"name": "x", "task": "generate", "cyclegan": {"z_dim": 2}}, origin="x.yaml")
    assert "x.yaml: unknown key 'cyclegan.z_dim' in 'cyclegan'" in err.value.render()


def test_keys_that_moved_into_the_gan_section_say_where_they_went():
    with pytest.raises(ConfigError, match="'train.z_dim' is now 'gan.z_dim'"):
        load_config("sample-dogs", ["train.z_dim=32"])
    with pytest.raises(ConfigError, match="'train.ema_decay' is now 'gan.ema_decay'"):
        config_from_dict({"name": "x", "task": "generate", "train": {"ema_decay": 0.9}})


def test_only_the_sections_in_use_are_hashed():
    base = load_config("sample-dogs")
    assert "cyclegan" not in base.to_dict() and "gan" in base.to_dict()
    assert config_hash(load_config("sample-dogs", ["gan.z_dim=32"])) != config_hash(base)


def test_reading_a_config_imports_no_torch():
    code = ("import sys; from kompete.config import load_config, describe; "
            "[load_config(n) for n in ('sample-dogs', 'sample-monet', 'generative-dog-images')]; describe(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
