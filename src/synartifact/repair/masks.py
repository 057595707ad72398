"""Repair masks: artifact boxes -> a hard mask padded by a margin with a feathered alpha, and pasting an inpainted
image back inside the mask only (every pixel outside it keeps the original's bytes)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

__all__ = ["Box", "artifact_mask"]

Box = tuple[float, float, float, float]


def _check_box(box: Any, where: str) -> Box:
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: a box is 4 numbers (x0, y0, x1, y1) in [0, 1], got {box!r}.") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or not (x0 < x1 and y0 < y1):
        raise ValueError(f"{where}: box {box!r} must be finite with x0 < x1 and y0 < y1 (normalized to [0, 1]).")
    return x0, y0, x1, y1


# How far the repair mask reaches past each box, as a fraction of the image's side: the one default of the
# repairer, the repair command and its config.
DEFAULT_MARGIN = 0.05


def artifact_mask(
    size: tuple[int, int], boxes: Sequence[Box], margin: float = DEFAULT_MARGIN, feather: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The repair mask of an image of ``size`` (width, height): ``(hard, alpha)``.

    ``hard`` (bool, ``[height, width]``) covers each normalized box padded by ``margin`` times the image's width
    (left, right) and height (top, bottom), clipped to the image. ``alpha`` (float in [0, 1]) is ``hard`` feathered
    inward by a Gaussian of ``feather`` pixels (default: 2 % of the longer side, at least 1): 0 wherever ``hard``
    is False, so blending with it leaves every pixel outside the mask untouched.
    """
    width, height = int(size[0]), int(size[1])
    if not 0.0 <= float(margin) <= 1.0:
        raise ValueError(f"margin must be a fraction of the image side in [0, 1], got {margin!r}.")
    hard = np.zeros((height, width), dtype=bool)
    for box in boxes:
        x0, y0, x1, y1 = _check_box(box, "artifact_mask")
        # a hair of slack so that float error (0.7 * 50 = 35.000000000000004) does not add a pixel row
        left = max(0, math.floor((x0 - margin) * width + 1e-6))
        top = max(0, math.floor((y0 - margin) * height + 1e-6))
        right = min(width, math.ceil((x1 + margin) * width - 1e-6))
        bottom = min(height, math.ceil((y1 + margin) * height - 1e-6))
        if right > left and bottom > top:
            hard[top:bottom, left:right] = True
    radius = max(1.0, 0.02 * max(width, height)) if feather is None else float(feather)
    if radius <= 0 or not hard.any():
        return hard, hard.astype(np.float32)
    blurred = Image.fromarray(hard.astype(np.uint8) * 255).filter(ImageFilter.GaussianBlur(radius))
    alpha = np.asarray(blurred, dtype=np.float32) / 255.0
    # rescaled so the blur's edge value (~0.5) becomes 0 and the inside 1: the feather stays within the mask
    alpha = np.clip(2.0 * alpha - 1.0, 0.0, 1.0) * hard
    alpha[hard & (alpha <= 0)] = 1.0 / 255.0
    return hard, alpha


def _paste(original: Image.Image, inpainted: Image.Image, hard: np.ndarray, alpha: np.ndarray) -> Image.Image:
    """``original`` with ``inpainted`` blended in by ``alpha``; pixels outside ``hard`` are the original's bytes."""
    source = np.asarray(original, dtype=np.uint8)
    repaint = np.asarray(inpainted.convert("RGB").resize(original.size, Image.BICUBIC), dtype=np.float32)
    blended = source.astype(np.float32) * (1.0 - alpha[..., None]) + repaint * alpha[..., None]
    out = np.where(hard[..., None], np.clip(np.round(blended), 0, 255).astype(np.uint8), source)
    return Image.fromarray(out, "RGB")
