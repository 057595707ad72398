"""Repair results: each round of one image (:class:`RepairRound`), the repair of one image (:class:`RepairResult`)
and the summary of many (:func:`summarize`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from synartifact.repair.masks import Box
from synartifact.report import ArtifactReport

__all__ = ["RepairResult", "RepairRound", "summarize"]


@dataclass
class RepairRound:
    """One round for one image: the boxes masked, the mask, the candidate's report and reward, and whether it won."""

    index: int
    boxes: list[Box]
    mask: Image.Image
    negative_prompt: str
    report: ArtifactReport
    reward_before: float
    reward_after: float
    accepted: bool

    def to_dict(self) -> dict:
        """A JSON-ready summary (no images)."""
        return {
            "round": self.index,
            "boxes": [list(b) for b in self.boxes],
            "mask_area": float(np.asarray(self.mask).astype(bool).mean()),
            "negative_prompt": self.negative_prompt,
            "kinds": sorted(self.report.kinds),
            "reward_before": self.reward_before,
            "reward_after": self.reward_after,
            "accepted": self.accepted,
        }


@dataclass
class RepairResult:
    """The repair of one image: the image returned (the best seen), the original, the mask of every pixel that may
    differ from it, the reports and rewards before and after, and each round."""

    image: Image.Image
    original: Image.Image
    mask: Image.Image
    report_before: ArtifactReport
    report_after: ArtifactReport
    reward_before: float
    reward_after: float
    rounds: list[RepairRound] = field(default_factory=list)
    prompt: str | None = None
    unboxed: bool = False

    @property
    def kinds_before(self) -> list[str]:
        """Kinds found in the original."""
        return sorted(self.report_before.kinds)

    @property
    def kinds_after(self) -> list[str]:
        """Kinds found in the image returned."""
        return sorted(self.report_after.kinds)

    @property
    def changed(self) -> bool:
        """Whether a repair was kept (the image differs from the original)."""
        return any(r.accepted for r in self.rounds)

    @property
    def improved(self) -> bool:
        """Whether the reward went up."""
        return self.reward_after > self.reward_before

    @property
    def mask_area(self) -> float:
        """The fraction of the image's pixels the final mask covers (0 when nothing was kept)."""
        return float(np.asarray(self.mask).astype(bool).mean())

    def to_dict(self) -> dict:
        """A JSON-ready summary (no images)."""
        return {
            "kinds_before": self.kinds_before,
            "kinds_after": self.kinds_after,
            "reward_before": self.reward_before,
            "reward_after": self.reward_after,
            "rounds": len(self.rounds),
            "accepted_rounds": [r.index for r in self.rounds if r.accepted],
            "mask_area": self.mask_area,
            "unboxed_artifacts": self.unboxed,
            "round_details": [r.to_dict() for r in self.rounds],
        }


def summarize(results: Sequence[RepairResult]) -> dict:
    """Artifact rate and mean reward before and after, and the share of images improved, unchanged and worse."""
    n = len(results)
    if not n:
        return {"num_images": 0}
    return {
        "num_images": n,
        "artifact_rate_before": sum(bool(r.report_before.artifacts) for r in results) / n,
        "artifact_rate_after": sum(bool(r.report_after.artifacts) for r in results) / n,
        "mean_reward_before": float(np.mean([r.reward_before for r in results])),
        "mean_reward_after": float(np.mean([r.reward_after for r in results])),
        "improved": sum(r.reward_after > r.reward_before for r in results) / n,
        "unchanged": sum(r.reward_after == r.reward_before for r in results) / n,
        "worse": sum(r.reward_after < r.reward_before for r in results) / n,
        "mean_mask_area": float(np.mean([r.mask_area for r in results])),
        "unboxed": sum(r.unboxed for r in results) / n,
    }
