"""Batch augmentations as torch ops, so data can live on the GPU as uint8 and be augmented there."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return x.float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounded."""
    return x.add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image of an NCHW batch left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def resize_random_crop(x: torch.Tensor, load_size: int, crop_size: int,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """CycleGAN's augmentation: resize the float NCHW batch to load_size, then one random crop per image."""
    if x.shape[-1] != load_size or x.shape[-2] != load_size:
        x = F.interpolate(x, size=(load_size, load_size), mode="bilinear", align_corners=False, antialias=True)
    if load_size == crop_size:
        return x
    n = x.shape[0]
    offsets = torch.randint(0, load_size - crop_size + 1, (n, 2), device=x.device, generator=generator)
    rows = offsets[:, 0, None] + torch.arange(crop_size, device=x.device)  # [n, crop]
    cols = offsets[:, 1, None] + torch.arange(crop_size, device=x.device)
    batch = torch.arange(n, device=x.device)[:, None, None]
    # gather the crops with advanced indexing: [n, crop, crop, C] -> NCHW
    return x.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
