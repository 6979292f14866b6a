"""Memorizers (memorization distance below metric.eps, where MiFID divides FID by it) are marked in every table
and warned about in one line: `runs`, `leaderboard show`, `campaign collect` and `campaign show`."""

from __future__ import annotations

from click.testing import CliRunner

from kompete.cli import main
from kompete import memorization
from kompete.ledger import record, report
from kompete.ledger.store import Ledger
from tests.test_campaign import DOGS, _scored_campaign, kompete

COMP = "gan-getting-started"


def invoke(*args: str):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _two_runs(ledger: Ledger) -> None:
    """Run 1 copies (0.02 < eps 0.1) and was submitted; run 2 is honest; run 3 scored plain FID."""
    for i, (memo, metric) in enumerate([(0.02, "mifid"), (0.35, "mifid"), (0.01, "fid")], start=1):
        ledger.record_run(COMP, f"kernel:me/k/{i}", kernel_ref="me/k", kernel_version=i, mifid=10.0 * i,
                          memorization=memo, config={"metric": {"eps": 0.1}}, config_hash=f"h{i}", metric=metric)
        record.record_submit(ledger, COMP, 100 + i, kernel_ref="me/k", kernel_version=i)
        ledger.record_submission(COMP, 100 + i, date=f"2026-10-0{i}T12:00:00Z", status="COMPLETE",
                                 public_score=f"{40 + i}.0")


def test_the_rule_counts_only_where_the_threshold_applies():
    assert memorization.memorizes(0.05, 0.1) and memorization.memorizes(0.05, 0.1, None)
    assert not memorization.memorizes(0.1, 0.1) and not memorization.memorizes(0.05, 0.1, "fid")
    assert not memorization.memorizes(None, 0.1) and memorization.eps_of('{"metric": {"eps": 0.2}}') == 0.2
    assert memorization.eps_of(None) == memorization.eps_of("not json") == 0.1


def test_runs_and_leaderboard_show_mark_the_memorizer(isolated_ledger):
    with Ledger(isolated_ledger) as ledger:
        _two_runs(ledger)
        runs = report.runs_frame(ledger, COMP)
        subs = report.submissions_frame(ledger, COMP)
    assert runs["flag"].notna().tolist() == subs["flag"].notna().tolist() == [True, False, False]
    assert runs.loc[0, "flag"] == subs.loc[0, "flag"] == memorization.MARK
    listed = invoke("runs", COMP).splitlines()
    assert memorization.MARK in listed[1] and memorization.MARK not in "".join(listed[2:])
    shown = invoke("leaderboard", "show", COMP)
    warnings = [line for line in shown.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: 1 marked {memorization.MARK}, memorization distance below eps: submission 101 "
                        f"(0.0200); MiFID divides FID by it, and Kaggle disqualified memorizers"]
    row = [line for line in shown.splitlines() if line.lstrip().startswith("101")]
    assert row and memorization.MARK in row[0]


def test_campaign_collect_and_show_mark_the_memorizer(fake_kaggle, tmp_path):
    _scored_campaign(fake_kaggle, tmp_path, "m")  # variant 1: MiFID 20 with distance 0.05 (eps 0.1), ranked first
    for out in (kompete("campaign", "collect", "m", "--again").output, kompete("campaign", "show", "m").output):
        lines = out.splitlines()
        (first,) = [line for line in lines if line.startswith("1 ")]
        assert memorization.MARK in first
        assert not any(memorization.MARK in line for line in lines if line.startswith(("2 ", "3 ")))
        assert [line for line in lines if line.startswith("warning:")] == [
            f"warning: 1 marked {memorization.MARK}, memorization distance below eps: 1 (0.0500 < eps 0.1); "
            f"MiFID divides FID by it, and Kaggle disqualified memorizers"]


def test_damaged_run_rows_still_print_their_tables(isolated_ledger):
    """A config that is not JSON or a score that is not a number reads as unknown ('-'), never a traceback."""
    import sqlite3

    with Ledger(isolated_ledger) as ledger:
        _two_runs(ledger)
    con = sqlite3.connect(isolated_ledger)
    con.execute("UPDATE runs SET config_json = '{not json' WHERE id = 1")
    con.execute("UPDATE runs SET memorization = 'abc', mifid = 'x' WHERE id = 2")
    con.commit()
    con.close()
    listed = invoke("runs", COMP).splitlines()
    assert memorization.MARK in listed[1]  # eps unknown: the default 0.1 still catches 0.02
    assert "-" in listed[2].split()
    assert "mifid" in invoke("runs", "compare", "1", "2")
    assert "submission 101" in invoke("leaderboard", "show", COMP)


def test_the_kernel_log_repeats_the_score_warning_in_its_summary(tmp_path, monkeypatch, capsys):
    from kompete.config import load_config
    from kompete.kernel.bundle import build_bundle
    from tests.test_kernel_bundle import _load_script

    script = _load_script(build_bundle(load_config("sample-dogs"), "alice", out_root=tmp_path / "k").folder
                          / "kernel.py", tmp_path, monkeypatch)
    warning = memorization.warning(0.01, 0.1, 0.97)
    record = {"stages": [], "zip": {"valid": True, "members": 1, "bytes": 9}, "failed": [], "warnings": [],
              "score": {"mifid": 4000.0, "fid": 40.0, "memorization_distance": 0.01, "warning": warning},
              "stopped_by": None, "output": {"files": 2, "bytes": 9}, "seconds": 1.0, "exit": 0}
    script.summary(record, None, tmp_path)
    assert any(line.endswith("WARNING: " + warning) for line in capsys.readouterr().out.splitlines())
