"""The contract every registered algorithm keeps, checked on the tiny run its spec names (`spec.tiny`):
4 steps straight equal 2 steps + resume from the checkpoint + 2 steps, bit for bit, and the run writes a
submission zip that passes the competition's checks. An algorithm added later is covered without edits."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from kompete import algorithms
from kompete.algorithms.base import build_task, task_class
from kompete.archive import validate_zip
from kompete.config import load_config
from kompete.generate import generate_zip
from kompete.train import state as ckpt
from kompete.train.budget import make_budget
from kompete.runtime.context import make_context
from kompete.train.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


def tensors(state: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a (nested) state dict, by its path."""
    if isinstance(state, torch.Tensor):
        return {prefix: state}
    items = state.items() if isinstance(state, dict) else enumerate(state) if isinstance(state, (list, tuple)) else ()
    return {k: v for key, value in items for k, v in tensors(value, f"{prefix}/{key}").items()}


def run(cfg, data, run_dir, steps: int, resume: bool = False) -> Trainer:
    task = build_task(cfg, make_context(cfg, "cpu"), data)
    trainer = Trainer(cfg, task, run_dir, make_budget(cfg, 600.0), progress=False, max_steps=steps)
    if resume:
        trainer.resume(run_dir)
    trainer.run()
    return trainer


def test_every_algorithm_names_a_tiny_run():
    for spec in algorithms.specs():
        assert spec.tiny, f"{spec.name}: AlgorithmSpec.tiny is empty"
        cfg = load_config(spec.tiny[0], list(spec.tiny[1:]))
        assert cfg.spec is spec, f"{spec.name}'s tiny run trains {cfg.spec.name}"


@pytest.mark.parametrize("name", [s.name for s in algorithms.specs()])
def test_two_steps_resume_two_steps_is_four_steps_bit_for_bit_and_the_zip_validates(name, tmp_path):
    spec = algorithms.ALGORITHMS.get(name)
    cfg = load_config(spec.tiny[0], list(spec.tiny[1:]))
    data = task_class(cfg).load_data(cfg, progress=False)
    straight = run(cfg, data, tmp_path / "straight", 4)
    run(cfg, data, tmp_path / "resumed", 2)
    assert ckpt.find_checkpoint(tmp_path / "resumed").name == "step-00000002.pt"
    resumed = run(cfg, data, tmp_path / "resumed", 4, resume=True)
    a, b = tensors(straight.task.state_dict()), tensors(resumed.task.state_dict())
    assert a.keys() == b.keys() and resumed.task.step_count == straight.task.step_count == 4
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{name}: resumed state differs from the straight run at {differ[:5]}"

    zip_path = generate_zip(tmp_path / "resumed", out=tmp_path / "images.zip", device="cpu", progress=False)
    report = validate_zip(cfg, zip_path)
    assert report.ok, report
