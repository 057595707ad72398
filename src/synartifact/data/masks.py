"""Artifact masks: how a polygon or mask source keeps its region, and how a region is rasterized for scoring.

A region is stored per artifact in the optional ``mask`` field as COCO's *uncompressed* run-length encoding::

    {"size": [height, width], "counts": [n0, n1, n2, ...]}

``counts`` alternates runs of 0 and 1 pixels, starting with 0 (a mask whose first pixel is set starts with a run of
length 0), over the pixels in column-major order (down the first column, then the next), exactly as COCO writes
``segmentation`` for ``iscrowd`` regions. Why this and not a polygon list: one representation serves all three
sources (SynthScars polygons are rasterized once at the image's size; PAL4VST mask components and RichHF heatmap
components are masks already and have no polygon without tracing contours, which loses holes); it is exact for
masks; it stays small for the compact regions artifacts are (about two runs per column a region spans); ``datasets``
types it as two integer lists; and pycocotools reads it as is (``mask_utils.frPyObjects(rle, h, w)``). ``size`` is
the grid the region was drawn on (the image's size, or RichHF's 512 x 512 heatmap): scoring resizes it to the
evaluation grid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "box_mask",
    "check_rle",
    "decode_rle",
    "encode_rle",
    "get_mask_feature",
    "polygon_mask",
    "resize_mask",
]


def get_mask_feature():
    """The ``datasets`` type of one artifact's ``mask`` (``None`` where an artifact has no region)."""
    from datasets import List, Value

    return {"size": List(Value("int32"), length=2), "counts": List(Value("int32"))}


def encode_rle(mask: Any) -> dict[str, list[int]]:
    """A 2-D mask (non-zero: in the region) as ``{"size": [h, w], "counts": [...]}`` (column-major, 0-run first)."""
    on = np.asarray(mask) != 0
    if on.ndim != 2:
        raise ValueError(f"a mask must be 2-D, got shape {on.shape}")
    flat = on.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    edges = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(edges).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"size": [int(on.shape[0]), int(on.shape[1])], "counts": [int(c) for c in counts]}


def check_rle(rle: Any) -> str | None:
    """Why ``rle`` is not a valid mask encoding, or ``None`` when it is."""
    if not isinstance(rle, Mapping) or set(rle) != {"size", "counts"}:
        return "mask must be {'size': [height, width], 'counts': [run lengths]}"
    size, counts = rle["size"], rle["counts"]
    if not isinstance(size, Sequence) or len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        return f"mask.size must be [height, width], two positive ints, got {size!r}"
    if not isinstance(counts, Sequence) or not all(isinstance(v, int) and v >= 0 for v in counts):
        return "mask.counts must be a list of run lengths (non-negative ints)"
    if sum(counts) != size[0] * size[1]:
        return f"mask.counts add up to {sum(counts)} pixels, not height x width = {size[0] * size[1]}"
    return None


def decode_rle(rle: Mapping[str, Any]) -> np.ndarray:
    """The boolean ``(height, width)`` mask of an encoding written by :func:`encode_rle`."""
    problem = check_rle({"size": list(rle["size"]), "counts": list(rle["counts"])})
    if problem:
        raise ValueError(problem)
    height, width = (int(v) for v in rle["size"])
    values = np.zeros(len(rle["counts"]), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, np.asarray(rle["counts"], dtype=np.int64))
    return flat.reshape((width, height)).T


def polygon_mask(polygons: Sequence[Sequence[float]], width: int, height: int) -> np.ndarray:
    """The pixels of a ``width`` x ``height`` image that flat pixel polygons ``[x1, y1, x2, y2, ...]`` cover, their
    outline included (Pillow's rasterization); parts outside the image are cut off."""
    from PIL import Image, ImageDraw

    canvas = Image.new("1", (int(width), int(height)), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in polygons:
        points = [(float(poly[i]), float(poly[i + 1])) for i in range(0, len(poly) - 1, 2)]
        if len(points) >= 2:
            draw.polygon(points, fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """``mask`` on a ``height`` x ``width`` grid (nearest neighbour: each target pixel takes its centre's value)."""
    if mask.shape == (height, width):
        return mask
    rows = np.minimum(((np.arange(height) + 0.5) * mask.shape[0] / height).astype(int), mask.shape[0] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * mask.shape[1] / width).astype(int), mask.shape[1] - 1)
    return mask[np.ix_(rows, cols)]


def box_mask(bbox: Sequence[float], height: int, width: int) -> np.ndarray:
    """A normalized box ``[x0, y0, x1, y1]`` as a mask of a ``height`` x ``width`` grid (pixels whose centre lies in
    it)."""
    out = np.zeros((height, width), dtype=bool)
    x0, y0, x1, y1 = (float(v) for v in bbox)
    c0, c1 = int(np.ceil(x0 * width - 0.5)), int(np.ceil(x1 * width - 0.5))
    r0, r1 = int(np.ceil(y0 * height - 0.5)), int(np.ceil(y1 * height - 0.5))
    out[max(r0, 0) : max(r1, 0), max(c0, 0) : max(c1, 0)] = True
    return out
