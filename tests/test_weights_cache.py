"""Inception weights are read once per process: scoring in a loop and in-training evaluation reuse them."""

from __future__ import annotations

import pytest
import torch

from kompete.metrics import features, weights as weights_mod


def counting(monkeypatch, owner, name: str) -> list[str]:
    calls: list[str] = []
    real = getattr(owner, name)

    def wrapper(path, *args, **kwargs):
        calls.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def test_a_weights_file_is_read_again_only_when_it_changes(monkeypatch, tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"x": torch.zeros(3)}, path)
    source = weights_mod.WeightsSource(path, "pth", "test")
    reads = counting(monkeypatch, torch, "load")
    first, second = weights_mod.load_state_dict(source), weights_mod.load_state_dict(source)
    assert len(reads) == 1 and first is not second and first["x"] is second["x"]
    second["y"] = torch.ones(1)  # a caller's edit stays its own
    assert "y" not in weights_mod.load_state_dict(source)
    torch.save({"x": torch.zeros(5)}, path)  # rewritten: new size, new mtime
    assert weights_mod.load_state_dict(source)["x"].shape == (5,) and len(reads) == 2


@pytest.mark.slow  # builds two real Inception networks (about 30 s on a loaded 2-core machine)
def test_the_inception_network_is_built_once_per_device_and_input_path(monkeypatch):
    source = weights_mod.find_weights()
    module, name = (torch.jit, "load") if source.kind == "torchscript" else (torch, "load")
    weights_mod._read_state_dict.cache_clear()
    monkeypatch.setattr(features, "_LOADED", {})
    reads = counting(monkeypatch, module, name)
    one = features.load_inception(source, "cpu", preprocess="pytorch-fid")
    assert features.load_inception(source, torch.device("cpu"), preprocess="pytorch-fid") is one
    tf = features.load_inception(source, "cpu", preprocess="tf")
    assert tf is not one and len(reads) == 1
    assert source.sha256 == source.sha256 and len(source.sha256) == 64
