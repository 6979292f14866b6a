"""What a campaign brings back: each finished kernel's output fetched, checked, scored and ranked; the best submitted.

A kernel that failed, an output that cannot be fetched or a zip Kaggle would reject becomes a row with its
reason, never a crash of the whole collect.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from kompete.archive import validate_zip
from kompete.errors import CredentialsError, KompeteError
from kompete.kernel import remote
from kompete.kernel.campaign import describe_changes, duration, variant_config
from kompete.kernel.client import KaggleClient
from kompete.ledger import campaign_store as store
from kompete.ledger.record import record_score, record_submit
from kompete.ledger.store import Ledger, now_iso, parse_score

RUN_SUMMARY = "kompete-run.json"  # written by the kernel script: stages, exit codes, zip check, score
BEST = "best.json"                # the best in-training checkpoint's score and step
METRICS = "metrics.csv"
EPS_MARGIN = 1.1  # "safely above eps": 10% over it, more than local-vs-Kaggle preprocessing moves the distance


@dataclass(frozen=True)
class Scores:
    fid: float | None
    mifid: float | None
    memorization: float | None
    n_images: int | None


Scorer = Callable[[Any, Path], Scores]  # (config, zip) -> scores; the default scores with kompete.metrics


def local_scorer(weights: str | Path | None = None, data_dir: str | Path | None = None) -> Scorer:
    """Score with the cached reference statistics, as `kompete score` does."""
    def score(cfg: Any, zip_path: Path) -> Scores:
        from kompete.metrics.score import score_path

        r = score_path(cfg, zip_path, data_dir=data_dir, weights=weights)
        return Scores(r.fid, r.mifid, r.memorization_distance, r.n_images)

    return score


def kernel_score(summary: dict | None) -> Scores | None:
    """The score the kernel computed itself (`--score`), from its run summary, when it has one."""
    if not isinstance(summary, dict):
        return None
    block = summary.get("score") if isinstance(summary.get("score"), dict) else summary
    mifid = parse_score(block.get("mifid"))
    if mifid is None:
        return None
    memo = block.get("memorization_distance", block.get("memorization"))
    n = block.get("n_images")
    return Scores(parse_score(block.get("fid")), mifid, parse_score(memo), int(n) if n is not None else None)


# --------------------------------------------------------------------------- collect


def config_of(camp: dict, k: dict) -> Any:
    """The variant's config; for a kernel added from outside, the campaign's (its own is unknown here)."""
    if k["changes"] is not None:
        return variant_config(camp["competition"], k)
    return variant_config(camp["competition"], {"sets": camp["spec"].get("overrides", [])})


def collect(ledger: Ledger, client: KaggleClient, name: str, score_from: str = "auto",
            scorer: Scorer | None = None, again: bool = False) -> list[dict]:
    """Fetch, check, score and record every finished kernel not yet collected. Returns the kernels.

    score_from: "local" (score here), "kernel" (the kernel's own score), "auto" (the kernel's when it has one).
    """
    if score_from not in ("auto", "local", "kernel"):
        raise KompeteError(f"score_from must be auto, local or kernel, not {score_from!r}")
    camp = store.campaign(ledger, name)
    out_root = Path(camp["spec"].get("out", "campaigns")) / name / "output"
    for k in store.kernels(ledger, camp["id"]):
        if k["state"] not in ("complete", "error") or (k["collected"] in ("ok", "rejected") and not again):
            continue
        if k["state"] == "error" and k["collected"] == "failed" and not again:
            continue  # a failed kernel stays failed; only a failed fetch or score is tried again
        if k["state"] == "error":
            reason = k["failure"] or remote.log_tail(client, k["kernel_ref"], k["version"], lines=1) or "no reason given"
            store.update_kernel(ledger, k["id"], collected="failed", collect_note=f"kernel {k['kaggle_status'] or 'failed'}: {reason}")
            continue
        try:
            fields = _collect_one(ledger, client, camp, k, _inside(out_root, k["variant"]), score_from, scorer)
        except CredentialsError:
            raise
        except KompeteError as exc:  # a refused or broken output, missing weights: this row, not the campaign
            fields = {"collected": "failed", "collect_note": exc.render()}
        store.update_kernel(ledger, k["id"], **fields)
    return store.kernels(ledger, camp["id"])


def _inside(root: Path, variant: str) -> Path:
    """root/<variant>, refused when the name would lead elsewhere (a row recorded before names were checked)."""
    dest = root / variant
    if (variant in ("", ".", "..") or "/" in variant or "\\" in variant
            or not dest.resolve().is_relative_to(root.resolve())):
        raise KompeteError(f"variant name {variant!r} would place its output outside {root}",
                           hint="re-add the kernel with `campaign add NAME OWNER/SLUG --variant SAFE_NAME`")
    return dest


def _collect_one(ledger: Ledger, client: KaggleClient, camp: dict, k: dict, dest: Path, score_from: str,
                 scorer: Scorer | None) -> dict:
    cfg = config_of(camp, k)
    ref, version = k["kernel_ref"], k["version"]
    files, log = client.output_files(ref, version)
    picked = _pick(files, [cfg.output.archive, METRICS, BEST, RUN_SUMMARY])
    if cfg.output.archive not in picked:
        have = ", ".join(n for n, _ in files) or "nothing"
        return {"collected": "failed", "collect_note": f"no {cfg.output.archive} in the output (it has: {have})"}
    written = remote.fetch_output(client, ref, dest, list(picked.values()), version)  # names checked there
    local = {base: p for base in picked for p in written if p.name == base}
    if log:
        from kompete.paths import write_text_atomic

        write_text_atomic(dest / f"{ref.split('/')[1]}.log", log)
    summary = _read_json(local.get(RUN_SUMMARY))
    zip_path = local[cfg.output.archive]
    steps, rate = _throughput(local.get(METRICS))
    common = dict(config=cfg.to_dict(), config_hash=k["config_hash"], kernel_ref=ref, kernel_version=version,
                  run_dir=dest, images_per_s=rate, started_at=k["pushed_at"], ended_at=k["finished_at"])
    fields: dict[str, Any] = {"out_dir": str(dest), "steps": steps}
    report = validate_zip(cfg, zip_path)
    if not report.ok:
        run_id = record_score(ledger, cfg.name, zip_path=zip_path, n_images=report.n_images, **common)
        return {**fields, "run_id": run_id, "collected": "rejected", "collect_note": "; ".join(report.defects())}
    scores, source = None, "local"
    if score_from in ("auto", "kernel"):
        scores, source = kernel_score(summary), "kernel"
        if scores is None and score_from == "kernel":
            raise KompeteError(f"{ref} v{version} has no score of its own in {RUN_SUMMARY}",
                               hint="collect with --score-from local, or build the kernels with --score")
    if scores is None:
        scores, source = (scorer or local_scorer())(cfg, zip_path), "local"
    m = cfg.metric  # a kernel scores with the config it was built from, as the local scorer does
    run_id = record_score(ledger, cfg.name, zip_path=zip_path, fid=scores.fid, mifid=scores.mifid,
                          memorization=scores.memorization, n_images=scores.n_images or report.n_images,
                          metric=m.name, preprocess=m.preprocess, resize=m.resize, **common)
    return {**fields, "run_id": run_id, "collected": "ok", "score_source": source, "collect_note": None}


def _pick(files: list[tuple[str, str]], wanted: list[str]) -> dict[str, str]:
    """{base name: output name} for each wanted file, the shallowest when the kernel wrote several."""
    out: dict[str, str] = {}
    for name, _ in sorted(files, key=lambda f: (f[0].count("/"), f[0])):
        base = name.rsplit("/", 1)[-1]
        if base in wanted and base not in out:
            out[base] = name
    return out


def _read_json(path: Path | None) -> dict | None:
    try:
        data = json.loads(path.read_text()) if path else None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _rows(path: Path | None) -> list[dict]:
    """metrics.csv rows; bytes that are not UTF-8 (a kernel's damaged file) become U+FFFD, never an abort."""
    if path is None:
        return []
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            return list(csv.DictReader(f))
    except (OSError, ValueError, csv.Error):
        return []


def _throughput(metrics: Path | None) -> tuple[int | None, float | None]:
    """Last logged step and the mean images/s over the run, from metrics.csv."""
    rows = _rows(metrics)
    steps = [_finite(r.get("step")) for r in rows]
    rates = [v for v in (_finite(r.get("images_per_s")) for r in rows) if v is not None]
    last = next((s for s in reversed(steps) if s is not None), None)
    return (int(last) if last is not None else None), (sum(rates) / len(rates) if rates else None)


def _finite(text: object) -> float | None:
    value = parse_score(text)
    return value if value is not None and math.isfinite(value) else None


def fetched(k: dict, base: str) -> Path | None:
    """The collected file named `base` in the variant's folder (kept at its path in the kernel output)."""
    if not k.get("out_dir"):
        return None
    found = sorted(Path(k["out_dir"]).rglob(base), key=lambda p: (len(p.parts), str(p)))
    return found[0] if found else None


def curves(k: dict) -> dict[str, list[tuple[float, float]]]:
    """In-training score columns of the variant's metrics.csv (any column naming mifid or fid), by step."""
    rows = _rows(fetched(k, METRICS))
    cols = [c for c in (rows[0] if rows else {}) if "mifid" in c.lower() or c.lower().endswith("fid")]
    out = {}
    for c in cols:
        pts = [(parse_score(r.get("step")), parse_score(r.get(c))) for r in rows]
        out[c] = [(s, v) for s, v in pts if s is not None and v is not None]
    return {c: p for c, p in out.items() if p}


# --------------------------------------------------------------------------- ranking


def ranked(ledger: Ledger, name: str) -> list[dict]:
    """Every kernel with its run's scores and submission, the scored ones first by local MiFID (lower is better)."""
    camp = store.campaign(ledger, name)
    ks = store.kernels(ledger, camp["id"])
    by_id = {k["id"]: k for k in ks}
    rows = []
    for k in ks:
        run = store.run_of(ledger, k["run_id"]) or {}
        sub = store.submission_of(ledger, k["kernel_ref"], k["version"])
        best = _read_json(fetched(k, BEST))
        parent = by_id.get(k["parent_id"])
        metric = config_of(camp, k).metric
        rows.append({**k, "mifid": run.get("mifid"), "fid": run.get("fid"), "memorization": run.get("memorization"),
                     "images_per_s": run.get("images_per_s"), "zip_path": run.get("zip_path"),
                     "eps": metric.eps, "metric": metric.name,
                     "submission": sub, "best": best, "continues": parent["variant"] if parent else None,
                     "what": describe_changes(k["changes"]), "took": duration(k)})
    return sorted(rows, key=lambda r: (r["mifid"] is None or r["collected"] != "ok", r["mifid"] or 0.0, r["id"]))


def status_word(r: dict) -> str:
    if r["collected"] in ("rejected", "failed"):
        return f"{r['collected']}: {r['collect_note']}"
    if r["collected"] == "ok":
        return f"collected ({r['score_source']} score)"
    return r["state"] + (f" ({r['kaggle_status']})" if r["kaggle_status"] not in (None, "PUSHED") else "")


def choose_best(rows: list[dict], margin: float = EPS_MARGIN) -> tuple[dict | None, list[str]]:
    """The best-scored variant that is not submitted yet and whose memorization distance is safely above
    eps; and, for the ones passed over on the way, why."""
    passed = []
    for r in rows:
        if r["collected"] != "ok" or r["mifid"] is None:
            continue
        if r["submission"] is not None:
            passed.append(f"{r['variant']}: already submitted (submission {r['submission']['ref']})")
        elif r["memorization"] is None:
            passed.append(f"{r['variant']}: memorization distance unknown, cannot rule out copying")
        elif r["memorization"] < r["eps"] * margin:
            passed.append(f"{r['variant']}: memorization distance {r['memorization']:.4f} is not safely above "
                          f"eps {r['eps']:g} (needs {r['eps'] * margin:.4f})")
        else:
            return r, passed
    return None, passed


def submit_best(ledger: Ledger, client: KaggleClient, name: str, wait: bool = False, timeout_s: float = 3600,
                poll_s: float = 30.0, margin: float = EPS_MARGIN, message: str | None = None,
                sleep: Callable[[float], None] | None = None) -> tuple[dict, remote.SubmitResult, list[str]]:
    """Submit the best eligible variant after the quota check (kompete.kernel.remote.submit) and record it."""
    camp = store.campaign(ledger, name)
    best, passed = choose_best(ranked(ledger, name), margin)
    if best is None:
        why = "; ".join(passed) or "no variant is collected with a score"
        raise KompeteError(f"campaign {name}: nothing to submit ({why})",
                           hint=f"`kompete campaign collect {name}` scores finished kernels")
    cfg = config_of(camp, best)
    ref, version = best["kernel_ref"], best["version"]
    message = message or f"kompete campaign {name} {best['variant']} ({ref} v{version}, local MiFID {best['mifid']:.4f})"

    def remember(sub_ref: int) -> None:  # before any waiting, so a timeout cannot lose the submission
        record_submit(ledger, cfg.name, sub_ref, kernel_ref=ref, kernel_version=version, description=message,
                      file_name=cfg.output.archive, run_id=best["run_id"])

    extra = {"sleep": sleep} if sleep is not None else {}
    result = remote.submit(client, cfg, ref, version, message, wait, timeout_s, poll_s,
                           Path(best["zip_path"]) if best["zip_path"] else None, on_submitted=remember, **extra)
    if result.submission is not None:
        s = result.submission
        ledger.record_submission(cfg.name, result.ref, status=s.status, public_score=s.public_score,
                                 private_score=s.private_score, date=s.date or now_iso(),
                                 error_description=s.error or None)
    return best, result, passed
