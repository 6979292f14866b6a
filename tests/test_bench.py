"""The benchmark scripts run: gpu.py's CPU dry run covers every part, recipes.py a tiny tournament."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO


def run_script(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=timeout)


def test_gpu_dry_run_exercises_every_part(tmp_path):
    proc = run_script("bench/gpu.py", "--dry-run", "--out", str(tmp_path), "--inception", "torchvision")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "bench-gpu.json").read_text())
    parts = ("dogs_train", "sdpa", "cyclegan", "zips", "mifid", "t4")
    assert all(p in report and "error" not in report[p] for p in parts), {p: report.get(p) for p in parts}
    assert report["meta"]["dry_run"] is True
    kompete_rows = [r for r in report["dogs_train"]["rows"] if r["loop"] == "kompete"]
    assert {(r["amp"], r["compile"]) for r in kompete_rows} == {
        (True, False), (True, True), (True, "reduce-overhead"), (False, False), (False, True)}
    assert report["sdpa"]["shipped"]["backend"] != "math"  # kompete's attention takes a fused kernel
    assert all(r["images_per_s"] > 0 for r in report["dogs_train"]["rows"])
    assert report["zips"]["dogs_zip_valid"] and report["zips"]["monet_zip_valid"]
    assert report["mifid"]["warm_hit"] is True and "torchvision" in report["mifid"]["network"]
    assert "PROJECTION" in report["t4"]["label"]
    assert (tmp_path / "bench-gpu.md").read_text().startswith("# bench/gpu.py")


def test_gpu_without_cuda_says_so(tmp_path):
    env_cuda = {"CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "bench/gpu.py", "--out", str(tmp_path)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env_cuda}, cwd=REPO, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("Error: no CUDA device")
    assert not (tmp_path / "bench-gpu.json").exists()


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
