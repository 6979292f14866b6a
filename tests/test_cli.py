from __future__ import annotations

import pytest
from click.testing import CliRunner

from kompete import __version__
from kompete.cli import main
from tests.conftest import run_kompete


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_version_and_competitions_table():
    assert __version__ in invoke("--version").output
    out = invoke("competitions").output
    assert "generative-dog-images" in out and "7000-10000" in out and "9 h" in out


def test_data_command_summarises_the_sample_then_hits_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KOMPETE_CACHE_DIR", str(tmp_path))  # its own cache: test_data may have built this one
    first = invoke("data", "sample-dogs", "--quiet")
    assert first.exit_code == 0, first.output
    assert "classes       4" in first.output and "(built)" in first.output
    second = invoke("data", "sample-dogs", "--quiet")
    assert "(hit)" in second.output


def test_config_prints_overrides_and_hash():
    result = invoke("config", "sample-dogs", "--set", "train.lr_g=0.0003")
    assert result.exit_code == 0 and "lr_g: 0.0003" in result.output and "config hash:" in result.output
    assert "metric.eps" in invoke("config", "sample-dogs", "--keys").output


def test_user_errors_are_one_line_and_non_zero(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntask: generate\ntrain: {batch_size: lots}\n")
    cases = [("config", str(bad)), ("config", "sample-dogs", "--set", "train.nope=1"),
             ("data", "no-such-comp"), ("data", "generative-dog-images", "--data-dir", str(tmp_path / "missing"))]
    for args in cases:
        result = CliRunner().invoke(main, list(args))
        assert result.exit_code != 0, args
        assert result.exception is None or isinstance(result.exception, SystemExit), args
        lines = [l for l in result.output.splitlines() if l.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: "), (args, result.output)


@pytest.mark.slow
def test_real_subprocess_cli(tmp_path):
    ok = run_kompete("data", "sample-monet", "--quiet")
    assert ok.returncode == 0, ok.stderr
    assert "photo_jpg" in ok.stdout and "monet_jpg" in ok.stdout
    bad = run_kompete("data", "generative-dog-images", "--data-dir", str(tmp_path / "nope"))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().startswith("Error: no data for generative-dog-images")
