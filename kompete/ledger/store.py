"""The ledger database: runs, submissions and leaderboard snapshots in one SQLite file.

Plain `sqlite3`, WAL journal, foreign keys on. The schema is versioned with `PRAGMA user_version`
and grows by appending to MIGRATIONS; a database written by an older kompete is upgraded in place
when opened, one written by a newer one is refused rather than misread.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from kompete.errors import KompeteError

DB_ENV = "KOMPETE_DB"


class LedgerError(KompeteError):
    pass


# Each entry moves the schema from version i to i + 1. Never edit a shipped entry: append one.
MIGRATIONS: tuple[str, ...] = (
    # 1: runs and submissions.
    """
    CREATE TABLE runs (
        id             INTEGER PRIMARY KEY,
        competition    TEXT NOT NULL,
        key            TEXT NOT NULL,          -- what names the run: 'zip:<sha256>', 'kernel:owner/slug/7', a run dir
        kernel_ref     TEXT,                   -- owner/slug when the run was a Kaggle kernel
        kernel_version INTEGER,
        run_dir        TEXT,
        config_json    TEXT,                   -- the resolved config, sorted keys
        config_hash    TEXT,
        git_commit     TEXT,
        started_at     TEXT,
        ended_at       TEXT,
        fid            REAL,
        mifid          REAL,
        memorization   REAL,
        n_images       INTEGER,
        zip_path       TEXT,
        zip_sha256     TEXT,
        recorded_at    TEXT NOT NULL,
        UNIQUE (competition, key)
    );
    CREATE TABLE submissions (
        id                INTEGER PRIMARY KEY,
        competition       TEXT NOT NULL,
        ref               INTEGER NOT NULL,    -- Kaggle's submission id
        date              TEXT,
        description       TEXT,
        file_name         TEXT,
        status            TEXT NOT NULL DEFAULT 'PENDING',
        public_score      REAL,
        private_score     REAL,
        error_description TEXT,
        team_name         TEXT,
        kernel_ref        TEXT,
        kernel_version    INTEGER,
        run_id            INTEGER REFERENCES runs(id) ON DELETE SET NULL,
        recorded_at       TEXT NOT NULL,
        updated_at        TEXT NOT NULL,
        UNIQUE (competition, ref)
    );
    CREATE INDEX submissions_by_date ON submissions (competition, date);
    """,
    # 2: leaderboard snapshots, the daily allowance, and throughput of runs.
    """
    ALTER TABLE runs ADD COLUMN images_per_s REAL;
    CREATE TABLE leaderboard_snapshots (
        id           INTEGER PRIMARY KEY,
        competition  TEXT NOT NULL,
        taken_at     TEXT NOT NULL,
        content_sha  TEXT NOT NULL,            -- of the rows: an unchanged leaderboard adds no snapshot
        total_teams  INTEGER NOT NULL,
        top_score    REAL,
        median_score REAL,
        my_team      TEXT,
        my_rank      INTEGER,
        my_score     REAL
    );
    CREATE INDEX snapshots_by_time ON leaderboard_snapshots (competition, taken_at);
    CREATE TABLE leaderboard_rows (
        snapshot_id     INTEGER NOT NULL REFERENCES leaderboard_snapshots(id) ON DELETE CASCADE,
        rank            INTEGER NOT NULL,
        team_id         INTEGER,
        team_name       TEXT,
        score           REAL,
        submission_date TEXT,
        PRIMARY KEY (snapshot_id, rank)
    );
    CREATE TABLE competition_state (
        competition      TEXT PRIMARY KEY,
        synced_at        TEXT,
        num_today        INTEGER,
        num_total        INTEGER,
        num_allowed_now  INTEGER,
        limited_by_total INTEGER
    );
    """,
    # 3: campaigns, named sets of kernels that are queued, watched, collected and submitted together.
    """
    CREATE TABLE campaigns (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        competition TEXT NOT NULL,
        spec_json   TEXT NOT NULL,             -- what `campaign start` was asked: owner, overrides, sweeps
        created_at  TEXT NOT NULL
    );
    CREATE TABLE campaign_kernels (
        id            INTEGER PRIMARY KEY,
        campaign_id   INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
        variant       TEXT NOT NULL,
        kernel_ref    TEXT NOT NULL,           -- owner/slug
        folder        TEXT,                    -- the built bundle, NULL for a kernel pushed otherwise
        sets_json     TEXT,                    -- the overrides that rebuild this variant's config
        changes_json  TEXT,                    -- where its config differs from the competition default
        config_hash   TEXT,
        parent_id     INTEGER REFERENCES campaign_kernels(id),  -- the variant this one continues
        state         TEXT NOT NULL,           -- queued, running, complete, error
        kaggle_status TEXT,
        version       INTEGER,
        failure       TEXT,
        queued_at     TEXT NOT NULL,
        pushed_at     TEXT,
        finished_at   TEXT,
        polled_at     TEXT,
        collected     TEXT,                    -- ok, rejected, failed, NULL before collect
        collect_note  TEXT,
        out_dir       TEXT,
        score_source  TEXT,                    -- local (scored here) or kernel (the kernel's own score)
        steps         INTEGER,
        run_id        INTEGER REFERENCES runs(id) ON DELETE SET NULL,
        UNIQUE (campaign_id, variant)
    );
    CREATE INDEX campaign_kernels_by_ref ON campaign_kernels (kernel_ref, version);
    """,
    # 4: what a local score was computed with (scores made differently are not comparable): metric.name
    # (mifid, fid), metric.preprocess (the Inception input path: tf, pytorch-fid), metric.resize (the
    # reference resize: antialias, tf-bilinear).
    """
    ALTER TABLE runs ADD COLUMN metric TEXT;
    ALTER TABLE runs ADD COLUMN preprocess TEXT;
    ALTER TABLE runs ADD COLUMN resize TEXT;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

RUN_FIELDS = ("kernel_ref", "kernel_version", "run_dir", "config_json", "config_hash", "git_commit",
              "started_at", "ended_at", "fid", "mifid", "memorization", "n_images", "zip_path",
              "zip_sha256", "images_per_s", "metric", "preprocess", "resize")
SUBMISSION_FIELDS = ("date", "description", "file_name", "status", "public_score", "private_score",
                     "error_description", "team_name", "kernel_ref", "kernel_version", "run_id")
STATUSES = ("PENDING", "COMPLETE", "ERROR")


def default_db_path() -> Path:
    """`$KOMPETE_DB`, else `~/.kompete/kompete.db`."""
    if os.environ.get(DB_ENV):
        return Path(os.environ[DB_ENV]).expanduser()
    return Path.home() / ".kompete" / "kompete.db"


def _unwritable(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "readonly" in text or "read-only" in text or "unable to open" in text


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def iso(value: Any) -> str | None:
    """A datetime or ISO string as 'YYYY-MM-DDTHH:MM:SSZ' (UTC), so text order is time order."""
    if value in (None, ""):
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    raise LedgerError(f"not a date: {value!r}")


def parse_score(value: Any) -> float | None:
    """Kaggle sends scores as strings, '' while pending."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def normalise_status(value: Any) -> str:
    """'SubmissionStatus.COMPLETE', 'complete', an enum member -> 'COMPLETE'."""
    name = getattr(value, "name", None) or str(value or "PENDING")
    name = name.rsplit(".", 1)[-1].upper()
    return name if name in STATUSES else "PENDING"


@dataclass(frozen=True)
class LeaderboardRow:
    rank: int
    team_id: int | None
    team_name: str
    score: float | None
    submission_date: str | None


class Ledger:
    """One open ledger database. Use as a context manager, or call close()."""

    def __init__(self, path: str | os.PathLike | None = None, readonly: bool = False):
        """`readonly` (commands that only show): never creates or changes the file. A missing database reads
        as an empty one (`exists` is False), and one on a read-only file system is still read."""
        self.path = Path(path).expanduser() if path else default_db_path()
        self.readonly = readonly
        self.exists = self.path.is_file()
        if readonly and self._open_readonly():
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: transactions are explicit (see transaction()), never implicit.
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open the ledger database {self.path}: {exc}",
                              f"move it with --db PATH or ${DB_ENV}") from exc
        self.conn.row_factory = sqlite3.Row
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.migrate()
        except sqlite3.OperationalError as exc:
            self.conn.close()
            if _unwritable(exc):  # a valid database on a read-only disk is not "not a ledger"
                raise LedgerError(f"cannot write the ledger database {self.path}: the file or its folder is "
                                  f"read-only ({exc})", f"make it writable, or choose another with --db PATH or "
                                                        f"${DB_ENV}") from exc
            raise LedgerError(f"{self.path} is not a kompete ledger database ({exc})",
                              f"move it aside or choose another with --db PATH or ${DB_ENV}") from exc
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise LedgerError(f"{self.path} is not a kompete ledger database ({exc})",
                              f"move it aside or choose another with --db PATH or ${DB_ENV}") from exc
        except BaseException:
            self.conn.close()
            raise

    def _open_readonly(self) -> bool:
        """Open without writing; False when the schema is older and needs the writable path's migration."""
        if not self.exists:  # a mistyped --db must not create a file: read an empty schema in memory
            self.conn = sqlite3.connect(":memory:", isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            self.migrate()
            return True
        uri = self.path.resolve().as_uri()
        last: sqlite3.Error | None = None
        # mode=ro still needs the WAL's -shm file; immutable=1 reads a file nothing can be writing (read-only disk)
        for query in ("?mode=ro", "?immutable=1"):
            try:
                self.conn = sqlite3.connect(uri + query, uri=True, isolation_level=None, timeout=30)
                self.conn.row_factory = sqlite3.Row
                current = self.version
                break
            except sqlite3.OperationalError as exc:
                last = exc
                self.conn.close()
            except sqlite3.DatabaseError as exc:
                self.conn.close()
                raise LedgerError(f"{self.path} is not a kompete ledger database ({exc})",
                                  f"choose another with --db PATH or ${DB_ENV}") from exc
        else:
            raise LedgerError(f"cannot read the ledger database {self.path}: {last}",
                              f"choose another with --db PATH or ${DB_ENV}")
        if current > SCHEMA_VERSION:
            self.conn.close()
            raise LedgerError(f"{self.path} has schema version {current}, newer than this kompete "
                              f"understands ({SCHEMA_VERSION})", "upgrade kompete")
        if current < SCHEMA_VERSION:
            self.conn.close()
            return False
        return True

    # ------------------------------------------------------------------ housekeeping

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    @property
    def version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self, target: int = SCHEMA_VERSION) -> int:
        """Bring the schema up to `target`, one migration per transaction. Returns the new version."""
        current = self.version
        if current > SCHEMA_VERSION:
            raise LedgerError(f"{self.path} has schema version {current}, newer than this kompete "
                              f"understands ({SCHEMA_VERSION})", "upgrade kompete")
        for version in range(current, target):
            with self.transaction():
                for statement in _statements(MIGRATIONS[version]):
                    self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {version + 1}")
        return self.version

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing: a failure anywhere in the block leaves the database as it was.

        Nested use joins the outer transaction.
        """
        if self.conn.in_transaction:
            yield self.conn
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # ------------------------------------------------------------------ runs

    def record_run(self, competition: str, key: str, *, config: dict | None = None, **fields: Any) -> int:
        """Insert or update the run named `key`; fields given as None keep what is stored. Returns its id."""
        unknown = set(fields) - set(RUN_FIELDS)
        if unknown:
            raise TypeError(f"unknown run fields: {sorted(unknown)}")
        if config is not None:
            fields["config_json"] = json.dumps(config, sort_keys=True, default=str)
        for name in ("started_at", "ended_at"):
            if name in fields:
                fields[name] = iso(fields[name])
        cols = ["competition", "key", "recorded_at", *fields]
        values = [competition, key, now_iso(), *fields.values()]
        updates = ", ".join(f"{c} = COALESCE(excluded.{c}, {c})" for c in fields) or "key = key"
        with self.transaction():
            self.conn.execute(
                f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
                f"ON CONFLICT (competition, key) DO UPDATE SET {updates}", values)
            run_id = self.conn.execute("SELECT id FROM runs WHERE competition = ? AND key = ?",
                                       (competition, key)).fetchone()[0]
            self._link_submissions(competition)
        return run_id

    def runs(self, competition: str | None = None) -> list[dict]:
        sql = "SELECT * FROM runs" + (" WHERE competition = ?" if competition else "") + " ORDER BY id"
        return [dict(r) for r in self.conn.execute(sql, (competition,) if competition else ())]

    def run(self, ident: str | int) -> dict:
        """A run by id, or by a unique prefix of its key or config hash."""
        text = str(ident)
        if text.isdigit():
            row = self.conn.execute("SELECT * FROM runs WHERE id = ?", (int(text),)).fetchone()
            if row:
                return dict(row)
        rows = self.conn.execute("SELECT * FROM runs WHERE key LIKE ? OR config_hash LIKE ?",
                                 (text + "%", text + "%")).fetchall()
        if len(rows) == 1:
            return dict(rows[0])
        if not rows:
            raise LedgerError(f"no run {text!r} in {self.path}", "`kompete runs` lists them")
        raise LedgerError(f"{text!r} matches {len(rows)} runs", "use the run id from `kompete runs`")

    # ------------------------------------------------------------------ submissions

    def record_submission(self, competition: str, ref: int, **fields: Any) -> bool:
        """Insert or update submission `ref`. Returns True when something actually changed.

        Fields given as None keep what is stored: a sync never erases the kernel or run that a
        local submit recorded.
        """
        unknown = set(fields) - set(SUBMISSION_FIELDS)
        if unknown:
            raise TypeError(f"unknown submission fields: {sorted(unknown)}")
        fields = {k: v for k, v in fields.items() if v is not None}
        if "status" in fields:
            fields["status"] = normalise_status(fields["status"])
        if "date" in fields:
            fields["date"] = iso(fields["date"])
        for name in ("public_score", "private_score"):
            if name in fields:
                fields[name] = parse_score(fields[name])
        with self.transaction():
            old = self.conn.execute("SELECT * FROM submissions WHERE competition = ? AND ref = ?",
                                    (competition, int(ref))).fetchone()
            stamp = now_iso()
            if old is None:
                cols = ["competition", "ref", "recorded_at", "updated_at", *fields]
                self.conn.execute(f"INSERT INTO submissions ({', '.join(cols)}) VALUES "
                                  f"({', '.join('?' * len(cols))})",
                                  [competition, int(ref), stamp, stamp, *fields.values()])
            else:
                changed = {k: v for k, v in fields.items() if old[k] != v}
                if not changed:
                    return False
                sets = ", ".join(f"{k} = ?" for k in changed)
                self.conn.execute(f"UPDATE submissions SET {sets}, updated_at = ? WHERE id = ?",
                                  [*changed.values(), stamp, old["id"]])
            self._link_submissions(competition)
        return True

    def submissions(self, competition: str) -> list[dict]:
        rows = self.conn.execute("SELECT * FROM submissions WHERE competition = ? ORDER BY date, ref",
                                 (competition,))
        return [dict(r) for r in rows]

    def _link_submissions(self, competition: str) -> None:
        """Tie submissions to the run of the same kernel version when neither side knew the other."""
        self.conn.execute(
            """UPDATE submissions SET run_id = (
                   SELECT r.id FROM runs r WHERE r.competition = submissions.competition
                   AND r.kernel_ref = submissions.kernel_ref AND r.kernel_version = submissions.kernel_version
                   ORDER BY r.id DESC LIMIT 1)
               WHERE competition = ? AND run_id IS NULL AND kernel_ref IS NOT NULL""", (competition,))

    # ------------------------------------------------------------------ leaderboard

    def record_snapshot(self, competition: str, rows: Sequence[LeaderboardRow], *, my_team: str | None = None,
                        taken_at: Any = None, keep: int | None = None) -> int | None:
        """Store the leaderboard as it is now. Returns the snapshot id, or None when it is unchanged
        since the last snapshot (so a repeated sync adds nothing).

        Team count, median and the user's rank come from all `rows`; only the first `keep` rows
        (all when None) are stored row by row.
        """
        rows = sorted(rows, key=lambda r: r.rank)
        blob = json.dumps([[r.rank, r.team_id, r.team_name, r.score, r.submission_date] for r in rows])
        sha = hashlib.sha256(blob.encode()).hexdigest()
        with self.transaction():
            last = self.conn.execute("SELECT content_sha, my_team FROM leaderboard_snapshots "
                                     "WHERE competition = ? ORDER BY taken_at DESC, id DESC LIMIT 1",
                                     (competition,)).fetchone()
            if last is not None and last["content_sha"] == sha and last["my_team"] == my_team:
                return None
            scores = sorted(r.score for r in rows if r.score is not None)
            top = next((r.score for r in rows if r.score is not None), None)
            median = _median(scores)
            mine = next((r for r in rows if my_team and r.team_name == my_team), None)
            cur = self.conn.execute(
                "INSERT INTO leaderboard_snapshots (competition, taken_at, content_sha, total_teams, top_score, "
                "median_score, my_team, my_rank, my_score) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (competition, iso(taken_at) or now_iso(), sha, len(rows), top, median, my_team,
                 mine.rank if mine else None, mine.score if mine else None))
            self.conn.executemany(
                "INSERT INTO leaderboard_rows (snapshot_id, rank, team_id, team_name, score, submission_date) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(cur.lastrowid, r.rank, r.team_id, r.team_name, r.score, iso(r.submission_date))
                 for r in rows[:keep]])
        return cur.lastrowid

    def snapshots(self, competition: str) -> list[dict]:
        rows = self.conn.execute("SELECT * FROM leaderboard_snapshots WHERE competition = ? ORDER BY taken_at, id",
                                 (competition,))
        return [dict(r) for r in rows]

    def snapshot_rows(self, snapshot_id: int) -> list[dict]:
        rows = self.conn.execute("SELECT * FROM leaderboard_rows WHERE snapshot_id = ? ORDER BY rank",
                                 (snapshot_id,))
        return [dict(r) for r in rows]

    def set_state(self, competition: str, *, num_today: int | None, num_total: int | None,
                  num_allowed_now: int | None, limited_by_total: bool | None, synced_at: Any = None) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT INTO competition_state (competition, synced_at, num_today, num_total, num_allowed_now, "
                "limited_by_total) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (competition) DO UPDATE SET "
                "synced_at = excluded.synced_at, num_today = excluded.num_today, num_total = excluded.num_total, "
                "num_allowed_now = excluded.num_allowed_now, limited_by_total = excluded.limited_by_total",
                (competition, iso(synced_at) or now_iso(), num_today, num_total, num_allowed_now,
                 None if limited_by_total is None else int(bool(limited_by_total))))

    def state(self, competition: str) -> dict | None:
        row = self.conn.execute("SELECT * FROM competition_state WHERE competition = ?", (competition,)).fetchone()
        return dict(row) if row else None

    def counts(self) -> dict[str, int]:
        return {t: self.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("runs", "submissions", "leaderboard_snapshots", "leaderboard_rows")}


def _median(sorted_values: list[float]) -> float | None:
    n = len(sorted_values)
    if not n:
        return None
    mid = n // 2
    return sorted_values[mid] if n % 2 else (sorted_values[mid - 1] + sorted_values[mid]) / 2


def _statements(script: str) -> list[str]:
    """Split a migration script on ';' (executescript would COMMIT our transaction)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
