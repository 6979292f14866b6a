"""A kernel always leaves a zip: two SIGTERMs (the second during generation) still end in a valid zip, exit 0
and no process behind; a SIGKILLed script takes its trainer with it; an impossible budget stops at the preflight;
the bundle says what it does (kernel.score, validation by the competition's own rules, no self-listing)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid

import pytest

from kompete.config import load_config
from kompete.kernel.bundle import BundleError, build_bundle, official_rules, stages
from tests.test_kernel_reality import SMALL, _assert_valid_zip, _env, _processes_tagged, _record


def _start(tmp_path, train_args: str, **env: str):
    root = tmp_path / "kaggle"
    (root / "input").mkdir(parents=True)
    cfg = load_config("sample-dogs", [*SMALL, "data.sample.n_images=16", "train.checkpoint_minutes=60"])
    b = build_bundle(cfg, "alice", out_root=tmp_path / "k")
    tag = uuid.uuid4().hex
    proc = subprocess.Popen([sys.executable, str(b.folder / "kernel.py")], cwd=tmp_path,
                            env={**_env(tmp_path, root, train_args=train_args, tag=tag), **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    return root, proc, tag


def _read_until(proc, text: str, seen: list[str], timeout: float = 240) -> bool:
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        seen.append(line)
        if text in line:
            return True
        if time.monotonic() > deadline:
            break
    return False


def _gone(tag: str, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while _processes_tagged(tag) and time.monotonic() < deadline:
        time.sleep(0.5)
    return not _processes_tagged(tag)


@pytest.mark.slow
def test_a_second_sigterm_during_generation_still_leaves_a_valid_zip(tmp_path):
    root, proc, tag = _start(tmp_path, "--time-budget 300")
    seen: list[str] = []
    assert _read_until(proc, "first step done", seen), "".join(seen)[-3000:]
    proc.send_signal(signal.SIGTERM)
    assert _read_until(proc, "$ kompete generate", seen), "".join(seen)[-3000:]
    proc.send_signal(signal.SIGTERM)  # generation is running: it must go on
    out = "".join(seen) + proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out[-4000:]
    assert "not passed on: generate goes on" in out
    assert "train: stopped by SIGTERM" in out and "failed stages: none; exit 0" in out
    record = _record(root)
    assert record["failed"] == [] and record["stages"][0]["stopped"] == "SIGTERM" and record["zip"]["valid"]
    _assert_valid_zip(root)
    assert "kompete kernel build sample-dogs --resume-from alice/kompete-sample-dogs/VERSION" in out
    assert "/tmp" not in next(line for line in out.splitlines() if "stopped by SIGTERM;" in line)
    assert _gone(tag)


@pytest.mark.slow
def test_a_killed_script_takes_its_trainer_with_it(tmp_path):
    # no progress lines: a trainer that writes nothing would not die of its closed pipe either
    root, proc, tag = _start(tmp_path, "--time-budget 300", KOMPETE_PROGRESS_S="1000")
    seen: list[str] = []
    assert _read_until(proc, "first step done", seen), "".join(seen)[-3000:]
    proc.kill()
    proc.communicate(timeout=60)
    assert _gone(tag, timeout=60)  # the trainer got SIGTERM from PR_SET_PDEATHSIG, checkpointed and ended


@pytest.mark.slow
def test_an_impossible_budget_stops_at_the_preflight(tmp_path):
    root, proc, tag = _start(tmp_path, "--time-budget 30s")
    out = proc.communicate(timeout=180)[0]
    assert proc.returncode == 2, out[-3000:]
    assert "preflight: time budget: 30 s left, and a kernel needs at least" in out
    assert "$ kompete train" not in out and _gone(tag)


def test_the_embedded_config_says_whether_the_kernel_scores(tmp_path):
    cfg = load_config("generative-dog-images", ["kernel.dataset_sources=[alice/kompete-assets]"])
    assert cfg.kernel.score is False
    b = build_bundle(cfg, "alice", out_root=tmp_path, score=True)
    script = (b.folder / "kernel.py").read_text()
    assert "score: true" in script and "score: false" not in script


def test_kernel_validation_uses_the_competitions_own_rules():
    loose = load_config("generative-dog-images", ["output.n_min=300"])
    assert official_rules(loose) == ["--set", "output.n_min=10000"]
    validate = dict(stages(loose, score=False))["validate"]
    assert validate[-2:] == ["--set", "output.n_min=10000"]
    assert official_rules(load_config("sample-dogs", ["output.n_min=64"])) == []  # a sample has no Kaggle rules


def test_a_kernel_never_lists_its_own_output(tmp_path):
    cfg = load_config("generative-dog-images")
    with pytest.raises(BundleError, match="this kernel itself") as err:
        build_bundle(cfg, "alice", out_root=tmp_path, resume_from="alice/kompete-generative-dog-images/1")
    assert "--variant" in err.value.render()
    b = build_bundle(cfg, "alice", "part2", out_root=tmp_path, resume_from="alice/kompete-generative-dog-images/1")
    meta = json.loads((b.folder / "kernel-metadata.json").read_text())
    assert meta["id"] == "alice/kompete-generative-dog-images-part2"
    assert meta["kernel_sources"] == ["alice/kompete-generative-dog-images/1"]


def test_train_reserves_generation_and_generate_fits_the_runtime_in_a_kernel():
    train, generate = (dict(stages(load_config("sample-dogs"), score=False))[k] for k in ("train", "generate"))
    assert "--reserve-generation" in train and "--fit-runtime" in generate


def test_scoring_without_the_time_for_it_is_skipped_with_a_line(tmp_path, monkeypatch, capsys):
    import zipfile

    from tests.test_kernel_bundle import _load_script

    cfg = load_config("sample-dogs", ["kernel.dataset_sources=[alice/kompete-assets]"])  # a 180 s runtime limit
    b = build_bundle(cfg, "alice", out_root=tmp_path / "k", score=True)
    script = _load_script(b.folder / "kernel.py", tmp_path, monkeypatch)
    root = tmp_path / "kaggle"
    (root / "input").mkdir(parents=True)
    monkeypatch.setenv("KOMPETE_KAGGLE_ROOT", str(root))
    monkeypatch.setenv("KOMPETE_KERNEL_START", str(time.time() - 150))  # 30 s left when scoring would start
    monkeypatch.setattr(script, "child_json", lambda *a: {"problems": [], "warnings": [], "notes": [], "gpus": [],
                                                          "resume": None})
    ran: list[str] = []

    def fake_kompete(src, args, env, ddp=False, stage=None, timeout_s=None):
        ran.append(args[0])
        if args[0] == "generate":
            with zipfile.ZipFile(root / "working" / "images.zip", "w") as zf:
                zf.writestr("0.png", b"x")
        return 0

    monkeypatch.setattr(script, "kompete", fake_kompete)
    assert script.main([]) == 0
    assert ran == ["train", "generate", "validate"]
    out = capsys.readouterr().out
    assert "score: skipped: " in out and " s of the runtime limit left, 80 s needed" in out
    assert _record(root)["stages"][-1]["skipped"].endswith("is what Kaggle scores")
