"""A real-image development set: Debian's openclipart-png turned into a folder competition.

The procedural samples (sample-dogs, sample-monet) say little about real images; this set is real drawings
(8,121 PNGs in `/usr/share/openclipart/png/<category>/...`, `apt-get install openclipart-png`). Each image is
composited over white (most have an alpha channel), padded to a square with white, and resized with Lanczos to
each requested side. Near-duplicates are removed (the set holds many copies of the same decorative circle or
button): an image whose 64-bit difference hash is within `--dup-bits` of an earlier kept one is dropped, and so
is a blank image. Top-level categories are the classes; one smaller than `--min-class` after de-duplication
joins the class `other`. One image in `1/--holdout-every` (chosen by a hash of its path: stable across runs)
goes to a flat held-out folder, the FID reference; the rest train.

Written, per side S:

    OUT/px{S}/train/<class>/<file>.png    the training images (a folder layout with class folders)
    OUT/px{S}/heldout/<class>__<file>.png  the held-out reference
    OUT/clipart{S}.yaml                    a folder competition over them (FID against the held-out set)

    python bench/realdata.py --out data/clipart [--sizes 32,64] [--workers 1]     (about 10 CPU-minutes)
    kompete train data/clipart/clipart32.yaml --time-budget 5m
    python bench/recipes.py data/clipart/clipart32.yaml --images-seen 4000 ...

Without --out (as `make bench` runs it) it prepares only the first 200 files into a temporary folder, to prove
the path works. Never needed by tests or CI; only bench/recipes.py's real-image comparisons read it.

--translation DIR turns a prepared side (DIR = OUT/px{S}) into a photo -> clip-art competition in the Monet
layout, for the translation recipes (CycleGAN, CUT, FastCUT) of bench/recipes/monet.yaml. The source domain is
`--crops` random 256 px crops of each wallpaper of Debian's plasma-workspace-wallpapers (one image a theme under
`/usr/share/wallpapers/<theme>/contents/images/`: the landscape file nearest 1920 px wide, so that a crop is a
part of the picture, not a few pixels of a 5K one), resized to S; the target domain is DIR's training clip art,
the FID reference its held-out clip art:

    OUT/photo/<theme>_<k>.png   OUT/clipart/<file>.png   OUT/heldout/<file>.png   OUT/wallclip{S}.yaml

    python bench/realdata.py --translation data/clipart/px64 --out data/wallclip [--crops 20]
    python bench/recipes.py data/wallclip/wallclip64.yaml --images-seen 400 ...

--photos makes a second real-image set for the noise->image recipes, to check that a recipe chosen on clip art
is not chosen for clip art alone: `--crops` random 256 px crops of each wallpaper (the same files), resized to
each side, the 30 themes as classes, one crop in `--holdout-every` held out:

    OUT/px{S}/train/<theme>/<k>.png   OUT/px{S}/heldout/<theme>__<k>.png   OUT/wallphoto{S}.yaml

    python bench/realdata.py --photos --out data/wallphoto --crops 120 --sizes 32
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kompete import paths  # noqa: E402
from kompete.config import load_config  # noqa: E402
from kompete.errors import ConfigError  # noqa: E402

SOURCE = Path("/usr/share/openclipart/png")
WALLPAPERS = Path("/usr/share/wallpapers")  # Debian's plasma-workspace-wallpapers
CROP = 256  # source crops, in the wallpaper's pixels, before the resize to the bench side
# a few drawings are 168 megapixels: a trusted Debian package, not a decompression bomb
warnings.simplefilter("ignore", Image.DecompressionBombWarning)
HASH_SIDE = 8  # a difference hash of 8 x 8 bits


def square_on_white(path: Path) -> Image.Image | None:
    """The image composited over white and padded (white) to a square; None when unreadable."""
    try:
        with Image.open(path) as im:
            im.load()
            rgba = im.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    side = max(rgb.size)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(rgb, ((side - rgb.width) // 2, (side - rgb.height) // 2))
    return square


def difference_hash(im: Image.Image) -> np.ndarray:
    """64 bits: is each pixel of a 9 x 8 grey thumbnail brighter than its right neighbour (dHash)."""
    g = np.asarray(im.convert("L").resize((HASH_SIDE + 1, HASH_SIDE), Image.LANCZOS), dtype=np.int16)
    return np.packbits(g[:, 1:] > g[:, :-1])  # 8 bytes


def prepare_one(job: tuple[Path, tuple[int, ...]]) -> tuple[Path, np.ndarray | None, list[np.ndarray], float]:
    """(path, hash, one uint8 HWC array per side, grey standard deviation); hash None when unreadable."""
    path, sizes = job
    square = square_on_white(path)
    if square is None:
        return path, None, [], 0.0
    resized = [np.asarray(square.resize((s, s), Image.LANCZOS)) for s in sizes]
    spread = float(np.asarray(square.convert("L").resize((32, 32), Image.LANCZOS)).std())
    return path, difference_hash(square), resized, spread


def distinct(hashes: list[np.ndarray], max_bits: int) -> list[int]:
    """Indices kept, in order: each differs by more than `max_bits` bits from every earlier kept hash."""
    kept: list[int] = []
    bank = np.zeros((len(hashes), 8), np.uint8)
    for i, h in enumerate(hashes):
        if kept:
            bits = np.unpackbits(np.bitwise_xor(bank[:len(kept)], h), axis=1).sum(1)
            if bits.min() <= max_bits:
                continue
        bank[len(kept)] = h
        kept.append(i)
    return kept


def class_names(files: list[Path], root: Path, min_class: int) -> list[str]:
    """Each file's top-level category, or `other` when that category keeps fewer than `min_class` images."""
    tops = [f.relative_to(root).parts[0] for f in files]
    counts = Counter(tops)
    return [t if counts[t] >= min_class else "other" for t in tops]


def held_out(rel: str, every: int) -> bool:
    return every > 0 and zlib.crc32(rel.encode()) % every == 0


@dataclass(frozen=True)
class SetKind:
    """What a prepared set is: its YAML's name prefix, title and one line on where its images come from."""

    prefix: str
    title: str
    origin: str


CLIPART = SetKind("clipart", "Open Clip Art", "real clip art (Debian openclipart-png)")
PHOTOS = SetKind("wallphoto", "Wallpaper crops",
                 f"random {CROP} px crops of Debian's plasma-workspace-wallpapers (photographs and digital art)")


def render_yaml(name: str, local_dir: Path, size: int, n_train: int, n_held: int, classes: Counter,
                kind: SetKind = CLIPART) -> str:
    top = ", ".join(f"{c} {n}" for c, n in classes.most_common())
    return f"""\
# {name}: {kind.origin} at {size}x{size}, written by bench/realdata.py.
# {n_train} training images in {len(classes)} classes ({top}); {n_held} held out as the FID reference.
name: {name}
title: "{kind.title} {size} px (real-image development set)"
task: generate

data:
  layout: folder
  local_dir: "{local_dir.as_posix()}"
  images_dir: train
  image_size: {size}
  crop: none                 # already square

output:
  n_min: 1000
  n_max: 10000
  format: png
  image_size: {size}

limits:
  runtime_hours: 9.0
  daily_submissions: 5

metric:
  name: fid
  preprocess: pytorch-fid
  reference: heldout         # never trained on
  reference_size: {size}
  min_images: 1000

train:
  model: dcgan_cond
  loss: hinge

generate:
  n_images: 1000
"""


def write_side(out: Path, size: int, rows: list[tuple[str, str, np.ndarray]], every: int,
               kind: SetKind = CLIPART, hold=held_out) -> Path:
    """The train / heldout folders and the YAML of one side; returns the YAML path. `hold(rel, every)` says
    which rows are held out."""
    root = out / f"px{size}"
    n_train = n_held = 0
    classes: Counter = Counter()
    for cls, rel, img in rows:
        flat = rel.replace("/", "__")
        if hold(rel, every):
            target = root / "heldout" / f"{cls}__{flat}"
            n_held += 1
        else:
            target = root / "train" / cls / flat
            n_train += 1
            classes[cls] += 1
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(target, optimize=False)
    name = f"{kind.prefix}{size}"
    text = render_yaml(name, root.resolve(), size, n_train, n_held, classes, kind)
    with tempfile.TemporaryDirectory() as tmp:  # through the real loader before it is written
        scratch = Path(tmp) / f"{name}.yaml"
        scratch.write_text(text)
        load_config(str(scratch))
    yaml_path = out / f"{name}.yaml"
    paths.write_text_atomic(yaml_path, text)
    print(f"px{size}: {n_train} train images in {len(classes)} class(es), {n_held} held out -> {yaml_path}")
    return yaml_path


def build(src: Path, out: Path, sizes: tuple[int, ...], dup_bits: int, min_class: int, every: int,
          workers: int, limit: int = 0) -> list[Path]:
    files = sorted(p for p in src.rglob("*") if p.suffix.lower() == ".png" and p.is_file())
    if limit:
        files = files[:limit]
    jobs = [(f, sizes) for f in files]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            done = list(pool.map(prepare_one, jobs, chunksize=32))
    else:
        done = [prepare_one(j) for j in jobs]
    ok = [d for d in done if d[1] is not None and d[3] > 2.0]  # blank (all white) images teach nothing
    kept = [ok[i] for i in distinct([d[1] for d in ok], dup_bits)]
    print(f"{len(files)} files: {len(files) - len(ok)} unreadable or blank, "
          f"{len(ok) - len(kept)} near-duplicates (<= {dup_bits} of 64 hash bits), {len(kept)} kept")
    names = class_names([d[0] for d in kept], src, min_class)
    rels = [d[0].relative_to(src).as_posix() for d in kept]
    return [write_side(out, s, [(c, r, d[2][k]) for c, r, d in zip(names, rels, kept)], every)
            for k, s in enumerate(sizes)]

# =============================================================================== photo -> clip art (translation)

def wallpaper_files(root: Path) -> list[Path]:
    """One image per theme (`<theme>/contents/images/WxH.ext`): the landscape one nearest 1920 px wide."""
    chosen = []
    for theme in sorted(p for p in root.iterdir() if (p / "contents" / "images").is_dir()):
        files = [f for f in sorted((theme / "contents" / "images").iterdir())
                 if f.suffix.lower() in (".png", ".jpg", ".jpeg")]
        sized = [(f, *_declared_size(f)) for f in files]
        landscape = [s for s in sized if s[1] >= s[2]] or sized
        if landscape:
            chosen.append(min(landscape, key=lambda s: abs(s[1] - 1920))[0])
    return chosen


def _declared_size(path: Path) -> tuple[int, int]:
    """(width, height) from a `WxH` file name (the package's naming), else from the header."""
    w, _, h = path.stem.partition("x")
    if w.isdigit() and h.isdigit():
        return int(w), int(h)
    with Image.open(path) as im:
        return im.size


def random_crops(path: Path, n: int, side: int, rng: np.random.Generator) -> list[Image.Image]:
    """`n` random CROP-px squares of the image (the whole short side when it is smaller), resized to `side`."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    crop = min(CROP, *rgb.size)
    out = []
    for _ in range(n):
        x, y = int(rng.integers(0, rgb.width - crop + 1)), int(rng.integers(0, rgb.height - crop + 1))
        out.append(rgb.crop((x, y, x + crop, y + crop)).resize((side, side), Image.LANCZOS))
    return out


def copy_flat(src: Path, dst: Path, side: int) -> int:
    """Every PNG under `src` into the flat folder `dst` at `side` px (class folders become name prefixes)."""
    dst.mkdir(parents=True, exist_ok=True)
    n = 0
    for f in sorted(src.rglob("*.png")):
        with Image.open(f) as im:
            rgb = im.convert("RGB")
        if rgb.size != (side, side):
            rgb = rgb.resize((side, side), Image.LANCZOS)
        rgb.save(dst / f.relative_to(src).as_posix().replace("/", "__"), optimize=False)
        n += 1
    return n


def render_translation_yaml(name: str, root: Path, size: int, n_photo: int, n_target: int, n_held: int) -> str:
    return f"""\
# {name}: wallpaper crops -> real clip art at {size}x{size}, written by bench/realdata.py --translation.
# {n_photo} photos (random {CROP} px crops of Debian's plasma-workspace-wallpapers), {n_target} clip-art
# drawings to learn the style from, {n_held} held-out drawings as the FID reference (never trained on).
name: {name}
title: "Wallpapers to clip art {size} px (real-image translation set)"
task: translate

data:
  layout: monet
  local_dir: "{root.as_posix()}"
  source_dir: photo
  target_dir: clipart
  image_size: {size}
  load_size: {size + size // 8}

output:
  n_min: 1                   # a bench set: generate.n_images is the number of photos
  n_max: 10000
  format: png
  image_size: {size}

limits:
  runtime_hours: 5.0
  daily_submissions: 5

metric:
  name: fid
  preprocess: pytorch-fid
  reference: heldout
  reference_size: {size}
  min_images: 32

train:
  model: cyclegan
  loss: lsgan

cut:                         # the CPU profile's sizes (bench/recipes/monet.yaml's gpu profile sets the real ones)
  n_blocks: 2
  nce_blocks: [1, 2]
  num_patches: 64
  mlp_channels: 32

generate:
  n_images: {n_photo}
"""


def build_photos(wallpapers: Path, out: Path, sizes: tuple[int, ...], crops: int, seed: int, every: int
                 ) -> list[Path]:
    """A second real-image set for the noise->image recipes: `crops` random crops of each wallpaper, the themes
    as classes, one crop in `every` held out; folders and YAML as the clip-art set's."""
    walls = wallpaper_files(wallpapers)
    if not walls:
        raise ValueError(f"no wallpapers under {wallpapers} (<theme>/contents/images/)")
    rng = np.random.default_rng(seed)
    rows: dict[int, list] = {s: [] for s in sizes}
    for wall in walls:
        theme = wall.parents[2].name
        for k, im in enumerate(random_crops(wall, crops, max(sizes), rng)):
            for s in sizes:
                small = im if s == im.size[0] else im.resize((s, s), Image.LANCZOS)
                rows[s].append((theme, f"{theme}/{k:03d}.png", np.asarray(small)))
    print(f"{len(walls)} wallpapers x {crops} crops")
    return [write_side(out, s, rows[s], every, PHOTOS, crop_held_out) for s in sizes]


def crop_held_out(rel: str, every: int) -> bool:
    """Every `every`-th crop of each wallpaper (`<theme>/<k>.png`): a path hash would hold out whole themes (the
    names differ in a digit or two, and CRC-32's low bits hardly see it)."""
    return every > 0 and int(Path(rel).stem) % every == every - 1


def build_translation(clipart: Path, wallpapers: Path, out: Path, crops: int, seed: int) -> Path:
    """The photo / clipart / heldout folders and the YAML (checked by the real loader first); its path."""
    with Image.open(next(clipart.glob("heldout/*.png"))) as first:
        size = first.size[0]  # the prepared side's
    walls = wallpaper_files(wallpapers)
    if not walls:
        raise ValueError(f"no wallpapers under {wallpapers} (<theme>/contents/images/)")
    rng = np.random.default_rng(seed)
    (out / "photo").mkdir(parents=True, exist_ok=True)
    for wall in walls:
        theme = wall.parents[2].name
        for k, im in enumerate(random_crops(wall, crops, size, rng)):
            im.save(out / "photo" / f"{theme}_{k:03d}.png", optimize=False)
    n_target, n_held = copy_flat(clipart / "train", out / "clipart", size), copy_flat(clipart / "heldout",
                                                                                     out / "heldout", size)
    name = f"wallclip{size}"
    text = render_translation_yaml(name, out.resolve(), size, len(walls) * crops, n_target, n_held)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / f"{name}.yaml"
        scratch.write_text(text)
        load_config(str(scratch))
    yaml_path = out / f"{name}.yaml"
    paths.write_text_atomic(yaml_path, text)
    print(f"{len(walls)} wallpapers x {crops} crops -> {len(walls) * crops} photos; {n_target} clip art to learn, "
          f"{n_held} held out -> {yaml_path}")
    return yaml_path


def translation_main(args) -> int:
    """--translation: the checks a user can get wrong, each one plain line, before anything is written."""
    clipart = args.translation
    for folder, what in ((clipart / "train", "a prepared side's train/ (run without --translation first)"),
                         (clipart / "heldout", "a prepared side's heldout/"),
                         (args.wallpapers, "Debian's plasma-workspace-wallpapers (or pass --wallpapers)")):
        if not folder.is_dir():
            print(f"Error: {folder} not found: expected {what}", file=sys.stderr)
            return 2
    if not any(clipart.glob("heldout/*.png")):
        print(f"Error: {clipart / 'heldout'} holds no PNG", file=sys.stderr)
        return 2
    if args.out is None:
        print("Error: --translation needs --out", file=sys.stderr)
        return 2
    if args.out.exists() and any(args.out.iterdir()):
        print(f"Error: {args.out} is not empty; remove it or pass another --out", file=sys.stderr)
        return 2
    try:
        build_translation(clipart, args.wallpapers, args.out, args.crops, args.seed)
    except (ValueError, OSError, ConfigError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return 0


def photos_main(args) -> int:
    if args.out is None or not args.wallpapers.is_dir():
        print("Error: --photos needs --out and Debian's plasma-workspace-wallpapers (or pass --wallpapers)",
              file=sys.stderr)
        return 2
    try:
        build_photos(args.wallpapers, args.out, tuple(int(s) for s in args.sizes.split(",")), args.crops, args.seed,
                     args.holdout_every)
    except (ValueError, OSError, ConfigError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, default=SOURCE, help="the openclipart-png tree")
    ap.add_argument("--out", type=Path, help="where to write (none: a 200-file smoke run into a temporary folder)")
    ap.add_argument("--sizes", default="32,64", help="comma-separated sides")
    ap.add_argument("--dup-bits", type=int, default=4, help="hash bits within which an image is a duplicate")
    ap.add_argument("--min-class", type=int, default=40, help="smaller categories join the class `other`")
    ap.add_argument("--holdout-every", type=int, default=8, help="one image in N is held out (0: none)")
    ap.add_argument("--workers", type=int, default=1, help="decoding processes (the machine is shared)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N files (a quick look)")
    ap.add_argument("--translation", type=Path, metavar="PX_DIR",
                    help="a prepared side (OUT/px64): write the wallpaper -> clip-art translation set into --out")
    ap.add_argument("--photos", action="store_true",
                    help="a second noise->image set into --out: random wallpaper crops, themes as classes")
    ap.add_argument("--wallpapers", type=Path, default=WALLPAPERS, help="--translation, --photos: the wallpapers")
    ap.add_argument("--crops", type=int, default=20, help="--translation, --photos: random crops per wallpaper")
    ap.add_argument("--seed", type=int, default=0, help="--translation, --photos: the crops' random seed")
    args = ap.parse_args(argv)
    if args.translation is not None:
        return translation_main(args)
    if args.out is not None and any(args.out.glob("px*")):
        print(f"Error: {args.out} already holds a prepared set; remove it or pass another --out", file=sys.stderr)
        return 2
    if args.photos:
        return photos_main(args)
    if not args.src.is_dir():
        print(f"{'note' if args.out is None else 'Error'}: {args.src} not found: install Debian's openclipart-png "
              "(apt-get install openclipart-png) or pass --src", file=sys.stderr)
        return 0 if args.out is None else 2
    try:
        sizes = tuple(int(s) for s in args.sizes.split(","))
        workers = max(1, min(args.workers, os.cpu_count() or 1))
        if args.out is None:
            with tempfile.TemporaryDirectory() as tmp:
                build(args.src, Path(tmp), sizes, args.dup_bits, 5, args.holdout_every, workers, 200)
        else:
            build(args.src, args.out, sizes, args.dup_bits, args.min_class, args.holdout_every, workers, args.limit)
    except (ValueError, ConfigError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
