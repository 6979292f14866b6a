"""The GAN step runs the generator no more often than the plain loop: one forward serves D's last step and G's first."""

from __future__ import annotations

import pytest
import torch

from kompete.algorithms.base import build_task
from kompete.config import load_config
from kompete.runtime.context import make_context

TINY = ["data.image_size=16", "train.g_channels=8", "train.d_channels=8", "gan.z_dim=16", "train.batch_size=8",
        "gan.ema_decay=0", "data.sample.n_images=32"]


@pytest.mark.parametrize("d_steps,g_steps,forwards", [(1, 1, 1), (2, 1, 2), (1, 3, 3)])
def test_generator_runs_once_per_update_it_feeds(d_steps, g_steps, forwards, one_thread):
    cfg = load_config("sample-dogs", [*TINY, f"train.d_steps={d_steps}", f"train.g_steps={g_steps}"])
    from kompete.algorithms.base import task_class

    task = build_task(cfg, make_context(cfg, "cpu"), task_class(cfg).load_data(cfg, progress=False))
    calls = []
    task.G.register_forward_hook(lambda module, args, out: calls.append(torch.is_grad_enabled()))
    g_before = [p.detach().clone() for p in task.G.parameters()]
    losses = task.step(task.next_batch())
    assert len(calls) == forwards and calls[-1] is True  # D's earlier steps alone run G without gradients
    assert all(torch.isfinite(v) for v in losses.values())
    assert any(not torch.equal(a, b) for a, b in zip(g_before, task.G.parameters()))
    g_updates = {int(s["step"]) for s in task.opt_g.state_dict()["state"].values()}
    assert g_updates == {g_steps}
