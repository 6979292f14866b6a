"""Tables from the ledger: where the user stands, which submission came from which run, what changed.

Scores are MiFID/FID style: lower is better, both locally and on the leaderboard.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kompete import memorization
from kompete.ledger.store import Ledger

MIN_PAIRS = 3  # below this many (local, public) pairs a correlation means nothing
SUBMISSION_COLUMNS = ["ref", "date", "status", "public_score", "private_score", "local_mifid", "local_fid",
                      "local_memorization", "flag", "run_id", "kernel", "description"]


def submissions_frame(ledger: Ledger, competition: str) -> pd.DataFrame:
    """One row per submission, oldest first, with the local scores of the run it came from; `flag` marks a
    run whose memorization distance is below its metric.eps (memorization.MARK)."""
    rows = ledger.conn.execute(
        """SELECT s.ref, s.date, s.status, s.public_score, s.private_score, r.mifid AS local_mifid,
                  r.fid AS local_fid, r.memorization AS local_memorization, r.metric AS run_metric,
                  r.config_json AS run_config, s.run_id,
                  CASE WHEN s.kernel_ref IS NULL THEN NULL
                       ELSE s.kernel_ref || COALESCE('/' || s.kernel_version, '') END AS kernel,
                  s.description
           FROM submissions s LEFT JOIN runs r ON r.id = s.run_id
           WHERE s.competition = ? ORDER BY s.date, s.ref""", (competition,)).fetchall()
    records = [dict(r) for r in rows]
    for r in records:
        r["flag"] = memorization.mark(r["local_memorization"], memorization.eps_of(r.pop("run_config")),
                                      r.pop("run_metric"))
    frame = pd.DataFrame(records, columns=SUBMISSION_COLUMNS)
    frame["date"] = pd.to_datetime(frame["date"], utc=True)
    for col in ("public_score", "private_score", "local_mifid", "local_fid", "local_memorization"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")  # a damaged cell shows as '-'
    return frame


def correlation(frame: pd.DataFrame, local: str = "local_mifid", public: str = "public_score") -> tuple[float | None, int]:
    """Pearson r between local and public scores over the submissions that have both, and the pair count.

    None when there are fewer than MIN_PAIRS pairs or one side does not vary.
    """
    pairs = frame[[local, public]].dropna()
    if len(pairs) < MIN_PAIRS:
        return None, len(pairs)
    r = pairs[local].corr(pairs[public], method="pearson")
    return (None if math.isnan(r) else float(r)), len(pairs)


@dataclass(frozen=True)
class Summary:
    competition: str
    n_submissions: int
    n_scored: int
    n_pending: int
    n_errors: int
    best_public: float | None
    best_ref: int | None
    rank: int | None
    total_teams: int | None
    top_score: float | None
    median_score: float | None
    snapshot_at: str | None
    submissions_left: int | None
    num_today: int | None
    synced_at: str | None
    correlation: float | None
    n_pairs: int
    memorizers: tuple[str, ...] = ()  # "submission <ref> (distance d < eps e)" for each flagged submission

    @property
    def percentile(self) -> float | None:
        """The share of teams at or above the user's rank, in percent (top 5% = 5.0)."""
        if self.rank is None or not self.total_teams:
            return None
        return 100.0 * self.rank / self.total_teams

    @property
    def gap_to_first(self) -> float | None:
        if self.best_public is None or self.top_score is None:
            return None
        return self.best_public - self.top_score

    def lines(self) -> list[str]:
        f = _fmt
        out = [f"{self.competition}: {self.n_submissions} submissions "
               f"({self.n_scored} scored, {self.n_pending} pending, {self.n_errors} failed)"]
        best = f"best public score  {f(self.best_public)}"
        out.append(best + (f"  (submission {self.best_ref})" if self.best_ref is not None else ""))
        if self.rank is not None:
            out.append(f"rank               {self.rank} of {self.total_teams}  (top {self.percentile:.1f}%)")
        else:
            out.append("rank               - (not on the synced leaderboard)")
        if self.top_score is not None:
            out.append(f"leaderboard        first {f(self.top_score)}, median {f(self.median_score)}"
                       f"  (snapshot {self.snapshot_at})")
            out.append(f"gap to first       {f(self.gap_to_first, signed=True)}")
        if self.submissions_left is not None:
            out.append(f"submissions left   {self.submissions_left} today ({self.num_today} used; "
                       f"as of {self.synced_at})")
        if self.correlation is not None:
            out.append(f"local vs public    Pearson r = {self.correlation:+.3f} over {self.n_pairs} submissions")
        else:
            out.append(f"local vs public    needs {MIN_PAIRS} submissions with both scores ({self.n_pairs} so far)")
        if self.memorizers:
            out.append(memorization.table_warning(self.memorizers))
        return out


def summarise(ledger: Ledger, competition: str) -> Summary:
    frame = submissions_frame(ledger, competition)
    scored = frame.dropna(subset=["public_score"])
    best = scored.loc[scored["public_score"].idxmin()] if len(scored) else None
    snaps = ledger.snapshots(competition)
    last = snaps[-1] if snaps else {}
    state = ledger.state(competition) or {}
    r, n_pairs = correlation(frame)
    return Summary(
        competition=competition,
        n_submissions=len(frame),
        n_scored=len(scored),
        n_pending=int((frame["status"] == "PENDING").sum()),
        n_errors=int((frame["status"] == "ERROR").sum()),
        best_public=None if best is None else float(best["public_score"]),
        best_ref=None if best is None else int(best["ref"]),
        rank=last.get("my_rank"),
        total_teams=last.get("total_teams"),
        top_score=last.get("top_score"),
        median_score=last.get("median_score"),
        snapshot_at=last.get("taken_at"),
        submissions_left=state.get("num_allowed_now"),
        num_today=state.get("num_today"),
        synced_at=state.get("synced_at"),
        correlation=r,
        n_pairs=n_pairs,
        memorizers=tuple(f"submission {row.ref} ({row.local_memorization:.4f})"
                         for row in frame[frame["flag"].notna()].itertuples()),
    )


# --------------------------------------------------------------------------- runs


def flatten(config: dict[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr_g': 1}} -> {'train.lr_g': 1}."""
    out: dict[str, Any] = {}
    for key, value in (config or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def config_diff(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[tuple[str, Any, Any]]:
    """(key, old value, new value) for each leaf that differs; a missing side reads as None."""
    a, b = flatten(old), flatten(new)
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _config(run: dict) -> dict | None:
    """The run's recorded config; None when there is none or the row is damaged (a table must still print)."""
    try:
        config = json.loads(run["config_json"]) if run.get("config_json") else None
    except ValueError:
        return None
    return config if isinstance(config, dict) else None


def _best_public(ledger: Ledger, run_id: int) -> float | None:
    row = ledger.conn.execute("SELECT MIN(public_score) FROM submissions WHERE run_id = ?", (run_id,)).fetchone()
    return row[0]


def runs_frame(ledger: Ledger, competition: str | None = None) -> pd.DataFrame:
    """Runs oldest first, each with what its config changed since the previous run of its competition."""
    previous: dict[str, dict | None] = {}
    rows = []
    for run in ledger.runs(competition):
        cfg = _config(run)
        comp = run["competition"]
        if comp in previous and cfg is not None and previous[comp] is not None:
            changes = ", ".join(f"{k}={_short(v)}" for k, _, v in config_diff(previous[comp], cfg)) or "(same)"
        else:
            changes = "(first)" if comp not in previous else "-"
        if cfg is not None or comp not in previous:
            previous[comp] = cfg
        rows.append({
            "id": run["id"], "competition": comp, "when": run["started_at"] or run["recorded_at"],
            "run": run["kernel_ref"] and f"{run['kernel_ref']}/{run['kernel_version']}" or run["run_dir"] or run["key"],
            "config": run["config_hash"], "fid": run["fid"], "mifid": run["mifid"],
            "memorization": run["memorization"],
            "flag": memorization.mark(run["memorization"], memorization.eps_of(cfg), run.get("metric")),
            "img/s": run["images_per_s"],
            "public": _best_public(ledger, run["id"]), "changes": changes,
        })
    columns = ["id", "competition", "when", "run", "config", "fid", "mifid", "memorization", "flag", "img/s",
               "public", "changes"]
    frame = pd.DataFrame(rows, columns=columns)
    for col in ("fid", "mifid", "memorization", "img/s", "public"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")  # a damaged cell shows as '-'
    return frame


@dataclass(frozen=True)
class Comparison:
    a: dict
    b: dict
    diff: list[tuple[str, Any, Any]]
    deltas: dict[str, tuple[float | None, float | None, float | None]]  # name -> (a, b, b - a)

    def lines(self) -> list[str]:
        out = [f"run {self.a['id']} ({self.a['config_hash'] or '-'}) -> run {self.b['id']} "
               f"({self.b['config_hash'] or '-'})"]
        if self.diff:
            out.append("config changes:")
            width = max(len(k) for k, _, _ in self.diff)
            out += [f"  {k:<{width}}  {_short(old)} -> {_short(new)}" for k, old, new in self.diff]
        else:
            out.append("config changes: none")
        out.append("scores (lower is better):")
        for name, (x, y, d) in self.deltas.items():
            out.append(f"  {name:<13} {_fmt(x):>10} -> {_fmt(y):>10}   {_fmt(d, signed=True):>10}")
        return out


def compare(ledger: Ledger, a: str | int, b: str | int) -> Comparison:
    run_a, run_b = ledger.run(a), ledger.run(b)
    deltas = {}
    for name in ("fid", "mifid", "memorization", "public"):
        x = _best_public(ledger, run_a["id"]) if name == "public" else run_a[name]
        y = _best_public(ledger, run_b["id"]) if name == "public" else run_b[name]
        x, y = _number(x), _number(y)
        deltas[name] = (x, y, None if x is None or y is None else y - x)
    return Comparison(run_a, run_b, config_diff(_config(run_a), _config(run_b)), deltas)


# --------------------------------------------------------------------------- formatting


def _number(value: Any) -> float | None:
    """A stored score as a float; None for a missing or damaged one."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _fmt(value: Any, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if isinstance(value, (list, dict)) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def table(frame: pd.DataFrame, drop_empty: bool = True) -> str:
    """A frame as aligned text: '-' for missing values, four decimals for scores, text left-aligned,
    and (with `drop_empty`) no column that is empty in every row."""
    if frame.empty:
        return "(none)"
    shown = frame.dropna(axis=1, how="all") if drop_empty else frame.copy()
    shown = shown.copy()
    for col in shown.columns:
        if pd.api.types.is_datetime64_any_dtype(shown[col]):
            shown[col] = shown[col].dt.strftime("%Y-%m-%d %H:%M")
        if not pd.api.types.is_numeric_dtype(shown[col]):
            text = shown[col].astype(object).where(shown[col].notna(), "-").astype(str)
            width = max(text.str.len().max(), len(str(col)))
            shown[col] = text.str.ljust(width)
            shown = shown.rename(columns={col: str(col).ljust(width)})
    return shown.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4f}")
