"""CUT / FastCUT networks: the encoder layers CUT contrasts, the patch heads and their sampling."""

from __future__ import annotations

import pytest
import torch

from kompete.errors import ConfigError
from kompete.models.cut import (CutNetworks, PatchSampleMLP, ResnetGenerator, encoder_features, feature_channels,
                                nce_layers, translate_with_features)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_nce_layers_are_the_padded_input_the_downsamplings_and_blocks_1_and_5():
    g = ResnetGenerator(8, 9)
    layers = nce_layers(g)
    assert layers == (0, 4, 7, 10, 14)
    kinds = [type(g.net[i]).__name__ for i in layers]
    assert kinds == ["ReflectionPad2d", "Conv2d", "Conv2d", "ResnetBlock", "ResnetBlock"]
    assert [g.net[i].stride for i in layers[1:3]] == [(2, 2), (2, 2)]


def test_full_width_feature_channels_match_the_reference_layers():
    # the reference's nce_layers 0,4,8,12,16 of resnet_9blocks (ngf 64) carry 3, 128, 256, 256, 256 channels
    g = ResnetGenerator(64, 9)
    assert feature_channels(g, nce_layers(g)) == [3, 128, 256, 256, 256]


def test_encoder_features_have_the_announced_shapes_and_stop_early():
    torch.manual_seed(0)
    g = ResnetGenerator(8, 6)
    layers = nce_layers(g)
    ran_decoder = []
    g.net[-1].register_forward_hook(lambda *_: ran_decoder.append(True))
    feats = encoder_features(g, torch.randn(2, 3, 32, 32), layers)
    assert [tuple(f.shape) for f in feats] == [(2, 3, 38, 38), (2, 16, 16, 16), (2, 32, 8, 8), (2, 32, 8, 8),
                                               (2, 32, 8, 8)]
    assert [f.shape[1] for f in feats] == feature_channels(g, layers)
    assert not ran_decoder


def test_translate_with_features_is_the_generator_output_plus_the_encoder_features():
    torch.manual_seed(0)
    g = ResnetGenerator(8, 6)
    layers = nce_layers(g)
    x = torch.randn(2, 3, 16, 16)
    y, feats = translate_with_features(g, x, layers)
    assert torch.equal(y, g(x))
    assert all(torch.equal(a, b) for a, b in zip(feats, encoder_features(g, x, layers)))


@pytest.mark.parametrize("layers", [(), (4, 0), (0, 0), (0, 99)])
def test_bad_layer_lists_are_refused(layers):
    with pytest.raises(ValueError, match="layers must be"):
        encoder_features(ResnetGenerator(8, 2), torch.zeros(1, 3, 16, 16), layers)


def test_nce_blocks_beyond_the_generator_are_a_config_error():
    with pytest.raises(ConfigError, match="residual blocks"):
        nce_layers(ResnetGenerator(8, 4))  # block 5 does not exist


def test_patch_samples_are_unit_vectors_at_the_sampled_positions():
    torch.manual_seed(0)
    feats = [torch.randn(2, 3, 20, 20), torch.randn(2, 16, 8, 8)]
    heads = PatchSampleMLP([3, 16], nc=32)
    samples, ids = heads(feats, num_patches=100)
    assert [tuple(s.shape) for s in samples] == [(2, 100, 32), (2, 64, 32)]  # capped at the 8x8 positions
    # unit length up to the reference's 1e-7 in the denominator (tiny heads at init give norms near 1e-3)
    assert all(torch.allclose(s.norm(dim=-1), torch.ones(()), atol=1e-3) for s in samples)
    assert len(set(ids[0].tolist())) == 100 and sorted(ids[1].tolist()) == list(range(64))
    for feat, head, s, idx in zip(feats, heads.heads, samples, ids):
        expected = head(feat.flatten(2).transpose(1, 2)[:, idx])
        assert torch.allclose(s, expected / (expected.norm(dim=-1, keepdim=True) + 1e-7), atol=1e-6)


def test_queries_reuse_the_keys_patch_ids():
    torch.manual_seed(0)
    heads = PatchSampleMLP([4], nc=8)
    key_feat = torch.randn(1, 4, 10, 10)
    keys, ids = heads([key_feat], num_patches=16)
    queries, ids_q = heads([key_feat.clone()], num_patches=16, patch_ids=ids)
    assert ids_q[0] is ids[0]
    assert torch.equal(queries[0], keys[0])  # same map, same ids -> same samples, patch by patch
    fresh, _ = heads([key_feat], num_patches=16)
    assert not torch.equal(fresh[0], keys[0])  # new ids are drawn when none are passed


def test_a_seeded_generator_picks_the_same_patches():
    heads = PatchSampleMLP([4], nc=8)
    feat = torch.randn(1, 4, 10, 10)
    _, a = heads([feat], 16, generator=torch.Generator().manual_seed(3))
    _, b = heads([feat], 16, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0])


def test_heads_start_from_normal_0_02_with_zero_biases():
    torch.manual_seed(0)
    heads = PatchSampleMLP([256, 256], nc=256)
    linears = [m for m in heads.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(256, 256)] * 4
    w = torch.cat([m.weight.flatten() for m in linears])
    assert abs(w.mean().item()) < 1e-3 and abs(w.std().item() - 0.02) < 1e-3
    assert all(m.bias.abs().sum() == 0 for m in linears)


def test_cut_networks_hold_g_d_and_heads_in_one_state_dict():
    torch.manual_seed(0)
    nets = CutNetworks(32, g_channels=8, d_channels=8, n_blocks=6)
    keys = nets.state_dict().keys()
    assert {k.split(".")[0] for k in keys} == {"generator", "discriminator", "heads"}
    assert sum(k.startswith("heads.") for k in keys) == 4 * len(nets.layers)  # 2 Linear x (weight, bias)
    # the generator's names are CycleGAN's, so its weights load into either
    assert all(k.startswith("generator.net.") for k in keys if k.startswith("generator"))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    fake, keys_feats = translate_with_features(nets.generator, x, nets.layers)
    assert nets.discriminator(fake).shape == (2, 1, 2, 2)
    k, ids = nets.heads(keys_feats, 16)
    q, _ = nets.heads(encoder_features(nets.generator, fake, nets.layers), 16, ids)
    sum(((a - b) ** 2).sum() for a, b in zip(q, k)).backward()
    assert all(p.grad is not None for p in nets.generator.parameters())
    assert all(p.grad is not None for p in nets.heads.parameters())


def test_cut_needs_an_image_size_divisible_by_4():
    with pytest.raises(ConfigError, match="divisible by 4"):
        CutNetworks(30, 8, 8, 6)


def test_patch_samples_are_fp32_unit_vectors_under_autocast():
    torch.manual_seed(0)
    heads = PatchSampleMLP([64], nc=256)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        samples, _ = heads([torch.randn(2, 64, 8, 8) * 50], 32)
    assert samples[0].dtype == torch.float32
    assert torch.allclose(samples[0].norm(dim=-1), torch.ones(()), atol=1e-5)
