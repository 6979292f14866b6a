"""Hostile sweep of issue 26 (red team round 2) over the commands redteam-a touched: train --resume, generate
--out, campaign start/add/status/collect/show/continue/wait/submit, init, validate, config --keys.

Not collected by pytest (no test_ prefix): it runs ~90 real `kompete` subprocesses (several minutes on 2 cores).

    PYTHONPATH=. python tests/redteam_sweep.py [-k SUBSTRING] [--keep]

Every case runs in a sandbox nested four folders deep inside one scratch root, with its own ledger, against the
fake Kaggle server. Counted per case: a Python traceback in the output; a file of the sandbox lost or changed
outside the paths the case may write; a new file outside those paths (anywhere under the scratch root, so
`../../..` escapes are seen). Read-only folders are private read-only bind mounts and full disks tiny tmpfs
mounts (`unshare -m`, root only; those cases are skipped otherwise). Exit status 1 when any count is non-zero.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from kompete.archive import encode_image  # noqa: E402
from tests.fake_kaggle import FakeKaggle, zip_bytes  # noqa: E402
from tests.kaggle_fixtures import transcript_env  # noqa: E402

TINY = ["data.image_size=16", "train.g_channels=8", "train.d_channels=8", "gan.z_dim=16", "train.batch_size=16",
        "train.log_every=1", "output.n_min=1", "generate.n_images=25", "generate.batch_size=16",
        "data.sample.n_images=16"]
SETS = [a for s in TINY for a in ("--set", s)]
SMALL = ["--set", "output.n_min=4", "--set", "output.n_max=4", "--set", "generate.n_images=4"]
CAN_MOUNT = os.geteuid() == 0 and shutil.which("unshare") is not None


@dataclass
class Case:
    id: str
    argv: list[str]
    may_write: list[str] = field(default_factory=list)  # sandbox-relative globs the case may create or change
    setup: Callable[[Path], None] | None = None
    readonly: str | None = None  # sandbox-relative folder mounted read-only for the command
    tmpfs: tuple[str, int] | None = None  # (folder, KiB spare, -1: none): a tiny disk holding a copy of it
    signal_after: tuple[int, float] | None = None  # (signal, seconds)
    env: dict[str, str] = field(default_factory=dict)


def png(seed: int, size: int = 64) -> bytes:
    rng = np.random.default_rng(seed)
    return encode_image(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def images_zip(names: list[str], size: int = 64) -> bytes:
    return zip_bytes({n: png(i, size) for i, n in enumerate(names)})


# --------------------------------------------------------------------------- the world every case copies


def build_world(root: Path, env: dict[str, str]) -> None:
    """A trained run, a ledger holding campaign `base`, image folders, zips and junk files."""
    def kompete(*args: str) -> None:
        proc = subprocess.run([sys.executable, "-m", "kompete", *args], env=env, cwd=root, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    kompete("train", "sample-dogs", "--out", str(root / "run"), "--max-steps", "2", "--time-budget", "10m",
            "--quiet", "--no-record", *SETS)
    kompete("campaign", "start", "sample-dogs", "--name", "base", "--out", str(root / "camps"), "--no-push", *SMALL)
    imgs = root / "imgs"
    imgs.mkdir()
    for i in range(3):
        Image.new("RGB", (16, 16), (40 * i, 0, 0)).save(imgs / f"{i}.png")
    (root / "ro").mkdir()
    (root / "disk").mkdir()
    (root / "afile").write_text("x")
    (root / "junk.db").write_bytes(b"not sqlite" * 100)
    (root / "faces-good.zip").write_bytes(images_zip(["masked/0.png", "unmasked/1.png"]))
    (root / "faces-cats.zip").write_bytes(images_zip(["masked/0.png", "cats/1.png"]))
    (root / "faces-trav.zip").write_bytes(images_zip(["masked/0.png", "../1.png"]))
    (root / "old-images.zip").write_bytes(images_zip(["0.png"], 16))


def sql(statement: str) -> Callable[[Path], None]:
    def run(box: Path) -> None:
        with sqlite3.connect(box / "ledger.db") as conn:
            conn.execute(statement)
    return run


def both(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def run(box: Path) -> None:
        for step in steps:
            step(box)
    return run


def newest_ckpt(box: Path) -> Path:
    return sorted((box / "run" / "checkpoints").glob("step-*.pt"))[-1]


def damage_newest(box: Path) -> None:
    newest_ckpt(box).write_bytes(os.urandom(2048))


def damage_all(box: Path) -> None:
    for p in (box / "run" / "checkpoints").glob("*.pt"):
        p.write_bytes(b"")


def latin1_metrics(box: Path) -> None:
    (box / "run" / "metrics.csv").write_bytes((box / "run" / "metrics.csv").read_bytes() + b"9,\xe9\xff\n")


def lone_ckpt(box: Path) -> None:
    shutil.copy(newest_ckpt(box), box / "lone.pt")


def live_lock(box: Path) -> None:
    (box / "run" / ".kompete-train.lock").write_text(f"{os.getpid()} {os.uname().nodename}\n")


def loop_images(box: Path) -> None:
    (box / "imgs" / "loop").symlink_to(box / "imgs", target_is_directory=True)
    (box / "imgs" / "self").symlink_to(box / "imgs" / "self")


def legacy_evil_variant(box: Path) -> None:
    with sqlite3.connect(box / "ledger.db") as conn:
        cid = conn.execute("SELECT id FROM campaigns WHERE name='base'").fetchone()[0]
        conn.execute("INSERT INTO campaign_kernels (campaign_id, variant, kernel_ref, state, version, queued_at) "
                     "VALUES (?, '../../../../evil', 'alice/kompete-evil', 'complete', 7, '2026-01-01T00:00:00Z')",
                     (cid,))


def cases() -> list[Case]:
    run, led = ["run/**"], ["ledger.db*"]
    camp = led + ["camps/**"]
    out: list[Case] = []
    # ---- train --resume (item 1) and the run folder
    out += [
        Case("train-resume-no-out", ["train", "sample-dogs", "--resume", "run", "--max-steps", "3", "--quiet",
                                     "--no-record", *SETS], run),
        Case("train-resume-ckpt-file", ["train", "sample-dogs", "--resume", "run/checkpoints/step-00000002.pt",
                                        "--max-steps", "3", "--quiet", "--no-record", *SETS], run),
        Case("train-resume-lone-file", ["train", "sample-dogs", "--resume", "lone.pt", "--quiet", *SETS],
             setup=lone_ckpt),
        Case("train-resume-missing", ["train", "sample-dogs", "--resume", "nowhere", "--quiet", *SETS]),
        Case("train-resume-traversal", ["train", "sample-dogs", "--resume", "../../../../../../etc", *SETS]),
        Case("train-resume-best-missing", ["train", "sample-dogs", "--resume", "run", "--from", "best", *SETS]),
        Case("train-best-without-resume", ["train", "sample-dogs", "--from", "best", *SETS]),
        Case("train-resume-damaged-newest", ["train", "sample-dogs", "--resume", "run", "--max-steps", "3",
                                             "--quiet", "--no-record", *SETS], run, setup=damage_newest),
        Case("train-resume-all-damaged", ["train", "sample-dogs", "--resume", "run", "--quiet", *SETS],
             setup=damage_all),
        Case("train-resume-latin1-metrics", ["train", "sample-dogs", "--resume", "run", "--max-steps", "3",
                                             "--quiet", "--no-record", *SETS], run, setup=latin1_metrics),
        Case("train-resume-locked", ["train", "sample-dogs", "--resume", "run", "--quiet", *SETS], setup=live_lock),
        Case("train-resume-ro", ["train", "sample-dogs", "--resume", "run", "--quiet", *SETS], readonly="run"),
        Case("train-resume-checkpoints-is-file", ["train", "sample-dogs", "--resume", "afile", "--quiet", *SETS]),
        Case("train-full-disk", ["train", "sample-dogs", "--out", "disk/r", "--max-steps", "50", "--quiet",
                                 "--no-record", *SETS], ["disk/**"], tmpfs=("disk", 48)),
        Case("train-resume-full-disk", ["train", "sample-dogs", "--resume", "disk/run", "--max-steps", "9",
                                        "--quiet", "--no-record", *SETS], ["disk/**"],
             setup=lambda b: shutil.copytree(b / "run", b / "disk" / "run"), tmpfs=("disk", 0)),
        Case("train-sigterm", ["train", "sample-dogs", "--out", "r2", "--time-budget", "10m", "--quiet",
                               "--no-record", *SETS], ["r2/**"], signal_after=(signal.SIGTERM, 12)),
        Case("train-sigint", ["train", "sample-dogs", "--out", "r3", "--time-budget", "10m", "--quiet",
                              "--no-record", *SETS], ["r3/**"], signal_after=(signal.SIGINT, 12)),
    ]
    # ---- generate --out (item 2)
    ck = "run/checkpoints/step-00000002.pt"
    out += [
        Case("generate-over-ckpt", ["generate", ck, "--out", ck, "--quiet"]),
        Case("generate-over-config", ["generate", "run", "--out", "run/config.yaml", "--quiet"]),
        Case("generate-over-metrics", ["generate", "run", "--out", "run/metrics.csv", "--quiet"]),
        Case("generate-over-ledger", ["generate", "run", "--out", "ledger.db", "--quiet"]),
        Case("generate-over-folder", ["generate", "run", "--out", "run/checkpoints", "--quiet"]),
        Case("generate-over-old-zip", ["generate", "run", "--out", "old-images.zip", "--quiet"], ["old-images.zip"]),
        Case("generate-ro", ["generate", "run", "--out", "ro/images.zip", "--quiet"], readonly="ro"),
        Case("generate-full-disk", ["generate", "run", "--out", "disk/images.zip", "--quiet"], ["disk/**"],
             tmpfs=("disk", -1)),
        Case("generate-ckpt-etc-passwd", ["generate", "run", "--checkpoint", "/etc/passwd", "--quiet"]),
        Case("generate-sigterm", ["generate", "run", "--out", "big.zip", "--n", "5000", "--quiet"], ["big.zip"],
             signal_after=(signal.SIGTERM, 8)),
    ]
    # ---- campaign names and variants (items 3, 10)
    start = ["campaign", "start", "sample-dogs", "--out", "camps", "--no-push", *SMALL]
    for i, name in enumerate(["../../x", "../../../../../../tmp/x", "/abs/x", "a/b", ".hidden", "", "a\nb",
                              "x" * 200, "a\\b", "..", "-"]):
        out.append(Case(f"campaign-start-name-{i}", [*start, "--name", name], camp))
    out += [
        Case("campaign-start-sweep-dup", [*start, "--name", "d1", "--sweep", "seed=1,1"], camp),
        Case("campaign-start-sweep-case", [*start, "--name", "d2", "--sweep", "train.lr_g=1e-4,1E-4"], camp),
        Case("campaign-start-sweep-trav", [*start, "--name", "d3", "--sweep", "kernel.machine_shape=../../x,ok"],
             camp),
        Case("campaign-start-class-counts", ["campaign", "start", "sample-faces", "--out", "camps", "--no-push",
                                             "--name", "cc", "--set",
                                             "generate.class_counts={masked: 200, unmasked: 56}"], camp),
        Case("campaign-start-ro-out", [*start, "--name", "r1", "--out", "ro"], led, readonly="ro"),
        Case("campaign-start-out-file", [*start, "--name", "r2", "--out", "afile"], led),
        Case("campaign-start-junk-db", [*start, "--name", "j", "--db", "junk.db"], camp),
        Case("campaign-start-ro-db", [*start, "--name", "rodb", "--db", "ro/k.db"], camp, readonly="ro"),
        Case("campaign-add-variant-trav", ["campaign", "add", "base", "alice/kompete-trav", "--variant",
                                           "../../../../elsewhere/x"], led),
        Case("campaign-add-variant-slash", ["campaign", "add", "base", "alice/kompete-trav", "--variant", "a/b"],
             led),
        Case("campaign-add-name-trav", ["campaign", "add", "../../x", "alice/kompete-trav", "--competition",
                                        "generative-dog-images"], led),
        Case("campaign-add-bad-ref", ["campaign", "add", "base", "../../x"], led),
        Case("campaign-add-unknown-comp", ["campaign", "add", "newc", "alice/kompete-trav", "--competition", "nope"],
             led),
        Case("campaign-add-dup-variant", ["campaign", "add", "base", "alice/kompete-sample-dogs-base-base",
                                          "--variant", "base"], led),
    ]
    # ---- damaged state (item 11) on every campaign command
    damages = {"spec": "UPDATE campaigns SET spec_json='{broken'", "spec-list": "UPDATE campaigns SET spec_json='[1]'",
               "sets": "UPDATE campaign_kernels SET sets_json='nope'",
               "changes": "UPDATE campaign_kernels SET changes_json='[1]'",
               "time": "UPDATE campaign_kernels SET queued_at='yesterday'",
               "state": "UPDATE campaign_kernels SET state='banana'",
               "version": "UPDATE campaign_kernels SET version='seven'",
               "dropped": "DROP TABLE campaign_kernels"}
    commands = {"status": ["campaign", "status", "base"], "collect": ["campaign", "collect", "base"],
                "show": ["campaign", "show", "base"], "continue": ["campaign", "continue", "base", "base"],
                "wait": ["campaign", "wait", "base", "--timeout", "0"], "start": [*start, "--name", "base"]}
    for dname, statement in damages.items():
        for cname in (("status", "collect", "show", "continue", "wait", "start") if dname in ("spec", "sets")
                      else ("status", "collect")):
            out.append(Case(f"damaged-{dname}-{cname}", commands[cname], camp, setup=sql(statement)))
    out += [
        Case("collect-legacy-evil-variant", ["campaign", "collect", "base", "--score-from", "kernel"], camp,
             setup=legacy_evil_variant),
        Case("collect-unknown", ["campaign", "collect", "nope"], led, env={"KAGGLE_CONFIG_DIR": "/nonexistent"}),
        Case("submit-unknown", ["campaign", "submit", "nope", "--best"], led),
        Case("continue-unknown-variant", ["campaign", "continue", "base", "zzz"], camp),
        Case("show-plot-ro", ["campaign", "show", "base", "--plot", "ro/x.png"], led, readonly="ro"),
        Case("show-plot-folder", ["campaign", "show", "base", "--plot", "camps"], led),
        Case("wait-sigterm", ["campaign", "wait", "base", "--poll", "1", "--max-poll", "1"], camp,
             setup=sql("UPDATE campaign_kernels SET state='running', version=7"), signal_after=(signal.SIGTERM, 5)),
    ]
    # ---- init (items 8, 13, 14)
    out += [
        Case("init-shadow", ["init", "sample-dogs", "--images", "imgs"]),
        Case("init-shadow-forced-repo", ["init", "sample-dogs", "--images", "imgs", "--out",
                                         str(REPO / "competitions"), "--force"]),
        Case("init-name-trav", ["init", "../../x", "--images", "imgs"]),
        Case("init-loop", ["init", "loopy", "--images", "imgs"], ["competitions/**"], setup=loop_images),
        Case("init-missing", ["init", "nope1", "--images", "nowhere"]),
        Case("init-images-file", ["init", "nope2", "--images", "afile"]),
        Case("init-out-ro", ["init", "nope3", "--images", "imgs", "--out", "ro"], readonly="ro"),
        Case("init-out-file", ["init", "nope4", "--images", "imgs", "--out", "afile"]),
        Case("init-out-full", ["init", "nope5", "--images", "imgs", "--out", "disk"], ["disk/**"], tmpfs=("disk", -1)),
        Case("init-sigint", ["init", "nope6", "--images", "/usr"], ["competitions/**"],
             signal_after=(signal.SIGINT, 2)),
    ]
    # ---- validate and config (items 12, 18)
    low = ["--set", "output.n_min=2", "--set", "generate.n_images=100"]
    out += [
        Case("validate-faces-unknown-class", ["validate", "sample-faces", "faces-cats.zip", *low]),
        Case("validate-faces-traversal", ["validate", "sample-faces", "faces-trav.zip", *low]),
        Case("validate-ckpt-as-zip", ["validate", "sample-dogs", ck]),
        Case("validate-folder", ["validate", "sample-dogs", "run"]),
        Case("config-keys-bad-set", ["config", "sample-dogs", "--keys", "--set", "train.lr_g=fast"]),
        Case("config-keys-unknown", ["config", "nope", "--keys"]),
        Case("assets-help", ["assets", "push", "--help"]),
    ]
    return out


# --------------------------------------------------------------------------- running one case


ABSOLUTE = [Path(p) for p in ("/tmp/x", "/abs", "/x", "/elsewhere", "/evil", "/tmp/evil", "/tmp/elsewhere")]


def tree(root: Path) -> dict[str, str]:
    """sha256 of every file under root (the shared cache left out: every case may fill it), and whether
    the absolute places an escape would reach exist."""
    out = {str(p): "exists" for p in ABSOLUTE if p.exists()}
    for p in sorted(root.rglob("*")):
        if p.relative_to(root).parts[0] == "cache":
            continue
        if p.is_symlink() or not p.is_file():
            continue
        try:
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
        except OSError:
            out[str(p.relative_to(root))] = "unreadable"
    return out


def command(case: Case, box: Path) -> list[str]:
    cmd = [sys.executable, "-m", "kompete", *case.argv]
    mounts = []
    if case.readonly:
        mounts.append(f"mount --bind -o ro {shlex.quote(str(box / case.readonly))} {shlex.quote(str(box / case.readonly))}")
    if case.tmpfs:
        folder, kib = case.tmpfs
        path = shlex.quote(str(box / folder))
        # a copy of what the folder holds, on a disk with `kib` KiB to spare (0: exactly full)
        mounts.append(f"cp -a {path} {path}.src && mount -t tmpfs -o size={{size}}k tmpfs {path} && "
                      f"cp -a {path}.src/. {path}/ && rm -rf {path}.src")
        entries = list((box / folder).rglob("*"))  # tmpfs counts whole 4 KiB pages, and a page per entry
        used = sum(-(-p.stat().st_size // 4096) * 4 for p in entries if p.is_file()) + 4 * len(entries)
        mounts[-1] = mounts[-1].replace("{size}", str(used + max(kib, 0) + 16))
        if kib < 0:  # no byte left at all
            mounts[-1] += f" && {{ dd if=/dev/zero of={path}/.filler bs=1k 2>/dev/null; true; }}"
    if not mounts:
        return cmd
    # inside the private mount namespace the tmpfs disappears at exit: hash its files before and after there
    check = ""
    if case.tmpfs:
        folder = shlex.quote(str(box / case.tmpfs[0]))
        check = (f"(cd {folder} && find . -type f -exec sha256sum {{}} + | sort) > /tmp/.sweep-before.$$; "
                 f"\"$@\"; rc=$?; (cd {folder} && find . -type f -exec sha256sum {{}} + | sort) > /tmp/.sweep-after.$$; "
                 f"echo SWEEP-LOST $(comm -23 /tmp/.sweep-before.$$ /tmp/.sweep-after.$$ | grep -v -e '\\.kompete-train\\.lock' "
                 f"-e 'metrics.csv' -e 'config.yaml' -e 'losses.png' -e 'd_outputs.png' -e 'samples/' | wc -l) >&2; "
                 f"rm -f /tmp/.sweep-before.$$ /tmp/.sweep-after.$$; exit $rc")
    script = " && ".join(mounts) + (f" && {{ {check}; }}" if check else ' && exec "$@"')
    return ["unshare", "-m", "sh", "-c", script, "sh", *cmd]


def run_case(case: Case, world: Path, scratch: Path, env: dict[str, str], server: FakeKaggle) -> dict:
    box_rel = f"{case.id}/a/b/c/box"
    box = scratch / "cases" / box_rel
    shutil.copytree(world, box, symlinks=True)
    if case.setup:
        case.setup(box)
    server.reset()
    server.script_kernel("kompete-evil", ["COMPLETE"], files={"images.zip": images_zip(["0.png"])})
    server.script_kernel("kompete-sample-dogs-base-base", ["RUNNING"])  # `wait` has something to wait for
    before = tree(scratch)
    case_env = {**env, "KOMPETE_DB": str(box / "ledger.db"), **case.env}
    skipped = (case.readonly or case.tmpfs) and not CAN_MOUNT
    if skipped:
        return {"id": case.id, "skipped": True}
    proc = subprocess.Popen(command(case, box), env=case_env, cwd=box, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_default_sigint)
    if case.signal_after:
        sig, after = case.signal_after
        try:
            proc.wait(timeout=after)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, sig)  # the process group this Popen started, nothing else
    try:
        stdout, stderr = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
    after = tree(scratch)
    may = case.may_write
    prefix = f"cases/{box_rel}/"
    inner = lambda rel: rel[len(prefix):] if rel.startswith(prefix) else None  # noqa: E731
    lost = [r for r, h in before.items() if after.get(r) != h and not (inner(r) and _may(inner(r), may))]
    new = [r for r in after if r not in before and not (inner(r) and _may(inner(r), may))]
    both_out = stdout + stderr
    lost_in_mount = sum(int(line.split()[1]) for line in stderr.splitlines() if line.startswith("SWEEP-LOST "))
    return {"id": case.id, "rc": proc.returncode, "traceback": "Traceback" in both_out, "lost": lost,
            "lost_in_mount": lost_in_mount, "outside": new, "last": ([x for x in stderr.strip().splitlines() if not x.startswith("SWEEP-LOST")] or [""])[-1][:160]}


def _default_sigint() -> None:
    """A sweep started in the background (`&`) ignores SIGINT, and its children would inherit that: the
    command under test gets Python's own Ctrl-C handling back."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _may(rel: str, globs: list[str]) -> bool:
    for g in globs:
        base = g.removesuffix("/**").removesuffix("*")
        if rel == base or rel.startswith(base.rstrip("/") + "/") or (g.endswith("*") and rel.startswith(base)):
            return True
    return False


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", default="", help="only cases whose id contains this")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="kompete-sweep-"))
    server = FakeKaggle().start()
    try:
        env = transcript_env(str(scratch), server, REPO, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        env["KOMPETE_DB"] = str(scratch / "world" / "ledger.db")
        (scratch / "world").mkdir()
        build_world(scratch / "world", env)
        results = []
        for case in cases():
            if args.k not in case.id:
                continue
            started = time.monotonic()
            r = run_case(case, scratch / "world", scratch, env, server)
            r["s"] = time.monotonic() - started
            results.append(r)
            if r.get("skipped"):
                print(f"SKIP {case.id} (needs root and unshare)")
                continue
            bad = r["traceback"] or r["lost"] or r["outside"] or r["lost_in_mount"]
            if not bad and not args.keep:
                shutil.rmtree(scratch / "cases" / case.id, ignore_errors=True)  # keeps the snapshots small
            print(f"{'BAD ' if bad else 'ok  '} {case.id:36} rc={r['rc']:<4} {r['s']:5.1f}s  {r['last']}"
                  + (f"\n      traceback={r['traceback']} lost={r['lost'][:3]} in-mount={r['lost_in_mount']} "
                     f"outside={r['outside'][:3]}" if bad else ""), flush=True)
        ran = [r for r in results if not r.get("skipped")]
        counts = {"cases": len(ran), "skipped": len(results) - len(ran),
                  "tracebacks": sum(r["traceback"] for r in ran),
                  "files lost": sum(len(r["lost"]) + r["lost_in_mount"] for r in ran),
                  "writes outside": sum(len(r["outside"]) for r in ran),
                  "nonzero exits": sum(r["rc"] != 0 for r in ran)}
        print("\n" + ", ".join(f"{k}: {v}" for k, v in counts.items()))
        assert not server.escaped, server.escaped
        return 1 if counts["tracebacks"] or counts["files lost"] or counts["writes outside"] else 0
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"kept {scratch}")


if __name__ == "__main__":
    sys.exit(main())
