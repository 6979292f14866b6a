"""The root `kompete` command. Subcommands live beside it, one module per pipeline stage."""

from __future__ import annotations

import click

from kompete import __version__
from kompete.config import Config, load_config
from kompete.errors import KompeteError


class KompeteGroup(click.Group):
    """Turns a KompeteError anywhere below into one plain line and a non-zero exit."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KompeteError as exc:
            click.echo(f"Error: {exc.render()}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=KompeteGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="kompete")
def main() -> None:
    """Train, generate, score and submit for Kaggle's generative-image competitions.

    \b
    Start here:
      kompete competitions            what is configured
      kompete data sample-dogs        make and load the offline sample
      kompete demo                    the whole pipeline, offline, on the CPU
    """


# Options shared by many commands.
set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                          help="Override a config key, e.g. --set train.lr_g=1e-4 (repeatable).")
data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False, path_type=str), default=None,
                               help="Folder holding the competition data (default: the config's local_dir, "
                                    "or /kaggle/input/<competition> in a kernel).")


def config_for(competition: str, overrides: tuple[str, ...] = ()) -> Config:
    return load_config(competition, list(overrides))
