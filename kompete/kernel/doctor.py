"""`kompete kernel doctor`: is this machine ready to push kernels and submit? Never prints a secret."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata as importlib_metadata

from kompete.errors import KompeteError


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _version(dist: str) -> str | None:
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return None


def run_checks(competition: str | None = None, online: bool = True) -> list[Check]:
    from kompete.kernel.client import KaggleClient, find_credentials

    checks: list[Check] = []
    kaggle_v, sdk_v, six_v = _version("kaggle"), _version("kagglesdk"), _version("six")
    ok = bool(kaggle_v and six_v) and kaggle_v.startswith("2.2.")
    checks.append(Check("kaggle client", ok, f"kaggle {kaggle_v or 'missing'}, kagglesdk {sdk_v or 'missing'}, "
                                              f"six {six_v or 'missing (kaggle imports it)'}; kompete wants 2.2.x"))
    try:
        import torch

        cuda = torch.cuda.is_available()
        gpus = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) or "none"
        checks.append(Check("torch", True, f"torch {torch.__version__}, CUDA {'yes' if cuda else 'no'}; GPUs: {gpus}"))
    except ImportError as exc:
        checks.append(Check("torch", False, f"not importable: {exc}"))
    try:
        creds = find_credentials()
    except KompeteError as exc:
        checks.append(Check("credentials", False, exc.render()))
        return checks
    checks.append(Check("credentials", True, f"{creds.method} from {creds.source}, user {creds.username or '?'}"))
    for warning in creds.warnings:
        checks.append(Check("credentials file permissions", False, warning))
    if competition:
        checks.append(_data_check(competition))
    if not online:
        return checks
    try:
        client = KaggleClient()
        quota = client.quota()
        checks.append(Check("Kaggle API", True, f"authenticated as {client.username or '?'}"))
        left = quota.gpu_allowed_hours - quota.gpu_used_hours
        checks.append(Check("GPU quota", left > 0, f"{quota.gpu_used_hours:.1f} of {quota.gpu_allowed_hours:.1f} h "
                                                     f"used this week; refresh {quota.refresh or '?'}"))
        if competition:
            from kompete.config import load_config

            cfg = load_config(competition)
            if cfg.data.sample is None:
                limits = client.submission_limits(cfg.name)
                joined = limits.total > 0 or limits.allowed_now > 0
                checks.append(Check("competition", joined,
                                    f"{cfg.name}: {limits.today} submitted today, {limits.allowed_now} allowed now"
                                    if joined else f"{cfg.name}: not joined (accept the rules on kaggle.com)"))
    except KompeteError as exc:
        checks.append(Check("Kaggle API", False, exc.render()))
    return checks


def _data_check(competition: str) -> Check:
    from kompete import data
    from kompete.config import load_config

    try:
        cfg = load_config(competition)
        if cfg.data.sample is not None:
            return Check("data", True, f"{cfg.name} is a sample: generated on first use")
        from kompete.data import locate

        return Check("data", True, locate.require(cfg, data.resolve_data_dir(cfg)).describe())
    except KompeteError as exc:
        return Check("data", False, exc.render())
