"""`kompete train COMP` and `kompete generate RUN_DIR|COMP`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from kompete.cli.ledger_commands import db_option, record_option
from kompete.cli.main import config_for, data_dir_option, main, set_option
from kompete.paths import on_kaggle


def default_run_dir(name: str) -> Path:
    from kompete import paths

    return paths.default_runs_dir() / name


@main.command("train")
@click.argument("competition")
@data_dir_option
@click.option("--out", "run_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run folder for checkpoints, metrics and samples (default: runs/<competition>; with --resume, "
                   "the resumed run's folder).")
@click.option("--time-budget", default=None, metavar="DURATION",
              help="Whole run (training + generation) e.g. 8h30m, 90m, 60s; default: the competition's "
                   "runtime limit counted from the kernel start (KOMPETE_KERNEL_START).")
@click.option("--resume", "resume", type=click.Path(path_type=Path), default=None,
              help="Continue from the newest checkpoint in this run folder (or a previous kernel's output).")
@click.option("--from", "resume_from", type=click.Choice(["last", "best"]), default="last",
              help="With --resume: continue from the newest checkpoint, or from best.pt (best-restart: the "
                   "lowest in-training MiFID, optimiser, EMA and RNG state included).")
@click.option("--fresh", is_flag=True, help="Start over: once every input is checked, move the run folder's "
                                           "checkpoints, metrics and zip into <run folder>/aside/<time>/.")
@click.option("--max-steps", type=click.IntRange(min=0), default=None,
              help="Stop after this many steps (smoke tests; 0: build, checkpoint and stop).")
@click.option("--generate", "then_generate", is_flag=True,
              help="Write the submission zip after training (its time is reserved from the budget).")
@click.option("--reserve-generation", is_flag=True, hidden=True,
              help="Reserve generation time for a later `kompete generate` (the kernel's next stage).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: the best available).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@set_option
@record_option
@db_option
def train(competition: str, data_dir: str | None, run_dir: Path | None, time_budget: str | None,
          resume: Path | None, resume_from: str, fresh: bool, max_steps: int | None, then_generate: bool,
          reserve_generation: bool, device: str | None, quiet: bool, overrides: tuple[str, ...], record: bool,
          db_path: Path | None) -> None:
    """Train COMPETITION's model until the time budget, counted from the command's start (loading included).
    With --generate, time for the submission zip is kept and the zip written.

    \b
    kompete train sample-dogs --time-budget 60s
    kompete train sample-dogs --time-budget 5m --generate       # runs/sample-dogs/images.zip too
    kompete train sample-dogs --set eval.every_minutes=0.5      # in-training MiFID, best.pt, mifid.png
    kompete train sample-dogs --resume runs/sample-dogs --from best   # best-restart
    kompete train generative-dog-images --set train.model=sngan_cond --set train.loss=hinge
    torchrun --nproc_per_node 2 -m kompete train generative-dog-images      # two GPUs (DDP)
    """
    from kompete.train.budget import parse_duration
    from kompete.train.rundir import check_fresh_resume

    check_fresh_resume(fresh, resume)
    cfg = config_for(competition, overrides)
    if resume_from == "best":
        from kompete.errors import ConfigError
        from kompete.train import state as ckpt

        if resume is None:
            raise ConfigError("--from best needs --resume RUN (the run whose best.pt to continue)")
        resume = ckpt.choose_checkpoint(resume, "best")
    budget_s = parse_duration(time_budget) if time_budget is not None else None  # "" is a mistake
    from kompete.pipeline import TrainRequest, train as train_competition
    from kompete.train.budget import process_started

    if run_dir is None:  # a resumed run goes on in its own folder, not in runs/<competition>
        from kompete.train.state import resume_run_folder

        run_dir = resume_run_folder(resume, resume_from) if resume is not None else default_run_dir(cfg.name)
    result = train_competition(TrainRequest(
        cfg, run_dir, budget_s, started=process_started(), data_dir=data_dir,
        resume=resume, fresh=fresh, max_steps=max_steps, device=device, progress=not quiet,
        generate=then_generate, reserve_generation=reserve_generation, record=record, db_path=db_path))
    if result is None:  # not the main DDP rank
        return
    if result.reason == "signal":
        click.echo(f"stopped by {result.signal_name}; {resume_hint(competition, cfg.name, result.run_dir, data_dir, overrides)}",
                   err=True)
        sys.exit(128 + (15 if result.signal_name == "SIGTERM" else 2))


def resume_hint(competition: str, name: str, run_dir: Path, data_dir: str | None, overrides: tuple[str, ...]) -> str:
    """What a user does next: locally, the command; inside a kernel (whose folders vanish), the next part."""
    import os

    if on_kaggle() or os.environ.get("KOMPETE_KERNEL_ID"):
        kernel = os.environ.get("KOMPETE_KERNEL_ID", "OWNER/SLUG")
        return (f"the kernel generates from the checkpoint; to train on, build the next part from this version's "
                f"output: `kompete campaign continue` or `kompete kernel build {name} --resume-from "
                f"{kernel}/VERSION` with a new --variant, then push it")
    return f"resume with `{resume_command(competition, run_dir, data_dir, overrides)}`"


def resume_command(competition: str, run_dir: Path, data_dir: str | None, overrides: tuple[str, ...]) -> str:
    """The command that continues this run: same folder (--out: a folder with checkpoints is continued),
    same data and overrides."""
    import shlex

    words = ["kompete", "train", competition, "--out", str(run_dir)]
    if data_dir:
        words += ["--data-dir", data_dir]
    for item in overrides:
        words += ["--set", item]
    return shlex.join(words)


@main.command("generate")
@click.argument("target")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Zip to write (default: <run folder>/<output.archive>, e.g. images.zip).")
@click.option("--n", "n", type=int, default=None, help="Images to write (default: generate.n_images).")
@click.option("--truncation", type=float, default=None, help="Noise truncation threshold (0 = off).")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=None, help="Noise seed (default: generate.seed).")
@click.option("--device", default=None, help="cpu, cuda ... (default: the best available).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--checkpoint", "which", default="auto", metavar="best|last|PATH",
              help="Which checkpoint: best (lowest in-training MiFID), last, or a file; auto: the best when "
                   "the run kept one, else the last.")
@click.option("--fit-runtime", is_flag=True, hidden=True,
              help="Fewer images (never under output.n_min) when the runtime limit left is short (the kernel).")
@data_dir_option
def generate(target: str, out: Path | None, n: int | None, truncation: float | None, seed: int | None,
             device: str | None, quiet: bool, which: str, fit_runtime: bool, data_dir: str | None) -> None:
    """Write the submission zip from TARGET: a run folder, a checkpoint file, or a competition name
    (its default run folder runs/<name>).

    \b
    kompete generate runs/sample-dogs --out images.zip
    kompete generate sample-dogs --n 10000 --seed 1
    kompete generate runs/gan-getting-started --data-dir data/gan-getting-started   # translate the photos
    kompete generate runs/sample-dogs --checkpoint last
    """
    from kompete.errors import ConfigError
    from kompete.generate import generate_zip
    from kompete.train import state as ckpt

    where = Path(target)
    if not where.exists():
        if "/" in target or target.endswith(".pt"):
            raise ConfigError(f"{target} does not exist")
        where = default_run_dir(config_for(target).name)
    if n is not None and n < 1:
        raise ConfigError("--n must be at least 1")
    if truncation is not None and truncation < 0:
        raise ConfigError("--truncation must be >= 0")
    if which not in ("auto", "best", "last"):
        if not Path(which).is_file():
            raise ConfigError(f"--checkpoint {which}: expected best, last or a checkpoint file")
        where, which = Path(which), "last"
    start = time.perf_counter()
    path = generate_zip(where, out, n=n, seed=seed, truncation=truncation, device=device, progress=not quiet,
                        data_dir=data_dir, which=which, fit_runtime=fit_runtime,
                        on_checkpoint=lambda p: click.echo(f"from {ckpt.describe_checkpoint(p)}"))
    click.echo(f"wrote {path} in {time.perf_counter() - start:.1f} s")
