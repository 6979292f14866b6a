"""Print a transcript of every `kompete kernel` command run against the fake Kaggle server (offline).

    PYTHONPATH=. python tests/kaggle_transcript.py [--out transcript.md]

Throwaway credentials are made in a temporary home; the real kaggle client is redirected to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fake_kaggle import FakeKaggle, Reply  # noqa: E402
from tests.kaggle_fixtures import Transcript, transcript_env  # noqa: E402

STATUS = "kernels.KernelsApiService/GetKernelSessionStatus"
SUBS = "competitions.CompetitionApiService/ListSubmissions"
LIMITS = "competitions.CompetitionApiService/GetSubmissionLimits"
PUSH = "kernels.KernelsApiService/SaveKernel"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    server = FakeKaggle().start()
    with tempfile.TemporaryDirectory() as tmp:
        env = transcript_env(tmp, server, REPO)
        kernels, out = Path(tmp) / "kernels", Path(tmp) / "out"

        transcript = Transcript(tmp, server, env, keep_server_state=False)
        run = transcript.run

        run("kernel", "doctor", "sample-dogs")
        run("kernel", "build", "generative-dog-images", "--out", str(kernels))
        run("kernel", "sweep", "generative-dog-images", "--sweep", "loss=hinge,ralsgan", "--out", str(kernels))
        run("kernel", "push", str(kernels / "generative-dog-images"))
        run("kernel", "push", str(kernels / "generative-dog-images"),
            setup=lambda: server.set(PUSH, Reply(200, {"error": "Maximum batch GPU session count of 2 reached"})))
        run("kernel", "status", "alice/kompete-generative-dog-images", "--wait", "--poll", "0",
            setup=lambda: server.queue(STATUS, Reply(200, {"status": "QUEUED"}), Reply(200, {"status": "RUNNING"}),
                                       Reply(200, {"status": "COMPLETE"})))
        run("kernel", "status", "alice/kompete-generative-dog-images", "--version", "8",
            setup=lambda: (server.set(STATUS, Reply(200, {"status": "ERROR", "failureMessage": "CUDA OOM"})),
                           server.set_outputs([], log="step 900\nRuntimeError: CUDA out of memory\n")))
        run("kernel", "output", "alice/kompete-generative-dog-images", "--to", str(out), "--only", "images.zip")
        run("kernel", "output", "alice/kompete-generative-dog-images", "--to", str(out),
            setup=lambda: server.set_outputs(["images.zip", "../escape.txt"]))
        run("kernel", "submit", "generative-dog-images", "--kernel", "alice/kompete-generative-dog-images",
            "--version", "7", "--wait", "--poll", "0",
            setup=lambda: server.queue(SUBS, Reply(200, {"submissions": [{"ref": 45, "status": "PENDING"}]}),
                                       Reply(200, {"submissions": [{"ref": 45, "status": "COMPLETE",
                                                                    "publicScore": "41.52"}]})))
        asset = Path(tmp) / "pt_inception-2015-12-05-6726825d.pth"
        asset.write_bytes(b"w" * 4096)
        run("assets", "push", "--no-weights", "--file", str(asset), "--stage", str(Path(tmp) / "stage"))
        run("data", "download", "generative-dog-images", "--to", str(Path(tmp) / "data" / "dogs"))
        run("kernel", "submit", "generative-dog-images", "--kernel", "alice/kompete-generative-dog-images",
            setup=lambda: server.set(LIMITS, Reply(200, {"numToday": 5, "numTotal": 20, "numAllowedNow": 0})))
        for code, msg in ((401, "Unauthenticated"), (403, "Permission 'competitions.participate' was denied"),
                          (429, None), (500, None)):
            def setup(code=code, msg=msg):
                if code == 429:
                    server.error(LIMITS, 429, "Too many requests", {"Retry-After": "30"}, google_style=True)
                else:
                    server.error(LIMITS, code, msg)
            run("kernel", "submit", "generative-dog-images", "--kernel", "alice/kompete-generative-dog-images",
                setup=setup)
    transcript.finish(args.out)


if __name__ == "__main__":
    main()
