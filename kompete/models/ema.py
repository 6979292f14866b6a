"""An exponential moving average of G's weights: smoother samples at no training cost."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn


class EMA:
    """Keeps `shadow`, an eval-mode copy of `model` whose parameters track it with `decay`.

    Before `start` steps the shadow simply copies the model (early weights are poor averages).
    Buffers (batch-norm statistics) are copied, not averaged. All updates are in-place foreach ops
    on the device: no host sync.
    """

    def __init__(self, model: nn.Module, decay: float, start: int = 0):
        self.decay, self.start = decay, start
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        src = [p.detach() for p in model.parameters()]
        dst = list(self.shadow.parameters())
        if step < self.start:
            torch._foreach_copy_(dst, src)
        else:
            torch._foreach_lerp_(dst, src, 1.0 - self.decay)
        for b_dst, b_src in zip(self.shadow.buffers(), model.buffers()):
            b_dst.copy_(b_src)

    def state_dict(self) -> dict:
        return self.shadow.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.shadow.load_state_dict(state)
