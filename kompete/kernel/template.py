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
import ctypes
import io
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tarfile
from pathlib import Path

COMPETITION = "__COMPETITION__"
SLUG = "__SLUG__"
CONFIG_HASH = "__CONFIG_HASH__"
SOURCE_HASH = "__SOURCE_HASH__"  # the unpacked source is reused only when it is this very source
KOMPETE_VERSION = "__VERSION__"
GIT_SHA = "__GIT_SHA__"
ARCHIVE = "__ARCHIVE__"
RUNTIME_S = __RUNTIME_S__          # the competition's kernel runtime limit, counted from KOMPETE_KERNEL_START
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


PROGRESS_S = float(os.environ.get("KOMPETE_PROGRESS_S", "300"))  # the trainer's log line every 5 minutes
SAMPLE_GRIDS_KEPT = 8    # sample grids left in the output (thinned evenly), besides final.png
MAX_OUTPUT_FILES = 400   # Kaggle keeps at most 500 output files
OPTIONAL = {"score"}     # stages whose failure is a warning: the zip is what Kaggle scores
SIGNALLED_EXITS = {130, 143, -2, -15}  # a stage that stopped because it was told to: "stopped", not "failed"
SCORE_MIN_S = 60         # scoring starts only with this much time left (and 2x the generation's time)
END_MARGIN_S = 20        # a stage still running this close to the hard limit is stopped (scoring only)
CHILD = {"proc": None, "signal": None, "stage": None}  # the running child, its stage, a signal received
GPUS = []
try:  # Linux: a child gets SIGTERM when the script dies, even by SIGKILL (no orphan trainer)
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _PRCTL = None


def die_with_parent(parent=os.getpid()):
    """Run in the child between fork and exec: PR_SET_PDEATHSIG, then check the parent did not die already."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def deadline():
    """The hard end, Unix time: the runtime limit from the kernel's start."""
    return float(os.environ["KOMPETE_KERNEL_START"]) + RUNTIME_S


def kompete(src, args, env, ddp=False, stage=None, timeout_s=None):
    """Run one kompete command; the first SIGTERM/SIGINT reaching the script during training is passed on to it
    (see on_signal). `timeout_s`: stop it (SIGTERM, then SIGKILL) after that long."""
    CHILD["stage"] = stage  # before anything: a signal from here on knows which stage it meets
    cmd = [sys.executable, "-m", "kompete", *args]
    n = len(GPUS) if ddp else 0
    if n > 1:  # e.g. two T4s: one process per GPU (DDP)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
               "-m", "kompete", *args]
    log(("$ torchrun x%d kompete " % n if n > 1 else "$ kompete ") + " ".join(args))
    # a session of its own: a signal to the script's process group reaches the child once, through on_signal
    # (a second SIGTERM would make the trainer die without its checkpoint)
    proc = subprocess.Popen(cmd, env=env, cwd=str(kaggle_root() / "working"), start_new_session=True,
                            preexec_fn=die_with_parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1)
    CHILD["proc"] = proc
    timer = threading.Timer(timeout_s, stop_child, args=(proc,)) if timeout_s is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    tail = []
    try:
        for line in proc.stdout:
            sys.stdout.write(line)
            tail = (tail + [line.rstrip("\n")])[-40:]
        return proc.wait()
    finally:
        if timer is not None:
            timer.cancel()
        CHILD["proc"] = CHILD["stage"] = None
        CHILD["tail"] = tail


def stop_child(proc):
    if proc.poll() is None:
        log("stopping the stage: the runtime limit is near")
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def on_signal(signum, frame):
    """The first signal stops the training (it checkpoints), once; nothing ever reaches generate or validate,
    so the zip is always written."""
    name, first = signal.Signals(signum).name, CHILD["signal"] is None
    CHILD["signal"] = CHILD["signal"] or name
    proc, stage = CHILD["proc"], CHILD["stage"]
    if first and stage == "train" and proc is not None and proc.poll() is None:
        log(f"received {name}: passing it to the running stage, which saves a checkpoint; then generating from it")
        proc.send_signal(signum)
    elif stage == "train":
        log(f"received {name}: the training is already stopping")
    else:
        log(f"received {name}: not passed on: {stage or 'the next stage'} goes on, so that {ARCHIVE} is written")


def child_json(src, env, module_args):
    """Run `python -m kompete.kernel.preflight ...` and read the JSON object on its last line."""
    run = subprocess.run([sys.executable, "-m", "kompete.kernel.preflight", *module_args], env=env,
                         capture_output=True, text=True, cwd=str(kaggle_root() / "working"))
    try:
        return json.loads(run.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = (run.stdout + run.stderr).strip().splitlines()[-5:]
        return {"problems": ["the preflight itself failed: " + " | ".join(tail)], "warnings": [], "notes": [],
                "gpus": [], "resume": None}


def nvidia_smi():
    """[(name, memory used MiB, utilisation %)] from nvidia-smi, or None without it: no CUDA context here."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.used,utilization.gpu",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    rows = []
    for line in out.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        try:
            rows.append((parts[0], float(parts[1]), float(parts[2])))
        except (IndexError, ValueError):
            rows.append((parts[0], 0.0, 0.0))
    return rows


def environment_report(preflight_gpus):
    log(f"python {platform.python_version()} on {platform.platform()}")
    smi = nvidia_smi()
    GPUS[:] = [row[0] for row in smi] if smi is not None else list(preflight_gpus)
    log(f"GPUs: {', '.join(GPUS) or 'none'} (from {'nvidia-smi' if smi is not None else 'torch in a child'})")
    if not GPUS:
        log("WARNING: no GPU visible: training runs on the CPU, far slower (Settings > Accelerator > GPU T4 x2)")
    elif len(GPUS) > 1:
        log(f"training uses all {len(GPUS)} GPUs (torchrun, one process each)")
    log(f"kompete {KOMPETE_VERSION} (git {GIT_SHA}), config hash {CONFIG_HASH}")


def last_metrics(csv_path):
    try:
        lines = csv_path.read_text().strip().splitlines()
    except OSError:
        return None
    if len(lines) < 2:
        return None
    header, row = lines[0].split(","), lines[-1].split(",")
    return dict(zip(header, row)) if len(row) == len(header) else None


def hms(seconds):
    seconds = max(0, int(float(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def progress_line(row):
    skip = {"step", "epoch", "images_per_s", "elapsed_s", "time_left_s"}
    losses = " ".join(f"{k} {v}" for k, v in row.items() if k not in skip and not k.startswith("lr_") and v)
    left = row.get("time_left_s") or "0"
    eta = time.strftime("%H:%M", time.localtime(time.time() + float(left or 0)))
    return (f"progress: step {row.get('step')}, epoch {row.get('epoch')}, {row.get('images_per_s')} img/s, "
            f"{losses}; training {hms(left)} left (ends ~{eta})")


def monitor(run_dir, stop):
    """The trainer logs its own progress every PROGRESS_S; this watches for a stall and for an idle GPU."""
    warned, seen = False, None
    while not stop.wait(max(PROGRESS_S, 60)):
        row = last_metrics(run_dir / "metrics.csv")
        if row is not None and row == seen:
            log(f"progress: no new metrics row since step {row.get('step')}: " + progress_line(row))
        seen = row
        smi = nvidia_smi() or []
        idle = [i for i, (_, mem, util) in enumerate(smi) if mem < 200 and util < 1]
        if len(smi) > 1 and idle and not warned:
            log(f"WARNING: GPU {', '.join(map(str, idle))} of {len(smi)} is idle: only part of the hardware trains")
            warned = True


def prune_output(working, run_dir):
    """Keep what resuming and generating need: the newest checkpoint (and a best one), a few sample grids."""
    ckpts = sorted(run_dir.glob("checkpoints/step-*.pt"))
    for old in ckpts[:-1]:
        old.unlink()
    grids = sorted(p for p in run_dir.glob("samples/*.png") if p.name != "final.png")
    if len(grids) > SAMPLE_GRIDS_KEPT:
        keep = {grids[round(i * (len(grids) - 1) / (SAMPLE_GRIDS_KEPT - 1))] for i in range(SAMPLE_GRIDS_KEPT)}
        for g in grids:
            if g not in keep:
                g.unlink()
    files = [p for p in working.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files), (ckpts[-1] if ckpts else None)


def zip_facts(zip_path):
    import zipfile
    try:
        with zipfile.ZipFile(zip_path) as zf:
            return {"members": len(zf.infolist()), "bytes": zip_path.stat().st_size}
    except (OSError, zipfile.BadZipFile):
        return {"members": 0, "bytes": zip_path.stat().st_size if zip_path.exists() else 0}


def write_record(working, record):
    tmp = working / ".kompete-run.json.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, working / "kompete-run.json")


def fill_args(args, fill):
    for key, value in fill.items():
        args = [a.replace(key, value) for a in args]
    return args


def resolve_resume(args, found):
    """`--resume HINT` becomes the run the preflight found, or is dropped (a fresh start) when none fits."""
    if "--resume" not in args:
        return args
    i = args.index("--resume")
    return args[:i] + (["--resume", found] if found else []) + args[i + 2:]


def main(argv):
    os.environ.setdefault("KOMPETE_KERNEL_START", str(time.time()))  # the training deadline counts from here
    working = kaggle_root() / "working"
    run_dir = working / "run"
    src, cfg = unpack()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("KOMPETE_KAGGLE_ROOT", str(kaggle_root()))
    env["PYTHONUNBUFFERED"] = "1"
    env["KOMPETE_KERNEL_ID"] = SLUG  # the trainer's resume hint names this kernel, not a temporary folder
    env.setdefault("KOMPETE_PROGRESS_S", str(PROGRESS_S))
    fill = {"{config}": str(cfg), "{run}": str(run_dir), "{zip}": str(working / ARCHIVE),
            "{input}": str(kaggle_root() / "input")}
    stage_names = [name for name, _ in STAGES]
    train_args = next((fill_args(args, fill) for name, args in STAGES if name == "train"), [])
    check = ["--stages", ",".join(stage_names), "--config-hash", CONFIG_HASH, str(cfg),
             "--train-args=" + os.environ.get("KOMPETE_TRAIN_ARGS", "")]
    if "--resume" in train_args:
        check += ["--resume", "--resume-hint", train_args[train_args.index("--resume") + 1]]
    try:
        working.mkdir(parents=True, exist_ok=True)
        probe = working / ".kompete-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        log(f"preflight: {working} is not writable: {exc}")
        return 2
    if "--self-check" in argv:
        rc = kompete(src, ["config", str(cfg)], env)
        report = child_json(src, env, check)
        for kind in ("notes", "warnings", "problems"):
            for line in report[kind]:
                log(f"self-check {kind[:-1]}: {line}")
        return rc or (2 if report["problems"] else 0)
    log(f"preflight: checking imports, data, the time budget and the GPUs in a child process "
        f"({deadline() - time.time():.0f} s of the runtime limit left)")
    report = child_json(src, env, check)
    environment_report(report["gpus"])
    for line in report["notes"]:
        log("preflight: " + line)
    for line in report["warnings"]:
        log("WARNING: " + line)
    if report["problems"]:
        for line in report["problems"]:
            log("preflight: " + line)
        return 2
    (working / "kompete-config.yaml").write_text(CONFIG_YAML)
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, on_signal)
    zip_path = working / ARCHIVE
    record = {"competition": COMPETITION, "config_hash": CONFIG_HASH, "kompete": KOMPETE_VERSION, "git": GIT_SHA,
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "gpus": GPUS,
              "resumed_from": report["resume"], "warnings": list(report["warnings"]), "stages": []}
    started = time.time()
    failed = []
    for name, args in STAGES:
        args = fill_args(args, fill)
        if name == "train":  # local dry runs add e.g. "--max-steps 2"; unset on Kaggle
            args = resolve_resume(args, report["resume"]) + shlex.split(os.environ.get("KOMPETE_TRAIN_ARGS", ""))
        skip = skip_reason(name, record)
        if skip:
            log(f"{name}: skipped: {skip}")
            record["stages"].append({"name": name, "exit": None, "seconds": 0, "skipped": skip})
            continue
        entry = run_stage(src, name, args, env, run_dir)
        record["stages"].append(entry)
        write_record(working, record)  # a hard kill later still leaves what happened so far
        if entry["exit"] != 0 and not entry.get("stopped"):
            failed.append(name)
            if name != "train" and name not in OPTIONAL:  # a failed training may have left a checkpoint
                break
    valid = any(s["name"] == "validate" and s["exit"] == 0 for s in record["stages"]) and zip_path.is_file()
    n_files, n_bytes, ckpt = prune_output(working, run_dir) if valid else (0, 0, None)
    if not valid:
        files = [p for p in working.rglob("*") if p.is_file()]
        n_files, n_bytes = len(files), sum(p.stat().st_size for p in files)
    score = next((s.get("score") for s in record["stages"] if s.get("score")), None)
    record.update(zip={"path": str(zip_path), "valid": valid, **zip_facts(zip_path)}, score=score,
                  stopped_by=CHILD["signal"], failed=failed, seconds=round(time.time() - started, 1),
                  output={"files": n_files, "bytes": n_bytes}, exit=0 if valid else 1)
    write_record(working, record)
    summary(record, ckpt, working)
    return 0 if valid else 1


def skip_reason(name, record):
    """Why an optional stage does not run: a signal stopped the kernel, or too little time is left for it."""
    if name not in OPTIONAL:
        return None
    if CHILD["signal"]:
        return "stopped by a signal"
    left = deadline() - time.time()
    generating = next((s["seconds"] for s in record["stages"] if s["name"] == "generate"), 0)
    need = max(SCORE_MIN_S, 2 * generating) + END_MARGIN_S
    if left < need:
        return f"{left:.0f} s of the runtime limit left, {need:.0f} s needed; {ARCHIVE} is what Kaggle scores"
    return None


def run_stage(src, name, args, env, run_dir):
    """One stage as a kompete child; scoring is stopped before the hard limit. Returns its record entry."""
    stop = threading.Event()
    if name == "train":
        threading.Thread(target=monitor, args=(run_dir, stop), daemon=True).start()
    t0 = time.time()
    timeout = deadline() - time.time() - END_MARGIN_S if name in OPTIONAL else None
    rc = kompete(src, args, env, ddp=(name == "train"), stage=name, timeout_s=timeout)
    stop.set()
    entry = {"name": name, "exit": rc, "seconds": round(time.time() - t0, 1)}
    if rc != 0 and CHILD["signal"] and name == "train" and rc in SIGNALLED_EXITS:
        entry["stopped"] = CHILD["signal"]  # it saved a checkpoint and ended as asked: not a failure
    log(f"{name}: " + (f"stopped by {entry['stopped']}" if entry.get("stopped") else f"exit {rc}")
        + f" after {time.time() - t0:.0f} s")
    if name == "score" and rc == 0:
        entry["score"] = next((json.loads(l) for l in reversed(CHILD.get("tail", [])) if l.startswith("{")), None)
    return entry


def summary(record, ckpt, working):
    log("summary: " + ", ".join(f"{s['name']} " + ("skipped" if s.get("skipped") else "ok" if s["exit"] == 0
                                                   else f"stopped by {s['stopped']}" if s.get("stopped")
                                                   else f"FAILED (exit {s['exit']})") + f" {s['seconds']:.0f} s"
                                for s in record["stages"]))
    z = record["zip"]
    log(f"{ARCHIVE}: {'valid' if z['valid'] else 'MISSING OR INVALID'}, {z['members']} files, {z['bytes']} bytes")
    for name in record["failed"]:
        if z["valid"]:
            log(f"WARNING: {name} failed, but {ARCHIVE} is valid: this version can still be submitted")
    for w in record["warnings"]:
        log("WARNING: " + w)
    if record["score"]:
        s = record["score"]
        log("score: " + ", ".join(f"{k} {s[k]}" for k in ("mifid", "fid", "memorization_distance") if k in s))
        if s.get("warning"):  # `kompete score`'s memorization warning, where the log's reader looks last
            log("WARNING: " + s["warning"])
    if record["stopped_by"]:
        log(f"stopped by {record['stopped_by']}: generated from its checkpoints (the best when the run kept one)")
    if ckpt is not None:
        log(f"checkpoint: {ckpt.relative_to(working)} (the newest; resuming needs only it)")
        best = ckpt.parent / "best.json"
        if best.is_file():
            info = json.loads(best.read_text())
            log(f"best checkpoint: {best.with_suffix('.pt').relative_to(working)} (in-training MiFID "
                f"{info['mifid']:.3f} on {info['n_images']} images at step {info['step']}; {ARCHIVE} comes from it)")
        log(f"to continue training: `kompete campaign continue`, or `kompete kernel build {COMPETITION} "
            f"--resume-from {SLUG}/VERSION --variant partN` (VERSION: this version's number; the build attaches its "
            f"output as an input of a new kernel), then push it")
    log(f"output: {record['output']['files']} files, {record['output']['bytes'] / 1e6:.1f} MB in {working}"
        + (f" (WARNING: Kaggle keeps at most 500)" if record['output']['files'] > MAX_OUTPUT_FILES else ""))
    log(f"total {record['seconds']:.0f} s; failed stages: {', '.join(record['failed']) or 'none'}; "
        f"exit {record['exit']}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''
