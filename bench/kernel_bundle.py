"""How big and how fast `kompete kernel build` is, against the 1 MB kernel-source limit and a peer packer.

kompete: solid tar.xz of kompete/**/*.py (zeroed times) + base64, config as YAML, in one script.
peer:    the kaggle-script-template approach (tar.gz of the package, base64, no config), same files.

    python bench/kernel_bundle.py [--repeats 20] [--competition generative-dog-images]
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kompete import paths  # noqa: E402
from kompete.config import load_config  # noqa: E402
from kompete.kernel.bundle import MAX_SCRIPT_BYTES, build_bundle, package_archive  # noqa: E402


def peer_tar_gz_b64() -> int:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for f in sorted(paths.PACKAGE_DIR.rglob("*.py")):
            if "__pycache__" not in f.parts:
                tar.add(f, arcname=str(f.relative_to(paths.PACKAGE_DIR.parent)))
    return len(base64.b64encode(buf.getvalue()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--competition", default="generative-dog-images")
    args = ap.parse_args()
    cfg = load_config(args.competition)
    files = [f for f in paths.PACKAGE_DIR.rglob("*.py") if "__pycache__" not in f.parts]
    source = sum(f.stat().st_size for f in files)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            b = build_bundle(cfg, "bench", out_root=Path(tmp))
            times.append(time.perf_counter() - t0)
    packed = len(package_archive())
    peer = peer_tar_gz_b64()
    embedded = len(base64.b64encode(package_archive()))
    print(f"competition           {args.competition}")
    print(f"kompete source        {len(files)} files, {source / 1e3:.1f} kB")
    print(f"tar.xz                {packed / 1e3:.1f} kB  ({packed / source:.2f} of source)")
    print(f"kernel.py             {b.script_bytes / 1e3:.1f} kB  = {b.script_bytes / MAX_SCRIPT_BYTES:.1%} of the 1 MB limit"
          f"  (headroom x{MAX_SCRIPT_BYTES / b.script_bytes:.1f})")
    print(f"build time            median {statistics.median(times) * 1e3:.1f} ms, "
          f"min {min(times) * 1e3:.1f} ms over {args.repeats} builds")
    print(f"peer tar.gz+base64    {peer / 1e3:.1f} kB of payload vs kompete's {embedded / 1e3:.1f} kB "
          f"(ratio kompete/peer {embedded / peer:.2f})")


if __name__ == "__main__":
    main()
