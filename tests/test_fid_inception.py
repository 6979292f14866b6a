"""kompete's copy of the FID Inception graph gives pytorch-fid's features on the same weights."""

from __future__ import annotations

import pytest
import torch

from kompete.metrics.inception import build_fid_inception


@pytest.mark.slow
def test_kompetes_fid_inception_equals_pytorch_fids_on_the_same_weights(one_thread):
    pytest.importorskip("pytorch_fid")  # installed by `make install`; absent only on Kaggle's image
    from kompete.metrics.features import build_inception

    torch.manual_seed(1)
    reference = build_inception(seed=0)
    state = {}
    for name, tensor in reference.blocks.state_dict().items():  # random weights that keep activations finite
        if name.endswith("conv.weight"):
            state[name] = torch.randn_like(tensor) * (2.0 / tensor[0].numel()) ** 0.5
        elif name.endswith("running_var"):
            state[name] = 1 + torch.rand_like(tensor)
        elif name.endswith(("running_mean", "bn.bias")):
            state[name] = 0.1 * torch.randn_like(tensor)
        else:
            state[name] = tensor
    reference.blocks.load_state_dict(state)
    ours = build_fid_inception(seed=5)
    ours.blocks.load_state_dict(state)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = reference(x)[0], ours(x)[0]
    assert a.shape == b.shape == (2, 2048, 1, 1)
    assert (a - b).abs().max().item() < 1e-4 * a.abs().max().item(), (a - b).abs().max()
