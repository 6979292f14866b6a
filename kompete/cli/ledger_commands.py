"""`kompete` ledger commands."""

from kompete.cli.main import main  # noqa: F401
