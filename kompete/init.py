"""`kompete init`: a competition YAML for any folder of images, written from what the folder holds.

The folder is scanned once (class sub-folders and their counts, image sizes and modes read from the file
headers, unreadable files), a YAML for the folder layout is rendered with those facts as comments, loaded
back through `load_config` (so what is written is what kompete accepts), and only then written, atomically.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import typing
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from kompete import paths
from kompete.config import Config, MetricConfig, find_competition, load_config
from kompete.data.folder import FolderScan, scan
from kompete.errors import ConfigError, DataError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")  # it names files, run folders and Kaggle kernel slugs
MAX_MIN_IMAGES = 2048  # metric.min_images' default: a count below it gives a score not comparable to Kaggle's


@dataclass
class FolderFacts:
    """What `kompete init` found in a folder: classes and counts, and the sizes and modes of the images."""

    scan: FolderScan
    sizes: Counter = field(default_factory=Counter)  # (width, height) -> images
    modes: Counter = field(default_factory=Counter)  # PIL mode -> images
    unreadable: list[Path] = field(default_factory=list)

    @property
    def n_images(self) -> int:
        return len(self.scan.files) - len(self.unreadable)

    def counts(self) -> dict[str, int]:
        """Readable images per class."""
        bad = set(self.unreadable)
        per = Counter(label for f, label in zip(self.scan.files, self.scan.labels) if f not in bad)
        return {name: per[i] for i, name in enumerate(self.scan.classes)}

    def lines(self) -> list[str]:
        """The facts as comment lines of the YAML (and what the command prints)."""
        s, counts = self.scan, self.counts()
        if s.flat:
            out = [f"{self.n_images} images, no class folders: one class ({_safe(s.classes[0])})"]
        else:
            width = max(len(c) for c in counts)
            out = [f"{len(counts)} classes (sub-folders; a conditional model learns them as labels, sorted):"]
            out += [f"  {_safe(name):{width}}  {n} images" for name, n in counts.items()]
        out.append("sizes: " + _sizes(self.sizes))
        out.append("modes: " + _top(self.modes))
        skipped = [(self.unreadable, "unreadable image file"), (s.others, "non-image file"),
                   (s.loose, "image beside the class folders")]
        out += [f"skipped: {_n(len(files), what)}, e.g. {_safe(files[0].name)}" for files, what in skipped if files]
        return out


def _n(n: int, noun: str) -> str:
    """`1 image file`, `2 image files`, `2 images beside ...` (the first word takes the plural)."""
    if n == 1:
        return f"1 {noun}"
    head, _, rest = noun.partition(" beside ")
    return f"{n} {head}s" + (f" beside {rest}" if rest else "")


def _sizes(sizes: Counter) -> str:
    if len(sizes) <= 4:
        return _top(Counter({f"{w}x{h}": n for (w, h), n in sizes.items()}))
    widths, heights = [w for w, _ in sizes], [h for _, h in sizes]
    return (f"{len(sizes)} different, widths {min(widths)}-{max(widths)}, heights {min(heights)}-{max(heights)}, "
            f"{sum(n for (w, h), n in sizes.items() if w == h)} square")


def _safe(text: str) -> str:
    return text.replace("\n", " ").replace("\r", " ")


def _top(counts: Counter, n: int = 4) -> str:
    common = counts.most_common()
    text = ", ".join(f"{k} ({v})" for k, v in common[:n])
    return text + (f", {len(common) - n} more" if len(common) > n else "") if common else "none readable"


def inspect_folder(images: Path) -> FolderFacts:
    """Scan `images` (class sub-folders or flat) and read every image's header: size, mode, readable."""
    images = Path(images)
    if not images.exists():
        raise DataError(f"--images {images}: no such folder")
    if not images.is_dir():
        raise DataError(f"--images {images}: not a folder", hint="pass the folder that holds the images")
    found = scan(images)
    if not found.files:
        raise DataError(f"--images {images}: no images in it or in its sub-folders",
                        hint="kompete reads .jpg, .png, .bmp, .gif, .tif and .webp files")
    facts = FolderFacts(found)
    for path in found.files:
        try:
            with Image.open(path) as img:  # the header only: sizes of 20,000 files in seconds
                facts.sizes[img.size] += 1
                facts.modes[img.mode] += 1
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            facts.unreadable.append(path)
    if facts.n_images == 0:
        raise DataError(f"--images {images}: none of its {len(found.files)} image files can be read")
    return facts


@dataclass
class InitResult:
    path: Path  # where the YAML is (or would be, with dry_run)
    text: str
    written: bool
    facts: FolderFacts
    listed: bool  # whether `kompete competitions` finds it (out is a searched folder)


def accepted_metrics() -> tuple[str, ...]:
    """The `metric.name` values this kompete accepts."""
    return typing.get_args(typing.get_type_hints(MetricConfig)["name"]) or ("mifid",)


def init_competition(name: str, images: str | Path, image_size: int = 64, count: int = 10000,
                     fmt: str = "png", metric: str = "fid", out: str | Path = "competitions",
                     dry_run: bool = False, force: bool = False) -> InitResult:
    """Write `out/<name>.yaml` for the folder layout over `images`, validated; refuses to overwrite unless forced."""
    if not NAME.match(name):
        raise ConfigError(f"competition name {name!r}: use letters, digits, '-' and '_', starting with a "
                          "letter or digit (e.g. masked-faces)")
    target = Path(out) / f"{name}.yaml"
    _check_no_shadow(name, target)
    if target.exists() and not force and not dry_run:
        raise ConfigError(f"{target} exists", hint="pass --force to replace it, or choose another name")
    facts = inspect_folder(Path(images))
    text = render_yaml(name, Path(images), facts, image_size, count, fmt, metric)
    _validate(name, text, metric, target)
    if not dry_run:
        paths.write_text_atomic(target, text)
    listed = Path(out).resolve() in paths.competitions_dirs()
    return InitResult(target, text, not dry_run, facts, listed)


def _check_no_shadow(name: str, target: Path) -> None:
    """A name already configured elsewhere is refused: written into a searched folder, the new YAML would
    silently replace that competition for every later command run here (or be hidden by it), and kompete's
    own competitions are never replaced, not even with --force."""
    try:
        existing = find_competition(name).resolve()
    except ConfigError:
        return  # a new name
    mine = target.resolve()
    shipped = existing.parent == (paths.REPO_DIR / "competitions").resolve()
    searched = mine.parent in paths.competitions_dirs()
    if existing != mine and searched or existing == mine and shipped:
        raise ConfigError(f"competition {name!r} already exists ({existing}); a {name}.yaml in {target.parent} "
                          f"would {'replace' if existing == mine else 'shadow'} it for every command",
                          hint="choose another name")


def _validate(name: str, text: str, metric: str, target: Path) -> Config:
    """The YAML through the real loader, from a scratch folder (a failure leaves nothing in `out`)."""
    with tempfile.TemporaryDirectory(prefix="kompete-init-") as tmp:
        scratch = Path(tmp) / f"{name}.yaml"
        scratch.write_text(text, encoding="utf-8")
        try:
            return load_config(str(scratch))
        except ConfigError as exc:
            if "metric.name" in exc.message:
                raise ConfigError(f"--metric {metric}: this kompete does not score {metric} yet (metric.name "
                                  f"accepts {', '.join(accepted_metrics())})",
                                  hint=f"use --metric {accepted_metrics()[0]}") from None
            raise ConfigError(exc.message.replace(str(scratch), str(target)), exc.hint) from None


def _local_dir(images: Path) -> str:
    """The folder as the YAML names it: absolute, because data.local_dir is read relative to the working
    directory of each later command (a relative path broke the competition from any other folder)."""
    return images.resolve().as_posix()


def _yaml_header(name: str, images: Path, facts: FolderFacts) -> str:
    """The YAML's opening comments: what the scan found and the next commands."""
    found = "\n".join(f"#   {line}" for line in facts.lines())
    return f"""\
# {name}: a generation competition over an image folder, written by `kompete init`.
# Found in {_safe(str(images.resolve()))}:
{found}
# Check the numbers above against the competition's rules (counts, size, format, metric), then:
#   kompete data {name}          prepare and cache the images (decodes every file; counts the corrupt ones)
#   kompete train {name} --time-budget 10m
"""


def render_yaml(name: str, images: Path, facts: FolderFacts, image_size: int, count: int, fmt: str,
                metric: str) -> str:
    """The competition YAML, with what was found as comments."""
    q = json.dumps  # a JSON string is a YAML string: paths with spaces, colons or quotes stay intact
    n_classes = len(facts.scan.classes)
    model = "dcgan_cond" if n_classes > 1 else "dcgan"
    smallest = min(min(wh) for wh in facts.sizes) if facts.sizes else image_size
    upscale = (f"# the smallest image side is {smallest}: some images are upscaled" if smallest < image_size
               else "# training and submission side")
    min_images = max(2, min(count, MAX_MIN_IMAGES))
    eps = "\n  eps: 0.1                   # memorization threshold (MiFID)" if metric == "mifid" else ""
    return _yaml_header(name, images, facts) + f"""\
name: {name}
title: {q(name + " (image folder)")}
task: generate

data:
  layout: folder
  {"local_dir: " + q(_local_dir(images)):<25}  # --data-dir overrides
  images_dir: ""             # the {"class folders are" if not facts.scan.flat else "images are"} directly in local_dir
  image_size: {image_size}             {upscale}
  crop: center               # center | random (seeded by train.seed) | none (the whole image, squashed)

output:
  n_min: {count}
  n_max: {count}
  format: {fmt}
  image_size: {image_size}

limits:
  runtime_hours: 9.0         # set to the competition's rules
  daily_submissions: 5

metric:
  name: {metric}{eps}
  preprocess: {"pytorch-fid              # as pytorch-fid's FID, which in-class FID competitions use" if metric == "fid" else "tf                       # Kaggle's TF graph input path (docs/scoring.md)"}
  reference: train_images    # or a folder of held-out images, relative to local_dir
  reference_size: {image_size}
  min_images: {min_images}

train:
  model: {model}{"         # conditional: one label per class folder" if n_classes > 1 else ""}
  loss: hinge

generate:
  n_images: {count}
"""


def describe(result: InitResult) -> list[str]:
    """What the command prints after writing (or, with dry_run, instead of writing)."""
    verb = "wrote" if result.written else "would write"
    lines = [f"{verb} {result.path} ({result.facts.n_images} images):"]
    lines += [f"  {line}" for line in result.facts.lines()]
    name = result.path.stem
    if result.listed:
        lines.append(f"next: kompete data {name}   (kompete competitions lists it)")
    else:
        lines.append(f"next: kompete data {result.path}   ({result.path.parent} is not a folder `kompete "
                     f"competitions` searches; add it to KOMPETE_COMPETITIONS{os.pathsep}... to list it)")
    return lines
