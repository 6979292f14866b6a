"""Build `kernels/<slug>/`: kernel-metadata.json plus one self-contained script (kompete inside, config inside).

Only kompete's own `.py` files travel, packed deterministically (same source + config, same bytes). Nothing
else from the working tree is read, so credentials, virtual environments, caches and runs cannot leak in;
as a second line of defence the finished script is scanned for the caller's Kaggle key before it is written.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import os
import re
import subprocess
import time
import lzma
import tarfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from kompete import __version__, paths
from kompete.config import Config, config_hash, load_config
from kompete.errors import ConfigError, KompeteError

MAX_SCRIPT_BYTES = 1_000_000  # Kaggle's kernel-source limit is 1 MB
CODE_FILE = "kernel.py"
SLUG_MAX = 50
KERNEL_CHECKPOINT_MINUTES = 10  # inside a kernel, unless the config asks for more often


class BundleError(KompeteError):
    pass


@dataclass(frozen=True)
class Bundle:
    folder: Path
    kernel_id: str  # owner/slug
    script_bytes: int
    package_bytes: int  # the compressed kompete source, before base64
    config_hash: str
    build_seconds: float


def stages(cfg: Config, score: bool, resume_from: str | None = None) -> list[tuple[str, list[str]]]:
    """What the kernel runs, as kompete command lines. The kernel fills {config} (the embedded YAML), {run}
    (/kaggle/working/run), {zip} (/kaggle/working/<archive>) and {input} (/kaggle/input)."""
    train = ["train", "{config}", "--out", "{run}", "--quiet"]
    if cfg.train.checkpoint_minutes > KERNEL_CHECKPOINT_MINUTES:  # a hard kill loses at most this much
        train += ["--set", f"train.checkpoint_minutes={KERNEL_CHECKPOINT_MINUTES}"]
    if resume_from:  # expected at /kaggle/input/<slug>/run; the script looks elsewhere when it is not there
        train += ["--resume", "{input}/" + _kernel_source(resume_from).split("/")[1] + "/run"]
    train.append("--reserve-generation")  # the generate stage comes next: its time is kept from training
    steps = [("train", train),
             ("generate", ["generate", "{run}", "--out", "{zip}", "--quiet", "--fit-runtime"]),
             ("validate", ["validate", "{config}", "{zip}", *official_rules(cfg)])]
    if score:
        steps.append(("score", ["score", "{config}", "{zip}", "--json"]))  # the script keeps the JSON line
    return steps


OUTPUT_RULES = ("n_min", "n_max", "format", "image_size", "layout")


def official_rules(cfg: Config) -> list[str]:
    """`--set` items that put back the competition's own output rules where this config overrode them, so
    the kernel calls a zip valid exactly when `kompete validate COMP` would. Samples have no rules to keep."""
    try:
        own = load_config(cfg.name)
    except KompeteError:  # a config file of its own, not a known competition: its rules are the rules
        return []
    if own.data.sample is not None:
        return []
    return [item for key in OUTPUT_RULES if getattr(own.output, key) != getattr(cfg.output, key)
            for item in ("--set", f"output.{key}={getattr(own.output, key)}")]


def package_archive(secrets: list[str] | tuple[str, ...] = (), package_dir: Path = paths.PACKAGE_DIR) -> bytes:
    """kompete's `.py` files as one solid tar.xz: sorted names, zeroed times and owners (same source, same bytes).

    Solid compression across files makes it about a third smaller than a per-file zip (bench/kernel_bundle.py).
    Each file is checked for `secrets` before packing: once compressed, a key could not be found any more.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz", preset=9 | lzma.PRESET_EXTREME) as tar:
        for f in sorted(package_dir.rglob("*.py")):
            rel = f.relative_to(package_dir.parent)
            if "__pycache__" in rel.parts:
                continue
            data = f.read_bytes()
            if any(secret.encode() in data for secret in secrets):
                raise BundleError(f"refusing to write the bundle: {f} would contain a Kaggle credential")
            info = tarfile.TarInfo(rel.as_posix())
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def git_sha() -> str:
    try:
        out = subprocess.run(["git", "-C", str(paths.REPO_DIR), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(paths.REPO_DIR), "status", "--porcelain", "kompete"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    sha = out.stdout.strip() or "unknown"
    return f"{sha}-dirty" if dirty.stdout.strip() else sha


def kernel_slug(competition: str, variant: str | None = None) -> str:
    """`kompete-<competition>[-<variant>]`, lower-case, hyphens only, at most 50 characters."""
    raw = f"kompete-{competition}" + (f"-{variant}" if variant else "")
    slug = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")
    if len(slug) > SLUG_MAX:
        slug = f"{slug[:SLUG_MAX - 9].rstrip('-')}-{hashlib.sha256(slug.encode()).hexdigest()[:8]}"
    return slug


def _strip_prefix(ref: str, prefix: str) -> str:
    """Kaggle wants `owner/slug`; `dataset/...` or `code/...` prefixes copied from URLs break pushes."""
    ref = ref.strip().strip("/")
    for p in (prefix, "www.kaggle.com/" + prefix, "https://www.kaggle.com/" + prefix):
        ref = ref.removeprefix(p)
    if not re.fullmatch(r"[A-Za-z0-9_-]+/[A-Za-z0-9_.-]+(/\d+)?", ref):
        raise ConfigError(f"{ref!r} is not an OWNER/SLUG reference")
    return ref


def _kernel_source(ref: str) -> str:
    """OWNER/SLUG[/VERSION] (URL prefixes dropped); with a version, that version's output is attached, which
    Kaggle's metadata allows (`owner/slug[/ver]`); it arrives under /kaggle/input/<slug>."""
    return _strip_prefix(ref, "code/")


def dataset_slugs(cfg: Config) -> list[str]:
    return [_strip_prefix(d, "datasets/").split("/")[1] for d in cfg.kernel.dataset_sources]


def metadata(cfg: Config, kernel_id: str, resume_from: str | None = None) -> dict:
    k = cfg.kernel
    return {
        "id": kernel_id,
        "title": kernel_id.split("/", 1)[1],  # slugify(title) must equal the slug, or Kaggle renames the kernel
        "code_file": CODE_FILE,
        "language": "python",
        "kernel_type": "script",
        "is_private": k.is_private,
        "enable_gpu": k.enable_gpu,
        "enable_internet": k.enable_internet,  # written explicitly: the client's default is true
        "machine_shape": k.machine_shape,
        "competition_sources": [] if cfg.data.sample is not None else [cfg.name],
        "dataset_sources": [_strip_prefix(d, "datasets/") for d in k.dataset_sources],
        "kernel_sources": [_kernel_source(resume_from)] if resume_from else [],
        "model_sources": [],
    }


def render_script(cfg: Config, kernel_id: str, score: bool, package: bytes, resume_from: str | None = None) -> str:
    from kompete.kernel.template import SCRIPT

    b64 = base64.b64encode(package).decode()
    chunks = "\n".join(f'    "{b64[i:i + 100]}"' for i in range(0, len(b64), 100))
    config_yaml = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    steps = stages(cfg, score, resume_from)
    replacements = {
        "__COMPETITION__": cfg.name,
        "__SLUG__": kernel_id,
        "__VERSION__": __version__,
        "__GIT_SHA__": git_sha(),
        "__CONFIG_HASH__": config_hash(cfg),
        "__SOURCE_HASH__": hashlib.sha256(package).hexdigest()[:12],
        "__ARCHIVE__": cfg.output.archive,
        "__RUNTIME_S__": repr(cfg.limits.runtime_hours * 3600),
        "__KAGGLE_DIR__": "" if cfg.data.sample is not None else cfg.data.kaggle_dir,
        "__SCORE_NEEDS__": json.dumps(dataset_slugs(cfg) if score else []),
        "__STAGE_NAMES__": " -> ".join(name for name, _ in steps),
        "__STAGES__": json.dumps([[name, args] for name, args in steps]),
        "__CONFIG_YAML__": repr(config_yaml),
        "__PACKAGE__": chunks,
    }
    text = SCRIPT
    for key, value in replacements.items():
        text = text.replace(key, value)
    return text


def _secrets_in_environment() -> list[str]:
    """The Kaggle secrets this machine holds (env and kaggle.json), to make sure none enters a bundle."""
    found = [os.environ.get(v, "") for v in ("KAGGLE_KEY", "KAGGLE_API_TOKEN")]
    from kompete.kernel.client import _config_dirs

    for d in _config_dirs():
        try:
            found.append(str(json.loads((d / "kaggle.json").read_text()).get("key", "")))
        except (OSError, ValueError, AttributeError):
            pass
    for f in (Path.home() / ".kaggle" / "access_token", Path.home() / ".kaggle" / "access_token.txt"):
        try:
            found.append(f.read_text().strip())
        except OSError:
            pass
    try:  # OAuth (`kaggle auth login`): its tokens, not its user name (which the kernel id holds)
        oauth = json.loads((Path.home() / ".kaggle" / "credentials.json").read_text())
        found += [v for k, v in oauth.items() if isinstance(v, str) and any(w in k.lower() for w in
                  ("token", "secret", "key"))] if isinstance(oauth, dict) else []
    except (OSError, ValueError):
        pass
    return [s for s in found if len(s) >= 8]


def build_bundle(cfg: Config, owner: str, variant: str | None = None, out_root: Path = Path("kernels"),
                 score: bool = False, resume_from: str | None = None) -> Bundle:
    """Write `out_root/<competition>[-<variant>]/{kernel-metadata.json, kernel.py}` atomically."""
    started = time.perf_counter()
    if not re.fullmatch(r"[A-Za-z0-9_-]+", owner or ""):
        raise ConfigError(f"kernel owner {owner!r} must be a Kaggle user name",
                          hint="pass --owner USER or set KAGGLE_USERNAME")
    kernel_id = f"{owner}/{kernel_slug(cfg.name, variant)}"
    if resume_from and "/".join(_kernel_source(resume_from).split("/")[:2]).lower() == kernel_id.lower():
        # Neither the kaggle client nor Kaggle's documentation confirms a kernel may list its own output
        # (docs/kaggle-kernels.md): each part of a chain is a kernel of its own, as `campaign continue` does.
        raise BundleError(f"--resume-from {resume_from} is this kernel itself ({kernel_id}): a kernel listing its "
                          "own output is not known to work on Kaggle",
                          hint="give the next part a slug of its own with --variant, e.g. --variant part2")
    if score != cfg.kernel.score:  # the embedded config says what the kernel does
        from dataclasses import replace

        cfg = replace(cfg, kernel=replace(cfg.kernel, score=score))
    if score and not cfg.kernel.dataset_sources:
        raise BundleError("--score needs the FID Inception weights inside the kernel, and no dataset is attached",
                          hint="run `kompete assets push` once, then build with "
                               "--set kernel.dataset_sources=[OWNER/kompete-assets] (or --no-score)")
    secrets = _secrets_in_environment()
    package = package_archive(secrets)
    script = render_script(cfg, kernel_id, score, package, resume_from)
    meta = metadata(cfg, kernel_id, resume_from)
    size = len(script.encode())
    if size > MAX_SCRIPT_BYTES:
        raise BundleError(f"kernel script is {size / 1e6:.2f} MB, over Kaggle's 1 MB limit",
                          hint="move large files (weights, wheels) into a dataset listed in kernel.dataset_sources")
    blob = script + json.dumps(meta)
    if any(secret in blob for secret in secrets):
        raise BundleError("refusing to write the bundle: it would contain a Kaggle credential")
    name = cfg.name + (f"-{re.sub(r'[^a-z0-9]+', '-', variant.lower()).strip('-')}" if variant else "")
    folder = Path(out_root) / name
    folder.mkdir(parents=True, exist_ok=True)
    paths.write_text_atomic(folder / CODE_FILE, script)
    paths.write_text_atomic(folder / "kernel-metadata.json", json.dumps(meta, indent=2) + "\n")
    return Bundle(folder, kernel_id, size, len(package), config_hash(cfg), time.perf_counter() - started)


# --------------------------------------------------------------------------- sweeps


def parse_sweeps(sweeps: tuple[str, ...] | list[str]) -> list[tuple[str, list[str]]]:
    """`loss=hinge,ralsgan` -> [("train.loss", ["hinge", "ralsgan"])]; a key without a dot is a train key."""
    out = []
    for item in sweeps:
        key, sep, values = item.partition("=")
        choices = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not choices:
            raise ConfigError(f"--sweep {item!r}: expected key=v1,v2,... e.g. --sweep train.loss=hinge,ralsgan")
        key = key.strip()
        out.append((key if "." in key else f"train.{key}", choices))
    return out


def sweep_variants(competition: str, overrides: tuple[str, ...] | list[str],
                   sweeps: tuple[str, ...] | list[str]) -> list[tuple[str | None, Config]]:
    """(variant name, config) for every combination; each config is checked before anything is written."""
    axes = parse_sweeps(sweeps)
    if not axes:
        return [(None, load_config(competition, list(overrides)))]
    variants = []
    for combo in itertools.product(*[values for _, values in axes]):
        extra = [f"{key}={value}" for (key, _), value in zip(axes, combo)]
        variants.append(("-".join(combo), load_config(competition, [*overrides, *extra])))
    return variants


def default_owner() -> str | None:
    """The Kaggle user name from KAGGLE_USERNAME or kaggle.json (the name only; the key is never read here)."""
    if os.environ.get("KAGGLE_USERNAME"):
        return os.environ["KAGGLE_USERNAME"]
    from kompete.kernel.client import _config_dirs

    for d in _config_dirs():
        try:
            return json.loads((d / "kaggle.json").read_text()).get("username")
        except (OSError, ValueError, AttributeError):
            continue
    return None
