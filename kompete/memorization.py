"""Memorization as Kaggle's MiFID judges it: one rule and one wording for every place a score is shown.

Below `metric.eps` the memorization distance counts: MiFID = FID / distance, so a copier's score explodes (a zip
of training images scores MiFID in the millions) and Kaggle's private dog board disqualified such submissions.
A plain-FID competition has no such term. Torch- and pandas-free: the score report, the ledger's tables and
the campaign tables share it.
"""

from __future__ import annotations

import json
from typing import Any

DEFAULT_EPS = 0.1  # metric.eps's default, for a recorded run whose config is unknown
MARK = "MEMORIZES"  # the flag in every table


def memorizes(distance: float | None, eps: float | None, metric: str | None = "mifid") -> bool:
    """Whether the thresholded distance applies: a MiFID score (or one recorded before the metric was kept)
    whose memorization distance is below eps."""
    if distance is None or eps is None or metric not in (None, "mifid"):
        return False
    try:
        return float(distance) < float(eps)
    except (TypeError, ValueError):
        return False


def warning(distance: float, eps: float, share: float | None = None) -> str:
    """The one-line warning: the distance, eps and, when known, the share of generated images whose nearest
    training image is closer than eps."""
    closer = "" if share is None else f"; {share:.1%} of generated images have a training image closer than eps"
    return (f"warning: memorization distance {distance:.4f} is below eps {eps:g}{closer}: MiFID divides FID by "
            f"it, and Kaggle disqualified memorizers")


def eps_of(config: dict[str, Any] | str | None) -> float:
    """metric.eps of a recorded config (a dict or its JSON), or the default when it is unknown."""
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError:
            config = None
    metric = config.get("metric") if isinstance(config, dict) else None
    eps = metric.get("eps") if isinstance(metric, dict) else None
    return float(eps) if isinstance(eps, (int, float)) and not isinstance(eps, bool) else DEFAULT_EPS


def mark(distance: float | None, eps: float | None, metric: str | None = "mifid") -> str | None:
    """MARK for a memorizer, None otherwise (a table drops a column that is None in every row)."""
    return MARK if memorizes(distance, eps, metric) else None


def table_warning(memorizers: list[str] | tuple[str, ...]) -> str:
    """The one line under a table with marked rows: which rows (each with its distance) memorize."""
    return (f"warning: {len(memorizers)} marked {MARK}, memorization distance below eps: {', '.join(memorizers)}; "
            f"MiFID divides FID by it, and Kaggle disqualified memorizers")
