"""The one place that chains the stages: data -> train -> generate -> zip -> score -> kernel bundle."""

from __future__ import annotations

from pathlib import Path

import click


def demo(out: Path) -> None:
    """Everything kompete does, offline on the CPU, on the sample competitions."""
    out.mkdir(parents=True, exist_ok=True)
    click.echo(f"kompete demo -> {out}")
