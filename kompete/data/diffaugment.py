"""DiffAugment (Zhao et al. 2020): differentiable colour, translation and cutout, applied to every image D sees.

Applied identically in spirit to real and fake batches (each gets its own random draw), and differentiable,
so G learns through it. Pure tensor ops on the batch's device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kompete.errors import ConfigError


def _color(x: torch.Tensor) -> torch.Tensor:
    n = x.shape[0]
    x = x + (torch.rand(n, 1, 1, 1, dtype=x.dtype, device=x.device) - 0.5)
    mean = x.mean(1, keepdim=True)
    x = (x - mean) * (torch.rand(n, 1, 1, 1, dtype=x.dtype, device=x.device) * 2) + mean
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(n, 1, 1, 1, dtype=x.dtype, device=x.device) + 0.5) + mean


def _translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    tx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    gy = torch.clamp(gy[None] + ty + 1, 0, h + 1)
    gx = torch.clamp(gx[None] + tx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, gy, gx].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h - ch + 1, (n, 1, 1), device=x.device)
    ox = torch.randint(0, w - cw + 1, (n, 1, 1), device=x.device)
    gy = torch.arange(h, device=x.device)[None, :, None]
    gx = torch.arange(w, device=x.device)[None, None, :]
    inside = (gy >= oy) & (gy < oy + ch) & (gx >= ox) & (gx < ox + cw)
    return x * (~inside)[:, None].to(x.dtype)


OPS = {"color": _color, "translation": _translation, "cutout": _cutout}


def parse_policy(policy: str) -> list[str]:
    names = [p.strip() for p in policy.split(",") if p.strip()]
    for name in names:
        if name not in OPS:
            raise ConfigError(f"unknown DiffAugment op {name!r} in train.diffaugment; choose from: {', '.join(OPS)}")
    return names


def diff_augment(x: torch.Tensor, policy: list[str]) -> torch.Tensor:
    for name in policy:
        x = OPS[name](x)
    return x
