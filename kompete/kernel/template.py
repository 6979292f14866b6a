"""The script a Kaggle kernel runs. `bundle.py` fills the `__NAME__` placeholders.

The script needs only the standard library and Kaggle's preinstalled packages (torch, numpy, PIL, yaml,
click, ...): kompete travels inside it as a base64 tar.xz of its source, and the fully resolved config as YAML.
Run it with `--self-check` to unpack and import kompete without training.
"""

SCRIPT = r'''#!/usr/bin/env python3
"""kompete kernel for __COMPETITION__ (slug __SLUG__), built by kompete __VERSION__ (git __GIT_SHA__).

Config hash __CONFIG_HASH__. Stages: __STAGE_NAMES__. Everything it writes lands in /kaggle/working.
Built by `kompete kernel build`; edit the config and rebuild rather than editing this file.
"""
import base64
import io
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tarfile
from pathlib import Path

COMPETITION = "__COMPETITION__"
CONFIG_HASH = "__CONFIG_HASH__"
SOURCE_HASH = "__SOURCE_HASH__"  # the unpacked source is reused only when it is this very source
KOMPETE_VERSION = "__VERSION__"
GIT_SHA = "__GIT_SHA__"
ARCHIVE = "__ARCHIVE__"
KAGGLE_DIR = "__KAGGLE_DIR__"      # folder under /kaggle/input holding the data; empty for a sample
SCORE_NEEDS = __SCORE_NEEDS__      # paths under /kaggle/input that scoring needs (weights), checked first
STAGES = __STAGES__                # [name, [kompete args...]]; {config} {run} {zip} {input} are filled below
CONFIG_YAML = __CONFIG_YAML__
PACKAGE_B64 = (  # kompete/**/*.py as tar.xz, base64
__PACKAGE__
)


def log(msg):
    print(f"[kompete {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def kaggle_root():
    return Path(os.environ.get("KOMPETE_KAGGLE_ROOT", "/kaggle"))


def unpack():
    """kompete's source into a temporary folder (never /kaggle/working: it would count as output)."""
    src = Path(tempfile.gettempdir()) / f"kompete-src-{SOURCE_HASH}"
    if not (src / "kompete" / "__init__.py").is_file():
        tmp = Path(tempfile.mkdtemp(prefix="kompete-src-"))
        with tarfile.open(fileobj=io.BytesIO(base64.b64decode("".join(PACKAGE_B64))), mode="r:xz") as tar:
            for member in tar.getmembers():  # built by kompete: plain files under kompete/ only
                if not member.isfile() or not member.name.startswith("kompete/") or ".." in member.name:
                    raise SystemExit(f"kompete kernel: unexpected member {member.name!r} in the embedded package")
                target = tmp / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
        shutil.rmtree(src, ignore_errors=True)
        os.replace(tmp, src)
    cfg = src / f"{COMPETITION}.yaml"
    cfg.write_text(CONFIG_YAML)
    return src, cfg


def gpu_count():
    try:
        import torch
        return torch.cuda.device_count()
    except Exception:
        return 0


def kompete(src, args, env, ddp=False):
    cmd = [sys.executable, "-m", "kompete", *args]
    n = gpu_count() if ddp else 0
    if n > 1:  # e.g. two T4s: one process per GPU (DDP)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
               "-m", "kompete", *args]
    log(("$ torchrun x%d kompete " % n if n > 1 else "$ kompete ") + " ".join(args))
    return subprocess.run(cmd, env=env, cwd=str(kaggle_root() / "working")).returncode


def environment_report():
    log(f"python {platform.python_version()} on {platform.platform()}")
    try:
        import torch
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        log(f"torch {torch.__version__}, CUDA {torch.version.cuda}, GPUs: {', '.join(gpus) or 'none'}")
    except Exception as exc:  # the report must never stop the run
        log(f"torch not importable: {exc}")
    log(f"kompete {KOMPETE_VERSION} (git {GIT_SHA}), config hash {CONFIG_HASH}")


def preflight(working):
    problems = []
    inputs = kaggle_root() / "input"
    if KAGGLE_DIR and not (inputs / KAGGLE_DIR).is_dir():
        problems.append(f"competition data missing: {inputs / KAGGLE_DIR} (attach the competition)")
    for need in SCORE_NEEDS:
        if not (inputs / need).exists():
            problems.append(f"scoring needs {inputs / need} (attach the weights dataset)")
    try:
        working.mkdir(parents=True, exist_ok=True)
        probe = working / ".kompete-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        problems.append(f"{working} is not writable: {exc}")
    return problems


def main(argv):
    os.environ.setdefault("KOMPETE_KERNEL_START", str(time.time()))  # the training deadline counts from here
    working = kaggle_root() / "working"
    src, cfg = unpack()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("KOMPETE_KAGGLE_ROOT", str(kaggle_root()))
    env["PYTHONUNBUFFERED"] = "1"
    if "--self-check" in argv:
        working.mkdir(parents=True, exist_ok=True)
        return kompete(src, ["config", str(cfg)], env)
    environment_report()
    problems = preflight(working)
    if problems:
        for p in problems:
            log("preflight: " + p)
        return 2
    (working / "kompete-config.yaml").write_text(CONFIG_YAML)
    zip_path = working / ARCHIVE
    failed = []
    started = time.time()
    try:
        for name, args in STAGES:
            fill = {"{config}": str(cfg), "{run}": str(working / "run"), "{zip}": str(zip_path),
                    "{input}": str(kaggle_root() / "input")}
            for key, value in fill.items():
                args = [a.replace(key, value) for a in args]
            if name == "train":  # local dry runs add e.g. "--max-steps 2"; unset on Kaggle
                args += shlex.split(os.environ.get("KOMPETE_TRAIN_ARGS", ""))
            t0 = time.time()
            rc = kompete(src, args, env, ddp=(name == "train"))
            log(f"{name}: exit {rc} after {time.time() - t0:.0f} s")
            if rc != 0:
                failed.append(name)
                if name != "train":  # a failed training may have left a checkpoint: generate from it anyway
                    break
    finally:
        size = zip_path.stat().st_size if zip_path.exists() else 0
        log(f"total {time.time() - started:.0f} s; {ARCHIVE}: {size} bytes; failed stages: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''
