"""The campaign tables of the ledger: which kernels a campaign holds and where each one stands.

A campaign's whole state lives here (nothing in memory survives a kill), so `campaign wait` can be
stopped at any point and started again: it reads where every kernel stood and carries on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from typing import Any, Iterator

from kompete.ledger.store import Ledger, LedgerError, now_iso

KERNEL_FIELDS = ("variant", "kernel_ref", "folder", "sets_json", "changes_json", "config_hash", "parent_id",
                 "state", "kaggle_status", "version", "failure", "queued_at", "pushed_at", "finished_at",
                 "polled_at", "collected", "collect_note", "out_dir", "score_source", "steps", "run_id")
STATES = ("queued", "running", "complete", "error")
TIMES = ("queued_at", "pushed_at", "finished_at", "polled_at")
REPAIR = "repair the row with sqlite3, or start the campaign again under another name"


@contextlib.contextmanager
def _sql(ledger: Ledger) -> Iterator[None]:
    """A damaged database (a dropped table, a malformed page) is one plain error, not sqlite's traceback."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise LedgerError(f"cannot read or write the campaign tables of {ledger.path}: {exc}", REPAIR) from None


def create_campaign(ledger: Ledger, name: str, competition: str, spec: dict[str, Any],
                    kernels: list[dict[str, Any]]) -> int:
    """Record a campaign and its kernels in one transaction: all of it, or (on any failure) none of it."""
    with _sql(ledger), ledger.transaction():
        cur = ledger.conn.execute("INSERT INTO campaigns (name, competition, spec_json, created_at) "
                                  "VALUES (?, ?, ?, ?)", (name, competition, json.dumps(spec, sort_keys=True),
                                                          now_iso()))
        for k in kernels:
            add_kernel(ledger, cur.lastrowid, **k)
    return cur.lastrowid


def find_campaign(ledger: Ledger, name: str) -> dict[str, Any] | None:
    with _sql(ledger):
        row = ledger.conn.execute("SELECT * FROM campaigns WHERE name = ?", (name,)).fetchone()
    if row is None:
        return None
    out = dict(row)
    out["spec"] = _json(out.pop("spec_json"), dict, f"campaign {name!r}", "spec_json")
    spec = out["spec"]
    if (not isinstance(out.get("competition"), str) or not isinstance(out.get("id"), int)
            or not isinstance(spec.get("out", ""), str)
            or not all(isinstance(x, str) for x in [*(spec.get("overrides") or []), *(spec.get("sweeps") or [])])):
        raise LedgerError(f"campaign {name!r} in the ledger is damaged: its competition, id or spec_json", REPAIR)
    return out


def campaign(ledger: Ledger, name: str) -> dict[str, Any]:
    found = find_campaign(ledger, name)
    if found is None:
        with _sql(ledger):
            known = [str(r[0]) for r in ledger.conn.execute("SELECT name FROM campaigns ORDER BY id")]
        raise LedgerError(f"no campaign {name!r} in {ledger.path}",
                          f"known: {', '.join(known)}" if known else "start one with `kompete campaign start`")
    return found


def add_kernel(ledger: Ledger, campaign_id: int, **fields: Any) -> int:
    unknown = set(fields) - set(KERNEL_FIELDS)
    if unknown:
        raise TypeError(f"unknown campaign kernel fields: {sorted(unknown)}")
    fields.setdefault("state", "queued")
    fields.setdefault("queued_at", now_iso())
    cols = ["campaign_id", *fields]
    try:
        cur = ledger.conn.execute(f"INSERT INTO campaign_kernels ({', '.join(cols)}) VALUES "
                                  f"({', '.join('?' * len(cols))})", [campaign_id, *fields.values()])
    except sqlite3.IntegrityError as exc:  # the variant is already there
        if "UNIQUE" in str(exc):
            raise LedgerError(f"the campaign already has a variant {fields.get('variant')!r}",
                              "give it another name (`campaign add --variant NAME`)") from None
        raise LedgerError(f"cannot record the kernel in {ledger.path}: {exc}", REPAIR) from None
    except sqlite3.DatabaseError as exc:
        raise LedgerError(f"cannot record the kernel in {ledger.path}: {exc}", REPAIR) from None
    return cur.lastrowid


def kernels(ledger: Ledger, campaign_id: int) -> list[dict[str, Any]]:
    with _sql(ledger):
        rows = ledger.conn.execute("SELECT * FROM campaign_kernels WHERE campaign_id = ? ORDER BY id",
                                   (campaign_id,)).fetchall()
    return [_decode(r) for r in rows]


def update_kernel(ledger: Ledger, kernel_id: int, **fields: Any) -> None:
    unknown = set(fields) - set(KERNEL_FIELDS)
    if unknown:
        raise TypeError(f"unknown campaign kernel fields: {sorted(unknown)}")
    if not fields:
        return
    with _sql(ledger), ledger.transaction():
        ledger.conn.execute(f"UPDATE campaign_kernels SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                            [*fields.values(), kernel_id])


def submission_of(ledger: Ledger, kernel_ref: str, version: int | None) -> dict[str, Any] | None:
    """The newest submission made from this kernel version (one that failed scoring does not count)."""
    with _sql(ledger):
        row = ledger.conn.execute(
            "SELECT * FROM submissions WHERE kernel_ref = ? AND kernel_version IS ? AND status != 'ERROR' "
            "ORDER BY date DESC, ref DESC LIMIT 1", (kernel_ref, version)).fetchone()
    return dict(row) if row else None


def run_of(ledger: Ledger, run_id: int | None) -> dict[str, Any] | None:
    if run_id is None:
        return None
    with _sql(ledger):
        row = ledger.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    return dict(row) if row else None


def _decode(row: Any) -> dict[str, Any]:
    """A kernel row, checked: every command after it trusts these types (a hand-edited or damaged row is
    named, with the column, instead of failing somewhere later)."""
    out = dict(row)
    what = f"campaign kernel row {out.get('id')} ({out.get('variant')!r})"
    out["sets"] = _json(out.pop("sets_json") or "[]", list, what, "sets_json")
    out["changes"] = _json(out.pop("changes_json") or "null", (dict, type(None)), what, "changes_json")
    problem = _row_problem(out)
    if problem:
        raise LedgerError(f"{what} in the ledger is damaged: {problem}", REPAIR)
    return out


def _row_problem(k: dict[str, Any]) -> str | None:
    if not isinstance(k.get("variant"), str) or not isinstance(k.get("kernel_ref"), str):
        return "variant or kernel_ref is not text"
    if k.get("state") not in STATES:
        return f"state {k.get('state')!r} is none of {', '.join(STATES)}"
    if not all(isinstance(s, str) for s in k["sets"]):
        return "sets_json holds something other than --set items"
    for col in ("version", "parent_id", "run_id", "steps"):
        if k.get(col) is not None and not isinstance(k[col], int):
            return f"{col} {k[col]!r} is not a whole number"
    for col in TIMES:
        try:
            if k.get(col) is not None:
                dt.datetime.fromisoformat(str(k[col]).replace("Z", "+00:00"))
        except ValueError:
            return f"{col} {k[col]!r} is not a time"
    return None


def _json(text: Any, kind: type | tuple[type, ...], what: str, column: str) -> Any:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        raise LedgerError(f"{what} in the ledger is damaged: {column} is not JSON", REPAIR) from None
    if not isinstance(value, kind):
        raise LedgerError(f"{what} in the ledger is damaged: {column} holds a {type(value).__name__}", REPAIR)
    return value
