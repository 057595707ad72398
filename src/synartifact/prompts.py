"""The question-answer template of the artifact classifier: the question, the reference answer and its parser.

As in the paper, the question lists every artifact kind of :mod:`synartifact.taxonomy` as a lettered option
(A-M) with its explanation and asks which ones the image shows; the reference answer fixes the response format.
The format is chosen for small models: the decision comes first and in few tokens, one line per artifact,
starting with the option letter.

``labels`` mode (the paper's task) answers the kinds present, in taxonomy order, or ``None``::

    B) Awkward Facial Expression
    H) Localized Blur

``full`` mode adds a normalized box ``[x0, y0, x1, y1]`` (two decimals) and a caption to each line::

    H) Localized Blur | [0.12, 0.30, 0.45, 0.60] | The background is blurred.

:func:`parse_answer` reads model output back into :class:`~synartifact.report.Artifact` objects. It never raises:
it accepts option letters alone, names alone or both, any case, loose spellings, bullets, extra chatter and
truncated output, returns what it could read, and says whether the answer was well formed.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from synartifact.data.schema import KINDLESS
from synartifact.images import to_rgb
from synartifact.report import Artifact
from synartifact.taxonomy import KINDS, SLUGS, ArtifactKind, get_kind, normalize_name

__all__ = [
    "ANSWER_MODES",
    "NONE_ANSWER",
    "ParsedAnswer",
    "build_messages",
    "build_question",
    "canonical_artifacts",
    "has_kindless",
    "normalize_caption",
    "option_letter",
    "parse_answer",
    "render_answer",
    "to_sft_example",
]

ANSWER_MODES: tuple[str, ...] = ("labels", "full")
NONE_ANSWER = "None"
LETTERS: tuple[str, ...] = tuple(chr(ord("A") + k.index) for k in KINDS)
_LETTER_TO_KIND = {letter: kind for letter, kind in zip(LETTERS, KINDS)}

_EXAMPLE_LABELS = "B) Awkward Facial Expression"
_EXAMPLE_FULL = "H) Localized Blur | [0.12, 0.30, 0.45, 0.60] | The background is blurred."


def _check_mode(mode: str) -> str:
    if mode not in ANSWER_MODES:
        raise ValueError(f"Unknown answer mode {mode!r}: valid modes are {', '.join(ANSWER_MODES)}.")
    return mode


def option_letter(kind: str | int | ArtifactKind) -> str:
    """The option letter (A-M) of a kind given as slug, name, index or :class:`ArtifactKind`."""
    if not isinstance(kind, ArtifactKind):
        kind = get_kind(kind)
    return LETTERS[kind.index]


def build_question(mode: str = "labels") -> str:
    """The question put to the VLM: every kind as a lettered option with its explanation, and the answer format."""
    _check_mode(mode)
    lines = ["Which artifacts does this AI-generated image show? Options:"]
    lines += [f"{LETTERS[k.index]}) {k.name}: {k.explanation}" for k in KINDS]
    if mode == "labels":
        lines.append(
            "Answer with one line per artifact kind the image shows, its letter and name, "
            f'e.g. "{_EXAMPLE_LABELS}". Answer "{NONE_ANSWER}" if the image shows no artifact.'
        )
    else:
        lines.append(
            "Answer with one line per artifact: its letter and name | its box [x0, y0, x1, y1] as fractions "
            f'of the image width and height | a short caption, e.g. "{_EXAMPLE_FULL}". '
            f'Answer "{NONE_ANSWER}" if the image shows no artifact.'
        )
    return "\n".join(lines)


def build_messages(mode: str = "labels") -> list[dict]:
    """The user turn in TRL's vision conversational format: an image placeholder and the question."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": build_question(mode)}]}]


# ------------------------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------------------------


def normalize_caption(caption: Any) -> str | None:
    """A caption as one line (whitespace collapsed), or ``None`` when empty."""
    if caption is None:
        return None
    text = " ".join(str(caption).split())
    return text or None


def _round_box(bbox: Any) -> tuple[float, float, float, float] | None:
    if bbox is None:
        return None
    values = [float(v) for v in bbox]
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        return None
    x0, y0, x1, y1 = (min(1.0, max(0.0, v)) for v in values)
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    return tuple(round(v, 2) for v in (x0, y0, x1, y1))  # type: ignore[return-value]


def _as_artifact(item: Any) -> Artifact:
    """An :class:`Artifact` from an Artifact or a dataset dict ``{"label", "bbox", "caption"}``."""
    if isinstance(item, Artifact):
        return item
    if isinstance(item, Mapping):
        key = item.get("kind", item.get("label"))
        if key is None:
            raise ValueError(
                f"Artifact record {dict(item)!r} has no 'label' (or 'kind'): expected a kind index or slug."
            )
        if isinstance(key, str) and key.strip().isdigit():
            key = int(key)
        if key == KINDLESS:
            raise ValueError(
                "an artifact has no kind (label -1): the answer names a kind per artifact, so a row with a kind-less "
                "artifact cannot be rendered (synartifact sft leaves such rows out; see has_kindless)"
            )
        bbox = item.get("bbox")
        return Artifact(
            get_kind(key).slug, tuple(float(v) for v in bbox) if bbox is not None else None, item.get("caption")
        )
    raise ValueError(f"Cannot read an artifact from {item!r}: expected a report.Artifact or a dict with a 'label'.")


def canonical_artifacts(artifacts: Iterable[Any], mode: str = "labels") -> list[Artifact]:
    """The artifacts exactly as :func:`render_answer` writes them (and :func:`parse_answer` reads them back).

    ``labels``: the distinct kinds in taxonomy order, no boxes or captions. ``full``: sorted by kind (stable),
    boxes clipped to [0, 1] with ordered corners and two decimals, captions on one line, exact repeats dropped.
    """
    _check_mode(mode)
    items = [_as_artifact(a) for a in artifacts]
    order = {slug: i for i, slug in enumerate(SLUGS)}
    if mode == "labels":
        return [Artifact(slug) for slug in sorted({a.kind for a in items}, key=order.__getitem__)]
    out = [Artifact(a.kind, _round_box(a.bbox), normalize_caption(a.caption)) for a in items]
    return sorted(dict.fromkeys(out), key=lambda a: order[a.kind])


def _format_box(bbox: tuple[float, float, float, float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in bbox) + "]"


def render_answer(artifacts: Iterable[Any], mode: str = "labels") -> str:
    """The reference answer for a list of artifacts (``Artifact`` objects or dataset dicts); ``None`` when empty."""
    items = canonical_artifacts(artifacts, mode)
    if not items:
        return NONE_ANSWER
    lines = []
    for a in items:
        kind = get_kind(a.kind)
        head = f"{LETTERS[kind.index]}) {kind.name}"
        if mode == "labels":
            lines.append(head)
            continue
        parts = [head, _format_box(a.bbox) if a.bbox is not None else "[]"]
        if a.caption:
            parts.append(a.caption)
        lines.append(" | ".join(parts))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------------
# Parsing
# ------------------------------------------------------------------------------------------------------------


@dataclass
class ParsedAnswer:
    """What :func:`parse_answer` could read: the artifacts, whether the answer was well formed, and why not."""

    artifacts: list[Artifact] = field(default_factory=list)
    well_formed: bool = False
    said_none: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def kinds(self) -> set[str]:
        """The set of kind slugs read."""
        return {a.kind for a in self.artifacts}


_NONE_RE = re.compile(
    r"^(none|none of (them|these|the above|the options)|no|nothing|no artifacts?( found| present)?|the image shows no artifacts?|clean)\.?$"
)
_LETTER_RE = re.compile(r"^\(?([A-Ma-m])\s*(?:[).:\]]|$)\s*(.*)$")
_BULLET_RE = re.compile(r"^(?:[-*\u2022>]+|\d+[.)]\s)\s*")
_PREFIX_RE = re.compile(r"^(?:assistant|answer)\s*:\s*", re.IGNORECASE)
_NUMBER_RE = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
_NAME_TABLE = {normalize_name(k.name): k for k in KINDS} | {normalize_name(k.slug): k for k in KINDS}


def _kind_from_name(text: str) -> tuple[ArtifactKind | None, bool]:
    """A kind from a name or loose spelling, and whether the spelling was exact (not a prefix or fuzzy match)."""
    key = normalize_name(text)
    if not key or key.isdigit():
        return None, False
    try:
        return get_kind(key), True
    except (ValueError, TypeError):
        pass
    close = difflib.get_close_matches(key, list(_NAME_TABLE), n=1, cutoff=0.8)
    if close:
        return _NAME_TABLE[close[0]], False
    # a truncated name: a prefix of exactly one kind's name (at least 4 characters, so chatter does not match)
    if len(key) >= 4:
        matches = {k for name, k in _NAME_TABLE.items() if name.startswith(key)}
        if len(matches) == 1:
            return matches.pop(), False
    return None, False


def _parse_head(head: str) -> tuple[ArtifactKind | None, bool]:
    """The kind on a line's head (``B) Name``, ``B``, ``Name``) and whether it was read cleanly."""
    match = _LETTER_RE.match(head)
    if match:
        kind = _LETTER_TO_KIND[match.group(1).upper()]
        rest = match.group(2).strip().rstrip(".")
        if not rest:
            return kind, True
        named, exact = _kind_from_name(rest)
        if named is None:
            # "A) blurry region ..." — a letter then prose: trust the letter only when the rest is not a sentence
            return (kind, False) if len(rest.split()) <= 4 else (None, False)
        return kind, exact and named == kind
    named, exact = _kind_from_name(head.rstrip("."))
    return named, exact


def _parse_box(text: str) -> tuple[tuple[float, float, float, float] | None, bool]:
    if text.strip() == "[]":
        return None, True
    numbers = [float(n) for n in _NUMBER_RE.findall(text)]
    if len(numbers) != 4 or "]" not in text:
        return (_round_box(numbers[:4]) if len(numbers) >= 4 else None), False
    clean = all(0.0 <= v <= 1.0 for v in numbers) and numbers[0] <= numbers[2] and numbers[1] <= numbers[3]
    return _round_box(numbers), clean


def parse_answer(text: Any, mode: str = "labels") -> ParsedAnswer:
    """Read a model's answer into artifacts; never raises.

    Handles case, whitespace, bullets, option letters instead of names (and names instead of letters),
    loose spellings, duplicates (dropped), chatter (skipped) and a truncated last line (kept when its kind is
    readable). ``well_formed`` is True when every line was read cleanly, nothing was duplicated, and the answer
    is either ``None`` or at least one artifact. In ``full`` mode boxes are clipped to [0, 1] with ordered corners.
    """
    result = ParsedAnswer()
    try:
        if mode not in ANSWER_MODES:
            result.problems.append(f"unknown mode {mode!r}; read as 'labels'")
            mode = "labels"
        if not isinstance(text, str):
            result.problems.append(f"not text: {type(text).__name__}")
            return result
        _parse_into(result, text, mode)
    except Exception as err:  # noqa: BLE001 - the parser must never raise on model output
        # a bug of the parser, not of the answer: logged with its traceback so that it can be fixed
        logging.getLogger(__name__).exception("parse_answer failed (mode %r) on the answer %r", mode, text)
        result.problems.append(f"parser error: {err!r}")
        result.well_formed = False
    return result


def answer_kinds(text: Any, mode: str = "labels", known: Iterable[str] = ()) -> tuple[set[str], bool]:
    """The kinds an answer names (with ``known``, kinds already read from it) and whether it is *unparsable*:
    naming neither a kind nor ``None``. The one unparsable-answer rule of the reward and the Spaces."""
    parsed = parse_answer(text, mode)
    kinds = set(known) | parsed.kinds
    return kinds, not kinds and not parsed.said_none


def _parse_into(result: ParsedAnswer, text: str, mode: str) -> None:
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n")]
    lines = [line for line in lines if line]
    if not lines:
        result.problems.append("empty answer")
        return
    clean = True
    seen: set = set()
    for number, raw in enumerate(lines):
        line = _PREFIX_RE.sub("", _BULLET_RE.sub("", raw)).strip()
        if not line:
            continue
        if _NONE_RE.match(line.lower().rstrip("!")):
            result.said_none = True
            continue
        parts = line.split("|", 2) if mode == "full" else [line.split("|", 1)[0]]
        kinds_here: list[tuple[ArtifactKind, bool]] = []
        kind, exact = _parse_head(parts[0].strip())
        if kind is not None:
            kinds_here.append((kind, exact))
        if not exact:
            # several kinds on one line ("B, H" or "Localized Blur and Abnormal Texture"): readable, not the format
            pieces = []
            for piece in re.split(r",|;|\band\b|&|/", parts[0]):
                piece_kind, _ = _parse_head(piece.strip()) if piece.strip() else (None, False)
                if piece_kind is not None and piece_kind not in pieces:
                    pieces.append(piece_kind)
            if len(pieces) > len(kinds_here):
                kinds_here = [(k, False) for k in pieces]
        if not kinds_here:
            clean = False
            result.problems.append(f"line {number + 1} not understood: {raw[:80]!r}")
            continue
        bbox, caption, tail_clean = None, None, True
        if mode == "full":
            if len(parts) >= 2:
                bbox, tail_clean = _parse_box(parts[1])
                if not tail_clean:
                    result.problems.append(f"line {number + 1}: box not read cleanly")
            else:
                tail_clean = False
                result.problems.append(f"line {number + 1}: no box")
            caption = normalize_caption(parts[2]) if len(parts) == 3 else None
        for kind, exact in kinds_here:
            if not exact:
                clean = False
                result.problems.append(f"line {number + 1}: kind read loosely: {raw[:80]!r}")
            clean = clean and tail_clean
            artifact = Artifact(kind.slug, bbox, caption)
            key = kind.slug if mode == "labels" else artifact
            if key in seen:
                clean = False
                result.problems.append(f"line {number + 1}: duplicate {kind.slug}")
                continue
            seen.add(key)
            result.artifacts.append(artifact)
    if result.said_none and result.artifacts:
        clean = False
        result.problems.append("answer says None and lists artifacts")
    if not result.said_none and not result.artifacts:
        clean = False
        result.problems.append("no artifact and no 'None' read")
    result.well_formed = clean


# ------------------------------------------------------------------------------------------------------------
# Dataset rows -> TRL SFT examples
# ------------------------------------------------------------------------------------------------------------


def _row_artifacts(row: Mapping, where: str) -> list:
    if "artifacts" not in row:
        raise ValueError(f"{where} has no 'artifacts' field: expected a list of {{'label', 'bbox', 'caption'}}.")
    arts = row["artifacts"] or []
    if isinstance(arts, Mapping):  # a Sequence feature gives a dict of lists
        keys = list(arts)
        arts = [dict(zip(keys, values)) for values in zip(*(arts[k] for k in keys))]
    return list(arts)


def has_kindless(artifacts: Any) -> bool:
    """Whether a row's ``artifacts`` (a list of dicts, or the dict of lists a Sequence feature gives) hold a kind-less
    artifact (label -1).

    Such a row is left out of SFT: the answer names one kind per artifact, and answering only the other kinds (or
    ``None`` when all are kind-less) would teach the model to miss a region that is there.
    """
    if isinstance(artifacts, Mapping):
        labels = artifacts.get("label") or []
    else:
        labels = [a.get("label") if isinstance(a, Mapping) else getattr(a, "kind", "") for a in artifacts or []]
    return any(label == KINDLESS or label is None for label in labels)  # None: an Artifact(kind=None)


def to_sft_example(row: Mapping, mode: str = "labels", image_size: int | None = None) -> dict:
    """A dataset row as a TRL 0.23.1 vision ``prompt``/``completion`` example (the loss falls on the answer only).

    Returns ``{"images": [PIL RGB], "prompt": build_messages(mode), "completion": [assistant answer turn]}``; the
    image comes from :func:`synartifact.images.to_rgb` and is resized to ``image_size`` x ``image_size`` when given.
    """
    _check_mode(mode)
    where = f"Dataset record {row.get('image_id', '?')!r}" if isinstance(row, Mapping) else "Dataset record"
    if not isinstance(row, Mapping) or "image" not in row:
        raise ValueError(f"{where} has no 'image' field: expected a row of the SynArtifact dataset contract.")
    try:
        image = to_rgb(row["image"])
    except (ValueError, FileNotFoundError) as err:
        raise ValueError(f"{where}, field 'image': {err}") from err
    if image_size:
        image = image.resize((int(image_size), int(image_size)))
    try:
        answer = render_answer(_row_artifacts(row, where), mode)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from err
    return {
        "images": [image],
        "prompt": build_messages(mode),
        "completion": [{"role": "assistant", "content": [{"type": "text", "text": answer}]}],
    }
