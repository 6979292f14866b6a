"""PatchNCE loss: its value at chance and at a perfect match, its maths, and where its gradients go."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kompete.models.cut import PatchSampleMLP
from kompete.models.cut import patchnce, patchnce_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def _unit(*shape: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape), dim=-1)


def test_unrelated_features_score_log_num_patches():
    # in 4096 dimensions random unit vectors are nearly orthogonal: every candidate ties, loss ~ log P
    torch.manual_seed(0)
    q, k = _unit(2, 64, 4096), _unit(2, 64, 4096)
    assert abs(patchnce_loss(q, k).item() - math.log(64)) < 0.1


def test_matching_queries_and_keys_score_far_below_chance():
    torch.manual_seed(0)
    k = _unit(2, 64, 64)
    assert patchnce_loss(k.clone(), k).item() < 0.1 * math.log(64)
    assert patchnce_loss(k.clone(), k).item() < patchnce_loss(_unit(2, 64, 64), k).item()


def test_loss_is_the_per_patch_cross_entropy_against_the_same_images_other_patches():
    torch.manual_seed(0)
    q, k, t = _unit(2, 5, 8), _unit(2, 5, 8), 0.07
    losses = []
    for b in range(2):
        for i in range(5):
            others = [q[b, i] @ k[b, j] / t for j in range(5) if j != i]
            pos = q[b, i] @ k[b, i] / t
            losses.append(torch.logsumexp(torch.stack([pos, *others]), 0) - pos)
    assert torch.allclose(patchnce_loss(q, k, t), torch.stack(losses).mean(), atol=1e-5)


def test_negatives_come_from_the_same_image_only():
    torch.manual_seed(0)
    q, k = _unit(2, 16, 8), _unit(2, 16, 8)
    alone = (patchnce_loss(q[:1], k[:1]) + patchnce_loss(q[1:], k[1:])) / 2
    assert torch.allclose(patchnce_loss(q, k), alone, atol=1e-6)


def test_gradients_reach_the_queries_and_heads_but_not_the_keys():
    torch.manual_seed(0)
    heads = PatchSampleMLP([4, 6], nc=16)
    src = [torch.randn(2, 4, 8, 8, requires_grad=True), torch.randn(2, 6, 4, 4, requires_grad=True)]
    out = [torch.randn(2, 4, 8, 8, requires_grad=True), torch.randn(2, 6, 4, 4, requires_grad=True)]
    keys, ids = heads(src, 32)
    queries, _ = heads(out, 32, ids)
    patchnce(queries, keys).backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in out)
    assert all(f.grad is None for f in src)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in heads.parameters())


def test_low_precision_inputs_give_an_fp32_loss():
    torch.manual_seed(0)
    q, k = _unit(2, 16, 32), _unit(2, 16, 32)
    qh, kh = q.bfloat16(), k.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = patchnce_loss(qh, kh)
    assert loss.dtype == torch.float32
    assert torch.allclose(loss, patchnce_loss(qh.float(), kh.float()), atol=1e-6)


def test_layer_mean_and_shape_checks():
    torch.manual_seed(0)
    qs, ks = [_unit(1, 8, 4), _unit(1, 4, 4)], [_unit(1, 8, 4), _unit(1, 4, 4)]
    expected = (patchnce_loss(qs[0], ks[0]) + patchnce_loss(qs[1], ks[1])) / 2
    assert torch.allclose(patchnce(qs, ks), expected)
    with pytest.raises(ValueError, match="one key set per query set"):
        patchnce(qs, ks[:1])
    with pytest.raises(ValueError, match=r"\[B, P, C\]"):
        patchnce_loss(qs[0], ks[1])


def test_training_g_and_heads_on_patchnce_lowers_it():
    # CUT's NCE path end to end: keys from the source image, queries from G's output at the same patches
    from kompete.models.cut import CutNetworks, encoder_features, translate_with_features

    torch.manual_seed(0)
    nets = CutNetworks(16, g_channels=4, d_channels=4, n_blocks=2, nc=32, blocks=(1, 2))
    params = [*nets.generator.parameters(), *nets.heads.parameters()]
    opt = torch.optim.Adam(params, 2e-3, betas=(0.5, 0.999))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    losses = []
    for _ in range(40):
        fake, src = translate_with_features(nets.generator, x, nets.layers)
        keys, ids = nets.heads(src, 64)
        queries, _ = nets.heads(encoder_features(nets.generator, fake, nets.layers), 64, ids)
        loss = patchnce(queries, keys)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 2
