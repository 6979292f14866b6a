"""kompete's command line: a thin layer that parses, loads the config and calls one library function."""

from kompete.cli.main import main
from kompete.cli import competition_commands, data_commands  # noqa: F401  (register subcommands)
from kompete.cli import score_commands, train_commands, kernel_commands, ledger_commands  # noqa: F401
from kompete.cli import campaign_commands, init_commands  # noqa: F401

__all__ = ["main"]
