"""The real kaggle client, driven in-process against the fake server on 127.0.0.1."""

from __future__ import annotations

import json
import zipfile

import pytest

from kompete.errors import CredentialsError, KaggleError, QuotaError, RateLimitError
from kompete.kernel.client import KaggleClient, find_credentials
from tests.fake_kaggle import Reply, zip_bytes
from tests.kaggle_fixtures import FAKE_CREDENTIALS

PUSH = "kernels.KernelsApiService/SaveKernel"
STATUS = "kernels.KernelsApiService/GetKernelSessionStatus"
SUBMIT = "competitions.CompetitionApiService/CreateCodeSubmission"
LIMITS = "competitions.CompetitionApiService/GetSubmissionLimits"


def _kernel_folder(tmp_path, internet=False, name="k"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "kernel.py").write_text("print('hi')\n")
    meta = {"id": "alice/kompete-sample-dogs", "title": "kompete-sample-dogs", "code_file": "kernel.py",
            "language": "python", "kernel_type": "script", "is_private": True, "enable_gpu": True,
            "enable_internet": internet, "competition_sources": ["sample-dogs"]}
    (folder / "kernel-metadata.json").write_text(json.dumps(meta))
    return folder


def test_push_sends_metadata_and_returns_version_with_basic_auth(fake_kaggle, tmp_path):
    client = KaggleClient()
    assert client.credentials.method == "env-key" and client.username == "alice"
    result = client.push(_kernel_folder(tmp_path))
    assert (result.ref, result.version) == ("alice/kompete-sample-dogs", 7)
    call = fake_kaggle.calls[-1]
    assert call.method == PUSH and call.auth.startswith("Basic ")
    assert call.body["enableInternet"] is False and call.body["enableGpu"] is True
    assert call.body["competitionDataSources"] == ["sample-dogs"] and "print('hi')" in call.body["text"]


def test_push_error_inside_a_200_reply_is_an_error(fake_kaggle, tmp_path):
    fake_kaggle.set(PUSH, Reply(200, {"error": "Maximum batch GPU session count of 2 reached"}))
    with pytest.raises(QuotaError, match="Maximum batch GPU session count"):
        KaggleClient().push(_kernel_folder(tmp_path))
    fake_kaggle.set(PUSH, Reply(200, {"ref": "/code/alice/x", "versionNumber": 2,
                                      "invalidCompetitionSources": ["nope"]}))
    with pytest.raises(KaggleError, match="dropped unknown sources: nope"):
        KaggleClient().push(_kernel_folder(tmp_path, name="k2"))


@pytest.mark.parametrize("status, kwargs, cls, text", [
    (401, {"message": "Unauthenticated"}, CredentialsError, "rejected the credentials (401)"),
    (403, {"message": "Permission 'competitions.participate' was denied"}, KaggleError, "accept its rules"),
    (429, {"message": "Too many requests", "google_style": True, "headers": {"Retry-After": "7"}},
     RateLimitError, "retry after 7 s"),
    (500, {}, KaggleError, "Kaggle server error (500)"),
])
def test_http_errors_become_one_plain_message(fake_kaggle, status, kwargs, cls, text):
    fake_kaggle.error(SUBMIT, status, **kwargs)
    with pytest.raises(cls) as info:
        KaggleClient().submit_code("sample-dogs", "alice/kompete-sample-dogs", 7, "images.zip", "m")
    rendered = info.value.render()
    assert text in rendered and "\n" not in rendered and FAKE_CREDENTIALS["key"] not in rendered
    if status == 429:
        assert info.value.retry_after == 7


def test_status_is_tied_to_the_version_and_limits_and_submissions_parse(fake_kaggle):
    fake_kaggle.queue(STATUS, Reply(200, {"status": "RUNNING"}),
                      Reply(200, {"status": "ERROR", "failureMessage": "CUDA out of memory"}))
    client = KaggleClient()
    assert client.status("alice/kompete-sample-dogs", 7).status == "RUNNING"
    failed = client.status("alice/kompete-sample-dogs", 7)
    assert failed.done and failed.failure_message == "CUDA out of memory"
    assert fake_kaggle.calls[-1].body.get("versionLabel") == "v7"
    assert client.submission_limits("sample-dogs").allowed_now == 4
    (sub,) = client.submissions("sample-dogs")
    assert (sub.ref, sub.status, sub.public_score) == (45, "COMPLETE", "12.34567")
    quota = client.quota()
    assert (quota.gpu_used_hours, quota.gpu_allowed_hours) == (10.0, 30.0)


def test_leaderboard_and_competition_download_land_inside_dest(fake_kaggle, tmp_path):
    client = KaggleClient()
    csv = client.download_leaderboard("sample-dogs", tmp_path / "lb")
    assert csv.read_text().startswith("TeamId,TeamName") and csv.is_relative_to(tmp_path / "lb")
    archive = client.download_competition("generative-dog-images", tmp_path / "dl")
    assert archive == tmp_path / "dl" / "generative-dog-images.zip"
    assert "all-dogs/1.jpg" in zipfile.ZipFile(archive).namelist()


def test_missing_credentials_are_a_clear_error(fake_kaggle, monkeypatch, tmp_path):
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "empty" / "cfg"))
    with pytest.raises(CredentialsError, match="no Kaggle credentials found"):
        find_credentials()
