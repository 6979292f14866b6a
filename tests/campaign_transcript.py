"""Print a transcript of a whole `kompete campaign` against the fake Kaggle server (offline).

    PYTHONPATH=. python tests/campaign_transcript.py [--out transcript.md]

Like tests/kaggle_transcript.py: throwaway credentials in a temporary home, the real kaggle client redirected
to 127.0.0.1, every command run as a subprocess; the fake refuses a third GPU session, as Kaggle does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fake_kaggle import FakeKaggle, Reply  # noqa: E402
from tests.kaggle_fixtures import Transcript, transcript_env  # noqa: E402
from tests.test_campaign import DOGS, LIMITS, SMALL, SUBMIT, SUBS, images_zip, run_summary, slug  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    server = FakeKaggle().start()
    with tempfile.TemporaryDirectory() as tmp:
        env = transcript_env(tmp, server, REPO, KOMPETE_DB=str(Path(tmp) / "ledger.db"))

        transcript = Transcript(tmp, server, env, keep_server_state=True)
        run = transcript.run

        server.reset()
        server.limit_sessions(2)
        curve = b"step,images_per_s,eval_mifid\n500,410,80.1\n1000,415,61.7\n1500,412,55.0\n"
        server.script_kernel(slug("dogs1", "1", DOGS), ["RUNNING", "ERROR"], failure="CUDA out of memory",
                             log="step 900\nRuntimeError: CUDA out of memory\n")
        server.script_kernel(slug("dogs1", "2", DOGS), ["RUNNING", "RUNNING", "COMPLETE"], log="[kompete] done\n", files={
            "images.zip": images_zip(4), "run/metrics.csv": curve, "kompete-run.json": run_summary(30.2, 0.31),
            "run/best.json": json.dumps({"mifid": 55.0, "step": 1500}).encode()})
        server.script_kernel(slug("dogs1", "3", DOGS), ["RUNNING", "COMPLETE"], files={"images.zip": images_zip(3)})
        server.script_kernel(slug("dogs1", "4", DOGS), ["QUEUED", "RUNNING", "COMPLETE"], files={
            "images.zip": images_zip(4), "kompete-run.json": run_summary(21.7, 0.04)})
        server.script_kernel(slug("dogs1", "2-part2", DOGS), ["RUNNING", "COMPLETE"], files={
            "images.zip": images_zip(4), "kompete-run.json": run_summary(26.9, 0.29)})
        out = str(Path(tmp) / "campaigns")
        run("campaign", "start", DOGS, "--name", "dogs1", "--sweep", "seed=1,2,3,4", *SMALL, "--out", out)
        run("campaign", "status", "dogs1")
        run("campaign", "wait", "dogs1", "--poll", "0", "--max-poll", "1", "--timeout", "1")
        run("campaign", "wait", "dogs1", "--poll", "0", "--max-poll", "1")
        run("campaign", "collect", "dogs1")
        run("campaign", "show", "dogs1", "--plot", str(Path(tmp) / "dogs1.png"))
        if os.environ.get("KOMPETE_TRANSCRIPT_PLOT"):  # keep the plot for a look
            import shutil

            shutil.copy(Path(tmp) / "dogs1.png", os.environ["KOMPETE_TRANSCRIPT_PLOT"])
        run("campaign", "submit", "dogs1", "--best", "--wait", "--poll", "0", setup=lambda: (
            server.set(SUBMIT, Reply(200, {"ref": 45})),
            server.set(SUBS, Reply(200, {"submissions": [{"ref": 45, "status": "COMPLETE", "publicScore": "31.9"}]}))))
        run("campaign", "submit", "dogs1", "--best")
        run("campaign", "continue", "dogs1", "2")
        run("campaign", "wait", "dogs1", "--poll", "0", "--max-poll", "1")
        run("campaign", "collect", "dogs1")
        run("campaign", "submit", "dogs1", "--best", setup=lambda: server.set(
            LIMITS, Reply(200, {"numToday": 5, "numTotal": 20, "numAllowedNow": 0})))
        run("campaign", "submit", "dogs1", "--best", setup=lambda: (
            server.set(SUBMIT, Reply(200, {"ref": 46})),
            server.set(LIMITS, Reply(200, {"numToday": 2, "numTotal": 4, "numAllowedNow": 3}))))
        run("campaign", "show", "dogs1")
        run("leaderboard", "show", DOGS, "--top", "0")
    transcript.finish(args.out)


if __name__ == "__main__":
    main()
