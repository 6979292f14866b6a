"""The vanilla GAN (Goodfellow et al. 2014): MLP G, maxout D with dropout, registered as a GAN family."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from kompete.models.base import GanModels
from kompete.models.vanilla import Discriminator, Generator, Maxout
from kompete.models import GAN_NETWORKS as MODELS

pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(size: int = 28, g: int = 64, d: int = 64, z_dim: int = 100):
    return SimpleNamespace(train=SimpleNamespace(g_channels=g, d_channels=d), algo=SimpleNamespace(z_dim=z_dim),
                           data=SimpleNamespace(image_size=size))


def test_vanilla_and_its_conditional_twin_are_gan_family_models():
    from kompete.config import load_config

    assert {"vanilla", "vanilla_cond"} <= set(load_config("sample-dogs").spec.models)
    assert {"vanilla", "vanilla_cond"} <= set(MODELS.names())


def test_default_widths_are_the_papers_mnist_model():
    models = MODELS.get("vanilla")(_cfg(), 0)
    assert isinstance(models, GanModels) and models.z_dim == 100 and not models.conditional
    g_shapes = [(m.in_features, m.out_features) for m in models.generator.modules() if isinstance(m, nn.Linear)]
    assert g_shapes == [(100, 1200), (1200, 1200), (1200, 28 * 28 * 3)]  # RGB: grey digits come replicated
    grey = Discriminator(28, channels=1)  # the paper's MNIST discriminator itself
    maxouts = [m for m in grey.modules() if isinstance(m, Maxout)]
    assert [(m.linear.in_features, m.units, m.pieces) for m in maxouts] == [(784, 240, 5), (240, 240, 5)]
    drops = [m.p for m in models.discriminator.modules() if isinstance(m, nn.Dropout)]
    assert drops == [0.2, 0.5, 0.5]


def test_grey_digits_and_colour_images_come_out_in_the_image_range():
    torch.manual_seed(0)
    for size, channels in [(28, 1), (32, 3), (64, 3)]:
        g, d = Generator(16, size, channels, hidden=32), Discriminator(size, channels, units=16)
        x = g(torch.randn(3, 16))
        assert x.shape == (3, channels, size, size)
        assert x.abs().max() <= 1  # tanh: kompete's [-1, 1] (data.augment.to_float)
        assert d(x).shape == (3,)


def test_width_keys_scale_the_papers_widths():
    models = MODELS.get("vanilla")(_cfg(g=32, d=16), 0)
    assert models.generator.net[0].out_features == 600
    assert models.discriminator.features[2].units == 60


def test_maxout_takes_the_largest_of_each_units_pieces():
    m = Maxout(2, units=2, pieces=2)  # rows 0-1 are unit 0's pieces, rows 2-3 unit 1's
    with torch.no_grad():
        m.linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]))
        m.linear.bias.zero_()
    x = torch.tensor([[2.0, 1.0], [-3.0, 0.5]])
    assert torch.equal(m(x), torch.tensor([[2.0, -1.0], [0.5, 3.0]]))


def test_dropout_acts_in_training_only():
    torch.manual_seed(0)
    d = Discriminator(8, 1, units=16, pieces=2)
    x = torch.randn(4, 1, 8, 8)
    assert not torch.equal(d(x), d(x))
    d.eval()
    assert torch.equal(d(x), d(x))


def test_conditional_model_uses_the_class():
    torch.manual_seed(0)
    models = MODELS.get("vanilla_cond")(_cfg(8, g=8, d=8, z_dim=4), 3)
    assert models.conditional and models.n_classes == 3
    g, d = models.generator, models.discriminator.eval()
    z = torch.randn(2, 4)
    a, b = torch.zeros(2, dtype=torch.long), torch.full((2,), 2)
    assert not torch.equal(g(z, a), g(z, b))
    x = g(z, a)
    assert not torch.equal(d(x, a), d(x, b))


def test_every_weight_learns_and_starts_from_normal_0_02():
    torch.manual_seed(0)
    models = MODELS.get("vanilla")(_cfg(16, z_dim=32), 0)
    g, d = models.generator, models.discriminator
    d(g(torch.randn(4, 32))).mean().backward()
    assert all(p.grad is not None for p in [*g.parameters(), *d.parameters()])
    w = torch.cat([m.weight.flatten() for m in [*g.modules(), *d.modules()] if isinstance(m, nn.Linear)])
    assert abs(w.std().item() - 0.02) < 1e-3


def test_a_few_steps_fit_a_single_grey_image():
    # the smallest honest learning check: G (non-saturating BCE against this D) moves towards the data
    torch.manual_seed(0)
    g, d = Generator(8, 8, 1, hidden=64), Discriminator(8, 1, units=32, pieces=5)
    target = torch.linspace(-0.8, 0.8, 64).view(1, 1, 8, 8)
    opt_g, opt_d = (torch.optim.Adam(m.parameters(), 2e-3, betas=(0.5, 0.999)) for m in (g, d))
    bce = nn.functional.binary_cross_entropy_with_logits
    z = torch.randn(32, 8)
    start = (g(z) - target).abs().mean().item()
    for _ in range(300):
        fake = g(torch.randn(32, 8))
        real = target.expand(32, -1, -1, -1)
        loss_d = bce(d(real), torch.ones(32)) + bce(d(fake.detach()), torch.zeros(32))
        opt_d.zero_grad(), loss_d.backward(), opt_d.step()
        loss_g = bce(d(fake), torch.ones(32))
        opt_g.zero_grad(), loss_g.backward(), opt_g.step()
    assert (g(z) - target).abs().mean().item() < start / 2


def test_builds_from_a_real_competition_config():
    from kompete.config import load_config

    cfg = load_config("sample-dogs", ["train.g_channels=8", "train.d_channels=8"])
    models = MODELS.get("vanilla")(cfg, 0)
    size = cfg.data.image_size
    assert models.generator(torch.randn(2, cfg.algo.z_dim)).shape == (2, 3, size, size)
