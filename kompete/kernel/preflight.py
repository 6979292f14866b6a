"""What a kernel checks before it trains, run by the kernel script in a child process.

`python -m kompete.kernel.preflight CONFIG --stages train,generate,validate,score [--resume-hint PATH]
[--config-hash H]` prints one JSON object as its last line: problems (the run cannot succeed), warnings,
notes (what was found, e.g. the data layout), the GPUs torch sees, and the previous run to resume from.
A child process, so that neither torch's CUDA context nor an import failure stays in the kernel script.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kompete import paths
from kompete.config import Config, config_hash, load_config
from kompete.errors import KompeteError

# modules each stage imports, Kaggle's preinstalled packages first: a missing one is named before hours of training
STAGE_IMPORTS = {
    "train": ["torch", "torchvision", "numpy", "PIL", "yaml", "click", "kompete.train.run", "kompete.data"],
    "generate": ["torch", "numpy", "PIL", "kompete.generate", "kompete.archive"],
    "validate": ["PIL", "kompete.archive"],
    "score": ["torch", "torchvision", "scipy", "kompete.metrics.score", "kompete.metrics.inception"],
}
RUN_MARKER = re.compile(r"step-(\d+)\.pt$")
SEARCH_DEPTH = 4  # /kaggle/input/<source>/[kaggle/working/]run/checkpoints


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    gpus: list[str] = field(default_factory=list)
    resume: str | None = None

    def to_dict(self) -> dict:
        return {"problems": self.problems, "warnings": self.warnings, "notes": self.notes, "gpus": self.gpus,
                "resume": self.resume}


def check_imports(stages: list[str], report: Report) -> None:
    for stage in stages:
        for module in STAGE_IMPORTS.get(stage, []):
            try:
                importlib.import_module(module)
            except Exception as exc:  # an import can fail in many ways; each is a problem to report, not a crash
                report.problems.append(f"{stage} needs {module}, which does not import: "
                                       f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def check_data(cfg: Config, report: Report) -> Path | None:
    from kompete import data
    from kompete.data import locate

    if cfg.data.sample is not None:
        report.notes.append(f"data: {cfg.name} is a procedural sample, made on first use")
        return None
    try:
        root = data.resolve_data_dir(cfg)
        found = locate.require(cfg, root)
    except KompeteError as exc:
        report.problems.append(f"competition data missing: {exc.message} (attach the {cfg.name} competition "
                               "with Add Input > Competitions)")
        return None
    report.notes.append("data: " + found.describe())
    return root


def check_counts(cfg: Config, root: Path | None, report: Report) -> None:
    """What the data's size makes impossible, found now rather than after hours of training."""
    g, out = cfg.generate, cfg.output
    if not out.n_min <= g.n_images <= out.n_max:
        report.problems.append(f"generate.n_images={g.n_images} is outside what Kaggle accepts "
                               f"({out.n_min}-{out.n_max} images)")
    if cfg.task == "translate":
        from kompete import data
        from kompete.data import locate
        from kompete.data.images import list_images

        try:
            folder = locate.folder(cfg, root if root is not None else data.resolve_data_dir(cfg), "source")
            n_photos = len(list_images(folder)[0]) if folder.is_dir() else 0
        except KompeteError:
            return  # check_data said why
        if g.n_images > 2 * n_photos:
            report.problems.append(f"generate.n_images={g.n_images} needs {(g.n_images + 1) // 2} photos (at most two "
                                   f"translations each, the photo and its mirror image), but {folder} has {n_photos}")


def check_scoring(cfg: Config, root: Path | None, report: Report) -> None:
    from kompete.metrics.weights import find_weights

    try:
        source = find_weights(None, download=False)
    except KompeteError as exc:
        report.problems.append("scoring needs the FID Inception weights, and none are attached: "
                               f"{exc.message.split(';')[0]} (attach the dataset `kompete assets push` made, "
                               "or rebuild without --score)")
        return
    report.notes.append(f"score: Inception weights {source.path} ({source.found_via})")
    try:
        from kompete import data

        n = len(data.reference_files(cfg, root))
        report.notes.append(f"score: {n} reference images")
    except KompeteError as exc:
        report.problems.append(f"scoring needs the reference images: {exc.message}")


KERNEL_MIN_S = 90.0  # below this no kernel can load, train a little, generate and validate


def check_budget(cfg: Config, train_args: str, report: Report) -> None:
    """An impossible budget is found in seconds, not after minutes of loading: the `--time-budget` the
    training gets (KOMPETE_TRAIN_ARGS), else the runtime limit left since the kernel's start."""
    import shlex

    from kompete.train.budget import make_budget, parse_duration

    try:
        words = shlex.split(train_args)
        given = next((w.split("=", 1)[1] if "=" in w else words[i + 1] for i, w in enumerate(words)
                      if w.split("=", 1)[0] == "--time-budget"), None)
        budget = make_budget(cfg, parse_duration(given) if given is not None else None)
    except (KompeteError, ValueError, IndexError) as exc:
        report.problems.append(f"time budget: {exc.render() if isinstance(exc, KompeteError) else exc}")
        return
    left = budget.left()
    need = KERNEL_MIN_S + min(cfg.train.safety_margin_s, 0.1 * budget.total)
    if left < need:
        report.problems.append(f"time budget: {left:.0f} s left, and a kernel needs at least {need:.0f} s to load, "
                               "train, generate and validate (limits.runtime_hours, or --time-budget in "
                               "KOMPETE_TRAIN_ARGS)")
    else:
        report.notes.append(f"time: {left:.0f} s of the budget left")


def gpu_names() -> list[str]:
    try:
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # no torch or a broken driver: the script reports "no GPU"
        return []


# --------------------------------------------------------------------------- resume


@dataclass(frozen=True)
class Candidate:
    run_dir: Path
    step: int
    name: str | None  # competition in the run's config.yaml
    config_hash: str | None  # from the kernel's kompete-run.json beside the run, when there is one


def _candidate(run_dir: Path) -> Candidate | None:
    steps = [int(m.group(1)) for p in (run_dir / "checkpoints").iterdir() if (m := RUN_MARKER.search(p.name))]
    if not steps:
        return None
    name = hash_ = None
    try:
        name = (yaml.safe_load((run_dir / "config.yaml").read_text()) or {}).get("name")
    except (OSError, yaml.YAMLError, AttributeError):
        pass
    for record in (run_dir.parent / "kompete-run.json", run_dir / "kompete-run.json"):
        try:
            hash_ = json.loads(record.read_text()).get("config_hash")
            break
        except (OSError, ValueError, AttributeError):
            continue
    return Candidate(run_dir, max(steps), name, hash_)


def previous_runs(inputs: Path, depth: int = SEARCH_DEPTH) -> list[Candidate]:
    """Every folder under `inputs` holding checkpoints/step-*.pt (a kompete run), at most `depth` levels down."""
    found = []
    inputs = Path(inputs)
    for here, dirs, _ in os.walk(inputs):
        level = len(Path(here).relative_to(inputs).parts)
        if "checkpoints" in dirs:
            cand = _candidate(Path(here))
            if cand is not None:
                found.append(cand)
        dirs[:] = [] if level >= depth else sorted(d for d in dirs if d != "checkpoints")
    return found


def choose_run(candidates: list[Candidate], name: str, wanted_hash: str, hint: Path | None
               ) -> tuple[Candidate | None, str]:
    """The run to continue and why: same competition required; same config hash, then the expected
    place (/kaggle/input/<slug>/run), then the most trained."""
    same = [c for c in candidates if c.name in (None, name)]
    if not same:
        others = ", ".join(f"{c.run_dir} ({c.name})" for c in candidates) or "none"
        return None, f"no earlier {name} run under the inputs (runs found: {others})"

    def rank(c: Candidate) -> tuple:
        return (c.config_hash == wanted_hash, hint is not None and c.run_dir == hint, c.step)

    best = max(same, key=rank)
    why = [f"step {best.step}"]
    if best.config_hash == wanted_hash:
        why.insert(0, f"same config hash {wanted_hash}")
    elif best.config_hash:
        why.insert(0, f"config hash {best.config_hash} differs from {wanted_hash}: the trainer checks it fits")
    if hint is not None and best.run_dir != hint:
        why.append(f"not at the expected {hint}")
    if len(same) > 1:
        why.append(f"{len(same)} runs found")
    return best, ", ".join(why)


def find_resume(cfg: Config, wanted_hash: str, hint: str | None, report: Report) -> None:
    cand, why = choose_run(previous_runs(paths.kaggle_input()), cfg.name, wanted_hash,
                           Path(hint) if hint else None)
    if cand is None:
        report.warnings.append(f"RESUME FAILED, TRAINING FROM SCRATCH: {why}. Attach the previous version's "
                               "output (Add Input > Your Work) to continue it")
        return
    report.resume = str(cand.run_dir)
    report.notes.append(f"resume: {cand.run_dir} ({why})")


def run(cfg: Config, stages: list[str], wanted_hash: str | None = None, resume_hint: str | None = None,
        resume: bool = False, train_args: str = "") -> Report:
    report = Report()
    if "train" in stages:
        check_budget(cfg, train_args, report)
    check_imports(stages, report)
    root = check_data(cfg, report)
    check_counts(cfg, root, report)
    if "score" in stages:
        check_scoring(cfg, root, report)
    if resume:
        find_resume(cfg, wanted_hash or config_hash(cfg), resume_hint, report)
    report.gpus = gpu_names()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kompete.kernel.preflight")
    parser.add_argument("config")
    parser.add_argument("--stages", default="train,generate,validate")
    parser.add_argument("--config-hash", default=None)
    parser.add_argument("--resume", action="store_true", help="look for a previous run under /kaggle/input")
    parser.add_argument("--resume-hint", default=None, help="where the previous run is expected")
    parser.add_argument("--train-args", default="", help="KOMPETE_TRAIN_ARGS: extra arguments of the train stage")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
        report = run(cfg, [s for s in args.stages.split(",") if s], args.config_hash, args.resume_hint, args.resume,
                     args.train_args)
    except KompeteError as exc:
        report = Report(problems=[exc.render()])
    print(json.dumps(report.to_dict()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
