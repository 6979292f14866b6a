"""The campaign tables of the ledger: which kernels a campaign holds and where each one stands.

A campaign's whole state lives here (nothing in memory survives a kill), so `campaign wait` can be
stopped at any point and started again: it reads where every kernel stood and carries on.
"""

from __future__ import annotations

import json
from typing import Any

from kompete.ledger.store import Ledger, LedgerError, now_iso

KERNEL_FIELDS = ("variant", "kernel_ref", "folder", "sets_json", "changes_json", "config_hash", "parent_id",
                 "state", "kaggle_status", "version", "failure", "queued_at", "pushed_at", "finished_at",
                 "polled_at", "collected", "collect_note", "out_dir", "score_source", "steps", "run_id")
STATES = ("queued", "running", "complete", "error")


def create_campaign(ledger: Ledger, name: str, competition: str, spec: dict[str, Any],
                    kernels: list[dict[str, Any]]) -> int:
    """Record a campaign and its kernels in one transaction: all of it, or (on any failure) none of it."""
    with ledger.transaction():
        cur = ledger.conn.execute("INSERT INTO campaigns (name, competition, spec_json, created_at) "
                                  "VALUES (?, ?, ?, ?)", (name, competition, json.dumps(spec, sort_keys=True),
                                                          now_iso()))
        for k in kernels:
            add_kernel(ledger, cur.lastrowid, **k)
    return cur.lastrowid


def find_campaign(ledger: Ledger, name: str) -> dict[str, Any] | None:
    row = ledger.conn.execute("SELECT * FROM campaigns WHERE name = ?", (name,)).fetchone()
    if row is None:
        return None
    out = dict(row)
    out["spec"] = json.loads(out.pop("spec_json"))
    return out


def campaign(ledger: Ledger, name: str) -> dict[str, Any]:
    found = find_campaign(ledger, name)
    if found is None:
        known = [r[0] for r in ledger.conn.execute("SELECT name FROM campaigns ORDER BY id")]
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
    except Exception as exc:  # noqa: BLE001 - sqlite3.IntegrityError: the variant is already there
        if "UNIQUE" in str(exc):
            raise LedgerError(f"the campaign already has a variant {fields.get('variant')!r}",
                              "pass another --variant name") from None
        raise
    return cur.lastrowid


def kernels(ledger: Ledger, campaign_id: int) -> list[dict[str, Any]]:
    rows = ledger.conn.execute("SELECT * FROM campaign_kernels WHERE campaign_id = ? ORDER BY id", (campaign_id,))
    return [_decode(r) for r in rows]


def update_kernel(ledger: Ledger, kernel_id: int, **fields: Any) -> None:
    unknown = set(fields) - set(KERNEL_FIELDS)
    if unknown:
        raise TypeError(f"unknown campaign kernel fields: {sorted(unknown)}")
    if not fields:
        return
    with ledger.transaction():
        ledger.conn.execute(f"UPDATE campaign_kernels SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                            [*fields.values(), kernel_id])


def submission_of(ledger: Ledger, kernel_ref: str, version: int | None) -> dict[str, Any] | None:
    """The newest submission made from this kernel version (one that failed scoring does not count)."""
    row = ledger.conn.execute(
        "SELECT * FROM submissions WHERE kernel_ref = ? AND kernel_version IS ? AND status != 'ERROR' "
        "ORDER BY date DESC, ref DESC LIMIT 1", (kernel_ref, version)).fetchone()
    return dict(row) if row else None


def run_of(ledger: Ledger, run_id: int | None) -> dict[str, Any] | None:
    if run_id is None:
        return None
    row = ledger.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    return dict(row) if row else None


def _decode(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["sets"] = json.loads(out.pop("sets_json") or "[]")
    out["changes"] = json.loads(out.pop("changes_json") or "null")
    return out
