"""`kompete competitions`, `kompete config` and `kompete demo`."""

from __future__ import annotations

from pathlib import Path

import click

from kompete import config as config_mod
from kompete.cli.main import config_for, main, set_option


@main.command()
def competitions() -> None:
    """List the configured competitions."""
    from kompete.errors import ConfigError

    rows = [("name", "task", "output", "images", "runtime", "subs/day")]
    broken: list[str] = []
    for name in config_mod.list_competitions():
        try:
            cfg = config_for(name)
        except ConfigError as exc:  # one broken file must not hide the others
            rows.append((name, "BROKEN", "", "", "", ""))
            broken.append(exc.render())
            continue
        out = cfg.output
        count = str(out.n_min) if out.n_min == out.n_max else f"{out.n_min}-{out.n_max}"
        rows.append((name, cfg.task, f"{out.format} {out.image_size}px", count,
                     f"{cfg.limits.runtime_hours:g} h", str(cfg.limits.daily_submissions)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    if broken:
        raise ConfigError(f"{len(broken)} competition config(s) cannot be read: " + "; ".join(broken))


@main.command("config")
@click.argument("competition")
@set_option
@click.option("--keys", is_flag=True, help="List every key with COMPETITION's value and its meaning instead "
                                           "(the default follows when the value differs).")
def show_config(competition: str, overrides: tuple[str, ...], keys: bool) -> None:
    """Print the resolved config of COMPETITION (after --set overrides) and its hash."""
    cfg = config_for(competition, overrides)
    if keys:
        resolved = cfg.to_dict()
        for key, default, help_text in config_mod.describe():
            value = _value_at(resolved, key)
            shown = default if value is _ABSENT else repr(value)
            note = f" (default {default})" if value is not _ABSENT and shown != default else ""
            click.echo(f"{key:32} {shown:14} {help_text}{note}")
        return
    import yaml

    click.echo(yaml.safe_dump(cfg.to_dict(), sort_keys=False).rstrip())
    click.echo(f"# config hash: {config_mod.config_hash(cfg)}")


_ABSENT = object()


def _value_at(resolved: dict, key: str) -> object:
    """The value of a dotted key in a config's YAML form; _ABSENT for a section this config does not use."""
    node: object = resolved
    for part in key.rstrip(":").split("."):
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    return _ABSENT if key.endswith(":") else node


@main.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/demo"),
              help="Folder for the demo's runs, zips and bundle.")
@click.option("--train-seconds", type=click.FloatRange(min=1), default=45.0,
              help="Training time for each sample competition.")
@click.option("--no-score", is_flag=True, help="Skip the MiFID step (it needs the Inception weights).")
def demo(out: Path, train_seconds: float, no_score: bool) -> None:
    """Run the whole pipeline offline on the sample competitions (CPU, a few minutes).

    \b
    prepare -> train -> generate images.zip -> validate -> score -> kernel bundle, for sample-dogs,
    sample-monet and sample-faces (a conditional GAN on class folders), without credentials or network.
    """
    from kompete import pipeline

    pipeline.demo(out, train_seconds=train_seconds, score=not no_score)
