"""bench/recipes.py's quality-per-image-seen mode: the pieces (points, interpolation, operation counts, the
projection) and its --smoke run end to end."""

from __future__ import annotations

import importlib.util
import json
import sys
from types import SimpleNamespace

import pytest
import torch

from tests.conftest import REPO
from tests.test_bench import run_script


@pytest.fixture(scope="module")
def recipes():
    spec = importlib.util.spec_from_file_location("bench_recipes", REPO / "bench" / "recipes.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_recipes"] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench_recipes", None)


def curve(recipes, pairs):
    return [recipes.SeenPoint(seen, seen // 10, seen / 100, fid) for seen, fid in pairs]


def test_seen_points_are_geometric_and_end_at_the_total(recipes):
    assert recipes.seen_points(8000, 4) == [1000, 2000, 4000, 8000]
    assert recipes.seen_points(50, 1) == [50]


def test_fid_at_interpolates_on_log_images_and_marks_what_lies_outside(recipes):
    c = curve(recipes, [(1000, 300.0), (4000, 200.0)])
    assert recipes.fid_at(c, 2000) == (pytest.approx(250.0), "")  # halfway on a log axis
    assert recipes.fid_at(c, 1e9) == (200.0, ">=")  # never extrapolated
    assert recipes.fid_at(c, 10) == (300.0, "<=")


class MatmulTask:
    """A step of one known matmul: 2*m*n*k FLOPs, bytes of both inputs and the output."""

    def __init__(self):
        self.a, self.b = torch.ones(64, 32), torch.ones(32, 16)

    def next_batch(self):
        return None

    def step(self, batch):
        return self.a @ self.b


def test_operation_counts_and_the_roofline_projection(recipes):
    device = recipes.Device("test", peak_flops=1e9, bandwidth=1e9, flop_efficiency=1.0, memory_efficiency=1.0,
                            op_overhead_s=0.0, amp_bytes=1.0)
    cost = recipes.measure_operations(MatmulTask(), device)
    assert cost.ops == 1 and cost.flops == 2 * 64 * 32 * 16
    assert cost.bytes == 4 * (64 * 32 + 32 * 16 + 64 * 16)
    assert cost.projected_s == pytest.approx(max(cost.flops, cost.bytes) / 1e9)
    slow_launch = recipes.Device("test", 1e9, 1e9, 1.0, 1.0, op_overhead_s=1.0, amp_bytes=1.0)
    assert recipes.measure_operations(MatmulTask(), slow_launch).projected_s == 1.0  # launch-bound


def test_projection_compares_recipes_at_equal_cpu_time(recipes):
    curves = {"cheap": curve(recipes, [(1000, 300.0), (4000, 250.0)]),
              "dear": curve(recipes, [(1000, 280.0), (4000, 150.0)])}
    costs = {"cheap": {"cpu_s": 0.1, "wall_s": 0.1}, "dear": {"cpu_s": 0.4, "wall_s": 0.4}}
    ops = {n: SimpleNamespace(projected_s=0.01) for n in curves}
    proj = recipes.projections(curves, costs, ops, {"cheap": 10, "dear": 10})
    # the cheap recipe's whole curve costs 40 CPU s (0.01 s an image); in that time the dear one saw 1,000
    assert proj["cheap"]["equal_cpu_s"] == pytest.approx(40.0)
    assert proj["dear"]["fid_equal_cpu"] == pytest.approx(280.0) and proj["cheap"]["fid_equal_cpu"] == 250.0
    assert proj["dear"]["dogs 9 h T4"]["mark"] == ">="


def test_smoke_writes_curves_costs_and_the_t4_projection(tmp_path):
    proc = run_script("bench/recipes.py", "--smoke", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = tmp_path / "smoke" / "sample-dogs"
    report = json.loads((out / "results-seen.json").read_text())
    assert set(report["curves"]) == {"kompete", "ralsgan-public"}
    for name, points in report["curves"].items():
        assert [p["images_seen"] for p in points] == [32, 64] and all(p["fid"] > 0 for p in points)
        assert report["costs"][name]["wall_s"] > 0 and report["operations"][name]["flops"] > 0
    assert report["projection"]["peak_flops"] == 65e12 and report["fid_images"] == 16
    assert "T4 (projected)" in (out / "results-seen.md").read_text()
    assert (out / "curves-seen.png").is_file() and (out / "samples-seen" / "kompete.png").is_file()
    # a second seed's run (the same report, its FIDs 10 higher), combined with the first: mean ± sd per point
    other = tmp_path / "seed1"
    other.mkdir()
    shifted = {**report, "seed": 1, "curves": {n: [{**p, "fid": p["fid"] + 10} for p in c]
                                               for n, c in report["curves"].items()}}
    (other / "results-seen.json").write_text(json.dumps(shifted))
    proc = run_script("bench/recipes.py", "--combine", str(out), str(other), "--out", str(tmp_path / "both"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    md = (tmp_path / "both" / "results-combined.md").read_text()
    first = report["curves"]["kompete"][-1]["fid"]
    assert f"{first + 5:.1f} ± 7.1" in md and f"{first:.1f} / {first + 10:.1f}" in md and "seeds [0, 1]" in md
    assert (tmp_path / "both" / "curves-combined.png").is_file()


def test_equal_cpu_targets_give_a_cheaper_recipe_more_images(recipes):
    same = recipes.curve_targets(["a", "b"], 800, 2, None)
    assert same == {"a": [400, 800], "b": [400, 800]}
    scaled = recipes.curve_targets(["a", "b"], 800, 2, {"a": 0.004, "b": 0.001})  # b: a quarter of the CPU an image
    assert scaled == {"a": [400, 800], "b": [1600, 3200]}


class NoiseTask:
    """Its 'weights' are the sum of the global noise it drew: a curve that depends on its random stream only."""

    images_per_step = 1

    def __init__(self, seed: int):
        torch.manual_seed(seed)
        self.step_count, self.total = 0, 0.0

    def rng_state(self):
        return {"rng_cpu": torch.get_rng_state()}

    def load_rng_state(self, state):
        torch.set_rng_state(state["rng_cpu"])

    def next_batch(self):
        return None

    def step(self, batch):
        self.total += float(torch.rand(()))
        self.step_count += 1

    def base_lrs(self):
        return {}

    def param_groups(self):
        return {}

    cfg = SimpleNamespace(train=SimpleNamespace(lr_schedule="constant"))


def test_a_recipes_curve_does_not_depend_on_the_recipes_beside_it(recipes):
    def curve_of(names):
        tasks, streams = {}, {}
        for n in names:  # as seen_main keeps them: each task's streams right after it is built
            tasks[n] = NoiseTask(seed=0 if n == "a" else 1)
            streams[n] = tasks[n].rng_state()
        scores = recipes.seen_curves(tasks, streams, lambda task, n: (task.total,), {n: [3, 6] for n in names}, 1)
        return [p.fid for p in scores["a"]]

    assert curve_of(["a"]) == curve_of(["a", "b"])


def test_combine_refuses_runs_whose_points_differ(recipes, tmp_path):
    def report(seen):
        point = {"images_seen": seen, "steps": 1, "cpu_s": 1.0, "fid": 100.0}
        return {"competition": "c", "seed": 0, "fid_images": 8, "reference_images": 8, "curves": {"a": [point]},
                "costs": {"a": {"cpu_s": 0.1}}, "images_per_step": {"a": 4},
                "operations": {"a": {"projected_s": 0.01}}, "projections": {"a": {"fid_equal_cpu": 100.0}}}

    with pytest.raises(SystemExit, match="a's points differ"):
        recipes.combine_rows([report(32), report(64)])
    names, rows = recipes.combine_rows([report(32), report(32)])
    assert names == ["a"] and rows["a"]["cpu_ms_image"] == pytest.approx(25.0)
