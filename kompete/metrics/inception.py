"""pytorch-fid's FID Inception graph without pytorch-fid, for Kaggle's image (which does not ship it).

The same torchvision Inception3 (1008 classes, no aux head, no init) with the same four patched block types
(TF's average pooling without padded zeros; max pooling in the last block), wrapped like pytorch-fid's
`InceptionV3([3])`: bilinear resize to 299 (align_corners=False), [0, 1] -> [-1, 1], pool3 features. Module
names match pytorch-fid's, so the same state dict loads; tests/test_kernel_reality.py checks the outputs are
equal to pytorch-fid's on the same weights. Only torch and torchvision are needed (both preinstalled on Kaggle).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import inception as tvi


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)  # TF's padding


class FIDInceptionA(tvi.InceptionA):
    def forward(self, x):
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool(x))], 1)


class FIDInceptionC(tvi.InceptionC):
    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for conv in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                     self.branch7x7dbl_5):
            d = conv(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg_pool(x))], 1)


class FIDInceptionE(tvi.InceptionE):
    """pytorch-fid's FIDInceptionE_1 (average pool) or, with `max_pool`, FIDInceptionE_2."""

    def __init__(self, in_channels: int, max_pool: bool = False):
        super().__init__(in_channels)
        self.max_pool = max_pool

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat([self.branch1x1(x), b3, d, self.branch_pool(pooled)], 1)


def bare_fid_inception() -> tvi.Inception3:
    """The FID Inception3 with no weights loaded (PyTorch's default initialisation)."""
    net = tvi.Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE(1280)
    net.Mixed_7c = FIDInceptionE(2048, max_pool=True)
    return net


class FIDInceptionV3(nn.Module):
    """pytorch-fid's `InceptionV3([3])`: forward returns [pool3 features of shape (N, 2048, 1, 1)]."""

    def __init__(self, inception: tvi.Inception3, resize_input: bool = True, normalize_input: bool = True):
        super().__init__()
        self.resize_input, self.normalize_input = resize_input, normalize_input
        i = inception
        self.blocks = nn.ModuleList([
            nn.Sequential(i.Conv2d_1a_3x3, i.Conv2d_2a_3x3, i.Conv2d_2b_3x3, nn.MaxPool2d(kernel_size=3, stride=2)),
            nn.Sequential(i.Conv2d_3b_1x1, i.Conv2d_4a_3x3, nn.MaxPool2d(kernel_size=3, stride=2)),
            nn.Sequential(i.Mixed_5b, i.Mixed_5c, i.Mixed_5d, i.Mixed_6a, i.Mixed_6b, i.Mixed_6c, i.Mixed_6d,
                          i.Mixed_6e),
            nn.Sequential(i.Mixed_7a, i.Mixed_7b, i.Mixed_7c, nn.AdaptiveAvgPool2d(output_size=(1, 1))),
        ])
        for p in self.parameters():
            p.requires_grad = False

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.resize_input:
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        if self.normalize_input:
            x = 2 * x - 1
        for block in self.blocks:
            x = block(x)
        return [x]


def build_fid_inception(state_dict: dict[str, torch.Tensor] | None = None, seed: int | None = None,
                        device: str | torch.device = "cpu", resize_input: bool = True,
                        normalize_input: bool = True) -> nn.Module:
    """As `kompete.metrics.features.build_inception`, with kompete's copy of the graph."""
    if seed is not None:
        torch.manual_seed(seed)
    inner = bare_fid_inception()
    model = FIDInceptionV3(inner, resize_input, normalize_input)
    if state_dict is not None:
        load_fid_weights(inner, state_dict, "the FID Inception")
    return model.eval().to(device)


def load_fid_weights(inner: nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> None:
    """Weights into the bare FID Inception graph. The .pth files also hold the classifier (fc), which the
    pool3 features never reach; any other missing or unexpected key is a WeightsError naming `what`."""
    missing, unexpected = inner.load_state_dict(state_dict, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    unexpected = [k for k in unexpected if not k.startswith("fc.")]
    if missing or unexpected:
        from kompete.errors import WeightsError

        raise WeightsError(f"Inception weights do not fit {what}: missing {missing[:3]}, unexpected {unexpected[:3]}")
