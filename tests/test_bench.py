"""The benchmarks run: the harness pairs rounds honestly, every bench has a --smoke form that the suite runs,
gpu.py's CPU dry run covers every part under its time caps, recipes.py runs a tiny tournament."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time

import pytest

from bench import harness
from tests.conftest import REPO

# every bench script but the harness itself; gpu.py's smoke is its dry run, recipes.py has its own test below
# not timed benches of their own: the harness, the GPU suite (its --dry-run is tested below), the recipe
# tournament (tests/test_recipes_seen.py runs its --smoke), the clip-art set builder (needs a Debian package)
BENCHES = sorted(p.stem for p in (REPO / "bench").glob("*.py") if p.stem not in ("harness", "gpu", "recipes", "realdata"))


def run_script(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=timeout)


# --------------------------------------------------------------------------- the harness


def test_rounds_interleave_and_rotate_so_no_case_always_runs_first(tmp_path):
    order: list[str] = []
    h = harness.Harness("t", argparse.Namespace(smoke=True, rounds=3, out=tmp_path))
    h.compare("x", {"a": lambda: order.append("a"), "b": lambda: order.append("b"), "c": lambda: order.append("c")})
    assert order == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]


def test_ratios_are_paired_within_rounds_not_medians_divided():
    comp = harness.Comparison("x", "plain", None, "images", wall={"plain": [1.0, 4.0, 2.0], "ours": [2.0, 2.0, 2.0]},
                              cpu={"plain": [1, 1, 1], "ours": [1, 1, 1]})
    assert comp.ratios("ours") == [2.0, 0.5, 1.0]
    ratio = comp.summary()["ours"]["ratio"]
    assert (ratio["median"], ratio["min"], ratio["max"]) == (1.0, 0.5, 2.0)


def test_counts_per_case_make_ratios_per_unit():
    comp = harness.Comparison("x", "plain", {"plain": 10, "ours": 40}, "images",
                              wall={"plain": [1.0], "ours": [2.0]}, cpu={"plain": [1], "ours": [1]})
    assert comp.ratios("ours") == [0.5]  # twice the time for four times the images
    assert comp.summary()["ours"]["images_per_s"]["median"] == 20


def test_a_case_may_report_its_own_seconds_and_the_report_is_written(tmp_path):
    h = harness.Harness("t", argparse.Namespace(smoke=True, rounds=2, out=tmp_path))
    h.compare("x", {"base": lambda: 2.0, "other": lambda: 1.0, "path": lambda: tmp_path}, units=4)
    h.note("agreement", "1e-9")
    path = h.finish()
    report = json.loads(path.read_text())
    summary = report["comparisons"][0]["summary"]
    assert summary["other"]["ratio"]["median"] == 0.5 and summary["base"]["wall_s"]["median"] == 2.0
    assert summary["path"]["wall_s"]["median"] < 1  # a non-number return is not taken for seconds
    assert report["notes"] == {"agreement": "1e-9"} and report["smoke"] is True
    assert {"load_1min", "cpus", "host"} <= set(report["machine"])
    assert len(report["comparisons"][0]["load"]) == 2
    md = (tmp_path / "t.md").read_text()
    assert "| other |" in md and "0.5 (0.5-0.5)x" in md and "interleaved rounds, load" in md


def test_every_bench_has_a_smoke_form_and_make_runs_them_all():
    for name in BENCHES:
        text = (REPO / "bench" / f"{name}.py").read_text()
        assert "bench_arguments(" in text and "Harness(" in text, f"bench/{name}.py does not use the harness"
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^bench-smoke:", makefile, re.M) and "$(BENCHES)" in makefile
    assert "filter-out bench/harness.py bench/gpu.py bench/recipes.py bench/realdata.py" in makefile
    assert "make test-all" in (REPO / ".ci" / "run").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("name", BENCHES)
def test_smoke_bench_runs_and_writes_its_tables(name, tmp_path):
    proc = run_script(f"bench/{name}.py", "--smoke", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / f"{name}.json").read_text())
    assert report["smoke"] is True and report["comparisons"], report
    for comp in report["comparisons"]:
        for case, row in comp["summary"].items():
            assert row["wall_s"]["median"] >= 0, (comp["title"], case)
            if "ratio" in row:
                assert math.isfinite(row["ratio"]["median"]), (comp["title"], case, row)
    assert (tmp_path / f"{name}.md").read_text().startswith(f"# bench/{name}.py (smoke)")


# --------------------------------------------------------------------------- gpu.py


def test_a_part_that_overruns_its_cap_is_stopped_and_the_next_one_runs():
    from bench import gpu

    suite = gpu.Suite(limit_s=60, dry=False)
    suite.min_box_s = 0
    suite.part("slow", lambda: time.sleep(30) or {}, cap_s=0.2)
    suite.part("next", lambda: {"ran": True}, cap_s=5)
    assert "time cap" in suite.results["slow"]["error"]
    assert suite.results["next"]["ran"] is True


def test_a_part_with_no_time_left_is_skipped_not_started():
    from bench import gpu

    suite = gpu.Suite(limit_s=1, dry=False)
    started = []
    suite.part("late", lambda: started.append(1) or {}, cap_s=60)
    assert "skipped" in suite.results["late"] and not started


@pytest.mark.slow
def test_gpu_dry_run_exercises_every_part(tmp_path):
    proc = run_script("bench/gpu.py", "--dry-run", "--out", str(tmp_path), "--inception", "torchvision")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "bench-gpu.json").read_text())
    parts = ("sdpa", "t4", "zips", "mifid", "eval", "cyclegan", "dogs_train")
    assert all(p in report and "error" not in report[p] for p in parts), {p: report.get(p) for p in parts}
    assert [k for k in report if k != "meta"] == list(parts)  # cheap parts first, the compile rows last
    assert report["meta"]["dry_run"] is True and all("cap_s" in report[p] for p in parts)
    kompete_rows = [r for r in report["dogs_train"]["rows"] if r["loop"] == "kompete"]
    assert {(r["precision"], r["compile"]) for r in kompete_rows} == {
        ("auto", False), ("fp16", False), ("fp32", False), ("auto", True), ("fp16", True),
        ("auto", "reduce-overhead"), ("fp16", "reduce-overhead"), ("fp32", True)}
    assert all(r["precision_used"] == "fp16+scaler" for r in kompete_rows if r["precision"] == "fp16")
    assert [r["compile"] for r in kompete_rows][:3] == [False, False, False]  # eager rows before compiling
    assert report["sdpa"]["shipped"]["backend"] != "math"  # kompete's attention takes a fused kernel
    assert all(r["images_per_s"] > 0 for r in report["dogs_train"]["rows"]), report["dogs_train"]["rows"]
    assert report["zips"]["dogs_zip_valid"] and report["zips"]["monet_zip_valid"]
    assert report["mifid"]["warm_hit"] is True and "torchvision" in report["mifid"]["network"]
    assert report["eval"]["evaluations"] >= 1 and report["eval"]["steps"] > 0
    assert "PROJECTION" in report["t4"]["label"]
    assert (tmp_path / "bench-gpu.md").read_text().startswith("# bench/gpu.py")


@pytest.mark.slow
def test_gpu_without_cuda_says_so(tmp_path):
    env_cuda = {"CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "bench/gpu.py", "--out", str(tmp_path)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env_cuda}, cwd=REPO, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("Error: no CUDA device")
    assert not (tmp_path / "bench-gpu.json").exists()


# --------------------------------------------------------------------------- recipes.py


@pytest.mark.slow
def test_recipes_tiny_tournament(tmp_path):
    recipes = tmp_path / "r.yaml"
    recipes.write_text("base: generative-dog-images\ncompetition: sample-dogs\n"
                       "profiles:\n  cpu: {budget_s: 3, seeds: [0], n_images: 16, curve_points: 1, threads: 1,\n"
                       "        set: [data.image_size=16, train.g_channels=4, train.d_channels=4, train.batch_size=8,"
                       " gan.self_attention=false, train.log_every=2, data.sample.n_images=32,"
                       " data.sample.image_size=32, metric.reference_limit=24]}\n"
                       "recipes:\n  kompete: []\n"
                       "  future: [train.loss=no_such_loss]\n"
                       "  optional: {set: [train.model=dcgan, train.loss=bce, gan.ema_decay=0], optional: [train.no_such_key=2]}\n")
    proc = run_script("bench/recipes.py", "sample-dogs", "--recipes", str(recipes), "--profile", "cpu",
                      "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = tmp_path / "out" / "sample-dogs"
    saved = json.loads((out / "results.json").read_text())
    results = saved["runs"]
    assert results["future"] == [] and "skipped" in saved["notes"]["future"][0]
    assert "dropped train.no_such_key=2" in proc.stdout
    for name in ("kompete", "optional"):
        run = results[name][0]
        assert run["error"] == "" and run["steps"] > 0, run
        assert len(run["points"]) >= 1 and all(p["fid"] > 0 for p in run["points"])
    md = (out / "results.md").read_text()
    assert "| kompete | 1 |" in md and "| optional | 1 |" in md
    assert (out / "curves.png").is_file() and (out / "samples.png").is_file()
