"""Replay a synthetic 21-day competition through the real kaggle client and the fake Kaggle server,
then print `kompete leaderboard show` and draw docs/leaderboard-example.png.

    PYTHONPATH=. python docs/ledger_example.py [--out docs/leaderboard-example.png]

Offline: the server listens on 127.0.0.1 and the credentials are throwaway ones in a temporary home.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "leaderboard-example.png")
    args = parser.parse_args()

    from tests.fake_kaggle import FakeKaggle
    from tests.ledger_history import COMPETITION, KERNEL, make_history, point_client_at

    fake = FakeKaggle().start()
    with tempfile.TemporaryDirectory() as tmp:
        point_client_at(fake, Path(tmp) / "home")
        os.environ["KOMPETE_DB"] = str(Path(tmp) / "kompete.db")

        from click.testing import CliRunner

        from kompete.cli import main as cli
        from kompete.kernel.client import KaggleClient
        from kompete.ledger import record
        from kompete.ledger.store import Ledger
        from kompete.ledger.sync import sync

        history = make_history()
        client = KaggleClient()
        with Ledger() as ledger:
            for day in range(history.days):
                for sub in history.subs:
                    if sub.date.date() == history.at(day).date():  # what `kompete score` / `submit` record
                        record.record_score(ledger, COMPETITION, kernel_ref=KERNEL, kernel_version=sub.version,
                                            mifid=sub.local_mifid, config=sub.config, started_at=sub.date)
                        record.record_submit(ledger, COMPETITION, sub.ref, kernel_ref=KERNEL,
                                             kernel_version=sub.version, description=f"kompete v{sub.version}")
                history.serve(fake, day)
                sync(ledger, client, COMPETITION, now=history.at(day))
        fake.stop()
        assert not fake.escaped, fake.escaped

        for argv in (["leaderboard", "show", COMPETITION, "--last", "8", "--plot", str(args.out)],
                     ["runs", COMPETITION], ["runs", "compare", "1", "2"]):
            print(f"$ kompete {' '.join(argv)}".replace(str(REPO) + "/", ""))
            result = CliRunner().invoke(cli, argv, catch_exceptions=False)
            print(result.output.replace(str(REPO) + "/", ""))
            if result.exit_code:
                raise SystemExit(result.exit_code)


if __name__ == "__main__":
    main()
