"""A recipe tournament: every recipe trains for the same wall-clock budget on the same data, then is scored.

Recipes are named lists of `--set` overrides (bench/recipes/<dogs|monet>.yaml) applied on top of the base
competition's train (and cyclegan) section - its default - and then the profile's sizes (cpu: small, minutes;
gpu: the real sizes). Each recipe x seed: `train_run` for `budget_s` (checkpoints at `curve_points` times in
between), then for each checkpoint `write_zip` of `n_images` and `score_path` with the real FID Inception
against the one cached reference. Output in --out: results.md (table: mean and spread over seeds; FID against
minutes and steps), results.json, curves.png (FID vs minutes and vs steps), samples.png (one grid per recipe).

    python bench/recipes.py sample-dogs [--profile cpu|gpu] [--budget 45] [--seeds 0,1] [--only kompete,...]
    python bench/recipes.py sample-monet
    python bench/recipes.py my.yaml --recipes bench/recipes/dogs.yaml --data-dir DIR

Under `make bench` (no arguments) it runs one tiny recipe per competition only, to prove the path works.
FIDs from a few hundred images are biased upward; they compare recipes with each other, not with Kaggle.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kompete.config import load_config  # noqa: E402
from kompete.errors import ConfigError, KompeteError  # noqa: E402
from kompete.generate import GenerateOptions, load_run, write_zip  # noqa: E402
from kompete.metrics.score import score_path  # noqa: E402
from kompete.train import state as ckpt  # noqa: E402
from kompete.train.monitor import read_metrics  # noqa: E402
from kompete.pipeline import TrainRequest, train  # noqa: E402

HERE = Path(__file__).resolve().parent
RECIPE_FILES = {"sample-dogs": "dogs.yaml", "generative-dog-images": "dogs.yaml",
                "sample-monet": "monet.yaml", "gan-getting-started": "monet.yaml"}


@dataclass
class Recipe:
    name: str
    overrides: list[str]
    optional: list[str] = field(default_factory=list)
    note: str = ""


@dataclass
class Point:
    step: int
    minutes: float
    fid: float
    distance: float
    mifid: float


@dataclass
class RunResult:
    recipe: str
    seed: int
    steps: int
    images_per_s: float
    seconds: float
    points: list[Point]
    grid: str = ""
    error: str = ""


def parse_recipes(raw: dict) -> list[Recipe]:
    out = []
    for name, spec in (raw.get("recipes") or {}).items():
        if isinstance(spec, dict):
            out.append(Recipe(name, list(spec.get("set") or []), list(spec.get("optional") or []),
                              str(spec.get("note") or "")))
        else:
            out.append(Recipe(name, list(spec or [])))
    return out


def base_overrides(base: str | None) -> list[str]:
    """The base competition's recipe (its train keys and its algorithm's section) as --set items, so that a
    recipe's "default" is the real competition's default, trained on another data set."""
    if not base:
        return []
    loaded = load_config(base)
    cfg = loaded.to_dict()
    items = []
    for section in ("train", loaded.spec.name):  # the loop's keys and the algorithm's own section
        for key, value in (cfg.get(section) or {}).items():
            items.append(f"{section}.{key}={json.dumps(value)}")
    return items


def resolve(comp: str, recipe: Recipe, common: list[str]) -> tuple[list[str] | None, list[str]]:
    """The full override list, or None when the config rejects the recipe; plus notes to print."""
    notes = [recipe.note] if recipe.note else []
    from kompete.algorithms.base import task_class

    kept_common: list[str] = []
    for item in common:
        if _fits(comp, [*kept_common, item], recipe.overrides, notes):
            kept_common.append(item)
    common = kept_common
    try:
        task_class(load_config(comp, common + recipe.overrides))  # registry names (losses, models) too
    except ConfigError as exc:
        return None, [f"skipped (the config rejects it): {str(exc).split(': ', 1)[-1][:110]}"]
    kept = []
    for item in recipe.optional:
        try:
            load_config(comp, common + recipe.overrides + kept + [item])
            kept.append(item)
        except ConfigError as exc:
            notes.append(f"dropped {item} (the config rejects it: {str(exc)[:70]})")
    return common + recipe.overrides + kept, notes


def _fits(comp: str, common: list[str], overrides: list[str], notes: list[str]) -> bool:
    """False (with a note) when common's last key belongs to a network the recipe does not train
    (gan.self_attention is sngan's: a dcgan recipe drops it)."""
    try:
        load_config(comp, [*common, *overrides])
    except ConfigError as exc:
        if "is an option of" in str(exc):
            notes.append(f"dropped {common[-1]} ({str(exc).split(': ', 1)[-1][:70]})")
            return False
    return True


def elapsed_at(run_dir: Path, step: int) -> float:
    """Training seconds at `step`, interpolated from metrics.csv (rows every log_every steps)."""
    m = read_metrics(run_dir / "metrics.csv")
    if not m or step == 0:
        return 0.0
    return float(np.interp(step, np.r_[0, m["step"]], np.r_[0, m["elapsed_s"]]))


def score_checkpoint(path: Path, n: int, data_dir: str | None, device: str | None) -> tuple[int, object]:
    cfg, task, _ = load_run(path, device)
    step = int(ckpt.load_checkpoint(path).get("step", 0))
    with tempfile.TemporaryDirectory() as tmp:
        zip_path = write_zip(task, cfg, Path(tmp) / cfg.output.archive,
                             GenerateOptions(n=n, seed=cfg.generate.seed, truncation=cfg.generate.truncation,
                                             batch_size=min(cfg.generate.batch_size, n), progress=False,
                                             data_dir=data_dir))
        res = score_path(cfg, zip_path, data_dir=data_dir, device=device)
    return step, res


def warm_data(comp: str, common: list[str], data_dir: str | None) -> None:
    """Load (and for a sample, generate and cache) the training data once before any clock starts: the budget
    starts before train_run loads its data, and the first recipe must not pay for building the cache."""
    from kompete.algorithms.base import task_class

    cfg = load_config(comp, common)
    task_class(cfg).load_data(cfg, data_dir, progress=False)


def run_one(comp: str, overrides: list[str], seed: int, prof: dict, out: Path, data_dir: str | None,
            device: str | None) -> RunResult:
    budget_s, n, points = float(prof["budget_s"]), int(prof["n_images"]), int(prof.get("curve_points", 0))
    ckpt_min = budget_s / (points + 0.5) / 60 if points else 1e6  # the last one well before the end
    cfg = load_config(comp, overrides + [f"train.seed={seed}", f"output.n_min={n}", f"output.n_max={n}",
                                         f"generate.n_images={n}", f"train.checkpoint_minutes={ckpt_min}",
                                         f"train.keep_checkpoints={points + 3}", "train.safety_margin_s=0",
                                         "train.sample_every_epochs=100000"])
    run_dir = out / "runs" / f"{comp}-{overrides_tag(overrides)}-s{seed}"
    result = train(TrainRequest(cfg, run_dir, budget_s, data_dir=data_dir, fresh=True, device=device,
                                progress=False, evaluate=False))
    scored = []
    for path in ckpt.list_checkpoints(run_dir):
        step = int(path.stem.split("-")[1])
        if step == 0:
            continue
        step, res = score_checkpoint(path, n, data_dir, device)
        scored.append(Point(step, elapsed_at(run_dir, step) / 60, res.fid, res.memorization_distance, res.mifid))
    grid = run_dir / "samples" / "final.png"
    return RunResult("", seed, result.steps, result.images_per_s, result.seconds, scored,
                     str(grid) if grid.is_file() else "")


def overrides_tag(overrides: list[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:8]


def spread(values: list[float]) -> str:
    v = [x for x in values if math.isfinite(x)]
    if not v:
        return "-"
    if len(v) == 1:
        return f"{v[0]:.1f}"
    return f"{np.mean(v):.1f} ± {np.std(v, ddof=1):.1f}"


def table(results: dict[str, list[RunResult]], notes: dict[str, list[str]], title: str) -> str:
    lines = [f"## {title}", "",
             "| recipe | seeds | steps | images/s | FID | memorization d | MiFID | FID by minute (step) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, runs in results.items():
        ok = [r for r in runs if not r.error and r.points]
        if not ok:
            why = "; ".join(notes.get(name, [])) or "; ".join(r.error for r in runs)
            lines.append(f"| {name} | - | - | - | - | - | - | {why[:160]} |")
            continue
        last = [r.points[-1] for r in ok]
        curve = " ".join(f"{p.minutes:.2f}m({p.step}):{p.fid:.0f}" for p in ok[0].points)
        lines.append(f"| {name} | {len(ok)} | {spread([r.steps for r in ok])} | {spread([r.images_per_s for r in ok])} "
                     f"| {spread([p.fid for p in last])} | {' / '.join(f'{p.distance:.3f}' for p in last)} "
                     f"| {spread([p.mifid for p in last])} | {curve} |")
    for name, ns in notes.items():
        for note in ns:
            lines.append(f"\n- {name}: {note}")
    return "\n".join(lines)


def load_results(path: Path) -> tuple[dict[str, list[RunResult]], dict[str, list[str]]]:
    raw = json.loads(path.read_text())
    runs = {name: [RunResult(**{**r, "points": [Point(**p) for p in r["points"]]}) for r in rs]
            for name, rs in raw.get("runs", {}).items()}
    return runs, raw.get("notes", {})


def plot(results: dict[str, list[RunResult]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colours = plt.get_cmap("tab20")
    for k, (name, runs) in enumerate(results.items()):  # one colour per recipe, each seed a line of it
        for i, r in enumerate(x for x in runs if x.points):
            kw = {"label": name, "color": colours(k % 20)} if i == 0 else {"color": colours(k % 20)}
            axes[0].plot([p.minutes for p in r.points], [p.fid for p in r.points], "o-", **kw)
            axes[1].plot([p.step for p in r.points], [p.fid for p in r.points], "o-", **kw)
    for ax, xl in zip(axes, ("training minutes", "steps")):
        ax.set_xlabel(xl)
        ax.set_ylabel("FID (few images: biased up)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=90)
    plt.close(fig)
    grids = [(n, rs[0].grid) for n, rs in results.items() if rs and rs[0].grid]
    if grids:
        fig, axes = plt.subplots(1, len(grids), figsize=(3.2 * len(grids), 3.6), squeeze=False)
        for ax, (name, path) in zip(axes[0], grids):
            ax.imshow(Image.open(path))
            ax.set_title(name, fontsize=8)
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(out / "samples.png", dpi=90)
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("competition", nargs="?", help="name or YAML; none: a tiny smoke run of both samples")
    ap.add_argument("--recipes", type=Path, help="recipe file (default: by competition)")
    ap.add_argument("--profile", choices=("cpu", "gpu"), help="default: gpu when CUDA is available")
    ap.add_argument("--budget", type=float, help="seconds of training per recipe and seed")
    ap.add_argument("--seeds", help="comma-separated seeds")
    ap.add_argument("--images", type=int, help="images generated and scored per checkpoint")
    ap.add_argument("--curve-points", type=int, help="checkpoints scored before the last")
    ap.add_argument("--only", help="comma-separated recipe names")
    ap.add_argument("--data-dir")
    ap.add_argument("--device")
    ap.add_argument("--out", type=Path, default=Path("bench-results/recipes"))
    ap.add_argument("--merge", action="store_true",
                    help="keep the earlier results.json rows of recipes not run this time (e.g. after --only)")
    args = ap.parse_args(argv)
    if args.competition is None:  # `make bench`: prove the path on both samples, cheaply
        rc = 0
        for comp in ("sample-dogs", "sample-monet"):
            rc |= main([comp, "--only", "kompete", "--budget", "8", "--images", "32", "--curve-points", "0",
                        "--out", str(args.out / "smoke")])
        return rc
    comp = args.competition
    rfile = args.recipes or HERE / "recipes" / RECIPE_FILES.get(Path(comp).stem, "")
    if not rfile.is_file():
        print(f"Error: no recipe file for {comp}; pass --recipes FILE", file=sys.stderr)
        return 2
    raw = yaml.safe_load(rfile.read_text()) or {}
    profile = args.profile or ("gpu" if torch.cuda.is_available() else "cpu")
    prof = dict((raw.get("profiles") or {}).get(profile) or {})
    for key, val in (("budget_s", args.budget), ("n_images", args.images), ("curve_points", args.curve_points)):
        if val is not None:
            prof[key] = val
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else list(prof.get("seeds", [0]))
    if prof.get("threads"):
        torch.set_num_threads(int(prof["threads"]))
    recipes = parse_recipes(raw)
    if args.only:
        wanted = args.only.split(",")
        recipes = [r for r in recipes if r.name in wanted]
    comp_arg = comp
    common = base_overrides(raw.get("base") if Path(comp).stem != raw.get("base") else None) + list(prof.get("set", []))
    out = args.out / Path(comp).stem
    out.mkdir(parents=True, exist_ok=True)
    print(f"{comp}: {len(recipes)} recipes, profile {profile}, {prof.get('budget_s')} s each, seeds {seeds}, "
          f"{prof.get('n_images')} images scored, {torch.get_num_threads()} threads")
    results: dict[str, list[RunResult]] = {}
    notes: dict[str, list[str]] = {}
    t0 = time.perf_counter()
    warm_data(comp_arg, common, args.data_dir)
    for recipe in recipes:
        overrides, notes[recipe.name] = resolve(comp_arg, recipe, common)
        for note in notes[recipe.name]:
            print(f"  {recipe.name}: {note}")
        results[recipe.name] = []
        if overrides is None:
            continue
        for seed in seeds:
            t = time.perf_counter()
            try:
                r = run_one(comp_arg, overrides, seed, prof, out, args.data_dir, args.device)
            except (KompeteError, RuntimeError, ValueError) as exc:  # one broken recipe must not end the tournament
                r = RunResult(recipe.name, seed, 0, 0.0, 0.0, [], error=f"{type(exc).__name__}: {exc}"[:200])
            r.recipe = recipe.name
            results[recipe.name].append(r)
            last = r.points[-1] if r.points else None
            print(f"  {recipe.name} seed {seed}: {r.steps} steps, {r.images_per_s:.0f} img/s, "
                  + (f"FID {last.fid:.1f}, MiFID {last.mifid:.1f}" if last else r.error or "no score")
                  + f" ({time.perf_counter() - t:.0f} s)", flush=True)
    if args.merge and (out / "results.json").is_file():
        old_runs, old_notes = load_results(out / "results.json")
        results, notes = {**old_runs, **results}, {**old_notes, **notes}
    md = table(results, {k: v for k, v in notes.items() if v},
               f"{comp}: {profile} profile, {prof.get('budget_s')} s training per run, "
               f"{prof.get('n_images')} images scored (FID biased up at this count; compare rows only)")
    md += f"\n\nTotal {time.perf_counter() - t0:.0f} s; device {args.device or ('cuda' if torch.cuda.is_available() else 'cpu')}."
    (out / "results.md").write_text(md + "\n")
    runs = {k: [r.__dict__ | {"points": [p.__dict__ for p in r.points]} for r in v] for k, v in results.items()}
    (out / "results.json").write_text(json.dumps({"runs": runs, "notes": notes}, indent=1))
    plot(results, out)
    print(md)
    print(f"written: {out}/results.md, results.json, curves.png, samples.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
