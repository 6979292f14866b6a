"""Everything GPU in one call of at most 8 minutes (a 10-minute window on a bare GPU machine, start-up
included): writes bench-gpu.json and bench-gpu.md.

Cheap parts first; each part runs under its own time cap (SIGALRM: a part that overruns is stopped and
reported, the next one starts), and no cap reaches past --limit-s, so the whole is enforced, not just checked
between parts. A failing part reports its error and the rest go on. In the order they run:
  sdpa         which scaled_dot_product_attention backends accept the SN-GAN self-attention's shapes
               (q/k C/8, v C, scale 1.0, 1,024 tokens) and what each costs, against q/k padded to v's width
               (what kompete's SelfAttention now feeds), and the backend SDPA picks for the shipped module
  t4           projections for a T4 (65 TFLOP/s fp16, 320 GB/s) from counted FLOPs and bytes: labelled projections
  cyclegan     CycleGAN 256x256 batch 1 iterations/s, kompete vs a plain loop (bench/train_monet.py's)
  zips         10,000 dog images and 7,038 Monet translations into a valid zip: seconds
  mifid        10,000 generated vs 20,579 reference images: cold (reference built) and warm, and the
               bare Inception forward floor
  eval         in-training evaluation: a short dog run with the evaluation callback (2,000 images each time),
               the seconds each evaluation takes and their share of the training time
  cyclegan     (as above)
  dogs_train   images/s of kompete's Trainer vs a plain fp32 DataLoader loop (bench/train_dogs.py's), the dog
               default model (SN-GAN cond, self-attention) at 64x64. Eager rows first: the card's own AMP
               (bf16 from sm_80), fp16 + GradScaler forced (the T4's only mixed precision, timed here on this
               card), fp32; then torch.compile rows and reduce-overhead (CUDA graphs); batch 64, then 128 while
               time lasts; plain loop with channels_last off/on; peak memory; MFU from counted FLOPs

Runs with torch, torchvision, pyyaml, pandas, matplotlib, tqdm and the kompete source only. The Inception
weights are seeded random ones (timing only, never a score). pytorch-fid builds the network when importable
(also from a pytorch_fid-*.whl put in --wheel-dir: a wheel is an importable zip); without it, torchvision's
Inception3 with the same convolutions stands in (the FID blocks differ only in pooling; labelled in the output).

    python bench/gpu.py [--out bench-results] [--limit-s 480]
    python bench/gpu.py --dry-run     # every code path at tiny sizes on the CPU (the test suite runs this)
    python bench/gpu.py --smoke       # the same as --dry-run (the name every bench shares)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from argparse import Namespace
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kompete.config import load_config  # noqa: E402

T4 = {"name": "T4 (projection)", "flops": 65e12, "bytes": 320e9}
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L4": 121e12, "T4": 65e12, "A10": 125e12}


def load_bench(name: str):
    """bench/train_dogs.py or train_monet.py as a module (their plain loops are the baselines)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class Suite:
    def __init__(self, limit_s: float, dry: bool, inception: str = "auto"):
        self.start, self.limit_s, self.dry, self.inception = time.monotonic(), limit_s, dry, inception
        self.results: dict[str, dict] = {}
        self.min_box_s = 5.0  # a part given less than this is skipped, not started

    def left(self) -> float:
        return self.limit_s - (time.monotonic() - self.start)

    def part(self, name: str, fn, cap_s: float) -> None:
        """Run one part under min(its cap, what is left of the limit); an overrun or error is its result."""
        box = self.left() if self.dry else min(cap_s, self.left())
        if box < self.min_box_s:
            self.results[name] = {"skipped": f"{self.left():.0f} s left of the {self.limit_s:.0f} s limit"}
            print(f"== {name}: skipped (time)", flush=True)
            return
        print(f"== {name} (cap {box:.0f} s)", flush=True)
        t = time.monotonic()
        try:
            with time_box(box, name):
                self.results[name] = fn()
        except Exception as exc:  # a part's failure (or overrun) is a result, not the end of the suite
            self.results[name] = {"error": f"{type(exc).__name__}: {exc}"[:400],
                                  "where": traceback.format_exc().splitlines()[-3][:200]}
            print(f"   error: {self.results[name]['error']}", flush=True)
        self.results[name]["part_seconds"] = round(time.monotonic() - t, 1)
        self.results[name]["cap_s"] = round(box)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


class TimeUp(Exception):
    """A time box ran out."""


@contextlib.contextmanager
def time_box(seconds: float, what: str):
    """Raise TimeUp inside the block after `seconds` (SIGALRM, main thread). Boxes nest: an inner one never
    outlives the outer one, and the outer one's clock is re-armed with what it has left."""
    outer_left, _ = signal.getitimer(signal.ITIMER_REAL)
    limit = min(seconds, outer_left) if outer_left else seconds
    start = time.monotonic()

    def ring(signum, frame):
        raise TimeUp(f"{what} stopped at its {limit:.0f} s time cap")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, max(limit, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left:
            signal.setitimer(signal.ITIMER_REAL, max(outer_left - (time.monotonic() - start), 0.01))


# ----------------------------------------------------------------------------- counting


def count_flops_bytes(fn) -> tuple[float, float]:
    """FLOPs (torch's counter) and bytes read+written by every op, unfused (an upper bound on traffic)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    class Bytes(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in [*args, *(kwargs or {}).values(), *(out if isinstance(out, (list, tuple)) else [out])]:
                if isinstance(t, torch.Tensor):
                    Bytes.total += t.numel() * t.element_size()
            return out

    flops = FlopCounterMode(display=False)
    with flops, Bytes():
        fn()
    return float(flops.get_total_flops()), float(Bytes.total)


# (precision, train.compile) of the kompete rows, eager ones first (compiling costs a minute a row). "auto" is
# what kompete picks on this card (bf16 from sm_80, else fp16); "fp16" forces fp16 + GradScaler, the T4's path.
KOMPETE_SETTINGS = (("auto", False), ("fp16", False), ("fp32", False), ("auto", True), ("fp16", True),
                    ("auto", "reduce-overhead"), ("fp16", "reduce-overhead"), ("fp32", True))
ROW_CAP_S = 100  # one configuration (a compile included) may not eat the part


def dog_config(batch: int, amp: bool, compile_: bool | str, dry: bool):
    recipe = load_config("generative-dog-images")
    keys = ("model", "loss", "lr_g", "lr_d", "beta1", "beta2", "g_channels", "d_channels")
    gan = ("z_dim", "self_attention", "pixel_norm", "minibatch_std", "ema_decay")
    train = [f"train.{k}={json.dumps(getattr(recipe.train, k))}" for k in keys]
    train += [f"gan.{k}={json.dumps(getattr(recipe.algo, k))}" for k in gan]
    size = ["data.image_size=16", "train.g_channels=8", "train.d_channels=8", "data.sample.n_images=64",
            "data.sample.image_size=32"] if dry else ["data.image_size=64", "data.sample.n_images=2048"]
    return load_config("sample-dogs", [*train, *size, f"train.batch_size={batch}", f"train.amp={str(amp).lower()}",
                                       f"train.compile={json.dumps(compile_)}", "train.log_every=50",
                                       "train.sample_every_epochs=100000", "train.checkpoint_minutes=1000"])


@contextlib.contextmanager
def forced_precision(td, precision: str, seen: list):
    """make_context with fp16 (+ GradScaler) forced when `precision` is fp16, on any card (and on the CPU in a
    dry run, where autocast and the scaler then run too); the precision each context got goes into `seen`."""
    from kompete.train import context as context_mod

    original = context_mod.make_context

    def make(cfg, device=None):
        ctx = original(cfg, device)
        if precision == "fp16":
            ctx.amp_dtype = torch.float16
        seen.append({torch.float16: "fp16+scaler", torch.bfloat16: "bf16"}.get(ctx.amp_dtype, "fp32"))
        return ctx

    with mock.patch.object(context_mod, "make_context", make), mock.patch.object(td, "make_context", make):
        yield


def dog_step_cost(cfg, data) -> tuple[float, float]:
    """FLOPs and bytes of one training step (D on real and fake, G through D), counted on the CPU in fp32."""
    from kompete import losses
    from kompete.models import GAN_NETWORKS

    built = GAN_NETWORKS.get(cfg.train.model)(cfg, max(1, len(data.classes)))
    G, D, loss = built.generator, built.discriminator, losses.build(cfg.train.loss, cfg.loss)
    b, s = min(cfg.train.batch_size, 8), cfg.data.image_size
    x, y = torch.randn(b, 3, s, s), torch.zeros(b, dtype=torch.long)
    yc = y if built.conditional else None

    def step():
        fake = G(torch.randn(b, built.z_dim), yc)
        loss.d(D(x, yc), D(fake.detach(), yc)).backward()
        g_real = D(x, yc).detach() if loss.needs_real_for_g else None
        loss.g(g_real, D(fake, yc)).backward()

    flops, nbytes = count_flops_bytes(step)
    return flops / b, nbytes / b  # per image


def part_dogs(suite: Suite) -> dict:
    from kompete.algorithms.base import task_class

    td = load_bench("train_dogs")
    dry = suite.dry
    steps, warmup = (3, 1) if dry else (60, 15)
    out = Path(tempfile.mkdtemp(prefix="bench-gpu-dogs-"))
    rows: list[dict] = []
    peak = peak_flops()
    cfg = dog_config(8 if dry else 64, True, False, dry)
    data = task_class(cfg).load_data(cfg, progress=False)
    flops_img, bytes_img = dog_step_cost(cfg, data)
    result = {"rows": rows, "flops_per_image": flops_img, "bytes_per_image": bytes_img,
              "peak_flops_assumed": peak, "size": cfg.data.image_size}
    try:
        dog_rows(suite, td, data, rows, out, steps, warmup, flops_img, peak)
    except TimeUp as exc:  # the part's cap: keep the rows measured so far
        result["stopped"] = str(exc)
    return result


def dog_rows(suite: Suite, td, data, rows: list, out: Path, steps: int, warmup: int, flops_img: float, peak) -> None:
    dry = suite.dry
    for batch in ((8,) if dry else (64, 128)):
        settings = [(p, c) for p, c in KOMPETE_SETTINGS if not c] + [None] + [(p, c) for p, c in KOMPETE_SETTINGS if c]
        for setting in settings:
            if setting is None:  # the plain loop's rows between the eager and the compiled ones
                rows += plain_rows(td, batch, steps, warmup, data, flops_img, peak, dry)
                continue
            precision, comp = setting
            cfg = dog_config(batch, precision != "fp32", comp, dry)
            row = {"loop": "kompete", "batch": batch, "precision": precision, "compile": comp}
            seen: list[str] = []

            def measure(cfg=cfg, run_dir=out / f"b{batch}-{precision}-{comp}", precision=precision, seen=seen):
                with forced_precision(td, precision, seen):
                    seconds, mem = td.bench_kompete(cfg, data, steps, warmup, run_dir)
                return steps * batch * cfg.train.d_steps / seconds, mem

            rows.append(throughput_row(row, measure, flops_img, peak, suite))
            row["precision_used"] = seen[0] if seen else None


def plain_rows(td, batch: int, steps: int, warmup: int, data, flops_img: float, peak, dry: bool) -> list[dict]:
    cfg = dog_config(batch, False, False, dry)
    rows = []
    for cl in (False, True):
        row = {"loop": "plain fp32", "batch": batch, "precision": "fp32", "compile": False, "channels_last": cl}

        def measure(cl=cl):
            seconds, mem = plain_dogs(td, cfg, data, steps, warmup, cl, 0 if dry else 2)
            return steps * batch / seconds, mem

        rows.append(throughput_row(row, measure, flops_img, peak, None))
    return rows


def throughput_row(row: dict, measure, flops_img: float, peak: float | None, suite: Suite | None = None) -> dict:
    """`row` with images/s, peak memory and MFU from `measure()` -> (images/s, GiB), or the error it raised;
    each row is boxed to ROW_CAP_S (a slow compile costs its row, not the rest of the part)."""
    try:
        with time_box(ROW_CAP_S if suite is None or not suite.dry else 600, f"row {row}"):
            ips, mem = measure()
        row.update(images_per_s=round(ips, 1), peak_gib=round(mem, 2),
                   mfu=round(ips * flops_img / peak, 4) if peak else None)
    except TimeUp as exc:
        if "row" not in str(exc):  # the part's own box rang: stop the part
            raise
        row["error"] = str(exc)[:200]
    except Exception as exc:  # one failed configuration must not end the suite
        row["error"] = f"{type(exc).__name__}: {exc}"[:200]
    print(f"   {row}", flush=True)
    return row


def plain_dogs(td, cfg, data, steps: int, warmup: int, channels_last: bool, workers: int) -> tuple[float, float]:
    """bench/train_dogs.py's plain loop; channels_last converts the modules and batches as a user would."""
    if not channels_last:
        return td.bench_plain(cfg, data, steps, warmup, workers)
    orig_to = torch.Tensor.to

    def to_cl(self, *a, **k):  # the loop's `x.to(device)` of a 4-D batch, made channels_last
        out = orig_to(self, *a, **k)
        return out.contiguous(memory_format=torch.channels_last) if out.dim() == 4 else out

    orig_module_to = torch.nn.Module.to

    def module_to(self, *a, **k):
        return orig_module_to(orig_module_to(self, *a, **k), memory_format=torch.channels_last)

    torch.Tensor.to, torch.nn.Module.to = to_cl, module_to  # only for the plain loop, restored below
    try:
        return td.bench_plain(cfg, data, steps, warmup, workers)
    finally:
        torch.Tensor.to, torch.nn.Module.to = orig_to, orig_module_to


def peak_flops() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


# ----------------------------------------------------------------------------- sdpa


def part_sdpa(suite: Suite) -> dict:
    """SN-GAN self-attention shapes at 32x32: which fused backends take them, and padded q/k as a fix."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if dev == "cuda" else torch.float32
    n, c, tokens = (2, 16, 64) if suite.dry else (64, 128, 1024)  # D's 32x32 block at d_channels 64 has 128
    shapes = {"as built (qk C/8, v C)": (c // 8, c), "qk padded to C": (c, c)}
    rows = []
    for label, (dqk, dv) in shapes.items():
        q = torch.randn(n, tokens, dqk, device=dev, dtype=dtype, requires_grad=True)
        k = torch.randn(n, tokens, dqk, device=dev, dtype=dtype, requires_grad=True)
        v = torch.randn(n, tokens, dv, device=dev, dtype=dtype, requires_grad=True)
        backends = [("default", None), ("flash", SDPBackend.FLASH_ATTENTION),
                    ("efficient", SDPBackend.EFFICIENT_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION),
                    ("math", SDPBackend.MATH)]
        for name, backend in backends:
            row = {"shape": label, "backend": name, "qk": dqk, "v": dv}
            try:
                ctx = sdpa_kernel([backend]) if backend is not None else _null()
                with ctx:
                    ms = time_fn(lambda: F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None],
                                                                        scale=1.0).sum().backward(),
                                 3 if suite.dry else 20)
                row["ms_fwd_bwd"] = round(ms, 3)
            except Exception as exc:
                row["error"] = str(exc).splitlines()[0][:160]
            rows.append(row)
            print(f"   {row}", flush=True)
    return {"rows": rows, "device": dev, "dtype": str(dtype), "batch": n, "tokens": tokens, "channels": c,
            "shipped": shipped_attention_backend(dev, dtype, n, c, tokens)}


SDP_NAMES = {0: "math", 1: "flash", 2: "efficient", 3: "cudnn", 4: "overrideable"}


def shipped_attention_backend(dev: str, dtype: torch.dtype, n: int, c: int, tokens: int) -> dict:
    """The backend SDPA picks for kompete's own SelfAttention module, fed as training feeds it."""
    from kompete.models.sngan import SelfAttention

    side = int(tokens ** 0.5)
    attn = SelfAttention(c).to(dev)
    x = torch.randn(n, c, side, side, device=dev)
    if dev == "cuda":
        x, attn = x.contiguous(memory_format=torch.channels_last), attn.to(memory_format=torch.channels_last)
    with torch.autocast(dev, dtype=dtype, enabled=dev == "cuda"):
        q, k, v = attn.attention_inputs(x)
        choice = int(torch._fused_sdp_choice(q, k, v, scale=1.0))
    row = {"module": "SelfAttention", "qk": q.shape[-1], "v": v.shape[-1], "backend": SDP_NAMES.get(choice, choice)}
    print(f"   {row}", flush=True)
    return row


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def time_fn(fn, reps: int) -> float:
    fn()
    sync()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return (time.perf_counter() - t) / reps * 1000


# ----------------------------------------------------------------------------- cyclegan


def part_cyclegan(suite: Suite) -> dict:
    tm = load_bench("train_monet")
    dry = suite.dry
    a = Namespace(size=32 if dry else 256, batch=1, channels=4 if dry else 64, blocks=1 if dry else 9,
                  photos=8 if dry else 64, monets=8 if dry else 32, steps=2 if dry else 40,
                  warmup=1 if dry else 10, workers=0 if dry else 2, device=None)
    cfg = tm.make_config(a)
    pair = tm.make_domains(a)
    k_ips, k_mem = tm.bench_kompete(cfg, pair, a)
    p_ips, p_mem = tm.bench_plain(cfg, pair, a)
    per_it = 2 * a.batch  # the benchmarks count images of both domains
    return {"size": a.size, "batch": a.batch, "kompete_it_s": round(k_ips / per_it, 2),
            "plain_it_s": round(p_ips / per_it, 2), "ratio": round(k_ips / p_ips, 2),
            "kompete_peak_gib": round(k_mem, 2), "plain_peak_gib": round(p_mem, 2)}


# ----------------------------------------------------------------------------- zips


def part_zips(suite: Suite) -> dict:
    from kompete.generate import GenerateOptions, write_zip
    from kompete.algorithms.base import build_task
    from kompete.runtime.context import make_context

    dry = suite.dry
    out = Path(tempfile.mkdtemp(prefix="bench-gpu-zips-"))
    res = {}
    n = 64 if dry else 10000
    cfg = load_config("generative-dog-images", [f"output.n_min={n}"] + (
        ["data.image_size=16", "train.g_channels=8", "train.d_channels=8"] if dry else []))
    ctx = make_context(cfg)
    task = build_task(cfg, ctx, None, {"n_classes": 120})
    t = time.perf_counter()
    write_zip(task, cfg, out / "dogs.zip", GenerateOptions(n=n, batch_size=cfg.generate.batch_size, progress=False))
    res["dogs_images"], res["dogs_s"] = n, round(time.perf_counter() - t, 2)
    res["dogs_zip_valid"] = validate(cfg, out / "dogs.zip")
    n = 16 if dry else 7038
    cfg = load_config("gan-getting-started", [f"output.n_min={n}", f"generate.n_images={n}"] + (
        ["data.image_size=32", "output.image_size=32", "train.g_channels=4", "train.d_channels=4",
         "cut.n_blocks=1", "cut.nce_blocks=[1]"] if dry else []))  # the default, CUT
    ctx = make_context(cfg)
    task = build_task(cfg, ctx, None, {})
    size = cfg.data.image_size
    task.photos = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, device=ctx.device)
    t = time.perf_counter()
    write_zip(task, cfg, out / "monet.zip", GenerateOptions(n=n, batch_size=cfg.generate.batch_size, progress=False))
    res["monet_images"], res["monet_s"] = n, round(time.perf_counter() - t, 2)
    res["monet_zip_valid"] = validate(cfg, out / "monet.zip")
    return res


def validate(cfg, path: Path) -> bool:
    from kompete.archive import scan_zip

    o = cfg.output
    return not scan_zip(path, o.format, o.image_size, o.n_min, o.n_max).problems


# ----------------------------------------------------------------------------- mifid


def fid_network(kind: str = "auto", seed: int = 0, side: int = 299) -> tuple[torch.nn.Module, str]:
    """The FID Inception with seeded random weights: pytorch-fid's structure if importable, else torchvision's.

    `side` is the resolution Inception sees (299 as in FID; the dry run uses 80, Inception's near-minimum).
    """
    if kind in ("auto", "pytorch-fid"):
        try:
            import pytorch_fid  # noqa: F401

            from kompete.metrics.features import build_inception

            inner = build_inception(None, seed=seed, resize_input=False)
            return Resized(inner, side), f"pytorch-fid FID Inception at {side}px, seeded random weights"
        except ImportError:
            if kind == "pytorch-fid":
                raise
    return Resized(TorchvisionFID(seed), side), (f"torchvision Inception3 stand-in at {side}px "
                                                 "(no pytorch-fid), seeded random weights")


class Resized(torch.nn.Module):
    """[0, 1] NCHW images resized bilinearly to side x side (what pytorch-fid does at 299), then the network."""

    def __init__(self, net: torch.nn.Module, side: int):
        super().__init__()
        self.net, self.side = net, side

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.net(F.interpolate(x, size=(self.side, self.side), mode="bilinear", align_corners=False))


class TorchvisionFID(torch.nn.Module):
    """pytorch-fid's InceptionV3([3]) interface without resizing: [0, 1] NCHW in, [pool3 N x 2048 x 1 x 1] out."""

    def __init__(self, seed: int):
        super().__init__()
        from torchvision.models import inception_v3

        torch.manual_seed(seed)
        net = inception_v3(weights=None, aux_logits=False, init_weights=False)
        net.fc = torch.nn.Identity()
        self.net = net.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.net(2 * x - 1)[:, :, None, None]]


def part_mifid(suite: Suite) -> dict:
    from unittest import mock

    from PIL import Image

    from kompete.archive import ZipImageWriter
    from kompete.metrics import score as score_mod
    from kompete.metrics.features import extract_features

    dry = suite.dry
    n_gen, n_ref = (24, 40) if dry else (10000, 20579)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    root = Path(tempfile.mkdtemp(prefix="bench-gpu-mifid-"))
    os.environ["KOMPETE_CACHE_DIR"] = str(root / "cache")  # a cold reference means a cold cache
    rng = np.random.default_rng(0)
    ref_dir = root / "data" / "all-dogs"
    ref_dir.mkdir(parents=True)
    base = rng.integers(0, 256, (64, 80, 80, 3), dtype=np.uint8)
    for i in range(n_ref):  # JPGs larger than 64 px, as the real set: the reference path decodes and resizes
        Image.fromarray(base[i % 64]).save(ref_dir / f"{i:06d}.jpg", quality=90)
    with ZipImageWriter(root / "images.zip") as zw:
        for i in range(0, n_gen, 500):
            zw.add_batch(rng.integers(0, 256, (min(500, n_gen - i), 64, 64, 3), dtype=np.uint8))
    net, label = fid_network(suite.inception, side=80 if dry else 299)
    net = net.to(dev)
    weights = root / "random-inception.pth"
    torch.save({"seed": torch.tensor(0)}, weights)  # a file for the sha256 in the cache key; net built above
    cfg = load_config("generative-dog-images", [f"output.n_min={n_gen}", f"output.n_max={n_gen}", f"generate.n_images={n_gen}"])
    pixels = rng.integers(0, 256, (min(n_gen, 2000), 64, 64, 3), dtype=np.uint8)
    extract_features(net, pixels[:50], device=dev)  # warm-up: cuDNN plans, allocator
    sync()
    t = time.perf_counter()
    extract_features(net, pixels, device=dev)
    sync()
    floor_s = (time.perf_counter() - t) * n_gen / len(pixels)
    kw = dict(data_dir=root / "data", weights=weights, device=dev)
    with mock.patch.object(score_mod, "load_inception", lambda source, device, **_: net):
        t = time.perf_counter()
        cold = score_mod.score_path(cfg, root / "images.zip", rebuild_reference=True, **kw)
        cold_s = time.perf_counter() - t
        t = time.perf_counter()
        warm = score_mod.score_path(cfg, root / "images.zip", **kw)
        warm_s = time.perf_counter() - t
    return {"network": label, "n_generated": n_gen, "n_reference": n_ref, "cold_s": round(cold_s, 2),
            "warm_s": round(warm_s, 2), "inception_floor_s": round(floor_s, 2),
            "warm_hit": warm.reference_cache_hit, "warm_breakdown": {k: round(v, 2) for k, v in warm.seconds.items()},
            "cold_breakdown": {k: round(v, 2) for k, v in cold.seconds.items()}}


# ----------------------------------------------------------------------------- in-training evaluation


def part_eval(suite: Suite) -> dict:
    """A short dog run with the in-training evaluation callback: each evaluation's seconds and their share."""
    from kompete.metrics import features as features_mod
    from kompete.metrics.evaluation import TrainingEvaluation, inception_scorer
    from kompete.train.budget import make_budget
    from kompete.train.run import train_run

    dry = suite.dry
    seconds, n_images = (8.0, 16) if dry else (75.0, 2000)
    root = Path(tempfile.mkdtemp(prefix="bench-gpu-eval-"))
    weights = root / "random-inception.pth"
    torch.save({"seed": torch.tensor(0)}, weights)  # a file for find_weights and the cache key; net built below
    net, label = fid_network(suite.inception, side=80 if dry else 299)
    cfg = dog_config(8 if dry else 64, True, False, dry)
    cfg = load_config("sample-dogs", [*overrides_of(cfg), f"eval.n_images={n_images}", "eval.max_fraction=1",
                                      f"eval.every_minutes={0.02 if dry else 0.25}", "metric.reference_limit="
                                      f"{32 if dry else 2048}", f"eval.batch_size={8 if dry else 100}"])
    built: dict[str, float] = {}

    def make(trainer):
        t = time.perf_counter()
        scorer = inception_scorer(cfg, trainer.task.ctx.device)
        built["weights_and_reference_s"] = round(time.perf_counter() - t, 2)
        return scorer

    cb = TrainingEvaluation(cfg, make, echo=lambda line: print("  ", line, flush=True))
    with mock.patch.dict(os.environ, {"KOMPETE_INCEPTION_WEIGHTS": str(weights)}), \
            mock.patch.object(features_mod, "load_inception", lambda source, device, **_: net.to(device)):
        result = train_run(cfg, root / "run", make_budget(cfg, seconds), progress=False, callbacks=[cb])
    evals = [e.seconds for e in cb.history]
    return {"network": label, "n_images": n_images, "steps": result.steps, "train_s": round(result.seconds, 1),
            "evaluations": len(evals), "eval_s_each": [round(e, 2) for e in evals],
            "share_of_training": round(sum(evals) / result.seconds, 4) if result.seconds else None, **built}


def overrides_of(cfg) -> list[str]:
    """dog_config's settings again, as --set strings (load_config takes overrides, not a Config)."""
    t, g = cfg.train, cfg.algo
    keys = ("model", "loss", "lr_g", "lr_d", "beta1", "beta2", "g_channels", "d_channels", "batch_size", "amp")
    out = [f"train.{k}={json.dumps(getattr(t, k))}" for k in keys]
    out += [f"gan.{k}={json.dumps(getattr(g, k))}" for k in ("z_dim", "self_attention", "pixel_norm",
                                                              "minibatch_std", "ema_decay")]
    return out + [f"data.image_size={cfg.data.image_size}", f"data.sample.n_images={cfg.data.sample.n_images}",
                  f"data.sample.image_size={cfg.data.sample.image_size}", "train.sample_every_epochs=100000",
                  "train.checkpoint_minutes=1000", "train.log_every=50"]


# ----------------------------------------------------------------------------- t4


def part_t4(suite: Suite) -> dict:
    """Projected, not measured: the roofline max(FLOPs / 65 TFLOP/s, bytes / 320 GB/s) per image."""
    dogs = suite.results.get("dogs_train", {})
    if "flops_per_image" not in dogs:
        cfg = dog_config(64, False, False, suite.dry)
        from kompete.algorithms.base import task_class

        flops, nbytes = dog_step_cost(cfg, task_class(cfg).load_data(cfg, progress=False))
    else:
        flops, nbytes = dogs["flops_per_image"], dogs["bytes_per_image"]
    nbytes_fp16 = nbytes / 2  # counted in fp32; AMP halves activation traffic
    s = max(flops / T4["flops"], nbytes_fp16 / T4["bytes"])
    return {"label": "PROJECTION for a T4 from counted FLOPs and unfused bytes (not measured)",
            "dog_train_flops_per_image": flops, "dog_train_bytes_per_image_fp16": nbytes_fp16,
            "dog_train_images_per_s_roofline": round(1 / s, 1),
            "bound": "memory" if nbytes_fp16 / T4["bytes"] > flops / T4["flops"] else "compute"}


# ----------------------------------------------------------------------------- report


def markdown(results: dict, meta: dict) -> str:
    lines = [f"# bench/gpu.py on {meta['device']} (torch {meta['torch']}){' DRY RUN' if meta['dry_run'] else ''}",
             "", f"total {meta['seconds']:.0f} s", ""]
    dogs = results.get("dogs_train", {})
    if "rows" in dogs:
        lines += [f"## dog default model, {dogs.get('size')}x{dogs.get('size')}: training images/s", "",
                  "| loop | batch | precision | compile | channels_last | images/s | peak GiB | MFU |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in dogs["rows"]:
            val = r.get("images_per_s", r.get("error", r.get("skipped", "")))
            precision = r.get("precision_used") or r["precision"]
            lines.append(f"| {r.get('loop', '')} | {r['batch']} | {precision} | {r['compile']} | "
                         f"{r.get('channels_last', 'on CUDA')} | {val} | {r.get('peak_gib', '')} | {r.get('mfu', '')} |")
        lines.append("")
    for name in ("sdpa",):
        part = results.get(name, {})
        if "rows" in part:
            lines += [f"## SN-GAN self-attention SDPA ({part['device']}, {part['dtype']}, batch {part['batch']}, "
                      f"{part['tokens']} tokens)", "", "| shape | backend | fwd+bwd ms |", "|---|---|---|"]
            lines += [f"| {r['shape']} | {r['backend']} | {r.get('ms_fwd_bwd', r.get('error', ''))} |" for r in part["rows"]]
            shipped = part.get("shipped", {})
            lines += ["", f"kompete's SelfAttention feeds q/k {shipped.get('qk')} and v {shipped.get('v')} channels: "
                          f"SDPA picks **{shipped.get('backend')}**", ""]
    for name in ("cyclegan", "zips", "mifid", "eval", "t4"):
        part = results.get(name, {})
        lines += [f"## {name}", ""] + [f"- {k}: {v}" for k, v in part.items()] + [""]
    for name, part in results.items():
        if "error" in part and name not in ("cyclegan", "zips", "mifid", "eval", "t4"):
            lines += [f"## {name}: error", "", f"- {part['error']}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", "--smoke", action="store_true",
                    help="tiny sizes on the CPU: every code path, no numbers")
    ap.add_argument("--out", type=Path, default=Path("bench-results"))
    ap.add_argument("--limit-s", type=float, default=None,
                    help="the whole suite's time box (default 480; a dry run on a busy CPU gets 1800)")
    ap.add_argument("--wheel-dir", type=Path, default=ROOT, help="where a pytorch_fid-*.whl may lie")
    ap.add_argument("--only", help="comma-separated parts")
    ap.add_argument("--inception", choices=("auto", "pytorch-fid", "torchvision"), default="auto",
                    help="network for the MiFID timing (auto: pytorch-fid when importable)")
    args = ap.parse_args(argv)
    for wheel in sorted(args.wheel_dir.glob("pytorch_fid-*.whl")):
        sys.path.append(str(wheel))
    if not args.dry_run and not torch.cuda.is_available():
        print("Error: no CUDA device; run with --dry-run to exercise the code paths on the CPU", file=sys.stderr)
        return 2
    if args.dry_run:
        torch.set_num_threads(1)
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # exercised on the CPU even on a GPU box
    os.environ.setdefault("KOMPETE_CACHE_DIR", tempfile.mkdtemp(prefix="bench-gpu-cache-"))
    limit = args.limit_s if args.limit_s is not None else (1800.0 if args.dry_run else 480.0)
    suite = Suite(limit, args.dry_run, args.inception)
    # cheap parts first, each with its own cap (seconds); dogs_train takes what is left (compile rows last)
    parts = [("sdpa", part_sdpa, 30), ("t4", part_t4, 20), ("zips", part_zips, 60), ("mifid", part_mifid, 90),
             ("eval", part_eval, 100), ("cyclegan", part_cyclegan, 60), ("dogs_train", part_dogs, 480)]
    wanted = set(args.only.split(",")) if args.only else None
    for name, fn, need in parts:
        if wanted is None or name in wanted:
            suite.part(name, lambda fn=fn: fn(suite), need)
    meta = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "torch": torch.__version__, "dry_run": args.dry_run, "seconds": time.monotonic() - suite.start}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench-gpu.json").write_text(json.dumps({"meta": meta, **suite.results}, indent=1, default=str))
    md = markdown(suite.results, meta)
    (args.out / "bench-gpu.md").write_text(md + "\n")
    print(md)
    failed = [n for n, r in suite.results.items() if "error" in r]
    print(f"written: {args.out}/bench-gpu.json, bench-gpu.md; parts with errors: {', '.join(failed) or 'none'}")
    return 1 if failed and args.dry_run else 0


if __name__ == "__main__":
    sys.exit(main())
