"""Campaigns: a named set of kernels, pushed at most `kernel.max_concurrent` at a time and watched to the end.

Every step reads and writes its state in the ledger (kompete.ledger.campaign_store), so each command can be
killed and run again: a kernel already pushed is never pushed twice (even one pushed just before a kill,
whose push record beside the bundle is adopted), and a finished one is never polled again. Collecting,
ranking and submitting live in kompete.kernel.campaign_results.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kompete.config import Config, config_hash, load_config
from kompete.errors import ConfigError, CredentialsError, KaggleError, KompeteError, QuotaError, RateLimitError
from kompete.kernel import remote
from kompete.kernel.bundle import build_bundle, sweep_variants
from kompete.kernel.client import KaggleClient
from kompete.ledger import campaign_store as store
from kompete.ledger.store import Ledger, now_iso

POLL_FLOOR_S = 1.0  # no poll interval, Retry-After or test setting makes `wait` call Kaggle faster than this
FINISHED = {"COMPLETE": "complete", "ERROR": "error", "CANCEL_ACKNOWLEDGED": "error"}


class StillRunning(KaggleError):
    """`campaign wait` gave up with kernels still queued or running: exit 3, like `kernel status`."""

    exit_code = 3


@dataclass(frozen=True)
class Event:
    variant: str
    what: str  # "pushed", "queued", "RUNNING", "COMPLETE", "ERROR", ... (a Kaggle status or a queue event)
    detail: str = ""


Notify = Callable[[Event], None]


def _quiet(_: Event) -> None:
    pass


# --------------------------------------------------------------------------- names

# A campaign or variant name becomes a folder (campaigns/<name>/, output/<variant>/) and part of a kernel
# slug: one plain path component, so `../x` or `a/b` can never place files outside --out.
SAFE_NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,99}")


def check_name(what: str, name: str) -> str:
    if not SAFE_NAME.fullmatch(name or ""):
        raise ConfigError(f"{what} {name!r} cannot name a folder: use letters, digits, '.', '_', '+' and '-' "
                          "(not starting with '.'), at most 100 characters")
    return name


def _check_unique(name: str, competition: str, labels: list[str]) -> None:
    """Two variants that would share a variant name or a kernel slug are refused before anything is built."""
    from kompete.kernel.bundle import kernel_slug

    seen: dict[str, str] = {}
    for label in labels:
        for key in (f"variant {label}", kernel_slug(competition, f"{name}-{label}")):
            key = key.lower()
            if key in seen:
                raise ConfigError(f"--sweep gives two variants the same name or kernel slug: {seen[key]!r} and "
                                  f"{label!r} ({key})", hint="make the --sweep values distinct (a kernel slug "
                                                             "keeps only a-z, 0-9 and '-')")
            seen[key] = label


# --------------------------------------------------------------------------- configs of variants


def config_leaves(obj: object, prefix: str = "") -> dict[str, object]:
    """{dotted key: value} for every key a `--set` can name: sections are walked, values are leaves (a
    mapping value such as generate.class_counts stays whole: `--set generate.class_counts.masked=...` is
    no key)."""
    if not dataclasses.is_dataclass(obj):
        return {prefix: obj}
    out: dict[str, object] = {}
    for f in dataclasses.fields(obj):
        name = obj.spec.name if isinstance(obj, Config) and f.name == "algo" else f.name
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out.update(config_leaves(value, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = value
    return out


def changes_from_default(competition: str, cfg: Config) -> dict[str, object]:
    """{dotted key: value} wherever `cfg` differs from the competition's own YAML."""
    base, mine = config_leaves(load_config(competition)), config_leaves(cfg)
    return {k: v for k, v in sorted(mine.items()) if base.get(k, object()) != v}


def sets_for(competition: str, cfg: Config) -> list[str]:
    """`--set` items that rebuild `cfg` from the competition's YAML (values in JSON, which YAML reads back).

    Checked here: a config these items would not rebuild exactly is refused before anything is recorded.
    """
    sets = [f"{k}={json.dumps(v)}" for k, v in changes_from_default(competition, cfg).items()]
    if config_hash(load_config(competition, sets)) != config_hash(cfg):
        raise ConfigError(f"the variant's config cannot be rebuilt from --set items: {sets}")
    return sets


def variant_config(competition: str, kernel: dict) -> Config:
    return load_config(competition, kernel["sets"])


def describe_changes(changes: dict | None) -> str:
    if changes is None:
        return "?"  # a kernel added with `campaign add`: its config is unknown here
    return ", ".join(f"{k.removeprefix('train.')}={v}" for k, v in changes.items()) or "(default)"


# --------------------------------------------------------------------------- start, add


def start(ledger: Ledger, client_fn: Callable[[], KaggleClient], competition: str, name: str,
          overrides: list[str], sweeps: list[str], owner: str, out_root: Path, score: bool | None,
          push: bool = True, notify: Notify = _quiet) -> dict:
    """Build one bundle per combination, record the campaign (all kernels queued), push the first few.

    Starting a campaign that exists with the same request only pushes what is queued; a different request
    under the same name is refused.
    """
    check_name("campaign name", name)
    spec = {"competition": competition, "overrides": list(overrides), "sweeps": list(sweeps), "owner": owner,
            "out": str(Path(out_root).resolve()), "score": score}  # absolute: later commands may run elsewhere
    existing = store.find_campaign(ledger, name)
    if existing is not None:
        if existing["spec"] != spec:
            raise KompeteError(f"campaign {name!r} already exists with other settings ({existing['spec']})",
                               hint="choose another --name, or `kompete campaign wait` to carry it on")
    else:
        variants = [(label or "base", cfg) for label, cfg in sweep_variants(competition, overrides, sweeps)]
        for label, _ in variants:  # every config, name and slug checked before anything is written
            check_name("variant name (from --sweep)", label)
        _check_unique(name, variants[0][1].name, [label for label, _ in variants])
        rows = _build_variants(competition, name, variants, owner, Path(out_root) / name / "kernels", score, notify)
        store.create_campaign(ledger, name, competition, spec, rows)
    camp = store.campaign(ledger, name)
    if push:
        fill_slots(ledger, client_fn(), camp, notify)
    return camp


def _build_variants(competition: str, name: str, variants: list[tuple[str, Config]], owner: str, folder: Path,
                    score: bool | None, notify: Notify) -> list[dict]:
    """One bundle per variant, as campaign kernel rows; a failure part way removes the bundles this call made."""
    made_root = not folder.exists()
    there = set() if made_root else {p.name for p in folder.iterdir()}  # never removed: not made by this call
    rows: list[dict] = []
    try:
        for label, cfg in variants:
            sets = sets_for(competition, cfg)
            bundle = build_bundle(cfg, owner, f"{name}-{label}", folder, cfg.kernel.score if score is None else score)
            rows.append({"variant": label, "kernel_ref": bundle.kernel_id, "folder": str(bundle.folder),
                         "sets_json": json.dumps(sets), "config_hash": bundle.config_hash,
                         "changes_json": json.dumps(changes_from_default(competition, cfg), default=str)})
            notify(Event(label, "built", f"{bundle.kernel_id}  config {bundle.config_hash}"))
    except BaseException:
        _remove_bundles(folder if made_root else None,
                        [Path(r["folder"]) for r in rows if Path(r["folder"]).name not in there])
        raise
    return rows


def _remove_bundles(root: Path | None, folders: list[Path]) -> None:
    """Undo a start that failed part way: its kernels/ folder when this call created it, else the bundle
    folders it wrote (a campaign that was never recorded must not leave kernels that look pushable)."""
    for target in [root] if root is not None else folders:
        shutil.rmtree(target, ignore_errors=True)


def add(ledger: Ledger, name: str, ref: str, version: int | None, variant: str | None,
        competition: str | None) -> dict:
    """Adopt a kernel pushed some other way; it is watched and collected like the others."""
    KaggleClient.check_kernel_ref(ref)
    check_name("campaign name", name)
    variant = check_name("--variant", variant) if variant is not None else ref.split("/")[1]
    camp = store.find_campaign(ledger, name)
    if camp is None:
        if not competition:
            raise KompeteError(f"no campaign {name!r} yet", hint="pass --competition COMP to create it")
        load_config(competition)  # an unknown competition fails here, before anything is recorded
        store.create_campaign(ledger, name, competition, {"competition": competition, "added": True}, [])
        camp = store.campaign(ledger, name)
    elif competition and competition != camp["competition"]:
        raise KompeteError(f"campaign {name!r} is for {camp['competition']}, not {competition}")
    store.add_kernel(ledger, camp["id"], variant=variant, kernel_ref=ref, version=version,
                     state="running", pushed_at=now_iso())
    return camp


def continue_variant(ledger: Ledger, client_fn: Callable[[], KaggleClient], name: str, variant: str,
                     extra: list[str], notify: Notify = _quiet) -> dict:
    """Queue the next kernel of a chain: same config (plus `extra`), resuming from `variant`'s output."""
    camp = store.campaign(ledger, name)
    ks = store.kernels(ledger, camp["id"])
    parent = _by_variant(ks, variant)
    if parent["state"] != "complete" or parent["version"] is None:
        raise KompeteError(f"variant {variant} is {parent['state']}: only a complete kernel version can be continued",
                           hint=f"`kompete campaign wait {name}` first")
    if parent["changes"] is None:
        raise KompeteError(f"variant {variant} was added from outside; its config is unknown here",
                           hint="build the next kernel with `kompete kernel build ... --resume-from`")
    root, depth = _chain_root(ks, parent)
    label = f"{root['variant']}-part{depth + 1}"
    competition = camp["competition"]
    cfg = load_config(competition, [*parent["sets"], *extra])
    score = camp["spec"].get("score")
    bundle = build_bundle(cfg, parent["kernel_ref"].split("/")[0], f"{name}-{label}",
                          Path(camp["spec"].get("out", "campaigns")) / name / "kernels",
                          cfg.kernel.score if score is None else score,
                          resume_from=f"{parent['kernel_ref']}/{parent['version']}")
    store.add_kernel(ledger, camp["id"], variant=label, kernel_ref=bundle.kernel_id, folder=str(bundle.folder),
                     sets_json=json.dumps(sets_for(competition, cfg)), config_hash=bundle.config_hash,
                     changes_json=json.dumps(changes_from_default(competition, cfg), default=str),
                     parent_id=parent["id"])
    notify(Event(label, "built", f"{bundle.kernel_id}, resuming from {parent['kernel_ref']} v{parent['version']}"))
    fill_slots(ledger, client_fn(), camp, notify)
    return _by_variant(store.kernels(ledger, camp["id"]), label)


def _by_variant(ks: list[dict], variant: str) -> dict:
    for k in ks:
        if k["variant"] == variant:
            return k
    raise KompeteError(f"no variant {variant!r} in this campaign", hint=f"variants: {', '.join(k['variant'] for k in ks)}")


def _chain_root(ks: list[dict], k: dict) -> tuple[dict, int]:
    by_id = {x["id"]: x for x in ks}
    depth = 1
    while k["parent_id"] is not None:
        k, depth = by_id[k["parent_id"]], depth + 1
    return k, depth


# --------------------------------------------------------------------------- the queue


def max_concurrent(camp: dict) -> int:
    spec = camp["spec"]
    return load_config(camp["competition"], spec.get("overrides", [])).kernel.max_concurrent


def fill_slots(ledger: Ledger, client: KaggleClient, camp: dict, notify: Notify = _quiet) -> int:
    """Push queued kernels while fewer than `kernel.max_concurrent` run; returns how many were pushed.

    Kaggle saying "no more sessions" (another notebook holds one) leaves the kernel queued for the next round.
    """
    ks = store.kernels(ledger, camp["id"])
    free = max_concurrent(camp) - sum(k["state"] == "running" for k in ks)
    pushed = 0
    for k in [k for k in ks if k["state"] == "queued"][:max(free, 0)]:
        record = _adoptable_push(k)
        if record is None:
            try:
                result = remote.push(client, Path(k["folder"]))
            except (QuotaError, RateLimitError) as exc:
                notify(Event(k["variant"], "queued", exc.message))
                break
            except KaggleError as exc:
                store.update_kernel(ledger, k["id"], state="error", failure=f"push failed: {exc.message}",
                                    finished_at=now_iso())
                notify(Event(k["variant"], "push failed", exc.message))
                continue
            record = {"ref": result.ref, "version": result.version}
        store.update_kernel(ledger, k["id"], state="running", kernel_ref=record["ref"], version=record["version"],
                            pushed_at=now_iso(), kaggle_status="PUSHED")
        notify(Event(k["variant"], "pushed", f"{record['ref']} v{record['version']}"))
        pushed += 1
    return pushed


def _adoptable_push(k: dict) -> dict | None:
    """The push record beside the bundle when it was pushed after being queued: a push whose ledger
    update a kill interrupted. Adopting it keeps a rerun from pushing the same kernel twice."""
    rec = remote.last_push(Path(k["folder"]))
    if not rec or rec.get("ref") != k["kernel_ref"] or rec.get("pushed_at") is None:
        return None
    return rec if rec["pushed_at"] >= _epoch(k["queued_at"]) else None


def poll_once(ledger: Ledger, client: KaggleClient, camp: dict, notify: Notify = _quiet) -> float | None:
    """One status call per running kernel (tied to its pushed version), then fill freed slots.

    Returns Kaggle's Retry-After when it rate limited us (the round stops there), else None.
    """
    for k in store.kernels(ledger, camp["id"]):
        if k["state"] != "running":
            continue
        try:
            st = client.status(k["kernel_ref"], k["version"])
        except RateLimitError as exc:
            return exc.retry_after if exc.retry_after is not None else 0.0
        except CredentialsError:
            raise
        except KaggleError as exc:  # a 5xx or a dropped connection: this kernel is asked again next round
            notify(Event(k["variant"], "status failed", exc.message))
            continue
        fields = {"polled_at": now_iso(), "kaggle_status": st.status}
        if st.status in FINISHED:
            fields.update(state=FINISHED[st.status], finished_at=now_iso(), failure=st.failure_message or None)
        store.update_kernel(ledger, k["id"], **fields)
        if st.status != k["kaggle_status"]:
            notify(Event(k["variant"], st.status, st.failure_message))
    fill_slots(ledger, client, camp, notify)  # a 429 on a push leaves that kernel queued
    return None


def wait(ledger: Ledger, client: KaggleClient, name: str, timeout_s: float = 12 * 3600, poll_s: float = 60.0,
         max_poll_s: float = 600.0, notify: Notify = _quiet, sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic) -> list[dict]:
    """Poll until every kernel has finished: back off x1.5 (+-10% jitter) to `max_poll_s`, never below
    POLL_FLOOR_S, and never sooner than a Retry-After. Raises StillRunning at `timeout_s`."""
    camp = store.campaign(ledger, name)
    deadline = clock() + timeout_s
    delay = max(poll_s, POLL_FLOOR_S)
    while True:
        retry_after = poll_once(ledger, client, camp, notify)
        ks = store.kernels(ledger, camp["id"])
        waiting = [k for k in ks if k["state"] in ("queued", "running")]
        if not waiting:
            return ks
        pause = max(delay, retry_after or 0.0, POLL_FLOOR_S)
        if clock() + pause > deadline:
            raise StillRunning(f"campaign {name}: {len(waiting)} kernel(s) not finished after {timeout_s:g} s: "
                               + ", ".join(f"{k['variant']} {k['state']}" for k in waiting),
                               hint=f"`kompete campaign wait {name}` carries on where this stopped")
        sleep(pause * random.uniform(1.0, 1.1))  # jitter only upwards: the floor stays a floor
        delay = min(max_poll_s, delay * 1.5)


# --------------------------------------------------------------------------- status


def _epoch(stamp: str | None) -> float:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else time.time()


def duration(k: dict, now: float | None = None) -> str:
    """How long the kernel has been in its state: queued since queued, running since pushed, or its run time."""
    now = time.time() if now is None else now
    if k["state"] == "queued":
        seconds = now - _epoch(k["queued_at"])
    elif k["pushed_at"] is None:
        return "-"
    else:
        end = _epoch(k["finished_at"]) if k["finished_at"] else now
        seconds = end - _epoch(k["pushed_at"])
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
