"""The one place that chains the stages: data -> train -> generate -> zip -> score -> kernel bundle."""

from __future__ import annotations

import time
from pathlib import Path

import click

from kompete import data
from kompete.config import load_config


def demo(out: Path) -> None:
    """Everything kompete does, offline on the CPU, on the sample competitions."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for name in ("sample-dogs", "sample-monet"):
        cfg = load_config(name)
        _step(f"{name}: prepare data")
        for summary in data.summarise(cfg, progress=True):
            click.echo("  " + "\n  ".join(summary.lines()))
    click.echo(f"\ndemo finished in {time.perf_counter() - started:.0f} s; outputs in {out}")


def _step(title: str) -> None:
    click.secho(f"\n== {title}", bold=True)
