"""PatchNCE (Park et al. 2020): each query patch must pick its own key patch out of the same image's patches.

Queries are the translated image's projected features, keys the source image's at the same positions
(kompete.models.cut.PatchSampleMLP gives both, [B, P, C], unit length). Negatives come from the same
image only (the reference's nce_includes_all_negatives_from_minibatch=False, its default for CUT).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

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
