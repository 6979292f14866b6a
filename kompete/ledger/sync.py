"""Pull a competition's submissions, public leaderboard and daily allowance into the ledger.

Everything is fetched first (page by page, backing off on 429), then written in one transaction:
a sync that fails or is interrupted part way leaves the database exactly as it was. Writing is an
upsert, so a second sync adds only what is new: changed statuses and scores, and a snapshot only
when the leaderboard moved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from kompete.errors import KaggleError, RateLimitError
from kompete.ledger.store import LeaderboardRow, Ledger, iso, now_iso, parse_score

T = TypeVar("T")


@dataclass(frozen=True)
class SyncResult:
    competition: str
    submissions: int  # fetched
    new: int
    updated: int
    snapshot_id: int | None  # None: the leaderboard had not changed
    teams: int
    my_team: str | None
    my_rank: int | None
    requests: int
    retries: int

    def lines(self) -> list[str]:
        board = (f"leaderboard: {self.teams} teams, new snapshot" if self.snapshot_id is not None
                 else f"leaderboard: {self.teams} teams, unchanged")
        if self.my_rank is not None:
            board += f"; {self.my_team} ranks {self.my_rank}"
        return [f"{self.competition}: {self.submissions} submissions ({self.new} new, {self.updated} updated)",
                board, f"{self.requests} requests, {self.retries} retried after rate limiting"]


class _Backoff:
    """Calls that retry on 429, honouring Retry-After, else exponential from `base_s` (capped)."""

    def __init__(self, retries: int, sleep: Callable[[float], None], base_s: float = 2.0, cap_s: float = 120.0):
        self.retries, self.sleep, self.base_s, self.cap_s = retries, sleep, base_s, cap_s
        self.requests = 0
        self.retried = 0

    def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        for attempt in range(self.retries + 1):
            self.requests += 1
            try:
                return fn(*args, **kwargs)
            except RateLimitError as exc:
                if attempt == self.retries:
                    raise
                self.retried += 1
                delay = exc.retry_after if exc.retry_after is not None else self.base_s * 2 ** attempt
                self.sleep(min(delay, self.cap_s))
        raise AssertionError("unreachable")


def _all_pages(backoff: _Backoff, page_fn: Callable[..., tuple[list, str]], competition: str,
               max_pages: int, what: str) -> list:
    rows: list = []
    token, seen = "", set()
    for _ in range(max_pages):
        page, token = backoff(page_fn, competition, token)
        rows += page
        if not token:
            return rows
        if token in seen:
            raise KaggleError(f"{what} of {competition}: Kaggle returned the same page token twice")
        seen.add(token)
    raise KaggleError(f"{what} of {competition}: more than {max_pages} pages", hint="raise --max-pages")


@dataclass(frozen=True)
class Fetched:
    """Everything one sync read from Kaggle, before anything is written."""

    submissions: list  # client.Submission, newest first
    leaderboard: list | None  # client.LeaderboardEntry in rank order; None when not fetched
    limits: Any  # client.Limits
    requests: int
    retries: int


def fetch(client: Any, competition: str, *, max_pages: int = 100, retries: int = 5,
          sleep: Callable[[float], None] = time.sleep, leaderboard: bool = True) -> Fetched:
    """Read every page of submissions and of the leaderboard, and today's allowance, through `client`."""
    backoff = _Backoff(retries, sleep)
    subs = _all_pages(backoff, client.submissions_page, competition, max_pages, "listing submissions")
    entries = (_all_pages(backoff, client.leaderboard_page, competition, max_pages, "the leaderboard")
               if leaderboard else None)
    limits = backoff(client.submission_limits, competition)
    return Fetched(subs, entries, limits, backoff.requests, backoff.retried)


def store(ledger: Ledger, competition: str, got: Fetched, *, keep_rows: int = 100, now: Any = None) -> SyncResult:
    """Write what `fetch` read, in one transaction: all of it or, on any failure, none of it."""
    my_team = next((s.team_name for s in got.submissions if s.team_name), None)
    taken_at = iso(now) if now is not None else now_iso()
    rows = [LeaderboardRow(rank=i + 1, team_id=e.team_id, team_name=e.team_name, score=parse_score(e.score),
                           submission_date=e.date or None) for i, e in enumerate(got.leaderboard or [])]
    new = updated = 0
    snapshot_id = None
    with ledger.transaction():
        known = {s["ref"] for s in ledger.submissions(competition)}
        for s in got.submissions:
            changed = ledger.record_submission(
                competition, s.ref, date=s.date or None, description=s.description, file_name=s.file_name or None,
                status=s.status, public_score=parse_score(s.public_score), private_score=parse_score(s.private_score),
                error_description=s.error or None, team_name=s.team_name or None)
            if s.ref not in known:
                new += 1
            elif changed:
                updated += 1
        if got.leaderboard is not None:
            snapshot_id = ledger.record_snapshot(competition, rows, my_team=my_team, taken_at=taken_at,
                                                 keep=keep_rows)
        lim = got.limits
        ledger.set_state(competition, num_today=lim.today, num_total=lim.total, num_allowed_now=lim.allowed_now,
                         limited_by_total=lim.limited_by_total, synced_at=taken_at)
    my_rank = next((r.rank for r in rows if my_team and r.team_name == my_team), None)
    return SyncResult(competition, len(got.submissions), new, updated, snapshot_id, len(rows), my_team, my_rank,
                      got.requests, got.retries)


def sync(ledger: Ledger, client: Any, competition: str, *, keep_rows: int = 100, max_pages: int = 100,
         retries: int = 5, sleep: Callable[[float], None] = time.sleep, leaderboard: bool = True,
         now: Any = None) -> SyncResult:
    """Fetch COMPETITION's submissions, leaderboard and limits through `client` (a KaggleClient) and store them.

    `now` stamps the snapshot and the allowance (default: the current time; histories replayed in
    tests and examples pass their own).
    """
    got = fetch(client, competition, max_pages=max_pages, retries=retries, sleep=sleep, leaderboard=leaderboard)
    return store(ledger, competition, got, keep_rows=keep_rows, now=now)
