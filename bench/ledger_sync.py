"""How long `kompete leaderboard sync` takes on a long history, and where the time goes.

A seeded history of N submissions and a leaderboard of T teams is served by the fake Kaggle server on
127.0.0.1 to the real kaggle client (pages of 100). Timed:
  fetch   - every page of submissions and leaderboard plus the limits, through KaggleClient
  write   - the upserts and the snapshot, one transaction (kompete's store)
  resync  - a second sync of the same data (idempotent: nothing written)
and a peer for the write: pandas `DataFrame.to_sql(if_exists="replace")` of the same rows into SQLite,
the usual notebook way of keeping such a table (no history, no upsert).

    python bench/ledger_sync.py [--subs 500] [--teams 5000] [--rounds 3]
    python bench/ledger_sync.py --smoke
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

from bench.harness import Harness, bench_arguments  # noqa: E402
from tests.fake_kaggle import FakeKaggle, Reply  # noqa: E402
from tests.ledger_history import GET_LEADERBOARD, LIMITS, LIST_SUBMISSIONS, _pages, point_client_at  # noqa: E402


def serve(fake: FakeKaggle, subs: list[dict], board: list[dict]) -> None:
    fake.queue(LIST_SUBMISSIONS, *_pages("submissions", subs, 100))
    fake.queue(GET_LEADERBOARD, *_pages("submissions", board, 100))
    fake.set(LIMITS, Reply(200, {"numToday": 2, "numTotal": len(subs), "numAllowedNow": 3}))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subs", type=int, default=500)
    ap.add_argument("--teams", type=int, default=5000)
    bench_arguments(ap, rounds=3)
    args = ap.parse_args(argv)
    if args.smoke:
        args.subs, args.teams, args.rounds = 20, 150, 1
    subs = [{"ref": 10_000 + i, "date": f"2026-{1 + i // 600 % 12:02d}-{1 + i // 20 % 28:02d}T{i % 24:02d}:00:00Z",
             "description": f"v{i}", "fileName": "images.zip", "status": "COMPLETE",
             "publicScore": f"{90 - i * 40 / args.subs:.5f}", "teamName": "alice"} for i in range(args.subs)]
    board = [{"teamId": t, "teamName": "alice" if t == 37 else f"team-{t}", "submissionDate": "2026-10-01T00:00:00Z",
              "score": f"{30 + t * 0.01:.5f}"} for t in range(args.teams)]
    h = Harness("ledger_sync", args)
    fake = FakeKaggle().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run_rounds(h, fake, subs, board, Path(tmp), args.teams)
    finally:
        fake.stop()
    h.finish()


def run_rounds(h: Harness, fake: FakeKaggle, subs: list[dict], board: list[dict], tmp: Path, teams: int) -> None:
    point_client_at(fake, tmp / "home")
    from kompete.kernel.client import KaggleClient
    from kompete.ledger import sync as sync_mod
    from kompete.ledger.store import Ledger

    client = KaggleClient()
    state: dict = {"round": 0}

    def fetch() -> None:
        serve(fake, subs, board)
        state["got"] = sync_mod.fetch(client, "bench", max_pages=1000)

    def write() -> None:  # a fresh database each time: the first sync's write, not a no-op upsert
        state["round"] += 1
        with Ledger(tmp / f"l{state['round']}.db") as ledger:
            sync_mod.store(ledger, "bench", state["got"], keep_rows=teams)
            state["ledger"] = tmp / f"l{state['round']}.db"

    def resync() -> None:
        with Ledger(state["ledger"]) as ledger:
            serve(fake, subs, board)
            again = sync_mod.sync(ledger, client, "bench", keep_rows=teams)
        assert again.new == again.updated == 0 and again.snapshot_id is None

    def peer() -> None:
        got = state["got"]
        with sqlite3.connect(tmp / "peer.db") as conn:
            pd.DataFrame([s.__dict__ for s in got.submissions]).to_sql("submissions", conn, if_exists="replace")
            pd.DataFrame([e.__dict__ for e in got.leaderboard]).to_sql("leaderboard", conn, if_exists="replace")

    fetch()  # the first round's write needs something to write
    h.compare(f"{len(subs)} submissions, {len(board)} teams: the write against pandas to_sql",
              {"peer: pandas to_sql replace": peer, "kompete write (one transaction)": write})
    h.compare("fetch (real client, loopback) and an idempotent resync", {"fetch": fetch, "resync (nothing new)": resync})
    h.note("requests per fetch (pages of 100)", state["got"].requests)


if __name__ == "__main__":
    main()
