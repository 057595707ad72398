"""Repair on the classify Space: the :class:`~synartifact.repair.ArtifactRepairer` of the page's classifier and the
inpainter named by ``SYNARTIFACT_INPAINTER`` (else the tiny untrained one), loaded once per process, and what the
page says about a repair."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from PIL import Image

from synartifact.webui.models import (
    ENV_CLASSIFIER,
    MODEL_LOCK,
    ModelSource,
    classifier_for,
    classifier_source,
    load_configured,
)
from synartifact.webui.tiny_models import build_once, cache_dir, tiny_inpainter

__all__ = [
    "ENV_INPAINTER",
    "REPAIR_STEPS",
    "get_repairer",
    "inpainter_notice",
    "inpainter_source",
    "repair",
    "repair_summary",
]

ENV_INPAINTER = "SYNARTIFACT_INPAINTER"
# Inpainting steps: a real pipeline's usual count; the untrained tiny one only shows the flow.
REPAIR_STEPS = {"real": 20, "tiny": 4}


def inpainter_source() -> ModelSource:
    """The inpainting pipeline named by ``SYNARTIFACT_INPAINTER`` (a folder or Hub id), else the tiny untrained one
    built offline into the cache on first use."""
    named = os.environ.get(ENV_INPAINTER, "").strip()
    if named:
        return ModelSource(named, tiny=False)
    return ModelSource(str(cache_dir() / "tiny-sd-inpaint"), tiny=True)


def inpainter_notice(source: ModelSource) -> str:
    """One Markdown line naming the inpainter, or saying plainly that it is the untrained tiny one."""
    if source.tiny:
        return (
            "⚠️ Repair uses an **untrained tiny inpainter** built offline: what it paints is noise, so a repair is "
            f"rarely kept. Set `{ENV_INPAINTER}` to an inpainting pipeline (a Hub id such as "
            "`stable-diffusion-v1-5/stable-diffusion-inpainting`, or a folder) to repair for real."
        )
    return f"Inpainter: `{source.display_name}`."


@functools.cache
def _repairer_for(classifier_path: str, classifier_tiny: bool, inpainter_path: str, inpainter_tiny: bool):
    from synartifact.repair import ArtifactRepairer

    if inpainter_tiny:
        build_once(Path(inpainter_path), tiny_inpainter)
    steps = REPAIR_STEPS["tiny" if inpainter_tiny else "real"]
    return ArtifactRepairer(
        classifier_for(classifier_path, classifier_tiny),
        inpainter_path,
        num_inference_steps=steps,
        unboxed="locate",  # a labels-mode classifier's kinds are painted where occlusion finds them
        progress=False,
    )


def get_repairer():
    """The process's :class:`~synartifact.repair.ArtifactRepairer` (the page's classifier + the inpainter)."""
    classifier, inpainter = classifier_source(), inpainter_source()
    with MODEL_LOCK:
        return load_configured(
            lambda: _repairer_for(classifier.path, classifier.tiny, inpainter.path, inpainter.tiny),
            (classifier, ENV_CLASSIFIER, "classifier"),
            (inpainter, ENV_INPAINTER, "inpainter"),
        )


def repair_summary(result: Any) -> str:
    """One Markdown paragraph on a :class:`~synartifact.repair.RepairResult`: rewards, kinds, rounds, area."""
    tried = len(result.rounds)
    line = f"Reward **{result.reward_before:.3f} → {result.reward_after:.3f}**"
    if not result.report_before.artifacts:
        return f"**Nothing to repair:** no artifacts found. {line}."
    if not tried:
        return (
            f"**Nothing repaired:** the classifier named {', '.join(a.name for a in result.report_before.artifacts)} "
            f"without a box, and covering no part of the image made it go away, so there is no region to repaint. "
            f"{line}."
        )
    if not result.changed:
        return (
            f"**No repair kept:** {tried} attempt{'s' if tried != 1 else ''}, none raised the reward, so the "
            f"original is shown on both sides. {line}."
        )
    after = ", ".join(sorted({a.name for a in result.report_after.artifacts})) or "none"
    return (
        f"**Repaired:** {line}; {100 * result.mask_area:.1f} % of the pixels repainted (inside the boxes, padded); "
        f"artifacts still found: {after}."
    )


def repair(image: Image.Image) -> Any:
    """Repair one RGB image with the page's models; the :class:`~synartifact.repair.RepairResult`."""
    return get_repairer().repair([image], rounds=2, seed=0)[0]
