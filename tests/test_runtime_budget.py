"""Every second of a run accounted for: one clock from the start, the reserve only for what will run after
training, no silent empty run, evaluations sized to their share, one run builder, the ledger row."""

from __future__ import annotations

import math
import time
import zipfile
from types import SimpleNamespace

import pytest

from kompete.config import load_config
from kompete.errors import TrainingError
from kompete.metrics.evaluation import TrainingEvaluation, plan_evaluation
from kompete.pipeline import TrainRequest, record_training, train
from kompete.train.budget import make_budget, process_started, set_closing_reserve, suggest_seconds

TINY = ["data.image_size=16", "train.g_channels=8", "train.d_channels=8", "gan.z_dim=16", "train.batch_size=16",
        "train.log_every=2", "output.n_min=1", "generate.n_images=32", "generate.batch_size=16",
        "data.sample.n_images=64", "train.safety_margin_s=0"]

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(*extra: str):
    return load_config("sample-dogs", [*TINY, *extra])


def test_the_budget_counts_from_the_start_it_is_given():
    cfg = tiny()
    now = time.monotonic()
    budget = set_closing_reserve(make_budget(cfg, 100.0, now=now, started=now - 40), 0.0)
    assert budget.left(now) == pytest.approx(60.0)  # the 40 s of setup came out of the training window
    assert "setup 40 s so far" in budget.describe(now)
    assert 0 <= time.monotonic() - process_started() < 86400  # this process started in the past, not the future


def test_inside_a_kernel_the_budget_starts_at_the_kernels_start(monkeypatch):
    cfg = tiny()  # runtime limit 0.05 h = 180 s
    monkeypatch.setenv("KOMPETE_KERNEL_START", str(time.time() - 100))
    now = time.monotonic()
    budget = make_budget(cfg, None, now=now, started=now - 5)  # the process started 5 s ago, the kernel 100 s ago
    assert budget.start == pytest.approx(now - 100, abs=2) and budget.end == pytest.approx(now + 80, abs=2)


def test_a_run_that_trains_no_step_says_where_the_time_went(tmp_path):
    started = time.monotonic() - 30  # 30 s of a 30 s budget already spent before training
    with pytest.raises(TrainingError) as err:
        train(TrainRequest(tiny(), tmp_path / "run", 30.0, started=started, progress=False, device="cpu",
                           echo=lambda line: None))
    text = err.value.render()
    assert "trained 0 steps" in text and "setup" in text and "--time-budget (at least" in text
    assert "--max-steps 0" in text


def test_max_steps_zero_asks_for_an_empty_run(tmp_path):
    result = train(TrainRequest(tiny(), tmp_path / "run", 60.0, max_steps=0, progress=False, device="cpu",
                                echo=lambda line: None))
    assert result.steps_run == 0 and result.reason == "max_steps" and result.checkpoint is not None


def test_generation_is_reserved_only_when_this_run_will_generate(tmp_path):
    quiet = dict(progress=False, device="cpu", max_steps=2, echo=lambda line: None)
    plain = train(TrainRequest(tiny(), tmp_path / "a", 300.0, **quiet))
    assert plain.reserve_for == "the last checkpoint and plots" and plain.reserve_s <= 0.1 * 300
    assert not (tmp_path / "a" / "images.zip").exists()
    lines: list[str] = []
    generated = train(TrainRequest(tiny(), tmp_path / "b", 300.0, generate=True, **{**quiet, "echo": lines.append}))
    assert generated.reserve_for.startswith("generation (")
    with zipfile.ZipFile(tmp_path / "b" / "images.zip") as zf:
        assert len(zf.namelist()) == 32
    assert any("valid" in line for line in lines)
    assert "budget" in generated.time_line() and "setup" in generated.time_line()


def test_suggested_budget_covers_setup_reserve_and_some_training():
    cfg = tiny()
    now = time.monotonic()
    budget = make_budget(cfg, 50.0, now=now, started=now - 45)
    budget.reserve_s = 20.0
    assert suggest_seconds(budget, train_s=60.0, now=now) == 130  # 45 + 20 + 60, rounded up to tens


def never_cached(limit: int) -> bool:
    return False


def test_evaluation_that_fits_its_share_keeps_its_sizes():
    e = tiny("eval.every_minutes=1", "eval.n_images=100").eval
    plan = plan_evaluation(e, allowed_s=100.0, train_left_s=120.0, images_per_s=50.0, n_reference=500,
                           reference_cached=never_cached)
    assert plan.enabled and (plan.n_images, plan.reference_limit) == (100, 0)
    assert plan.reference_s == pytest.approx(10.0) and plan.seconds_each == pytest.approx(2.6)


def test_evaluation_too_big_for_its_share_is_cut_before_training():
    e = tiny("eval.every_minutes=1", "eval.n_images=2000").eval
    plan = plan_evaluation(e, allowed_s=60.0, train_left_s=120.0, images_per_s=20.0, n_reference=623,
                           reference_cached=never_cached)
    assert plan.enabled and plan.reference_limit == 512  # a power of two: the next run finds it cached
    assert plan.reference_s + 2 * plan.seconds_each <= 60.0 + 1e-9
    assert plan.n_images < 2000 and "cut to" in plan.note


def test_evaluation_that_cannot_fit_is_switched_off_with_one_line():
    e = tiny("eval.every_minutes=0.25").eval
    plan = plan_evaluation(e, allowed_s=6.0, train_left_s=120.0, images_per_s=5.0, n_reference=623,
                           reference_cached=never_cached)
    assert not plan.enabled and "in-training evaluation off" in plan.note and "eval.max_fraction" in plan.note


def test_a_cached_reference_costs_nothing():
    e = tiny("eval.every_minutes=1", "eval.n_images=100").eval
    plan = plan_evaluation(e, allowed_s=10.0, train_left_s=60.0, images_per_s=50.0, n_reference=100_000,
                           reference_cached=lambda limit: limit == 0)
    assert plan.enabled and plan.reference_s == 0 and plan.n_images == 100


def test_the_first_evaluation_waits_when_its_estimate_does_not_fit(tmp_path):
    cfg = tiny("eval.every_minutes=0.000001", "eval.n_images=8", "eval.max_fraction=1")
    calls: list[int] = []

    def make(trainer):
        def score(task, n):
            calls.append(n)
            return (1.0, 1.0, 1.0)
        score.plan = SimpleNamespace(n_images=8, seconds_each=400.0)  # inside its share, not in the time left
        return score

    lines: list[str] = []
    cb = TrainingEvaluation(cfg, make, echo=lines.append)
    train(TrainRequest(cfg, tmp_path / "run", 600.0, started=time.monotonic() - 300, max_steps=4, progress=False,
                       device="cpu", evaluate=False, callbacks=[cb], echo=lambda line: None))
    assert calls == [] and any("evaluations paused" in line and "training left" in line for line in lines)


def test_the_time_line_names_the_evaluations_share(tmp_path):
    cfg = tiny("eval.every_minutes=0.000001", "eval.n_images=8", "eval.max_fraction=1")

    def make(trainer):
        def score(task, n):
            time.sleep(0.05)
            return (1.0, 1.0, 1.0)
        return score

    cb = TrainingEvaluation(cfg, make, echo=lambda line: None)
    result = train(TrainRequest(cfg, tmp_path / "run", 600.0, max_steps=4, progress=False, device="cpu",
                                evaluate=False, callbacks=[cb], echo=lambda line: None))
    assert result.callback_s["TrainingEvaluation"] >= 0.05
    assert "evaluation" in result.time_line() and "of the budget" in result.time_line()


def test_quiet_runs_print_progress_lines(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KOMPETE_PROGRESS_S", "0")
    train(TrainRequest(tiny(), tmp_path / "run", 600.0, max_steps=4, progress=False, device="cpu"))
    out = capsys.readouterr().out
    assert "loading sample-dogs's data" in out and "first step done" in out
    assert "images/s" in out and "s of training left" in out


def test_recording_a_run_is_a_library_call(tmp_path):
    from kompete.ledger.store import Ledger

    result = SimpleNamespace(run_dir=tmp_path / "run", images_per_s=12.5)
    run_id = record_training(tiny(), result, tmp_path / "ledger.db", echo=lambda line: None)
    with Ledger(tmp_path / "ledger.db") as ledger:
        rows = ledger.runs("sample-dogs")
    assert run_id is not None and [r["images_per_s"] for r in rows] == [12.5]
    warned: list[str] = []
    (tmp_path / "dir.db").mkdir()  # a folder where the database should be: one warning, no failure
    assert record_training(tiny(), result, tmp_path / "dir.db", echo=warned.append) is None
    assert len(warned) == 1 and "not recorded" in warned[0]
    assert math.isfinite(result.images_per_s)


def test_a_slow_step_is_not_started_when_it_would_end_past_the_window(tmp_path):
    from kompete.algorithms.base import build_task, load_data
    from kompete.runtime.context import make_context
    from kompete.train.trainer import Trainer

    cfg = tiny("train.epochs=100000")
    task = build_task(cfg, make_context(cfg, "cpu"), load_data(cfg, None, progress=False))
    step = task.step

    def slow_step(batch):
        time.sleep(0.4)  # a loaded CPU: each step takes a while
        return step(batch)

    task.step = slow_step
    budget = set_closing_reserve(make_budget(cfg, 2.0), 0.0)
    ends: list[float] = []
    trainer = Trainer(cfg, task, tmp_path, budget, progress=False, on_step=lambda t: ends.append(time.monotonic()))
    result = trainer.run()
    assert result.reason == "deadline" and len(ends) >= 2 and trainer._step_s >= 0.35
    assert trainer._past_deadline(budget.train_end - 0.3)  # 0.3 s left: a 0.4 s step is not started
    assert ends[-1] <= budget.train_end + 0.2


def test_hopeless_evaluation_is_off_before_the_weights_load(monkeypatch):
    from kompete.errors import KompeteError
    from kompete.metrics import evaluation, features, weights

    source = SimpleNamespace(describe=lambda: {"sha256": "0" * 64})
    monkeypatch.setattr(weights, "find_weights", lambda explicit: source)

    def no_loading(*args, **kwargs):
        raise AssertionError("the weights were loaded for an evaluation that cannot fit")

    monkeypatch.setattr(features, "load_inception", no_loading)
    cfg = tiny("eval.every_minutes=0.25")
    with pytest.raises(KompeteError, match="even at 50.0 images/s"):
        evaluation.inception_scorer(cfg, "cpu", allowed_s=6.0, train_left_s=100.0)


def test_generation_in_a_kernel_fits_the_runtime_left_but_never_below_the_minimum(monkeypatch):
    from kompete import generate

    cfg = load_config("sample-dogs", [*TINY, "output.n_min=8", "generate.n_images=100", "limits.runtime_hours=0.1"])
    monkeypatch.setattr(generate, "estimate_seconds", lambda task, cfg: 400.0)  # 100 images: 4 s each
    lines: list[str] = []
    monkeypatch.setenv("KOMPETE_KERNEL_START", str(time.time() - 360 + 232))  # ~232 s left, ~202 after the margin
    assert generate.fit_count(None, cfg, 100, lines.append) == 40  # ~202 s / (1.25 x 4 s), rounded down
    assert "generating 40 of 100 images" in lines[0]
    monkeypatch.setenv("KOMPETE_KERNEL_START", str(time.time() - 355))  # 5 s left: the minimum, said so
    assert generate.fit_count(None, cfg, 100, lines.append) == 8 and "minimum" in lines[1]
    monkeypatch.setattr(generate, "estimate_seconds", lambda task, cfg: 1.0)
    assert generate.fit_count(None, cfg, 100, lines.append) == 8  # still too late for all of them
    monkeypatch.setenv("KOMPETE_KERNEL_START", str(time.time()))
    assert generate.fit_count(None, cfg, 100, lines.append) == 100  # time enough: all of them
