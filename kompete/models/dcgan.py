"""DCGAN (Radford et al. 2015): transposed convolutions with batch norm in G, strided convs with LeakyReLU in D.

The conditional variant embeds the class into G's input and scores with a projection discriminator
(Miyato & Koyama 2018): D(x, y) = linear(h) + <embed(y), h>.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from kompete.config import Config
from kompete.models.base import gan_family, up_steps


class Generator(nn.Module):
    def __init__(self, z_dim: int, channels: int, image_size: int, n_classes: int = 0):
        super().__init__()
        k = up_steps(image_size)
        self.z_dim, self.n_classes = z_dim, n_classes
        self.embed = nn.Embedding(n_classes, z_dim) if n_classes else None
        width = channels * 2 ** (k - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim * (2 if n_classes else 1), width, 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(width), nn.ReLU(True)]
        for _ in range(k - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2),
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
