"""The root `kompete` command. Subcommands live beside it, one module per pipeline stage."""

from __future__ import annotations

import signal
import threading

import click

from kompete import __version__
from kompete.config import Config, load_config
from kompete.errors import KompeteError


class Terminated(BaseException):
    """SIGTERM as an exception, so `finally` blocks and atomic writers clean up (a BaseException:
    `except Exception` must not swallow it)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


class KompeteGroup(click.Group):
    """Turns a KompeteError anywhere below into one plain line and a non-zero exit.

    Also the one place that makes SIGTERM and Ctrl-C end a command cleanly: temporary files are removed
    on the way out and no traceback is shown (training installs its own handlers, which checkpoint first).
    An OSError that escaped every check (a full disk, a folder made read-only meanwhile) is one line too.
    """

    def invoke(self, ctx: click.Context):
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
        try:
            return super().invoke(ctx)
        except KompeteError as exc:
            click.echo(f"Error: {exc.render()}", err=True)
            ctx.exit(exc.exit_code)
        except Terminated:
            click.echo("Error: stopped by SIGTERM", err=True)
            ctx.exit(128 + signal.SIGTERM)
        except KeyboardInterrupt:
            click.echo("\nError: stopped by SIGINT (Ctrl-C)", err=True)
            ctx.exit(128 + signal.SIGINT)
        except BrokenPipeError:  # `kompete ... | head`: the reader left, nothing to say
            ctx.exit(1)
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            click.echo(f"Error: {exc.strerror or exc}{where}", err=True)
            ctx.exit(1)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


@click.group(cls=KompeteGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="kompete")
def main() -> None:
    """Train, generate, score and submit for Kaggle's generative-image competitions.

    \b
    Start here:
      kompete competitions            what is configured
      kompete data sample-dogs        make and load the offline sample
      kompete demo                    the whole pipeline, offline, on the CPU
      kompete init NAME --images DIR  a competition YAML for a folder of images
    """


# Options shared by many commands.
set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                          help="Override a config key, e.g. --set train.lr_g=1e-4 (repeatable).")
data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False, path_type=str), default=None,
                               help="Folder holding the competition data (default: the config's local_dir, "
                                    "or /kaggle/input/<competition> in a kernel).")


def config_for(competition: str, overrides: tuple[str, ...] = ()) -> Config:
    return load_config(competition, list(overrides))
