"""A table of user mistakes, each run as a real `kompete` subprocess: non-zero exit, one `Error:` line naming
what is wrong, no traceback, and the run folder / zip / database it touched left exactly as it was.

Plus the cases that need their own set-up: the run-folder lock, `--fresh`, resume, damaged checkpoints
and caches, read-only places and the ledger's read-only commands.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO

PY = sys.executable
TINY = ["data.image_size=16", "train.g_channels=8", "train.d_channels=8", "gan.z_dim=16", "train.batch_size=16",
        "train.log_every=1", "output.n_min=1", "generate.n_images=25", "generate.batch_size=16",
        "data.sample.n_images=16"]
SETS = [a for s in TINY for a in ("--set", s)]
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def kompete(*args: str, env: dict | None = None, readonly: Path | None = None, timeout: float = 300):
    """The real CLI; with `readonly`, that folder is a read-only file system for the command (a private
    read-only bind mount when we are root, where chmod would not stop us; plain chmod otherwise)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **ONE_THREAD, **(env or {})}
    cmd = [PY, "-m", "kompete", *args]
    if readonly is not None and os.geteuid() == 0:
        cmd = ["unshare", "-m", "sh", "-c", f"mount --bind -o ro '{readonly}' '{readonly}' && exec \"$@\"", "sh", *cmd]
    elif readonly is not None:
        readonly.chmod(0o555)
    try:
        return subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=REPO, timeout=timeout)
    finally:
        if readonly is not None and os.geteuid() != 0:
            readonly.chmod(0o755)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` with its sha256: 'unchanged' means this compares equal."""
    if folder.is_file():
        return {folder.name: hashlib.sha256(folder.read_bytes()).hexdigest()}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_user_error(proc, expect: str) -> None:
    both = proc.stdout + proc.stderr
    assert proc.returncode != 0, both
    assert "Traceback" not in both, both
    assert "Error:" in proc.stderr, both
    assert expect.lower() in proc.stderr.lower(), both


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One tiny trained run (2 steps) and the files the mistakes point at."""
    root = Path(tempfile.mkdtemp(prefix="kompete-mistakes-"))
    cache = tmp_path_factory.getbasetemp() / "kompete-cache"
    env = {"KOMPETE_CACHE_DIR": str(cache), "KOMPETE_DB": str(root / "ledger.db")}
    os.environ.update(env)  # the module's subprocesses share the session cache and this ledger
    run = root / "run"
    proc = kompete("train", "sample-dogs", "--out", str(run), "--max-steps", "2", "--time-budget", "10m", "--quiet",
                   "--no-record", *SETS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    comps = root / "comps"
    comps.mkdir()
    good = (REPO / "competitions" / "sample-dogs.yaml").read_text()
    (comps / "dup.yaml").write_text(good.replace("name: sample-dogs", "name: dup") + "\ntrain:\n  lr_g: 1.0e-4\n")
    (comps / "latin1.yaml").write_bytes("name: latin1\ntask: generate\ntitle: caf\xe9\n".encode("latin-1"))
    (comps / "badyaml.yaml").write_text("name: badyaml\ntask: [generate\n")
    (comps / "alist.yaml").write_text("- 1\n- 2\n")
    (comps / "notask.yaml").write_text("name: notask\n")
    (root / "junk.zip").write_bytes(b"not a zip at all" * 64)
    (root / "empty.pt").write_bytes(b"")
    (root / "random.pt").write_bytes(os.urandom(4096))
    (root / "emptydir").mkdir()
    (root / "afile").write_text("x")
    (root / "ro").mkdir()
    (root / "junk.db").write_bytes(b"this is not sqlite" * 100)
    yield {"root": root, "run": run, "comps": comps, "env": env}
    shutil.rmtree(root, ignore_errors=True)


# (id, argv with {placeholders}, extra env, text the Error line must contain)
CASES = [
    # config: names, overrides, numbers
    ("unknown-competition", ["config", "no-such-comp"], {}, "unknown competition"),
    ("missing-yaml-path", ["config", "{root}/missing.yaml"], {}, "does not exist"),
    ("set-without-equals", ["config", "sample-dogs", "--set", "train.lr_g"], {}, "expected key=value"),
    ("set-unknown-key", ["config", "sample-dogs", "--set", "train.lr=1"], {}, "unknown key 'lr'"),
    ("set-unknown-section", ["config", "sample-dogs", "--set", "trian.lr_g=1"], {}, "unknown key 'trian'"),
    ("set-value-as-section", ["config", "sample-dogs", "--set", "train.lr_g.x=1"], {}, "is a value"),
    ("lr-nan", ["config", "sample-dogs", "--set", "train.lr_g=nan"], {}, "finite"),
    ("lr-yaml-nan", ["config", "sample-dogs", "--set", "train.lr_g=.nan"], {}, "finite"),
    ("lr-inf", ["config", "sample-dogs", "--set", "train.lr_d=inf"], {}, "finite"),
    ("eps-nan", ["config", "sample-dogs", "--set", "metric.eps=nan"], {}, "metric.eps"),
    ("lr-text", ["config", "sample-dogs", "--set", "train.lr_g=fast"], {}, "train.lr_g"),
    ("lr-zero", ["config", "sample-dogs", "--set", "train.lr_g=0"], {}, "train.lr_g"),
    ("batch-zero", ["config", "sample-dogs", "--set", "train.batch_size=0"], {}, "train.batch_size"),
    ("batch-float", ["config", "sample-dogs", "--set", "train.batch_size=1.5"], {}, "integer"),
    ("huge-seed", ["config", "sample-dogs", "--set", "train.seed=99999999999999999999999"], {}, "train.seed"),
    ("negative-seed", ["config", "sample-dogs", "--set", "generate.seed=-1"], {}, "generate.seed"),
    ("seed-over-2-32", ["config", "sample-dogs", "--set", "train.seed=4294967296"], {}, "train.seed"),
    ("bool-text", ["config", "sample-dogs", "--set", "train.amp=maybe"], {}, "true or false"),
    ("literal", ["config", "sample-dogs", "--set", "data.layout=cats"], {}, "data.layout"),
    ("model-name", ["config", "sample-dogs", "--set", "train.model=resnet9000"], {}, "train.model"),
    # registry names are checked where they are used (train, generate, kernel build), not by `config` (no torch)
    ("loss-name", ["train", "sample-dogs", *SETS, "--set", "train.loss=l7"], {}, "train.loss"),
    ("n-images-low", ["config", "sample-dogs", "--set", "generate.n_images=500"], {}, "generate.n_images"),
    ("n-images-high", ["config", "gan-getting-started", "--set", "generate.n_images=12000"], {}, "generate.n_images"),
    ("n-min-over-max", ["config", "sample-dogs", "--set", "output.n_min=20", "--set", "output.n_max=10"], {}, "n_min"),
    ("set-blamed-not-file", ["config", "sample-dogs", "--set", "train.beta1=2"], {}, "--set train.beta1"),
    ("section-not-mapping", ["config", "sample-dogs", "--set", "train=3"], {}, "mapping"),
    ("list-not-list", ["config", "sample-dogs", "--set", "kernel.dataset_sources=abc"], {}, "list"),
    # config files
    ("duplicate-yaml-key", ["config", "{comps}/dup.yaml"], {}, "duplicate key 'train'"),
    ("non-utf8-yaml", ["config", "{comps}/latin1.yaml"], {}, "not UTF-8"),
    ("invalid-yaml", ["config", "{comps}/badyaml.yaml"], {}, "not valid YAML"),
    ("yaml-list", ["config", "{comps}/alist.yaml"], {}, "mapping"),
    ("yaml-missing-task", ["config", "{comps}/notask.yaml"], {}, "'task'"),
    ("competitions-broken-file", ["competitions"], {"KOMPETE_COMPETITIONS": "{comps}"}, "latin1.yaml"),
    # train: inputs checked before any training
    ("budget-empty", ["train", "sample-dogs", "--time-budget", ""], {}, "--time-budget"),
    ("budget-text", ["train", "sample-dogs", "--time-budget", "soon"], {}, "--time-budget"),
    ("budget-zero", ["train", "sample-dogs", "--time-budget", "0"], {}, "positive"),
    ("budget-zero-units", ["train", "sample-dogs", "--time-budget", "0h0m"], {}, "positive"),
    ("kernel-start-epoch", ["train", "sample-dogs", *SETS], {"KOMPETE_KERNEL_START": "0"}, "KOMPETE_KERNEL_START"),
    ("kernel-start-text", ["train", "sample-dogs", *SETS], {"KOMPETE_KERNEL_START": "today"}, "KOMPETE_KERNEL_START"),
    ("kernel-start-nan", ["train", "sample-dogs", *SETS], {"KOMPETE_KERNEL_START": "nan"}, "KOMPETE_KERNEL_START"),
    ("kernel-start-future", ["train", "sample-dogs", *SETS], {"KOMPETE_KERNEL_START": "99999999999"}, "future"),
    ("fresh-with-resume", ["train", "sample-dogs", "--out", "{run}", "--fresh", "--resume", "{run}"], {}, "--fresh and --resume"),
    ("device-banana", ["train", "sample-dogs", "--out", "{run}", "--device", "banana", *SETS], {}, "--device 'banana'"),
    ("device-cuda-99", ["train", "sample-dogs", "--out", "{run}", "--device", "cuda:99", *SETS], {}, "--device cuda:99"),
    ("max-steps-negative", ["train", "sample-dogs", "--max-steps", "-1"], {}, "--max-steps"),  # 0 asks for an empty run
    ("train-unknown-comp", ["train", "sample-dog"], {}, "unknown competition"),
    ("train-bad-data-dir", ["train", "sample-dogs", "--out", "{run}", "--data-dir", "{root}/nowhere", *SETS], {},
     "nowhere"),
    ("sample-hint-is-runnable", ["train", "sample-dogs", "--out", "{run}", "--data-dir", "{root}/emptydir", *SETS], {},
     "kompete data sample-dogs"),
    ("train-out-under-file", ["train", "sample-dogs", "--out", "{root}/afile/run", *SETS], {}, "afile"),
    ("train-fresh-bad-data", ["train", "sample-dogs", "--out", "{run}", "--fresh", "--data-dir", "{root}/nowhere",
                              *SETS], {}, "nowhere"),
    ("train-resume-missing", ["train", "sample-dogs", "--out", "{root}/other", "--resume", "{root}/emptydir", *SETS],
     {}, "no checkpoint"),
    # generate
    ("generate-missing-path", ["generate", "{root}/nothing/"], {}, "does not exist"),
    ("generate-no-checkpoint", ["generate", "{root}/emptydir"], {}, "no checkpoint"),
    ("generate-zero-byte-ckpt", ["generate", "{root}/empty.pt"], {}, "empty"),
    ("generate-random-ckpt", ["generate", "{root}/random.pt"], {}, "not a torch checkpoint"),
    ("generate-n-zero", ["generate", "{run}", "--n", "0"], {}, "--n"),
    ("generate-n-outside", ["generate", "{run}", "--n", "20000", "--out", "{root}/x.zip"], {}, "outside"),
    ("generate-huge-seed", ["generate", "{run}", "--seed", "99999999999999999999999"], {}, "--seed"),
    ("generate-truncation", ["generate", "{run}", "--truncation", "-1"], {}, "--truncation"),
    ("generate-device", ["generate", "{run}", "--device", "tpu", "--out", "{root}/x.zip"], {}, "--device 'tpu'"),
    ("generate-out-under-file", ["generate", "{run}", "--out", "{root}/afile/images.zip"], {}, "afile"),
    # score and validate
    ("score-usage", ["score", "sample-dogs"], {}, "usage"),
    ("score-missing", ["score", "sample-dogs", "{root}/missing.zip"], {}, "no such file"),
    ("score-run-without-zip", ["score", "sample-dogs", "{run}"], {}, "run folder without its images.zip"),
    ("score-device", ["score", "sample-dogs", "{root}/junk.zip", "--device", "gpu0"], {}, "--device 'gpu0'"),
    ("score-weights-missing", ["score", "sample-dogs", "{root}/junk.zip", "--inception-weights", "{root}/w.pth"], {},
     "w.pth"),
    ("score-weights-env-missing", ["score", "sample-dogs", "{root}/junk.zip"],
     {"KOMPETE_INCEPTION_WEIGHTS": "{root}/nope.pth"}, "KOMPETE_INCEPTION_WEIGHTS"),
    ("validate-missing", ["validate", "sample-dogs", "{root}/missing.zip"], {}, "missing.zip"),
    ("validate-junk", ["validate", "sample-dogs", "{root}/junk.zip"], {}, "junk.zip"),
    # ledger, kernel, data
    ("ledger-junk-db", ["runs", "--db", "{root}/junk.db"], {}, "not a kompete ledger"),
    ("runs-compare-unknown", ["runs", "compare", "1", "2", "--db", "{root}/typo/k.db"], {}, "1"),
    ("submit-sample", ["kernel", "submit", "sample-dogs", "--kernel", "alice/x"], {}, "offline sample"),
    ("poll-negative", ["kernel", "status", "alice/x", "--poll", "-1"], {}, "--poll"),
    ("kernel-build-unknown", ["kernel", "build", "nope"], {}, "unknown competition"),
    ("download-sample", ["data", "download", "sample-dogs"], {}, "sample competition"),
    ("data-unknown", ["data", "nope"], {}, "unknown competition"),
]


def test_the_table_covers_every_command():
    commands = {c[1][0] for c in CASES}
    assert len(CASES) >= 60
    assert {"config", "competitions", "train", "generate", "score", "validate", "runs", "kernel", "data"} <= commands


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_user_mistake_is_one_plain_error_and_changes_nothing(world, case):
    _, argv, env, expect = case
    fill = {k: str(v) for k, v in world.items() if isinstance(v, Path)}
    args = [a.format(**fill) for a in argv]
    env = {k: v.format(**fill) for k, v in env.items()}
    before_run, before_root = snapshot(world["run"]), sorted(p.name for p in world["root"].iterdir())
    proc = kompete(*args, env=env)
    assert_user_error(proc, expect)
    assert snapshot(world["run"]) == before_run  # the trained run folder is exactly as it was
    assert sorted(p.name for p in world["root"].iterdir()) == before_root  # and nothing new appeared (no db, no dirs)
    assert not (world["root"] / "typo").exists()


# --------------------------------------------------------------------------- the run folder


@pytest.mark.slow
def test_a_second_training_into_a_locked_folder_is_refused(world):
    from kompete.train.rundir import LOCK_NAME

    run = world["run"]
    lock = run / LOCK_NAME
    lock.write_text(f"{os.getpid()} {os.uname().nodename}\n")  # this test process is alive: a live training
    try:
        before = snapshot(run)
        proc = kompete("train", "sample-dogs", "--out", str(run), "--max-steps", "3", "--no-record", *SETS)
        assert_user_error(proc, "in use by another training")
        assert snapshot(run) == before
    finally:
        lock.unlink()


@pytest.mark.slow
def test_a_stale_lock_is_taken_over_and_fresh_moves_the_old_run_aside(world, tmp_path):
    from kompete.train.rundir import LOCK_NAME

    run = tmp_path / "run"
    shutil.copytree(world["run"], run)
    old = snapshot(run)
    dead = subprocess.run([PY, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    (run / LOCK_NAME).write_text(f"{dead} {os.uname().nodename}\n")
    proc = kompete("train", "sample-dogs", "--out", str(run), "--fresh", "--max-steps", "1", "--time-budget", "10m",
                   "--quiet", "--no-record", *SETS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "stale lock" in proc.stderr and not (run / LOCK_NAME).exists()
    (aside,) = (run / "aside").iterdir()
    moved = snapshot(aside)
    assert {k: v for k, v in old.items() if k != LOCK_NAME} == moved  # every old file, byte for byte
    assert "resumed" not in proc.stdout  # a fresh start, not a resume of the moved checkpoints


def test_metrics_are_cut_back_to_the_checkpoint_step(tmp_path):
    from kompete.train.rundir import truncate_metrics

    path = tmp_path / "metrics.csv"
    path.write_text("step,epoch,d\r\n" + "".join(f"{s},0,0.5\r\n" for s in range(2, 30, 2)) + "30,0,0.")  # half a row
    assert truncate_metrics(path, 14) == 8
    assert [line.split(",")[0] for line in path.read_text().splitlines()] == ["step", *map(str, range(2, 15, 2))]


def test_the_resume_hint_keeps_the_run_folder_and_the_overrides():
    from kompete.cli.train_commands import resume_command

    hint = resume_command("sample-dogs", Path("/tmp/my run"), "data/x", ("train.lr_g=1e-4",))
    assert hint == "kompete train sample-dogs --out '/tmp/my run' --data-dir data/x --set train.lr_g=1e-4"


# --------------------------------------------------------------------------- checkpoints, caches, temp files


def test_a_damaged_newest_checkpoint_falls_back_to_an_older_one(world, tmp_path, capsys):
    from kompete.errors import TrainingError
    from kompete.train import state

    run = tmp_path / "run"
    shutil.copytree(world["run"], run)
    found = state.list_checkpoints(run)
    assert len(found) >= 2
    found[-1].write_bytes(os.urandom(2048))
    warnings: list[str] = []
    path, payload = state.load_newest(run, warnings.append)
    assert path == found[-2] and payload["format"] == state.FORMAT
    assert found[-1].name in warnings[0] and "weights_only" not in warnings[0]
    for p in found:
        p.write_bytes(b"")
    with pytest.raises(TrainingError) as err:
        state.load_newest(run)
    assert "empty" in err.value.message and "weights_only" not in err.value.render()


def test_a_damaged_cache_is_rebuilt(tmp_path):
    from kompete.data import cache

    bad = tmp_path / "x.npz"
    bad.write_bytes(b"PK\x03\x04 definitely not a whole zip")
    assert cache.load(bad) is None


def test_a_dead_writers_temp_zip_is_removed_by_the_next_one(tmp_path):
    from kompete.archive import ZipImageWriter

    dead = subprocess.run([PY, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    left = tmp_path / f".images.zip.{dead}.abc123.tmp"
    left.write_bytes(b"half a zip" * 1000)
    live = tmp_path / f".images.zip.{os.getpid()}.def456.tmp"  # a writer still at work keeps its file
    live.write_bytes(b"x")
    import numpy as np

    with ZipImageWriter(tmp_path / "images.zip") as zw:
        zw.add(np.zeros((8, 8, 3), np.uint8))
    assert not left.exists() and live.exists() and (tmp_path / "images.zip").is_file()


# --------------------------------------------------------------------------- read-only places and the ledger


def _can_make_readonly() -> bool:
    return os.geteuid() != 0 or shutil.which("unshare") is not None


@pytest.mark.slow
@pytest.mark.skipif(not _can_make_readonly(), reason="needs unshare as root, or a non-root user")
def test_read_only_places_fail_before_work(world):
    ro = world["root"] / "ro"
    for args, expect in ((["generate", str(world["run"]), "--out", str(ro / "images.zip")], "images.zip"),
                         (["train", "sample-dogs", "--out", str(ro / "run"), *SETS], "cannot write to the run folder"),
                         (["leaderboard", "show", "gan-getting-started", "--csv", str(ro / "lb.csv")], "lb.csv")):
        proc = kompete(*args, readonly=ro)
        assert_user_error(proc, expect)
        assert list(ro.iterdir()) == []


@pytest.mark.skipif(not _can_make_readonly(), reason="needs unshare as root, or a non-root user")
def test_a_valid_ledger_on_a_read_only_disk_is_still_read(tmp_path):
    from kompete.ledger.store import Ledger

    folder = Path(tempfile.mkdtemp(prefix="kompete-ro-ledger-"))
    try:
        db = folder / "k.db"
        with Ledger(db) as ledger:
            ledger.record_run("sample-dogs", "zip:abc", mifid=42.0)
        before = snapshot(folder)
        shown = kompete("runs", "--db", str(db), readonly=folder)
        assert shown.returncode == 0 and "42" in shown.stdout, shown.stdout + shown.stderr
        assert snapshot(folder) == before
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_read_only_commands_never_create_a_database(tmp_path):
    typo = tmp_path / "typo" / "kompte.db"
    for args in (["runs", "--db", str(typo)], ["leaderboard", "show", "gan-getting-started", "--db", str(typo)]):
        proc = kompete(*args)
        assert proc.returncode == 0 and "no database there" in proc.stdout, proc.stdout + proc.stderr
    assert not (tmp_path / "typo").exists()


# --------------------------------------------------------------------------- Kaggle client


def test_polling_keeps_a_floor_between_calls():
    from kompete.kernel import remote
    from kompete.kernel.client import KernelStatus

    class Client:
        calls = 0

        def status(self, ref, version):
            Client.calls += 1
            return KernelStatus("COMPLETE" if Client.calls > 3 else "RUNNING", "")

    slept: list[float] = []
    remote.watch(Client(), "a/b", poll_s=0, sleep=slept.append, clock=lambda: 0.0)
    assert len(slept) == 3 and min(slept) >= 0.9 * remote.MIN_POLL_S


def test_an_html_reply_is_named_as_such():
    import json

    from kompete.kernel.client import error_message

    try:
        json.loads("<html>Service Unavailable</html>")
    except ValueError as exc:
        err = error_message(exc, "status of a/b")
    assert "not JSON" in err.message and "Expecting value" not in err.render()
