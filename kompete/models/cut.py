"""CUT and FastCUT networks (Park et al. 2020, "Contrastive Learning for Unpaired Image-to-Image Translation").

One ResNet generator (kompete.models.cyclegan's), one 70x70 PatchGAN, and a `PatchSampleMLP`: the
encoder's activations at a few layers are sampled at the same patch positions for the source image
(keys) and for the translated image (queries), projected by a 2-layer MLP per layer and L2-normalised;
`patchnce` (below) scores them. CUT and FastCUT share these networks; they differ in the loss
weights and the identity NCE term, which the objective owns.

The reference implementation's generator downsamples with anti-aliased (blur-pool) layers; kompete's
uses plain stride-2 convolutions, so the reference's layer indices (0, 4, 8, 12, 16) are mapped here
by meaning: the (reflection-padded) input, the output of each downsampling conv, and the outputs of
residual blocks 1 and 5 (see `nce_layers`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from kompete.errors import ConfigError
from kompete.models.base import init_weights
from kompete.models.cyclegan import PatchDiscriminator, ResnetBlock, ResnetGenerator

__all__ = ["PatchDiscriminator", "PatchSampleMLP", "ResnetGenerator", "encoder_features", "feature_channels",
           "nce_layers", "patchnce", "patchnce_loss", "translate_with_features"]


def nce_layers(generator: ResnetGenerator, blocks: Sequence[int] = (1, 5)) -> tuple[int, ...]:
    """Indices into `generator.net` of the layers CUT contrasts: padded input, each downsampling, some blocks.

    `blocks` counts residual blocks from 1 (the reference uses the outputs of blocks 1 and 5 of 9).
    """
    net = generator.net
    downs = [i for i, m in enumerate(net) if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
    res = [i for i, m in enumerate(net) if isinstance(m, ResnetBlock)]
    if any(not 1 <= b <= len(res) for b in blocks):
        raise ConfigError(f"the NCE layers use residual blocks {tuple(blocks)}, but the generator has {len(res)}")
    return (0, *downs, *(res[b - 1] for b in blocks))


def feature_channels(generator: ResnetGenerator, layers: Sequence[int]) -> list[int]:
    """Channels of each chosen layer's output, read from the layers (no forward pass needed)."""
    channels, ch = [], generator.net[1].in_channels  # the padded input has the image's channels
    by_index = {}
    for i, m in enumerate(generator.net):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            ch = m.out_channels
        by_index[i] = ch
    for i in layers:
        if i not in by_index:
            raise ValueError(f"layer {i} is not in the generator (it has {len(generator.net)} layers)")
        channels.append(by_index[i])
    return channels


def encoder_features(generator: ResnetGenerator, x: torch.Tensor, layers: Sequence[int]) -> list[torch.Tensor]:
    """The outputs of `generator.net[i]` for i in `layers` (sorted), running only as far as the last one."""
    return _run_layers(generator, x, layers, stop_at_last=True)[1]


def translate_with_features(generator: ResnetGenerator, x: torch.Tensor,
                            layers: Sequence[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """generator(x) and the chosen layers' outputs from the same pass (the keys come free with the fake)."""
    return _run_layers(generator, x, layers, stop_at_last=False)


def _run_layers(generator: ResnetGenerator, x: torch.Tensor, layers: Sequence[int],
                stop_at_last: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    _check_layers(layers, len(generator.net))
    wanted, feats = set(layers), []
    for i, layer in enumerate(generator.net):
        x = layer(x)
        if i in wanted:
            feats.append(x)
        if stop_at_last and i == layers[-1]:
            break
    return x, feats


def _check_layers(layers: Sequence[int], n: int) -> None:
    if not layers or list(layers) != sorted(set(layers)) or layers[0] < 0 or layers[-1] >= n:
        raise ValueError(f"layers must be distinct, increasing indices in 0..{n - 1}; got {tuple(layers)}")


class PatchSampleMLP(nn.Module):
    """Samples patch positions from each feature map and projects them: one Linear-ReLU-Linear head per layer.

    Built explicitly from the layers' channel counts (the reference builds its heads lazily at the first
    batch, which leaves the optimiser and the state_dict undefined until then).
    """

    def __init__(self, in_channels: Sequence[int], nc: int = 256, init_gain: float = 0.02):
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(c, nc), nn.ReLU(inplace=True), nn.Linear(nc, nc)) for c in in_channels)
        init_weights(self, init_gain)

    def forward(self, feats: Sequence[torch.Tensor], num_patches: int = 256,
                patch_ids: Sequence[torch.Tensor] | None = None,
                generator: torch.Generator | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Return ([B, P, nc] unit vectors per layer, the patch ids used per layer).

        Pass the ids returned for the keys (source image) when sampling the queries (translated image), so
        query i and key i sit at the same position. One set of ids serves every image of the batch, as in
        the reference. Ids come from the CPU generator (`generator`, else torch's global one), so a seed
        gives the same patches on any device and the trainer's CPU RNG state covers them.
        """
        if len(feats) != len(self.heads):
            raise ValueError(f"got {len(feats)} feature maps for {len(self.heads)} heads")
        if patch_ids is not None and len(patch_ids) != len(feats):
            raise ValueError(f"got {len(patch_ids)} patch id sets for {len(feats)} feature maps")
        if num_patches < 1:
            raise ConfigError(f"num_patches must be at least 1; got {num_patches}")
        samples, ids = [], []
        for i, (feat, head) in enumerate(zip(feats, self.heads)):
            flat = feat.flatten(2).transpose(1, 2)  # B, H*W, C
            if patch_ids is None:
                idx = torch.randperm(flat.shape[1], generator=generator)[:num_patches].to(feat.device)
            else:
                idx = patch_ids[i]
            z = head(flat[:, idx, :]).float()
            with torch.autocast(device_type=z.device.type, enabled=False):  # fp16 sums of squares overflow
                samples.append(z / (z.norm(dim=-1, keepdim=True) + 1e-7))
            ids.append(idx)
        return samples, ids


class CutNetworks(nn.Module):
    """G, D and the patch heads of CUT / FastCUT as one module, so one state_dict holds them all.

    Plain arguments (the algorithm's config section maps onto them); `layers` are generator.net indices.
    """

    def __init__(self, image_size: int, g_channels: int = 64, d_channels: int = 64, n_blocks: int = 9,
                 d_layers: int = 3, nc: int = 256, init_gain: float = 0.02, blocks: Sequence[int] = (1, 5)):
        super().__init__()
        if image_size % 4:
            raise ConfigError(f"the ResNet generator needs an image size divisible by 4; got {image_size}")
        self.generator = ResnetGenerator(g_channels, n_blocks)
        self.discriminator = PatchDiscriminator(d_channels, d_layers)
        self.layers = nce_layers(self.generator, blocks)
        self.heads = PatchSampleMLP(feature_channels(self.generator, self.layers), nc, init_gain)
        init_weights(self.generator, init_gain)
        init_weights(self.discriminator, init_gain)


# --------------------------------------------------------------------------- PatchNCE
# Each query patch must pick its own key patch out of the same image's patches. Queries are the translated
# image's projected features, keys the source image's at the same positions (PatchSampleMLP gives both,
# [B, P, C], unit length). Negatives come from the same image only (the reference's
# nce_includes_all_negatives_from_minibatch=False, its default for CUT).

# The reference fills each query's similarity with its own key among the negatives with -10 before
# dividing by the temperature: exp(-10 / 0.07) is zero in fp32, so that column drops out of the softmax.
_SELF_SIMILARITY = -10.0


def patchnce_loss(query: torch.Tensor, key: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Mean cross-entropy, over all B*P patches, of picking the positive key (class 0) among P candidates.

    query, key: [B, P, C]. The keys are detached (they are targets). Computed in fp32 whatever the inputs,
    so it can be called inside autocast.
    """
    if query.shape != key.shape or query.dim() != 3:
        raise ValueError(f"query and key must both be [B, P, C]; got {tuple(query.shape)} and {tuple(key.shape)}")
    q, k = query.float(), key.detach().float()
    # autocast would run the bmm in half precision even on fp32 tensors: switch it off here
    with torch.autocast(device_type=q.device.type, enabled=False):
        b, p, _ = q.shape
        positive = (q * k).sum(-1, keepdim=True)  # B, P, 1
        negative = torch.bmm(q, k.transpose(1, 2))  # B, P, P: query i against every key of its image
        eye = torch.eye(p, dtype=torch.bool, device=q.device)
        negative = negative.masked_fill(eye, _SELF_SIMILARITY)  # key i is the positive, not a negative
        logits = torch.cat([positive, negative], -1).flatten(0, 1) / temperature  # B*P, 1+P
        target = torch.zeros(b * p, dtype=torch.long, device=q.device)
        return F.cross_entropy(logits, target)


def patchnce(queries: Sequence[torch.Tensor], keys: Sequence[torch.Tensor], temperature: float = 0.07) -> torch.Tensor:
    """The mean of `patchnce_loss` over layers (the reference's calculate_NCE_loss, before lambda_NCE)."""
    if not queries or len(queries) != len(keys):
        raise ValueError(f"need one key set per query set; got {len(queries)} and {len(keys)}")
    return torch.stack([patchnce_loss(q, k, temperature) for q, k in zip(queries, keys)]).mean()
