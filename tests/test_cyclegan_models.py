"""CycleGAN networks, the image pool and the cyclegan config section (no Trainer needed)."""

from __future__ import annotations

import pytest
import torch

from kompete.algorithms.cyclegan import CycleGanConfig
from kompete.config import load_config
from kompete.errors import ConfigError
from kompete.models.cyclegan import CycleGan, PatchDiscriminator, ResnetGenerator, UnetGenerator, build_generator
from kompete.models.image_pool import ImagePool


def test_cyclegan_is_registered_for_the_translate_task():
    spec = load_config("sample-monet", ["train.model=cyclegan"]).spec
    assert (spec.name, spec.task, list(spec.models)) == ("cyclegan", "translate", ["cyclegan"])


@pytest.mark.parametrize("kind", ["resnet", "unet"])
def test_generators_keep_the_image_shape_and_range(kind):
    torch.manual_seed(0)
    g = build_generator(CycleGanConfig(generator=kind, n_blocks=2), 32, channels=8)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = g(x)
    assert y.shape == x.shape
    assert y.abs().max() <= 1
    y.mean().backward()
    assert all(p.grad is not None for p in g.parameters())


def test_full_size_networks_match_the_reference_parameter_counts():
    # pytorch-CycleGAN-and-pix2pix: resnet_9blocks 11.378 M, unet_256 54.414 M, basic D 2.765 M
    assert sum(p.numel() for p in ResnetGenerator(64, 9).parameters()) == 11_378_179
    assert sum(p.numel() for p in UnetGenerator(64, 8).parameters()) == 54_409_603
    assert sum(p.numel() for p in PatchDiscriminator(64, 3).parameters()) == 2_764_737


def test_patch_discriminator_scores_overlapping_patches():
    d = PatchDiscriminator(8, 3)
    assert d(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)  # 70x70 receptive field on 256x256
    assert d(torch.zeros(2, 3, 64, 64)).shape == (2, 1, 6, 6)


def test_resnet_generator_pads_by_reflection():
    pads = [m for m in ResnetGenerator(8, 2).modules() if isinstance(m, torch.nn.ReflectionPad2d)]
    convs = [m for m in ResnetGenerator(8, 2).modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(pads) == 2 + 2 * 2  # the two 7x7 convs and two per residual block
    assert all(c.padding == (0, 0) for c in convs if c.kernel_size[0] != 3 or c.stride == (1, 1))


def test_weights_start_from_normal_0_002():
    torch.manual_seed(0)
    nets = CycleGan(CycleGanConfig(n_blocks=2), 32, 16, 16)
    w = torch.cat([m.weight.flatten() for m in nets.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(w.mean().item()) < 2e-3 and abs(w.std().item() - 0.02) < 2e-3
    assert all(m.bias.abs().sum() == 0 for m in nets.modules() if isinstance(m, torch.nn.Conv2d))


def test_unet_levels_must_fit_the_image_size():
    with pytest.raises(ConfigError, match="divisible by 64"):
        build_generator(CycleGanConfig(generator="unet", unet_levels=6), 32)


# --------------------------------------------------------------------------- image pool


def batch(start: float, n: int = 3) -> torch.Tensor:
    return (start + torch.arange(n, dtype=torch.float32)).view(n, 1, 1, 1)


def test_pool_returns_new_fakes_until_full_then_mixes_in_older_ones():
    pool = ImagePool(4, seed=0)
    assert pool.query(batch(0)).flatten().tolist() == [0, 1, 2]
    seen_old = 0
    stored = set(pool.buffer[:3].flatten().tolist())
    for k in range(1, 30):
        new = batch(10 * k)
        out = pool.query(new).flatten().tolist()
        assert len(out) == 3
        for value, fresh in zip(out, new.flatten().tolist()):
            if value != fresh:
                # an old fake from the pool, or a new one an earlier image of this batch put there
                assert value in stored | set(new.flatten().tolist())
                seen_old += 1
        stored = set(pool.buffer.flatten().tolist())
        assert pool.filled == 4
    assert 20 < seen_old < 70  # about half of the 87 queries after the pool filled


def test_pool_swaps_the_returned_fake_for_the_new_one():
    pool = ImagePool(2, seed=1)
    pool.query(batch(0, 2))
    for k in range(1, 20):
        before = set(pool.buffer.flatten().tolist())
        new = batch(10 * k, 1)
        out = pool.query(new).item()
        after = set(pool.buffer.flatten().tolist())
        if out == new.item():
            assert after == before
        else:
            assert out in before and after == (before - {out}) | {new.item()}


def test_pool_of_size_zero_passes_fakes_through():
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    out = ImagePool(0).query(x)
    assert torch.equal(out, x) and not out.requires_grad


def test_pool_state_round_trips():
    a = ImagePool(5, seed=3)
    for k in range(4):
        a.query(batch(10 * k))
    b = ImagePool(5, seed=99)
    b.load_state_dict(a.state_dict())
    for k in range(4, 8):
        assert torch.equal(a.query(batch(10 * k)), b.query(batch(10 * k)))


# --------------------------------------------------------------------------- config


def test_a_bad_cyclegan_value_is_a_clear_error():
    with pytest.raises(ConfigError, match="cyclegan.generator"):
        load_config("sample-monet", ["cyclegan.generator=vit"])
    with pytest.raises(ConfigError, match="cyclegan.lambda_cycle"):
        load_config("sample-monet", ["cyclegan.lambda_cycle=-1"])


def test_the_translate_task_needs_a_translation_model_and_lsgan_or_hinge():
    assert load_config("sample-monet", ["train.loss=hinge"]).train.loss == "hinge"
    for overrides, message in ((["train.model=dcgan"], "'task' is 'translate'"),
                               (["train.loss=bce"], "cyclegan trains with 'lsgan' or 'hinge'"),
                               (["train.d_steps=2"], "'train.d_steps' does nothing for cyclegan")):
        with pytest.raises(ConfigError, match=message):
            load_config("sample-monet", ["train.model=cyclegan", *overrides])
