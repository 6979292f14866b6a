"""train.plateau: lower the learning rates or stop when the in-training score stalls."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kompete.algorithms.base import build_task, task_class
from kompete.config import PlateauConfig, load_config
from kompete.errors import ConfigError
from kompete.train.budget import make_budget
from kompete.train.callbacks import Callback, default_callbacks
from kompete.runtime.context import make_context
from kompete.train.monitor import read_metrics
from kompete.train.plateau import Plateau, plateau_callbacks
from kompete.train.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["data.image_size=16", "train.g_channels=8", "train.d_channels=8", "gan.z_dim=16", "train.batch_size=16",
        "train.log_every=2", "output.n_min=1", "eval.every_minutes=60"]


def fake_trainer(step: int = 10) -> SimpleNamespace:
    return SimpleNamespace(lr_scale=1.0, max_steps=None,
                           task=SimpleNamespace(step_count=step, ctx=SimpleNamespace(ddp=False, is_main=True)))


def feed(plateau: Plateau, trainer, scores) -> list[str]:
    said: list[str] = []
    plateau.echo = said.append
    for s in scores:
        plateau.on_tick(trainer, {"eval_mifid": s} if s is not None else {})
    return said


def test_the_learning_rates_drop_after_patience_evaluations_without_a_new_best():
    trainer = fake_trainer()
    said = feed(Plateau(PlateauConfig(patience=2, factor=0.5)), trainer, [100, 90, 95, None, 91, 89, 92, 93])
    # 95 and 91 do not beat 90 (rows without a score are not evaluations) -> x0.5; 89 is a new best; 92, 93 -> x0.25
    assert trainer.lr_scale == 0.25 and len(said) == 2 and trainer.max_steps is None
    assert "learning rates x0.25" in said[-1]


def test_an_improvement_smaller_than_min_delta_does_not_count():
    trainer = fake_trainer()
    feed(Plateau(PlateauConfig(patience=1, min_delta=1.0)), trainer, [100, 99.5])
    assert trainer.lr_scale == 0.5


def test_stop_ends_training_at_the_step_it_decides():
    trainer = fake_trainer(step=40)
    said = feed(Plateau(PlateauConfig(patience=2, action="stop")), trainer, [50, 60, 70, 80])
    assert trainer.max_steps == 40 and trainer.lr_scale == 1.0 and "stopping" in said[0] and len(said) == 1


def test_after_max_lowerings_the_next_plateau_stops():
    trainer = fake_trainer()
    feed(Plateau(PlateauConfig(patience=1, max_lowerings=2)), trainer, [10, 11, 12, 13])
    assert trainer.lr_scale == 0.25 and trainer.max_steps == 10


def test_plateau_needs_in_training_evaluations():
    with pytest.raises(ConfigError, match="eval.every_minutes or eval.every_epochs"):
        load_config("sample-dogs", ["train.plateau.patience=3"])
    cfg = load_config("sample-dogs", ["train.plateau.patience=3", "eval.every_epochs=1"])
    assert [type(c) for c in plateau_callbacks(cfg)] == [Plateau]
    assert plateau_callbacks(load_config("sample-dogs")) == []


class ScriptedScores(Callback):
    """Stands in for the evaluation callback: a given score in each metrics row."""

    fields = ("eval_mifid",)

    def __init__(self, scores):
        self.scores = list(scores)

    def on_tick(self, trainer, row):
        if self.scores:
            row["eval_mifid"] = self.scores.pop(0)


def run_with_scores(tmp_path, scores, *settings):
    cfg = load_config("sample-dogs", [*TINY, *settings])
    data = task_class(cfg).load_data(cfg, progress=False)
    task = build_task(cfg, make_context(cfg, "cpu"), data)
    callbacks = [ScriptedScores(scores), *plateau_callbacks(cfg), *default_callbacks()]
    result = Trainer(cfg, task, tmp_path, make_budget(cfg, 600.0), progress=False, max_steps=40,
                     callbacks=callbacks).run()
    return result, read_metrics(tmp_path / "metrics.csv")


def test_a_stalled_score_stops_a_real_training_early(tmp_path):
    result, _ = run_with_scores(tmp_path, [5.0, 6.0, 7.0, 8.0], "train.plateau.patience=2",
                                "train.plateau.action=stop")
    assert result.steps == 6  # scores at steps 2, 4, 6: the third is the second without a new best


def test_a_stalled_score_lowers_the_logged_learning_rates(tmp_path):
    _, metrics = run_with_scores(tmp_path, [5.0, 6.0], "train.plateau.patience=1", "train.lr_g=1e-3")
    lr = list(metrics["lr_g"])
    assert lr[0] == pytest.approx(1e-3) and lr[-1] == pytest.approx(5e-4)
