"""Inception pool3 features, batched from uint8 arrays, with Kaggle's or pytorch-fid's input path.

pytorch-fid's `InceptionV3([3])` in eval mode and fp32, fed images scaled to [0, 1]. `preprocess="pytorch-fid"`:
the model resizes to 299 (half-pixel bilinear) and scales to [-1, 1], as pytorch-fid does; `preprocess="tf"`:
the model is built with both off and wrapped in `preprocess.TFInput` (Kaggle's TF graph: TF1 bilinear to 299,
(x - 128) / 128), on the same device. On CUDA, TF32 is switched off while it runs (convolutions would
otherwise round to 10-bit mantissas and the metric would drift).

`load_inception` builds a network once per process for each (weights file, device, input path) and hands the
same one to every caller after that (`kompete score` in a loop, in-training evaluation, the reference): the
network is frozen and in eval mode, and callers only run it.
"""

from __future__ import annotations

from typing import Iterable
from unittest import mock

import numpy as np
import torch
from torch import nn

from kompete.metrics.device import exact_float32
from kompete.metrics.inception import build_fid_inception, load_fid_weights
from kompete.metrics.preprocess import PREPROCESS, TFInput
from kompete.metrics.weights import WeightsSource, file_identity, load_state_dict


def _bare_fid_inception() -> nn.Module:
    """pytorch-fid's FID Inception structure with no weights loaded (its own builder always downloads)."""
    from pytorch_fid import inception as pfi

    net = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pfi.FIDInceptionE_1(1280)
    net.Mixed_7c = pfi.FIDInceptionE_2(2048)
    return net


def build_inception(state_dict: dict[str, torch.Tensor] | None = None, seed: int | None = None,
                    device: str | torch.device = "cpu", resize_input: bool = True,
                    normalize_input: bool = True, preprocess: str = "pytorch-fid") -> nn.Module:
    """pytorch-fid `InceptionV3([3])`, eval mode, with the given Inception3 state dict.

    Without a state dict the weights are PyTorch's default initialisation under `seed`: the same
    architecture for tests, never for scores. `preprocess="tf"` builds it with resize_input and
    normalize_input off and puts Kaggle's TF input path in front (the flags then do nothing).
    """
    if preprocess not in PREPROCESS:
        raise ValueError(f"preprocess must be one of {PREPROCESS}, got {preprocess!r}")
    if preprocess == "tf":
        inner = build_inception(state_dict, seed, device, resize_input=False, normalize_input=False)
        return TFInput(inner).eval().to(device)
    try:
        from pytorch_fid.inception import InceptionV3
    except ImportError:  # Kaggle's image has no pytorch-fid: kompete's copy of the same graph
        return build_fid_inception(state_dict, seed, device, resize_input, normalize_input)
    if seed is not None:
        torch.manual_seed(seed)
    inner = _bare_fid_inception()
    with mock.patch("pytorch_fid.inception.fid_inception_v3", lambda: inner):
        model = InceptionV3([3], resize_input=resize_input, normalize_input=normalize_input)
    if state_dict is not None:
        load_fid_weights(inner, state_dict, "pytorch-fid's FID Inception")
    return model.eval().to(device)


_LOADED: dict[tuple, nn.Module] = {}  # (weights file identity, device, preprocess) -> the built network
_MAX_LOADED = 2  # a CPU and a GPU copy, or both input paths; more is a bench, which may rebuild


def load_inception(source: WeightsSource, device: str | torch.device = "cpu", *, preprocess: str) -> nn.Module:
    """The FID Inception with `source`'s weights and the given input path (`metric.preprocess`), built once
    per process and shared (frozen, eval mode: callers only run it)."""
    state = load_state_dict(source)  # read once per process too; a missing file is a WeightsError here
    key = (file_identity(source.path), str(torch.device(device)), preprocess)
    model = _LOADED.get(key)
    if model is None:
        model = build_inception(state, device=device, preprocess=preprocess)
        while len(_LOADED) >= _MAX_LOADED:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = model
    return model


class FeatureExtractor:
    """Feed uint8 (or float32 0-255) [B, H, W, 3] batches of any size; features stay on the device until `result()`.

    Batches are regrouped to `batch_size` so decoding (which hands over whatever it has) and the
    network (which wants a steady batch) are decoupled. No host sync per batch: on a GPU the CPU goes
    on decoding while the kernels run.
    """

    def __init__(self, model: nn.Module, batch_size: int = 50, device: str | torch.device | None = None):
        self.model = model
        self.batch_size = batch_size
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self._pending: list[np.ndarray] = []
        self._count = 0
        self._out: list[torch.Tensor] = []

    def add(self, images: np.ndarray) -> None:
        self._pending.append(images)
        self._count += len(images)
        while self._count >= self.batch_size:
            joined = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
            self._run(joined[:self.batch_size])
            rest = joined[self.batch_size:]
            self._pending, self._count = ([rest] if len(rest) else []), len(rest)

    @torch.inference_mode()
    def _run(self, batch: np.ndarray) -> None:
        with exact_float32(self.device):
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device, non_blocking=True)
            x = x.permute(0, 3, 1, 2).float().div(255.0)  # not in place: a float32 batch shares the caller's memory
            if self.device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            self._out.append(self.model(x)[0].flatten(1))

    def result(self) -> np.ndarray:
        """Pool3 features [N, 2048] float32 of everything added, in order."""
        if self._count:
            self._run(np.concatenate(self._pending))
            self._pending, self._count = [], 0
        if not self._out:
            return np.zeros((0, 2048), np.float32)
        return torch.cat(self._out).float().cpu().numpy()


def extract_features(model: nn.Module, images: np.ndarray | Iterable[np.ndarray], batch_size: int = 50,
                     device: str | torch.device | None = None) -> np.ndarray:
    """Pool3 features [N, 2048] float32 of uint8 HxWx3 images (as pytorch-fid's get_activations computes them)."""
    extractor = FeatureExtractor(model, batch_size, device)
    for batch in ([images] if isinstance(images, np.ndarray) else images):
        extractor.add(batch)
    return extractor.result()
