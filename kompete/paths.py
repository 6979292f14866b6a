"""Where things live: local folders vs a Kaggle kernel. The only module with hard-coded paths."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent


def kaggle_root() -> Path:
    """The root of a Kaggle kernel's file system; KOMPETE_KAGGLE_ROOT moves it for local dry runs and tests."""
    return Path(os.environ.get("KOMPETE_KAGGLE_ROOT", "/kaggle"))


def kaggle_input() -> Path:
    return kaggle_root() / "input"


def kaggle_working() -> Path:
    return kaggle_root() / "working"


def on_kaggle() -> bool:
    """True inside a Kaggle kernel (or a local stand-in made with KOMPETE_KAGGLE_ROOT)."""
    explicit = "KOMPETE_KAGGLE_ROOT" in os.environ or "KAGGLE_KERNEL_RUN_TYPE" in os.environ
    return explicit and kaggle_input().is_dir()


def cache_dir() -> Path:
    """User cache for prepared data and reference statistics; never inside the installed package."""
    if "KOMPETE_CACHE_DIR" in os.environ:
        root = Path(os.environ["KOMPETE_CACHE_DIR"])
    elif on_kaggle():
        root = Path(tempfile.gettempdir()) / "kompete-cache"  # /kaggle/working counts against the output limits
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kompete"
    root.mkdir(parents=True, exist_ok=True)
    return root


def competitions_dirs() -> list[Path]:
    """Folders searched for `<name>.yaml`, first match wins."""
    dirs = [Path(p) for p in os.environ.get("KOMPETE_COMPETITIONS", "").split(os.pathsep) if p]
    dirs += [Path.cwd() / "competitions", REPO_DIR / "competitions"]
    seen: list[Path] = []
    for d in dirs:
        if d.resolve() not in seen:
            seen.append(d.resolve())
    return seen


def default_runs_dir() -> Path:
    return kaggle_working() if on_kaggle() else Path.cwd() / "runs"


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.

    A killed process leaves either the old file or the new one, never half of one.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # the pid in the name lets a later run tell a dead process's leftover from a live writer's file
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp")
    except OSError as exc:
        raise _naming(exc, target) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, _default_file_mode())  # mkstemp makes 0600; a zip must be readable by others
        os.replace(tmp_path, target)
    except OSError as exc:
        # a write error has no file name (a full disk); one about the temporary file is about the target
        if exc.filename is None or tmp in (str(exc.filename), str(exc.filename2)):
            raise _naming(exc, target) from None
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _naming(exc: OSError, target: Path) -> OSError:
    """The same error about `target`: the user never chose the hidden temporary name beside it."""
    return type(exc)(exc.errno, exc.strerror, str(target)) if exc.errno is not None else exc


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files atomic_output left beside `path` in processes that are gone
    (killed with SIGKILL, or a crash); a live writer's file is left alone. Returns what was removed."""
    target = Path(path)
    removed = []
    for tmp in target.parent.glob(f".{glob_escape(target.name)}.*.tmp"):
        pid_text = tmp.name[len(target.name) + 2:].split(".", 1)[0]
        if pid_text.isdigit() and pid_alive(int(pid_text)):
            continue
        if not pid_text.isdigit() and _age_s(tmp) < 3600:  # an older kompete's name: no pid, go by age
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _age_s(path: Path) -> float:
    import time

    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except OverflowError:
        return False
    return True


def check_writable(path: str | os.PathLike, what: str = "output") -> Path:
    """Make sure a file can be written at `path` (its folder created, a probe file written and removed)
    before minutes of work go into it; a KompeteError names the place and the reason otherwise."""
    from kompete.errors import KompeteError

    target = Path(path)
    if target.is_dir():
        raise KompeteError(f"cannot write the {what} {target}: it is a folder", hint="give a file name")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise KompeteError(f"cannot write the {what} {target}: {exc.strerror or exc}",
                           hint="choose a writable place") from None
    return target


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, remembered per (path, size, mtime): weights and zips are hashed more than once."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]
