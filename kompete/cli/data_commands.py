"""`kompete data COMP` (prepare and summarise) and `kompete data download COMP`."""

from __future__ import annotations

from pathlib import Path

import click

from kompete.cli.main import config_for, data_dir_option, main, set_option


class DefaultCommandGroup(click.Group):
    """A group whose first argument, when it is not a subcommand, goes to a default subcommand."""

    default_command = "summary"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


@main.group(cls=DefaultCommandGroup)
def data() -> None:
    """Prepare and summarise a competition's data, or download it.

    \b
    kompete data sample-dogs                  make, load and summarise the sample
    kompete data generative-dog-images --data-dir ~/data/dogs
    kompete data download gan-getting-started
    """


@data.command("summary")
@click.argument("competition")
@data_dir_option
@set_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def summary(competition: str, data_dir: str | None, overrides: tuple[str, ...], quiet: bool) -> None:
    """Prepare COMPETITION's training data (cached) and print what was found."""
    from kompete import data as data_mod

    cfg = config_for(competition, overrides)
    for part in data_mod.summarise(cfg, data_dir, progress=not quiet):
        click.echo("\n".join(part.lines()))


@data.command("download")
@click.argument("competition")
@click.option("--to", "dest", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to unpack into (default: the config's local_dir).")
@set_option
def download(competition: str, dest: Path | None, overrides: tuple[str, ...]) -> None:
    """Download COMPETITION's files with the kaggle client and unpack them safely."""
    from kompete.data.download import safe_extract
    from kompete.errors import DataError
    from kompete.kernel import client

    cfg = config_for(competition, overrides)
    if cfg.data.sample is not None:
        raise DataError(f"{cfg.name} is a sample competition: its data is generated, run `kompete data {cfg.name}`")
    dest = dest or Path(cfg.data.local_dir or f"data/{cfg.name}")
    archive = client.download_competition(cfg.name, dest.parent)
    count = safe_extract(archive, dest)
    archive.unlink()
    click.echo(f"unpacked {count} files into {dest}")
