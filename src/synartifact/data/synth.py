"""Offline artifact synthesis: inject artifacts with exact ground truth into photographs bundled with scikit-image.

No dataset can be downloaded offline, and users want more than the 1.3K annotated images, so this module fakes
the artifact kinds that can be faked convincingly (:data:`SYNTH_KINDS`) on random crops, flips and scales of the
real photographs in ``skimage.data``. Each artifact is written only inside its box, so the box is exactly the
changed region; its caption comes from templates with variety. Kinds it cannot make (faces, relationships
between objects) are listed in :data:`UNSYNTHESIZABLE_KINDS` and in the dataset card.

Determinism: image ``i`` is drawn from ``numpy.random.default_rng([seed, i])`` alone, so the result does not
depend on ``num_proc`` or on the order in which workers finish.
"""

from __future__ import annotations

import hashlib
import io
import math
import multiprocessing
from collections.abc import Iterator
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from synartifact.taxonomy import SLUGS, get_kind

__all__ = [
    "SYNTH_KINDS",
    "UNSYNTHESIZABLE_KINDS",
    "GENERATOR_NAME",
    "SOURCE_PHOTOS",
    "synthesize_example",
    "inject_artifact",
    "iter_synthesized",
    "synthesize_dataset",
]

GENERATOR_NAME = "synartifact-synth"
# datasets caches generator output by its arguments; the module's own hash keeps a code change from reusing stale data.
_CODE_VERSION = hashlib.sha1(Path(__file__).read_bytes()).hexdigest()[:12]

SYNTH_KINDS: tuple[str, ...] = (
    "illegible_letters",
    "distorted_components",
    "duplicated_components",
    "omitted_components",
    "unrealistic_lighting",
    "localized_blur",
    "chromatic_irregularity",
    "abnormal_texture",
    "luminance_discrepancy",
    "impractical_luminosity",
)
UNSYNTHESIZABLE_KINDS: tuple[str, ...] = tuple(s for s in SLUGS if s not in SYNTH_KINDS)

# skimage.data loader -> prompt phrasings describing the photograph (later used to train the generator).
SOURCE_PHOTOS: dict[str, tuple[str, ...]] = {
    "astronaut": (
        "a photograph of an astronaut in a white suit in front of an American flag",
        "portrait of a smiling astronaut holding a helmet",
        "an astronaut posing for an official NASA portrait",
    ),
    "chelsea": (
        "a photograph of a ginger tabby cat",
        "close-up of an orange cat looking to the side",
        "a striped cat sitting indoors",
    ),
    "coffee": (
        "a cup of coffee on a saucer with a spoon",
        "a photograph of a red coffee cup on a wooden table",
        "top view of a cappuccino in a cup",
    ),
    "rocket": (
        "a rocket on the launch pad under a blue sky",
        "a photograph of a space shuttle ready for launch",
        "a launch tower next to a rocket",
    ),
    "motorcycle_left": (
        "a red motorcycle parked in a workshop",
        "a photograph of a sports motorbike indoors",
        "a motorcycle next to tools and shelves",
    ),
    "motorcycle_right": (
        "a red sports motorcycle in a garage",
        "a photograph of a parked motorbike, side view",
    ),
    "hubble_deep_field": (
        "deep space photograph full of distant galaxies",
        "the Hubble deep field, galaxies on a black sky",
        "a telescope image of many small colourful galaxies",
    ),
    "retina": (
        "a fundus photograph of a human retina",
        "medical image of the back of an eye with blood vessels",
    ),
    "immunohistochemistry": (
        "a microscope image of stained tissue",
        "immunohistochemistry slide with brown and blue cells",
    ),
    "camera": (
        "a black and white photograph of a cameraman with a tripod",
        "a man operating an old camera in a park, monochrome",
    ),
    "coins": (
        "old coins lying on a dark surface, black and white",
        "a greyscale photograph of a coin collection",
    ),
    "moon": (
        "a photograph of the surface of the moon with craters",
        "greyscale close-up of lunar craters",
    ),
}
TEXTURES: tuple[str, ...] = ("brick", "grass", "gravel")

_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZabdeghkmnpqrstuwxyz0123456789&%#@?"

_CAPTIONS: dict[str, tuple[str, ...]] = {
    "localized_blur": (
        "The region {where} is blurred while the rest of the image is sharp.",
        "An unnatural patch of blur {where}.",
        "Details {where} are smeared out of focus for no reason.",
        "blurry area {where}",
    ),
    "chromatic_irregularity": (
        "The colours {where} are shifted to an unnatural {tint} hue.",
        "A patch {where} has a strange {tint} colour cast.",
        "Colour bleeding {where}: the region turns {tint}.",
        "unnatural {tint} colours {where}",
    ),
    "abnormal_texture": (
        "The surface {where} has an implausible {pattern}.",
        "An unnatural {pattern} covers the area {where}.",
        "Abnormal {pattern} {where}.",
        "strange {pattern} {where}",
    ),
    "luminance_discrepancy": (
        "The region {where} is much {level} than its surroundings.",
        "A rectangular area {where} is {level} without any light source explaining it.",
        "Inconsistent brightness: the patch {where} is {level} than the rest.",
        "{level} patch {where}",
    ),
    "impractical_luminosity": (
        "An impossible {glow} glow {where}.",
        "The area {where} is over-exposed by a {glow} light that nothing in the scene emits.",
        "A glowing {glow} spot {where} with no light source.",
        "{glow} glare {where}",
    ),
    "unrealistic_lighting": (
        "Light falls on the region {where} from the {side} with a {tint} cast, inconsistent with the scene.",
        "The lighting {where} comes from the {side}, unlike the rest of the image.",
        "Unrealistic {tint} light gradient {where}.",
        "inconsistent lighting from the {side} {where}",
    ),
    "duplicated_components": (
        "The content {where} is a duplicate of the part next to it.",
        "A repeated component {where}: the neighbouring part appears twice.",
        "Duplicated part {where}.",
        "the same element is repeated {where}",
    ),
    "omitted_components": (
        "Something is missing {where}: the area is filled with a smooth smear.",
        "The part {where} has been erased and blends into its surroundings.",
        "An omitted component {where}, only a featureless patch remains.",
        "missing content {where}",
    ),
    "distorted_components": (
        "The part {where} is {warp} and deformed.",
        "A distorted component {where}, its shape is {warp}.",
        "Deformed structure {where}.",
        "{warp} shapes {where}",
    ),
    "illegible_letters": (
        "The text on the sign {where} is garbled and unreadable.",
        "Illegible letters {where}: the characters are malformed.",
        "A sign {where} shows gibberish text.",
        "unreadable lettering {where}",
    ),
}


# --------------------------------------------------------------------------- sources (loaded once per process)
@cache
def _load_photo(name: str) -> Image.Image:
    import skimage.data

    if name.startswith("motorcycle_"):
        left, right, _ = skimage.data.stereo_motorcycle()
        arr = left if name.endswith("left") else right
    else:
        arr = getattr(skimage.data, name)()
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return Image.fromarray(np.ascontiguousarray(arr[..., :3]).astype(np.uint8), "RGB")


@cache
def _photo_at(name: str, size: int) -> Image.Image:
    """The photo pre-shrunk so its short side is at most twice ``size`` (crops then resize cheaply)."""
    img = _load_photo(name)
    short = min(img.size)
    if short > 2 * size:
        f = 2 * size / short
        img = img.resize((max(1, round(img.width * f)), max(1, round(img.height * f))), Image.BILINEAR)
    return img


@cache
def _texture(name: str) -> np.ndarray:
    import skimage.data

    arr = getattr(skimage.data, name)().astype(np.float32) / 255.0
    return (arr - arr.mean()) / (arr.std() + 1e-6)


@lru_cache(maxsize=64)
def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def _base_image(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str, str]:
    names = list(SOURCE_PHOTOS)
    name = names[int(rng.integers(len(names)))]
    prompt = SOURCE_PHOTOS[name][int(rng.integers(len(SOURCE_PHOTOS[name])))]
    img = _photo_at(name, size)
    w, h = img.size
    side = rng.uniform(0.55, 1.0) * min(w, h)
    aspect = rng.uniform(0.85, 1.18)
    cw, ch = min(w, side * aspect), min(h, side / aspect)
    x = rng.uniform(0, w - cw)
    y = rng.uniform(0, h - ch)
    out = img.resize((size, size), Image.BILINEAR, box=(x, y, x + cw, y + ch))
    arr = np.asarray(out, dtype=np.uint8).copy()
    if rng.random() < 0.5:
        arr = arr[:, ::-1].copy()
    return arr, name, prompt


# --------------------------------------------------------------------------- helpers
def _where(box: tuple[int, int, int, int], w: int, h: int) -> str:
    cx, cy = (box[0] + box[2]) / 2 / w, (box[1] + box[3]) / 2 / h
    row = "top" if cy < 0.38 else ("bottom" if cy > 0.62 else "")
    col = "left" if cx < 0.38 else ("right" if cx > 0.62 else "")
    if not row and not col:
        return "in the centre"
    if row and col:
        return f"in the {row} {col}"
    return f"on the {col}" if col else f"at the {row}"


def _region(img: np.ndarray, box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return img[y0:y1, x0:x1].astype(np.float32) / 255.0


def _put(img: np.ndarray, box, values: np.ndarray) -> None:
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = np.clip(values * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _grid(box) -> tuple[np.ndarray, np.ndarray]:
    x0, y0, x1, y1 = box
    u = (np.arange(x1 - x0, dtype=np.float32) + 0.5) / (x1 - x0)
    v = (np.arange(y1 - y0, dtype=np.float32) + 0.5) / (y1 - y0)
    return u[None, :], v[:, None]


_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=np.float32)
_YIQ_INV = np.linalg.inv(_YIQ).astype(np.float32)
_TINTS = {  # name -> (I, Q) offset: a colour cast in YIQ space
    "magenta": (0.12, 0.22),
    "green": (-0.14, -0.2),
    "blue": (-0.22, 0.05),
    "orange": (0.25, -0.03),
    "purple": (0.02, 0.25),
    "cyan": (-0.22, -0.12),
}


# --------------------------------------------------------------------------- the artifact operations
# Each op changes pixels only inside ``box`` and returns the words for its caption (or None if it cannot apply).
def _op_blur(img, box, boxes, rng):
    x0, y0, x1, y1 = box
    h, w = img.shape[:2]
    radius = rng.uniform(0.03, 0.05) * max(h, w)
    m = int(math.ceil(3 * radius))
    cx0, cy0, cx1, cy1 = max(0, x0 - m), max(0, y0 - m), min(w, x1 + m), min(h, y1 + m)
    crop = Image.fromarray(img[cy0:cy1, cx0:cx1]).filter(ImageFilter.GaussianBlur(radius))
    img[y0:y1, x0:x1] = np.asarray(crop)[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0]
    return {}


def _op_chroma(img, box, boxes, rng):
    tint = list(_TINTS)[int(rng.integers(len(_TINTS)))]
    theta = rng.uniform(0.5, 1.5) * math.pi * (1 if rng.random() < 0.5 else -1)
    sat = rng.uniform(1.6, 2.4)
    c, s = math.cos(theta) * sat, math.sin(theta) * sat
    rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float32)
    mat = _YIQ_INV @ rot @ _YIQ
    offset = _YIQ_INV @ np.array([0.0, *_TINTS[tint]], dtype=np.float32) * rng.uniform(0.8, 1.2)
    reg = _region(img, box)
    _put(img, box, reg @ mat.T + offset)
    return {"tint": tint}


def _op_texture(img, box, boxes, rng):
    x0, y0, x1, y1 = box
    bh, bw = y1 - y0, x1 - x0
    size = max(img.shape[:2])
    reg = _region(img, box)
    kind = int(rng.integers(3))
    if kind == 0:  # coarse colour grain, grains of a few pixels so it survives downscaling
        cell = max(1, int(size * rng.uniform(0.012, 0.025)))
        small = rng.normal(0, 1, size=(bh // cell + 2, bw // cell + 2, 3)).astype(np.float32)
        noise = np.repeat(np.repeat(small, cell, 0), cell, 1)[:bh, :bw]
        out, pattern = reg + noise * rng.uniform(0.2, 0.3), "grainy noise"
    elif kind == 1:  # a real texture (brick, grass, gravel) stamped at a wrong scale
        name = TEXTURES[int(rng.integers(len(TEXTURES)))]
        tex = _texture(name)
        step = int(rng.integers(1, 3))
        ty = int(rng.integers(0, max(1, tex.shape[0] - bh * step)))
        tx = int(rng.integers(0, max(1, tex.shape[1] - bw * step)))
        patch = tex[ty : ty + bh * step : step, tx : tx + bw * step : step]
        patch = np.pad(patch, ((0, bh - patch.shape[0]), (0, bw - patch.shape[1])), mode="wrap")
        mean = reg.mean(axis=(0, 1), keepdims=True)
        out = 0.35 * reg + 0.65 * mean + patch[..., None] * rng.uniform(0.22, 0.3)
        pattern = {
            "brick": "brick-like pattern",
            "grass": "fibrous grass-like texture",
            "gravel": "pebbly gravel texture",
        }[name]
    else:  # a regular grating, an unnaturally repeating texture
        period = size * rng.uniform(0.03, 0.06)
        angle = rng.uniform(0, math.pi)
        yy, xx = np.mgrid[0:bh, 0:bw].astype(np.float32)
        wave = np.sin(2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / period)
        if rng.random() < 0.5:
            wave = wave * np.sin(2 * math.pi * (-xx * math.sin(angle) + yy * math.cos(angle)) / period)
            pattern = "checkered repeating pattern"
        else:
            pattern = "striped repeating pattern"
        out = reg + wave[..., None] * rng.uniform(0.25, 0.35)
    _put(img, box, out)
    return {"pattern": pattern}


def _op_luminance(img, box, boxes, rng):
    reg = _region(img, box)
    mean = reg.mean()
    dark = mean > 0.55 or (mean > 0.2 and rng.random() < 0.5)
    factor = rng.uniform(0.3, 0.5) if dark else rng.uniform(1.7, 2.3)
    out = reg * factor if dark else reg * factor + 0.08
    _put(img, box, out)
    return {"level": "darker" if dark else "brighter"}


def _op_glow(img, box, boxes, rng):
    u, v = _grid(box)
    cu, cv = rng.uniform(0.42, 0.58), rng.uniform(0.42, 0.58)
    ru, rv = min(cu, 1 - cu), min(cv, 1 - cv)
    d = np.sqrt(((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2)
    g = np.clip(1.0 - d, 0.0, 1.0) ** 0.6 * rng.uniform(0.9, 1.0)
    glows = {"white": (1.0, 1.0, 1.0), "yellow": (1.0, 0.95, 0.55), "pink": (1.0, 0.7, 0.9), "blue": (0.7, 0.85, 1.0)}
    name = list(glows)[int(rng.integers(len(glows)))]
    color = np.array(glows[name], dtype=np.float32)
    reg = _region(img, box)
    _put(img, box, reg + (color - reg) * g[..., None])
    return {"glow": name}


def _op_lighting(img, box, boxes, rng):
    u, v = _grid(box)
    angle = rng.uniform(0, 2 * math.pi)
    du, dv = math.cos(angle), math.sin(angle)
    t = (u - 0.5) * du + (v - 0.5) * dv
    t = (t - t.min()) / (t.max() - t.min() + 1e-6)
    lo, hi = rng.uniform(0.12, 0.3), rng.uniform(1.8, 2.2)
    factor = lo + (hi - lo) * t
    tints = {"orange": (1.15, 0.9, 0.6), "blue": (0.65, 0.85, 1.2), "green": (0.75, 1.15, 0.7)}
    tint = list(tints)[int(rng.integers(len(tints)))]
    col = np.array(tints[tint], dtype=np.float32)
    reg = _region(img, box)
    light = factor[..., None] * (1 + (col - 1) * t[..., None])
    _put(img, box, reg * light + 0.1 * t[..., None])
    # the bright side is where the light comes from
    horiz = "right" if du > 0.38 else ("left" if du < -0.38 else "")
    vert = "bottom" if dv > 0.38 else ("top" if dv < -0.38 else "")
    side = " ".join(p for p in (vert, horiz) if p) or "side"
    return {"tint": tint, "side": side}


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _op_duplicate(img, box, boxes, rng):
    x0, y0, x1, y1 = box
    h, w = img.shape[:2]
    bw, bh = x1 - x0, y1 - y0
    if rng.random() < 0.7:
        # twins: one half of the box repeated in the other half, the same part side by side (or stacked)
        flip = rng.random() < 0.5
        if bw >= bh:
            half = bw // 2
            a, b = (slice(x0, x0 + half), slice(x1 - half, x1))
            a, b = (b, a) if flip else (a, b)
            src, dst = img[y0:y1, a], img[y0:y1, b]
        else:
            half = bh // 2
            a, b = (slice(y0, y0 + half), slice(y1 - half, y1))
            a, b = (b, a) if flip else (a, b)
            src, dst = img[a, x0:x1], img[b, x0:x1]
        if np.abs(src.astype(np.int16) - dst).mean() + src.std() > 12.0:
            dst[...] = src.copy()
            return {}
    # the neighbours first (a part repeated next to itself), then random places; keep the most visible copy
    shifts = [(bw, 0), (-bw, 0), (0, bh), (0, -bh)]
    shifts += [(int(rng.integers(-x0, w - x1 + 1)), int(rng.integers(-y0, h - y1 + 1))) for _ in range(4)]
    dst = img[y0:y1, x0:x1].astype(np.int16)
    best, best_score = None, 12.0  # copying a flat area onto a similar one changes nothing visible
    for dx, dy in shifts:
        src = (x0 + dx, y0 + dy, x1 + dx, y1 + dy)
        if src[0] < 0 or src[1] < 0 or src[2] > w or src[3] > h or _overlaps(src, box):
            continue
        if any(_overlaps(src, b) for b in boxes):
            continue
        patch = img[src[1] : src[3], src[0] : src[2]]
        score = np.abs(patch.astype(np.int16) - dst).mean() + patch.std()
        if score > best_score:
            best, best_score = patch.copy(), score
    if best is None:
        return None
    img[y0:y1, x0:x1] = best
    return {}


def _op_omit(img, box, boxes, rng):
    x0, y0, x1, y1 = box
    h, w = img.shape[:2]
    f = img.astype(np.float32) / 255.0
    top = f[max(y0 - 1, 0), x0:x1]
    bottom = f[min(y1, h - 1), x0:x1]
    left = f[y0:y1, max(x0 - 1, 0)]
    right = f[y0:y1, min(x1, w - 1)]
    from scipy.ndimage import uniform_filter1d

    # smoothed borders: a featureless fill, not streaks continuing every edge pixel
    top, bottom = (uniform_filter1d(a, max(3, x1 - x0), axis=0, mode="nearest") for a in (top, bottom))
    left, right = (uniform_filter1d(a, max(3, y1 - y0), axis=0, mode="nearest") for a in (left, right))
    u, v = _grid(box)
    u3, v3 = u[..., None], v[..., None]
    tl, tr, bl, br = top[0], top[-1], bottom[0], bottom[-1]
    coons = (
        (1 - v3) * top[None]
        + v3 * bottom[None]
        + (1 - u3) * left[:, None]
        + u3 * right[:, None]
        - ((1 - u3) * (1 - v3) * tl + u3 * (1 - v3) * tr + (1 - u3) * v3 * bl + u3 * v3 * br)
    )
    coons = np.asarray(
        Image.fromarray(np.clip(coons * 255 + 0.5, 0, 255).astype(np.uint8)).filter(ImageFilter.BoxBlur(2))
    )
    old = img[y0:y1, x0:x1]
    if np.abs(coons.astype(np.int16) - old).mean() < 6:
        return None  # nothing to omit in a flat area
    img[y0:y1, x0:x1] = coons
    return {}


def _op_distort(img, box, boxes, rng):
    from scipy.ndimage import map_coordinates

    x0, y0, x1, y1 = box
    h, w = img.shape[:2]
    bw, bh = x1 - x0, y1 - y0
    u, v = _grid(box)
    window = np.sin(math.pi * u) * np.sin(math.pi * v)
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    if rng.random() < 0.5:
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        theta = rng.uniform(2.5, 4.5) * (1 if rng.random() < 0.5 else -1) * window**1.5
        c, s = np.cos(theta), np.sin(theta)
        sx, sy = cx + c * (xs - cx) - s * (ys - cy), cy + s * (xs - cx) + c * (ys - cy)
        warp = "twisted"
    else:
        amp = rng.uniform(0.1, 0.16) * min(bw, bh)
        period = rng.uniform(0.35, 0.6)
        phase = rng.uniform(0, 2 * math.pi)
        sx = xs + amp * window * np.sin(2 * math.pi * v / period + phase)
        sy = ys + amp * window * np.sin(2 * math.pi * u / period + phase)
        warp = "warped"
    coords = np.stack([np.clip(sy, 0, h - 1), np.clip(sx, 0, w - 1)])
    out = np.empty((bh, bw, 3), dtype=np.float32)
    for ch in range(3):
        out[..., ch] = map_coordinates(img[..., ch].astype(np.float32), coords, order=1, mode="nearest")
    img[y0:y1, x0:x1] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return {"warp": warp}


def _op_letters(img, box, boxes, rng):
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    light = rng.random() < 0.6
    plate = tuple(int(c) for c in (rng.integers(200, 256, size=3) if light else rng.integers(10, 70, size=3)))
    ink = tuple(int(c) for c in (rng.integers(0, 60, size=3) if light else rng.integers(210, 256, size=3)))
    sign = Image.new("RGB", (bw, bh), plate)
    draw = ImageDraw.Draw(sign)
    border = max(1, min(bw, bh) // 24)
    draw.rectangle([0, 0, bw - 1, bh - 1], outline=ink, width=border)
    lines = int(rng.integers(1, 4))
    fsize = max(6, int(bh / (lines + 0.8)))
    for li in range(lines):
        x = border + 2 + rng.uniform(0, fsize * 0.3)
        base_y = border + (bh - 2 * border) * (li + 0.5) / lines - fsize * 0.55
        while x < bw - border - fsize * 0.4:
            ch = _CHARS[int(rng.integers(len(_CHARS)))]
            size = max(5, int(fsize * rng.uniform(0.65, 1.25)))
            y = base_y + rng.uniform(-0.18, 0.18) * fsize
            draw.text((x, y), ch, fill=ink, font=_font(size))
            x += size * rng.uniform(0.35, 0.75)
    arr = np.asarray(sign, dtype=np.uint8)
    # a ripple so strokes melt into each other like a generator's pseudo-letters
    shift = (np.sin(np.arange(bh) / max(2.0, bh / 6) + rng.uniform(0, 6.28)) * bw * 0.02).astype(int)
    rows = (np.arange(bw)[None, :] - shift[:, None]).clip(0, bw - 1)
    img[y0:y1, x0:x1] = arr[np.arange(bh)[:, None], rows]
    return {}


_OPS = {
    "localized_blur": _op_blur,
    "chromatic_irregularity": _op_chroma,
    "abnormal_texture": _op_texture,
    "luminance_discrepancy": _op_luminance,
    "impractical_luminosity": _op_glow,
    "unrealistic_lighting": _op_lighting,
    "duplicated_components": _op_duplicate,
    "omitted_components": _op_omit,
    "distorted_components": _op_distort,
    "illegible_letters": _op_letters,
}
assert set(_OPS) == set(SYNTH_KINDS)


# Kinds that remove or move detail are invisible on a flat area: their box goes where the photo is busiest.
_DETAIL_KINDS = ("localized_blur", "omitted_components", "distorted_components", "duplicated_components")


def _sample_box(
    rng, kind: str, size: int | tuple[int, int], boxes, img: np.ndarray | None = None
) -> tuple[int, int, int, int] | None:
    """A box in pixels for ``kind`` on a square image of side ``size`` (or ``(width, height)``), clear of ``boxes``."""
    width, height = (size, size) if isinstance(size, (int, np.integer)) else size
    wanted = 6 if (kind in _DETAIL_KINDS and img is not None) else 1
    found: list[tuple[int, int, int, int]] = []
    for _ in range(30):
        if kind == "illegible_letters":
            fw, fh = rng.uniform(0.35, 0.6), rng.uniform(0.2, 0.33)
        else:
            fw, fh = rng.uniform(0.25, 0.5), rng.uniform(0.25, 0.5)
        bw, bh = min(width, max(4, int(fw * width))), min(height, max(4, int(fh * height)))
        x0, y0 = int(rng.integers(0, width - bw + 1)), int(rng.integers(0, height - bh + 1))
        box = (x0, y0, x0 + bw, y0 + bh)
        if not any(_overlaps(box, b) for b in boxes):
            found.append(box)
            if len(found) == wanted:
                break
    if len(found) <= 1:
        return found[0] if found else None
    step = max(1, max(width, height) // 64)
    grey = img[::step, ::step].astype(np.float32).mean(axis=-1)

    def detail(b):
        reg = grey[
            b[1] // step : max(b[1] // step + 1, b[3] // step), b[0] // step : max(b[0] // step + 1, b[2] // step)
        ]
        return (
            float(np.abs(np.diff(reg, axis=0)).mean() + np.abs(np.diff(reg, axis=1)).mean()) if reg.size > 4 else 0.0
        )

    return max(found, key=detail)


def _caption(kind: str, box, width: int, height: int, words: dict, rng) -> str:
    templates = _CAPTIONS[kind]
    caption = templates[int(rng.integers(len(templates)))].format(where=_where(box, width, height), **words)
    return caption[0].upper() + caption[1:]


# --------------------------------------------------------------------------- public API
def synthesize_example(
    index: int,
    seed: int = 0,
    size: int = 256,
    clean_fraction: float = 0.2,
    kinds: tuple[str, ...] = SYNTH_KINDS,
    return_arrays: bool = False,
    max_artifacts: int = 3,
) -> dict[str, Any] | tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Synthesize image ``index`` of the stream for ``seed``: a dataset row with a PIL image.

    ``kinds`` restricts the kinds drawn (e.g. the easiest ones for a tiny classifier); an image gets 1 to
    ``max_artifacts`` artifacts (60/30/10 % for 1/2/3), or none with probability ``clean_fraction``.

    With ``return_arrays`` also returns the clean photo and the image with artifacts as uint8 arrays
    (tests compare them to check that pixels changed only inside the boxes).
    """
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    if max_artifacts < 1:
        raise ValueError(f"max_artifacts must be at least 1, got {max_artifacts}")
    kinds = tuple(kinds)
    if not kinds:
        raise ValueError(f"kinds is empty: choose some of {', '.join(SYNTH_KINDS)}")
    unknown = [k for k in kinds if k not in _OPS]
    if unknown:
        raise ValueError(f"cannot synthesize {unknown}: the synthesizable kinds are {', '.join(SYNTH_KINDS)}")
    rng = np.random.default_rng([int(seed), int(index)])
    clean, source_name, prompt = _base_image(rng, size)
    img = clean.copy()
    artifacts = []
    if rng.random() >= clean_fraction:
        count = min(int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1])), max_artifacts)
        order = [kinds[int(i)] for i in rng.permutation(len(kinds))]
        boxes: list[tuple[int, int, int, int]] = []
        for kind in order:
            if len(artifacts) == count:
                break
            box = _sample_box(rng, kind, size, boxes, img)
            if box is None:
                continue
            words = _OPS[kind](img, box, boxes, rng)
            if words is None:
                continue
            boxes.append(box)
            caption = _caption(kind, box, size, size, words, rng)
            artifacts.append(
                {
                    "label": get_kind(kind).index,
                    "bbox": [box[0] / size, box[1] / size, box[2] / size, box[3] / size],
                    "caption": caption,
                }
            )
    row = {
        "image": Image.fromarray(img, "RGB"),
        "image_id": f"synth-{seed}-{index:07d}",
        "prompt": prompt,
        "generator": GENERATOR_NAME,
        "source": "synthetic",
        "width": size,
        "height": size,
        "other_artifacts_caption": "",
        "artifacts": artifacts,
    }
    if return_arrays:
        return row, clean, img
    return row


def inject_artifact(
    image: Image.Image,
    kind: str,
    rng: np.random.Generator | int | None = None,
    box: tuple[int, int, int, int] | None = None,
    attempts: int = 10,
) -> tuple[Image.Image, tuple[int, int, int, int], str] | None:
    """One artifact of ``kind`` injected into a copy of ``image``: ``(new image, box, caption)``, or ``None``.

    For pairs of the same photo with and without an artifact (e.g. to check that a reward prefers the clean one):
    the result has the image's size, and pixels change only inside ``box`` (pixels ``(x0, y0, x1, y1)``, end
    exclusive; drawn as :func:`synthesize_example` draws them when not given). ``rng`` is a numpy ``Generator`` or
    a seed. ``None`` when the kind cannot apply (``omitted_components`` or ``duplicated_components`` on a flat
    area) in ``attempts`` boxes, or in the one given.
    """
    if kind not in _OPS:
        raise ValueError(f"cannot inject {kind!r}: the synthesizable kinds are {', '.join(SYNTH_KINDS)}")
    rng = np.random.default_rng(rng)
    clean = np.asarray(image.convert("RGB"), dtype=np.uint8)
    height, width = clean.shape[:2]
    if box is not None:
        box = tuple(int(v) for v in box)
        if not (0 <= box[0] < box[2] <= width and 0 <= box[1] < box[3] <= height):
            raise ValueError(f"box {box} is not inside the {width}x{height} image: need 0 <= x0 < x1 <= width, etc.")
    for _ in range(1 if box is not None else max(1, int(attempts))):
        chosen = box if box is not None else _sample_box(rng, kind, (width, height), [], clean)
        if chosen is None:
            continue
        img = clean.copy()
        words = _OPS[kind](img, chosen, [], rng)
        if words is not None:
            return Image.fromarray(img, "RGB"), chosen, _caption(kind, chosen, width, height, words, rng)
    return None


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _encoded(args: tuple) -> dict[str, Any]:
    index, seed, size, clean_fraction, kinds, max_artifacts = args
    row = synthesize_example(index, seed, size, clean_fraction, kinds=kinds, max_artifacts=max_artifacts)
    row["image"] = {"bytes": _png(row["image"]), "path": None}
    return row


def iter_synthesized(
    n: int,
    size: int = 256,
    seed: int = 0,
    clean_fraction: float = 0.2,
    num_proc: int = 1,
    progress: bool = True,
    kinds: tuple[str, ...] = SYNTH_KINDS,
    max_artifacts: int = 3,
) -> Iterator[dict[str, Any]]:
    """Yield ``n`` synthesized rows in index order (images as PNG bytes), using ``num_proc`` processes."""
    from tqdm.auto import tqdm

    kinds = tuple(kinds)
    jobs = ((i, seed, size, clean_fraction, kinds, max_artifacts) for i in range(n))
    bar = tqdm(total=n, desc="Synthesizing artifacts", unit="img", disable=not progress)
    if num_proc <= 1:
        for job in jobs:
            yield _encoded(job)
            bar.update()
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(num_proc) as pool:
            for row in pool.imap(_encoded, jobs, chunksize=max(1, min(64, n // (num_proc * 8) or 1))):
                yield row
                bar.update()
    bar.close()


def _generate(code_version: str = "", **kwargs):
    yield from iter_synthesized(**kwargs)


def synthesize_dataset(
    n: int,
    size: int = 256,
    seed: int = 0,
    clean_fraction: float = 0.2,
    test_size: float = 0.2,
    num_proc: int = 1,
    progress: bool = True,
    kinds: tuple[str, ...] | None = None,
    max_artifacts: int = 3,
):
    """Synthesize ``n`` images with artifacts as a ``DatasetDict`` with stratified ``train`` / ``test`` splits.

    Same schema as ``synartifact dataset build`` (``source="synthetic"``, ``generator="synartifact-synth"``);
    deterministic for ``seed`` whatever ``num_proc``. ``kinds`` (default :data:`SYNTH_KINDS`) and
    ``max_artifacts`` narrow what is drawn, e.g. one artifact per image of a few kinds for a tiny classifier.
    """
    from datasets import Dataset, DatasetDict

    from synartifact.data.schema import get_features
    from synartifact.data.splits import stratified_split

    if n < 1:
        raise ValueError(f"n must be a positive number of images, got {n}")
    if not 0.0 <= clean_fraction <= 1.0:
        raise ValueError(f"clean_fraction must be in [0, 1], got {clean_fraction}")
    if num_proc < 1:
        raise ValueError(f"num_proc must be at least 1, got {num_proc}")
    kinds = tuple(SYNTH_KINDS if kinds is None else kinds)
    synthesize_example(0, seed, 16, clean_fraction, kinds=kinds, max_artifacts=max_artifacts)  # argument checks
    key = f"{_CODE_VERSION}-{n}-{size}-{seed}-{clean_fraction}-{num_proc}-{kinds}-{max_artifacts}"
    ds = Dataset.from_generator(
        _generate,
        features=get_features(),
        gen_kwargs={
            "n": n,
            "size": size,
            "seed": seed,
            "clean_fraction": clean_fraction,
            "num_proc": num_proc,
            "progress": progress,
            "kinds": kinds,
            "max_artifacts": max_artifacts,
            "code_version": _CODE_VERSION,
        },
        fingerprint=hashlib.sha1(key.encode()).hexdigest()[:16],
    )
    labels = [[a["label"] for a in arts] for arts in ds["artifacts"]]
    train, test = stratified_split(labels, test_size=test_size, seed=seed)
    return DatasetDict({"train": ds.select(train), "test": ds.select(test)})
