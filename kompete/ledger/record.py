"""What other commands write into the ledger: a scored zip, a submission just made."""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from kompete.ledger.store import Ledger, now_iso
from kompete.paths import REPO_DIR, file_sha256  # noqa: F401  (file_sha256: part of this module's API)


@lru_cache(maxsize=1)
def kompete_commit() -> str | None:
    """The git commit of the kompete checkout, or None for an installed copy."""
    if not (REPO_DIR / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(REPO_DIR), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def record_safely(fn: Callable[..., Any], *args: Any, db_path: str | Path | None = None,
                  warn: Callable[[str], None] | None = None, **kwargs: Any) -> Any:
    """Open the ledger and call `fn(ledger, *args, **kwargs)`; any failure becomes one warning (None back).

    The work being recorded is already done, so a locked, read-only or broken database must not turn its
    success into a failure. The library's way to record a run or a score (the CLI and the pipeline use it)."""
    try:
        with Ledger(db_path) as ledger:
            return fn(ledger, *args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - recording is best effort by design
        detail = exc.render() if hasattr(exc, "render") else f"{type(exc).__name__}: {exc}"
        (warn or _stderr)(f"Warning: not recorded in the ledger: {detail}")
        return None


def _stderr(line: str) -> None:
    import sys

    print(line, file=sys.stderr, flush=True)


def run_key(*, kernel_ref: str | None = None, kernel_version: int | None = None,
            zip_sha256: str | None = None, run_dir: str | None = None) -> str:
    """What names a run: the kernel version it ran as, else the zip it produced, else its folder."""
    if kernel_ref:
        return f"kernel:{kernel_ref}/{kernel_version if kernel_version is not None else 'latest'}"
    if zip_sha256:
        return f"zip:{zip_sha256}"
    if run_dir:
        return f"dir:{Path(run_dir).resolve()}"
    raise ValueError("a run needs a kernel, a zip or a run dir to be named by")


def record_score(ledger: Ledger, competition: str, *, zip_path: str | Path | None = None,
                 fid: float | None = None, mifid: float | None = None, memorization: float | None = None,
                 n_images: int | None = None, images_per_s: float | None = None,
                 config: dict[str, Any] | None = None, config_hash: str | None = None,
                 kernel_ref: str | None = None, kernel_version: int | None = None,
                 run_dir: str | Path | None = None, started_at: Any = None, ended_at: Any = None,
                 metric: str | None = None, preprocess: str | None = None, resize: str | None = None) -> int:
    """Record local scores of a zip (and the run behind it). Scoring the same zip again updates the row.

    `metric`, `preprocess` and `resize` name what the scores were computed with (`metric.name`,
    `metric.preprocess`, `metric.resize`); give them with every score.

    A zip already recorded under a kernel version (by `kompete kernel output`, say) keeps that run, so
    its later submission of the same version links to these scores.
    """
    sha = file_sha256(zip_path) if zip_path else None
    key = run_key(kernel_ref=kernel_ref, kernel_version=kernel_version, zip_sha256=sha,
                  run_dir=str(run_dir) if run_dir else None)
    if kernel_ref is None and sha is not None:
        known = ledger.conn.execute("SELECT key FROM runs WHERE competition = ? AND zip_sha256 = ? "
                                    "ORDER BY id DESC LIMIT 1", (competition, sha)).fetchone()
        # else the training run that wrote the zip into its folder (`kompete train` records that folder)
        trained = run_key(run_dir=str(Path(zip_path).resolve().parent))  # type: ignore[arg-type]
        known = known or ledger.conn.execute("SELECT key FROM runs WHERE competition = ? AND key = ?",
                                             (competition, trained)).fetchone()
        key = known[0] if known else key
    return ledger.record_run(
        competition, key,
        config=config, config_hash=config_hash, git_commit=kompete_commit(),
        kernel_ref=kernel_ref, kernel_version=kernel_version, run_dir=str(run_dir) if run_dir else None,
        started_at=started_at, ended_at=ended_at, fid=fid, mifid=mifid, memorization=memorization,
        n_images=n_images, images_per_s=images_per_s, metric=metric, preprocess=preprocess, resize=resize,
        zip_path=str(Path(zip_path).resolve()) if zip_path else None, zip_sha256=sha)


def record_submit(ledger: Ledger, competition: str, ref: int, *, kernel_ref: str | None = None,
                  kernel_version: int | None = None, description: str | None = None,
                  file_name: str | None = None, date: Any = None, run_id: int | None = None) -> None:
    """Record a submission just made; `leaderboard sync` fills in its status and scores later.

    A submission from a kernel version is linked to that version's run when one is recorded.
    """
    ledger.record_submission(competition, ref, date=date or now_iso(), description=description,
                             file_name=file_name,
                             kernel_ref=kernel_ref, kernel_version=kernel_version, run_id=run_id)
