"""The SynArtifact dataset schema: ``datasets.Features``, row validation and bounding-box normalization.

One row is one image::

    {"image": PIL.Image (RGB), "image_id": str, "prompt": str, "generator": str,
     "source": "annotated" | "synthetic", "width": int, "height": int, "other_artifacts_caption": str,
     "artifacts": [{"label": int (ClassLabel over taxonomy.SLUGS), "bbox": [x0, y0, x1, y1], "caption": str}]}

``bbox`` is normalized to [0, 1] relative to the image, ``x0 < x1`` and ``y0 < y1``. Class index ``i`` is the
release's ``artifacts_class`` ``i`` (the paper's order, :data:`synartifact.taxonomy.KINDS`). An image without
artifacts has an empty ``artifacts`` list.

A **kind-less artifact** (a region whose source names no kind: LOKI, RichHF and PAL4VST regions, SynthScars refs)
has ``label`` :data:`KINDLESS` (-1, the ``ClassLabel`` convention for "no label", which ``datasets`` encodes, stores
and reads back as -1). It counts as an artifact (the image is not clean; binary detection and localization score
it) but names no kind (kind metrics and SFT kind targets leave it out).

Optional columns (present only where a source has them; a dataset without them loads and validates as before):
``mask`` in each artifact (its region as run-length encoding, :mod:`synartifact.data.masks`; ``None`` for an
artifact without one), image-level float columns (:data:`IMAGE_SCORE_COLUMNS`-style, e.g. RichHF's
``artifact_score``; ``None`` where a row has no value) and ``origin`` (the dataset a row comes from, written by
``synartifact dataset merge``; ``source`` keeps its meaning, annotated or synthetic).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from synartifact.taxonomy import KINDS, SLUGS, get_kind

__all__ = [
    "SOURCES",
    "BBOX_TOLERANCE",
    "DatasetValidationError",
    "IMAGE_SCORE_COLUMNS",
    "KINDLESS",
    "ORIGIN_COLUMN",
    "bbox_to_unit",
    "Problem",
    "get_features",
    "normalize_bbox",
    "detect_bbox_units",
    "resolve_label",
    "validate_row",
]

SOURCES: tuple[str, ...] = ("annotated", "synthetic")
# The label of an artifact whose source names no kind (ClassLabel's "no label").
KINDLESS = -1
# The column naming the dataset a row comes from (merge); not ``source``, which says annotated or synthetic.
ORIGIN_COLUMN = "origin"
# RichHF-18K's image-level scores, kept as float columns when a source has them (any other float a source gives is
# kept too, under its own name).
IMAGE_SCORE_COLUMNS: tuple[str, ...] = (
    "artifact_score",
    "misalignment_score",
    "aesthetics_score",
    "overall_score",
    "plausibility_score",
)
_BASE_COLUMNS = (
    "image",
    "image_id",
    "prompt",
    "generator",
    "source",
    "width",
    "height",
    "other_artifacts_caption",
    "artifacts",
)
# A box may overshoot the image by this fraction of its side (annotation tools round corners) and is clipped.
BBOX_TOLERANCE = 0.01
# A box narrower or lower than this (normalized) is degenerate: a line or a point marks nothing.
MIN_BOX_SIDE = 1e-3
# A DatasetValidationError message lists this many problems; a whole COCO file's worth would bury the first ones.
MAX_LISTED_PROBLEMS = 50


def get_features(*, masks: bool = False, image_columns: Sequence[str] = (), origin: bool = False):
    """The ``datasets.Features`` every SynArtifact dataset (built or synthesized) has.

    Optional parts: ``masks`` adds each artifact's ``mask`` (run-length encoding, :mod:`synartifact.data.masks`),
    ``image_columns`` image-level float columns (RichHF's scores), ``origin`` the ``origin`` string column.
    """
    from datasets import ClassLabel, Features, Image, List, Value

    artifact = {
        "label": ClassLabel(names=list(SLUGS)),
        "bbox": List(Value("float32"), length=4),
        "caption": Value("string"),
    }
    if masks:
        from synartifact.data.masks import get_mask_feature

        artifact["mask"] = get_mask_feature()
    features = Features(
        {
            "image": Image(),
            "image_id": Value("string"),
            "prompt": Value("string"),
            "generator": Value("string"),
            "source": Value("string"),
            "width": Value("int32"),
            "height": Value("int32"),
            "other_artifacts_caption": Value("string"),
            "artifacts": List(artifact),
        }
    )
    for name in image_columns:
        features[name] = Value("float32")
    if origin:
        features[ORIGIN_COLUMN] = Value("string")
    return features


@dataclass(frozen=True)
class Problem:
    """One problem found in the input: where (file, record, field) and what is wrong or what would be valid."""

    file: str
    record: str
    field: str
    message: str

    def __str__(self) -> str:
        where = ", ".join(
            part for part in (self.file, f"record {self.record}" if self.record else "", self.field) if part
        )
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready dict (one line of ``rejected.jsonl`` lists these)."""
        return {"file": self.file, "record": self.record, "field": self.field, "message": self.message}


class DatasetValidationError(ValueError):
    """Every problem found in an input, collected and reported at once (not only the first).

    The message lists at most :data:`MAX_LISTED_PROBLEMS` of them; ``problems`` holds all. ``rejected`` and
    ``report`` carry what a build had found when it stopped (the rejected records and its build report), so that a
    caller can still write ``rejected.jsonl``.
    """

    def __init__(
        self,
        problems: Sequence[Problem | str],
        context: str = "The input",
        *,
        hint: str | None = None,
        rejected: list[dict[str, Any]] | None = None,
        report: Any = None,
    ):
        self.problems = list(problems)
        self.rejected = rejected
        self.report = report
        shown = self.problems[:MAX_LISTED_PROBLEMS]
        lines = "\n".join(f"  - {p}" for p in shown)
        if len(self.problems) > len(shown):
            lines += f"\n  ... and {len(self.problems) - len(shown)} more (all listed in rejected.jsonl with --skip-invalid)"
        if hint is None:
            hint = "Fix these records, or pass --skip-invalid (skip_invalid=True) to keep the valid ones and list the rest in rejected.jsonl."
        super().__init__(f"{context} has {len(self.problems)} problem(s):\n{lines}\n{hint}")


def resolve_label(value: Any) -> int:
    """The class index for a label given as an index (int or digit string), a slug, a name or a loose spelling."""
    if isinstance(value, bool) or value is None:
        raise ValueError(
            f"label {value!r} is not a kind: give an index 0-{len(KINDS) - 1} or one of {', '.join(SLUGS)}."
        )
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    return get_kind(value).index


def detect_bbox_units(values: Sequence[float]) -> str:
    """``"normalized"`` when every coordinate lies in [0, 1], else ``"pixels"`` (apply to all boxes of one file)."""
    return "normalized" if all(0.0 <= float(v) <= 1.0 for v in values) else "pixels"


def _as_four_numbers(box: Any) -> list[float]:
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise ValueError(f"bbox must be a list of 4 numbers, got {box!r}")
    out = []
    for v in box:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            raise ValueError(f"bbox must be a list of 4 finite numbers, got {box!r}")
        out.append(float(v))
    return out


def bbox_to_unit(
    box: Sequence[float], width: int, height: int, *, fmt: str = "xyxy", units: str = "pixels"
) -> list[float]:
    """A box as ``[x_min, y_min, x_max, y_max]`` relative to the image, corners sorted but *not* clipped to [0, 1].

    ``fmt`` and ``units`` as in :func:`normalize_bbox`; a malformed box raises ``ValueError``. Importers compare it
    with :func:`normalize_bbox`'s result to count clipped boxes.
    """
    x0, y0, a, b = _as_four_numbers(box)
    if fmt == "xywh":
        if a < 0 or b < 0:
            raise ValueError(f"bbox {list(box)} has a negative width or height (format x, y, width, height)")
        x1, y1 = x0 + a, y0 + b
    elif fmt == "xyxy":
        x1, y1 = a, b
    else:
        raise ValueError(f"bbox format {fmt!r} is not one of 'xyxy', 'xywh'")
    if units == "pixels":
        if width <= 0 or height <= 0:
            raise ValueError(f"image size {width}x{height} is not valid")
        sx, sy = 1.0 / width, 1.0 / height
    elif units == "percent":
        sx = sy = 0.01
    elif units == "normalized":
        sx = sy = 1.0
    else:
        raise ValueError(f"bbox units {units!r} are not one of 'pixels', 'normalized', 'percent'")
    x0, x1 = sorted((x0 * sx, x1 * sx))
    y0, y1 = sorted((y0 * sy, y1 * sy))
    return [x0, y0, x1, y1]


def normalize_bbox(
    box: Sequence[float],
    width: int,
    height: int,
    *,
    fmt: str = "xyxy",
    units: str = "pixels",
    tolerance: float = BBOX_TOLERANCE,
) -> list[float]:
    """Convert a box to normalized ``[x_min, y_min, x_max, y_max]`` in [0, 1].

    ``fmt`` is ``"xyxy"`` (two opposite corners, in any order) or ``"xywh"`` (a corner and a size, COCO style);
    ``units`` is ``"pixels"``, ``"normalized"`` or ``"percent"`` (Label Studio). A box that overshoots the image by
    at most ``tolerance`` of a side is clipped; one further outside, or one with no area, raises ``ValueError``.
    """
    x0, y0, x1, y1 = bbox_to_unit(box, width, height, fmt=fmt, units=units)
    if x0 < -tolerance or y0 < -tolerance or x1 > 1 + tolerance or y1 > 1 + tolerance:
        raise ValueError(
            f"bbox {list(box)} ({units}, {fmt}) lies outside the {width}x{height} image by more than "
            f"{tolerance:.0%} of a side; valid boxes lie within the image (0 <= x <= width, 0 <= y <= height)"
        )
    x0, y0, x1, y1 = (min(max(v, 0.0), 1.0) for v in (x0, y0, x1, y1))
    if x1 - x0 < MIN_BOX_SIDE or y1 - y0 < MIN_BOX_SIDE:
        raise ValueError(f"bbox {list(box)} is degenerate (no area): its corners must differ in both x and y")
    return [x0, y0, x1, y1]


def validate_row(row: dict[str, Any]) -> list[str]:
    """The problems of one dataset row (an empty list when it matches :func:`get_features` and the contract)."""
    problems = []
    for key in _BASE_COLUMNS:
        if key not in row:
            problems.append(f"field {key!r} is missing")
    if problems:
        return problems
    if not isinstance(row["image_id"], str) or not row["image_id"]:
        problems.append("image_id must be a non-empty string")
    if row["source"] not in SOURCES:
        problems.append(f"source {row['source']!r} must be one of {SOURCES}")
    for key in ("width", "height"):
        if not isinstance(row[key], int) or row[key] <= 0:
            problems.append(f"{key} must be a positive int, got {row[key]!r}")
    for key in ("prompt", "generator", "other_artifacts_caption"):
        if not isinstance(row[key], str):
            problems.append(f"{key} must be a string, got {type(row[key]).__name__}")
    if not isinstance(row["artifacts"], list):
        return problems + ["artifacts must be a list"]
    for i, art in enumerate(row["artifacts"]):
        if not isinstance(art, dict) or not {"label", "bbox", "caption"} <= set(art) <= {
            "label",
            "bbox",
            "caption",
            "mask",
        }:
            problems.append(f"artifacts[{i}] must be a dict with keys label, bbox, caption (and optionally mask)")
            continue
        if not isinstance(art["label"], int) or not KINDLESS <= art["label"] < len(KINDS):
            problems.append(
                f"artifacts[{i}].label must be an index 0-{len(KINDS) - 1} or {KINDLESS} (no kind), "
                f"got {art['label']!r}"
            )
        if art.get("mask") is not None:
            from synartifact.data.masks import check_rle

            why = check_rle(art["mask"])
            if why:
                problems.append(f"artifacts[{i}].{why}")
        try:
            x0, y0, x1, y1 = _as_four_numbers(list(art["bbox"]))
            if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
                problems.append(
                    f"artifacts[{i}].bbox {list(art['bbox'])} must be normalized with x0 < x1, y0 < y1 in [0, 1]"
                )
        except (ValueError, TypeError) as err:
            problems.append(f"artifacts[{i}].bbox: {err}")
        if not isinstance(art["caption"], str):
            problems.append(f"artifacts[{i}].caption must be a string")
    return problems
