"""Checkpoints: written atomically, the last K kept, found again from a run folder or a kernel's output."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import torch

from kompete.errors import TrainingError
from kompete.paths import atomic_output

CHECKPOINT_DIR = "checkpoints"
PATTERN = re.compile(r"step-(\d+)\.pt$")
FORMAT = 1
BEST = "best.pt"  # the lowest in-training MiFID; never rotated (its score is in best.json beside it)
BEST_JSON = "best.json"
FULL_BELOW = 64 << 20  # bytes free under which a failed write is put down to a full disk


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step-{step:08d}.pt"


def write_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """One checkpoint file, written atomically: a failed write (a full disk) leaves the previous files as
    they were and is one plain error, not torch's two chained RuntimeErrors."""
    try:
        with atomic_output(Path(path)) as tmp:
            torch.save({"format": FORMAT, **payload}, tmp)
    except (OSError, RuntimeError) as exc:
        raise TrainingError(f"cannot write checkpoint {path}: {_write_failure(Path(path), exc)}",
                            hint="free some space (or choose another --out); the earlier checkpoints are kept, "
                                 "resume from them") from None
    return Path(path)


def _write_failure(path: Path, exc: BaseException) -> str:
    """Why a write failed, in one line: the OS's reason, or torch's first line and the free space left."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return text
    if free < FULL_BELOW:  # torch says "unexpected pos ..." or "file write failed": the cause is the space
        return f"the disk is full ({free / 2**20:.1f} MiB free)"
    return f"{text} ({free / 2**20:.1f} MiB free on that disk)"


def save_checkpoint(run_dir: str | Path, step: int, payload: dict[str, Any], keep: int = 2) -> Path:
    """Write `payload` as checkpoints/step-NNNNNNNN.pt (atomically), then drop all but the newest `keep`."""
    path = write_checkpoint(checkpoint_path(run_dir, step), payload)
    for old in list_checkpoints(run_dir)[:-keep]:
        if old != path:
            old.unlink(missing_ok=True)
    return path


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Checkpoints of a run, oldest first. Accepts the run folder or its checkpoints/ folder."""
    root = Path(run_dir)
    folder = root / CHECKPOINT_DIR if (root / CHECKPOINT_DIR).is_dir() else root
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := PATTERN.search(p.name))]
    return [p for _, p in sorted(found)]


def find_checkpoint(where: str | Path) -> Path:
    """A checkpoint file itself, or the newest one in a run folder (also a previous kernel's output)."""
    path = Path(where)
    if path.is_file():
        return path
    found = list_checkpoints(path)
    if not found:
        # a kernel's output folder holds the run one level down
        found = sorted((p for sub in path.glob("*/") for p in list_checkpoints(sub)),
                       key=lambda p: p.stat().st_mtime) if path.is_dir() else []
    if not found:
        raise TrainingError(f"no checkpoint in {path}", hint="train first with `kompete train COMP`, "
                                                             "or point at a run folder holding checkpoints/")
    return found[-1]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which one, and why in plain words
        raise TrainingError(f"cannot read checkpoint {path}: {unreadable_reason(Path(path), exc)}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise TrainingError(f"{path} is not a kompete checkpoint")
    return payload


def best_checkpoint(where: str | Path) -> Path | None:
    """checkpoints/best.pt of a run folder (or of the run one level down, in a kernel's output), if any."""
    root = Path(where)
    for folder in (root, root / CHECKPOINT_DIR, *(sub / CHECKPOINT_DIR for sub in sorted(root.glob("*/")))):
        if (folder / BEST).is_file():
            return folder / BEST
    return None


def resume_run_folder(where: str | Path, which: str = "last") -> Path:
    """The run folder that `--resume WHERE` continues when no --out is given: the folder holding the
    checkpoints/ of the checkpoint it resumes (a previous kernel's output: its run one level down).

    Training elsewhere (runs/<competition>) would write over another run's metrics, config and
    checkpoints. A checkpoint file outside any checkpoints/ folder belongs to no run: --out must say where.
    """
    chosen = choose_checkpoint(where, which)
    if chosen.parent.name != CHECKPOINT_DIR:
        raise TrainingError(f"--resume {where}: {chosen.name} is not inside a run folder's {CHECKPOINT_DIR}/, "
                            "so it is unclear where this run goes on", hint="pass --out RUN_FOLDER")
    return chosen.parent.parent


def _best_for(path: Path, which: str) -> Path | None:
    """best.pt when `which` asks for it (best, or auto and the run kept one); `best` without one is an error."""
    if which not in ("best", "auto"):
        return None
    best = best_checkpoint(path)
    if best is None and which == "best":
        raise TrainingError(f"no {BEST} in {path}: the run kept no best checkpoint",
                            hint="train with eval.every_minutes > 0 to keep one, or take the newest checkpoint "
                                 "(`train --from last`, `generate --checkpoint last`)")
    return best


def choose_checkpoint(where: str | Path, which: str = "auto") -> Path:
    """`best`, `last`, or `auto` (the best when the run kept one, else the newest); a file path is itself."""
    path = Path(where)
    if path.is_file():
        return path
    return _best_for(path, which) or find_checkpoint(path)


def load_chosen(where: str | Path, which: str = "auto",
                warn: Callable[[str], None] | None = None) -> tuple[Path, dict[str, Any]]:
    """The checkpoint `choose_checkpoint` names, loaded; `last` is the newest that loads (see load_newest)."""
    path = Path(where)
    best = None if path.is_file() else _best_for(path, which)
    return (best, load_checkpoint(best)) if best is not None else load_newest(path, warn)


def describe_checkpoint(path: Path) -> str:
    """The checkpoint's name, with its in-training score when it is a best.pt."""
    if path.name == BEST:
        try:
            info = json.loads((path.parent / BEST_JSON).read_text())
            return (f"{path} (best: in-training MiFID {info['mifid']:.3f} on {info['n_images']} images "
                    f"at step {info['step']})")
        except (OSError, ValueError, KeyError):
            return f"{path} (best)"
    return f"{path} (last)" if PATTERN.search(path.name) else str(path)


def set_aside_later(run_dir: str | Path, step: int) -> Path | None:
    """Move the run's checkpoints newer than `step` into checkpoints/after-step-N/ (best-restart: the run
    goes on from an earlier step, and the newer files would otherwise be taken for its newest). Nothing
    is deleted; returns the folder, or None when there was nothing newer."""
    later = [p for p in list_checkpoints(run_dir) if int(PATTERN.search(p.name).group(1)) > step]
    if not later:
        return None
    aside = later[0].parent / f"after-step-{step:08d}"
    aside.mkdir(exist_ok=True)
    for p in later:
        p.rename(aside / p.name)
    return aside


def _looks_like_torch_save(path: Path) -> bool:
    """torch.save writes a zip archive (a legacy one starts with a pickle protocol opcode, 0x80)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def unreadable_reason(path: Path, exc: BaseException) -> str:
    """Why torch could not load `path`, without torch's advice to retry with weights_only=False
    (that would run arbitrary code from a file that is damaged or not ours)."""
    try:
        size = path.stat().st_size
    except OSError as err:
        return err.strerror or type(err).__name__
    if size == 0:
        return "the file is empty (0 bytes; an interrupted copy or a full disk?)"
    text = str(exc).splitlines()[0] if str(exc).strip() else ""
    if "weights_only" in str(exc) or "Unpickl" in type(exc).__name__ or not _looks_like_torch_save(path):
        # bytes that are neither torch.save's zip nor a legacy pickle make the unpickler fail anyhow
        # (IndexError, KeyError, ValueError...): the cause is the file, whatever the exception says
        return f"not a torch checkpoint, or damaged ({size} bytes)"
    if "zip archive" in text or "central directory" in text or isinstance(exc, (EOFError, RuntimeError)):
        return f"truncated or damaged ({size} bytes{': ' + text[:120] if text else ''})"
    return f"{type(exc).__name__}{': ' + text[:160] if text else ''}"


def load_newest(where: str | Path, warn: Callable[[str], None] | None = None) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint of a run folder that loads, with its payload.

    A damaged newest file (a kill during a copy, a full disk) falls back to the next older one, with a
    warning naming the file; only when none loads is it an error, listing them. A checkpoint file given
    by name is loaded as is: the user chose it.
    """
    path = Path(where)
    if path.is_file():
        return path, load_checkpoint(path)
    newest = find_checkpoint(path)
    candidates = [p for p in list_checkpoints(newest.parent) if p != newest][::-1]
    failures: list[str] = []
    for candidate in [newest, *candidates]:
        try:
            payload = load_checkpoint(candidate)
        except TrainingError as exc:
            failures.append(exc.message)
            continue
        if failures and warn is not None:
            warn(f"warning: {'; '.join(failures)}; using the older {candidate.name}")
        return candidate, payload
    raise TrainingError("; ".join(failures), hint=f"no checkpoint in {newest.parent} is readable: remove them, "
                                                  "or train with --fresh")
