"""`kompete campaign start|add|status|wait|collect|show|submit|continue`: sweeps that come back."""

from __future__ import annotations

from pathlib import Path

import click

from kompete.cli.kernel_commands import _client, _owner, owner_option, sweep_option
from kompete.cli.ledger_commands import _open, db_option
from kompete.cli.main import main, set_option
from kompete.errors import KompeteError


@main.group()
def campaign() -> None:
    """A named set of kernels: pushed within Kaggle's session limit, watched, collected, ranked, submitted.

    \b
    kompete campaign start generative-dog-images --name dogs1 --sweep loss=hinge,ralsgan
    kompete campaign wait dogs1                # survives a kill: run it again to carry on
    kompete campaign collect dogs1             # fetch, validate and score every finished kernel
    kompete campaign show dogs1 --plot dogs1.png
    kompete campaign submit dogs1 --best --wait
    kompete campaign continue dogs1 hinge      # the next kernel of a chain, resuming from hinge's output
    """


def _echo(event) -> None:
    click.echo(f"{event.variant}: {event.what}" + (f"  {event.detail}" if event.detail else ""))


@campaign.command("start")
@click.argument("competition")
@click.option("--name", required=True, help="The campaign's name (also part of every kernel slug).")
@set_option
@sweep_option
@owner_option
@click.option("--out", "out_root", type=click.Path(file_okay=False, path_type=Path), default=Path("campaigns"),
              help="Folder receiving <name>/kernels/ (bundles) and <name>/output/ (what collect fetches).")
@click.option("--score/--no-score", default=None, help="Also score the zip in each kernel (default: kernel.score).")
@click.option("--push/--no-push", "do_push", default=True,
              help="Push the first kernel.max_concurrent kernels now (the rest are queued).")
@db_option
def start_cmd(competition, name, overrides, sweeps, owner, out_root, score, do_push, db_path) -> None:
    """Build one kernel per --sweep combination, record the campaign, push up to kernel.max_concurrent."""
    from kompete.config import load_config
    from kompete.kernel import campaign as camp_mod

    owner = _owner(owner, load_config(competition, list(overrides)))
    with _open(db_path) as ledger:
        camp = camp_mod.start(ledger, _client, competition, name, list(overrides), list(sweeps), owner, out_root,
                              score, push=do_push, notify=_echo)
        _print_status(ledger, camp)


@campaign.command("add")
@click.argument("name")
@click.argument("ref", metavar="OWNER/SLUG")
@click.option("--version", type=click.IntRange(min=1), default=None, help="The kernel version (default: latest).")
@click.option("--variant", default=None, help="Its name in the campaign (default: the slug).")
@click.option("--competition", default=None, help="Create the campaign for this competition if it does not exist.")
@db_option
def add_cmd(name, ref, version, variant, competition, db_path) -> None:
    """Add a kernel pushed some other way; it is watched and collected with the others."""
    from kompete.kernel import campaign as camp_mod

    with _open(db_path) as ledger:
        camp = camp_mod.add(ledger, name, ref, version, variant, competition)
        click.echo(f"added {ref}" + (f" v{version}" if version else "") + f" to campaign {name}")
        _print_status(ledger, camp)


def _print_status(ledger, camp) -> None:
    import pandas as pd

    from kompete.kernel.campaign import duration
    from kompete.ledger import campaign_store as store
    from kompete.ledger.report import table

    ks = store.kernels(ledger, camp["id"])
    counts = {s: sum(k["state"] == s for k in ks) for s in store.STATES}
    click.echo(f"campaign {camp['name']} ({camp['competition']}): "
               + ", ".join(f"{n} {s}" for s, n in counts.items()))
    frame = pd.DataFrame([{"variant": k["variant"], "state": k["state"], "kaggle": k["kaggle_status"],
                           "kernel": k["kernel_ref"] + (f" v{k['version']}" if k["version"] else ""),
                           "for": duration(k), "failure": k["failure"]} for k in ks])
    click.echo(table(frame))


@campaign.command("status")
@click.argument("name")
@click.option("--refresh/--no-refresh", default=True,
              help="Ask Kaggle once about each running kernel (and push into freed slots) before printing.")
@db_option
def status_cmd(name, refresh, db_path) -> None:
    """Queued / running / complete / error per kernel, with how long each has been so."""
    from kompete.kernel import campaign as camp_mod
    from kompete.ledger import campaign_store as store

    with _open(db_path) as ledger:
        camp = store.campaign(ledger, name)
        if refresh:
            camp_mod.poll_once(ledger, _client(), camp, notify=_echo)
        _print_status(ledger, camp)


@campaign.command("wait")
@click.argument("name")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0), default=12 * 3600,
              help="Give up (exit 3) after this many seconds; a rerun carries on.")
@click.option("--poll", "poll_s", type=click.FloatRange(min=0), default=60.0,
              help="First polling interval in seconds (at least 1); it grows x1.5 up to --max-poll.")
@click.option("--max-poll", "max_poll_s", type=click.FloatRange(min=1), default=600.0,
              help="Longest polling interval in seconds.")
@db_option
def wait_cmd(name, timeout_s, poll_s, max_poll_s, db_path) -> None:
    """Poll every kernel (one status call each per round) and push queued ones as slots free, until all end."""
    from kompete.kernel import campaign as camp_mod
    from kompete.ledger import campaign_store as store

    with _open(db_path) as ledger:
        store.campaign(ledger, name)  # an unknown name is said as such, before credentials are needed
        try:
            camp_mod.wait(ledger, _client(), name, timeout_s, poll_s, max_poll_s, notify=_echo)
        finally:
            _print_status(ledger, store.campaign(ledger, name))


@campaign.command("collect")
@click.argument("name")
@click.option("--score-from", type=click.Choice(["auto", "local", "kernel"]), default="auto",
              help="local: score here; kernel: the score the kernel computed (--score); auto: the kernel's if any.")
@click.option("--inception-weights", "weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Inception weights for local scoring (default: found offline, see `kompete score --help`).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The competition data, for the reference statistics (default: the config's).")
@click.option("--again", is_flag=True, help="Collect kernels already collected once more.")
@db_option
def collect_cmd(name, score_from, weights, data_dir, again, db_path) -> None:
    """Fetch, validate, score and record every finished kernel; failures become rows with their reason."""
    from kompete.kernel import campaign_results as results
    from kompete.ledger import campaign_store as store

    with _open(db_path) as ledger:
        store.campaign(ledger, name)  # an unknown name is said as such, before credentials are needed
        rows = results.collect(ledger, _client(), name, score_from, results.local_scorer(weights, data_dir), again)
        for k in rows:
            if k["collected"]:
                click.echo(f"{k['variant']}: {k['collected']}" + (f"  {k['collect_note']}" if k["collect_note"] else ""))
        _print_ranking(ledger, name)


def _print_ranking(ledger, name) -> list[dict]:
    import pandas as pd

    from kompete.kernel import campaign_results as results
    from kompete import memorization
    from kompete.ledger.report import table

    from kompete.kernel.campaign import describe_changes

    rows = results.ranked(ledger, name)
    known = [r["changes"] for r in rows if r["changes"] is not None]
    common = {k: v for k, v in (known[0] if known else {}).items() if all(c.get(k, object()) == v for c in known)}
    if common and len(known) > 1:  # said once, so the table shows what tells the variants apart
        click.echo(f"every variant: {describe_changes(common)}")
    else:
        common = {}

    def changed(r: dict) -> str:
        if r["changes"] is None:
            return "?"
        return describe_changes({k: v for k, v in r["changes"].items() if k not in common})

    frame = pd.DataFrame([{
        "variant": r["variant"], "changed": changed(r), "steps": None if r["steps"] is None else str(r["steps"]),
        "images/s": r["images_per_s"],
        "mifid": r["mifid"], "memorization": r["memorization"],
        "flag": memorization.mark(r["memorization"], r["eps"], r["metric"]),
        "best": f"{r['best'].get('mifid', '?')}@{r['best'].get('step', '?')}" if r["best"] else None,
        "status": results.status_word(r), "took": r["took"],
        "submitted": (f"{r['submission']['ref']}" + (f" ({r['submission']['public_score']:.4f})"
                                                       if r["submission"]["public_score"] is not None else ""))
        if r["submission"] else "no",
        "continues": r["continues"]} for r in rows])
    click.echo(table(frame))
    marked = [f"{r['variant']} ({r['memorization']:.4f} < eps {r['eps']:g})" for r in rows
              if memorization.memorizes(r["memorization"], r["eps"], r["metric"])]
    if marked:
        click.echo(memorization.table_warning(marked))
    return rows


@campaign.command("show")
@click.argument("name")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also draw MiFID per variant (and in-training curves, when logged) into this PNG.")
@db_option
def show_cmd(name, plot_path, db_path) -> None:
    """The variants ranked by local MiFID: what each changed, steps, images/s, memorization, status, submitted."""
    from kompete.kernel import campaign_results as results

    with _open(db_path) as ledger:
        rows = _print_ranking(ledger, name)
        if plot_path:
            from kompete.ledger.plot import plot_campaign

            from kompete.ledger import campaign_store

            plot_campaign(name, rows, {r["variant"]: results.curves(r) for r in rows}, plot_path,
                          competition=campaign_store.campaign(ledger, name)["competition"])
            click.echo(f"wrote {plot_path}")


@campaign.command("submit")
@click.argument("name")
@click.option("--best", is_flag=True, help="Submit the best variant not yet submitted (the only choice for now).")
@click.option("--wait", is_flag=True, help="Poll until scored; the public score lands beside the local one.")
@click.option("--timeout", "timeout_s", type=float, default=3600, help="Give up waiting after this many seconds.")
@click.option("--poll", "poll_s", type=click.FloatRange(min=0), default=30.0, help="Polling interval in seconds.")
@click.option("--eps-margin", "margin", type=click.FloatRange(min=1.0), default=1.1,
              help="Submit only when the memorization distance is at least this times metric.eps.")
@click.option("-m", "--message", default=None, help="Submission description.")
@db_option
def submit_cmd(name, best, wait, timeout_s, poll_s, margin, message, db_path) -> None:
    """Submit the best-ranked variant that is unsubmitted and clearly not memorizing, after the quota check."""
    from kompete.kernel import campaign_results as results

    from kompete.ledger import campaign_store as store

    if not best:
        raise KompeteError("campaign submit needs --best")
    with _open(db_path) as ledger:
        store.campaign(ledger, name)  # an unknown name is said as such, before credentials are needed
        chosen, result, passed = results.submit_best(ledger, _client(), name, wait, timeout_s, poll_s, margin, message)
        for why in passed:
            click.echo(f"passed over {why}")
        click.echo(f"submitted {chosen['variant']} ({chosen['kernel_ref']} v{chosen['version']}, local MiFID "
                   f"{chosen['mifid']:.4f}): submission {result.ref}")
        if result.submission is not None:
            click.echo(f"public score {result.submission.public_score or '(none)'} ({result.submission.status}) "
                       f"beside local {chosen['mifid']:.4f}")


@campaign.command("continue")
@click.argument("name")
@click.argument("variant")
@set_option
@db_option
def continue_cmd(name, variant, overrides, db_path) -> None:
    """Build and queue the next kernel of VARIANT's chain, resuming from its kernel output."""
    from kompete.kernel import campaign as camp_mod
    from kompete.ledger import campaign_store as store

    with _open(db_path) as ledger:
        k = camp_mod.continue_variant(ledger, _client, name, variant, list(overrides), notify=_echo)
        click.echo(f"{k['variant']} continues {variant}: {k['kernel_ref']} ({k['state']})")
        _print_status(ledger, store.campaign(ledger, name))
