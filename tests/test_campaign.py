"""`kompete campaign ...` with the real kaggle client against the loopback fake server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from kompete.archive import encode_image
from kompete.cli import main
from kompete.kernel import campaign as camp_mod
from kompete.kernel import campaign_results as results
from kompete.kernel.client import KaggleClient
from kompete.ledger import campaign_store as store
from kompete.ledger.store import Ledger
from tests.conftest import REPO
from tests.fake_kaggle import Reply, zip_bytes

PUSH = "kernels.KernelsApiService/SaveKernel"
STATUS = "kernels.KernelsApiService/GetKernelSessionStatus"
SUBMIT = "competitions.CompetitionApiService/CreateCodeSubmission"
LIMITS = "competitions.CompetitionApiService/GetSubmissionLimits"
SUBS = "competitions.CompetitionApiService/ListSubmissions"
# Four images make a complete submission here, so zips stay tiny.
SMALL = ["--set", "output.n_min=4", "--set", "output.n_max=4", "--set", "generate.n_images=4",
         "--set", "metric.reference_limit=8"]
SEEDS = ["--sweep", "seed=1,2,3,4"]


def slug(name: str, variant: str, competition: str = "sample-dogs") -> str:
    return f"kompete-{competition}-{name}-{variant}"


def images_zip(n: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return zip_bytes({f"{i}.png": encode_image(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for i in range(n)})


def run_summary(mifid: float, memorization: float) -> bytes:
    return json.dumps({"stages": [{"name": "train", "exit": 0}],
                       "score": {"fid": mifid, "mifid": mifid, "memorization_distance": memorization,
                                 "n_images": 4}}).encode()


def kompete(*args):
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output, result.output
    return result


DOGS = "generative-dog-images"


def start(tmp_path, name, *extra, competition="sample-dogs"):
    return kompete("campaign", "start", competition, "--name", name, "--out", str(tmp_path), *SMALL, *extra)


class FakeTime:
    """wait's clock and sleep: time passes only when it sleeps, so timeouts are counted in polls."""

    def __init__(self):
        self.now, self.slept = 0.0, []

    def clock(self):
        return self.now

    def sleep(self, s):
        self.slept.append(s)
        self.now += s


def wait(name, timeout_s=60.0, poll_s=1.0):
    t = FakeTime()
    with Ledger() as ledger:
        try:
            camp_mod.wait(ledger, KaggleClient(), name, timeout_s, poll_s, max_poll_s=1.0, sleep=t.sleep, clock=t.clock)
        finally:
            states = {k["variant"]: k["state"] for k in store.kernels(ledger, store.campaign(ledger, name)["id"])}
    return t, states


def test_four_variants_error_running_rejected_and_good(fake_kaggle, tmp_path, monkeypatch):
    fake_kaggle.script_kernel(slug("c1", "1"), ["RUNNING", "ERROR"], failure="CUDA out of memory",
                              log="step 900\nRuntimeError: CUDA out of memory\n")
    fake_kaggle.script_kernel(slug("c1", "2"), ["RUNNING"])  # never finishes
    fake_kaggle.script_kernel(slug("c1", "3"), ["RUNNING", "COMPLETE"], files={"images.zip": images_zip(3)})
    fake_kaggle.script_kernel(slug("c1", "4"), ["RUNNING", "COMPLETE"], files={
        "images.zip": images_zip(4), "run/metrics.csv": b"step,images_per_s\n10,100\n20,300\n"}, log="[kompete] done\n")
    started = start(tmp_path, "c1", *SEEDS)
    assert started.exit_code == 0, started.output
    assert [c.body["slug"].split("/")[1] for c in fake_kaggle.calls if c.method == PUSH] == [
        slug("c1", "1"), slug("c1", "2")]  # kernel.max_concurrent defaults to 2; the rest are queued
    assert "2 queued, 2 running" in started.output

    with pytest.raises(camp_mod.StillRunning) as err:
        wait("c1", timeout_s=20)
    assert err.value.exit_code == 3 and "2 running" in err.value.message
    with Ledger() as ledger:
        ks = {k["variant"]: k for k in store.kernels(ledger, store.campaign(ledger, "c1")["id"])}
    assert {v: k["state"] for v, k in ks.items()} == {"1": "error", "2": "running", "3": "complete", "4": "complete"}
    assert ks["1"]["failure"] == "CUDA out of memory" and all(k["version"] == 7 for k in ks.values())
    # every status call names the version that was pushed
    assert {c.body.get("versionLabel") for c in fake_kaggle.calls if c.method == STATUS} == {"v7"}

    running = kompete("campaign", "wait", "c1", "--timeout", "0")
    assert running.exit_code == 3 and "1 running" in running.output
    assert "Error: campaign c1: 1 kernel(s) not finished after 0 s: 2 running" in running.output

    from kompete.metrics import score as score_mod
    from kompete.metrics.features import build_inception

    model = build_inception(seed=0)  # a seeded random Inception: no weights are read
    monkeypatch.setattr(score_mod, "load_inception", lambda source, device, **_: model)
    collected = kompete("campaign", "collect", "c1", "--score-from", "local")
    assert collected.exit_code == 0, collected.output
    with Ledger() as ledger:
        ks = {k["variant"]: k for k in store.kernels(ledger, store.campaign(ledger, "c1")["id"])}
        runs = {r["kernel_ref"]: r for r in ledger.runs("sample-dogs")}
    assert ks["1"]["collected"] == "failed" and "CUDA out of memory" in ks["1"]["collect_note"]
    assert ks["2"]["collected"] is None
    assert ks["3"]["collected"] == "rejected" and "3 valid images, Kaggle needs 4" in ks["3"]["collect_note"]
    assert ks["4"]["collected"] == "ok" and ks["4"]["score_source"] == "local" and ks["4"]["steps"] == 20
    good = runs[f"alice/{slug('c1', '4')}"]
    assert good["mifid"] is not None and good["images_per_s"] == 200 and good["kernel_version"] == 7
    assert (good["metric"], good["preprocess"], good["resize"]) == ("mifid", "tf", "antialias")
    assert runs[f"alice/{slug('c1', '3')}"]["mifid"] is None
    out = tmp_path / "c1" / "output" / "4"
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["images.zip", f"{slug('c1', '4')}.log",
                                                                      "metrics.csv"]
    shown = kompete("campaign", "show", "c1", "--plot", str(tmp_path / "c1.png"))
    assert shown.exit_code == 0 and (tmp_path / "c1.png").read_bytes()[:4] == b"\x89PNG"
    lines = shown.output.splitlines()
    assert lines[0] == ("every variant: generate.n_images=4, metric.reference_limit=8, output.n_max=4, "
                        "output.n_min=4")
    assert lines[1].split()[:2] == ["variant", "changed"]
    assert lines[2].split()[:2] == ["4", "seed=4"]  # the scored variant ranks first
    assert "rejected" in shown.output and "CUDA out of memory" in shown.output


def test_the_queue_never_runs_more_than_max_concurrent(fake_kaggle, tmp_path):
    fake_kaggle.limit_sessions(2)  # a third session would be refused, as Kaggle does
    for v in "1234":
        fake_kaggle.script_kernel(slug("q", v), ["QUEUED", "RUNNING", "COMPLETE"], files={"images.zip": images_zip(4)})
    assert start(tmp_path, "q", *SEEDS).exit_code == 0
    clock, states = wait("q")
    assert states == dict.fromkeys("1234", "complete")
    assert fake_kaggle.refused_pushes == []
    assert sorted(c.body["slug"] for c in fake_kaggle.calls if c.method == PUSH) == [
        f"alice/{slug('q', v)}" for v in "1234"]
    assert clock.slept and min(clock.slept) >= camp_mod.POLL_FLOOR_S
    # three of one kernel's calls to finish it; never one without a push
    assert sum(c.method == STATUS for c in fake_kaggle.calls) == 4 * 3


def test_max_concurrent_is_a_config_key(fake_kaggle, tmp_path):
    started = start(tmp_path, "q3", *SEEDS, "--set", "kernel.max_concurrent=3")
    assert started.exit_code == 0 and sum(c.method == PUSH for c in fake_kaggle.calls) == 3


@pytest.mark.slow
def test_wait_killed_midway_is_carried_on_by_a_rerun(fake_kaggle, tmp_path):
    for v in "1234":
        fake_kaggle.script_kernel(slug("k", v), ["RUNNING"])
    assert start(tmp_path, "k", *SEEDS).exit_code == 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "kompete", "campaign", "wait", "k", "--poll", "0", "--max-poll", "1"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while sum(c.method == STATUS for c in fake_kaggle.calls) < 4 and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert sum(c.method == STATUS for c in fake_kaggle.calls) >= 4, "wait never polled"
    # a push that a kill interrupted before the ledger heard of it: the bundle's push record is adopted
    from kompete.kernel import remote

    with Ledger() as ledger:
        queued = [k for k in store.kernels(ledger, store.campaign(ledger, "k")["id"]) if k["state"] == "queued"]
    remote.push(KaggleClient(), queued[0]["folder"])
    for v in "1234":
        fake_kaggle.script_kernel(slug("k", v), ["COMPLETE"])
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    pushes = [c.body["slug"] for c in fake_kaggle.calls if c.method == PUSH]
    assert sorted(pushes) == [f"alice/{slug('k', v)}" for v in "1234"]  # each exactly once
    assert "4 complete" in done.stdout
    before = len(fake_kaggle.calls)
    again = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and [c.method for c in fake_kaggle.calls[before:]] == [
        "security.OAuthService/IntrospectToken"] * (len(fake_kaggle.calls) - before)


def _scored_campaign(fake_kaggle, tmp_path, name):
    """Four complete variants with the kernels' own scores: 1 is best but memorizes, 2 and 3 are fine, 4 rejected.
    On the real dog competition (a sample has nothing on Kaggle to submit to); no local data is needed."""
    scores = {"1": (20.0, 0.05), "2": (30.0, 0.30), "3": (35.0, 0.25), "4": (10.0, 0.4)}
    for v, (mifid, memo) in scores.items():
        fake_kaggle.script_kernel(slug(name, v, DOGS), ["COMPLETE"], files={
            "images.zip": images_zip(3 if v == "4" else 4), "kompete-run.json": run_summary(mifid, memo)})
    started = start(tmp_path, name, *SEEDS, competition=DOGS)
    assert started.exit_code == 0, started.output
    wait(name)
    collected = kompete("campaign", "collect", name)
    assert collected.exit_code == 0, collected.output


def test_submit_best_skips_memorizers_and_submitted_and_respects_the_quota(fake_kaggle, tmp_path):
    _scored_campaign(fake_kaggle, tmp_path, "s")
    fake_kaggle.set(LIMITS, Reply(200, {"numToday": 5, "numTotal": 9, "numAllowedNow": 0}))
    refused = kompete("campaign", "submit", "s", "--best")
    assert refused.exit_code == 1 and "daily submission limit reached" in refused.output, refused.output
    assert SUBMIT not in fake_kaggle.methods()

    fake_kaggle.set(LIMITS, Reply(200, {"numToday": 1, "numTotal": 3, "numAllowedNow": 4}))
    fake_kaggle.queue(SUBMIT, Reply(200, {"ref": 45}), Reply(200, {"ref": 46}))
    fake_kaggle.set(SUBS, Reply(200, {"submissions": [{"ref": 45, "status": "COMPLETE", "publicScore": "31.5"}]}))
    first = kompete("campaign", "submit", "s", "--best", "--wait", "--poll", "0")
    assert first.exit_code == 0, first.output
    assert "passed over 1: memorization distance 0.0500 is not safely above eps 0.1" in first.output
    assert "submitted 2 " in first.output and "public score 31.5" in first.output
    second = kompete("campaign", "submit", "s", "--best")
    assert second.exit_code == 0, second.output
    assert "passed over 2: already submitted (submission 45)" in second.output and "submitted 3 " in second.output
    bodies = [c.body["kernelSlug"] for c in fake_kaggle.calls if c.method == SUBMIT]
    assert bodies == [slug("s", "2", DOGS), slug("s", "3", DOGS)]
    board = kompete("leaderboard", "show", DOGS)
    assert "31.5" in board.output and "30.0000" in board.output  # public beside local
    third = kompete("campaign", "submit", "s", "--best")
    assert third.exit_code == 1 and "nothing to submit" in third.output  # 1 memorizes, 4 was rejected


def test_a_chain_of_two_kernels(fake_kaggle, tmp_path):
    fake_kaggle.script_kernel(slug("ch", "base"), ["COMPLETE"], files={"images.zip": images_zip(4)})
    fake_kaggle.script_kernel(slug("ch", "base-part2"), ["RUNNING", "COMPLETE"], files={"images.zip": images_zip(4)})
    assert start(tmp_path, "ch").exit_code == 0
    early = kompete("campaign", "continue", "ch", "base")
    assert early.exit_code == 1 and "only a complete kernel version can be continued" in early.output
    wait("ch")
    cont = kompete("campaign", "continue", "ch", "base")
    assert cont.exit_code == 0, cont.output
    assert f"base-part2 continues base: alice/{slug('ch', 'base-part2')}" in cont.output
    folder = tmp_path / "ch" / "kernels" / "sample-dogs-ch-base-part2"
    meta = json.loads((folder / "kernel-metadata.json").read_text())
    assert meta["kernel_sources"] == [f"alice/{slug('ch', 'base')}/7"]  # tied to the version that completed
    assert f"{slug('ch', 'base')}/run" in (folder / "kernel.py").read_text()  # train --resume from its output
    _, states = wait("ch")
    assert states == {"base": "complete", "base-part2": "complete"}
    shown = kompete("campaign", "show", "ch")
    assert shown.exit_code == 0
    (row,) = [line for line in shown.output.splitlines() if line.startswith("base-part2")]
    assert row.rstrip().endswith("base")


def test_user_mistakes_are_one_error_line(fake_kaggle, tmp_path):
    assert kompete("campaign", "status", "nope").output.startswith("Error: no campaign 'nope'")
    assert start(tmp_path, "m", "--no-push").exit_code == 0
    other = start(tmp_path, "m", "--set", "train.seed=9", "--no-push")
    assert other.exit_code == 1 and "already exists with other settings" in other.output
    added = kompete("campaign", "add", "m", "bob/some-kernel", "--version", "3")
    assert added.exit_code == 0 and "bob/some-kernel v3" in added.output
    assert "Error: kernel 'x' must read OWNER/SLUG" in kompete("campaign", "add", "m", "x").output


def test_an_output_name_escaping_the_folder_is_a_failed_row_and_nothing_is_fetched(fake_kaggle, tmp_path):
    fake_kaggle.script_kernel(slug("t", "base"), ["COMPLETE"], files={"images.zip": images_zip(4),
                                                                       "../escape.txt": b"x"})
    assert start(tmp_path, "t").exit_code == 0
    wait("t")
    result = kompete("campaign", "collect", "t")
    assert result.exit_code == 0 and "base: failed" in result.output and "points outside" in result.output
    assert not any(m.startswith("GET") for m in fake_kaggle.methods())
    assert not (tmp_path / "t" / "output" / "escape.txt").exists()


def test_the_kernel_score_is_read_from_either_summary_shape():
    assert results.kernel_score(None) is None and results.kernel_score({"stages": []}) is None
    flat = results.kernel_score({"mifid": "41.5", "memorization": 0.2})
    assert (flat.mifid, flat.memorization, flat.fid) == (41.5, 0.2, None)
    nested = results.kernel_score(json.loads(run_summary(30.0, 0.3)))
    assert (nested.mifid, nested.memorization, nested.n_images) == (30.0, 0.3, 4)
