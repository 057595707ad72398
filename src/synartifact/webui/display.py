"""What the Spaces show of an :class:`~synartifact.report.ArtifactReport`: the reward, the boxes for
``gr.AnnotatedImage`` (one colour per kind), the rows for ``gr.Dataframe`` and a one-line summary."""

from __future__ import annotations

from PIL import Image

from synartifact.report import ArtifactReport
from synartifact.taxonomy import KINDS
from synartifact.webui.models import get_classifier

__all__ = ["KIND_COLORS", "TABLE_HEADERS", "analyse", "annotations", "report_reward", "report_summary", "report_table"]

TABLE_HEADERS = ["kind", "group", "caption", "box (x0, y0, x1, y1)"]

# One colour per kind (the same kind keeps its colour in every image).
_PALETTE = (
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
    "#bfef45", "#fabed4", "#469990", "#9a6324", "#800000", "#000075",
)  # fmt: skip
KIND_COLORS: dict[str, str] = {k.name: _PALETTE[k.index % len(_PALETTE)] for k in KINDS}


def report_reward(report: ArtifactReport, mode: str = "labels") -> float:
    """The reward of the image a report describes, by :class:`~synartifact.reward.ArtifactReward`'s rule
    (``1 -`` the weighted share of kinds found; 0 for an answer that names neither a kind nor ``None``).

    Computed from the report itself (as the reward's ``generate`` mode would), so the number always matches
    the table shown next to it and costs no second pass through the model.
    """
    from synartifact.reward import reward_from_report

    return reward_from_report(report, mode)


def analyse(image: Image.Image, locate: bool = False) -> tuple[ArtifactReport, float]:
    """Classify one RGB image and score it: the report and the reward (higher means fewer artifacts).

    ``locate``: a kind named without a box (a ``labels``-mode classifier) gets the box occlusion finds for it
    (:func:`synartifact.repair.locate.with_located_boxes`; the report's ``located`` says which)."""
    classifier = get_classifier()
    report = classifier.predict([image])[0]
    if report.width is None or report.height is None:
        report.width, report.height = image.size
    reward = report_reward(report, getattr(classifier, "mode", "labels"))
    if locate and any(a.bbox is None for a in report.artifacts):
        from synartifact.repair.locate import occlusion_scorer, with_located_boxes

        report = with_located_boxes(occlusion_scorer(classifier), [image], [report])[0]
    return report, reward


def annotations(report: ArtifactReport, image: Image.Image) -> tuple[Image.Image, list[tuple[tuple, str]]]:
    """The value of a ``gr.AnnotatedImage``: the image and one ``((x0, y0, x1, y1), label)`` per boxed artifact.

    Boxes are clipped to the image and given at least one pixel a side; a kind found twice keeps one label
    (and one colour) for both boxes.
    """
    width, height = image.size
    boxes = []
    for artifact in report.artifacts:
        px = artifact.bbox_pixels(width, height)
        if px is None:
            continue
        x0, y0, x1, y1 = px
        x0, x1 = sorted((max(0, min(width - 1, x0)), max(0, min(width, x1))))
        y0, y1 = sorted((max(0, min(height - 1, y0)), max(0, min(height, y1))))
        boxes.append(((x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)), artifact.name))
    return image, boxes


def report_table(report: ArtifactReport) -> list[list[str]]:
    """One row per artifact for a ``gr.Dataframe`` with :data:`TABLE_HEADERS`: kind, group, caption, box (marked
    "by occlusion" where the classifier named the kind without a box and occlusion found it)."""
    rows = []
    for artifact in report.artifacts:
        box = "" if artifact.bbox is None else "(" + ", ".join(f"{v:.2f}" for v in artifact.bbox) + ")"
        if box and len(rows) in report.located:
            box += " by occlusion"
        rows.append([artifact.name, artifact.group, artifact.caption or "", box])
    return rows


def report_summary(report: ArtifactReport, reward: float) -> str:
    """One Markdown line: how many artifacts of which kinds, the reward, and whether the answer parsed."""
    if report.artifacts:
        names = sorted({a.name for a in report.artifacts})
        found = f"**{len(report.artifacts)} artifact{'s' if len(report.artifacts) != 1 else ''} found:** "
        found += ", ".join(names) + "."
    else:
        found = "**No artifacts found.**"
    parsed = (
        "" if report.well_formed else " The model's answer did not follow the expected format (see the raw answer)."
    )
    return f"{found} Reward: **{reward:.3f}** (higher means fewer artifacts).{parsed}"
