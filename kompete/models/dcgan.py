"""DCGAN (Radford et al. 2015): transposed convolutions with batch norm in G, strided convs with LeakyReLU in D.

The conditional variant embeds the class into G's input and scores with a projection discriminator
(Miyato & Koyama 2018): D(x, y) = linear(h) + <embed(y), h>.

G's batch norm normalises with the statistics of the batch it is given, in training and at generation alike,
as the reference DCGAN code does (it never calls `netG.eval()`). Running statistics start at mean 0, variance 1
and move 10% a step, while a freshly initialised G's activations have a variance near 0.01: after a short run
eval mode divided by a variance several times too large and wrote low-contrast grey images (after 20 steps of
the DCGAN paper's recipe on sample-dogs at 32 px, a mean pixel spread of 6.8/255 against 12.8/255 with batch
statistics; real images 61/255). The cost: an image depends on the others of its batch, so generation is
deterministic for a given seed *and* generate.batch_size (keep it >= 16).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from kompete.config import Config
from kompete.models.base import gan_family, up_steps


class BatchStatNorm2d(nn.BatchNorm2d):
    """Batch norm that always normalises with the batch's own statistics (see the module docstring); the
    running statistics are still tracked in training, so checkpoints keep nn.BatchNorm2d's keys."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        track = self.training and self.track_running_stats
        momentum = self.momentum if self.momentum is not None else 0.0
        if track:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # a cumulative average, as nn.BatchNorm2d
                momentum = 1.0 / float(self.num_batches_tracked)
        return F.batch_norm(x, self.running_mean if track else None, self.running_var if track else None,
                            self.weight, self.bias, True, momentum, self.eps)


class Generator(nn.Module):
    def __init__(self, z_dim: int, channels: int, image_size: int, n_classes: int = 0):
        super().__init__()
        k = up_steps(image_size)
        self.z_dim, self.n_classes = z_dim, n_classes
        self.embed = nn.Embedding(n_classes, z_dim) if n_classes else None
        width = channels * 2 ** (k - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim * (2 if n_classes else 1), width, 4, 1, 0, bias=False),
                                   BatchStatNorm2d(width), nn.ReLU(True)]
        for _ in range(k - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), BatchStatNorm2d(width // 2),
                       nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, 3, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], 1)
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    def __init__(self, channels: int, image_size: int, n_classes: int = 0):
        super().__init__()
        k = up_steps(image_size)
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        width = channels
        for _ in range(k - 1):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2),
                       nn.LeakyReLU(0.2, True)]
            width *= 2
        self.features = nn.Sequential(*layers)
        self.out = nn.Conv2d(width, 1, 4, 1, 0)
        self.embed = nn.Embedding(n_classes, width) if n_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        logit = self.out(h).flatten(1).squeeze(1)
        if self.embed is not None:
            logit = logit + (self.embed(y) * h.sum((2, 3))).sum(1)
        return logit


def _nets(cfg: Config, n_classes: int) -> tuple[nn.Module, nn.Module]:
    t, size = cfg.train, cfg.data.image_size
    return Generator(cfg.algo.z_dim, t.g_channels, size, n_classes), Discriminator(t.d_channels, size, n_classes)


gan_family("dcgan", _nets)
