"""Push a bundle, watch it run, fetch its output, submit it: the Kaggle side of the workflow.

Every function takes a `KaggleClient` so tests (and the ledger) drive the real client against any endpoint.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kompete.config import Config
from kompete.data.download import safe_member_path
from kompete.errors import ConfigError, DataError, KaggleError, QuotaError, RateLimitError
from kompete.kernel.client import KaggleClient, KernelStatus, PushResult, Submission
from kompete.paths import write_text_atomic

PUSH_RECORD = ".kompete-push.json"  # written beside the bundle: which kernel and version the last push made


def push(client: KaggleClient, folder: Path, timeout_s: int | None = None) -> PushResult:
    folder = Path(folder)
    if not (folder / "kernel-metadata.json").is_file():
        raise KaggleError(f"{folder} is not a kernel bundle (no kernel-metadata.json)",
                          hint="build one with `kompete kernel build COMP`")
    result = client.push(folder, timeout_s)
    write_text_atomic(folder / PUSH_RECORD, json.dumps(
        {"ref": result.ref, "version": result.version, "url": result.url, "pushed_at": time.time()}) + "\n")
    return result


def last_push(folder: Path) -> dict | None:
    try:
        return json.loads((Path(folder) / PUSH_RECORD).read_text())
    except (OSError, ValueError):
        return None


MIN_POLL_S = 1.0  # `--poll 0` made ~200 API calls a second; Kaggle rate-limits well before that


def watch(client: KaggleClient, ref: str, version: int | None = None, timeout_s: float = 12 * 3600,
          poll_s: float = 60.0, max_poll_s: float = 600.0, on_status: Callable[[KernelStatus], None] | None = None,
          sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> KernelStatus:
    """Poll until the kernel finishes; back off (x1.5, +-10% jitter) while it runs, honour 429 Retry-After."""
    deadline = clock() + timeout_s
    delay = max(MIN_POLL_S, poll_s)
    last = None
    while True:
        try:
            status = client.status(ref, version)
        except RateLimitError as exc:
            wait = max(MIN_POLL_S, exc.retry_after if exc.retry_after is not None else delay)
            if clock() + wait > deadline:
                raise
            sleep(wait)
            delay = min(max_poll_s, delay * 1.5)
            continue
        if on_status is not None and status.status != last:
            on_status(status)
        last = status.status
        if status.done:
            return status
        if clock() + delay > deadline:
            raise KaggleError(f"{ref} still {status.status} after {timeout_s:g} s",
                              hint=f"check again later with `kompete kernel status {ref} --wait`")
        sleep(delay * random.uniform(0.9, 1.1))
        delay = min(max_poll_s, delay * 1.5)


def log_tail(client: KaggleClient, ref: str, version: int | None = None, lines: int = 30) -> str:
    try:
        _, log = client.output_files(ref, version)
    except KaggleError:
        return ""
    return "\n".join(log.rstrip().splitlines()[-lines:])


def fetch_output(client: KaggleClient, ref: str, dest: Path, only: list[str] | None = None,
                 version: int | None = None) -> list[Path]:
    """Download the kernel's output files into `dest` (only `only`, when given) plus its log.

    Every name is checked before anything is fetched: one that would land outside `dest` stops the whole fetch.
    """
    dest = Path(dest)
    files, log = client.output_files(ref, version)
    for name, _ in files:
        try:
            safe_member_path(name)
        except DataError:
            raise KaggleError(f"refusing the output of {ref}: file name {name!r} points outside {dest}") from None
    wanted = [(n, u) for n, u in files if not only or n in only]
    missing = sorted(set(only or ()) - {n for n, _ in files})
    if missing:
        have = ", ".join(n for n, _ in files) or "nothing"
        raise KaggleError(f"{ref} has no output named {', '.join(missing)}; it has: {have}")
    written = [client.download_url(url, dest.joinpath(*safe_member_path(name).parts), f"downloading {name}")
               for name, url in wanted]
    if log and not only:
        slug = ref.split("/")[1]
        write_text_atomic(dest / f"{slug}.log", log)
        written.append(dest / f"{slug}.log")
    return written


@dataclass(frozen=True)
class SubmitResult:
    ref: int
    submission: Submission | None  # the scored submission with --wait


def check_limits(client: KaggleClient, cfg: Config) -> None:
    """Refuse before submitting when Kaggle or the YAML says today's submissions are used up."""
    limits = client.submission_limits(cfg.name)
    if limits.today >= cfg.limits.daily_submissions:
        raise QuotaError(f"daily submission limit reached for {cfg.name}: {limits.today} of "
                         f"{cfg.limits.daily_submissions} used today", hint="try again after midnight UTC")
    if limits.allowed_now <= 0:
        if limits.today == 0 and limits.total == 0:
            raise KaggleError(f"Kaggle allows no submission to {cfg.name} now",
                              hint=f"join the competition and accept its rules at kaggle.com/c/{cfg.name}")
        why = "the lifetime cap" if limits.limited_by_total else f"{limits.today} used today"
        raise QuotaError(f"Kaggle allows no more submissions to {cfg.name} now ({why})",
                         hint="try again after midnight UTC")


def check_local_zip(cfg: Config, zip_path: Path) -> None:
    """The kernel's images.zip, fetched with `kompete kernel output`, checked as Kaggle would check it."""
    from kompete.archive import validate_zip

    if not Path(zip_path).is_file():
        raise KaggleError(f"{zip_path} does not exist", hint="fetch it with `kompete kernel output REF --to DIR`")
    report = validate_zip(cfg, zip_path)
    if not report.ok:
        raise KaggleError(f"not submitting: {report.message()}")


def submit(client: KaggleClient, cfg: Config, ref: str, version: int | None, message: str,
           wait: bool = False, timeout_s: float = 3600, poll_s: float = 30.0, zip_path: Path | None = None,
           sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
           on_submitted: Callable[[int], None] | None = None) -> SubmitResult:
    """Submit; `on_submitted(ref)` runs as soon as Kaggle has the submission, before any waiting can fail."""
    refuse_sample(cfg)
    poll_s = max(MIN_POLL_S, poll_s)
    client.check_kernel_ref(ref)
    if zip_path is not None:
        check_local_zip(cfg, zip_path)
    check_limits(client, cfg)
    sub_ref = client.submit_code(cfg.name, ref, version, cfg.output.archive, message)
    if on_submitted is not None:
        on_submitted(sub_ref)
    if not wait:
        return SubmitResult(sub_ref, None)
    deadline = clock() + timeout_s
    while True:
        try:
            mine = [s for s in client.submissions(cfg.name) if s.ref == sub_ref]
        except RateLimitError as exc:
            wait_s = max(MIN_POLL_S, exc.retry_after if exc.retry_after is not None else poll_s)
            if clock() + wait_s > deadline:
                raise
            sleep(wait_s)
            continue
        if mine and mine[0].status != "PENDING":
            if mine[0].status == "ERROR":
                raise KaggleError(f"submission {sub_ref} failed scoring: {mine[0].error or 'no reason given'}")
            return SubmitResult(sub_ref, mine[0])
        if clock() + poll_s > deadline:
            raise KaggleError(f"submission {sub_ref} not scored after {timeout_s:g} s",
                              hint=f"see kaggle.com/c/{cfg.name}/submissions")
        sleep(poll_s)


def refuse_sample(cfg: Config) -> None:
    """An offline sample has no Kaggle competition: refuse before any API call."""
    if cfg.data.sample is not None:
        raise ConfigError(f"{cfg.name} is an offline sample competition; Kaggle has nothing to submit it to",
                          hint="submit a real competition, e.g. generative-dog-images")


@dataclass(frozen=True)
class SweepOutcome:
    folder: Path
    result: PushResult | None
    error: str | None


def push_many(client: KaggleClient, folders: list[Path], timeout_s: int | None = None) -> list[SweepOutcome]:
    """Push several bundles; Kaggle runs them in parallel up to the account's GPU session limit.

    A failure (e.g. that limit) is recorded for its kernel and the others still go.
    """
    outcomes = []
    for folder in folders:
        try:
            outcomes.append(SweepOutcome(folder, push(client, folder, timeout_s), None))
        except KaggleError as exc:
            if isinstance(exc, RateLimitError) and exc.retry_after:
                time.sleep(min(exc.retry_after, 60))
            outcomes.append(SweepOutcome(folder, None, exc.render()))
    return outcomes
