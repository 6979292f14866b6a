"""The networks recipes choose between: biggan / biggan_cond (residual, conditional BN, projection D, orthogonal
init, attention at 32 px) and dcgan's batch statistics at generation (not grey after a short run)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from kompete import models  # noqa: F401  (fills the GAN_NETWORKS registry)
from kompete.algorithms.base import build_task, task_class
from kompete.config import load_config
from kompete.models.biggan import ConditionalBatchNorm, Generator
from kompete.models.dcgan import BatchStatNorm2d
from kompete.models.sngan import SelfAttention
from kompete.models.base import GAN_NETWORKS as MODELS
from kompete.train.budget import make_budget
from kompete.runtime.context import make_context
from kompete.train.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ["train.model=biggan_cond", "data.image_size=32", "train.g_channels=8", "train.d_channels=8", "gan.z_dim=16", "train.batch_size=8"]


def small_cfg(*extra: str):
    return load_config("sample-dogs", [*SMALL, *extra])


def test_biggan_cond_conditions_every_batch_norm_on_the_shared_class_embedding():
    built = MODELS.get("biggan_cond")(small_cfg("train.model=biggan_cond"), 4)
    G = built.generator
    assert built.conditional and built.n_classes == 4
    cbns = [m for m in G.modules() if isinstance(m, ConditionalBatchNorm)]
    assert len(cbns) == 2 * 3  # two per up-block, 4 -> 32 px is three blocks
    assert all(m.gain.in_features == 2 * 16 for m in cbns)  # [z, shared(y)]
    z = torch.randn(8, 16)
    a, b = G(z, torch.zeros(8, dtype=torch.long)), G(z, torch.ones(8, dtype=torch.long))
    assert a.shape == (8, 3, 32, 32) and not torch.allclose(a, b)  # the class changes the image


def test_biggan_discriminator_projects_the_class():
    D = MODELS.get("biggan_cond")(small_cfg(), 4).discriminator
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    assert not torch.allclose(D(x, torch.zeros(4, dtype=torch.long)), D(x, torch.full((4,), 3)))
    assert MODELS.get("biggan")(small_cfg(), 4).discriminator.embed is None


def test_biggan_weights_start_orthogonal():
    G = MODELS.get("biggan")(small_cfg(), 1).generator
    w = G.blocks[1].conv1.weight_orig.flatten(1)  # [out, in * 9], more columns than rows: orthonormal rows
    assert torch.allclose(w @ w.T, torch.eye(w.shape[0]), atol=1e-4)


# D's feature maps are 32x32 only for images of 64 px and more (its first block already halves the side)
@pytest.mark.parametrize("attention, size, in_g, in_d", [(True, 32, 1, 0), (False, 32, 0, 0), (True, 16, 0, 0),
                                                         (True, 64, 1, 1), (False, 64, 0, 0)])
def test_biggan_self_attention_sits_at_32_px_only_when_asked(attention, size, in_g, in_d):
    cfg = small_cfg(f"gan.self_attention={str(attention).lower()}", f"data.image_size={size}")
    built = MODELS.get("biggan_cond")(cfg, 2)
    count = [sum(isinstance(m, SelfAttention) for m in net.modules()) for net in (built.generator, built.discriminator)]
    assert count == [in_g, in_d]


def test_biggan_cond_trains_a_few_steps_with_finite_losses_and_compiles_whole(tmp_path):
    cfg = small_cfg("train.model=biggan_cond")
    ctx = make_context(cfg, "cpu")
    task = build_task(cfg, ctx, None, {"n_classes": 4})
    gen = torch.Generator().manual_seed(1)
    for _ in range(2):
        x, y = torch.rand(8, 3, 32, 32, generator=gen) * 2 - 1, torch.randint(0, 4, (8,), generator=gen)
        out = task.step((x, y))
        assert all(torch.isfinite(v) for v in out.values())
    G = task.G
    explain = torch._dynamo.explain(G)(torch.randn(4, 16), torch.tensor([0, 1, 2, 3]))
    assert explain.graph_break_count == 0


def sample_dogs_task(tmp_path, *extra: str):
    cfg = load_config("sample-dogs", ["data.image_size=32", "train.g_channels=16", "train.d_channels=16",
                                      "train.log_every=5", "output.n_min=1", *extra])
    data = task_class(cfg).load_data(cfg, progress=False)
    task = build_task(cfg, make_context(cfg, "cpu"), data)
    Trainer(cfg, task, tmp_path, make_budget(cfg, 600.0), progress=False, max_steps=20).run()
    return task


def pixel_spread(task) -> float:
    """Mean standard deviation of the pixels of each generated image, on the 0-255 scale."""
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(32, task.z_dim, generator=gen)
    x = task.generate(z, torch.arange(32) % task.n_classes if task.conditional else None).float()
    return float(x.std((1, 2, 3)).mean())


def test_dcgan_images_after_20_steps_on_sample_dogs_are_not_flat(tmp_path):
    # the DCGAN paper's settings, the recipe that wrote grey squares in issue 24's short tournament
    task = sample_dogs_task(tmp_path, "train.model=dcgan", "train.loss=bce", "train.lr_g=2e-4", "train.lr_d=2e-4",
                            "train.beta1=0.5", "train.batch_size=64", "gan.ema_decay=0")
    # with running statistics in eval mode the spread was 6.8/255 (seeds 0-2), with the batch's own 12.1-12.8;
    # real sample dogs: 61
    assert pixel_spread(task) > 10.0


def test_batch_statistics_norm_keeps_batch_norm_state_and_tracks_in_training_only():
    norm, plain = BatchStatNorm2d(3), nn.BatchNorm2d(3)
    assert norm.state_dict().keys() == plain.state_dict().keys()  # older checkpoints load
    x = torch.randn(8, 3, 4, 4) * 5 + 2
    torch.testing.assert_close(norm(x), plain(x))  # training: the same maths and the same running update
    torch.testing.assert_close(norm.running_mean, plain.running_mean)
    norm.eval()
    before = norm.running_mean.clone()
    y = norm(x)
    assert torch.equal(norm.running_mean, before) and int(norm.num_batches_tracked) == 1
    assert y.mean().abs() < 1e-5 and (y.std() - 1).abs() < 0.05  # the batch's own statistics, not the running ones


def test_generator_width_halves_down_to_g_channels():
    G = Generator(16, 8, 64, 0, False)
    assert G.width == 64 and [b.conv1.out_channels for b in G.blocks] == [32, 16, 8, 8]
