"""The ledger: real SQLite files in tmp dirs, the real kaggle client against the fake server on 127.0.0.1."""

from __future__ import annotations

import json
import sqlite3
import struct

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from kompete.cli import main
from kompete.errors import KaggleError
from kompete.ledger import record, report
from kompete.ledger.plot import plot_history
from kompete.ledger.store import MIGRATIONS, SCHEMA_VERSION, LeaderboardRow, Ledger, LedgerError
from kompete.ledger.sync import sync
from tests.conftest import run_kompete
from tests.fake_kaggle import Reply
from tests.ledger_history import (COMPETITION, GET_LEADERBOARD, KERNEL, LIST_SUBMISSIONS, TEAM, make_history)

COMP = "gan-getting-started"


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# --------------------------------------------------------------------------- store


def test_opening_an_older_schema_migrates_it_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO runs (competition, key, mifid, recorded_at) VALUES (?, 'zip:abc', 51.5, 'x')", (COMP,))
    conn.execute("INSERT INTO submissions (competition, ref, public_score, recorded_at, updated_at) "
                 "VALUES (?, 7, 55.0, 'x', 'x')", (COMP,))
    conn.commit()
    conn.close()

    with Ledger(path) as ledger:
        assert ledger.version == SCHEMA_VERSION == 4
        assert ledger.runs(COMP)[0]["mifid"] == 51.5 and ledger.runs(COMP)[0]["images_per_s"] is None
        assert ledger.runs(COMP)[0]["preprocess"] is None and ledger.runs(COMP)[0]["resize"] is None
        assert ledger.submissions(COMP)[0]["public_score"] == 55.0
        assert ledger.record_snapshot(COMP, [LeaderboardRow(1, 1, "x", 40.0, None)]) is not None
        assert ledger.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_or_foreign_databases_are_refused_plainly(tmp_path):
    newer = tmp_path / "newer.db"
    sqlite3.connect(newer).execute("PRAGMA user_version = 99").connection.close()
    with pytest.raises(LedgerError, match="schema version 99, newer"):
        Ledger(newer)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LedgerError, match="not a kompete ledger database"):
        Ledger(junk)


def test_upserts_are_idempotent_and_never_erase(tmp_path):
    with Ledger(tmp_path / "l.db") as ledger:
        a = ledger.record_run(COMP, "kernel:alice/kgan1/3", kernel_ref="alice/kgan1", kernel_version=3, mifid=50.0,
                              config={"train": {"lr_g": 2e-4}})
        b = ledger.record_run(COMP, "kernel:alice/kgan1/3", fid=44.0)  # a later score of the same run
        assert a == b and ledger.counts()["runs"] == 1
        run = ledger.runs(COMP)[0]
        assert (run["mifid"], run["fid"], json.loads(run["config_json"])) == (50.0, 44.0, {"train": {"lr_g": 2e-4}})

        record.record_submit(ledger, COMP, 45, kernel_ref="alice/kgan1", kernel_version=3, description="v3")
        assert ledger.submissions(COMP)[0]["run_id"] == a  # linked through the kernel version
        assert ledger.submissions(COMP)[0]["status"] == "PENDING"
        scored = dict(date="2026-11-01T10:20:30.123Z", status="COMPLETE", public_score="52.25")
        assert ledger.record_submission(COMP, 45, **scored) is True
        assert ledger.record_submission(COMP, 45, **scored) is False
        sub = ledger.submissions(COMP)[0]
        assert (sub["public_score"], sub["kernel_ref"], sub["run_id"], sub["date"]) == \
               (52.25, "alice/kgan1", a, "2026-11-01T10:20:30Z")

        rows = [LeaderboardRow(1, 9, "bob", 40.0, None), LeaderboardRow(2, 3, "alice", 52.25, None)]
        assert ledger.record_snapshot(COMP, rows, my_team="alice") is not None
        assert ledger.record_snapshot(COMP, list(reversed(rows)), my_team="alice") is None
        assert ledger.counts() == {"runs": 1, "submissions": 1, "leaderboard_snapshots": 1, "leaderboard_rows": 2}


def test_a_failed_transaction_leaves_nothing_behind(tmp_path):
    with Ledger(tmp_path / "l.db") as ledger:
        with pytest.raises(RuntimeError):
            with ledger.transaction():
                ledger.record_submission(COMP, 1, status="COMPLETE", public_score="1.0")
                ledger.record_run(COMP, "zip:x", mifid=1.0)
                raise RuntimeError("killed")
        assert ledger.counts() == {"runs": 0, "submissions": 0, "leaderboard_snapshots": 0, "leaderboard_rows": 0}


def test_record_score_names_a_run_by_its_zip_and_rescoring_updates_it(tmp_path):
    zip_path = tmp_path / "images.zip"
    zip_path.write_bytes(b"PK fake zip bytes")
    with Ledger(tmp_path / "l.db") as ledger:
        first = record.record_score(ledger, COMP, zip_path=zip_path, mifid=60.0, n_images=7000, config_hash="abc")
        again = record.record_score(ledger, COMP, zip_path=zip_path, mifid=58.0, memorization=0.31)
        run = ledger.runs(COMP)[0]
    assert first == again
    assert run["key"] == f"zip:{record.file_sha256(zip_path)}" and run["zip_sha256"] == record.file_sha256(zip_path)
    assert (run["mifid"], run["memorization"], run["n_images"], run["config_hash"]) == (58.0, 0.31, 7000, "abc")


# --------------------------------------------------------------------------- reports and plots


def _filled(ledger: Ledger, n: int = 6, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    public = rng.uniform(40, 90, n)
    local = public * 0.9 + rng.normal(0, 4, n)
    for i in range(n):
        cfg = {"train": {"lr_g": [1e-4, 2e-4][i % 2], "loss": "hinge"}, "generate": {"seed": i}}
        ledger.record_run(COMP, f"kernel:{KERNEL}/{i + 1}", kernel_ref=KERNEL, kernel_version=i + 1,
                          mifid=float(local[i]), config=cfg, config_hash=f"h{i}")
        record.record_submit(ledger, COMP, 100 + i, kernel_ref=KERNEL, kernel_version=i + 1)
        ledger.record_submission(COMP, 100 + i, date=f"2026-10-{i + 1:02d}T12:00:00Z", status="COMPLETE",
                                 public_score=f"{public[i]:.6f}", team_name=TEAM)
    ledger.record_submission(COMP, 999, date="2026-10-30T12:00:00Z", status="ERROR", team_name=TEAM)
    board = sorted([("t1", 35.0), ("t2", 38.5), (TEAM, float(public.min())), ("t3", 95.0), ("t4", 99.0)],
                   key=lambda kv: kv[1])
    ledger.record_snapshot(COMP, [LeaderboardRow(i + 1, i, t, s, None) for i, (t, s) in enumerate(board)],
                           my_team=TEAM, taken_at="2026-10-31T00:00:00Z")
    ledger.set_state(COMP, num_today=2, num_total=7, num_allowed_now=3, limited_by_total=False)
    return local, public


def test_summary_numbers_come_from_the_stored_rows(tmp_path):
    with Ledger(tmp_path / "l.db") as ledger:
        local, public = _filled(ledger)
        s = report.summarise(ledger, COMP)
    best = float(np.round(public, 6).min())
    rank = 1 + sum(score < best for score in (35.0, 38.5, 95.0, 99.0))
    assert (s.n_submissions, s.n_scored, s.n_errors) == (7, 6, 1)
    assert s.best_public == pytest.approx(best) and s.rank == rank and s.total_teams == 5
    assert s.percentile == pytest.approx(100 * rank / 5)
    assert s.gap_to_first == pytest.approx(best - 35.0)
    assert s.median_score == pytest.approx(sorted([35.0, 38.5, best, 95.0, 99.0])[2])
    assert s.submissions_left == 3
    assert s.n_pairs == 6 and s.correlation == pytest.approx(np.corrcoef(local, np.round(public, 6))[0, 1])
    assert any("Pearson r" in line for line in s.lines())


def test_correlation_needs_three_pairs_and_variation():
    frame = pd.DataFrame({"local_mifid": [1.0, 2.0, None], "public_score": [3.0, 5.0, 4.0]})
    assert report.correlation(frame) == (None, 2)
    frame = pd.DataFrame({"local_mifid": [1.0, 2.0, 3.0], "public_score": [4.0, 4.0, 4.0]})
    assert report.correlation(frame) == (None, 3)
    frame = pd.DataFrame({"local_mifid": [1.0, 2.0, 3.0], "public_score": [2.0, 4.0, 6.5]})
    assert report.correlation(frame)[0] == pytest.approx(np.corrcoef([1, 2, 3], [2, 4, 6.5])[0, 1])


def test_runs_show_config_changes_and_compare_gives_deltas(tmp_path):
    with Ledger(tmp_path / "l.db") as ledger:
        local, public = _filled(ledger, n=3)
        frame = report.runs_frame(ledger, COMP)
        cmp = report.compare(ledger, 1, "h2")
    assert list(frame["changes"]) == ["(first)", "generate.seed=1, train.lr_g=0.0002", "generate.seed=2, train.lr_g=0.0001"]
    assert frame["public"].tolist() == pytest.approx(np.round(public, 6).tolist())
    assert cmp.diff == [("generate.seed", 0, 2)]
    assert cmp.deltas["mifid"][2] == pytest.approx(local[2] - local[0])
    assert cmp.deltas["public"][2] == pytest.approx(round(public[2], 6) - round(public[0], 6))


def test_plot_is_a_real_png(tmp_path):
    with Ledger(tmp_path / "l.db") as ledger:
        _filled(ledger)
        out = plot_history(ledger, COMP, tmp_path / "plots" / "lb.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 1000 and height > 400 and len(data) > 30_000
    assert not list(out.parent.glob(".*.tmp"))


# --------------------------------------------------------------------------- CLI


def test_show_on_an_empty_ledger_is_friendly(tmp_path):
    result = invoke("leaderboard", "show", COMP, "--db", str(tmp_path / "empty.db"), "--plot", str(tmp_path / "p.png"))
    assert result.exit_code == 0 and "Nothing recorded for gan-getting-started" in result.output
    assert "kompete leaderboard sync" in result.output and not (tmp_path / "p.png").exists()
    assert "No runs recorded" in invoke("runs", "--db", str(tmp_path / "empty.db")).output


def test_show_runs_and_csv_round_trip_through_the_cli(tmp_path, isolated_ledger):
    with Ledger(isolated_ledger) as ledger:  # the KOMPETE_DB the CLI reads
        _filled(ledger)
        expected = report.submissions_frame(ledger, COMP)
    csv = tmp_path / "subs.csv"
    result = invoke("leaderboard", "show", COMP, "--csv", str(csv), "--plot", str(tmp_path / "lb.png"))
    assert result.exit_code == 0, result.output
    assert "best public score" in result.output and "<- you" in result.output and "Pearson r" in result.output
    back = pd.read_csv(csv, parse_dates=["date"])
    pd.testing.assert_frame_equal(back[["ref", "status", "public_score", "local_mifid"]],
                                  expected[["ref", "status", "public_score", "local_mifid"]], check_dtype=False)
    assert (tmp_path / "lb.png").stat().st_size > 30_000

    runs = invoke("runs", COMP)
    assert runs.exit_code == 0 and "train.lr_g=0.0002" in runs.output and "(first)" in runs.output
    compare = invoke("runs", "compare", "1", "2")
    assert "train.lr_g     0.0001 -> 0.0002" in compare.output and "mifid" in compare.output
    bad = CliRunner().invoke(main, ["runs", "compare", "1", "77"])
    assert bad.exit_code != 0 and bad.output.strip().startswith("Error: no run '77'")


def test_record_quietly_warns_instead_of_failing(tmp_path, capsys):
    from kompete.cli.ledger_commands import record_quietly

    blocked = tmp_path / "a-dir.db"
    blocked.mkdir()
    assert record_quietly(record.record_submit, COMP, 5, db_path=blocked) is None
    assert "Warning: not recorded in the ledger" in capsys.readouterr().err
    ok = tmp_path / "ok.db"
    record_quietly(record.record_submit, COMP, 5, db_path=ok, kernel_ref=KERNEL, kernel_version=1)
    with Ledger(ok) as ledger:
        assert ledger.submissions(COMP)[0]["kernel_ref"] == KERNEL


# --------------------------------------------------------------------------- sync, real client, fake server


def _client():
    from kompete.kernel.client import KaggleClient

    return KaggleClient()


def test_sync_pages_through_everything_and_a_second_sync_adds_nothing(fake_kaggle, tmp_path):
    history = make_history(days=6)
    history.serve(fake_kaggle, 5, page_size=3)
    with Ledger(tmp_path / "l.db") as ledger:
        first = sync(ledger, _client(), COMPETITION, now=history.at(5))
        counts = ledger.counts()
        history.serve(fake_kaggle, 5, page_size=3)
        second = sync(ledger, _client(), COMPETITION, now=history.at(5))
        assert ledger.counts() == counts
    visible = history.visible(5)
    assert (first.submissions, first.new, first.teams) == (len(visible), len(visible), 41)
    assert (second.new, second.updated, second.snapshot_id) == (0, 0, None)
    assert counts["leaderboard_snapshots"] == 1 and counts["submissions"] == len(visible)
    expected_rank = [r["teamName"] for r in history.leaderboard(5)].index(TEAM) + 1
    assert first.my_rank == expected_rank
    n_pages = -(-len(visible) // 3)
    tokens = [c.body.get("pageToken") for c in fake_kaggle.calls if c.method == LIST_SUBMISSIONS]
    assert tokens == [None, *[f"page-{i}" for i in range(2, n_pages + 1)]] * 2
    assert sum(1 for c in fake_kaggle.calls if c.method == GET_LEADERBOARD) == 2 * 14  # 41 rows / 3 per page


def test_sync_updates_statuses_as_scoring_finishes(fake_kaggle, tmp_path):
    history = make_history(days=6)
    sub = history.visible(2)[-1]
    with Ledger(tmp_path / "l.db") as ledger:
        history.serve(fake_kaggle, 2, at=sub.date)  # right after submitting: still being scored
        sync(ledger, _client(), COMPETITION, now=sub.date)
        pending = {s["ref"]: s for s in ledger.submissions(COMPETITION)}[sub.ref]
        history.serve(fake_kaggle, 2)  # that evening: scored
        later = sync(ledger, _client(), COMPETITION, now=history.at(2))
        done = {s["ref"]: s for s in ledger.submissions(COMPETITION)}[sub.ref]
    assert (pending["status"], pending["public_score"]) == ("PENDING", None)
    assert later.new == 0 and later.updated >= 1
    assert done["status"] == "COMPLETE" and done["public_score"] == pytest.approx(round(sub.public, 5))


def test_sync_backs_off_on_429_with_retry_after(fake_kaggle, tmp_path):
    history = make_history(days=3)
    history.serve(fake_kaggle, 2)
    limited = Reply(429, {"error": {"code": 429, "message": "Too many requests", "status": "RESOURCE_EXHAUSTED"}},
                    {"Retry-After": "7"})
    pages = fake_kaggle.routes[LIST_SUBMISSIONS]
    fake_kaggle.queue(LIST_SUBMISSIONS, limited, limited, *pages)
    slept = []
    with Ledger(tmp_path / "l.db") as ledger:
        result = sync(ledger, _client(), COMPETITION, sleep=slept.append, now=history.at(2))
        assert ledger.counts()["submissions"] == len(history.visible(2))
    assert slept == [7.0, 7.0] and result.retries == 2


def test_a_sync_failing_midway_leaves_the_ledger_untouched(fake_kaggle, tmp_path, monkeypatch):
    history = make_history(days=8)
    with Ledger(tmp_path / "l.db") as ledger:
        history.serve(fake_kaggle, 3)
        sync(ledger, _client(), COMPETITION, now=history.at(3))
        before = ledger.counts(), ledger.submissions(COMPETITION), ledger.state(COMPETITION)

        history.serve(fake_kaggle, 7, page_size=5)  # the leaderboard breaks on its second page
        first_page = fake_kaggle.routes[GET_LEADERBOARD][0]
        fake_kaggle.queue(GET_LEADERBOARD, first_page, Reply(500, b"<html>oops</html>"))
        with pytest.raises(KaggleError, match="server error"):
            sync(ledger, _client(), COMPETITION, now=history.at(7))
        assert (ledger.counts(), ledger.submissions(COMPETITION), ledger.state(COMPETITION)) == before

        history.serve(fake_kaggle, 7)  # everything fetched, then the process dies while writing
        monkeypatch.setattr(Ledger, "record_snapshot", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            sync(ledger, _client(), COMPETITION, now=history.at(7))
        assert (ledger.counts(), ledger.submissions(COMPETITION), ledger.state(COMPETITION)) == before


def test_replayed_history_gives_the_leaderboard_story(fake_kaggle, tmp_path):
    """21 days of syncs: the numbers `show` prints match the history that was served."""
    history = make_history()
    with Ledger(tmp_path / "l.db") as ledger:
        client = _client()
        for day in range(history.days):
            for sub in history.subs:
                if sub.date.date() == history.at(day).date():  # what `kompete score` and `submit` record that day
                    record.record_score(ledger, COMPETITION, kernel_ref=KERNEL, kernel_version=sub.version,
                                        mifid=sub.local_mifid, config=sub.config)
                    record.record_submit(ledger, COMPETITION, sub.ref, kernel_ref=KERNEL, kernel_version=sub.version)
            history.serve(fake_kaggle, day)
            sync(ledger, client, COMPETITION, now=history.at(day))
        s = report.summarise(ledger, COMPETITION)
        snaps = ledger.snapshots(COMPETITION)
    last = history.leaderboard(history.days - 1)
    scored = [x for x in history.subs if x.public is not None and x.pending_until <= history.at(history.days - 1)]
    assert s.n_submissions == len(history.subs) >= 20 and s.n_errors == 1 and s.n_pending == 1
    assert s.rank == [r["teamName"] for r in last].index(TEAM) + 1 and s.total_teams == len(last)
    assert s.top_score == pytest.approx(float(last[0]["score"]))
    assert s.best_public == pytest.approx(min(round(x.public, 5) for x in scored))
    pairs = np.array([(x.local_mifid, round(x.public, 5)) for x in scored])
    assert s.n_pairs == len(scored) and s.correlation == pytest.approx(np.corrcoef(pairs.T)[0, 1])
    assert len(snaps) == history.days and [x["my_rank"] for x in snaps][-1] == s.rank


@pytest.mark.slow
def test_cli_sync_and_show_in_a_subprocess(fake_kaggle, tmp_path, isolated_ledger):
    history = make_history(days=4)
    history.serve(fake_kaggle, 3, page_size=4)
    synced = run_kompete("leaderboard", "sync", COMPETITION, timeout=120)
    assert synced.returncode == 0, synced.stderr
    assert f"{len(history.visible(3))} submissions ({len(history.visible(3))} new, 0 updated)" in synced.stdout
    assert str(isolated_ledger) in synced.stdout
    shown = run_kompete("leaderboard", "show", COMPETITION, "--plot", str(tmp_path / "lb.png"), timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "submissions left   " in shown.stdout and (tmp_path / "lb.png").stat().st_size > 30_000
    assert not fake_kaggle.escaped


def test_sync_without_credentials_is_one_plain_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "cfg"))
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    result = CliRunner().invoke(main, ["leaderboard", "sync", COMP])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("Error: no Kaggle credentials found")


@pytest.mark.slow
def test_scoring_a_fetched_kernel_zip_lands_on_the_kernel_run_its_submission_links_to(tmp_path):
    zip_path = tmp_path / "images.zip"
    zip_path.write_bytes(b"PK output of v4")
    with Ledger(tmp_path / "l.db") as ledger:
        fetched = record.record_score(ledger, COMP, zip_path=zip_path, kernel_ref=KERNEL, kernel_version=4)
        scored = record.record_score(ledger, COMP, zip_path=zip_path, mifid=47.5)  # `kompete score` on it
        record.record_submit(ledger, COMP, 77, kernel_ref=KERNEL, kernel_version=4)
        ledger.record_submission(COMP, 77, status="COMPLETE", public_score="49.0")
        frame = report.submissions_frame(ledger, COMP)
    assert fetched == scored and frame.loc[0, "local_mifid"] == 47.5 and frame.loc[0, "public_score"] == 49.0
