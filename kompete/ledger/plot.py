"""One PNG that tells the story of a competition: scores over time, local vs public, leaderboard rank.

Drawn with matplotlib's object API on an Agg canvas: no display, no pyplot global state.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from kompete import memorization
from kompete.ledger import report
from kompete.ledger.store import Ledger
from kompete.paths import atomic_output


def plot_history(ledger: Ledger, competition: str, out: str | Path, *, dpi: int = 110) -> Path:
    """Write the competition's history plot to `out` (PNG, written atomically) and return its path."""
    subs = report.submissions_frame(ledger, competition)
    snaps = pd.DataFrame(ledger.snapshots(competition))
    if not snaps.empty:
        snaps["taken_at"] = pd.to_datetime(snaps["taken_at"], utc=True)

    fig = Figure(figsize=(15, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax_time, ax_pair, ax_rank = fig.subplots(1, 3, gridspec_kw={"width_ratios": [2.2, 1, 1.2]})
    fig.suptitle(f"{competition}: {len(subs)} submissions", fontsize=12)
    _scores_over_time(ax_time, subs, snaps)
    _local_vs_public(ax_pair, subs)
    _rank_over_time(ax_rank, snaps)

    out = Path(out)
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return out


def _scores_over_time(ax, subs: pd.DataFrame, snaps: pd.DataFrame) -> None:
    ax.set_title("Public score over time (lower is better)")
    scored = subs.dropna(subset=["public_score"]).sort_values("date")
    drawn = False
    if not snaps.empty:
        # markers: one snapshot is one point, and a line through one point draws nothing
        ax.plot(snaps["taken_at"], snaps["top_score"], color="tab:green", lw=1.5, marker="o", ms=3,
                label="leaderboard first")
        ax.plot(snaps["taken_at"], snaps["median_score"], color="tab:gray", lw=1.5, ls="--", marker="o", ms=3,
                label="leaderboard median")
        drawn = True
    if not scored.empty:
        ax.scatter(scored["date"], scored["public_score"], color="tab:blue", s=22, zorder=3,
                   label="your public score")
        ax.step(scored["date"], scored["public_score"].cummin(), where="post", color="tab:blue", lw=1,
                alpha=0.6, label="your best so far")
        drawn = True
    local = subs.dropna(subset=["local_mifid"])
    if not local.empty:
        ax.scatter(local["date"], local["local_mifid"], facecolors="none", edgecolors="tab:orange", s=30,
                   zorder=3, label="local MiFID")
        drawn = True
    errors = subs[subs["status"] == "ERROR"]
    if not errors.empty and drawn:
        ymin = ax.get_ylim()[0]
        ax.scatter(errors["date"], [ymin] * len(errors), marker="x", color="tab:red", s=25, label="error")
    if drawn:
        ax.legend(fontsize=8, loc="best")
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        ax.set_ylabel("MiFID")
    else:
        _empty(ax, "no scored submissions yet")


def _local_vs_public(ax, subs: pd.DataFrame) -> None:
    pairs = subs.dropna(subset=["local_mifid", "public_score"])
    r, n = report.correlation(subs)
    ax.set_title("Local vs public" + (f" (r = {r:+.2f}, n = {n})" if r is not None else ""))
    if pairs.empty:
        _empty(ax, "no submission has both\na local and a public score")
        return
    ax.scatter(pairs["local_mifid"], pairs["public_score"], color="tab:purple", s=24)
    lo = min(pairs["local_mifid"].min(), pairs["public_score"].min())
    hi = max(pairs["local_mifid"].max(), pairs["public_score"].max())
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.8, ls=":", label="local = public")
    ax.set_xlabel("local MiFID")
    ax.set_ylabel("public score")
    ax.legend(fontsize=8, loc="best")


def _rank_over_time(ax, snaps: pd.DataFrame) -> None:
    ax.set_title("Leaderboard position")
    ranked = snaps.dropna(subset=["my_rank"]) if not snaps.empty else snaps
    if ranked.empty:
        _empty(ax, "not on a synced leaderboard yet")
        return
    ax.plot(ranked["taken_at"], ranked["my_rank"], marker="o", ms=4, color="tab:blue", label="your rank")
    ax.plot(ranked["taken_at"], ranked["total_teams"], color="tab:gray", lw=1, ls="--", marker="o", ms=3,
            label="teams")
    ax.invert_yaxis()
    ax.set_ylabel("rank (1 = first)")
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.legend(fontsize=8, loc="best")


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_campaign(name: str, rows: list[dict], curves: dict[str, dict[str, list[tuple[float, float]]]],
                  out: str | Path, *, dpi: int = 110, competition: str = "") -> Path:
    """A campaign's PNG: local MiFID per variant (ranked), and the in-training curves the kernels logged.

    `rows` are kompete.kernel.campaign_results.ranked(); `curves` maps a variant to {column: [(step, value)]}.
    """
    fig = Figure(figsize=(13, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax_bar, ax_curve = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1]})
    fig.suptitle(f"campaign {name}" + (f" on {competition}" if competition else "") + f": {len(rows)} kernels",
                 fontsize=12)
    scored = [r for r in rows if r.get("mifid") is not None]
    ax_bar.set_title("Local MiFID per variant (lower is better)")
    if scored:
        labels = [r["variant"] for r in scored]
        colors = ["tab:green" if r.get("submission") else "tab:red" if _memorizes(r) else "tab:blue" for r in scored]
        ax_bar.barh(labels, [r["mifid"] for r in scored], color=colors)
        ax_bar.invert_yaxis()  # the best on top
        ax_bar.set_xlabel("MiFID (green: submitted, red: memorization distance below eps)")
    else:
        _empty(ax_bar, "no variant scored yet")
    ax_curve.set_title("In-training scores")
    drawn = False
    for variant, cols in curves.items():
        for col, points in cols.items():
            if points:
                ax_curve.plot([p[0] for p in points], [p[1] for p in points], marker="o", ms=3,
                              label=f"{variant} {col}")
                drawn = True
    if drawn:
        ax_curve.set_xlabel("step")
        ax_curve.legend(fontsize=8, loc="best")
    else:
        _empty(ax_curve, "no kernel logged in-training scores")
    out = Path(out)
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return out


def _memorizes(row: dict) -> bool:
    return memorization.memorizes(row.get("memorization"), row.get("eps"), row.get("metric", "mifid"))
