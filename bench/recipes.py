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
# --smoke: the --images-seen path in seconds (16 px, width 4, 64 images seen, 16 images per FID)
SMOKE = ["sample-dogs", "--profile", "cpu", "--only", "kompete,ralsgan-public", "--images-seen", "64", "--points", "2",
         "--fid-images", "16", "--rounds", "2", "--round-steps", "1",
         "--set", "data.image_size=16", "--set", "train.g_channels=4", "--set", "train.d_channels=4",
         "--set", "data.sample.n_images=64", "--set", "data.sample.image_size=32", "--set", "metric.reference_limit=24"]
RECIPE_FILES = {"sample-dogs": "dogs.yaml", "generative-dog-images": "dogs.yaml",
                "sample-monet": "monet.yaml", "gan-getting-started": "monet.yaml",
                "clipart": "dogs.yaml", "wallphoto": "dogs.yaml", "wallclip": "monet.yaml"}  # realdata.py's sets


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


# =============================================================================== quality per image seen x cost
# The wall-clock tournament above measures the machine's load as much as the recipe. This mode separates the two:
# FID as a function of images seen (the same on any device, for a given size and batch), times the cost of one
# step on each device (measured here, paired and interleaved; projected for a T4 from FLOPs and bytes).


@dataclass(frozen=True)
class Device:
    """A roofline for projecting a step's time from its operations (every figure printed with the results)."""

    name: str
    peak_flops: float  # dense fp16 tensor-core FLOP/s
    bandwidth: float  # bytes/s of device memory
    flop_efficiency: float  # share of peak a small conv / matmul reaches
    memory_efficiency: float  # share of the bandwidth an elementwise kernel reaches
    op_overhead_s: float  # host time to launch one eager op (dispatch + launch): a floor when kernels are tiny
    amp_bytes: float  # floating traffic under AMP against fp32 (activations fp16, weights and Adam state fp32)

    def describe(self) -> str:
        return (f"{self.name}: {self.peak_flops / 1e12:g} TFLOP/s fp16 x {self.flop_efficiency:g}, "
                f"{self.bandwidth / 1e9:g} GB/s x {self.memory_efficiency:g}, {self.op_overhead_s * 1e6:g} us per "
                f"eager op (launch + dispatch, overlapping the kernels), AMP bytes x{self.amp_bytes:g}; step = "
                f"max(sum over ops of max(FLOPs/peak, bytes/bandwidth), ops x launch)")


T4 = Device("T4 (projected)", 65e12, 320e9, 0.35, 0.7, 10e-6, 0.6)


@dataclass
class StepCost:
    ops: int
    flops: float
    bytes: float
    kernel_s: float  # on the projected device, kernels alone
    projected_s: float


def measure_operations(task, device: Device) -> StepCost:
    """One step under a dispatch mode that counts every aten op's FLOPs (torch's formulas) and bytes read and
    written (its tensor arguments and results; views move nothing): an upper bound on traffic (no fusion)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten
    from torch.utils.flop_counter import flop_registry

    rows: list[tuple[float, float]] = []

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            if getattr(func, "is_view", False):
                return out
            packet = func._overloadpacket
            flops = float(flop_registry[packet](*args, **kwargs, out_val=out)) if packet in flop_registry else 0.0
            tensors = [t for t in tree_flatten((args, kwargs, out))[0] if isinstance(t, torch.Tensor)]
            nbytes = sum(t.numel() * t.element_size() * (device.amp_bytes if t.is_floating_point() else 1.0)
                         for t in tensors)
            rows.append((flops, nbytes))
            return out

    for name in ("opt_g", "opt_d"):  # on CUDA the tasks use fused Adam (one kernel per optimiser): count that
        opt = getattr(task, name, None)
        if isinstance(opt, torch.optim.Adam):
            d = opt.defaults
            setattr(task, name, torch.optim.Adam([p for g in opt.param_groups for p in g["params"]], d["lr"],
                                                 betas=d["betas"], fused=True))
    batch = task.next_batch()
    with Count():
        task.step(batch)
    flop_rate = device.peak_flops * device.flop_efficiency
    byte_rate = device.bandwidth * device.memory_efficiency
    kernel = sum(max(f / flop_rate, b / byte_rate) for f, b in rows)
    return StepCost(len(rows), sum(f for f, _ in rows), sum(b for _, b in rows), kernel,
                    max(kernel, len(rows) * device.op_overhead_s))


def paired_step_times(tasks: dict, rounds: int, steps: int) -> dict[str, dict[str, float]]:
    """Median wall and CPU seconds per step of each recipe, measured in interleaved rounds (the order rotates
    each round) so that a change in the machine's load hits every recipe alike."""
    names = list(tasks)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for name in names:  # warm-up: allocator, first-call paths
        tasks[name].step(tasks[name].next_batch())
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            task = tasks[name]
            w, c = time.perf_counter(), time.process_time()
            for _ in range(steps):
                task.step(task.next_batch())
            wall[name].append((time.perf_counter() - w) / steps)
            cpu[name].append((time.process_time() - c) / steps)
    return {n: {"wall_s": float(np.median(wall[n])), "cpu_s": float(np.median(cpu[n])),
                "wall_spread": float(np.std(wall[n]) / max(np.mean(wall[n]), 1e-12))} for n in names}


@dataclass
class SeenPoint:
    images_seen: int
    steps: int
    cpu_s: float  # CPU seconds of training steps so far (this process, interleaved with the other recipes)
    fid: float


def set_lrs(task, progress: float) -> None:
    """The Trainer's schedule, over images seen instead of the clock."""
    from kompete.train.schedule import lr_factor

    factor = lr_factor(task.cfg.train, progress)
    base = task.base_lrs()
    for name, groups in task.param_groups().items():
        for group in groups:
            group["lr"] = base[name] * factor


def seen_points(total: int, points: int) -> list[int]:
    """Geometric: total/2**(points-1), ..., total/2, total (curves are read on a log axis)."""
    return [max(1, int(total / 2 ** (points - 1 - i))) for i in range(points)]


def train_to(task, target: int, total: int, clock: dict) -> None:
    """Steps until `target` images are seen, on the task's own random streams (`clock["rng"]`): noise and flips
    come from torch's global generator, which the recipes taking turns would otherwise share, making each
    recipe's curve depend on which others ran beside it."""
    task.load_rng_state(clock["rng"])
    while task.step_count * task.images_per_step < target:
        set_lrs(task, task.step_count * task.images_per_step / total)
        c = time.process_time()
        task.step(task.next_batch())
        clock["cpu_s"] += time.process_time() - c
    clock["rng"] = task.rng_state()


def seen_curves(tasks: dict, streams: dict, score, targets: dict[str, list[int]], n_fid: int
                ) -> dict[str, list[SeenPoint]]:
    """Each recipe trained to each of its targets (images seen) in turn, all recipes reaching their k-th point
    before any goes on, and scored there; `streams`: each task's random state as it was built."""
    curves: dict[str, list[SeenPoint]] = {n: [] for n in tasks}
    clocks = {n: {"cpu_s": 0.0, "rng": streams[n]} for n in tasks}
    for k in range(len(next(iter(targets.values())))):
        for name, task in tasks.items():
            train_to(task, targets[name][k], targets[name][-1], clocks[name])
            fid = float(score(task, n_fid)[0])
            seen = task.step_count * task.images_per_step
            curves[name].append(SeenPoint(seen, task.step_count, clocks[name]["cpu_s"], fid))
            print(f"  {name}: {seen} images seen ({task.step_count} steps, {clocks[name]['cpu_s']:.0f} CPU s): "
                  f"FID {fid:.1f}", flush=True)
    return curves


def curve_targets(names: list[str], total: int, points: int, cpu_per_image: dict | None) -> dict[str, list[int]]:
    """The same images-seen points for every recipe; or, with `cpu_per_image` (--equal-cpu), points at the same
    CPU time: the first recipe's points, each other recipe's scaled by how much cheaper an image is for it."""
    ref = names[0]
    scale = {n: cpu_per_image[ref] / cpu_per_image[n] if cpu_per_image else 1.0 for n in names}
    return {n: seen_points(max(1, int(total * scale[n])), points) for n in names}


def fid_at(curve: list[SeenPoint], images: float) -> tuple[float, str]:
    """FID interpolated on log(images seen); beyond the last point the last FID, marked (not extrapolated)."""
    xs, ys = np.log([p.images_seen for p in curve]), [p.fid for p in curve]
    if images >= curve[-1].images_seen:
        return ys[-1], ">="
    if images <= curve[0].images_seen:
        return ys[0], "<="
    return float(np.interp(np.log(images), xs, ys)), ""


BUDGETS = {"dogs 9 h T4": ("t4", 9 * 3600.0), "Monet 5 h T4": ("t4", 5 * 3600.0), "samples 10 min CPU": ("cpu", 600.0)}


def projections(curves: dict, costs: dict, ops: dict, per_step: dict) -> dict[str, dict]:
    """For each recipe: images/s on this CPU (measured) and on a T4 (projected), FID at equal CPU time (the time
    the cheapest recipe needs for the whole curve) and at each budget of BUDGETS."""
    cpu_per_image = {n: costs[n]["cpu_s"] / per_step[n] for n in curves}
    equal_cpu = min(cpu_per_image[n] * curves[n][-1].images_seen for n in curves)
    out = {}
    for name, curve in curves.items():
        rate = {"cpu": per_step[name] / costs[name]["wall_s"], "t4": per_step[name] / ops[name].projected_s}
        row = {"images_per_s_cpu": rate["cpu"], "images_per_s_t4": rate["t4"],
               "fid_equal_images": curve[-1].fid, "equal_cpu_s": equal_cpu}
        row["fid_equal_cpu"], row["equal_cpu_mark"] = fid_at(curve, equal_cpu / cpu_per_image[name])
        for label, (dev, seconds) in BUDGETS.items():
            images = seconds * rate[dev]
            fid, mark = fid_at(curve, images)
            row[label] = {"images": images, "fid": fid, "mark": mark}
        out[name] = row
    return out


def ranking(proj: dict, key: str) -> list[str]:
    return sorted(proj, key=lambda n: proj[n][key]["fid"] if isinstance(proj[n][key], dict) else proj[n][key])


def seen_table(curves: dict, costs: dict, ops: dict, proj: dict, per_step: dict, head: str) -> str:
    first = next(iter(curves.values()))
    same = all([p.images_seen for p in c] == [p.images_seen for p in first] for c in curves.values())
    at = " | ".join(f"FID @{p.images_seen}" if same else f"FID (images) @{p.cpu_s:.0f} CPU s" for p in first)
    lines = [head, "", "| recipe | images/step | CPU s/step (wall) | img/s here (wall) | ops/step | GFLOP/step | "
             f"MB/step | T4 img/s (proj.) | {at} | FID @equal CPU time |",
             "|---" * (9 + at.count("@")) + "|"]
    for n, curve in curves.items():
        c, o, p = costs[n], ops[n], proj[n]
        fids = " | ".join(f"{q.fid:.1f}" if same else f"{q.fid:.1f} ({q.images_seen})" for q in curve)
        lines.append(f"| {n} | {per_step[n]} | {c['cpu_s']:.3f} ({c['wall_s']:.3f}) | {p['images_per_s_cpu']:.0f} | "
                     f"{o.ops} | {o.flops / 1e9:.2f} | {o.bytes / 1e6:.0f} | {p['images_per_s_t4']:.0f} | {fids} | "
                     f"{p['equal_cpu_mark']}{p['fid_equal_cpu']:.1f} |")
    any_row = next(iter(proj.values()))
    lines += ["", f"FID at equal CPU time: {any_row['equal_cpu_s']:.3g} CPU s (what the cheapest recipe spent on the "
              "whole curve); each recipe's images at that time from its measured CPU s/image.", "",
              "| budget | " + " | ".join(curves) + " | ranking |", "|---" * (len(curves) + 2) + "|"]
    for label in BUDGETS:
        cells = [f"{proj[n][label]['mark']}{proj[n][label]['fid']:.1f} ({proj[n][label]['images']:.3g} img)"
                 for n in curves]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {' < '.join(ranking(proj, label))} |")
    lines += ["", "Marks: '>=' the budget buys more images than the curve measured: the last FID is shown, not an "
              "extrapolation (a longer run may do better or collapse); '<=' fewer than the first point."]
    return "\n".join(lines)


def plot_seen(curves: dict, costs: dict, ops: dict, per_step: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for name, curve in curves.items():
        seen = [p.images_seen for p in curve]
        fid = [p.fid for p in curve]
        axes[0].plot(seen, fid, "o-", label=name)
        axes[1].plot([p.cpu_s for p in curve], fid, "o-", label=name)
        axes[2].plot([s / per_step[name] * ops[name].projected_s for s in seen], fid, "o-", label=name)
    for ax, xl in zip(axes, ("images seen", "CPU seconds (measured, interleaved)", "T4 seconds (projected)")):
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # overlapping minor labels otherwise
        ax.set_xlabel(xl)
        ax.set_ylabel("FID")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "curves-seen.png", dpi=90)
    plt.close(fig)


def save_grids(tasks: dict, out: Path) -> None:
    from kompete.train.monitor import save_grid

    for name, task in tasks.items():
        save_grid(task.sample_grid(), out / "samples-seen" / f"{name}.png")


def seen_configs(comp: str, recipes: list[Recipe], common: list[str], seed: int) -> tuple[dict, dict]:
    """Each recipe the config accepts: its Config (this seed) and its own overrides (after the shared ones)."""
    cfgs, used = {}, {}
    for recipe in recipes:
        overrides, notes = resolve(comp, recipe, common)
        for note in notes:
            print(f"  {recipe.name}: {note}")
        if overrides is not None:
            used[recipe.name] = overrides[len(common):]
            cfgs[recipe.name] = load_config(comp, overrides + [f"train.seed={seed}"])
    return cfgs, used


def build_tasks(cfgs: dict, data, device: str) -> tuple[dict, dict]:
    """A fresh task per recipe and the random state each was built with (each build seeds torch's global
    streams: every task keeps its own)."""
    from kompete.algorithms.base import build_task
    from kompete.runtime.context import make_context

    tasks, streams = {}, {}
    for n, c in cfgs.items():
        tasks[n] = build_task(c, make_context(c, device), data)
        streams[n] = tasks[n].rng_state()
    return tasks, streams


def write_seen(out: Path, report: dict, md: str) -> None:
    paths_write(out / "results-seen.json", json.dumps(report, indent=1))
    paths_write(out / "results-seen.md", md + "\n")
    print(md)
    print(f"written: {out}/results-seen.md, results-seen.json, curves-seen.png, samples-seen/")


def print_costs(costs: dict, ops: dict) -> None:
    for n in costs:
        print(f"  {n}: {costs[n]['cpu_s']:.3f} CPU s a step here ({costs[n]['wall_s']:.3f} wall, spread "
              f"{costs[n]['wall_spread']:.0%}); {ops[n].ops} ops, {ops[n].flops / 1e9:.2f} GFLOP: "
              f"{ops[n].projected_s * 1e3:.2f} ms on a T4 (projected)", flush=True)


def seen_main(args, comp: str, prof: dict, recipes: list[Recipe], common: list[str], out: Path) -> int:
    """--images-seen: paired cost per step, operation counts with the T4 projection, FID curves; JSON + md + png."""
    from kompete.algorithms.base import task_class
    from kompete.data import reference_files
    from kompete.metrics.evaluation import inception_scorer

    seed = int(args.seeds.split(",")[0]) if args.seeds else int(list(prof.get("seeds", [0]))[0])
    cfgs, used = seen_configs(comp, recipes, common, seed)
    if not cfgs:
        print("Error: no recipe left to run", file=sys.stderr)
        return 2
    first = next(iter(cfgs.values()))
    data = task_class(first).load_data(first, args.data_dir, progress=False)
    device = args.device or "cpu"
    total, points, n_fid = args.images_seen, args.points, args.fid_images
    n_ref = len(reference_files(first, args.data_dir))
    n_ref = min(n_ref, first.metric.reference_limit) if first.metric.reference_limit else n_ref
    where = (f"equal CPU time (the points of {next(iter(cfgs))} at {seen_points(total, points)} images seen)"
             if args.equal_cpu else f"{seen_points(total, points)} images seen")
    print(f"{comp}: {len(cfgs)} recipes, seed {seed}, {torch.get_num_threads()} threads; FID of {n_fid} generated "
          f"images against {n_ref} reference images ({first.metric.reference}) at {where}\n{T4.describe()}",
          flush=True)
    costs = paired_step_times(build_tasks(cfgs, data, device)[0], args.rounds, args.round_steps)
    ops = {n: measure_operations(t, T4) for n, t in build_tasks(cfgs, data, device)[0].items()}
    print_costs(costs, ops)
    tasks, streams = build_tasks(cfgs, data, device)
    per_step = {n: t.images_per_step for n, t in tasks.items()}
    cpu_per_image = {n: costs[n]["cpu_s"] / per_step[n] for n in cfgs} if args.equal_cpu else None
    targets = curve_targets(list(cfgs), total, points, cpu_per_image)
    curves = seen_curves(tasks, streams, inception_scorer(first, device, args.data_dir), targets, n_fid)
    proj = projections(curves, costs, ops, per_step)
    head = (f"## {comp}: FID ({n_fid} generated vs {n_ref} reference images) at {where}, seed {seed}; "
            f"cost per step paired on this CPU ({torch.get_num_threads()} threads); {T4.describe()}")
    md = seen_table(curves, costs, ops, proj, per_step, head)
    save_grids(tasks, out)
    plot_seen(curves, costs, ops, per_step, out)
    report = {"competition": comp, "seed": seed, "equal_cpu": bool(args.equal_cpu), "fid_images": n_fid,
              "reference_images": n_ref, "threads": torch.get_num_threads(), "projection": T4.__dict__, "costs": costs,
              "operations": {n: o.__dict__ for n, o in ops.items()}, "images_per_step": per_step,
              "curves": {n: [p.__dict__ for p in c] for n, c in curves.items()}, "projections": proj,
              "common_overrides": common, "recipe_overrides": used}
    write_seen(out, report, md)
    return 0


def load_seen(dirs: list[Path]) -> list[dict]:
    """results-seen.json of each run (a folder holding it, or the file), for --combine."""
    reports = []
    for d in dirs:
        path = d if d.suffix == ".json" else d / "results-seen.json"
        if not path.is_file():
            raise SystemExit(f"Error: no results-seen.json in {d}")
        reports.append(json.loads(path.read_text()))
    return merge_by_seed(reports)


def merge_by_seed(reports: list[dict]) -> list[dict]:
    """Runs of the same seed with different recipes (a recipe added later) become one report per seed; a recipe
    run twice for one seed keeps its first run. FID at equal CPU time stays each run's own (its cheapest recipe)."""
    by_seed: dict[int, dict] = {}
    for r in reports:
        if r["seed"] not in by_seed:
            by_seed[r["seed"]] = dict(r)  # merged sections below are new dicts: r itself is never changed
            continue
        into = by_seed[r["seed"]]
        for key in ("curves", "costs", "operations", "images_per_step", "projections"):
            into[key] = {**r[key], **into[key]}
    return list(by_seed.values())


def combine_rows(reports: list[dict]) -> tuple[list[str], dict[str, dict]]:
    """Per recipe (those every run has): FIDs per point and seed, CPU ms per image, T4 ms per step, FID at
    equal CPU time. The points must be the same images seen in every run, or, for --equal-cpu runs, the same
    number of points (each seed's images follow its own measured costs: the mean is shown)."""
    names = [n for n in reports[0]["curves"] if all(n in r["curves"] for r in reports)]
    equal_cpu = all(r.get("equal_cpu") for r in reports)
    rows = {}
    for n in names:
        curves = [r["curves"][n] for r in reports]
        seen = [[p["images_seen"] for p in c] for c in curves]
        if any(len(x) != len(seen[0]) or (x != seen[0] and not equal_cpu) for x in seen):
            raise SystemExit(f"Error: {n}'s points differ between the runs; combine runs of one command")
        rows[n] = {"fids": np.array([[p["fid"] for p in c] for c in curves]),  # seeds x points
                   "seen": [int(np.mean(col)) for col in zip(*seen)],
                   "cpu_s": [float(np.mean([c[k]["cpu_s"] for c in curves])) for k in range(len(curves[0]))],
                   "cpu_ms_image": 1e3 * float(np.mean([r["costs"][n]["cpu_s"] / r["images_per_step"][n]
                                                        for r in reports])),
                   "t4_ms_step": 1e3 * reports[0]["operations"][n]["projected_s"],
                   "equal_cpu": [r["projections"][n]["fid_equal_cpu"] for r in reports],
                   "equal_cpu_mark": reports[0]["projections"][n].get("equal_cpu_mark", "")}
    return names, rows


def combine_table(reports: list[dict], names: list[str], rows: dict) -> str:
    seeds = [r["seed"] for r in reports]
    same = all(rows[n]["seen"] == rows[names[0]]["seen"] for n in names) and not reports[0].get("equal_cpu")
    heads = [f"FID @{s}" if same else f"FID @{c:.0f} CPU s" for s, c in zip(rows[names[0]]["seen"],
                                                                              rows[names[0]]["cpu_s"])]
    lines = [f"## {reports[0]['competition']}: mean ± sd over seeds {seeds}; FID of {reports[0]['fid_images']} "
             f"generated vs {reports[0]['reference_images']} reference images", "",
             f"| recipe | CPU ms/image | T4 ms/step (proj.) | {' | '.join(heads)} | last FID by seed | "
             "FID @equal CPU time |", "|---" * (5 + len(heads)) + "|"]
    for n in names:
        r = rows[n]
        cells = [spread(list(col)) + ("" if same else f" ({s})") for col, s in zip(r["fids"].T, r["seen"])]
        by_seed = " / ".join(f"{v:.1f}" for v in r["fids"][:, -1])
        lines.append(f"| {n} | {r['cpu_ms_image']:.2f} | {r['t4_ms_step']:.1f} | {' | '.join(cells)} | {by_seed} | "
                     f"{r['equal_cpu_mark']}{spread(r['equal_cpu'])} |")
    wins = {n: int(sum(all(rows[n]["fids"][i, -1] < rows[m]["fids"][i, -1] for m in names if m != n)
                       for i in range(len(seeds)))) for n in names}
    lines += ["", "Best at the last point in how many seeds: "
              + ", ".join(f"{n} {w}/{len(seeds)}" for n, w in wins.items())]
    return "\n".join(lines)


def combine_main(dirs: list[Path], out: Path) -> int:
    """--combine: the runs of one command with different seeds, as one table (mean ± sd) and one plot."""
    reports = load_seen(dirs)
    names, rows = combine_rows(reports)
    md = combine_table(reports, names, rows)
    out.mkdir(parents=True, exist_ok=True)
    plot_combined(reports, names, rows, out / "curves-combined.png")
    paths_write(out / "results-combined.md", md + "\n")
    print(md)
    print(f"written: {out}/results-combined.md, curves-combined.png")
    return 0


def plot_combined(reports: list[dict], names: list[str], rows: dict, path: Path) -> None:
    """Mean FID with the same sd as the table (n - 1), against images seen and against CPU seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for n in names:
        fids = rows[n]["fids"]
        mean, sd = fids.mean(0), fids.std(0, ddof=1) if len(fids) > 1 else np.zeros(fids.shape[1])
        axes[0].errorbar(rows[n]["seen"], mean, yerr=sd, fmt="o-", capsize=3, label=n)
        axes[1].errorbar(rows[n]["cpu_s"], mean, yerr=sd, fmt="o-", capsize=3, label=n)
    for ax, xl in zip(axes, ("images seen", "CPU seconds (measured)")):
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # overlapping minor labels otherwise
        ax.set_xlabel(xl)
        ax.set_ylabel(f"FID (mean ± sd, {len(reports)} seeds)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{Path(reports[0]['competition']).stem}: FID of {reports[0]['fid_images']} images, mean ± sd over "
                 f"seeds {[r['seed'] for r in reports]}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def paths_write(path: Path, text: str) -> None:
    from kompete.paths import write_text_atomic

    write_text_atomic(path, text)


def parser() -> argparse.ArgumentParser:
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
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="an override for every recipe, after the profile's (repeatable)")
    ap.add_argument("--images-seen", type=int,
                    help="quality per image seen: train each recipe to this many images (not a clock), FID at "
                         "--points along the way, paired cost per step and the T4 projection")
    ap.add_argument("--equal-cpu", action="store_true",
                    help="--images-seen: points at equal CPU time instead (the first recipe's images seen; a "
                         "recipe whose image costs less here trains on more)")
    ap.add_argument("--points", type=int, default=4, help="--images-seen: FID points (geometric, ending at it)")
    ap.add_argument("--fid-images", type=int, default=500, help="--images-seen: generated images per FID")
    ap.add_argument("--rounds", type=int, default=5, help="--images-seen: interleaved timing rounds")
    ap.add_argument("--round-steps", type=int, default=5, help="--images-seen: steps per recipe per round")
    ap.add_argument("--smoke", action="store_true", help="seconds: the --images-seen path on tiny sizes")
    ap.add_argument("--combine", nargs="+", type=Path, metavar="DIR",
                    help="the --images-seen runs of one command with different seeds (their folders): one table "
                         "of mean ± sd and one plot, in --out")
    ap.add_argument("--merge", action="store_true",
                    help="keep the earlier results.json rows of recipes not run this time (e.g. after --only)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.combine:
        return combine_main(args.combine, args.out)
    if args.smoke:
        return main(SMOKE + ["--out", str(args.out / "smoke")])
    if args.competition is None:  # `make bench`: prove the path on both samples, cheaply
        rc = 0
        for comp in ("sample-dogs", "sample-monet"):
            rc |= main([comp, "--only", "kompete", "--budget", "8", "--images", "32", "--curve-points", "0",
                        "--out", str(args.out / "smoke")])
        return rc
    comp = args.competition
    stem = Path(comp).stem
    rfile = args.recipes or HERE / "recipes" / RECIPE_FILES.get(stem, RECIPE_FILES.get(stem.rstrip("0123456789"), ""))
    if not rfile.is_file():
        print(f"Error: no recipe file for {comp}; pass --recipes FILE", file=sys.stderr)
        return 2
    raw = yaml.safe_load(rfile.read_text()) or {}
    profile = args.profile or ("gpu" if torch.cuda.is_available() else "cpu")
    prof = dict((raw.get("profiles") or {}).get(profile) or {})
    for key, val in (("budget_s", args.budget), ("n_images", args.images), ("curve_points", args.curve_points)):
        if val is not None:
            prof[key] = val
    if prof.get("threads"):
        torch.set_num_threads(int(prof["threads"]))
    recipes = parse_recipes(raw)
    if args.only:
        recipes = [r for r in recipes if r.name in args.only.split(",")]
    common = base_overrides(raw.get("base") if stem != raw.get("base") else None) + list(prof.get("set", []))
    common += args.set
    out = args.out / stem
    out.mkdir(parents=True, exist_ok=True)
    if args.images_seen:
        return seen_main(args, comp, prof, recipes, common, out)
    return tournament_main(args, comp, profile, prof, recipes, common, out)


def tournament_main(args, comp: str, profile: str, prof: dict, recipes: list[Recipe], common: list[str],
                    out: Path) -> int:
    """The wall-clock tournament: each recipe x seed trained for the profile's budget, then scored."""
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else list(prof.get("seeds", [0]))
    print(f"{comp}: {len(recipes)} recipes, profile {profile}, {prof.get('budget_s')} s each, seeds {seeds}, "
          f"{prof.get('n_images')} images scored, {torch.get_num_threads()} threads")
    results: dict[str, list[RunResult]] = {}
    notes: dict[str, list[str]] = {}
    t0 = time.perf_counter()
    warm_data(comp, common, args.data_dir)
    for recipe in recipes:
        overrides, notes[recipe.name] = resolve(comp, recipe, common)
        for note in notes[recipe.name]:
            print(f"  {recipe.name}: {note}")
        results[recipe.name] = []
        if overrides is None:
            continue
        for seed in seeds:
            results[recipe.name].append(run_recipe_seed(recipe.name, comp, overrides, seed, prof, out, args))
    if args.merge and (out / "results.json").is_file():
        old_runs, old_notes = load_results(out / "results.json")
        results, notes = {**old_runs, **results}, {**old_notes, **notes}
    md = table(results, {k: v for k, v in notes.items() if v},
               f"{comp}: {profile} profile, {prof.get('budget_s')} s training per run, "
               f"{prof.get('n_images')} images scored (FID biased up at this count; compare rows only)")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    md += f"\n\nTotal {time.perf_counter() - t0:.0f} s; device {device}."
    (out / "results.md").write_text(md + "\n")
    runs = {k: [r.__dict__ | {"points": [p.__dict__ for p in r.points]} for r in v] for k, v in results.items()}
    (out / "results.json").write_text(json.dumps({"runs": runs, "notes": notes}, indent=1))
    plot(results, out)
    print(md)
    print(f"written: {out}/results.md, results.json, curves.png, samples.png")
    return 0


def run_recipe_seed(name: str, comp: str, overrides: list[str], seed: int, prof: dict, out: Path, args) -> RunResult:
    t = time.perf_counter()
    try:
        r = run_one(comp, overrides, seed, prof, out, args.data_dir, args.device)
    except (KompeteError, RuntimeError, ValueError) as exc:  # one broken recipe must not end the tournament
        r = RunResult(name, seed, 0, 0.0, 0.0, [], error=f"{type(exc).__name__}: {exc}"[:200])
    r.recipe = name
    last = r.points[-1] if r.points else None
    print(f"  {name} seed {seed}: {r.steps} steps, {r.images_per_s:.0f} img/s, "
          + (f"FID {last.fid:.1f}, MiFID {last.mifid:.1f}" if last else r.error or "no score")
          + f" ({time.perf_counter() - t:.0f} s)", flush=True)
    return r


if __name__ == "__main__":
    sys.exit(main())
