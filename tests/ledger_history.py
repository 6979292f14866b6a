"""A synthetic, seeded competition history served day by day by the fake Kaggle server.

Used by the ledger tests and by docs/ledger_example.py. One user team ("alice") submits kernel
versions over N days; 40 other teams improve slowly; the public leaderboard and the daily allowance
follow. Local MiFID tracks the public score with noise, so their correlation is real but imperfect.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from tests.fake_kaggle import FakeKaggle, Reply

COMPETITION = "gan-getting-started"
TEAM = "alice"
KERNEL = "alice/kompete-gan-getting-started"
LIST_SUBMISSIONS = "competitions.CompetitionApiService/ListSubmissions"
GET_LEADERBOARD = "competitions.CompetitionApiService/GetLeaderboard"
LIMITS = "competitions.CompetitionApiService/GetSubmissionLimits"
START = dt.datetime(2026, 10, 1, 0, 0, tzinfo=dt.timezone.utc)


@dataclass
class Sub:
    ref: int
    version: int
    date: dt.datetime
    local_mifid: float
    public: float | None  # None: scoring error
    config: dict
    pending_until: dt.datetime = field(default=START)

    def api(self, at: dt.datetime) -> dict:
        """The submission as ListSubmissions shows it at time `at`."""
        status = "PENDING" if at < self.pending_until else ("ERROR" if self.public is None else "COMPLETE")
        row = {"ref": self.ref, "date": self.date.isoformat().replace("+00:00", "Z"),
               "description": f"kompete v{self.version}", "fileName": "images.zip", "status": status,
               "teamName": TEAM}
        if status == "COMPLETE":
            row["publicScore"] = f"{self.public:.5f}"
        if status == "ERROR":
            row["errorDescription"] = "images.zip holds 6999 images; 7000-10000 expected"
        return row


@dataclass
class History:
    days: int
    subs: list[Sub]
    rivals: dict[str, list[float]]  # team -> best score per day
    daily_cap: int = 5

    def at(self, day: int) -> dt.datetime:
        return START + dt.timedelta(days=day, hours=23)

    def visible(self, day: int) -> list[Sub]:
        return [s for s in self.subs if s.date <= self.at(day)]

    def leaderboard(self, day: int) -> list[dict]:
        at = self.at(day)
        best = {team: scores[day] for team, scores in self.rivals.items()}
        mine = [s.public for s in self.visible(day) if s.public is not None and s.pending_until <= at]
        if mine:
            best[TEAM] = min(mine)
        ordered = sorted(best.items(), key=lambda kv: (kv[1], kv[0]))
        ids = {team: 1000 + i for i, team in enumerate(sorted([*self.rivals, TEAM]))}
        return [{"teamId": ids[team], "teamName": team,
                 "submissionDate": at.isoformat().replace("+00:00", "Z"), "score": f"{score:.5f}"}
                for team, score in ordered]

    def serve(self, fake: FakeKaggle, day: int, page_size: int = 10, at: dt.datetime | None = None) -> None:
        """Queue what the fake server answers for one sync at the end of `day` (or at `at` that day),
        paged by `page_size`."""
        at = at or self.at(day)
        visible = [s for s in self.subs if s.date <= at]
        subs = [s.api(at) for s in sorted(visible, key=lambda s: s.date, reverse=True)]
        fake.queue(LIST_SUBMISSIONS, *_pages("submissions", subs, page_size))
        fake.queue(GET_LEADERBOARD, *_pages("submissions", self.leaderboard(day), page_size))
        today = sum(1 for s in self.subs if s.date.date() == at.date())
        fake.set(LIMITS, Reply(200, {"numToday": today, "numTotal": len(visible),
                                     "numAllowedNow": self.daily_cap - today}))


def _pages(key: str, rows: list[dict], size: int) -> list[Reply]:
    chunks = [rows[i:i + size] for i in range(0, len(rows), size)] or [[]]
    replies = []
    for i, chunk in enumerate(chunks):
        body: dict = {key: chunk}
        if i + 1 < len(chunks):
            body["nextPageToken"] = f"page-{i + 2}"
        replies.append(Reply(200, body))
    return replies


def make_history(days: int = 21, rivals: int = 40, seed: int = 0) -> History:
    rng = random.Random(seed)
    subs: list[Sub] = []
    level = 95.0
    losses = ["hinge", "lsgan", "ralsgan"]
    for day in range(days):
        for k in range(rng.choice([1, 1, 2])):
            version = len(subs) + 1
            level = max(46.0, level * rng.uniform(0.9, 1.01))
            public = level + rng.gauss(0, 2.5)
            date = START + dt.timedelta(days=day, hours=8 + 6 * k, minutes=rng.randrange(60))
            config = {"train": {"lr_g": rng.choice([1e-4, 2e-4, 3e-4]), "loss": rng.choice(losses),
                                "batch_size": 32 * rng.choice([1, 2, 4])},
                      "generate": {"n_images": 7000, "seed": version}}
            subs.append(Sub(ref=40000 + version, version=version, date=date,
                            local_mifid=public * 0.92 + rng.gauss(0, 3.0), public=public, config=config,
                            pending_until=date + dt.timedelta(hours=2)))
    subs[len(subs) // 3].public = None  # one scoring error
    subs[-1].pending_until = START + dt.timedelta(days=days + 30)  # the newest is still being scored
    teams = {}
    for i in range(rivals):
        start = rng.uniform(60, 150)
        floor = rng.uniform(20, 80)
        scores, s = [], start
        for _ in range(days):
            s = max(floor, s * rng.uniform(0.94, 1.0))
            scores.append(s)
        teams[f"team-{i:02d}"] = scores
    return History(days, subs, teams)


def point_client_at(fake: FakeKaggle, home: "os.PathLike[str] | str") -> None:
    """Outside pytest (docs example, bench): throwaway credentials in `home`, the real kaggle client
    aimed at `fake` through the environment of this process. (Tests use the `fake_kaggle` fixture.)"""
    import json
    import os
    import secrets
    from pathlib import Path

    cfg = Path(home) / ".kaggle"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "kaggle.json").write_text(json.dumps({"username": "alice", "key": secrets.token_hex(16)}))
    (cfg / "kaggle.json").chmod(0o600)
    for var in ("KAGGLE_API_TOKEN", "NO_PROXY", "no_proxy", "VERBOSE", "VERBOSE_OUTPUT", "KAGGLE_USERNAME",
                "KAGGLE_KEY", "XDG_CONFIG_HOME"):
        os.environ.pop(var, None)
    os.environ.update(HOME=str(home), KAGGLE_CONFIG_DIR=str(cfg), KAGGLE_API_ENVIRONMENT="LOCALHOST",
                      HTTP_PROXY=fake.proxy, HTTPS_PROXY=fake.proxy, http_proxy=fake.proxy, https_proxy=fake.proxy)
