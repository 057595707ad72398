"""Small public objects that stages exchange: one found artifact and the report for one image."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from synartifact.taxonomy import get_kind

__all__ = ["Artifact", "ArtifactReport"]


@dataclass(frozen=True)
class Artifact:
    """One artifact: its kind (a taxonomy slug), an optional normalized box and an optional caption.

    ``bbox`` is ``(x_min, y_min, x_max, y_max)`` in [0, 1] relative to the image, or ``None`` when the
    answer mode carries no boxes.
    """

    kind: str
    bbox: tuple[float, float, float, float] | None = None
    caption: str | None = None

    @property
    def group(self) -> str:
        """The taxonomy group of this artifact's kind."""
        return get_kind(self.kind).group

    @property
    def name(self) -> str:
        """The display name of this artifact's kind."""
        return get_kind(self.kind).name

    def bbox_pixels(self, width: int, height: int) -> tuple[int, int, int, int] | None:
        """The box in pixel corners for an image of ``width`` x ``height``, or ``None``."""
        if self.bbox is None:
            return None
        x0, y0, x1, y1 = self.bbox
        return (round(x0 * width), round(y0 * height), round(x1 * width), round(y1 * height))


@dataclass
class ArtifactReport:
    """What the classifier says about one image: the artifacts, the raw answer and whether it parsed cleanly.

    ``located``: the indices of the artifacts whose box the answer did not hold and occlusion found
    (:func:`synartifact.repair.locate.with_located_boxes`); empty for a report as the classifier gave it."""

    artifacts: list[Artifact] = field(default_factory=list)
    raw_text: str = ""
    well_formed: bool = True
    width: int | None = None
    height: int | None = None
    located: tuple[int, ...] = ()

    @property
    def kinds(self) -> set[str]:
        """The set of kind slugs found in the image."""
        return {a.kind for a in self.artifacts}

    @property
    def has_artifacts(self) -> bool:
        """Whether any artifact was found."""
        return bool(self.artifacts)

    def boxes_pixels(self) -> list[tuple[int, int, int, int] | None]:
        """Each artifact's box in pixels (needs ``width`` and ``height``)."""
        if self.width is None or self.height is None:
            raise ValueError("ArtifactReport.boxes_pixels needs the report's width and height to be set.")
        return [a.bbox_pixels(self.width, self.height) for a in self.artifacts]

    def to_dict(self) -> dict:
        """A JSON-ready dict, with each artifact's group and pixel box added."""
        rows = []
        for a in self.artifacts:
            row = asdict(a)
            row["bbox"] = list(a.bbox) if a.bbox is not None else None
            row["group"] = a.group
            row["name"] = a.name
            if self.width and self.height:
                px = a.bbox_pixels(self.width, self.height)
                row["bbox_pixels"] = list(px) if px is not None else None
            if self.located:
                row["located"] = len(rows) in self.located
            rows.append(row)
        return {
            "artifacts": rows,
            "kinds": sorted(self.kinds),
            "raw_text": self.raw_text,
            "well_formed": self.well_formed,
            "width": self.width,
            "height": self.height,
        }
