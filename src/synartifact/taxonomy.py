"""The SynArtifact artifact taxonomy: 13 kinds in groups, each with an explanation.

This module is the one source of truth for the kinds. The dataset's ``ClassLabel``, the question
template, the Spaces and the cards all read it. The order is the paper's (Figure 2): the released
SynArtifact-1K annotations store a kind as a 0-based index into it (``"artifacts_class": "2"`` is a
distorted component), so :data:`KINDS` must never be reordered.

The explanations are ours, written from the kinds' names and the paper's summary; the group of each
kind is our best reading of the paper's Figure 2 (arXiv 2402.18068). Edit them here only.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

__all__ = ["ArtifactKind", "KINDS", "SLUGS", "GROUPS", "get_kind", "kinds_in_group", "normalize_name"]


@dataclass(frozen=True)
class ArtifactKind:
    """One artifact kind: its index in the paper's order, a stable slug, a display name, its group and meaning."""

    index: int
    slug: str
    name: str
    group: str
    explanation: str


GROUPS: tuple[str, ...] = ("object-aware", "object-agnostic", "lighting")

KINDS: tuple[ArtifactKind, ...] = (
    ArtifactKind(
        0,
        "illegible_letters",
        "Illegible Letters",
        "object-aware",
        "Text in the image is garbled, malformed or unreadable.",
    ),
    ArtifactKind(
        1,
        "awkward_facial_expression",
        "Awkward Facial Expression",
        "object-aware",
        "A face is distorted, asymmetric or shows an unnatural expression.",
    ),
    ArtifactKind(
        2,
        "distorted_components",
        "Distorted and Deformed Components",
        "object-aware",
        "A part of an object (a limb, a hand, a wheel) has a wrong or warped shape.",
    ),
    ArtifactKind(
        3,
        "duplicated_components",
        "Duplicated Components",
        "object-aware",
        "A part appears more times than it should (extra fingers, a repeated object).",
    ),
    ArtifactKind(
        4,
        "omitted_components",
        "Omitted Components",
        "object-aware",
        "A part that should be there is missing or blends away into its surroundings.",
    ),
    ArtifactKind(
        5,
        "abnormal_non_spatial_relationship",
        "Abnormal Non-Spatial Relationship",
        "object-aware",
        "Objects interact or relate implausibly (wrong usage, wrong pairing).",
    ),
    ArtifactKind(
        6,
        "unrealistic_lighting",
        "Unrealistic Lighting",
        "lighting",
        "Light direction or shadows are inconsistent with the scene.",
    ),
    ArtifactKind(
        7,
        "localized_blur",
        "Localized Blur",
        "object-agnostic",
        "One region is blurred while the rest is sharp, without a photographic reason.",
    ),
    ArtifactKind(
        8,
        "chromatic_irregularity",
        "Chromatic Irregularity",
        "object-agnostic",
        "Colours shift, bleed or look unnatural in a region.",
    ),
    ArtifactKind(
        9,
        "abnormal_texture",
        "Abnormal Texture",
        "object-agnostic",
        "A surface has an implausible, noisy or repeating texture.",
    ),
    ArtifactKind(
        10,
        "abnormal_spatial_relationship",
        "Abnormal Spatial Relationship",
        "object-aware",
        "Objects are placed, sized or overlapped impossibly relative to each other.",
    ),
    ArtifactKind(
        11,
        "luminance_discrepancy",
        "Luminance Discrepancy",
        "lighting",
        "A region is brighter or darker than its surroundings without cause.",
    ),
    ArtifactKind(
        12,
        "impractical_luminosity",
        "Impractical Luminosity",
        "lighting",
        "A glow or brightness that no light source in the scene could produce.",
    ),
)

SLUGS: tuple[str, ...] = tuple(k.slug for k in KINDS)

# Spellings seen in the wild that a plain normalization would not map ("Deformated" is the paper's).
_ALIASES = {
    "distorted and deformated components": "distorted_components",
    "distorted components": "distorted_components",
    "deformed components": "distorted_components",
    "distortion": "distorted_components",
    "duplication": "duplicated_components",
    "omission": "omitted_components",
    "blur": "localized_blur",
    "localised blur": "localized_blur",
    "chromatic irregularities": "chromatic_irregularity",
    "awkward facial expressions": "awkward_facial_expression",
    "illegible letter": "illegible_letters",
    "impractical luminance": "impractical_luminosity",
}


def normalize_name(name: str) -> str:
    """Lower-case a kind's spelling and reduce punctuation and separators to single spaces."""
    text = re.sub(r"[^a-z0-9]+", " ", str(name).lower().replace("&", " and ")).strip()
    return text.replace("deformated", "deformed").replace("colour", "color")


def _build_lookup() -> dict[str, ArtifactKind]:
    table: dict[str, ArtifactKind] = {}
    for kind in KINDS:
        for spelling in (kind.slug, kind.name, str(kind.index)):
            table[normalize_name(spelling)] = kind
    for alias, slug in _ALIASES.items():
        table[normalize_name(alias)] = KINDS[SLUGS.index(slug)]
    return table


_LOOKUP = _build_lookup()


def get_kind(name: str | int) -> ArtifactKind:
    """Return the kind for a slug, a display name, a loose spelling or a 0-based index.

    Raises ``ValueError`` listing the valid slugs and the closest match when ``name`` is unknown.
    """
    if isinstance(name, bool):
        raise ValueError(f"Unknown artifact kind {name!r}: expected a slug, a name or an index 0-{len(KINDS) - 1}.")
    if isinstance(name, int):
        if 0 <= name < len(KINDS):
            return KINDS[name]
        raise ValueError(f"Artifact kind index {name} is out of range: valid indices are 0-{len(KINDS) - 1}.")
    key = normalize_name(name)
    if key in _LOOKUP:
        return _LOOKUP[key]
    close = difflib.get_close_matches(key, list(_LOOKUP), n=1, cutoff=0.6)
    hint = f" Did you mean {_LOOKUP[close[0]].slug!r}?" if close else ""
    raise ValueError(f"Unknown artifact kind {name!r}.{hint} Valid kinds: {', '.join(SLUGS)}.")


def kinds_in_group(group: str) -> tuple[ArtifactKind, ...]:
    """Return the kinds of one group (``object-aware``, ``object-agnostic`` or ``lighting``)."""
    if group not in GROUPS:
        raise ValueError(f"Unknown artifact group {group!r}: valid groups are {', '.join(GROUPS)}.")
    return tuple(k for k in KINDS if k.group == group)
