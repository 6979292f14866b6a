"""`kompete kernel build|push|status|output|submit|sweep|doctor`: Kaggle kernels end to end."""

from __future__ import annotations

from pathlib import Path

import click

from kompete.cli.main import config_for, main, set_option
from kompete.cli.ledger_commands import db_option, record_option, record_quietly
from kompete.errors import KaggleError, KompeteError

sweep_option = click.option("--sweep", "sweeps", multiple=True, metavar="KEY=V1,V2",
                            help="One kernel per combination, e.g. --sweep loss=hinge,ralsgan "
                                 "(a key without a dot is a train key; repeatable).")
owner_option = click.option("--owner", default=None, metavar="USER",
                            help="Kaggle user owning the kernel (default: KAGGLE_USERNAME or kaggle.json).")
out_option = click.option("--out", "out_root", type=click.Path(file_okay=False, path_type=Path),
                          default=Path("kernels"), help="Folder receiving kernels/<competition>[-<variant>]/.")
version_option = click.option("--version", "version", type=click.IntRange(min=1), default=None,
                              help="Kernel version (default: the last one pushed from this machine, else latest).")


@main.group()
def kernel() -> None:
    """Build, push and watch Kaggle kernels; fetch their output; submit them.

    \b
    kompete kernel build generative-dog-images --owner alice
    kompete kernel push kernels/generative-dog-images
    kompete kernel status alice/kompete-generative-dog-images --wait
    kompete kernel output alice/kompete-generative-dog-images --to out --only images.zip
    kompete kernel submit generative-dog-images --kernel alice/kompete-generative-dog-images --wait
    kompete kernel sweep generative-dog-images --sweep loss=hinge,ralsgan --push
    kompete kernel doctor generative-dog-images
    """


def _owner(owner: str | None, cfg=None) -> str:
    from kompete.kernel.bundle import default_owner

    owner = owner or (cfg.kernel.owner if cfg is not None else "") or default_owner()
    if not owner:
        raise KaggleError("no kernel owner", hint="pass --owner USER (make kernel OWNER=USER), set KAGGLE_USERNAME, or put kaggle.json in ~/.kaggle")
    return owner


def _build_all(competition, overrides, sweeps, owner, out_root, score, resume_from, variant=None):
    from kompete.kernel.bundle import build_bundle, sweep_variants

    variants = sweep_variants(competition, overrides, sweeps)  # every config is checked before writing
    bundles = [build_bundle(cfg, _owner(owner, cfg), name or variant, out_root,
                            cfg.kernel.score if score is None else score, resume_from) for name, cfg in variants]
    for b in bundles:
        click.echo(f"built {b.folder}  id {b.kernel_id}  script {b.script_bytes / 1e3:.1f} kB "
                   f"(kompete source {b.package_bytes / 1e3:.1f} kB packed)  config {b.config_hash}  "
                   f"in {b.build_seconds * 1e3:.0f} ms")
    return bundles


@kernel.command("build")
@click.argument("competition")
@set_option
@sweep_option
@owner_option
@out_option
@click.option("--name", "variant", default=None, help="Variant name appended to the kernel slug.")
@click.option("--score/--no-score", default=None,
              help="Also score the zip in the kernel (needs weights attached; default: kernel.score).")
@click.option("--resume-from", default=None, metavar="OWNER/SLUG[/VERSION]",
              help="Attach an earlier kernel's output (checkpoints arrive under /kaggle/input/<slug>).")
def build(competition, overrides, sweeps, owner, out_root, variant, score, resume_from) -> None:
    """Write kernels/<COMPETITION>[-<variant>]/ with kernel-metadata.json and one self-contained script."""
    _build_all(competition, overrides, sweeps, owner, out_root, score, resume_from, variant)


def _client():
    from kompete.kernel.client import KaggleClient

    return KaggleClient()


@kernel.command("push")
@click.argument("folders", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--timeout", "timeout_s", type=click.IntRange(1, 12 * 3600), default=None,
              help="Kernel session timeout in seconds (Kaggle's maximum is 12 h).")
def push(folders, timeout_s) -> None:
    """Push one or more built kernel folders to Kaggle (each starts running)."""
    from kompete.kernel import remote

    client = _client()
    if len(folders) == 1:
        result = remote.push(client, folders[0], timeout_s)
        click.echo(f"pushed {result.ref} version {result.version}: {result.url}")
        return
    _report_pushes(remote.push_many(client, list(folders), timeout_s))


def _report_pushes(outcomes) -> None:
    for o in outcomes:
        if o.result is not None:
            click.echo(f"pushed {o.result.ref} version {o.result.version}: {o.result.url}")
        else:
            click.echo(f"FAILED {o.folder}: {o.error}")
    failed = [o for o in outcomes if o.result is None]
    if failed:
        raise KaggleError(f"{len(failed)} of {len(outcomes)} pushes failed (see above)")


def _version_for(ref: str, version: int | None) -> int | None:
    """The version pushed last from this machine, so status and output follow the run we started."""
    if version is not None:
        return version
    from kompete.kernel.remote import last_push

    for record_dir in Path("kernels").glob("*"):
        rec = last_push(record_dir)
        if rec and rec.get("ref") == ref:
            return rec.get("version")
    return None


@kernel.command("status")
@click.argument("ref", metavar="OWNER/SLUG")
@version_option
@click.option("--wait", is_flag=True, help="Poll (with backoff) until the run finishes.")
@click.option("--timeout", "timeout_s", type=float, default=12 * 3600, help="Give up waiting after this many seconds.")
@click.option("--poll", "poll_s", type=click.FloatRange(min=0), default=60.0,
              help="First polling interval in seconds; it grows x1.5 up to 10 minutes.")
def status(ref, version, wait, timeout_s, poll_s) -> None:
    """Print a kernel's status; exit 0 when complete, non-zero on error or cancel."""
    from kompete.kernel import remote

    client = _client()
    version = _version_for(ref, version)
    label = f"{ref} v{version}" if version else ref
    if wait:
        st = remote.watch(client, ref, version, timeout_s, poll_s,
                          on_status=lambda s: click.echo(f"{label}: {s.status}"))
    else:
        st = client.status(ref, version)
        click.echo(f"{label}: {st.status}")
    if st.status in ("COMPLETE",):
        return
    if st.done or st.status == "CANCEL_REQUESTED":
        tail = remote.log_tail(client, ref, version)
        if tail:
            click.echo("--- log tail ---\n" + tail)
        raise KaggleError(f"{label} ended with {st.status}" + (f": {st.failure_message}" if st.failure_message else ""))
    if wait:
        return
    click.get_current_context().exit(3)  # still running: a distinct code for scripts


@kernel.command("output")
@click.argument("ref", metavar="OWNER/SLUG")
@click.option("--to", "dest", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder receiving the files.")
@click.option("--only", default=None, metavar="NAME[,NAME]", help="Download only these files, e.g. images.zip.")
@version_option
def output(ref, dest, only, version) -> None:
    """Download a kernel's output files (names that would escape --to are refused)."""
    from kompete.kernel import remote

    names = [n.strip() for n in only.split(",") if n.strip()] if only else None
    written = remote.fetch_output(_client(), ref, dest, names, _version_for(ref, version))
    for path in written:
        click.echo(f"{path}  {path.stat().st_size} bytes")


@kernel.command("submit")
@click.argument("competition")
@click.option("--kernel", "ref", required=True, metavar="OWNER/SLUG", help="The kernel whose output is submitted.")
@version_option
@click.option("-m", "--message", default=None, help="Submission description (default: kompete <kernel> v<N>).")
@click.option("--wait", is_flag=True, help="Poll until scored and print the public score.")
@click.option("--timeout", "timeout_s", type=float, default=3600, help="Give up waiting after this many seconds.")
@click.option("--poll", "poll_s", type=click.FloatRange(min=0), default=30.0, help="Polling interval in seconds.")
@click.option("--zip", "zip_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The kernel's images.zip fetched locally: validate it before submitting.")
@set_option
@record_option
@db_option
def submit(competition, ref, version, message, wait, timeout_s, poll_s, zip_path, overrides, record, db_path) -> None:
    """Submit a kernel's output to COMPETITION, after checking today's submission limit."""
    from kompete.kernel import remote
    from kompete.ledger.record import record_submit

    cfg = config_for(competition, overrides)
    remote.refuse_sample(cfg)  # before the client authenticates or calls anything
    version = _version_for(ref, version)
    message = message or f"kompete {ref}" + (f" v{version}" if version else "")

    def remember(sub_ref: int) -> None:  # recorded before --wait can time out and lose the number
        if record:
            record_quietly(record_submit, cfg.name, sub_ref, db_path=db_path, kernel_ref=ref,
                           kernel_version=version, description=message, file_name=cfg.output.archive)

    result = remote.submit(_client(), cfg, ref, version, message, wait, timeout_s, poll_s, zip_path,
                           on_submitted=remember)
    click.echo(f"submitted {ref}" + (f" v{version}" if version else "") + f" to {cfg.name}: submission {result.ref}")
    if result.submission is not None:
        click.echo(f"public score {result.submission.public_score or '(none)'} ({result.submission.status})")


@kernel.command("sweep")
@click.argument("competition")
@set_option
@sweep_option
@owner_option
@out_option
@click.option("--score/--no-score", default=None, help="Also score the zip in each kernel (default: kernel.score).")
@click.option("--push/--no-push", "do_push", default=False, help="Push every kernel after building.")
def sweep(competition, overrides, sweeps, owner, out_root, score, do_push) -> None:
    """Build (and push) one kernel per combination of --sweep values; Kaggle runs them in parallel."""
    if not sweeps:
        raise KompeteError("a sweep needs at least one --sweep KEY=V1,V2")
    bundles = _build_all(competition, overrides, sweeps, owner, out_root, score, None)
    if do_push:
        from kompete.kernel import remote

        _report_pushes(remote.push_many(_client(), [b.folder for b in bundles]))


@kernel.command("doctor")
@click.argument("competition", required=False)
@click.option("--offline", is_flag=True, help="Skip the checks that call Kaggle.")
def doctor(competition, offline) -> None:
    """Check credentials (without printing them), client versions, GPU quota, competition access, data."""
    from kompete.kernel.doctor import run_checks

    checks = run_checks(competition, online=not offline)
    for c in checks:
        click.echo(f"{'ok ' if c.ok else 'BAD'}  {c.name:<28} {c.detail}")
    bad = [c for c in checks if not c.ok]
    if bad:
        raise KompeteError(f"{len(bad)} check(s) failed: {', '.join(c.name for c in bad)}")


# The short spellings: `kompete submit COMP --kernel OWNER/SLUG` and `kompete doctor [COMP]`.
main.add_command(submit, "submit")
main.add_command(doctor, "doctor")


@main.group()
def assets() -> None:
    """A private Kaggle dataset holding what kernels need offline (Inception weights, extra files).

    \b
    kompete assets push                       # the Inception weights kompete finds locally
    kompete assets push --file wheels/x.whl --slug kompete-assets
    """


@assets.command("push")
@click.option("--owner", default=None, metavar="USER",
              help="Kaggle user owning the dataset (default: KAGGLE_USERNAME or kaggle.json).")
@click.option("--slug", default=None, help="Dataset slug (default: kompete-assets).")
@click.option("--file", "files", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Extra file to include (repeatable).")
@click.option("--no-weights", is_flag=True, help="Do not include the Inception weights.")
@click.option("--stage", "stage_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("kernels/.assets"), help="Folder where the dataset is assembled before upload.")
@click.option("-m", "--message", default="kompete assets", help="Version notes.")
def assets_push(owner, slug, files, no_weights, stage_dir, message) -> None:
    """Create or version the private assets dataset, through the kaggle client."""
    from kompete.kernel import assets as assets_mod

    chosen = list(files)
    if not no_weights:
        weights = assets_mod.find_inception_weights()
        if weights is not None:
            chosen.append(weights)
            click.echo(f"including Inception weights {weights}")
    owner = _owner(owner)
    folder = assets_mod.stage(stage_dir, owner, slug or assets_mod.DEFAULT_SLUG, chosen)
    ref, url, created = _client().push_dataset(folder, message)
    click.echo(f"{'created' if created else 'new version of'} dataset {ref}: {url}")
    click.echo(f"attach it with --set 'kernel.dataset_sources=[{ref}]'")
