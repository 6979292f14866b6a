"""How big and how fast `kompete kernel build` is, against the 1 MB kernel-source limit and a peer packer.

kompete: solid tar.xz of kompete/**/*.py (zeroed times) + base64, config as YAML, in one script.
peer:    the kaggle-script-template approach (tar.gz of the package, base64, no config), same files.

    python bench/kernel_bundle.py [--builds 20] [--rounds 3] [--competition generative-dog-images]
    python bench/kernel_bundle.py --smoke
"""

from __future__ import annotations

import argparse
import base64
import io
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Harness, bench_arguments  # noqa: E402
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--builds", type=int, default=20, help="builds per round")
    ap.add_argument("--competition", default="generative-dog-images")
    bench_arguments(ap, rounds=3)
    args = ap.parse_args(argv)
    if args.smoke:
        args.builds, args.rounds = 1, 1
    cfg = load_config(args.competition)
    files = [f for f in paths.PACKAGE_DIR.rglob("*.py") if "__pycache__" not in f.parts]
    source = sum(f.stat().st_size for f in files)
    h = Harness("kernel_bundle", args)
    built = {}
    with tempfile.TemporaryDirectory() as tmp:
        def kompete() -> None:
            for _ in range(args.builds):
                built["b"] = build_bundle(cfg, "bench", out_root=Path(tmp))

        def peer() -> None:
            for _ in range(args.builds):
                built["peer"] = peer_tar_gz_b64()

        h.compare(f"{args.builds} kernel builds per round", {"peer tar.gz+base64": peer, "kompete build": kompete},
                  units=args.builds, unit_name="builds", warmup=True)
    b = built["b"]
    packed = len(package_archive())
    embedded = len(base64.b64encode(package_archive()))
    h.note("competition", args.competition)
    h.note("kompete source", f"{len(files)} files, {source / 1e3:.1f} kB")
    h.note("tar.xz", f"{packed / 1e3:.1f} kB ({packed / source:.2f} of source)")
    h.note("kernel.py", f"{b.script_bytes / 1e3:.1f} kB = {b.script_bytes / MAX_SCRIPT_BYTES:.1%} of the 1 MB limit "
                        f"(headroom x{MAX_SCRIPT_BYTES / b.script_bytes:.1f})")
    h.note("payload kompete/peer", f"{embedded / 1e3:.1f} kB / {built['peer'] / 1e3:.1f} kB = "
                                   f"{embedded / built['peer']:.2f} (the peer's build packs no config)")
    h.finish()


if __name__ == "__main__":
    main()
