"""`kompete demo`: the whole pipeline on every sample competition, as the README's first command runs it."""

import json
import zipfile

import pytest

from tests.conftest import run_kompete


@pytest.mark.slow
def test_demo_runs_every_stage_offline(tmp_path):
    out = tmp_path / "demo"
    res = run_kompete("demo", "--out", str(out), "--train-seconds", "5", "--no-score")
    assert res.returncode == 0, res.stderr
    for name, n, suffix in (("sample-dogs", 10_000, ".png"), ("sample-monet", 256, ".jpg"),
                            ("sample-faces", 256, ".png")):
        run = out / name
        with zipfile.ZipFile(run / "images.zip") as zf:
            names = zf.namelist()
        assert len(names) == n and all(x.endswith(suffix) for x in names)
        if name == "sample-faces":  # output.layout by_class: one folder per class, balanced
            folders = [x.split("/")[0] for x in names]
            assert all(x.count("/") == 1 for x in names)
            assert {f: folders.count(f) for f in set(folders)} == {"masked": n // 2, "unmasked": n // 2}
        for picture in ("losses.png", "samples/final.png"):
            assert (run / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert list((run / "checkpoints").glob("*.pt"))
        assert f"{name}: validate as Kaggle would" in res.stdout
    meta = json.loads((out / "kernels" / "sample-dogs" / "kernel-metadata.json").read_text())
    assert meta["enable_internet"] is False and meta["id"] == "demo/kompete-sample-dogs"
    assert "demo finished" in res.stdout
