"""Where is the artifact? Occlusion boxes for a classifier that names kinds without places.

A ``labels``-mode classifier answers "H) Localized Blur" but no box, so the repairer would not know where to paint.
:func:`locate_artifacts` asks the classifier itself, by occlusion sensitivity (Zeiler & Fergus, 2014): every window
of a grid (sides :data:`WINDOW_SIZES` of the image, moved by :data:`WINDOW_STRIDE`) is covered in turn with the mean
colour of a ring of pixels just around it (what the surroundings say would be there), and the classifier's
probability of the named kind is read again (:meth:`~synartifact.reward.ArtifactReward.presence`: the first answer
token's distribution, one forward pass per covered copy). The box is the window whose covering lowers that
probability the most (the smallest such window on a tie). A kind whose largest drop stays under ``min_drop`` is not
located (``None``): covering no window makes it go away, so there is nothing to paint. The boxes are squares on a
grid, so they overshoot a long thin artifact: for a repair, covering the artifact matters more than a tight box
(tightening the sides until the drop fell, tried on the demo, halved how much of the true box the mask covered and
left the overlap with it where it was).

How well that finds the synthesized artifacts' true boxes, against a blind box in the middle of the image:
``benchmarks/locate_boxes.py``. It is coarse (square windows on a grid): a box the classifier draws itself (a
``full``-mode classifier) is used as it is and never replaced.

The boxes come from the classifier's own verdict, not from annotations: the repairer (``unboxed="locate"``) uses
them where the classifier names a kind without a box, and keeps a repair only if the reward then rises, so a wrong
box costs time, never the image.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from synartifact.repair.masks import Box

__all__ = [
    "MIN_DROP",
    "WINDOW_SIZES",
    "WINDOW_STRIDE",
    "apply_located",
    "cover_window",
    "locate_artifacts",
    "occlusion_scorer",
    "windows",
    "with_located_boxes",
]

# window sides as a share of the image side, and their step: the synthesized artifacts cover a quarter to a half
WINDOW_SIZES: tuple[float, ...] = (0.25, 0.375, 0.5)
WINDOW_STRIDE = 0.125
# a kind whose probability no window lowers by this much is not located
MIN_DROP = 0.05


def windows(sizes: Sequence[float] = WINDOW_SIZES, stride: float = WINDOW_STRIDE) -> list[Box]:
    """Every square window of the given sides (shares of the image side) on a grid of ``stride``, smallest first."""
    if not sizes or any(not 0.0 < float(s) <= 1.0 for s in sizes):
        raise ValueError(f"window sizes must be shares of the image side in (0, 1], got {list(sizes)!r}.")
    if not 0.0 < float(stride) <= 1.0:
        raise ValueError(f"stride must be a share of the image side in (0, 1], got {stride!r}.")
    out: list[Box] = []
    for size in sorted(float(s) for s in sizes):
        steps = int(np.floor((1.0 - size) / stride + 1e-9)) + 1
        starts = [round(min(i * stride, 1.0 - size), 6) for i in range(steps)]
        if starts[-1] < 1.0 - size - 1e-9:  # the last window touches the far edge
            starts.append(round(1.0 - size, 6))
        out += [(x, y, round(x + size, 6), round(y + size, 6)) for y in starts for x in starts]
    return out


def _pixels(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    left, top = int(round(x0 * width)), int(round(y0 * height))
    right, bottom = max(left + 1, int(round(x1 * width))), max(top + 1, int(round(y1 * height)))
    return left, top, min(right, width), min(bottom, height)


def cover_window(image: np.ndarray, box: Box, ring: float = 0.5) -> np.ndarray:
    """A copy of ``image`` (``[H, W, 3]`` uint8) with ``box`` filled with the mean colour of the ring around it
    (the box grown by ``ring`` times its side, clipped to the image, minus the box); the whole image's mean colour
    when the box covers the image."""
    height, width = image.shape[:2]
    left, top, right, bottom = _pixels(box, width, height)
    grow_x, grow_y = int(round((right - left) * ring)), int(round((bottom - top) * ring))
    outer = image[max(0, top - grow_y) : bottom + grow_y, max(0, left - grow_x) : right + grow_x]
    inner = image[top:bottom, left:right]
    count = outer.shape[0] * outer.shape[1] - inner.shape[0] * inner.shape[1]
    if count:  # the ring: the grown box's pixels minus the box's
        colour = (outer.sum(axis=(0, 1), dtype=np.float64) - inner.sum(axis=(0, 1), dtype=np.float64)) / count
    else:
        colour = image.mean(axis=(0, 1))
    out = image.copy()
    out[top:bottom, left:right] = np.round(colour).astype(np.uint8)
    return out


def locate_artifacts(
    scorer: Any,
    images: Sequence[Any],
    kinds: Sequence[Sequence[str]],
    *,
    sizes: Sequence[float] = WINDOW_SIZES,
    stride: float = WINDOW_STRIDE,
    min_drop: float = MIN_DROP,
    progress: bool = False,
) -> list[dict[str, Box | None]]:
    """Per image, a box for each kind of ``kinds[i]`` (slugs) found by occlusion, or ``None`` where no window's
    covering lowers the kind's probability by ``min_drop``. ``scorer`` has ``presence(images) -> [{slug: p}]``
    (an :class:`~synartifact.reward.ArtifactReward` in score mode with ``soft=True``)."""
    from tqdm.auto import tqdm

    from synartifact.images import to_rgb

    if len(images) != len(kinds):
        raise ValueError(f"Got {len(images)} images but {len(kinds)} lists of kinds: give one list per image.")
    grid = windows(sizes, stride)
    out: list[dict[str, Box | None]] = []
    for i in tqdm(range(len(images)), desc="locating artifacts", unit="image", disable=not progress):
        wanted = list(dict.fromkeys(kinds[i]))
        if not wanted:
            out.append({})
            continue
        pixels = np.asarray(to_rgb(images[i], i), dtype=np.uint8)
        covered = [Image.fromarray(cover_window(pixels, box), "RGB") for box in grid]
        rows = scorer.presence([Image.fromarray(pixels, "RGB")] + covered)
        found: dict[str, Box | None] = {}
        for kind in wanted:
            before = float(rows[0].get(kind, 0.0))
            drops = np.array([before - float(r.get(kind, 0.0)) for r in rows[1:]])
            # windows come smallest first, so argmax picks the smallest of equal drops
            best = int(np.argmax(drops))
            found[kind] = grid[best] if drops[best] >= min_drop else None
        out.append(found)
    return out


@functools.lru_cache(maxsize=4)
def occlusion_scorer(classifier: Any) -> Any:
    """What :func:`locate_artifacts` reads for ``classifier``: its first answer token's kind probabilities
    (:class:`~synartifact.reward.ArtifactReward` in score mode, ``soft=True``), one forward pass per image; one per
    classifier (a Space asks it on every request; its answer-token tables are built once)."""
    from synartifact.reward import ArtifactReward

    return ArtifactReward(classifier, mode="score", soft=True, batch_size=64)


def with_located_boxes(scorer: Any, images: Sequence[Any], reports: Sequence[Any]) -> list[Any]:
    """Copies of ``reports`` (:class:`~synartifact.report.ArtifactReport`) in which every artifact named without a
    box has its occlusion box (:func:`locate_artifacts`) where one was found, and ``located`` lists those artifacts;
    a report with nothing to locate is returned as it is."""
    wanted = [[a.kind for a in report.artifacts if a.bbox is None] for report in reports]
    todo = [i for i, kinds in enumerate(wanted) if kinds]
    found = dict(zip(todo, locate_artifacts(scorer, [images[i] for i in todo], [wanted[i] for i in todo])))
    return [apply_located(report, found[i]) if i in found else report for i, report in enumerate(reports)]


def apply_located(report: Any, found: dict[str, Box | None]) -> Any:
    """A copy of ``report`` whose artifacts named without a box have the box ``found`` holds for their kind (where
    it holds one), with those artifacts' indices in ``located``; ``report`` itself when nothing was found."""
    import dataclasses

    artifacts, located = [], []
    for j, artifact in enumerate(report.artifacts):
        box = found.get(artifact.kind) if artifact.bbox is None else None
        if box is not None:
            artifact = dataclasses.replace(artifact, bbox=box)
            located.append(j)
        artifacts.append(artifact)
    return dataclasses.replace(report, artifacts=artifacts, located=tuple(located)) if located else report
