"""Gradient penalties on D's input: WGAN-GP (Gulrajani et al. 2017) and R1 (Mescheder et al. 2018, StyleGAN2).

Both run the critic in fp32 with autocast switched off, whatever the caller's context: the penalty
differentiates twice (create_graph=True), and fp16 input gradients underflow or overflow long before
the loss does.

GradScaler. The input gradient is taken of the critic's *unscaled* output, so its norm is the true
norm and the penalty is the true penalty. The caller adds it to D's loss and calls
`scaler.scale(loss).backward()`: the scale multiplies the whole loss once, its weight gradients are
S times the true ones, and `scaler.step` divides them by S again, as for any other term. The trap
this avoids is PyTorch's own AMP recipe for penalties: had the input gradient been taken of
`scaler.scale(out)`, it would be S times too large and would have to be unscaled by hand before the
norm. Inf/NaN checks still see the penalty's gradients, since they pass through the scaled backward.
"""

from __future__ import annotations

import torch
from torch import nn


def _critic(critic: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    return critic(x) if y is None else critic(x, y)


def _input_gradient(critic: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """d sum(critic(x)) / dx, kept in the graph so the penalty trains the critic's weights."""
    x = x.detach().float().requires_grad_(True)
    with torch.autocast(device_type=x.device.type, enabled=False):
        out = _critic(critic, x, y).float()
        (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return grad


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None = None,
                     weight: float = 10.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP: weight * E[(||grad_x critic(x)|| - 1)^2] at random points x between real and fake samples.

    One mixing coefficient per sample (uniform in [0, 1]); `y` (class labels) is passed to a conditional
    critic as critic(x, y). Returns an fp32 scalar. `generator` draws the coefficients (else torch's
    global RNG on the images' device).
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake batches differ in shape: {tuple(real.shape)} and {tuple(fake.shape)}")
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, generator=generator)
    mixed = alpha * real.detach().float() + (1 - alpha) * fake.detach().float()
    norm = _input_gradient(critic, mixed, y).flatten(1).norm(2, dim=1)
    return weight * (norm - 1).pow(2).mean()


def r1_penalty(critic: nn.Module, real: torch.Tensor, y: torch.Tensor | None = None,
               gamma: float = 10.0) -> torch.Tensor:
    """R1: gamma / 2 * E[||grad_x D(x)||^2] on real samples; returns an fp32 scalar.

    StyleGAN2 applies it lazily (every k D steps, multiplied by k); that schedule belongs to the objective.
    """
    grad = _input_gradient(critic, real, y)
    return 0.5 * gamma * grad.flatten(1).pow(2).sum(1).mean()
