"""`kompete kernel ...` against the fake Kaggle server: in-process (CliRunner) and as a real subprocess."""

from __future__ import annotations

import base64
import json

import pytest
from click.testing import CliRunner

from kompete.cli import main
from kompete.errors import KaggleError
from tests.conftest import run_kompete
from tests.fake_kaggle import Reply
from tests.kaggle_fixtures import FAKE_CREDENTIALS

PUSH = "kernels.KernelsApiService/SaveKernel"
STATUS = "kernels.KernelsApiService/GetKernelSessionStatus"
SUBMIT = "competitions.CompetitionApiService/CreateCodeSubmission"
LIMITS = "competitions.CompetitionApiService/GetSubmissionLimits"
SUBS = "competitions.CompetitionApiService/ListSubmissions"
REF = "alice/kompete-sample-dogs"


def kompete(*args, cwd=None):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _one_error_line(output: str, log_shown: bool = False) -> str:
    lines = [l for l in output.splitlines() if l.startswith("Error: ")]
    assert len(lines) == 1 and (log_shown or "Traceback" not in output), output
    return lines[0]


@pytest.mark.slow
def test_build_then_push_through_the_real_cli_subprocess(fake_kaggle, tmp_path):
    built = run_kompete("kernel", "build", "sample-dogs", "--out", str(tmp_path))
    assert built.returncode == 0, built.stderr
    assert "id alice/kompete-sample-dogs" in built.stdout  # owner from KAGGLE_USERNAME
    pushed = run_kompete("kernel", "push", str(tmp_path / "sample-dogs"), env={"VERBOSE": "1"})
    assert pushed.returncode == 0, pushed.stderr
    basic = base64.b64encode(f"alice:{FAKE_CREDENTIALS['key']}".encode()).decode()
    for secret in (FAKE_CREDENTIALS["key"], basic):  # VERBOSE makes the client log its Authorization header
        assert secret not in pushed.stdout + pushed.stderr + built.stdout + built.stderr
    assert pushed.stdout.strip() == f"pushed {REF} version 7: https://www.kaggle.com/code/{REF}"
    (call,) = [c for c in fake_kaggle.calls if c.method == PUSH]
    assert call.body["enableInternet"] is False and call.body["slug"] == REF
    assert json.loads((tmp_path / "sample-dogs" / ".kompete-push.json").read_text())["version"] == 7


def test_push_error_in_a_200_reply_exits_non_zero(fake_kaggle, tmp_path):
    fake_kaggle.set(PUSH, Reply(200, {"error": "Maximum batch GPU session count of 2 reached"}))
    assert kompete("kernel", "build", "sample-dogs", "--out", str(tmp_path)).exit_code == 0
    result = CliRunner().invoke(main, ["kernel", "push", str(tmp_path / "sample-dogs")])
    assert result.exit_code == 1
    assert "Maximum batch GPU session count of 2 reached" in _one_error_line(result.output)


@pytest.mark.slow
def test_http_errors_are_one_plain_line_in_a_subprocess(fake_kaggle):
    fake_kaggle.error(STATUS, 401, "Unauthenticated")
    bad = run_kompete("kernel", "status", REF)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().startswith("Error: status of") and "401" in bad.stderr
    assert fake_kaggle.calls[-1].auth.startswith("Basic ")


def test_status_waits_through_running_then_complete(fake_kaggle):
    fake_kaggle.queue(STATUS, Reply(200, {"status": "QUEUED"}), Reply(429, {"error": {"code": 429}},
                      {"Retry-After": "0"}), Reply(200, {"status": "RUNNING"}), Reply(200, {"status": "COMPLETE"}))
    result = kompete("kernel", "status", REF, "--wait", "--poll", "0")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"{REF}: QUEUED", f"{REF}: RUNNING", f"{REF}: COMPLETE"]
    assert [m for m in fake_kaggle.methods() if m == STATUS] == [STATUS] * 4


def test_status_error_prints_the_log_tail(fake_kaggle):
    fake_kaggle.set(STATUS, Reply(200, {"status": "ERROR", "failureMessage": "CUDA out of memory"}))
    fake_kaggle.set_outputs([], log="line 1\nTraceback: boom\nRuntimeError: CUDA out of memory\n")
    result = CliRunner().invoke(main, ["kernel", "status", REF, "--version", "3"])
    assert result.exit_code == 1
    assert "--- log tail ---" in result.output and "RuntimeError: CUDA out of memory" in result.output
    assert _one_error_line(result.output, log_shown=True) == f"Error: {REF} v3 ended with ERROR: CUDA out of memory"


def test_output_downloads_only_what_is_asked(fake_kaggle, tmp_path):
    result = kompete("kernel", "output", REF, "--to", str(tmp_path / "out"), "--only", "images.zip")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["images.zip"]
    assert (tmp_path / "out" / "images.zip").read_bytes()[:2] == b"PK"
    gets = [c for c in fake_kaggle.calls if c.method.startswith("GET")]
    assert gets and all(c.auth is None for c in gets)  # signed URLs get no credentials
    everything = kompete("kernel", "output", REF, "--to", str(tmp_path / "all"))
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == [
        "images.zip", "kompete-sample-dogs.log", "metrics.csv"]


def test_output_with_traversal_names_is_refused_before_any_download(fake_kaggle, tmp_path):
    for bad in ("../escape.txt", "/tmp/kompete-abs.txt"):
        fake_kaggle.reset()
        fake_kaggle.set_outputs(["images.zip", bad], urls={bad: fake_kaggle.blob_url("metrics.csv")})
        result = CliRunner().invoke(main, ["kernel", "output", REF, "--to", str(tmp_path / "out")])
        assert result.exit_code == 1 and "points outside" in _one_error_line(result.output)
        assert not any(m.startswith("GET") for m in fake_kaggle.methods())
    assert not (tmp_path / "escape.txt").exists() and not list((tmp_path).glob("out/*"))


def test_an_error_body_is_never_saved_as_output(fake_kaggle, tmp_path):
    fake_kaggle.add_blob("images.zip", b"<html>expired signature</html>", status=403)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["kernel", "output", REF, "--to", str(out), "--only", "images.zip"])
    assert result.exit_code == 1 and "403" in _one_error_line(result.output)
    assert not out.exists() or list(out.iterdir()) == []


def test_submit_over_the_daily_limit_is_refused_before_submitting(fake_kaggle):
    fake_kaggle.set(LIMITS, Reply(200, {"numToday": 5, "numTotal": 9, "numAllowedNow": 0}))
    result = CliRunner().invoke(main, ["kernel", "submit", "generative-dog-images", "--kernel", REF, "--version", "7"])
    assert result.exit_code == 1 and "daily submission limit reached" in _one_error_line(result.output)
    assert SUBMIT not in fake_kaggle.methods()


def test_submit_waits_for_the_public_score(fake_kaggle):
    pending = {"ref": 45, "status": "PENDING", "fileName": "images.zip"}
    done = {**pending, "status": "COMPLETE", "publicScore": "41.5"}
    fake_kaggle.queue(SUBS, Reply(200, {"submissions": [pending]}), Reply(200, {"submissions": [done]}))
    result = kompete("kernel", "submit", "generative-dog-images", "--kernel", REF, "--version", "7", "--wait", "--poll", "0")
    assert result.exit_code == 0, result.output
    assert f"submitted {REF} v7 to generative-dog-images: submission 45" in result.output
    assert "public score 41.5 (COMPLETE)" in result.output
    (call,) = [c for c in fake_kaggle.calls if c.method == SUBMIT]
    assert call.body == {"competitionName": "generative-dog-images", "kernelOwner": "alice", "kernelSlug": "kompete-sample-dogs",
                         "kernelVersion": 7, "fileName": "images.zip", "submissionDescription": f"kompete {REF} v7"}


def test_submit_is_recorded_in_the_ledger_even_when_waiting_times_out(fake_kaggle, isolated_ledger):
    from kompete.ledger.store import Ledger

    fake_kaggle.queue(SUBS, Reply(200, {"submissions": [{"ref": 45, "status": "PENDING"}]}))
    result = kompete("kernel", "submit", "generative-dog-images", "--kernel", REF, "--version", "8", "--wait",
                     "--poll", "0", "--timeout", "0")
    assert result.exit_code != 0 and "not scored after" in result.output
    with Ledger(isolated_ledger) as ledger:
        subs = ledger.submissions("generative-dog-images")
    assert [(s["ref"], s["kernel_ref"], s["kernel_version"]) for s in subs] == [(45, REF, 8)]


def test_sweep_pushes_every_kernel_and_reports_the_session_limit_per_kernel(fake_kaggle, tmp_path):
    fake_kaggle.queue(PUSH, Reply(200, {"ref": "/code/alice/a", "url": "u1", "versionNumber": 1}),
                      Reply(200, {"error": "Maximum batch GPU session count of 1 reached"}))
    result = CliRunner().invoke(main, ["kernel", "sweep", "sample-dogs", "--sweep", "loss=hinge,bce",
                                       "--out", str(tmp_path), "--push"])
    assert result.exit_code == 1
    assert "pushed alice/a version 1: u1" in result.output
    assert "FAILED" in result.output and "Maximum batch GPU session count of 1 reached" in result.output
    assert _one_error_line(result.output) == "Error: 1 of 2 pushes failed (see above)"
    slugs = [c.body["slug"] for c in fake_kaggle.calls if c.method == PUSH]
    assert slugs == ["alice/kompete-sample-dogs-hinge", "alice/kompete-sample-dogs-bce"]


def test_doctor_reports_without_printing_the_key(fake_kaggle):
    result = CliRunner().invoke(main, ["kernel", "doctor", "sample-dogs"])
    assert "credentials" in result.output and "env-key from KAGGLE_USERNAME/KAGGLE_KEY" in result.output
    assert "10.0 of 30.0 h used" in result.output
    import os

    assert os.environ["KAGGLE_KEY"] not in result.output
    assert result.exit_code == 0, result.output


def test_a_request_for_the_real_kaggle_is_caught_by_the_guard(fake_kaggle, monkeypatch):
    from kompete.kernel.client import KaggleClient

    monkeypatch.delenv("KAGGLE_API_ENVIRONMENT")  # PROD: https://api.kaggle.com through the proxy
    try:
        KaggleClient().status(REF)
        raise AssertionError("a PROD request succeeded")
    except KaggleError:
        pass
    assert fake_kaggle.escaped and "api.kaggle.com" in fake_kaggle.escaped[0]
    fake_kaggle.escaped.clear()


def test_data_download_uses_the_client_and_unpacks_safely(fake_kaggle, tmp_path):
    result = kompete("data", "download", "generative-dog-images", "--to", str(tmp_path / "dogs"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "dogs" / "all-dogs" / "1.jpg").read_bytes() == b"jpg"
    assert not (tmp_path / "generative-dog-images.zip").exists()


def test_submit_refuses_a_fetched_zip_kaggle_would_reject(fake_kaggle, tmp_path):
    import zipfile

    bad = tmp_path / "images.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("0.png", b"not a png")
    result = CliRunner().invoke(main, ["kernel", "submit", "generative-dog-images", "--kernel", REF, "--zip", str(bad)])
    assert result.exit_code == 1 and "would be rejected by Kaggle" in _one_error_line(result.output)
    assert fake_kaggle.methods() == []


def test_top_level_submit_and_doctor_are_the_kernel_commands(fake_kaggle):
    result = kompete("submit", "generative-dog-images", "--kernel", REF, "--version", "2")
    assert result.exit_code == 0 and "submission 45" in result.output
    assert "credentials" in kompete("doctor", "--offline").output


def test_assets_push_versions_or_creates_the_dataset(fake_kaggle, tmp_path):
    weights = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    weights.write_bytes(b"w" * 1000)
    args = ["assets", "push", "--no-weights", "--file", str(weights), "--stage", str(tmp_path / "stage")]
    result = kompete(*args)
    assert result.exit_code == 0, result.output
    assert "new version of dataset alice/kompete-assets" in result.output
    puts = [c for c in fake_kaggle.calls if c.method.startswith("PUT")]
    assert [len(c.body) for c in puts] == [1000]
    (version,) = [c for c in fake_kaggle.calls if c.method.endswith("/CreateDatasetVersion")]
    assert version.body["body"]["files"] == [{"token": f"blob-{weights.name}"}]
    fake_kaggle.reset()
    fake_kaggle.error("datasets.DatasetApiService/CreateDatasetVersion", 404, "Dataset not found")
    result = kompete(*args)
    assert result.exit_code == 0 and "created dataset alice/kompete-assets" in result.output
    (created,) = [c for c in fake_kaggle.calls if c.method.endswith("/CreateDataset")]
    assert created.body["isPrivate"] is True and created.body["slug"] == "kompete-assets"


def test_status_of_a_running_kernel_exits_3(fake_kaggle):
    fake_kaggle.set(STATUS, Reply(200, {"status": "RUNNING"}))
    result = CliRunner().invoke(main, ["kernel", "status", REF])
    assert result.exit_code == 3 and result.output.strip() == f"{REF}: RUNNING"


def test_assets_stage_never_wipes_a_folder_it_did_not_make(tmp_path):
    from kompete.errors import KompeteError
    from kompete.kernel.assets import stage

    weights = tmp_path / "w.pth"
    weights.write_bytes(b"weights")
    precious = tmp_path / "work"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    import pytest

    with pytest.raises(KompeteError, match="not an earlier staging"):
        stage(precious, "alice", "kompete-assets", [weights])
    assert (precious / "notes.txt").read_text() == "keep me"
    again = tmp_path / "stage"
    stage(again, "alice", "kompete-assets", [weights])
    stage(again, "alice", "kompete-assets", [weights])  # its own earlier staging is replaced
    assert sorted(p.name for p in again.iterdir()) == ["dataset-metadata.json", "w.pth"]
