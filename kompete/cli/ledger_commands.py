"""`kompete leaderboard sync|show COMP` and `kompete runs [COMP]`, `kompete runs compare A B`.

Also the pieces other commands use to record into the ledger: `db_option`, `record_option` and
`record_quietly`, so that recording can never break the command it rides on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from kompete.cli.main import main
from kompete.ledger.store import DB_ENV

db_option = click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                         envvar=DB_ENV, show_envvar=True,
                         help="The ledger database (default: ~/.kompete/kompete.db).")
record_option = click.option("--record/--no-record", "record", default=True,
                             help="Record this in the ledger database (see --db).")


def record_quietly(fn: Callable[..., Any], *args: Any, db_path: Path | None = None, **kwargs: Any) -> Any:
    """Open the ledger and call `fn(ledger, *args, **kwargs)`; any failure becomes a warning on stderr
    (`kompete.ledger.record.record_safely`: recording can never break the command it rides on)."""
    from kompete.ledger.record import record_safely

    return record_safely(fn, *args, db_path=db_path, warn=lambda line: click.echo(line, err=True), **kwargs)


def _open(db_path: Path | None, readonly: bool = False):
    """`readonly` for commands that only show: they never create or change a database."""
    from kompete.ledger.store import Ledger

    return Ledger(db_path, readonly=readonly)


def _where(ledger) -> str:
    return str(ledger.path) if ledger.exists else f"{ledger.path} (no database there: check --db or ${DB_ENV})"


# --------------------------------------------------------------------------- leaderboard


@main.group()
def leaderboard() -> None:
    """Your submissions and the public leaderboard, kept in a local database.

    \b
    kompete leaderboard sync gan-getting-started
    kompete leaderboard show gan-getting-started --plot lb.png --csv lb.csv
    """


@leaderboard.command("sync")
@click.argument("competition")
@db_option
@click.option("--keep-rows", default=100, show_default=True, type=click.IntRange(1),
              help="Leaderboard rows stored per snapshot (rank, team count and median use all of them).")
@click.option("--max-pages", default=100, show_default=True, type=click.IntRange(1),
              help="Stop with an error beyond this many pages of one listing.")
@click.option("--no-leaderboard", is_flag=True, help="Only submissions and limits.")
def sync_cmd(competition: str, db_path: Path | None, keep_rows: int, max_pages: int, no_leaderboard: bool) -> None:
    """Pull COMPETITION's submissions, public leaderboard and today's allowance into the ledger."""
    from kompete.kernel.client import KaggleClient
    from kompete.ledger.sync import sync

    client = KaggleClient()
    with _open(db_path) as ledger:
        result = sync(ledger, client, competition, keep_rows=keep_rows, max_pages=max_pages,
                      leaderboard=not no_leaderboard)
        click.echo("\n".join(result.lines()))
        click.echo(f"ledger: {ledger.path}")


@leaderboard.command("show")
@click.argument("competition")
@db_option
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also draw the history into this PNG.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every submission to this CSV.")
@click.option("--last", default=15, show_default=True, type=click.IntRange(0), help="Submissions listed.")
@click.option("--top", default=5, show_default=True, type=click.IntRange(0), help="Leaderboard rows listed.")
def show_cmd(competition: str, db_path: Path | None, plot_path: Path | None, csv_path: Path | None,
             last: int, top: int) -> None:
    """Where you stand on COMPETITION: best score, rank, gap to first, allowance, recent submissions."""
    from kompete.ledger import report
    from kompete.paths import atomic_output, check_writable

    for wanted, what in ((csv_path, "CSV"), (plot_path, "plot")):  # before any work: a read-only place fails now
        if wanted is not None:
            check_writable(wanted, what)
    with _open(db_path, readonly=True) as ledger:
        frame = report.submissions_frame(ledger, competition)
        snaps = ledger.snapshots(competition)
        if frame.empty and not snaps:
            click.echo(f"Nothing recorded for {competition} in {_where(ledger)} yet.\n"
                       f"Run `kompete leaderboard sync {competition}` to pull your submissions and the leaderboard.")
            return
        click.echo("\n".join(report.summarise(ledger, competition).lines()))
        if last and not frame.empty:
            click.echo(f"\nlast {min(last, len(frame))} submissions:")
            click.echo(report.table(frame.tail(last)))
        if top and snaps:
            mine = snaps[-1]["my_team"]
            rows = ledger.snapshot_rows(snaps[-1]["id"])
            shown = rows[:top] + [r for r in rows[top:] if r["team_name"] == mine]
            click.echo(f"\nleaderboard ({snaps[-1]['taken_at']}):")
            for r in shown:
                flag = "  <- you" if mine and r["team_name"] == mine else ""
                score = "-" if r["score"] is None else f"{r['score']:.4f}"
                click.echo(f"  {r['rank']:>5}  {score:>10}  {r['team_name']}{flag}")
        if csv_path:
            with atomic_output(csv_path) as tmp:
                frame.to_csv(tmp, index=False)
            click.echo(f"wrote {csv_path}")
        if plot_path:
            from kompete.ledger.plot import plot_history

            plot_history(ledger, competition, plot_path)
            click.echo(f"wrote {plot_path}")


# --------------------------------------------------------------------------- runs


class _RunsGroup(click.Group):
    """`kompete runs [COMP]` lists; `kompete runs compare A B` compares."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@main.group(cls=_RunsGroup)
def runs() -> None:
    """Recorded runs, what each changed in the config, and their local and public scores.

    \b
    kompete runs                      every competition
    kompete runs gan-getting-started  one competition
    kompete runs compare 3 7          config diff and score deltas of runs 3 and 7
    """


@runs.command("list")
@click.argument("competition", required=False)
@db_option
def runs_list(competition: str | None, db_path: Path | None) -> None:
    """List the runs of COMPETITION (or of all), oldest first."""
    from kompete.ledger import report

    with _open(db_path, readonly=True) as ledger:
        frame = report.runs_frame(ledger, competition)
        if frame.empty:
            where = f" for {competition}" if competition else ""
            click.echo(f"No runs recorded{where} in {_where(ledger)} yet "
                       f"(`kompete train`, `score`, `submit` and `campaign collect` record them).")
            return
        if competition:
            frame = frame.drop(columns=["competition"])
        click.echo(report.table(frame))


@runs.command("compare")
@click.argument("a")
@click.argument("b")
@db_option
def runs_compare(a: str, b: str, db_path: Path | None) -> None:
    """Config differences and score deltas from run A to run B (ids from `kompete runs`)."""
    from kompete.ledger import report

    with _open(db_path, readonly=True) as ledger:
        click.echo("\n".join(report.compare(ledger, a, b).lines()))


__all__ = ["db_option", "record_option", "record_quietly", "leaderboard", "runs"]
