"""The kernel bundle: metadata as Kaggle needs it, one self-contained script, no credentials, under 1 MB."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
import tarfile
import zipfile

import pytest

from kompete.config import config_hash, load_config
from kompete.errors import ConfigError
from kompete.kernel import bundle
from kompete.kernel.bundle import BundleError, build_bundle, sweep_variants
from tests.kaggle_fixtures import FAKE_CREDENTIALS


def _embedded_names(script: str) -> list[str]:
    block = re.search(r"PACKAGE_B64 = \(.*?\n(.*?)\n\)", script, re.S).group(1)
    b64 = "".join(re.findall(r'"([A-Za-z0-9+/=]+)"', block))
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(b64)), mode="r:xz") as tar:
        assert all(m.isfile() for m in tar.getmembers())
        return tar.getnames()


def test_dog_bundle_metadata_and_size(tmp_path):
    cfg = load_config("generative-dog-images")
    b = build_bundle(cfg, "alice", out_root=tmp_path)
    assert b.folder == tmp_path / "generative-dog-images" and b.kernel_id == "alice/kompete-generative-dog-images"
    meta = json.loads((b.folder / "kernel-metadata.json").read_text())
    assert meta == {
        "id": "alice/kompete-generative-dog-images", "title": "kompete-generative-dog-images",
        "code_file": "kernel.py", "language": "python", "kernel_type": "script", "is_private": True,
        "enable_gpu": True, "enable_internet": False, "machine_shape": "NvidiaTeslaT4",
        "competition_sources": ["generative-dog-images"], "dataset_sources": [], "kernel_sources": [],
        "model_sources": []}
    script = (b.folder / "kernel.py").read_text()
    assert b.script_bytes == len(script.encode()) < bundle.MAX_SCRIPT_BYTES
    compile(script, "kernel.py", "exec")
    assert f'CONFIG_HASH = "{config_hash(cfg)}"' in script


def test_bundle_embeds_only_kompete_source_and_no_credentials(fake_kaggle, tmp_path):
    # fake credentials are in the environment and in ~/.kaggle/kaggle.json (the fixture made them)
    b = build_bundle(load_config("sample-dogs"), "alice", out_root=tmp_path)
    assert sorted(p.name for p in b.folder.iterdir()) == ["kernel-metadata.json", "kernel.py"]
    for f in b.folder.iterdir():
        text = f.read_text()
        assert FAKE_CREDENTIALS["key"] not in text and os.environ["KAGGLE_KEY"] not in text
    names = _embedded_names((b.folder / "kernel.py").read_text())
    assert "kompete/__init__.py" in names and "kompete/kernel/bundle.py" in names
    assert all(n.startswith("kompete/") and n.endswith(".py") and "__pycache__" not in n for n in names)


def test_a_secret_that_would_enter_the_bundle_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("KAGGLE_KEY", "KOMPETE_KAGGLE_ROOT")  # a "key" that happens to occur in the script
    with pytest.raises(BundleError, match="would contain a Kaggle credential"):
        build_bundle(load_config("sample-dogs"), "alice", out_root=tmp_path)
    assert not (tmp_path / "sample-dogs").exists()


def test_a_secret_in_a_source_file_is_caught_before_compression_hides_it(tmp_path):
    pkg = tmp_path / "kompete"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "scratch.py").write_text("KEY = 'abcdef0123456789'\n")
    assert bundle.package_archive(["not-in-any-file"], package_dir=pkg)  # clean: packs
    with pytest.raises(BundleError, match="scratch.py would contain a Kaggle credential"):
        bundle.package_archive(["abcdef0123456789"], package_dir=pkg)


def test_oversized_script_is_refused_with_a_hint(monkeypatch, tmp_path):
    monkeypatch.setattr(bundle, "MAX_SCRIPT_BYTES", 10_000)
    with pytest.raises(BundleError, match="over Kaggle's 1 MB limit") as info:
        build_bundle(load_config("sample-dogs"), "alice", out_root=tmp_path)
    assert "dataset" in info.value.hint


def test_sources_lose_url_prefixes_and_sweeps_get_distinct_slugs(tmp_path):
    cfg = load_config("generative-dog-images", ["kernel.dataset_sources=[datasets/alice/inception-weights]"])
    b = build_bundle(cfg, "alice", out_root=tmp_path, score=True, resume_from="code/alice/kompete-old-run/3")
    meta = json.loads((b.folder / "kernel-metadata.json").read_text())
    assert meta["dataset_sources"] == ["alice/inception-weights"]
    assert meta["kernel_sources"] == ["alice/kompete-old-run/3"]  # the version stays: that output is attached
    script = (b.folder / "kernel.py").read_text()
    assert '"--resume", "{input}/kompete-old-run/run"' in script
    assert 'SCORE_NEEDS = ["inception-weights"]' in script and '["score", ["score"' in script
    variants = sweep_variants("sample-dogs", ["train.epochs=1"], ["loss=hinge,bce", "train.seed=1,2"])
    assert [name for name, _ in variants] == ["hinge-1", "hinge-2", "bce-1", "bce-2"]
    assert {(c.train.loss, c.train.seed, c.train.epochs) for _, c in variants} == {
        ("hinge", 1, 1), ("hinge", 2, 1), ("bce", 1, 1), ("bce", 2, 1)}
    with pytest.raises(ConfigError, match="expected key=v1,v2"):
        sweep_variants("sample-dogs", [], ["loss"])
    assert len(bundle.kernel_slug("generative-dog-images", "x" * 80)) <= 50


@pytest.mark.slow
def test_script_unpacks_and_imports_its_own_kompete_outside_the_repo(tmp_path):
    cfg = load_config("sample-dogs")
    b = build_bundle(cfg, "alice", out_root=tmp_path / "k")
    root = tmp_path / "kaggle"
    (root / "input").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(KOMPETE_KAGGLE_ROOT=str(root), TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    run = subprocess.run([sys.executable, str(b.folder / "kernel.py"), "--self-check"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert f"config hash: {config_hash(cfg)}" in run.stdout
    source_hash = hashlib.sha256(bundle.package_archive()).hexdigest()[:12]
    assert (tmp_path / "tmp" / f"kompete-src-{source_hash}" / "kompete" / "kernel" / "bundle.py").is_file()


@pytest.mark.slow
def test_preflight_stops_a_kernel_without_its_competition_data(tmp_path):
    b = build_bundle(load_config("generative-dog-images"), "alice", out_root=tmp_path / "k")
    root = tmp_path / "kaggle"
    (root / "input").mkdir(parents=True)
    env = {**os.environ, "KOMPETE_KAGGLE_ROOT": str(root), "TMPDIR": str(tmp_path)}
    run = subprocess.run([sys.executable, str(b.folder / "kernel.py")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "preflight: competition data missing" in run.stdout and "Traceback" not in run.stderr


@pytest.mark.slow
def test_built_script_runs_end_to_end_offline_in_a_fake_kaggle_layout(tmp_path):
    """train -> generate -> validate inside the script, on sample-dogs, leaving a valid images.zip."""
    from PIL import Image

    sets = ["generate.n_images=64", "output.n_min=64", "output.n_max=64", "train.batch_size=8",
            "data.sample.n_images=16"]
    b = build_bundle(load_config("sample-dogs", sets), "alice", out_root=tmp_path / "k")
    root = tmp_path / "kaggle"
    (root / "input").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KOMPETE_KERNEL_START")}
    env.update(KOMPETE_KAGGLE_ROOT=str(root), TMPDIR=str(tmp_path), KOMPETE_TRAIN_ARGS="--max-steps 1")
    run = subprocess.run([sys.executable, str(b.folder / "kernel.py")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "failed stages: none" in run.stdout and "validate: exit 0" in run.stdout
    with zipfile.ZipFile(root / "working" / "images.zip") as zf:
        names = zf.namelist()
        assert len(names) == 64 and all(n.endswith(".png") for n in names)
        assert Image.open(zf.open(names[0])).size == (64, 64)
    outputs = [p for p in (root / "working").rglob("*") if p.is_file()]
    assert len(outputs) < 500 and not any(p.name == "kaggle.json" for p in outputs)


def _load_script(path, tmp_path, monkeypatch):
    # main() sets the kernel start in os.environ for its stages; set through monkeypatch, it is undone afterwards
    monkeypatch.setenv("KOMPETE_KERNEL_START", str(time.time()))
    import importlib.util
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    spec = importlib.util.spec_from_file_location("kompete_kernel_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_failed_training_still_generates_and_a_failed_generate_stops(tmp_path, monkeypatch):
    b = build_bundle(load_config("sample-dogs"), "alice", out_root=tmp_path / "k")
    script = _load_script(b.folder / "kernel.py", tmp_path, monkeypatch)
    (tmp_path / "kaggle" / "input").mkdir(parents=True)
    monkeypatch.setenv("KOMPETE_KAGGLE_ROOT", str(tmp_path / "kaggle"))
    for failing, expected in (("train", ["train", "generate", "validate"]), ("generate", ["train", "generate"])):
        ran = []

        def fake_kompete(src, args, env, ddp=False, stage=None, timeout_s=None):
            ran.append(args[0])
            assert env["KOMPETE_KERNEL_START"] and str(src) in env["PYTHONPATH"]
            return 1 if args[0] == failing else 0

        monkeypatch.setattr(script, "kompete", fake_kompete)
        assert script.main([]) == 1
        assert ran == expected, failing
