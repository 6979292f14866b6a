"""In-training evaluation: best.pt is the lowest MiFID above eps, generate and best-restart use it, it never
breaks a training. Scores are injected (a seeded sequence), so these tests check the bookkeeping, not Inception."""

from __future__ import annotations

import json
import zipfile

import pytest
import torch

from kompete.config import load_config
from kompete.errors import WeightsError
from kompete.generate import generate_zip
from kompete.metrics.evaluation import TrainingEvaluation
from kompete.train import state as ckpt
from kompete.train.budget import make_budget
from kompete.train.monitor import read_metrics
from kompete.train.run import train_run

TINY = ["data.image_size=16", "train.g_channels=8", "train.d_channels=8", "gan.z_dim=16", "train.batch_size=16",
        "train.log_every=2", "output.n_min=1", "generate.batch_size=16", "gan.ema_decay=0.9",
        "eval.every_minutes=0.000001", "eval.n_images=8", "data.sample.n_images=64"]

pytestmark = pytest.mark.usefixtures("one_thread", "isolated_cache")

# (fid, memorization distance, mifid) per evaluation, at steps 2, 4, 6, 8 and the final 10
SEQUENCE = [(50.0, 0.3, 50.0), (20.0, 0.05, 20.0), (45.0, 0.3, 45.0), (30.0, 0.2, 30.0), (35.0, 0.3, 35.0)]


def scripted(sequence):
    calls = []

    def make(trainer):
        def score(task, n):
            calls.append((task.step_count, n))
            return sequence[len(calls) - 1]
        return score

    return make, calls


def run(tmp_path, sequence=SEQUENCE, steps=10, resume=None, make=None, extra=()):
    cfg = load_config("sample-dogs", [*TINY, *extra])
    lines: list[str] = []
    make = make or scripted(sequence)[0]
    cb = TrainingEvaluation(cfg, make, echo=lines.append)
    result = train_run(cfg, tmp_path / "run", make_budget(cfg, 600), resume=resume, max_steps=steps,
                       progress=False, callbacks=[cb])
    return cfg, cb, result, lines


def test_best_is_the_lowest_mifid_whose_distance_is_not_below_eps(tmp_path):
    make, calls = scripted(SEQUENCE)
    cfg, cb, result, lines = run(tmp_path, make=make)
    assert [s for s, _ in calls] == [2, 4, 6, 8, 10] and all(n == 8 for _, n in calls)
    best = json.loads((tmp_path / "run" / "checkpoints" / "best.json").read_text())
    assert (best["step"], best["mifid"]) == (8, 30.0)  # 20.0 at step 4 memorized (0.05 < eps 0.1)
    payload = ckpt.load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert payload["task"]["step"] == 8 and "opt_g" in payload["task"] and "ema" in payload["task"]
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    scored = ~torch.tensor(rows["eval_mifid"]).isnan()
    assert rows["eval_mifid"][scored.numpy()].tolist() == [m for _, _, m in SEQUENCE]
    assert set(rows["eval_images"][scored.numpy()].tolist()) == {8.0}
    assert (tmp_path / "run" / "mifid.png").stat().st_size > 0
    assert (tmp_path / "run" / "samples" / "best.png").is_file()
    alarms = [line for line in lines if "memorization alarm" in line]
    assert len(alarms) == 1 and "step 4" in alarms[0]  # 0.05 < 1.5 x 0.1, warned once
    assert any("biased upward" in line for line in lines)


def test_generate_uses_the_best_checkpoint_unless_told_otherwise(tmp_path):
    run(tmp_path)
    assert ckpt.choose_checkpoint(tmp_path / "run").name == "best.pt"
    assert ckpt.choose_checkpoint(tmp_path / "run", "last").name == "step-00000010.pt"
    best = generate_zip(ckpt.choose_checkpoint(tmp_path / "run"), tmp_path / "best.zip", n=6, progress=False)
    last = generate_zip(ckpt.choose_checkpoint(tmp_path / "run", "last"), tmp_path / "last.zip", n=6,
                        progress=False)
    with zipfile.ZipFile(best) as b, zipfile.ZipFile(last) as la:
        assert any(b.read(n) != la.read(n) for n in b.namelist())  # different weights, different images
    assert "in-training MiFID 30.000" in ckpt.describe_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")


def test_best_restart_continues_from_best_and_sets_the_later_checkpoints_aside(tmp_path):
    run(tmp_path)
    best = ckpt.choose_checkpoint(tmp_path / "run", "best")
    make, calls = scripted([(60.0, 0.3, 60.0), (25.0, 0.3, 25.0)])
    _, cb, result, _ = run(tmp_path, resume=best, steps=12, make=make)
    assert calls[0][0] == 10 and result.steps == 12  # resumed at 8: ticks at 10 and the final 12
    aside = tmp_path / "run" / "checkpoints" / "after-step-00000008"
    assert (aside / "step-00000010.pt").is_file()  # set aside, not deleted
    best_info = json.loads((tmp_path / "run" / "checkpoints" / "best.json").read_text())
    assert (best_info["step"], best_info["mifid"]) == (12, 25.0)  # 60 did not beat the kept 30; 25 did


def test_without_weights_the_evaluation_disables_itself_and_training_goes_on(tmp_path):
    def no_weights(trainer):
        raise WeightsError("no FID Inception weights found")

    _, cb, result, lines = run(tmp_path, make=no_weights)
    assert result.steps == 10 and cb.history == []
    assert lines == ["warning: in-training evaluation disabled: no FID Inception weights found"]
    assert not (tmp_path / "run" / "checkpoints" / "best.pt").exists()


def test_a_failing_evaluation_logs_one_line_and_training_continues(tmp_path):
    def flaky(trainer):
        def score(task, n):
            if task.step_count == 4:
                raise RuntimeError("CUDA out of memory\nmore detail")
            return (40.0, 0.3, 40.0 - task.step_count)
        return score

    _, cb, result, lines = run(tmp_path, make=flaky)
    assert result.steps == 10 and len(cb.history) == 4
    assert [line for line in lines if "failed" in line] == ["warning: evaluation at step 4 failed: CUDA out of memory"]


def test_evaluations_pause_when_they_would_exceed_their_share_of_the_budget(tmp_path):
    import time

    def slow(trainer):
        def score(task, n):
            time.sleep(0.4)
            return (40.0, 0.3, 40.0)
        return score

    # 600 s budget x 0.002 = 1.2 s: the third 0.4 s evaluation would pass it
    _, cb, result, lines = run(tmp_path, make=slow, extra=["eval.max_fraction=0.002"])
    assert 2 <= len(cb.history) <= 3 and result.steps == 10
    assert sum("evaluations paused" in line for line in lines) == 1
