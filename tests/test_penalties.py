"""WGAN-GP and R1 penalties: exact on analytic critics, fp32 under autocast, right under a GradScaler,
and the WGAN-GP penalty really drives a critic's input-gradient norm towards 1."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kompete.penalties import gradient_penalty, r1_penalty

pytestmark = pytest.mark.usefixtures("one_thread")


def _linear_critic(seed: int = 0, features: int = 12) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(features, 1))


def _small_critic(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(8 * 4 * 4, 1))


class _Conditional(nn.Module):
    """critic(x, y) = <w, x> + <v_y, x>: the input gradient is w + v_y."""

    def __init__(self, features: int, classes: int):
        super().__init__()
        self.w = nn.Linear(features, 1)
        self.v = nn.Embedding(classes, features)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        return self.w(x).squeeze(1) + (self.v(y) * x).sum(1)


def test_linear_critic_gives_the_analytic_penalty_and_weight_gradient():
    critic = _linear_critic()
    real, fake = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    w = critic[1].weight
    norm = w.norm()
    gp = gradient_penalty(critic, real, fake, weight=10.0)
    assert torch.allclose(gp, 10.0 * (norm - 1) ** 2)  # the gradient of <w, x> is w at every x
    gp.backward()
    assert torch.allclose(w.grad, 20.0 * (norm - 1) * w / norm)  # create_graph: the penalty trains D
    assert critic[1].bias.grad is None or critic[1].bias.grad.abs().sum() == 0


def test_conditional_critic_gets_the_labels():
    torch.manual_seed(0)
    critic = _Conditional(6, 3)
    x, y = torch.randn(3, 6), torch.tensor([0, 2, 2])
    gp = gradient_penalty(critic, x, torch.randn(3, 6), y, weight=1.0)
    expected = ((critic.w.weight + critic.v.weight[y]).norm(dim=1) - 1).pow(2).mean()
    assert torch.allclose(gp, expected)


def test_r1_of_a_linear_and_a_quadratic_critic():
    critic = _linear_critic()
    real = torch.randn(5, 3, 2, 2)
    assert torch.allclose(r1_penalty(critic, real, gamma=4.0), 2.0 * critic[1].weight.pow(2).sum())

    class HalfSquare(nn.Module):  # D(x) = |x|^2 / 2, whose input gradient is x itself
        def forward(self, x):
            return 0.5 * x.flatten(1).pow(2).sum(1)

    assert torch.allclose(r1_penalty(HalfSquare(), real, gamma=4.0), 2.0 * real.flatten(1).pow(2).sum(1).mean())


def test_r1_trains_the_critic_weights():
    critic = _linear_critic()
    r1_penalty(critic, torch.randn(5, 3, 2, 2), gamma=4.0).backward()
    assert torch.allclose(critic[1].weight.grad, 4.0 * critic[1].weight)


def test_penalties_run_in_fp32_inside_autocast():
    critic, real, fake = _small_critic(), torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    plain = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(1))
    plain_r1 = r1_penalty(critic, real)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = gradient_penalty(critic, real.bfloat16(), fake.bfloat16(), generator=torch.Generator().manual_seed(1))
        inside_r1 = r1_penalty(critic, real)
    assert inside.dtype == inside_r1.dtype == torch.float32
    # only the bf16 rounding of the inputs differs; a bf16 critic would be off by ~1e-2 relative
    assert torch.allclose(inside, gradient_penalty(critic, real.bfloat16().float(), fake.bfloat16().float(),
                                                   generator=torch.Generator().manual_seed(1)), rtol=1e-6)
    assert torch.equal(inside_r1, plain_r1)
    assert plain.item() > 0


@pytest.mark.parametrize("enabled", [False, True])
def test_grad_scaler_only_scales_the_final_loss(enabled):
    """The penalty is built from unscaled input gradients, so after unscale_ the weight gradients of
    scale(loss) equal the plain ones, and the penalty's value does not depend on the scale. The CPU
    scaler with enabled=False is what a CPU run gets; enabled=True (scale 2**12) is what CUDA fp16 gets."""
    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)

    def grads(scaler: torch.amp.GradScaler | None) -> tuple[float, list[torch.Tensor]]:
        critic = _small_critic()
        opt = torch.optim.SGD(critic.parameters(), lr=0.0)
        gp = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(2))
        loss = critic(fake).mean() - critic(real).mean() + gp
        if scaler is None:
            loss.backward()
        else:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        return gp.item(), [p.grad.clone() for p in critic.parameters()]

    gp_plain, g_plain = grads(None)
    gp_scaled, g_scaled = grads(torch.amp.GradScaler("cpu", init_scale=2.0 ** 12, enabled=enabled))
    assert gp_scaled == gp_plain
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(g_plain, g_scaled))


def test_training_on_the_penalty_alone_drives_the_gradient_norm_to_one():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))
    for m in critic:  # a DCGAN-style init: input gradients start far below 1
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
    real, fake = torch.randn(64, 8) + 2.0, torch.randn(64, 8) - 2.0
    probe = torch.lerp(fake, real, torch.rand(64, 1))

    def distance_to_one() -> float:
        x = probe.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(critic(x).sum(), x)
        return (g.norm(dim=1) - 1).abs().mean().item()

    before = distance_to_one()
    opt = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.0, 0.9))  # the WGAN-GP paper's Adam
    for _ in range(200):
        opt.zero_grad()
        gradient_penalty(critic, real, fake).backward()
        opt.step()
    after = distance_to_one()
    assert before > 0.9
    assert after < before / 10


def test_mismatched_batches_are_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        gradient_penalty(_linear_critic(), torch.zeros(2, 3, 2, 2), torch.zeros(3, 3, 2, 2))
