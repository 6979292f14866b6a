"""The one bench harness: interleaved paired rounds, wall and CPU time, ratios with median and min-max.

A shared machine slows whatever runs while a neighbour is busy, so timing A five times and then B five
times compares two different machines. Here every round runs each case once (A, B, A, B, ...; the order
rotates each round so neither always runs first), and a ratio is taken within the round, where both
saw the same neighbour; the median and the min-max of those per-round ratios are what is reported.
The 1-minute load average and the thread count go with every table, so a reader sees how busy it was.

    from bench.harness import Harness, bench_arguments
    ap = argparse.ArgumentParser(); bench_arguments(ap); args = ap.parse_args()
    h = Harness("score", args)
    h.compare("warm scoring", {"floor": run_floor, "kompete": run_warm}, baseline="floor", units=n)
    h.finish()        # prints the tables, writes <out>/<name>.json and <out>/<name>.md

A case is a callable; if it returns a number, that is the seconds it measured itself (e.g. after a warm-up), which then
replace the wall time of the call. CPU time is this process's (all its threads) plus that of the child
processes that ended during the call (subprocesses, DataLoader workers that were shut down).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

Case = Callable[[], "float | None"]
DEFAULT_OUT = Path("bench-results")


def bench_arguments(ap: argparse.ArgumentParser, rounds: int = 3) -> None:
    """The options every bench shares: --smoke, --rounds, --out."""
    ap.add_argument("--smoke", action="store_true",
                    help="tiny sizes, seconds: checks the bench still runs (the test suite runs this)")
    ap.add_argument("--rounds", type=int, default=rounds, help="interleaved rounds per comparison")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for <bench>.json and <bench>.md")


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # not every platform has one
        return None


def machine() -> dict[str, object]:
    """What ran the bench: enough to tell a quiet machine from a busy one, and one card from another."""
    info: dict[str, object] = {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
                               "load_1min": load_average()}
    if "torch" in sys.modules:  # only benches that use torch pay its import
        import torch

        info.update(torch=torch.__version__, threads=torch.get_num_threads(),
                    device=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")
    return info


@dataclass
class Comparison:
    """One table: every case's per-round seconds, and each case's per-round ratio to the baseline.

    `units` (images, steps, ...) is one count for every case or a count per case; with counts per case
    the ratio compares seconds per unit, so a baseline run on fewer images is still a fair comparison.
    """
    title: str
    baseline: str
    units: float | dict[str, float] | None
    unit_name: str
    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    load: list[float | None] = field(default_factory=list)

    def units_of(self, case: str) -> float | None:
        return self.units.get(case) if isinstance(self.units, dict) else self.units

    def ratios(self, case: str) -> list[float]:
        """case seconds / baseline seconds (per unit when counts differ), round by round."""
        per_c, per_b = self.units_of(case) or 1, self.units_of(self.baseline) or 1
        return [(c / per_c) / (b / per_b) for c, b in zip(self.wall[case], self.wall[self.baseline]) if b > 0]

    def summary(self) -> dict[str, dict[str, object]]:
        out = {}
        for case, walls in self.wall.items():
            row: dict[str, object] = {"wall_s": spread(walls), "cpu_s": spread(self.cpu[case])}
            units = self.units_of(case)
            if units:
                row["units"] = units
                row[f"{self.unit_name}_per_s"] = spread([units / w for w in walls if w > 0])
            if case != self.baseline:
                row["ratio"] = spread(self.ratios(case))
            out[case] = row
        return out


def spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its children that have ended (workers, subprocesses)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run_case(fn: Case) -> tuple[float, float]:
    cpu, wall = cpu_seconds(), time.perf_counter()
    own = fn()
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return (float(own) if isinstance(own, (int, float)) and not isinstance(own, bool) else wall), cpu


class Harness:
    """Collects the comparisons of one bench, prints them as tables and writes them as JSON + markdown."""

    def __init__(self, name: str, args: argparse.Namespace | None = None, rounds: int | None = None):
        self.name = name
        self.smoke = bool(getattr(args, "smoke", False))
        self.rounds = rounds or getattr(args, "rounds", 3)
        self.out = Path(getattr(args, "out", DEFAULT_OUT))
        self.comparisons: list[Comparison] = []
        self.notes: dict[str, object] = {}
        self.started = time.perf_counter()
        self.load_at_start = load_average()

    def compare(self, title: str, cases: dict[str, Case], baseline: str | None = None,
                units: float | dict[str, float] | None = None,
                unit_name: str = "images", rounds: int | None = None, warmup: bool = False) -> Comparison:
        """Run every case once per round, rotating the order; ratios are against `baseline` (the first case).
        `warmup` runs each case once untimed first (imports, allocator, caches)."""
        names = list(cases)
        if warmup:
            for name in names:
                cases[name]()
        comp = Comparison(title, baseline or names[0], units, unit_name,
                          wall={n: [] for n in names}, cpu={n: [] for n in names})
        for r in range(rounds or self.rounds):
            comp.load.append(load_average())
            for name in names[r % len(names):] + names[:r % len(names)]:
                wall, cpu = run_case(cases[name])
                comp.wall[name].append(wall)
                comp.cpu[name].append(cpu)
        self.comparisons.append(comp)
        print(table(comp), flush=True)
        return comp

    def note(self, key: str, value: object) -> None:
        """A figure that is not a timing (an agreement, a size, a count): kept in the JSON and printed."""
        self.notes[key] = value
        print(f"{key}: {value}", flush=True)

    def report(self) -> dict[str, object]:
        return {"bench": self.name, "smoke": self.smoke, "rounds": self.rounds, "machine": machine(),
                "load_1min_at_start": self.load_at_start, "seconds": time.perf_counter() - self.started,
                "comparisons": [{**asdict(c), "summary": c.summary()} for c in self.comparisons],
                "notes": self.notes}

    def finish(self) -> Path:
        """Write <out>/<name>.json and .md (atomically) and return the JSON's path."""
        report = self.report()
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"{self.name}.json"
        write_atomic(path, json.dumps(report, indent=1, default=str) + "\n")
        write_atomic(self.out / f"{self.name}.md", markdown(report, self.comparisons))
        m = report["machine"]
        print(f"{self.name}: {len(self.comparisons)} table(s), load {self.load_at_start} -> {m['load_1min']}, "
              f"{m.get('threads', '-')} threads, {m['cpus']} cpus -> {path}", flush=True)
        return path


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def fmt(s: dict[str, float], digits: int = 3) -> str:
    return f"{s['median']:.{digits}g} ({s['min']:.{digits}g}-{s['max']:.{digits}g})"


def table(comp: Comparison) -> str:
    """The markdown table of one comparison: medians with (min-max) over the rounds."""
    loads = [x for x in comp.load if x is not None]
    head = (f"### {comp.title}\n{len(comp.load)} interleaved rounds, load "
            f"{min(loads, default=float('nan')):.2f}-{max(loads, default=float('nan')):.2f}; "
            f"ratio = case / {comp.baseline}, per round\n\n")
    per_unit = " per unit" if isinstance(comp.units, dict) else ""
    head = head.replace(f"ratio = case / {comp.baseline}", f"ratio = case / {comp.baseline}{per_unit}")
    lines = [f"| case | wall s | cpu s | {comp.unit_name + '/s' if comp.units else '-'} | ratio |",
             "|---|---|---|---|---|"]
    for case, row in comp.summary().items():
        key = f"{comp.unit_name}_per_s"
        per_s = f"{fmt(row[key])} ({row['units']:g})" if key in row else "-"
        ratio = fmt(row["ratio"]) + "x" if "ratio" in row else "1 (baseline)"
        lines.append(f"| {case} | {fmt(row['wall_s'])} | {fmt(row['cpu_s'])} | {per_s} | {ratio} |")
    return head + "\n".join(lines) + "\n"


def markdown(report: dict[str, object], comparisons: list[Comparison]) -> str:
    m = report["machine"]
    parts = [f"# bench/{report['bench']}.py{' (smoke)' if report['smoke'] else ''}\n",
             f"machine: {m.get('device', 'cpu')}, {m['cpus']} cpus, {m.get('threads', '-')} threads, "
             f"load {report['load_1min_at_start']} -> {m['load_1min']}\n"]
    parts += [table(c) for c in comparisons]
    if report["notes"]:
        parts.append("| note | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in report["notes"].items()))
    return "\n".join(parts)
