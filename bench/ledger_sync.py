"""How long `kompete leaderboard sync` takes on a long history, and where the time goes.

A seeded history of N submissions and a leaderboard of T teams is served by the fake Kaggle server on
127.0.0.1 to the real kaggle client (pages of 100). Timed:
  fetch   - every page of submissions and leaderboard plus the limits, through KaggleClient
  write   - the upserts and the snapshot, one transaction (kompete's store)
  resync  - a second sync of the same data (idempotent: nothing written)
and a peer for the write: pandas `DataFrame.to_sql(if_exists="replace")` of the same rows into SQLite,
the usual notebook way of keeping such a table (no history, no upsert).

    python bench/ledger_sync.py [--subs 500] [--teams 5000]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

from tests.fake_kaggle import FakeKaggle, Reply  # noqa: E402
from tests.ledger_history import GET_LEADERBOARD, LIMITS, LIST_SUBMISSIONS, _pages, point_client_at  # noqa: E402


def serve(fake: FakeKaggle, subs: list[dict], board: list[dict]) -> None:
    fake.queue(LIST_SUBMISSIONS, *_pages("submissions", subs, 100))
    fake.queue(GET_LEADERBOARD, *_pages("submissions", board, 100))
    fake.set(LIMITS, Reply(200, {"numToday": 2, "numTotal": len(subs), "numAllowedNow": 3}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subs", type=int, default=500)
    ap.add_argument("--teams", type=int, default=5000)
    args = ap.parse_args()

    subs = [{"ref": 10_000 + i, "date": f"2026-{1 + i // 600 % 12:02d}-{1 + i // 20 % 28:02d}T{i % 24:02d}:00:00Z",
             "description": f"v{i}", "fileName": "images.zip", "status": "COMPLETE",
             "publicScore": f"{90 - i * 40 / args.subs:.5f}", "teamName": "alice"} for i in range(args.subs)]
    board = [{"teamId": t, "teamName": "alice" if t == 37 else f"team-{t}", "submissionDate": "2026-10-01T00:00:00Z",
              "score": f"{30 + t * 0.01:.5f}"} for t in range(args.teams)]

    fake = FakeKaggle().start()
    with tempfile.TemporaryDirectory() as tmp:
        point_client_at(fake, Path(tmp) / "home")
        from kompete.kernel.client import KaggleClient
        from kompete.ledger import sync as sync_mod
        from kompete.ledger.store import Ledger

        client = KaggleClient()
        with Ledger(Path(tmp) / "l.db") as ledger:
            serve(fake, subs, board)
            t0 = time.perf_counter()
            got = sync_mod.fetch(client, "bench", max_pages=1000)
            fetch = time.perf_counter() - t0
            t0 = time.perf_counter()
            sync_mod.store(ledger, "bench", got, keep_rows=args.teams)
            write = time.perf_counter() - t0
            serve(fake, subs, board)
            t0 = time.perf_counter()
            again = sync_mod.sync(ledger, client, "bench", keep_rows=args.teams)
            resync = time.perf_counter() - t0
            assert again.new == again.updated == 0 and again.snapshot_id is None
        requests = got.requests
        got_subs, got_board = got.submissions, got.leaderboard

        t0 = time.perf_counter()
        with sqlite3.connect(Path(tmp) / "peer.db") as conn:
            pd.DataFrame([s.__dict__ for s in got_subs]).to_sql("submissions", conn, if_exists="replace")
            pd.DataFrame([e.__dict__ for e in got_board]).to_sql("leaderboard", conn, if_exists="replace")
        peer = time.perf_counter() - t0
    fake.stop()

    print(f"history: {args.subs} submissions, {args.teams} teams, {requests} requests (pages of 100)")
    print(f"fetch  (real client, loopback)   {fetch * 1000:8.1f} ms")
    print(f"write  (one transaction)         {write * 1000:8.1f} ms   ({write / fetch:.2f}x the fetch)")
    print(f"resync (nothing new)             {resync * 1000:8.1f} ms")
    print(f"peer: pandas to_sql replace      {peer * 1000:8.1f} ms   (kompete write / peer = {write / peer:.2f}x)")


if __name__ == "__main__":
    main()
