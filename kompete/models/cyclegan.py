"""CycleGAN (Zhu et al. 2017): two generators and two 70x70 PatchGAN discriminators.

The photo -> Monet generator `to_monet` is the one that makes the submission; `to_photo` exists for
the cycle loss. Layouts follow the reference implementation (pytorch-CycleGAN-and-pix2pix), with
reflection padding in the ResNet generator and instance norm throughout.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from kompete.config import Config
from kompete.errors import ConfigError
from kompete.models.base import init_weights

if TYPE_CHECKING:  # a type only: the algorithm's spec imports this module's users lazily
    from kompete.algorithms.cyclegan import CycleGanConfig


def _norm(channels: int) -> nn.Module:
    # affine=False, no running stats: each image is normalised by its own statistics, in training and use
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """c7s1-64, d128, d256, n_blocks x R256, u128, u64, c7s1-3, tanh (for channels=64)."""

    def __init__(self, channels: int = 64, n_blocks: int = 9, n_down: int = 2):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, channels, 7), _norm(channels), nn.ReLU(True)]
        ch = channels
        for _ in range(n_down):
            layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1), _norm(ch * 2), nn.ReLU(True)]
            ch *= 2
        layers += [ResnetBlock(ch) for _ in range(n_blocks)]
        for _ in range(n_down):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1), _norm(ch // 2),
                       nn.ReLU(True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, 3, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class UnetBlock(nn.Module):
    """One level of the U-Net: down, the inner levels, up, and the skip concatenation."""

    def __init__(self, outer: int, inner: int, sub: nn.Module | None, outermost: bool = False):
        super().__init__()
        down = nn.Conv2d(outer, inner, 4, stride=2, padding=1)
        self.outermost = outermost
        if outermost:
            up = nn.ConvTranspose2d(inner * 2, 3, 4, stride=2, padding=1)
            layers = [down, sub, nn.ReLU(True), up, nn.Tanh()]
        elif sub is None:  # innermost: a 1x1 map, where instance norm would erase everything
            up = nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1)
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), up, _norm(outer)]
        else:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1)
            layers = [nn.LeakyReLU(0.2, True), down, _norm(inner), sub, nn.ReLU(True), up, _norm(outer)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        return y if self.outermost else torch.cat([x, y], 1)


class UnetGenerator(nn.Module):
    """The pix2pix U-Net: `n_down` stride-2 levels (8 for 256x256 reaches 1x1), channels capped at 8x."""

    def __init__(self, channels: int = 64, n_down: int = 8):
        super().__init__()
        if n_down < 2:
            raise ConfigError(f"the U-Net generator needs at least 2 levels; got {n_down}")
        widths = [channels * min(2 ** i, 8) for i in range(n_down)]  # output channels of each down level
        block: nn.Module | None = None
        for i in range(n_down - 1, 0, -1):
            block = UnetBlock(widths[i - 1], widths[i], block)
        self.net = UnetBlock(3, widths[0], block, outermost=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN: with 3 layers each output sees a 70x70 patch; LSGAN scores per patch, no sigmoid."""

    def __init__(self, channels: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(channels * prev, channels * mult, 4, stride=stride, padding=1), _norm(channels * mult),
                       nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(channels * mult, 1, 4, stride=1, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_generator(c: "CycleGanConfig", image_size: int, channels: int = 64) -> nn.Module:
    if c.generator == "resnet":
        if image_size % 4:
            raise ConfigError(f"the ResNet generator needs an image size divisible by 4; got {image_size}")
        return ResnetGenerator(channels, c.n_blocks)
    n_down = c.unet_levels or int(math.log2(image_size))
    if image_size % (2 ** n_down):
        raise ConfigError(f"cyclegan.unet_levels={n_down} needs an image size divisible by {2 ** n_down}; "
                          f"got {image_size}")
    return UnetGenerator(channels, n_down)


class CycleGan(nn.Module):
    """The four networks of a CycleGAN, as one module so one state_dict holds them all."""

    def __init__(self, c: "CycleGanConfig", image_size: int, g_channels: int = 64, d_channels: int = 64):
        super().__init__()
        self.to_monet = build_generator(c, image_size, g_channels)  # photo -> painting: makes the submission
        self.to_photo = build_generator(c, image_size, g_channels)  # painting -> photo: for the cycle loss only
        self.d_monet = PatchDiscriminator(d_channels, c.d_layers)   # real paintings vs to_monet(photo)
        self.d_photo = PatchDiscriminator(d_channels, c.d_layers)   # real photos vs to_photo(painting)
        init_weights(self, c.init_gain)

    @classmethod
    def from_config(cls, cfg: Config) -> "CycleGan":
        return cls(cfg.algo, cfg.data.image_size, cfg.train.g_channels, cfg.train.d_channels)

    def discriminators_learn(self, flag: bool) -> None:
        """Freeze the discriminators for the generators' step (their gradients would be wasted work)."""
        self.d_monet.requires_grad_(flag)
        self.d_photo.requires_grad_(flag)
