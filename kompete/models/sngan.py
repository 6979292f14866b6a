"""Spectral-normalised GAN (Miyato et al. 2018) with the options strong dog entries used.

G: linear -> 4x4, then (nearest upsample, 3x3 conv, pixelwise norm, LeakyReLU) blocks, self-attention at 32x32.
D: (3x3 conv, 4x4 stride-2 conv) blocks, self-attention at 32x32, minibatch standard deviation, linear.
Every conv and linear is spectral-normalised. Conditional variants: class embedding concatenated to z in G,
projection discriminator in D.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm as sn

from kompete.config import Config
from kompete.models.base import gan_family, up_steps


class PixelNorm(nn.Module):
    """Normalise each pixel's feature vector to unit RMS (ProGAN)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-8)


class SelfAttention(nn.Module):
    """SAGAN self-attention; starts as the identity (gamma = 0)."""

    def __init__(self, channels: int):
        super().__init__()
        inner = max(1, channels // 8)
        self.query = sn(nn.Conv2d(channels, inner, 1, bias=False))
        self.key = sn(nn.Conv2d(channels, inner, 1, bias=False))
        self.value = sn(nn.Conv2d(channels, channels, 1, bias=False))
        self.gamma = nn.Parameter(torch.zeros(()))

    def attention_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v as [n, 1 head, hw, c], q and k zero-padded from c/8 to c channels.

        The fused SDPA kernels take only 4-D inputs, and flash attention (CPU, and CUDA sm_80+) only equal
        head sizes; with 3-D inputs or c/8 against c every device fell back to the unfused maths kernel
        (2.2x slower forward and backward on a CPU at 32x32). Zero channels add nothing to q.k: same result.
        The kernels also want the channels innermost: free under channels_last (CUDA), a copy otherwise.
        """
        q, k, v = (m(x).flatten(2).transpose(1, 2).unsqueeze(1) for m in (self.query, self.key, self.value))
        pad = v.shape[-1] - q.shape[-1]
        return F.pad(q, (0, pad)), F.pad(k, (0, pad)), v.contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        out = F.scaled_dot_product_attention(*self.attention_inputs(x), scale=1.0)  # n, 1, hw, c
        return x + self.gamma * out.squeeze(1).transpose(1, 2).reshape(n, c, h, w)


class MinibatchStd(nn.Module):
    """Append the mean standard deviation across a group of samples as one extra feature map."""

    def __init__(self, group: int = 4):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group, n)
        while n % g:
            g -= 1
        y = x.float().reshape(g, -1, c, h, w)
        y = (y.var(0, unbiased=False) + 1e-8).sqrt().mean((1, 2, 3))  # [n/g]
        y = y.to(x.dtype).repeat(g)[:, None, None, None].expand(n, 1, h, w)
        return torch.cat([x, y], 1)


class Generator(nn.Module):
    def __init__(self, z_dim: int, channels: int, image_size: int, n_classes: int = 0,
                 attention: bool = True, pixel_norm: bool = True):
        super().__init__()
        k = up_steps(image_size)
        self.z_dim, self.n_classes = z_dim, n_classes
        self.embed = nn.Embedding(n_classes, z_dim) if n_classes else None
        width = channels * 2 ** (k - 1)
        self.width = width
        self.fc = sn(nn.Linear(z_dim * (2 if n_classes else 1), width * 16))
        blocks: list[nn.Module] = []
        res = 4
        for _ in range(k):
            out = max(channels // 2, width // 2) if res * 2 < image_size else channels
            norm = PixelNorm() if pixel_norm else nn.BatchNorm2d(out)
            blocks += [nn.Upsample(scale_factor=2, mode="nearest"), sn(nn.Conv2d(width, out, 3, 1, 1)), norm,
                       nn.LeakyReLU(0.2, True)]
            width, res = out, res * 2
            if attention and res == 32:
                blocks.append(SelfAttention(width))
        self.blocks = nn.Sequential(*blocks)
        self.to_rgb = nn.Sequential(sn(nn.Conv2d(width, 3, 3, 1, 1)), nn.Tanh())

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], 1)
        h = F.leaky_relu(self.fc(z), 0.2).view(z.shape[0], self.width, 4, 4)
        return self.to_rgb(self.blocks(h))


class Discriminator(nn.Module):
    def __init__(self, channels: int, image_size: int, n_classes: int = 0, attention: bool = True,
                 minibatch_std: bool = True):
        super().__init__()
        k = up_steps(image_size)
        layers: list[nn.Module] = [sn(nn.Conv2d(3, channels, 3, 1, 1)), nn.LeakyReLU(0.2, True)]
        width, res = channels, image_size
        for _ in range(k):
            out = width * 2
            layers += [sn(nn.Conv2d(width, width, 3, 1, 1)), nn.LeakyReLU(0.2, True),
                       sn(nn.Conv2d(width, out, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
            width, res = out, res // 2
            if attention and res == 32:
                layers.append(SelfAttention(width))
        if minibatch_std:
            layers.append(MinibatchStd())
        layers += [sn(nn.Conv2d(width + (1 if minibatch_std else 0), width, 3, 1, 1)), nn.LeakyReLU(0.2, True)]
        self.features = nn.Sequential(*layers)
        self.out = sn(nn.Linear(width * 16, 1))
        self.embed = sn(nn.Embedding(n_classes, width * 16)) if n_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x).flatten(1)
        logit = self.out(h).squeeze(1)
        if self.embed is not None:
            logit = logit + (self.embed(y) * h).sum(1)
        return logit


def _nets(cfg: Config, n_classes: int) -> tuple[nn.Module, nn.Module]:
    t, g, size = cfg.train, cfg.algo, cfg.data.image_size
    return (Generator(g.z_dim, t.g_channels, size, n_classes, g.self_attention, g.pixel_norm),
            Discriminator(t.d_channels, size, n_classes, g.self_attention, g.minibatch_std))


gan_family("sngan", _nets)
