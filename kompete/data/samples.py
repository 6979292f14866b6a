"""Procedurally generated sample competitions, written in the real Kaggle layouts.

They let the whole pipeline run offline in minutes on a CPU through the same loaders as the real
data. The same seed gives the same bytes; a sample is made once, at first use, into the cache.

- dogs: "dogs" of a few "breeds" (body shape, colour, ear style) on textured backgrounds, one or two
  per image, with Pascal-VOC boxes in Annotation/<wnid>-<breed>/<image id>.
- monet: unpaired "photos" (sharp, cool, clean scenes) and "paintings" (the same kind of scenes in a
  warm palette with brush strokes and soft edges).
- faces: the folder layout with two classes, `masked/` and `unmasked/`: face-like blobs (skin-toned head,
  eyes, hair) on plain backgrounds; a masked face has a light band across its lower half, an unmasked one
  shows its nose and mouth. PNGs, for the conditional path of an FID-scored class competition.
- digits: the folder layout with ten classes, `0/` to `9/`: grey 28x28 handwritten-looking digits (white
  strokes on black, as MNIST), each a few jittered, slanted pen strokes of random width. For the vanilla GAN
  of the MNIST write-up, offline.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from kompete import paths
from kompete.config import SampleConfig

VERSION = 1  # bump when the generators change their output
BREEDS = ["Roundhound", "Boxer Block", "Pointy Terrier", "Diamond Setter", "Long Basset", "Tall Whippet"]


def ensure_sample(name: str, sample: SampleConfig) -> Path:
    """The folder holding sample `name`, generated (atomically) if it is not in the cache yet."""
    key = hashlib.sha256(json.dumps({"v": VERSION, **asdict(sample)}, sort_keys=True).encode()).hexdigest()[:12]
    root = paths.cache_dir() / "samples" / f"{name}-{key}"
    if root.is_dir():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{name}-"))
    try:
        WRITERS[sample.kind](tmp, sample)
        os.replace(tmp, root)  # another process may have won the race: then keep theirs
    except OSError:
        if not root.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


# --------------------------------------------------------------------------- dogs


def write_sample_dogs(root: Path, sample: SampleConfig) -> None:
    rng = np.random.default_rng(sample.seed)
    images_dir = root / "all-dogs"
    images_dir.mkdir(parents=True)
    folders = []
    for k in range(sample.n_classes):
        wnid = f"n{90000000 + k:08d}"
        folder = root / "Annotation" / f"{wnid}-{BREEDS[k % len(BREEDS)].replace(' ', '_')}"
        folder.mkdir(parents=True)
        folders.append((wnid, folder))
    width, height = sample.image_size, sample.image_size * 3 // 4
    for i in range(sample.n_images):
        breed = int(rng.integers(sample.n_classes))
        wnid, folder = folders[breed]
        img = _background(rng, width, height)
        n_dogs = 2 if rng.random() < 0.2 else 1
        boxes = [_draw_dog(img, rng, breed, sample.n_classes) for _ in range(n_dogs)]
        stem = f"{wnid}_{i}"
        img.save(images_dir / f"{stem}.jpg", quality=92)
        (folder / stem).write_text(_voc_xml(stem, width, height, folder.name.split("-", 1)[1], boxes))


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A muted two-colour gradient with grain: enough texture that the dog has to be found."""
    top, bottom = rng.uniform(60, 200, 3), rng.uniform(40, 180, 3)
    t = np.linspace(0, 1, height)[:, None, None]
    grad = top * (1 - t) + bottom * t
    grain = rng.normal(0, 10, (height, width, 3))
    return Image.fromarray(np.clip(grad + grain, 0, 255).astype(np.uint8), "RGB")


def _draw_dog(img: Image.Image, rng: np.random.Generator, breed: int, n_classes: int) -> tuple[int, int, int, int]:
    """Draw one dog of `breed`; returns its box (xmin, ymin, xmax, ymax)."""
    width, height = img.size
    hue = breed / max(n_classes, 1)
    colour = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue + rng.uniform(-0.03, 0.03), 0.75, rng.uniform(0.7, 1)))
    side = int(min(width, height) * rng.uniform(0.45, 0.8))
    aspect = [1.0, 0.8, 1.2, 1.0, 0.6, 1.4][breed % 6]
    w, h = int(side * min(1.0, 1 / aspect)), int(side * min(1.0, aspect))
    x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    draw = ImageDraw.Draw(img)
    body = (x0, y0 + h // 3, x0 + w, y0 + h)
    head = (x0 + w // 4, y0, x0 + 3 * w // 4, y0 + h // 2)
    kind = breed % 4
    if kind == 0:
        draw.ellipse(body, fill=colour)
    elif kind == 1:
        draw.rectangle(body, fill=colour)
    elif kind == 2:
        draw.polygon([(x0, y0 + h), (x0 + w, y0 + h), (x0 + w // 2, y0 + h // 3)], fill=colour)
    else:
        draw.polygon([(x0 + w // 2, y0 + h // 3), (x0 + w, y0 + 2 * h // 3), (x0 + w // 2, y0 + h),
                      (x0, y0 + 2 * h // 3)], fill=colour)
    draw.ellipse(head, fill=colour)
    ear = max(2, w // 8)
    for ex in (head[0], head[2] - ear):  # ears: pointed for even breeds, floppy for odd
        if breed % 2 == 0:
            draw.polygon([(ex, head[1] + ear), (ex + ear, head[1] + ear), (ex + ear // 2, head[1])], fill=colour)
        else:
            draw.ellipse((ex - ear // 2, head[1] + ear // 2, ex + ear // 2, head[1] + 2 * ear), fill=colour)
    eye = max(1, w // 16)
    cy = (head[1] + head[3]) // 2
    for ex in ((head[0] * 2 + head[2]) // 3, (head[0] + head[2] * 2) // 3):
        draw.ellipse((ex - eye, cy - eye, ex + eye, cy + eye), fill=(20, 20, 20))
    return x0, y0, x0 + w, y0 + h


def _voc_xml(stem: str, width: int, height: int, breed: str, boxes: list[tuple[int, int, int, int]]) -> str:
    objects = "".join(
        f"<object><name>{breed}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>"
        f"<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for b in boxes)
    return (f"<annotation><folder>{breed}</folder><filename>{stem}</filename><source><database>kompete sample"
            f"</database></source><size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
            f"<segment>0</segment>{objects}</annotation>\n")


# --------------------------------------------------------------------------- monet


def write_sample_monet(root: Path, sample: SampleConfig) -> None:
    rng = np.random.default_rng(sample.seed)
    for folder, count, painter in (("photo_jpg", sample.n_images, False), ("monet_jpg", sample.n_target, True)):
        (root / folder).mkdir(parents=True)
        for i in range(count):
            scene = _scene(rng, sample.image_size)
            if painter:
                scene = _paint(scene, rng)
            scene.save(root / folder / f"{i:05d}.jpg", quality=92)


def _scene(rng: np.random.Generator, size: int) -> Image.Image:
    """A landscape: sky gradient, horizon, ground, a sun and a few hard-edged shapes."""
    horizon = int(size * rng.uniform(0.4, 0.7))
    sky_top, sky_low = rng.uniform([20, 60, 140], [80, 130, 230]), rng.uniform([120, 160, 200], [200, 220, 250])
    ground = rng.uniform([30, 80, 30], [110, 160, 90])
    t = np.linspace(0, 1, size)[:, None, None]
    arr = np.broadcast_to(sky_top * (1 - t) + sky_low * t, (size, size, 3)).copy()
    arr[horizon:] = ground * rng.uniform(0.8, 1.1, (size - horizon, 1, 1))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    r = int(size * rng.uniform(0.05, 0.12))
    sx, sy = int(rng.integers(r, size - r)), int(rng.integers(r, max(r + 1, horizon - r)))
    draw.ellipse((sx - r, sy - r, sx + r, sy + r), fill=(250, 240, 200))
    for _ in range(int(rng.integers(1, 4))):  # trees and houses
        w, h = int(size * rng.uniform(0.05, 0.2)), int(size * rng.uniform(0.1, 0.35))
        x = int(rng.integers(0, size - w))
        colour = tuple(int(c) for c in rng.uniform([20, 40, 20], [120, 120, 100]))
        draw.rectangle((x, horizon - h, x + w, horizon + h // 4), fill=colour)
    return img


def _paint(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Monet-ish: warm, pastel palette, visible short brush strokes, softened edges."""
    arr = np.asarray(img).astype(np.float32)
    arr = arr * [1.08, 0.98, 0.82] + [28, 18, 6]  # warm shift
    arr = 0.75 * arr + 0.25 * arr.mean(axis=2, keepdims=True) + 20  # pastel: less saturated, lighter
    painted = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB").filter(ImageFilter.GaussianBlur(0.8))
    draw = ImageDraw.Draw(painted)
    size = img.size[0]
    src = np.asarray(painted)
    for _ in range(size * 3):
        x, y = int(rng.integers(size)), int(rng.integers(size))
        dx, dy = rng.normal(0, size / 40, 2)
        colour = tuple(int(np.clip(c + rng.normal(0, 18), 0, 255)) for c in src[y, x])
        draw.line((x, y, x + dx, y + dy), fill=colour, width=max(1, size // 64))
    return painted


# --------------------------------------------------------------------------- faces

FACE_CLASSES = ("masked", "unmasked")
SKIN = [(241, 194, 160), (224, 172, 128), (198, 134, 96), (150, 100, 70), (96, 62, 42)]
MASKS = [(235, 240, 245), (170, 210, 235), (120, 160, 200), (60, 60, 70)]


def write_sample_faces(root: Path, sample: SampleConfig) -> None:
    """`n_images` faces, alternately masked and unmasked, in one class folder each."""
    rng = np.random.default_rng(sample.seed)
    for name in FACE_CLASSES:
        (root / name).mkdir(parents=True)
    for i in range(sample.n_images):
        name = FACE_CLASSES[i % 2]
        _face(rng, sample.image_size, masked=name == "masked").save(root / name / f"{i:05d}.png")


def _face(rng: np.random.Generator, size: int, masked: bool) -> Image.Image:
    """A head (ellipse) with hair, eyes and, unmasked, a nose and mouth; masked, a band from nose to chin."""
    base = rng.uniform(40, 215, 3)
    t = np.linspace(0, 1, size)[:, None, None]
    arr = base * (1 - 0.3 * t) + rng.normal(0, 4, (size, size, 3))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    w, h = size * rng.uniform(0.48, 0.62), size * rng.uniform(0.62, 0.78)
    cx, cy = size / 2 + rng.uniform(-0.08, 0.08) * size, size / 2 + rng.uniform(-0.05, 0.08) * size
    x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    skin = tuple(int(np.clip(c + rng.normal(0, 8), 0, 255)) for c in SKIN[int(rng.integers(len(SKIN)))])
    hair = tuple(int(c) for c in rng.uniform([10, 5, 0], [120, 80, 50]))
    draw.ellipse((x0 - w * 0.04, y0 - h * 0.06, x1 + w * 0.04, cy), fill=hair)  # hair, behind the top of the head
    draw.ellipse((x0, y0, x1, y1), fill=skin)
    eye_y, eye = y0 + h * 0.42, max(1.0, w * 0.06)
    for ex in (cx - w * 0.2, cx + w * 0.2):
        draw.ellipse((ex - eye * 1.6, eye_y - eye, ex + eye * 1.6, eye_y + eye), fill=(250, 250, 250))
        draw.ellipse((ex - eye * 0.8, eye_y - eye * 0.8, ex + eye * 0.8, eye_y + eye * 0.8), fill=(30, 25, 20))
    if masked:
        colour = MASKS[int(rng.integers(len(MASKS)))]
        top = y0 + h * 0.56
        draw.rounded_rectangle((x0 + w * 0.02, top, x1 - w * 0.02, y0 + h * 0.9), radius=max(1, int(w * 0.12)),
                               fill=colour)
        for side in (x0, x1):  # the ear loops
            draw.line((side, top + h * 0.04, side + (w * 0.08 if side == x0 else -w * 0.08), eye_y), fill=colour,
                      width=max(1, size // 48))
    else:
        nose = tuple(int(c * 0.8) for c in skin)
        draw.polygon([(cx, y0 + h * 0.5), (cx - w * 0.06, y0 + h * 0.64), (cx + w * 0.06, y0 + h * 0.64)], fill=nose)
        mouth_y = y0 + h * 0.76
        draw.arc((cx - w * 0.2, mouth_y - h * 0.06, cx + w * 0.2, mouth_y + h * 0.06), 20, 160,
                 fill=(150, 40, 50), width=max(1, size // 32))
    return img


# --------------------------------------------------------------------------- digits

SUPERSAMPLE = 4  # strokes are drawn at 4x and scaled down: anti-aliased edges, as scanned pen strokes


def _loop(cx: float, cy: float, rx: float, ry: float, n: int = 14) -> list[tuple[float, float]]:
    t = np.linspace(0, 2 * np.pi, n + 1)
    return [(cx + rx * np.sin(a), cy - ry * np.cos(a)) for a in t]


# Each digit: pen strokes (polylines) in a unit box, y down.
DIGITS: dict[int, list[list[tuple[float, float]]]] = {
    0: [_loop(0.5, 0.5, 0.24, 0.38)],
    1: [[(0.36, 0.26), (0.52, 0.1), (0.52, 0.9)]],
    2: [[(0.26, 0.3), (0.38, 0.14), (0.58, 0.1), (0.73, 0.22), (0.72, 0.4), (0.26, 0.9), (0.78, 0.9)]],
    3: [[(0.26, 0.16), (0.72, 0.14), (0.46, 0.44), (0.7, 0.56), (0.72, 0.78), (0.52, 0.9), (0.26, 0.84)]],
    4: [[(0.62, 0.9), (0.62, 0.1), (0.2, 0.64), (0.8, 0.64)]],
    5: [[(0.74, 0.12), (0.34, 0.12), (0.3, 0.46), (0.56, 0.42), (0.73, 0.58), (0.71, 0.8), (0.5, 0.9),
         (0.26, 0.84)]],
    6: [[(0.68, 0.12), (0.42, 0.28), (0.29, 0.58), (0.34, 0.84), (0.55, 0.9), (0.71, 0.75), (0.63, 0.55),
         (0.42, 0.54), (0.3, 0.66)]],
    7: [[(0.22, 0.12), (0.78, 0.12), (0.44, 0.9)]],
    8: [_loop(0.5, 0.29, 0.18, 0.19), _loop(0.5, 0.69, 0.22, 0.21)],
    9: [_loop(0.5, 0.32, 0.2, 0.2), [(0.7, 0.32), (0.62, 0.9)]],
}


def write_sample_digits(root: Path, sample: SampleConfig) -> None:
    """`n_images` grey digits, 0 to 9 in turn, one class folder each (`0/` ... `9/`)."""
    rng = np.random.default_rng(sample.seed)
    for digit in DIGITS:
        (root / str(digit)).mkdir(parents=True)
    for i in range(sample.n_images):
        digit = i % len(DIGITS)
        _digit(rng, digit, sample.image_size).save(root / str(digit) / f"{i:05d}.png")


def _digit(rng: np.random.Generator, digit: int, size: int) -> Image.Image:
    """One digit: its strokes jittered point by point, scaled, slanted and shifted, drawn with a random pen."""
    big = size * SUPERSAMPLE
    img = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(img)
    scale, slant = rng.uniform(0.72, 0.92), rng.uniform(-0.25, 0.2)
    shift = rng.uniform(-0.06, 0.06, 2)
    width = max(1, int(big * rng.uniform(0.07, 0.12)))
    ink = int(rng.integers(200, 256))
    for stroke in DIGITS[digit]:
        pts = np.asarray(stroke) + rng.normal(0, 0.025, (len(stroke), 2))
        pts = (pts - 0.5) * scale
        pts[:, 0] -= slant * pts[:, 1]  # italic: the top leans right
        pts = (pts + 0.5 + shift) * big
        draw.line([tuple(p) for p in pts], fill=ink, width=width, joint="curve")
        r = width / 2  # round pen ends
        for x, y in (pts[0], pts[-1]):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=ink)
    return img.resize((size, size), Image.LANCZOS)


WRITERS = {"dogs": write_sample_dogs, "monet": write_sample_monet, "faces": write_sample_faces,
           "digits": write_sample_digits}
