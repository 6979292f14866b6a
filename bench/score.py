"""Scoring like for like: kompete's `score` against pytorch-fid and torchmetrics on the same images, the same
Inception input path (pytorch-fid's: bilinear to 299 inside the network, 2x-1) and the same weights.

Reference: R images of the procedural sample-dogs set at 64x64 (PNG); generated: the next images, lightly
noised, as PNG files (pytorch-fid reads the folder) and as images.zip (kompete reads the zip). Every method's
network is built before the clock starts (kompete keeps its own loaded for the process). Timed, in
interleaved rounds, for each size in --sizes (the growth table) with the reference statistics ready ("warm"):
  floor         the bare Inception forward over the generated images, already decoded
  kompete       score_path on the zip, reference statistics from its cache
  pytorch-fid   get_activations on the generated files, calculate_frechet_distance (scipy sqrtm) against the
                saved reference statistics, Kaggle's numpy memorization step against the saved features
  torchmetrics  MemorizationInformedFrechetInceptionDistance with the real features kept: reset, update with
                the generated images, compute. Its own default extractor (torch-fidelity's FID Inception, its
                own resize) when torch-fidelity and its weights are there; otherwise kompete's network (labelled)
and once "cold", at the largest size, with the reference rebuilt by each (kompete: rebuild_reference).

    python bench/score.py [--sizes 1000,5000,10000] [--ref 20000] [--device cuda]   # the GPU growth table
    python bench/score.py                    # CPU defaults: --sizes 100,200 --ref 400
    python bench/score.py --smoke            # seconds of kompete; the peers pay scipy's 2048-d sqrtm
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Harness, bench_arguments  # noqa: E402
from kompete.archive import ZipImageWriter  # noqa: E402
from kompete.config import load_config  # noqa: E402
from kompete.data import reference_files  # noqa: E402
from kompete.metrics.features import extract_features, load_inception  # noqa: E402
from kompete.metrics.score import score_path  # noqa: E402
from kompete.metrics.weights import find_weights, load_state_dict  # noqa: E402

PREPROCESS = "pytorch-fid"  # the one input path all three methods share


def prepare(root: Path, sizes: list[int], n_ref: int) -> tuple[Path, list[Path], dict[int, Path], np.ndarray]:
    """Reference PNGs under root/data/all-dogs; generated PNGs; one zip per size (its first n images)."""
    n_gen = max(sizes)
    cfg = load_config("sample-dogs", [f"data.sample.n_images={n_gen + n_ref}"])
    files = reference_files(cfg)
    rng = np.random.default_rng(0)
    ref_dir, gen_dir = root / "data" / "all-dogs", root / "gen"
    ref_dir.mkdir(parents=True)
    gen_dir.mkdir()
    pixels = []
    for i, f in enumerate(files[:n_ref + n_gen]):
        img = np.asarray(Image.open(f).convert("RGB").resize((64, 64), Image.LANCZOS))
        if i < n_ref:
            Image.fromarray(img).save(ref_dir / f"{i:05d}.png")
        else:
            img = np.clip(img.astype(np.int16) + rng.integers(-8, 9, img.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(gen_dir / f"{i:05d}.png")
            pixels.append(img)
    gen_files = sorted(gen_dir.iterdir())
    zips = {}
    for n in sizes:
        zips[n] = root / f"images-{n}.zip"
        with ZipImageWriter(zips[n]) as zw:
            for img in pixels[:n]:
                zw.add(img)
    return root / "data", gen_files, zips, np.stack(pixels)


def kaggle_memorization(gen: np.ndarray, ref: np.ndarray) -> float:
    """Kaggle's scorer, verbatim in spirit: float64 numpy, full distance matrix."""
    g = gen[gen.sum(axis=1) != 0].astype(np.float64)
    r = ref[ref.sum(axis=1) != 0].astype(np.float64)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    return float(np.mean(np.min(1.0 - np.abs(g @ r.T), axis=1)))


class PytorchFid:
    """pytorch-fid's own functions with its own InceptionV3, given the same state dict."""

    def __init__(self, state: dict, dev: torch.device, ref_files: list[Path], workers: int):
        from pytorch_fid import inception as pfi

        full = {**state, "fc.weight": torch.zeros(1008, 2048), "fc.bias": torch.zeros(1008)}
        with mock.patch.object(pfi, "load_state_dict_from_url", lambda *a, **k: full):
            self.model = pfi.InceptionV3([3]).eval().to(dev)
        self.dev, self.ref_files, self.workers = dev, ref_files, workers
        self.ref_act = self.ref_mu = self.ref_sigma = None

    def activations(self, files: list[Path]) -> np.ndarray:
        from pytorch_fid import fid_score

        with mock.patch("sys.stderr", open(os.devnull, "w")):  # its "batch size > data size" notice
            return fid_score.get_activations(files, self.model, min(50, len(files)), 2048, self.dev, self.workers)

    def reference(self) -> None:
        self.ref_act = self.activations(self.ref_files)
        self.ref_mu, self.ref_sigma = self.ref_act.mean(0), np.cov(self.ref_act, rowvar=False)

    def score(self, files: list[Path]) -> tuple[float, float]:
        from pytorch_fid import fid_score

        act = self.activations(files)
        with warnings.catch_warnings(), mock.patch("builtins.print"):  # sqrtm's singular-product message
            warnings.simplefilter("ignore")
            fid = fid_score.calculate_frechet_distance(act.mean(0), np.cov(act, rowvar=False), self.ref_mu,
                                                       self.ref_sigma)
        return float(fid), kaggle_memorization(act, self.ref_act)


class Torchmetrics:
    """torchmetrics' MiFID: its own extractor where it can build one offline, else kompete's network."""

    def __init__(self, kompete_model: torch.nn.Module, dev: torch.device):
        from torchmetrics.image.mifid import MemorizationInformedFrechetInceptionDistance as MiFID

        self.dev = dev
        try:
            self.make = lambda: MiFID(feature=2048, reset_real_features=False).to(dev)
            self.make()
            self.label = "torchmetrics (its own extractor)"
        except Exception as exc:  # torch-fidelity missing, or its weights not downloadable here
            reason = str(exc).splitlines()[0][:120]
            feature = Pool3(kompete_model)
            self.make = lambda: MiFID(feature=feature, reset_real_features=False).to(dev)
            self.label = "torchmetrics (kompete's network)"
            self.why = f"its own extractor unavailable offline: {reason}"
        self.metric = None

    def update(self, files: list[Path], real: bool) -> None:
        for i in range(0, len(files), 50):
            batch = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files[i:i + 50]])
            self.metric.update(torch.from_numpy(batch).permute(0, 3, 1, 2).to(self.dev), real=real)

    def cold(self, ref_files: list[Path], files: list[Path]) -> float:
        self.metric = self.make()
        self.update(ref_files, real=True)
        return self.warm(files)

    def warm(self, files: list[Path]) -> float:
        self.metric.reset()  # keeps the real features (reset_real_features=False)
        self.update(files, real=False)
        return float(self.metric.compute())


class Pool3(torch.nn.Module):
    """uint8 NCHW in, pool3 features out: torchmetrics' feature interface over kompete's network."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.float() / 255)[0].flatten(1)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    gpu = torch.cuda.is_available()
    ap.add_argument("--sizes", default="1000,5000,10000" if gpu else "100,200", help="generated images per table")
    ap.add_argument("--ref", type=int, default=20000 if gpu else 400, help="reference images")
    ap.add_argument("--device", default="cuda" if gpu else "cpu")
    bench_arguments(ap, rounds=3)
    args = ap.parse_args(argv)
    if args.smoke:
        args.sizes, args.ref, args.rounds = "8", 16, 1
    sizes = sorted(int(s) for s in args.sizes.split(","))
    os.environ.setdefault("KOMPETE_CACHE_DIR", tempfile.mkdtemp(prefix="kompete-bench-cache-"))
    with tempfile.TemporaryDirectory() as tmp:
        run(args, sizes, Path(tmp))


def run(args: argparse.Namespace, sizes: list[int], tmp: Path) -> None:
    dev = torch.device(args.device)
    data_dir, gen_files, zips, pixels = prepare(tmp, sizes, args.ref)
    ref_files = sorted((data_dir / "all-dogs").iterdir())
    source = find_weights()
    model = load_inception(source, dev, preprocess=PREPROCESS)
    pf = PytorchFid(load_state_dict(source), dev, ref_files, 0 if args.smoke else min(os.cpu_count() or 1, 2))
    tm = Torchmetrics(model, dev)
    h = Harness("score", args)
    h.note("setting", f"{source.describe()['name']}; {args.ref} reference images at 64x64, device {dev}, "
                      f"{torch.get_num_threads()} threads, input path {PREPROCESS} for all")
    if hasattr(tm, "why"):
        h.note("torchmetrics", tm.why)
    kw = dict(data_dir=data_dir, weights=source.path, device=str(dev))
    cfgs = {n: load_config("sample-dogs", [f"output.n_min={n}", f"output.n_max={n}", f"generate.n_images={n}",
                                           "metric.reference_limit=0",
                                           f"metric.preprocess={PREPROCESS}"]) for n in sizes}
    got: dict[str, object] = {}
    cold_n = sizes[-1]

    def kompete(n: int, cold: bool):
        return lambda: got.__setitem__("kompete", score_path(cfgs[n], zips[n], rebuild_reference=cold, **kw))

    def pytorch_fid(n: int, cold: bool):
        def case() -> None:
            if cold or pf.ref_act is None:
                pf.reference()
            got["pytorch-fid"] = pf.score(gen_files[:n])
        return case

    def torchmetrics(n: int, cold: bool):
        def case() -> None:
            got["torchmetrics"] = (tm.cold(ref_files, gen_files[:n]) if cold or tm.metric is None
                                   else tm.warm(gen_files[:n]))
        return case

    cold_cases = {"kompete": kompete(cold_n, True)}
    if not args.smoke:  # the peers' cold paths add only the reference features to their warm ones
        cold_cases.update({"pytorch-fid": pytorch_fid(cold_n, True), tm.label: torchmetrics(cold_n, True)})
    h.compare(f"cold: {cold_n} generated, the reference rebuilt by each", cold_cases, units=cold_n)
    for n in sizes:
        extract_features(model, pixels[:min(8, n)], device=dev)  # warm-up (allocator, cuDNN plans)
        h.compare(f"warm: {n} generated, reference statistics ready", {
            "Inception floor": lambda n=n: extract_features(model, pixels[:n], device=dev),
            "kompete": kompete(n, False), "pytorch-fid": pytorch_fid(n, False), tm.label: torchmetrics(n, False)},
            units=n)
    agreement(h, got)
    h.finish()


def agreement(h: Harness, got: dict) -> None:
    """The last warm round's values side by side: same images, input path and weights, so FID should agree."""
    k = got["kompete"]
    pf_fid, pf_d = got["pytorch-fid"]
    h.note("FID kompete vs pytorch-fid", f"{k.fid:.6f} vs {pf_fid:.6f} (relative {abs(k.fid - pf_fid) / pf_fid:.1e})")
    h.note("memorization distance kompete vs Kaggle numpy", f"{k.memorization_distance:.6f} vs {pf_d:.6f}")
    h.note("MiFID kompete vs torchmetrics", f"{k.mifid:.4f} vs {got['torchmetrics']:.4f} (torchmetrics takes the "
                                            "memorization minimum the other way round)")
    h.note("kompete warm breakdown s", {name: round(v, 3) for name, v in k.seconds.items()})


if __name__ == "__main__":
    main()
