"""BigGAN / SAGAN-style residual networks (Brock et al. 2018; Zhang et al. 2018), cut down as the 5th-place dog
entry cut down BigGAN-PyTorch (notes/winning-recipes.md).

G: linear(z) -> 4x4, then residual up-blocks (BN, ReLU, nearest x2, 3x3 conv, BN, ReLU, 3x3 conv; shortcut x2 +
1x1 conv), optional self-attention at 32x32, BN, ReLU, 3x3 conv, tanh. Every BN is conditional: its gain and
bias are linear functions of c = [z, shared(y)] (BigGAN-deep's way: the whole z and one class embedding shared
by every block, rather than z split per block); the unconditional model conditions on z alone.
D: residual down-blocks (ReLU, 3x3 conv, ReLU, 3x3 conv, 2x2 average pool; shortcut 1x1 conv + pool; the first
block starts without ReLU), optional self-attention at 32x32, ReLU, sum over space, linear, plus the projection
<embed(y), h> for the conditional model (Miyato & Koyama 2018).
Every conv, linear and embedding of G and D is spectral-normalised and orthogonally initialised, as in BigGAN.
G's BN uses batch statistics at generation too (as dcgan: see its docstring).

Widths follow train.g_channels / d_channels like the other families: G starts at g_channels * 2**(k-1) and
halves each block down to g_channels; D doubles from d_channels. `gan.self_attention` adds the attention block.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm as sn

from kompete.config import Config
from kompete.models.base import GAN_NETWORKS, GanModels, up_steps
from kompete.models.dcgan import BatchStatNorm2d
from kompete.models.sngan import SelfAttention

ATTENTION_SIDE = 32


class ConditionalBatchNorm(nn.Module):
    """Batch norm without its own affine; gain 1 + W_g c and bias W_b c from the conditioning vector c."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.norm = BatchStatNorm2d(channels, affine=False)
        self.gain = sn(nn.Linear(cond_dim, channels, bias=False))
        self.bias = sn(nn.Linear(cond_dim, channels, bias=False))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * (1 + self.gain(c))[:, :, None, None] + self.bias(c)[:, :, None, None]


class UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int, cond_dim: int):
        super().__init__()
        self.bn1, self.bn2 = ConditionalBatchNorm(cin, cond_dim), ConditionalBatchNorm(cout, cond_dim)
        self.conv1, self.conv2 = sn(nn.Conv2d(cin, cout, 3, 1, 1)), sn(nn.Conv2d(cout, cout, 3, 1, 1))
        self.skip = sn(nn.Conv2d(cin, cout, 1))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, c)), scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), c)))
        return h + self.skip(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DownBlock(nn.Module):
    def __init__(self, cin: int, cout: int, first: bool):
        super().__init__()
        self.first = first  # the image itself: no ReLU before the first conv, pool before the shortcut conv
        self.conv1, self.conv2 = sn(nn.Conv2d(cin, cout, 3, 1, 1)), sn(nn.Conv2d(cout, cout, 3, 1, 1))
        self.skip = sn(nn.Conv2d(cin, cout, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x if self.first else F.relu(x))
        h = F.avg_pool2d(self.conv2(F.relu(h)), 2)
        skip = self.skip(F.avg_pool2d(x, 2)) if self.first else F.avg_pool2d(self.skip(x), 2)
        return h + skip


class Generator(nn.Module):
    def __init__(self, z_dim: int, channels: int, image_size: int, n_classes: int = 0, attention: bool = True):
        super().__init__()
        k = up_steps(image_size)
        self.z_dim, self.n_classes = z_dim, n_classes
        self.shared = sn(nn.Embedding(n_classes, z_dim)) if n_classes else None
        cond_dim = z_dim * (2 if n_classes else 1)
        width = channels * 2 ** (k - 1)
        self.width = width
        self.fc = sn(nn.Linear(z_dim, width * 16))
        self.blocks = nn.ModuleList()
        self.attention = nn.ModuleDict()  # by block index: after the block that reaches 32x32
        res = 4
        for i in range(k):
            out = max(channels, width // 2)
            self.blocks.append(UpBlock(width, out, cond_dim))
            width, res = out, res * 2
            if attention and res == ATTENTION_SIDE:
                self.attention[str(i)] = SelfAttention(width)
        self.out_bn = BatchStatNorm2d(width)
        self.to_rgb = sn(nn.Conv2d(width, 3, 3, 1, 1))

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        c = torch.cat([z, self.shared(y)], 1) if self.shared is not None else z
        h = self.fc(z).view(z.shape[0], self.width, 4, 4)
        for i, block in enumerate(self.blocks):
            h = block(h, c)
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        return torch.tanh(self.to_rgb(F.relu(self.out_bn(h))))


class Discriminator(nn.Module):
    def __init__(self, channels: int, image_size: int, n_classes: int = 0, attention: bool = True):
        super().__init__()
        k = up_steps(image_size)
        layers: list[nn.Module] = []
        width, res = 3, image_size
        for i in range(k):
            out = channels * 2 ** i
            layers.append(DownBlock(width, out, first=i == 0))
            width, res = out, res // 2
            if attention and res == ATTENTION_SIDE:
                layers.append(SelfAttention(width))
        self.features = nn.Sequential(*layers)
        self.out = sn(nn.Linear(width, 1))
        self.embed = sn(nn.Embedding(n_classes, width)) if n_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(self.features(x)).sum((2, 3))
        logit = self.out(h).squeeze(1)
        if self.embed is not None:
            logit = logit + (self.embed(y) * h).sum(1)
        return logit


def orthogonal_init(module: nn.Module) -> None:
    """BigGAN's initialisation: orthogonal weights (the trainable `weight_orig` under spectral norm), zero biases;
    the self-attention gain stays 0 so attention starts as the identity."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
            nn.init.orthogonal_(getattr(m, "weight_orig", m.weight))
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)


def _builder(conditional: bool):
    def build(cfg: Config, n_classes: int) -> GanModels:
        nc = n_classes if conditional else 0
        t, g, size = cfg.train, cfg.algo, cfg.data.image_size
        G = Generator(g.z_dim, t.g_channels, size, nc, g.self_attention)
        D = Discriminator(t.d_channels, size, nc, g.self_attention)
        orthogonal_init(G)
        orthogonal_init(D)
        return GanModels(G, D, g.z_dim, conditional, nc)

    build.__name__ = build.__qualname__ = f"build_biggan{'_cond' if conditional else ''}"
    return build


# registered directly, not through gan_family: that applies the DCGAN N(0, 0.02) init, BigGAN's is orthogonal
GAN_NETWORKS.register("biggan")(_builder(False))
GAN_NETWORKS.register("biggan_cond")(_builder(True))
