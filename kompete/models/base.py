"""What a GAN-family model builder returns, and the helper that registers a family in the gan algorithm's
network registry (its names and options are listed torch-free in kompete.algorithms.gan.FAMILIES)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

from kompete.errors import ConfigError
from kompete.registry import Registry


GAN_NETWORKS: Registry = Registry("gan network")  # train.model -> build(cfg, n_classes) -> GanModels


@dataclass
class GanModels:
    generator: nn.Module
    discriminator: nn.Module
    z_dim: int
    conditional: bool = False
    n_classes: int = 0


def gan_family(name: str, make_nets: Callable) -> None:
    """Register `name` and its class-conditional twin `name_cond` (the gan algorithm lists both in its spec).

    `make_nets(cfg, n_classes)` returns (G, D); n_classes is 0 for the unconditional model.
    """
    def build(conditional: bool) -> Callable:
        def builder(cfg, n_classes: int) -> GanModels:
            nc = n_classes if conditional else 0
            g, d = make_nets(cfg, nc)
            init_weights(g)
            init_weights(d)
            return GanModels(g, d, cfg.algo.z_dim, conditional, nc)

        builder.__name__ = builder.__qualname__ = f"build_{name}{'_cond' if conditional else ''}"
        return builder

    GAN_NETWORKS.register(name)(build(False))
    GAN_NETWORKS.register(f"{name}_cond")(build(True))


def up_steps(image_size: int) -> int:
    """Doublings from 4x4 to image_size; image_size must be 4 * 2**k with k >= 1."""
    k = math.log2(image_size / 4) if image_size >= 8 else -1
    if k != int(k) or k < 1:
        raise ConfigError(f"image size {image_size} is not supported by the GAN models; use 8, 16, 32, 64, 128 ...")
    return int(k)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """DCGAN/CycleGAN initialisation: N(0, std) weights, zero biases, N(1, std) affine norm scales."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            # spectral-normalised layers keep the trainable weight in `weight_orig`
            nn.init.normal_(getattr(m, "weight_orig", m.weight), 0.0, std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.affine:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


def without_batch_norm(module: nn.Module) -> nn.Module:
    """Every BatchNorm2d swapped for a per-sample layer norm (GroupNorm with one group), in place.

    A gradient penalty is per sample; batch norm mixes the samples of a batch (the WGAN-GP paper's advice).
    """
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.GroupNorm(1, child.num_features))
        else:
            without_batch_norm(child)
    return module
