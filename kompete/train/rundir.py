"""The run folder as a place one training owns: a lock, `--fresh` that moves the old run aside, and
metrics.csv cut back to the checkpoint a resume starts from.

Nothing here deletes a user's files: `--fresh` renames the previous run into `aside/<time>/` only after
every input has been checked, so a failure later still leaves the old run whole.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import socket
from pathlib import Path

import click

from kompete.errors import ConfigError, TrainingError
from kompete.paths import atomic_output, pid_alive

LOCK_NAME = ".kompete-train.lock"
ASIDE_DIR = "aside"
# What a run leaves in its folder; `--fresh` moves these (and nothing else) aside.
RUN_FILES = ("checkpoints", "metrics.csv", "metrics.old.csv", "samples", "config.yaml", "losses.png",
             "d_outputs.png")


def check_fresh_resume(fresh: bool, resume: str | Path | None) -> None:
    if fresh and resume is not None:
        raise ConfigError("--fresh and --resume contradict each other: --fresh starts over, --resume continues",
                          hint="drop one of them")


class RunLock:
    """An exclusive claim on a run folder, held for one training; a lock left by a dead process is taken over.

    Taking it also proves the folder is writable, before any data is loaded.
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._created_dir = False
        self._held = False

    def acquire(self) -> "RunLock":
        try:
            self._created_dir = not self.run_dir.exists()
            self.run_dir.mkdir(parents=True, exist_ok=True)
            for _ in range(2):  # the second try follows the removal of a stale lock
                try:
                    fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    self._break_if_stale()
                    continue
                with os.fdopen(fd, "w") as fh:
                    fh.write(f"{os.getpid()} {socket.gethostname()}\n")
                self._held = True
                return self
        except OSError as exc:
            raise TrainingError(f"cannot write to the run folder {self.run_dir}: {exc.strerror or exc}",
                                hint="choose a writable folder with --out") from None
        raise TrainingError(f"cannot take the lock {self.path}")

    def _break_if_stale(self) -> None:
        pid, host = read_lock(self.path)
        if pid is not None and host == socket.gethostname() and pid_alive(pid):
            raise TrainingError(f"{self.run_dir} is in use by another training (pid {pid})",
                                hint=f"wait for it, stop it, or train into another --out")
        if pid is not None and host not in ("", socket.gethostname()):
            raise TrainingError(f"{self.run_dir} is locked by a training on {host} (pid {pid})",
                                hint=f"if no training runs there any more, delete {self.path}")
        click.echo(f"note: removing the stale lock {self.path.name} of pid {pid} (no longer running)", err=True)
        self.path.unlink(missing_ok=True)

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        if read_lock(self.path)[0] == os.getpid():  # never remove a lock another process took over
            self.path.unlink(missing_ok=True)
        if self._created_dir:  # a run that failed before writing anything leaves no empty folder
            try:
                self.run_dir.rmdir()
            except OSError:
                pass

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_lock(path: Path) -> tuple[int | None, str]:
    try:
        fields = path.read_text().split()
        return int(fields[0]), (fields[1] if len(fields) > 1 else "")
    except (OSError, ValueError, IndexError):
        return None, ""  # unreadable or half-written: treated as stale


def set_aside(run_dir: str | Path) -> Path | None:
    """Move the previous run's files into run_dir/aside/<UTC time>/; returns that folder (None: nothing there).

    Also moves an old submission zip, which would otherwise still validate as this run's output.
    """
    run_dir = Path(run_dir)
    present = [run_dir / name for name in RUN_FILES if (run_dir / name).exists()]
    present += sorted(p for p in run_dir.glob("*.zip") if p.is_file())
    if not present:
        return None
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    dest = run_dir / ASIDE_DIR / stamp
    n = 1
    while dest.exists():
        n += 1
        dest = run_dir / ASIDE_DIR / f"{stamp}-{n}"
    dest.mkdir(parents=True)
    for p in present:
        p.rename(dest / p.name)
    return dest


def truncate_metrics(path: str | Path, step: int) -> int:
    """Drop metrics rows logged after `step` (a resume repeats them); returns how many were dropped."""
    path = Path(path)
    if not path.is_file():
        return 0
    # bytes that are not UTF-8 (a damaged or hand-edited file) are carried through unchanged, never an abort
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as f:
        try:
            rows = list(csv.reader(f))
        except csv.Error:  # a NUL byte or similar: the file is left as it is
            return 0
    if not rows or "step" not in rows[0]:
        return 0
    col = rows[0].index("step")
    keep = [rows[0]] + [r for r in rows[1:] if len(r) > col and _step(r[col]) is not None and _step(r[col]) <= step]
    dropped = len(rows) - len(keep)
    if dropped:
        with atomic_output(path) as tmp, tmp.open("w", newline="", encoding="utf-8", errors="surrogateescape") as f:
            csv.writer(f).writerows(keep)
    return dropped


def _step(text: str) -> int | None:
    try:
        return int(float(text))
    except (ValueError, OverflowError):  # "nan", "inf"
        return None
