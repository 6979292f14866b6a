"""The one place that chains the stages: data -> train -> generate -> zip -> score -> kernel bundle."""

from __future__ import annotations

import time
from pathlib import Path

import click

from kompete import data
from kompete.config import Config, load_config
from kompete.errors import ArchiveError

DEMO_COMPETITIONS = ("sample-dogs", "sample-monet", "sample-faces")  # dogs, monet and folder layouts
# Scoring every image through Inception on a CPU takes minutes; the demo scores a sample of each side.
DEMO_SCORE_LIMIT = 64
DEMO_REFERENCE_LIMIT = 128
# In-training MiFID on the dog sample: small and frequent, so 45 s of CPU training draws a curve (mifid.png)
DEMO_EVAL = {"sample-dogs": ["eval.every_minutes=0.15", "eval.n_images=64", "eval.batch_size=64",
                             "eval.max_fraction=0.5", f"metric.reference_limit={DEMO_REFERENCE_LIMIT}"]}


def demo(out: Path, train_seconds: float = 45.0, score: bool = True) -> None:
    """Everything kompete does, offline on the CPU, on the sample competitions."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for name in DEMO_COMPETITIONS:
        cfg = load_config(name, DEMO_EVAL.get(name, []) if score else [])
        zip_path = run_competition(cfg, out / name, train_seconds, score)
        click.echo(f"  {name}: {zip_path}")
    _step("sample-dogs: build the Kaggle kernel bundle (nothing is pushed)")
    from kompete.kernel.bundle import build_bundle

    b = build_bundle(load_config("sample-dogs"), owner="demo", out_root=out / "kernels")
    click.echo(f"  {b.folder}/kernel.py ({b.kernel_id}): {b.script_bytes / 1e3:.0f} kB, config {b.config_hash}")
    click.echo(f"\ndemo finished in {time.perf_counter() - started:.0f} s; outputs in {out}")


def run_competition(cfg: Config, run_dir: Path, train_seconds: float, score: bool = True) -> Path:
    """prepare -> train (for `train_seconds`) -> generate images.zip -> validate -> score; returns the zip."""
    from kompete.archive import validate_zip
    from kompete.generate import generate_zip
    from kompete.metrics.evaluation import evaluation_callbacks
    from kompete.train.budget import make_budget
    from kompete.train.run import train_run

    _step(f"{cfg.name}: prepare data")
    for summary in data.summarise(cfg, progress=True):
        click.echo("  " + "\n  ".join(summary.lines()))

    _step(f"{cfg.name}: train for {train_seconds:.0f} s ({cfg.train.model}, {cfg.train.loss} loss)")
    result = train_run(cfg, run_dir, make_budget(cfg, train_seconds), fresh=True,
                       callbacks=evaluation_callbacks(cfg))
    assert result is not None  # a single process is always rank 0
    click.echo("  " + "\n  ".join(result.lines()))
    click.echo(f"  loss curves, D outputs and sample grids: {run_dir}")
    if (run_dir / "mifid.png").is_file():
        click.echo(f"  in-training MiFID curve: {run_dir / 'mifid.png'}")

    _step(f"{cfg.name}: generate {cfg.output.archive}")
    zip_path = generate_zip(run_dir, run_dir / cfg.output.archive)

    _step(f"{cfg.name}: validate as Kaggle would")
    report = validate_zip(cfg, zip_path)
    if not report.ok:
        raise ArchiveError(report.message())
    click.echo(f"  OK: {report.n_images} {cfg.output.format.upper()} images at "
               f"{cfg.output.image_size}x{cfg.output.image_size}"
               + (f" in {report.classes_line()}" if cfg.output.layout == "by_class" else ""))

    if score:
        from kompete.metrics.score import score_path

        metric = "FID" if cfg.metric.name == "fid" else "MiFID"
        _step(f"{cfg.name}: {metric} on {DEMO_SCORE_LIMIT} images vs {DEMO_REFERENCE_LIMIT} reference images")
        scored = score_path(cfg, zip_path, limit=DEMO_SCORE_LIMIT, reference_limit=DEMO_REFERENCE_LIMIT,
                            progress=True)
        click.echo("  " + "\n  ".join(scored.lines()))
    return zip_path


def _step(title: str) -> None:
    click.secho(f"\n== {title}", bold=True)
