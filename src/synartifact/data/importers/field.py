"""What the readers of the field's datasets share: label-map presets, kinds from captions, kind-less regions, masks.

The field's datasets (SynthScars, HAD, LOKI, ArtiAgent, RichHF-18K, PAL4VST) label their regions with their own
words (HAD's body parts, ArtiAgent's categories) or with none at all (LOKI, RichHF and PAL4VST regions, SynthScars
refs). :data:`LABEL_PRESETS` maps the former to kinds; the latter are never given an invented kind: they are kept as
*kind-less artifacts* (box, caption and region, label :data:`~synartifact.data.schema.KINDLESS`) and counted, unless
``--kinds-from-captions`` finds a kind's keyword (:data:`CAPTION_KEYWORDS`) in their caption or ``--label-map``
maps the source's kind-less label (:data:`KINDLESS_LABELS`, e.g. ``pal4vst_region=distorted_components``).
Mask and heatmap regions keep their pixels (``mask``, :mod:`synartifact.data.masks`), polygons are rasterized at the
image's size when the image is opened.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from synartifact.data.importers.records import (
    IMAGE_EXTENSIONS,
    Record,
    _Context,
    _id_from,
    _local_image,
    _relative_to,
    load_label_map,
)
from synartifact.data.masks import encode_rle
from synartifact.data.schema import Problem
from synartifact.taxonomy import normalize_name

FIELD_FORMATS: tuple[str, ...] = ("synthscars", "had", "loki", "artiagent", "richhf", "pal4vst")
# RichHF-18K's artifact_map: pixels >= this (0-255) are artifact pixels
DEFAULT_HEATMAP_THRESHOLD = 128
# connected components (RichHF heatmaps, PAL4VST masks) with fewer pixels are dropped and counted
DEFAULT_MIN_REGION_PIXELS = 16

# The label a kind-less region of each source carries, for --label-map (e.g. "loki_region=abnormal_texture").
KINDLESS_LABELS: dict[str, str] = {
    "synthscars": "synthscars_region",
    "loki": "loki_region",
    "richhf": "richhf_region",
    "pal4vst": "pal4vst_region",
}

_HAD_PARTS = {
    "face": "awkward_facial_expression",
    "torso": "distorted_components",
    "arm": "distorted_components",
    "leg": "distorted_components",
    "hand": "distorted_components",
    "feet": "distorted_components",
    "foot": "distorted_components",
}

# Source label -> taxonomy slug. Loose spellings match too (case, separators). A user --label-map overrides them.
LABEL_PRESETS: dict[str, dict[str, str]] = {
    # SynthScars refs carry no category (the paper's physics / distortion / structure are named only in its text):
    # this preset applies only to a ref with a "category" key, which some re-exports add.
    "synthscars": {
        "physics": "unrealistic_lighting",
        "physical": "unrealistic_lighting",
        "distortion": "abnormal_texture",
        "structure": "distorted_components",
        "structural": "distorted_components",
    },
    # HADM's local labels are body parts; its global ones "human missing X" / "human with extra X".
    "had": {
        **_HAD_PARTS,
        **{f"human missing {part}": "omitted_components" for part in ("face", "torso", "arm", "leg", "hand", "feet")},
        **{
            f"human with extra {part}": "duplicated_components"
            for part in ("face", "torso", "arm", "leg", "hand", "feet")
        },
    },
    "loki": {},  # regions have a description, no kind
    "artiagent": {
        "addition": "duplicated_components",
        "removal": "omitted_components",
        "distortion": "distorted_components",
        "fusion": "abnormal_spatial_relationship",
    },
    "richhf": {},  # heatmap regions: no kind
    "pal4vst": {},  # mask regions: no kind
}

# --kinds-from-captions: the first kind (in this order) with a keyword (whole words, any case) in the caption wins.
CAPTION_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "illegible_letters",
        ("text", "letter", "letters", "word", "words", "writing", "lettering", "font", "illegible", "garbled"),
    ),
    ("duplicated_components", ("extra", "duplicate", "duplicated", "repeated", "additional", "too many")),
    ("omitted_components", ("missing", "omitted", "absent", "lacks", "lacking", "incomplete")),
    ("awkward_facial_expression", ("face", "faces", "facial", "eye", "eyes", "mouth", "teeth", "nose", "expression")),
    ("localized_blur", ("blur", "blurry", "blurred", "out of focus", "smudged")),
    ("chromatic_irregularity", ("color", "colour", "colors", "colours", "hue", "saturation", "discolored")),
    ("unrealistic_lighting", ("shadow", "shadows", "lighting", "reflection", "reflections")),
    ("impractical_luminosity", ("glow", "glowing", "luminous")),
    ("luminance_discrepancy", ("brightness", "too bright", "too dark", "overexposed", "underexposed")),
    ("abnormal_texture", ("texture", "textures", "noise", "noisy", "pattern", "grainy", "pixelated")),
    (
        "abnormal_spatial_relationship",
        ("floating", "perspective", "proportion", "proportions", "overlapping", "merged", "fused", "fusion"),
    ),
    ("abnormal_non_spatial_relationship", ("holding", "interaction")),
    (
        "distorted_components",
        (
            "hand", "hands", "finger", "fingers", "arm", "arms", "leg", "legs", "foot", "feet", "limb", "limbs",
            "body", "torso", "distorted", "deformed", "malformed", "twisted", "warped", "bent",
        ),
    ),
)  # fmt: skip
_KEYWORD_RES = [
    (slug, re.compile(r"\b(?:" + "|".join(re.escape(k) for k in words) + r")\b")) for slug, words in CAPTION_KEYWORDS
]


def kind_from_caption(text: str) -> str | None:
    """The slug of the first kind of :data:`CAPTION_KEYWORDS` with a keyword in ``text``; None if none matches."""
    low = str(text or "").lower()
    for slug, pattern in _KEYWORD_RES:
        if pattern.search(low):
            return slug
    return None


def label_map_spec(spec: Mapping[str, Any] | str | Path | None) -> dict[str, int | None]:
    """:func:`load_label_map`, where a preset's name (``"had"``, a key of :data:`LABEL_PRESETS`) that is not an
    existing file names that preset."""
    if isinstance(spec, str) and spec.strip().lower() in LABEL_PRESETS and not Path(spec).exists():
        return load_label_map(LABEL_PRESETS[spec.strip().lower()])
    return load_label_map(spec)


def format_label_map(fmt: str, spec: Mapping[str, Any] | str | Path | None) -> dict[str, int | None]:
    """The label map a build of ``fmt`` uses: the format's preset (field formats), overridden label by label by
    ``spec`` (a preset's name, a file, pairs or a mapping)."""
    user = label_map_spec(spec)
    if fmt not in LABEL_PRESETS:
        return user
    overridden = {normalize_name(k) for k in user}
    preset = {k: v for k, v in load_label_map(LABEL_PRESETS[fmt]).items() if normalize_name(k) not in overridden}
    return {**preset, **user}


def _mapped(ctx: _Context, label: str) -> bool:
    return label in ctx.labels.exact or normalize_name(label) in ctx.labels.loose


def kindless_note(source: str) -> str:
    """The build report's note counting ``source``'s regions kept without a kind."""
    return (
        f"{source} regions kept without a kind (label -1): --kinds-from-captions or --label-map "
        f"{KINDLESS_LABELS[source]}=KIND gives them one"
    )


def add_kindless(ctx: _Context, rec: Record, source: str, art: dict[str, Any]) -> None:
    """Add a region that has no kind in its source: a kind from its caption (``--kinds-from-captions``), else the
    label map's kind for the source's kind-less label, else a kind-less artifact (label -1), counted."""
    pseudo = KINDLESS_LABELS[source]
    by_captions = bool(ctx.options.get("kinds_from_captions"))
    if by_captions:
        slug = kind_from_caption(art.get("caption", ""))
        if slug is not None:
            art["label"] = slug
            rec.artifacts.append(art)
            rec.report.notes[
                f"{source} regions given a kind by keywords in their caption (--kinds-from-captions)"
            ] += 1
            return
    if _mapped(ctx, pseudo):
        art["label"] = pseudo
        rec.artifacts.append(art)
        return
    # kind-less: build._finish gives it label KINDLESS without asking the label map (it names no label)
    art["label"], art["kindless"] = pseudo, True
    rec.artifacts.append(art)
    rec.report.notes[kindless_note(source)] += 1


def mask_regions(mask: Any, min_pixels: int) -> tuple[list[tuple[int, int, int, int]], int]:
    """Boxes ``(x0, y0, x1, y1)`` (pixels, ``x1``/``y1`` one past the last pixel) of the 8-connected components of
    the non-zero pixels, in raster order of their first pixel, and how many had fewer than ``min_pixels`` pixels
    (left out). Uses ``scipy.ndimage.label`` when scipy is installed, else a breadth-first search."""
    regions, small = region_masks(mask, min_pixels)
    return [box for box, _ in regions], small


def region_masks(mask: Any, min_pixels: int) -> tuple[list[tuple[tuple[int, int, int, int], Any]], int]:
    """:func:`mask_regions` with each component's own boolean mask (the size of ``mask``): ``[(box, pixels)]``."""
    import numpy as np

    on = np.asarray(mask) != 0
    try:
        from scipy import ndimage
    except ImportError:
        labels = _label_bfs(on)
    else:
        labels, _ = ndimage.label(on, structure=np.ones((3, 3), dtype=int))
    sizes = np.bincount(labels.ravel())
    regions, small = [], 0
    for i in range(1, len(sizes)):
        if sizes[i] == 0:
            continue
        if sizes[i] < min_pixels:
            small += 1
            continue
        pixels = labels == i
        ys, xs = np.nonzero(pixels)
        regions.append(((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1), pixels))
    return regions, small


def records_by_split(
    root: Path, files: list[Path], single_file: bool, make: Any
) -> tuple[list[Record], list[Problem], set[str] | None]:
    """Records of annotation files laid out as ``<root>/<split>/...`` (HAD, PAL4VST): ``make(path, relative name,
    split or None)`` per file; the ``test`` split's image ids, or ``None`` when no file sits in a split folder."""
    records = []
    for path in files:
        rel = Path(path.name) if single_file else path.relative_to(root)
        split = rel.parts[0] if len(rel.parts) > 1 else None
        records.append(make(path, rel.as_posix(), split))
    test_ids = None
    if any(r.split is not None for r in records):
        test_ids = {r.image_id for r in records if r.split == "test"}
    return records, [], test_ids


def add_mask_regions(
    ctx: _Context, rec: Record, source: str, mask: Any, min_pixels: int, what: str, region: str = "mask"
) -> None:
    """One kind-less artifact per connected region of a boolean ``mask`` (its box, normalized to the mask's size),
    through :func:`add_kindless`; regions under ``min_pixels`` are counted as dropped. ``what`` names the regions
    in the artifact's field ("mask region", "artifact_map region"), ``region`` in the report ("mask", "heatmap")."""
    height, width = mask.shape
    regions, small = region_masks(mask, min_pixels)
    if small:
        rec.report.dropped[f"{source} {region} regions under --min-region-pixels"] += small
    for i, ((x0, y0, x1, y1), pixels) in enumerate(regions):
        before = len(rec.artifacts)
        art = {
            "bbox": [x0 / width, y0 / height, x1 / width, y1 / height],
            "caption": "",
            "fmt": "xyxy",
            "units": "normalized",
            "field": f"{what} {i}",
        }
        if ctx.options.get("masks", True):
            art["mask"] = encode_rle(pixels)  # at the mask's own resolution (RichHF: 512 x 512)
        add_kindless(ctx, rec, source, art)
        rec.report.mask_boxes += len(rec.artifacts) > before


def _label_bfs(on: Any) -> Any:
    """8-connected component labels (1, 2, ... in raster order of each component's first pixel) without scipy."""
    import numpy as np

    height, width = on.shape
    labels = np.zeros(on.shape, dtype=np.int32)
    current = 0
    for y0, x0 in zip(*on.nonzero()):
        if labels[y0, x0]:
            continue
        current += 1
        labels[y0, x0] = current
        queue = deque([(int(y0), int(x0))])
        while queue:
            y, x = queue.popleft()
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < height and 0 <= nx < width and on[ny, nx] and not labels[ny, nx]:
                        labels[ny, nx] = current
                        queue.append((ny, nx))
    return labels


def _other_extension(path: Path) -> Path | None:
    for ext in IMAGE_EXTENSIONS:
        for variant in (path.with_suffix(ext), path.with_suffix(ext.upper())):
            if variant != path and variant.is_file():
                return variant
    return None


def locate_image(
    ctx: _Context, rec: Record, field: str, refs: list[str], name: str | None = None, *, count_other: bool = True
) -> None:
    """Set ``rec.image_path`` and ``rec.image_id``: the first of ``refs`` (paths relative to ``--images``) that
    exists, also under another image extension (counted); else the one file called ``name`` under ``--images``;
    else the first inside candidate (reported missing when the record is checked). Never a path outside."""
    first = None
    for ref in refs:
        path, image_id, outside = _local_image(ctx, ref)
        if outside:
            continue
        first = first or (path, image_id)
        if path.is_file():
            rec.image_path, rec.image_id = path, image_id
            return
        other = _other_extension(path)
        if other is not None:
            rec.image_path, rec.image_id = other, _id_from(_relative_to(ctx.images, other), other)
            if count_other:
                rec.report.notes["images found under another extension than the annotation's (.png / .jpg)"] += 1
            return
    if name:
        found = ctx.named(name) or ctx.named(Path(name).stem)
        if len(found) == 1:
            rec.image_path, rec.image_id = found[0], _id_from(_relative_to(ctx.images, found[0]), found[0])
            if Path(name).suffix and found[0].name != name:
                rec.report.notes["images found under another extension than the annotation's (.png / .jpg)"] += 1
            return
        if len(found) > 1:
            rec.problems.append(
                Problem(
                    rec.file,
                    rec.key,
                    field,
                    f"{len(found)} files under --images match {name!r} ("
                    + ", ".join(str(p) for p in found[:3])
                    + "): the image is ambiguous; keep one or give its relative path",
                )
            )
            rec.image_path = None
            return
    if first is not None:
        rec.image_path, rec.image_id = first
    else:
        rec.problems.append(
            Problem(rec.file, rec.key, field, f"no image {name or refs!r} under --images {ctx.images}")
        )
        rec.image_path = None


def split_of(name: str) -> str:
    """``test`` for a split folder called test/val/validation/eval, else ``train``."""
    return "test" if name.lower() in ("test", "val", "valid", "validation", "eval") else "train"


def number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
