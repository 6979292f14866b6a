"""The vanilla GAN (Goodfellow et al. 2014): an MLP generator and a maxout discriminator with dropout.

Widths follow the paper's MNIST model (its pylearn2 mnist.yaml): G has two ReLU layers of 1200 units,
D two maxout layers of 240 units x 5 pieces, dropout 0.2 on D's input and 0.5 on its hidden layers.
`train.g_channels` and `train.d_channels` scale them (their default, 64, gives the paper's widths).
G ends in tanh rather than the paper's sigmoid: kompete's images live in [-1, 1] (data.augment.to_float).
D returns logits; the sigmoid lives in the loss. Conditional variants embed the class into G's input
and add a projection term to D, as the DCGAN family does.

Being MLPs, both work at any image size (28x28 grey digits, 32 or 64 px colour).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from kompete.models.base import gan_family

PAPER_G_HIDDEN = 1200
PAPER_D_UNITS, PAPER_D_PIECES = 240, 5
PAPER_WIDTH_KEY = 64  # the train.g_channels / d_channels value that gives the paper's widths


class Maxout(nn.Module):
    """A linear layer whose `units` outputs are each the max over `pieces` affine maps."""

    def __init__(self, in_features: int, units: int, pieces: int):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).view(x.shape[0], self.units, self.pieces).amax(-1)


class Generator(nn.Module):
    def __init__(self, z_dim: int, image_size: int, channels: int = 3, hidden: int = PAPER_G_HIDDEN,
                 n_classes: int = 0):
        super().__init__()
        self.z_dim, self.n_classes = z_dim, n_classes
        self.shape = (channels, image_size, image_size)
        self.embed = nn.Embedding(n_classes, z_dim) if n_classes else None
        self.net = nn.Sequential(
            nn.Linear(z_dim * (2 if n_classes else 1), hidden), nn.ReLU(True),
            nn.Linear(hidden, hidden), nn.ReLU(True),
            nn.Linear(hidden, channels * image_size * image_size), nn.Tanh())

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], 1)
        return self.net(z).view(z.shape[0], *self.shape)


class Discriminator(nn.Module):
    def __init__(self, image_size: int, channels: int = 3, units: int = PAPER_D_UNITS, pieces: int = PAPER_D_PIECES,
                 n_classes: int = 0, input_dropout: float = 0.2, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Flatten(), nn.Dropout(input_dropout), Maxout(channels * image_size * image_size, units, pieces),
            nn.Dropout(dropout), Maxout(units, units, pieces), nn.Dropout(dropout))
        self.out = nn.Linear(units, 1)
        self.embed = nn.Embedding(n_classes, units) if n_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        logit = self.out(h).squeeze(1)
        if self.embed is not None:
            logit = logit + (self.embed(y) * h).sum(1)
        return logit


def scaled_width(paper: int, key: int) -> int:
    """The paper's width scaled by key / 64, at least 1."""
    return max(1, paper * key // PAPER_WIDTH_KEY)


def _nets(cfg, n_classes: int) -> tuple[nn.Module, nn.Module]:
    t, size = cfg.train, cfg.data.image_size
    channels = 3  # kompete's loaders hand over RGB (grey images replicated), as Inception wants them
    g = Generator(cfg.algo.z_dim, size, channels, scaled_width(PAPER_G_HIDDEN, t.g_channels), n_classes)
    d = Discriminator(size, channels, scaled_width(PAPER_D_UNITS, t.d_channels), PAPER_D_PIECES, n_classes)
    return g, d


gan_family("vanilla", _nets)
