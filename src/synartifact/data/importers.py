"""Build a SynArtifact dataset from real annotations: the SynArtifact-1K release, JSONL, COCO or Label Studio.

Every importer collects *all* problems (missing, corrupt or oversized image, unknown label, degenerate box or one
outside the image, duplicate id, malformed record, image path outside ``--images``), each naming the file, the
record and the field, and raises one :class:`~synartifact.data.schema.DatasetValidationError` listing them. An
unknown label is listed once, with its count and the first records that use it. With ``skip_invalid=True`` the valid
records are kept and every rejected one is returned (``synartifact dataset build`` writes them to
``rejected.jsonl`` in the output folder): nothing is silently lost. A record with one bad artifact is rejected as a
whole, so that an image never looks cleaner than it was annotated. What a build changed or dropped without
rejecting a record (clipped boxes, shapes turned into boxes, regions that are not boxes, labels mapped to
``ignore``, unused annotations) is counted in its :class:`BuildReport`.

Labels: a slug, a display name (loose spellings too) or a 0-based index of :data:`synartifact.taxonomy.KINDS`.
Exports that use their own names ('person', 'Class_1', 'Car') need a label map (``label_map=`` / ``--label-map``):
a JSON or YAML file ``{"Class_1": "localized_blur", "Car": "ignore"}`` or ``"Class_1=localized_blur,Car=ignore"``.
It is looked up first (exact name, then loose spelling); ``ignore`` drops the artifact and counts it.

Images: paths resolve inside ``--images``; an absolute path or one whose ``..`` leaves it is a record problem unless
``allow_outside_images``. ``image_id`` is the path relative to ``--images`` without extension (never an absolute
path: it is uploaded with the dataset). Images over ``max_pixels`` pixels (default
:data:`synartifact.images.DEFAULT_MAX_PIXELS`) or that Pillow flags as decompression bombs are record problems.

Formats (``--format``):

``synartifact``
    The SynArtifact-1K release. ``--annotations`` is its root folder: ``eval.txt`` (evaluation images, one
    ``<folder>/<image file>`` a line; they become the ``test`` split) and, per image,
    ``<folder>/annotation_json_artifacts_class/<image_id>.json`` with ``"Artifacts annotation"``: a list of
    ``{"rect_start": [x, y], "rect_end": [x, y], "artifacts_caption": str, "artifacts_class": "<index>"}``
    (pixel corners) and ``"Other artifacts caption"``. Images are looked up as ``<folder>/<image_id>.<ext>``,
    also under ``<folder>/images/``, ``<folder>/data/``, ``images/<folder>/``, ``data/<folder>/`` and in
    ``--images``. ``image_id`` is ``<folder>/<stem>``; ``generator`` is the folder's name.

``jsonl``
    One JSON object per line (UTF-8), one line per image; images relative to ``--images``::

        {"image": "cats/0001.png",              # required: path relative to --images
         "image_id": "cat-0001",                # optional: defaults to the path without extension
         "prompt": "a cat on a sofa",           # optional
         "generator": "sdxl",                   # optional
         "other_artifacts_caption": "",         # optional: artifacts without a box
         "split": "test",                       # optional: "train" / "test"; if any record has it, it decides
         "bbox_format": "xyxy",                 # optional: "xyxy" (corners, any order, default) or "xywh"
         "bbox_units": "pixels",                # optional: "pixels" / "normalized"; default: detected per file
         "artifacts": [{"label": "localized_blur", "bbox": [10, 20, 110, 90], "caption": "blurred paw"}]}

    Without ``bbox_units``, a file whose box coordinates all lie in [0, 1] is read as normalized, otherwise as pixels.

``coco``
    A COCO detection JSON: ``images`` (``id``, ``file_name`` relative to ``--images``, ``width``, ``height``,
    optional ``prompt``, ``generator``, ``other_artifacts_caption``), ``annotations`` (``id``, ``image_id``,
    ``category_id``, ``bbox`` = ``[x, y, width, height]`` in pixels, or else the bounding box of its polygon
    ``segmentation``; caption in ``caption`` or ``attributes.caption``) and ``categories`` (``id``, ``name``: the
    label). Images without annotations are clean images.

``labelstudio``
    A Label Studio JSON export (a list of tasks). Per task: ``data.image`` and optional ``data.prompt`` /
    ``data.generator``. The image reference may take every form Label Studio writes: ``/data/local-files/?d=<path>``,
    ``/data/upload/<project>/<8 hex>-<name>``, ``s3://bucket/key``, ``gs://...``, ``azure-blob://...``,
    ``http(s)://host/path?query`` or a bare name with or without extension. It is looked up under ``--images`` by
    relative path (the longest tail of the reference's path that exists), then by file name (for uploads also
    without the ``<hash>-`` prefix). Regions (``annotations[].result[]``, percent of the image):
    ``rectanglelabels`` boxes (a ``rotation`` becomes the axis-aligned bounding box; a box overshooting the image
    by up to :data:`LABELSTUDIO_BBOX_TOLERANCE` of a side, as Label Studio's editor writes, is clipped),
    ``polygonlabels`` and ``brushlabels`` (RLE masks) become their bounding box; a region with several labels
    gives one artifact per label. ``textarea`` results with a region's ``id`` are its caption, the others form
    ``other_artifacts_caption``. Keypoints, ellipses, choices, relations and other results are dropped and
    counted. ``annotator="first"`` (default) uses the first non-cancelled annotation of a task and counts the
    others; ``"all"`` merges the regions of every non-cancelled annotation. Tasks without a non-cancelled
    annotation are not imported (unannotated is not clean) and are counted.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

from PIL import Image, UnidentifiedImageError

from synartifact.data.schema import (
    BBOX_TOLERANCE,
    DatasetValidationError,
    Problem,
    bbox_to_unit,
    detect_bbox_units,
    get_features,
    normalize_bbox,
    resolve_label,
)
from synartifact.images import DEFAULT_MAX_PIXELS, to_rgb
from synartifact.taxonomy import SLUGS, normalize_name

__all__ = [
    "ANNOTATORS",
    "FORMATS",
    "IMAGE_EXTENSIONS",
    "LABELSTUDIO_BBOX_TOLERANCE",
    "BuildReport",
    "BuildResult",
    "Record",
    "build_dataset",
    "load_label_map",
    "read_records",
]

FORMATS: tuple[str, ...] = ("synartifact", "jsonl", "coco", "labelstudio")
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
ANNOTATORS: tuple[str, ...] = ("first", "all")
# Label Studio's editor lets a box run past the image edge (y + height = 101.6 % is common): such boxes are clipped.
LABELSTUDIO_BBOX_TOLERANCE = 0.05
IGNORE = "ignore"
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-(.+)$")
_WINDOWS_PATH = re.compile(r"^[A-Za-z]:[\\/]")


@dataclass
class BuildReport:
    """What a build did besides keeping rows: conversions, clipping and everything dropped, counted per reason.

    Counts cover the kept records (a rejected record is listed with its problems instead), except
    ``unknown_labels`` (label -> ``{"count", "records"}``, the first few record ids) and tasks not imported.
    """

    records: int = 0
    kept: int = 0
    rejected: int = 0
    clipped_boxes: int = 0
    rotated_boxes: int = 0
    polygon_boxes: int = 0
    mask_boxes: int = 0
    unused_annotations: int = 0
    cancelled_annotations: int = 0
    ignored_labels: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    unknown_labels: dict[str, dict[str, Any]] = field(default_factory=dict)

    def merge(self, other: BuildReport) -> None:
        """Add another report's conversion and drop counts (those of one kept record) to this one."""
        for name in ("clipped_boxes", "rotated_boxes", "polygon_boxes", "mask_boxes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("unused_annotations", "cancelled_annotations"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.ignored_labels.update(other.ignored_labels)
        self.dropped.update(other.dropped)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``build_report.json`` holds)."""
        return {
            "records": self.records,
            "kept": self.kept,
            "rejected": self.rejected,
            "clipped_boxes": self.clipped_boxes,
            "rotated_boxes": self.rotated_boxes,
            "polygon_boxes": self.polygon_boxes,
            "mask_boxes": self.mask_boxes,
            "unused_annotations": self.unused_annotations,
            "cancelled_annotations": self.cancelled_annotations,
            "ignored_labels": dict(self.ignored_labels.most_common()),
            "dropped": dict(self.dropped.most_common()),
            "unknown_labels": self.unknown_labels,
        }

    def lines(self) -> list[str]:
        """The report as short human-readable lines (what ``synartifact dataset build`` prints)."""
        out = [f"records: {self.records} read, {self.kept} kept, {self.rejected} rejected"]
        if self.clipped_boxes:
            out.append(
                f"boxes clipped to the image: {self.clipped_boxes} (overshooting by up to "
                f"{LABELSTUDIO_BBOX_TOLERANCE:.0%} of a side in Label Studio, {BBOX_TOLERANCE:.0%} otherwise)"
            )
        for count, what in (
            (self.rotated_boxes, "rotated boxes replaced by their axis-aligned bounding box"),
            (self.polygon_boxes, "polygons replaced by their bounding box"),
            (self.mask_boxes, "brush masks replaced by their bounding box"),
            (self.unused_annotations, "annotations not used (--annotator first; --annotator all merges them)"),
            (self.cancelled_annotations, "cancelled annotations skipped"),
        ):
            if count:
                out.append(f"{what}: {count}")
        for reason, count in self.dropped.most_common():
            out.append(f"dropped {reason}: {count}")
        if self.ignored_labels:
            labels = ", ".join(f"{label!r} {n}" for label, n in self.ignored_labels.most_common())
            out.append(f"artifacts dropped by the label map (ignore): {labels}")
        for label, info in self.unknown_labels.items():
            out.append(f"unknown label {label!r}: {info['count']} time(s), e.g. in {', '.join(info['records'][:3])}")
        return out


class BuildResult(NamedTuple):
    """What :func:`build_dataset` returns: the ``DatasetDict``, the rejected records and the build report."""

    dataset: Any
    rejected: list[dict[str, Any]]
    report: BuildReport


@dataclass
class Record:
    """One image as read from the annotations, before its image is opened and checked."""

    file: str
    key: str  # how the problem report names the record (line number, id)
    image_id: str
    image_path: Path | None
    prompt: str = ""
    generator: str = ""
    other_artifacts_caption: str = ""
    # each: {"label": raw label, "bbox": raw box, "caption": str, "fmt": "xyxy"|"xywh", "units": ..., "field": str}
    # and optionally "shape" ("box", "rectangle", "polygon", "brush"), "rotation", "rle", "orig", "tolerance"
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    split: str | None = None
    declared_size: tuple[int, int] | None = None
    problems: list[Problem] = field(default_factory=list)
    raw: Any = None
    report: BuildReport = field(default_factory=BuildReport)  # counts merged into the build's when it is kept


def load_label_map(spec: Mapping[str, Any] | str | Path | None) -> dict[str, int | None]:
    """Parse a label map into ``{source label: class index, or None for ignore}``.

    ``spec`` is a mapping, a JSON or YAML file (``{"person": "distorted_components", "Car": "ignore"}``) or an inline
    ``"person=distorted_components,Car=ignore"``. Values are taxonomy slugs, names or indices, or ``ignore``
    (``None`` too, so that a parsed map can be passed again).
    """
    if spec is None:
        return {}
    source = "label_map"
    if isinstance(spec, Mapping):
        items: Mapping[Any, Any] = spec
    else:
        text = os.fspath(spec)
        path = Path(text)
        if path.suffix.lower() in (".json", ".yaml", ".yml") or path.is_file():
            source = str(path)
            if not path.is_file():
                raise FileNotFoundError(f"--label-map {path} does not exist: give a JSON/YAML file or NAME=KIND,...")
            content = path.read_text(encoding="utf-8-sig")
            try:
                if path.suffix.lower() == ".json":
                    items = json.loads(content)
                else:
                    import yaml

                    items = yaml.safe_load(content)
            except Exception as err:  # noqa: BLE001 - json and yaml raise different errors; both mean a bad file
                raise ValueError(f"--label-map {path} is not valid JSON/YAML ({err})") from None
            if not isinstance(items, Mapping):
                raise ValueError(f"--label-map {path} must hold a mapping of source label -> kind (or ignore)")
        else:
            items = {}
            for part in text.split(","):
                if not part.strip():
                    continue
                if "=" not in part:
                    raise ValueError(
                        f"--label-map entry {part.strip()!r} must be NAME=KIND or NAME=ignore "
                        "(use a JSON/YAML file for names with ',' or '=')"
                    )
                name, kind = part.rsplit("=", 1)
                items[name.strip()] = kind.strip()
    out: dict[str, int | None] = {}
    bad = []
    for name, kind in items.items():
        if kind is None or isinstance(kind, str) and kind.strip().lower() == IGNORE:
            out[str(name)] = None
            continue
        try:
            out[str(name)] = resolve_label(kind)
        except ValueError:
            bad.append(f"{name}={kind}")
    if bad:
        raise ValueError(
            f"--label-map ({source}): {', '.join(bad)} name no kind; map each label to a slug or name of "
            f"{', '.join(SLUGS)}, or to 'ignore'"
        )
    return out


class _Labels:
    """Resolves raw labels through the label map, then the taxonomy; collects unknown labels once per label."""

    def __init__(self, label_map: dict[str, int | None]):
        self.exact = label_map
        self.loose = {normalize_name(k): v for k, v in label_map.items()}
        self.unknown: dict[str, dict[str, Any]] = {}
        self.problem_label: dict[Problem, str] = {}

    def resolve(self, rec: Record, art: dict[str, Any]) -> int | str | None:
        """The class index, ``IGNORE``, or None after adding the record's problem."""
        raw = art["label"]
        if art.get("label_reported"):
            return None
        if isinstance(raw, (str, int)) and not isinstance(raw, bool):
            for table, key in ((self.exact, str(raw)), (self.loose, normalize_name(str(raw)))):
                if key in table:
                    return IGNORE if table[key] is None else table[key]
        try:
            return resolve_label(raw)
        except ValueError as err:
            label = str(raw)
            hint = re.search(r"Did you mean '[^']+'\?", str(err))
            desc = art.get("label_desc") or f"label {raw!r}"
            message = f"{desc} is not a kind" + (f" ({hint.group(0)})" if hint else "")
            problem = Problem(rec.file, rec.key, art.get("label_field") or f"{art['field']}.label", message)
            rec.problems.append(problem)
            self.problem_label[problem] = label
            info = self.unknown.setdefault(label, {"count": 0, "records": [], "first": problem})
            info["count"] += 1
            if len(info["records"]) < 5 and rec.key not in info["records"]:
                info["records"].append(rec.key)
            return None

    def summarize(self, problems: list[Problem]) -> list[Problem]:
        """``problems`` with every unknown-label problem folded into one line per label (at its first place)."""
        out, done = [], set()
        for p in problems:
            label = self.problem_label.get(p)
            if label is None:
                out.append(p)
            elif label not in done:
                done.add(label)
                info = self.unknown[label]
                first = info["first"]
                records = info["records"]
                where = f"{info['count']} time(s) in {'these records' if len(records) > 1 else 'this record'}"
                if len(records) > 1:
                    where += ": " + ", ".join(records[:3]) + (", ..." if len(records) > 3 else "")
                out.append(Problem(first.file, first.record, first.field, f"{first.message} ({where})"))
        return out

    def report(self) -> dict[str, dict[str, Any]]:
        return {k: {"count": v["count"], "records": v["records"]} for k, v in self.unknown.items()}

    def hint(self) -> str:
        return (
            "Map labels that are not kinds with --label-map (label_map=): a JSON/YAML file or "
            "'NAME=KIND,NAME=ignore' (ignore drops them); kinds: " + ", ".join(SLUGS) + "."
        )


@dataclass
class _Context:
    """What the readers and the record check share: where images are, the options, the labels and the report."""

    images: Path | None
    annotator: str = "first"
    allow_outside: bool = False
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    labels: _Labels = field(default_factory=lambda: _Labels({}))
    report: BuildReport = field(default_factory=BuildReport)
    _by_name: dict[str, list[Path]] | None = None
    _by_stem: dict[str, list[Path]] | None = None

    def named(self, name: str) -> list[Path]:
        """The image files under ``images`` with this file name (or stem, for a name without extension)."""
        if self._by_name is None:
            self._by_name, self._by_stem = {}, {}
            if self.images is not None and self.images.is_dir():
                for p in sorted(self.images.rglob("*")):
                    if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file():
                        self._by_name.setdefault(p.name, []).append(p)
                        self._by_stem.setdefault(p.stem, []).append(p)
        if PurePosixPath(name).suffix.lower() in IMAGE_EXTENSIONS:
            return self._by_name.get(name, [])
        return self._by_stem.get(name, [])


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def _find_image(candidates: Iterable[Path]) -> Path | None:
    for path in candidates:
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            return path
        if not path.suffix or path.suffix.lower() not in IMAGE_EXTENSIONS:
            for ext in IMAGE_EXTENSIONS:
                for variant in (Path(f"{path}{ext}"), Path(f"{path}{ext.upper()}")):
                    if variant.is_file():
                        return variant
    return None


def _relative_to(root: Path, path: Path) -> str | None:
    """``path`` relative to ``root`` (posix) if it lies inside it, lexically or once symlinks are resolved."""
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix()
    except ValueError:
        pass
    try:
        return Path(os.path.realpath(path)).relative_to(os.path.realpath(root)).as_posix()
    except ValueError:
        return None


def _id_from(rel: str | None, path: Path | str) -> str:
    """The image id: the path relative to --images without extension; for an allowed outside path, its stem."""
    if rel is None:
        return PurePosixPath(str(path).replace("\\", "/")).stem
    rel_path = PurePosixPath(rel)
    return rel_path.with_suffix("").as_posix() if rel_path.suffix else rel_path.as_posix()


def _is_absolute(text: str) -> bool:
    return text.startswith(("/", "\\", "~")) or bool(_WINDOWS_PATH.match(text))


def _local_image(ctx: _Context, ref: str) -> tuple[Path, str, str | None]:
    """(path, image id, problem or None) of an image path written relative to --images (JSONL, COCO)."""
    assert ctx.images is not None
    path = ctx.images / ref
    rel = _relative_to(ctx.images, path)
    if rel is None and not ctx.allow_outside:
        return (
            path,
            _id_from(None, ref),
            f"{ref!r} lies outside --images {ctx.images}: image paths must be relative to it and stay inside "
            "(pass --allow-outside-images / allow_outside_images=True to read it anyway)",
        )
    return path, _id_from(rel, path), None


def _ls_reference(ref: str) -> tuple[list[str], list[str], Path | None]:
    """Relative paths to try under --images (longest first), file names to look up, and a local absolute path."""
    text = ref.strip()
    absolute: Path | None = None
    upload = False
    parts = urlsplit(text)
    scheme = parts.scheme.lower() if not _WINDOWS_PATH.match(text) else ""
    if scheme in ("http", "https") and parts.path.startswith("/data/"):
        parts, scheme = urlsplit(parts.path + (f"?{parts.query}" if parts.query else "")), ""
    if scheme == "" and parts.path.startswith("/data/local-files"):
        path = parse_qs(parts.query).get("d", [""])[0].replace("\\", "/")
    elif scheme == "" and parts.path.startswith("/data/"):
        path = unquote(parts.path)[len("/data/") :]
        upload = path.startswith("upload/")
    elif scheme in ("s3", "gs", "gcs", "azure-blob"):
        path = f"{parts.netloc}/{unquote(parts.path)}"
    elif scheme in ("http", "https"):
        path = unquote(parts.path)
    elif scheme == "file":
        path = unquote(parts.path)
        absolute = Path(path)
    else:
        path = text.replace("\\", "/")
        if text.startswith("/"):
            absolute = Path(text)
    segments = [s for s in path.split("/") if s not in ("", ".")]
    if segments and _WINDOWS_PATH.match(segments[0] + "/"):
        segments = segments[1:]
    candidates = ["/".join(segments[i:]) for i in range(len(segments))]
    names = segments[-1:]
    if upload and names and (m := _UPLOAD_PREFIX.match(names[0])):
        names.append(m.group(1))
    return candidates, names, absolute


def _ls_image(ctx: _Context, ref: str) -> tuple[Path | None, str, str | None]:
    """(path, image id, problem or None) of a Label Studio image reference, looked up under --images."""
    assert ctx.images is not None
    candidates, names, absolute = _ls_reference(ref)
    outside = None
    if absolute is not None:
        found = _find_image([absolute])
        if found is not None:
            rel = _relative_to(ctx.images, found)
            if rel is not None or ctx.allow_outside:
                return found, _id_from(rel, found), None
            outside = found
    tried = []
    for cand in candidates:
        path = ctx.images / cand
        rel = _relative_to(ctx.images, path)
        found = _find_image([path])
        if rel is None and not ctx.allow_outside:
            outside = outside or found
            continue
        tried.append(cand)
        if found is not None:
            return found, _id_from(_relative_to(ctx.images, found), found), None
    for name in names:
        matches = ctx.named(name)
        if len(matches) == 1:
            return matches[0], _id_from(_relative_to(ctx.images, matches[0]), matches[0]), None
        if len(matches) > 1:
            some = ", ".join(_relative_to(ctx.images, m) or str(m) for m in matches[:3])
            return (
                None,
                _id_from(None, name),
                f"{ref!r}: several files named {name} under --images ({some}); "
                "keep the folders in the reference so that its relative path decides",
            )
    stem = _id_from(None, names[-1] if names else ref)
    if outside is not None:
        return (
            None,
            stem,
            f"{ref!r} resolves to {outside}, outside --images {ctx.images} "
            "(pass --allow-outside-images / allow_outside_images=True to read it anyway)",
        )
    tried_text = ", ".join(tried[:6]) + (", ..." if len(tried) > 6 else "")
    guessed = any(PurePosixPath(n).suffix.lower() not in IMAGE_EXTENSIONS for n in names)
    return (
        None,
        stem,
        f"no image for {ref!r} under --images {ctx.images}: tried the relative path(s) {tried_text or '(none)'}"
        f" and the file name(s) {', '.join(names) or '(none)'}" + (" with image extensions" if guessed else ""),
    )


# --------------------------------------------------------------------------- the release
def _read_synartifact(annotations: Path, ctx: _Context) -> tuple[list[Record], list[Problem], set[str] | None]:
    root, images = annotations, ctx.images
    if not root.is_dir():
        raise FileNotFoundError(
            f"--annotations {root} must be the SynArtifact-1K release's root folder (with eval.txt)"
        )
    files = sorted(root.rglob("annotation_json_artifacts_class/*.json"))
    if not files:
        raise FileNotFoundError(
            f"No annotation files found under {root}: expected <folder>/annotation_json_artifacts_class/<image_id>.json"
        )
    records, problems = [], []
    for path in files:
        folder = path.parent.parent
        rel_folder = folder.relative_to(root).as_posix()
        stem = path.stem
        rec_file = path.relative_to(root).as_posix()
        rec = Record(file=rec_file, key=stem, image_id=f"{rel_folder}/{stem}", image_path=None, generator=folder.name)
        records.append(rec)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            rec.problems.append(Problem(rec_file, stem, "", f"not valid JSON ({err})"))
            continue
        if not isinstance(data, dict) or not isinstance(data.get("Artifacts annotation", []), list):
            rec.problems.append(Problem(rec_file, stem, "Artifacts annotation", "must be a list of artifact objects"))
            continue
        rec.raw = data
        rec.other_artifacts_caption = _text(data.get("Other artifacts caption"))
        rec.prompt = _text(data.get("prompt", data.get("Prompt", "")))
        for i, art in enumerate(data.get("Artifacts annotation", [])):
            where = f"Artifacts annotation[{i}]"
            if not isinstance(art, dict):
                rec.problems.append(
                    Problem(rec_file, stem, where, "must be an object with rect_start, rect_end, artifacts_class")
                )
                continue
            missing = [k for k in ("rect_start", "rect_end", "artifacts_class") if k not in art]
            if missing:
                rec.problems.append(Problem(rec_file, stem, where, f"missing {', '.join(missing)}"))
                continue
            start, end = art["rect_start"], art["rect_end"]
            if not (isinstance(start, list) and isinstance(end, list) and len(start) == 2 and len(end) == 2):
                rec.problems.append(
                    Problem(rec_file, stem, f"{where}.rect_start/rect_end", "must each be [x, y] pixel corners")
                )
                continue
            rec.artifacts.append(
                {
                    "label": art["artifacts_class"],
                    "bbox": [*start, *end],
                    "caption": _text(art.get("artifacts_caption")),
                    "fmt": "xyxy",
                    "units": "pixels",
                    "field": where,
                }
            )
        bases = [folder, folder / "images", folder / "data", root / "images" / rel_folder, root / "data" / rel_folder]
        if images is not None:
            bases += [images / rel_folder, images]
        rec.image_path = _find_image(b / stem for b in bases)
        if rec.image_path is None:
            rec.problems.append(
                Problem(
                    rec_file,
                    stem,
                    "image",
                    f"no image {stem}.<{'|'.join(e[1:] for e in IMAGE_EXTENSIONS[:4])}> in {', '.join(str(b) for b in bases)}",
                )
            )
    test_ids: set[str] | None = None
    eval_file = root / "eval.txt"
    if eval_file.is_file():
        known = {r.image_id for r in records}
        test_ids = set()
        for n, line in enumerate(eval_file.read_text(encoding="utf-8").splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            parts = Path(line).with_suffix("").parts
            parts = tuple(p for p in parts if p not in ("images", "data"))
            image_id = "/".join(parts)
            if image_id not in known:
                # a copy may nest folders differently: match on folder name + stem
                matches = [
                    k
                    for k in known
                    if k.split("/")[-1] == parts[-1] and (len(parts) < 2 or k.split("/")[-2] == parts[-2])
                ]
                if len(matches) == 1:
                    image_id = matches[0]
                else:
                    problems.append(Problem("eval.txt", f"line {n}", "path", f"{line!r} names no annotated image"))
                    continue
            test_ids.add(image_id)
    return records, problems, test_ids


# --------------------------------------------------------------------------- JSONL
def _read_jsonl(annotations: Path, ctx: _Context) -> tuple[list[Record], list[Problem], set[str] | None]:
    if not annotations.is_file():
        raise FileNotFoundError(
            f"--annotations {annotations} is not a file: give the JSONL file, one JSON record per line"
        )
    fname = annotations.name
    records, problems = [], []
    raw_bytes = annotations.read_bytes().removeprefix(b"\xef\xbb\xbf")
    # split on b"\n" only: str.splitlines() would also break at U+2028 and friends inside JSON strings
    for n, raw_line in enumerate(raw_bytes.split(b"\n"), 1):
        key = f"line {n}"
        try:
            line = raw_line.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as err:
            problems.append(
                Problem(
                    fname,
                    key,
                    "",
                    f"not valid UTF-8 (byte 0x{raw_line[err.start]:02x} at column {err.start + 1}): "
                    "save the file as UTF-8",
                )
            )
            continue
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append(Problem(fname, key, "", f"not valid JSON ({err.msg})"))
            continue
        if not isinstance(data, dict):
            problems.append(Problem(fname, key, "", "must be a JSON object (see the record format in the docs)"))
            continue
        image = data.get("image")
        if not isinstance(image, str) or not image:
            problems.append(Problem(fname, key, "image", "required: the image path relative to --images"))
            continue
        path, image_id, outside = _local_image(ctx, image)
        given_id = data.get("image_id")
        id_problem = None
        if given_id not in (None, ""):
            image_id = str(given_id)
            if _is_absolute(image_id):
                id_problem = f"{image_id!r} is an absolute path; image ids are uploaded with the dataset: give a name"
                image_id = _id_from(None, image_id)
        rec = Record(fname, f"{key} ({image_id})", image_id, path, raw=data)
        if outside:
            rec.problems.append(Problem(fname, rec.key, "image", outside))
            rec.image_path = None
        if id_problem:
            rec.problems.append(Problem(fname, rec.key, "image_id", id_problem))
        rec.prompt, rec.generator = _text(data.get("prompt")), _text(data.get("generator"))
        rec.other_artifacts_caption = _text(data.get("other_artifacts_caption"))
        split = data.get("split")
        if split is not None and split not in ("train", "test"):
            rec.problems.append(Problem(fname, rec.key, "split", f"{split!r} must be 'train' or 'test'"))
        rec.split = split
        fmt = data.get("bbox_format", "xyxy")
        if fmt not in ("xyxy", "xywh"):
            rec.problems.append(Problem(fname, rec.key, "bbox_format", f"{fmt!r} must be 'xyxy' or 'xywh'"))
        units = data.get("bbox_units")
        if units not in (None, "pixels", "normalized"):
            rec.problems.append(Problem(fname, rec.key, "bbox_units", f"{units!r} must be 'pixels' or 'normalized'"))
        arts = data.get("artifacts", [])
        if not isinstance(arts, list):
            rec.problems.append(Problem(fname, rec.key, "artifacts", "must be a list of {label, bbox, caption}"))
            arts = []
        for i, art in enumerate(arts):
            where = f"artifacts[{i}]"
            if not isinstance(art, dict) or "label" not in art or "bbox" not in art:
                rec.problems.append(Problem(fname, rec.key, where, "must be an object with label, bbox and caption"))
                continue
            rec.artifacts.append(
                {
                    "label": art["label"],
                    "bbox": art["bbox"],
                    "caption": _text(art.get("caption")),
                    "fmt": fmt,
                    "units": units,
                    "field": where,
                }
            )
        records.append(rec)
    # units detected once per file, so one small pixel box cannot flip the reading of another
    values = [
        v
        for r in records
        for a in r.artifacts
        if a["units"] is None and isinstance(a["bbox"], list)
        for v in a["bbox"]
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    detected = detect_bbox_units(values)
    for r in records:
        for a in r.artifacts:
            a["units"] = a["units"] or detected
    test_ids = None
    if any(r.split is not None for r in records):
        test_ids = {r.image_id for r in records if r.split == "test"}
    return records, problems, test_ids


def _load_json(annotations: Path, what: str) -> Any:
    fname = annotations.name
    try:
        return json.loads(annotations.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as err:
        raise DatasetValidationError(
            [Problem(fname, "", "", f"not valid UTF-8 (byte 0x{err.object[err.start]:02x} at offset {err.start})")],
            f"{what} {annotations}",
        ) from None
    except json.JSONDecodeError as err:
        raise DatasetValidationError(
            [Problem(fname, "", "", f"not valid JSON ({err})")], f"{what} {annotations}"
        ) from None


def _polygon_box(values: Any) -> list[float] | None:
    """``[x0, y0, x1, y1]`` around a flat ``[x, y, x, y, ...]`` or nested ``[[x, y], ...]`` list, None if malformed."""
    if not isinstance(values, list) or not values:
        return None
    flat = [v for item in values for v in (item if isinstance(item, list) else [item])]
    if (
        len(flat) < 2
        or len(flat) % 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in flat)
    ):
        return None
    xs, ys = flat[0::2], flat[1::2]
    return [min(xs), min(ys), max(xs), max(ys)]


# --------------------------------------------------------------------------- COCO
def _read_coco(annotations: Path, ctx: _Context) -> tuple[list[Record], list[Problem], set[str] | None]:
    fname = annotations.name
    if not annotations.is_file():
        raise FileNotFoundError(f"--annotations {annotations} is not a file: give the COCO JSON file")
    data = _load_json(annotations, "COCO file")
    problems: list[Problem] = []
    if not isinstance(data, dict):
        raise DatasetValidationError(
            [Problem(fname, "", "", "must be an object with images, annotations, categories")],
            f"COCO file {annotations}",
        )
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            problems.append(Problem(fname, "", key, "required: a list"))
    if problems:
        raise DatasetValidationError(problems, f"COCO file {annotations}")

    categories: dict[Any, str] = {}  # id -> name (the label)
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            problems.append(Problem(fname, f"categories[{i}]", "", "must be an object with id and name"))
            continue
        if cat["id"] in categories:
            problems.append(Problem(fname, f"categories[{i}] (id {cat['id']})", "id", "duplicate category id"))
            continue
        categories[cat["id"]] = str(cat["name"])

    records: dict[Any, Record] = {}
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img or not isinstance(img.get("file_name"), str):
            problems.append(Problem(fname, f"images[{i}]", "", "must be an object with id and file_name"))
            continue
        file_name = img["file_name"]
        shown = PurePosixPath(file_name.replace("\\", "/")).name if _is_absolute(file_name) else file_name
        if img["id"] in records:
            # both entries are rejected: the annotations cannot be told apart
            problems.append(Problem(fname, f"images[{i}] (id {img['id']})", "id", "duplicate image id"))
            first = records[img["id"]]
            first.problems.append(Problem(fname, first.key, "id", f"duplicate image id (again in images[{i}])"))
            continue
        path, image_id, outside = _local_image(ctx, file_name)
        rec = Record(fname, f"image {img['id']} ({shown})", image_id, path, raw=img)
        if outside:
            rec.problems.append(Problem(fname, rec.key, "file_name", outside))
            rec.image_path = None
        rec.prompt, rec.generator = _text(img.get("prompt")), _text(img.get("generator"))
        rec.other_artifacts_caption = _text(img.get("other_artifacts_caption"))
        w, h = img.get("width"), img.get("height")
        if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0:
            rec.declared_size = (w, h)
        records[img["id"]] = rec

    seen_ann = set()
    for i, ann in enumerate(data["annotations"]):
        key = f"annotations[{i}]" + (f" (id {ann.get('id')})" if isinstance(ann, dict) and "id" in ann else "")
        if not isinstance(ann, dict):
            problems.append(Problem(fname, key, "", "must be an object with id, image_id, category_id, bbox"))
            continue
        rec = records.get(ann.get("image_id"))
        if "id" in ann:
            if ann["id"] in seen_ann:
                # the image is rejected with it: which of the two annotations is right cannot be told
                where = rec.problems if rec is not None else problems
                where.append(
                    Problem(
                        fname,
                        rec.key if rec is not None else key,
                        f"{key}.id" if rec else "id",
                        "duplicate annotation id",
                    )
                )
            seen_ann.add(ann["id"])
        if rec is None:
            problems.append(
                Problem(fname, key, "image_id", f"{ann.get('image_id')!r} is not the id of an entry in images")
            )
            continue
        bbox, fmt, shape = ann.get("bbox"), "xywh", "box"
        if bbox is None:
            bbox, fmt, shape = _polygon_box(ann.get("segmentation")), "xyxy", "polygon"
            if bbox is None:
                rec.problems.append(
                    Problem(
                        fname,
                        rec.key,
                        f"{key}.bbox",
                        "required: [x, y, width, height] in pixels (or a polygon segmentation)",
                    )
                )
                continue
        cid = ann.get("category_id")
        art = {
            "label": categories.get(cid),
            "bbox": bbox,
            "caption": "",
            "fmt": fmt,
            "units": "pixels",
            "field": key,
            "shape": shape,
            "label_field": f"{key}.category_id",
            "label_desc": f"category {cid!r} {categories.get(cid)!r}",
        }
        if cid not in categories:
            # the box is still checked so that every problem shows at once
            art["label_reported"] = True
            rec.problems.append(
                Problem(
                    fname,
                    rec.key,
                    f"{key}.category_id",
                    f"{cid!r} is not a category id ({', '.join(map(str, categories))})",
                )
            )
        caption = ann.get("caption")
        if caption is None and isinstance(ann.get("attributes"), dict):
            caption = ann["attributes"].get("caption")
        art["caption"] = _text(caption)
        rec.artifacts.append(art)
    return list(records.values()), problems, None


# --------------------------------------------------------------------------- Label Studio
_LS_SHAPES = {
    "rectanglelabels": "rectangle",
    "rectangle": "rectangle",
    "polygonlabels": "polygon",
    "polygon": "polygon",
    "brushlabels": "brush",
    "brush": "brush",
}


def _ls_shape(rtype: str, value: dict[str, Any]) -> str | None:
    if rtype in _LS_SHAPES:
        return _LS_SHAPES[rtype]
    if rtype == "labels":  # <Labels> next to a <Rectangle>/<Polygon>/<Brush> tag: the shape shows in the keys
        if "rle" in value:
            return "brush"
        if "points" in value:
            return "polygon"
        if {"width", "height"} <= set(value) and "radiusX" not in value:
            return "rectangle"
    return None


def _ls_image_ref(task: dict[str, Any]) -> str | None:
    data = task["data"]
    if isinstance(data.get("image"), str):
        return data["image"]
    # another <Image value="$..."> key: take the only value that looks like an image reference
    refs = [
        v
        for v in data.values()
        if isinstance(v, str)
        and (
            v.startswith(("/data/", "s3://", "gs://", "azure-blob://", "http://", "https://"))
            or PurePosixPath(v.split("?")[0]).suffix.lower() in IMAGE_EXTENSIONS
        )
    ]
    return refs[0] if len(refs) == 1 else None


def _read_labelstudio(annotations: Path, ctx: _Context) -> tuple[list[Record], list[Problem], set[str] | None]:
    fname = annotations.name
    if not annotations.is_file():
        raise FileNotFoundError(f"--annotations {annotations} is not a file: give the Label Studio JSON export")
    data = _load_json(annotations, "Label Studio file")
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise DatasetValidationError(
            [Problem(fname, "", "", "must be a list of tasks (Label Studio JSON export)")],
            f"Label Studio file {annotations}",
        )
    records, problems = [], []
    for t, task in enumerate(data):
        key = f"task {task.get('id', t) if isinstance(task, dict) else t}"
        ref = _ls_image_ref(task) if isinstance(task, dict) and isinstance(task.get("data"), dict) else None
        if ref is None:
            problems.append(Problem(fname, key, "data.image", "required: each task needs data.image"))
            continue
        all_anns = task.get("annotations", task.get("completions", [])) or []
        anns = [(a, ann) for a, ann in enumerate(all_anns) if isinstance(ann, dict) and not ann.get("was_cancelled")]
        cancelled = sum(1 for ann in all_anns if isinstance(ann, dict) and ann.get("was_cancelled"))
        if not anns:
            ctx.report.cancelled_annotations += cancelled
            ctx.report.dropped["task without a non-cancelled annotation (not imported: unannotated is not clean)"] += 1
            continue
        path, image_id, missing = _ls_image(ctx, ref)
        name = (_ls_reference(ref)[1] or [ref])[0]
        rec = Record(fname, f"{key} ({name})", image_id, path, raw=task)
        rec.prompt, rec.generator = _text(task["data"].get("prompt")), _text(task["data"].get("generator"))
        records.append(rec)
        if missing:
            rec.problems.append(Problem(fname, rec.key, "data.image", missing))
        rec.report.cancelled_annotations += cancelled
        if ctx.annotator == "first":
            rec.report.unused_annotations += len(anns) - 1
            anns = anns[:1]
        rects: dict[Any, list[dict[str, Any]]] = {}
        texts: dict[Any, list[str]] = {}
        for a, ann in anns:
            result = ann.get("result", [])
            if not isinstance(result, list):
                rec.problems.append(Problem(fname, rec.key, f"annotations[{a}].result", "must be a list of regions"))
                continue
            for r, region in enumerate(result):
                _ls_region(rec, a, r, region, rects, texts)
        other = []
        for rid, parts in texts.items():
            if rid in rects:
                for art in rects[rid]:
                    art["caption"] = " ".join(parts)
            else:
                other.extend(parts)
        rec.other_artifacts_caption = " ".join(other)
        rec.artifacts.extend(art for arts in rects.values() for art in arts)
    return records, problems, None


def _ls_region(
    rec: Record,
    a: int,
    r: int,
    region: Any,
    rects: dict[Any, list[dict[str, Any]]],
    texts: dict[Any, list[str]],
) -> None:
    """Read one result item of a task's annotation ``a`` into ``rects`` / ``texts``; problems go to the record."""
    where = f"annotations[{a}].result[{r}]"
    if not isinstance(region, dict):
        rec.problems.append(Problem(rec.file, rec.key, where, "must be a region object"))
        return
    rtype, value = str(region.get("type", "")), region.get("value")
    rid = (a, region.get("id", f"#{r}"))
    if rtype == "textarea":
        if isinstance(value, dict):
            texts.setdefault(rid, []).append(_text(value.get("text")))
        return
    shape = _ls_shape(rtype, value) if isinstance(value, dict) else None
    if shape is None:
        if rtype in _LS_SHAPES:
            rec.problems.append(Problem(rec.file, rec.key, f"{where}.value", f"a {rtype} region needs a value object"))
        else:
            rec.report.dropped[f"{rtype or 'untyped'} results (not a box, polygon or mask)"] += 1
        return
    label_key = rtype if rtype.endswith("labels") else "labels"
    labels = value.get(label_key)
    good_labels = isinstance(labels, list) and labels and all(isinstance(x, (str, int)) for x in labels)
    if not good_labels:
        rec.problems.append(
            Problem(rec.file, rec.key, f"{where}.value.{label_key}", f"needs a list of labels, got {labels!r}")
        )
    ow, oh = region.get("original_width"), region.get("original_height")
    orig = (ow, oh) if isinstance(ow, int) and isinstance(oh, int) and ow > 0 and oh > 0 else None
    if orig and rec.declared_size is None:
        rec.declared_size = orig
    art: dict[str, Any] = {
        "caption": "",
        "field": f"{where} (id {region.get('id')})",
        "shape": shape,
        "type": rtype,
        "tolerance": LABELSTUDIO_BBOX_TOLERANCE,
    }
    if shape == "rectangle":
        rotation = value.get("rotation", 0) or 0
        if isinstance(rotation, bool) or not isinstance(rotation, (int, float)) or not math.isfinite(rotation):
            rec.problems.append(
                Problem(rec.file, rec.key, f"{where}.value.rotation", f"must be a number of degrees, got {rotation!r}")
            )
            rotation = 0
        bbox = [value.get("x"), value.get("y"), value.get("width"), value.get("height")]
        art.update(bbox=bbox, fmt="xywh", units="percent", rotation=float(rotation) % 360)
    elif shape == "polygon":
        bbox = _polygon_box(value.get("points"))
        if bbox is None:
            rec.problems.append(
                Problem(
                    rec.file,
                    rec.key,
                    f"{where}.value.points",
                    f"must be a list of [x, y] points in percent, got {value.get('points')!r}",
                )
            )
            bbox = [0, 0, 0, 0]
        art.update(bbox=bbox, fmt="xyxy", units="percent")
    else:
        art.update(bbox=None, fmt="xyxy", units="normalized", rle=value.get("rle"), orig=orig)
        art["brush_format"] = value.get("format", "rle")
    for label in labels if good_labels else []:
        rects.setdefault(rid, []).append(dict(art, label=label))
    if not good_labels:
        # the shape is still checked, so that a bad label never hides a bad box
        rects.setdefault(rid, []).append(dict(art, label=None, label_reported=True))


_READERS = {
    "synartifact": _read_synartifact,
    "jsonl": _read_jsonl,
    "coco": _read_coco,
    "labelstudio": _read_labelstudio,
}


def _make_context(
    fmt: str, annotations: str | Path, images: str | Path | None, annotator: str, allow_outside_images: bool
) -> tuple[Path, _Context]:
    if fmt not in _READERS:
        raise ValueError(f"Unknown format {fmt!r}: valid formats are {', '.join(FORMATS)}")
    if annotator not in ANNOTATORS:
        raise ValueError(f"annotator {annotator!r} is not one of {', '.join(ANNOTATORS)}")
    if fmt != "synartifact" and images is None:
        raise ValueError(
            f"--images is required for --format {fmt}: the folder the annotations' image paths are relative to"
        )
    images = Path(images) if images is not None else None
    if images is not None and not images.is_dir():
        raise FileNotFoundError(f"--images {images} is not a folder")
    annotations = Path(annotations)
    if not annotations.exists():
        raise FileNotFoundError(f"--annotations {annotations} does not exist")
    return annotations, _Context(images, annotator=annotator, allow_outside=allow_outside_images)


def read_records(
    fmt: str,
    annotations: str | Path,
    images: str | Path | None = None,
    *,
    annotator: str = "first",
    allow_outside_images: bool = False,
) -> tuple[list[Record], list[Problem], set[str] | None]:
    """Parse one input into records (images not yet opened), file-level problems and the fixed test ids."""
    annotations, ctx = _make_context(fmt, annotations, images, annotator, allow_outside_images)
    return _READERS[fmt](annotations, ctx)


# --------------------------------------------------------------------------- images and boxes
def _load_image(path: Path, index: int, max_pixels: int | None) -> tuple[bytes, int, int]:
    """The image's bytes (re-encoded as PNG unless RGB already) and its size; raises ValueError when unusable."""
    raw = path.read_bytes()
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its two limits; a warning here would still decode a bomb
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as im:
                width, height = im.size
                if max_pixels and width * height > max_pixels:
                    raise ValueError(
                        f"image too large: {path.name} is {width}x{height} = {width * height:,} pixels, over "
                        f"--max-pixels {max_pixels:,}; resize it or raise --max-pixels (max_pixels)"
                    )
                im.load()
                if im.mode == "RGB" and im.format in ("JPEG", "PNG", "WEBP"):
                    return raw, width, height
                rgb = to_rgb(im, index, max_pixels)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ValueError(f"image too large: {path.name} could be a decompression bomb ({err})") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"corrupt image: {path.name} is not a readable image ({err})") from None
    except ValueError as err:
        if str(err).startswith("image too large"):
            raise
        raise ValueError(f"corrupt image: {path.name}: {err}") from None
    buf = io.BytesIO()
    rgb.save(buf, format="PNG")
    return buf.getvalue(), rgb.width, rgb.height


class _Dropped(Exception):
    """A region that cannot become a box, with the reason (reported, not rejected)."""


def _decode_ls_rle(rle: Any, width: int, height: int):
    """The alpha channel (``height`` x ``width``) of a Label Studio brush RLE (its ``rle-pack`` bit stream)."""
    import numpy as np

    if not isinstance(rle, list) or not rle or not all(isinstance(v, int) and 0 <= v < 256 for v in rle):
        raise _Dropped("its rle is not a list of byte values")
    bits = (np.unpackbits(np.asarray(rle, dtype=np.uint8)) + ord("0")).tobytes().decode("ascii")
    pos = 0

    def read(n: int) -> int:
        nonlocal pos
        if pos + n > len(bits):
            raise _Dropped("its rle is truncated")
        pos += n
        return int(bits[pos - n : pos], 2)

    num = read(32)
    if num != width * height * 4:
        raise _Dropped(f"its rle holds {num} values, not {width}x{height}x4 for the image")
    word = read(5) + 1
    sizes = [read(4) + 1 for _ in range(4)]
    out = np.zeros(num, dtype=np.uint8)
    i = 0
    while i < num:
        repeat = read(1)
        j = min(num, i + 1 + read(sizes[read(2)]))
        if repeat:
            out[i:j] = read(word)
            i = j
        else:
            while i < j:
                out[i] = read(word)
                i += 1
    return out[3::4].reshape(height, width)


def _artifact_box(art: dict[str, Any], width: int, height: int, max_pixels: int | None) -> tuple[list[float], bool]:
    """The normalized box of one artifact and whether it was clipped; ValueError/TypeError when the box is bad."""
    shape = art.get("shape", "box")
    box, fmt, units = art["bbox"], art["fmt"], art["units"]
    if shape == "brush":
        if art.get("brush_format") != "rle":
            raise _Dropped(f"its format {art.get('brush_format')!r} is not rle")
        w, h = art.get("orig") or (width, height)
        if max_pixels and w * h > max_pixels:
            raise _Dropped(f"its mask of {w}x{h} is over max_pixels")
        import numpy as np

        ys, xs = np.nonzero(_decode_ls_rle(art.get("rle"), w, h))
        if not len(xs):
            raise _Dropped("its mask is empty")
        box = [xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h]
    elif shape == "rectangle" and art.get("rotation"):
        x0, y0, x1, y1 = bbox_to_unit(box, width, height, fmt="xywh", units="percent")
        px, py, pw, ph = x0 * width, y0 * height, (x1 - x0) * width, (y1 - y0) * height
        # Label Studio rotates clockwise (y points down) about the top-left corner, in pixels
        c, s = math.cos(math.radians(art["rotation"])), math.sin(math.radians(art["rotation"]))
        xs = [px, px + pw * c, px + pw * c - ph * s, px - ph * s]
        ys = [py, py + pw * s, py + pw * s + ph * c, py + ph * c]
        box, fmt, units = [min(xs) / width, min(ys) / height, max(xs) / width, max(ys) / height], "xyxy", "normalized"
    unit = bbox_to_unit(box, width, height, fmt=fmt, units=units)
    bbox = normalize_bbox(box, width, height, fmt=fmt, units=units, tolerance=art.get("tolerance", BBOX_TOLERANCE))
    return bbox, any(v < -1e-9 or v > 1 + 1e-9 for v in unit)


def _finish(rec: Record, ctx: _Context, index: int) -> dict[str, Any] | None:
    """Open the record's image, convert its artifacts; append problems to ``rec.problems``; the row if valid."""
    image = None
    width = height = 0
    local = rec.report
    if rec.image_path is not None:
        if not rec.image_path.is_file():
            rec.problems.append(Problem(rec.file, rec.key, "image", f"missing image file {rec.image_path}"))
        else:
            try:
                data, width, height = _load_image(rec.image_path, index, ctx.max_pixels)
                image = {"bytes": data, "path": rec.image_path.name}
            except ValueError as err:
                rec.problems.append(Problem(rec.file, rec.key, "image", str(err)))
    if width and rec.declared_size and rec.declared_size != (width, height):
        rec.problems.append(
            Problem(
                rec.file,
                rec.key,
                "width/height",
                f"declared {rec.declared_size[0]}x{rec.declared_size[1]} but the image is {width}x{height}",
            )
        )
    artifacts = []
    for art in rec.artifacts:
        label = ctx.labels.resolve(rec, art)
        if label == IGNORE:
            local.ignored_labels[str(art["label"])] += 1
            continue
        if not width:
            continue
        try:
            bbox, clipped = _artifact_box(art, width, height, ctx.max_pixels)
        except _Dropped as why:
            local.dropped[f"{art.get('type', 'region')} regions ({why})"] += 1
            continue
        except (ValueError, TypeError) as err:
            rec.problems.append(Problem(rec.file, rec.key, f"{art['field']}.bbox", str(err)))
            continue
        if label is None:
            continue
        local.clipped_boxes += clipped
        shape = art.get("shape")
        local.rotated_boxes += shape == "rectangle" and bool(art.get("rotation"))
        local.polygon_boxes += shape == "polygon"
        local.mask_boxes += shape == "brush"
        artifacts.append({"label": label, "bbox": bbox, "caption": art["caption"]})
    if rec.problems or image is None:
        return None
    return {
        "image": image,
        "image_id": rec.image_id,
        "prompt": rec.prompt,
        "generator": rec.generator,
        "source": "annotated",
        "width": width,
        "height": height,
        "other_artifacts_caption": rec.other_artifacts_caption,
        "artifacts": artifacts,
    }


def build_dataset(
    fmt: str,
    annotations: str | Path,
    images: str | Path | None = None,
    *,
    seed: int = 0,
    test_size: float = 0.2,
    skip_invalid: bool = False,
    progress: bool = True,
    label_map: Mapping[str, Any] | str | Path | None = None,
    annotator: str = "first",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    allow_outside_images: bool = False,
) -> BuildResult:
    """Read annotations in ``fmt`` (one of :data:`FORMATS`) into a ``DatasetDict`` with ``train`` / ``test``.

    Returns a :class:`BuildResult` ``(dataset, rejected, report)``: ``rejected`` lists ``{"record", "file",
    "image_id", "problems"}`` per skipped record (empty unless ``skip_invalid``), ``report`` counts what was
    converted, clipped or dropped. Without ``skip_invalid`` any problem raises one :class:`DatasetValidationError`
    listing all of them (an unknown label once, with its count). ``label_map`` maps source labels to kinds (see
    :func:`load_label_map`); ``annotator`` (``"first"`` / ``"all"``) picks Label Studio annotations; images over
    ``max_pixels`` (0/None: no limit) are record problems. The test split is the release's ``eval.txt`` or the
    JSONL ``split`` fields when given, else a seeded stratified split.
    """
    from datasets import Dataset, DatasetDict
    from tqdm.auto import tqdm

    from synartifact.data.splits import stratified_split

    labels = _Labels(load_label_map(label_map))
    annotations, ctx = _make_context(fmt, annotations, images, annotator, allow_outside_images)
    ctx.labels, ctx.max_pixels = labels, max_pixels
    report = ctx.report
    records, file_problems, test_ids = _READERS[fmt](annotations, ctx)
    rows, rejected, all_problems = [], [], list(file_problems)
    seen: dict[str, str] = {}
    for index, rec in enumerate(tqdm(records, desc=f"Checking {fmt} records", unit="img", disable=not progress)):
        if rec.image_id in seen:
            rec.problems.append(
                Problem(rec.file, rec.key, "image_id", f"duplicate id {rec.image_id!r} (also {seen[rec.image_id]})")
            )
        else:
            seen[rec.image_id] = rec.key
        row = _finish(rec, ctx, index)
        if row is None:
            if not rec.problems:
                rec.problems.append(Problem(rec.file, rec.key, "image", "no image found"))
            all_problems.extend(rec.problems)
            rejected.append(
                {
                    "file": rec.file,
                    "record": rec.key,
                    "image_id": rec.image_id,
                    "problems": [p.to_dict() for p in rec.problems],
                }
            )
        else:
            report.merge(rec.report)
            rows.append(row)
    for p in file_problems:
        rejected.append({"file": p.file, "record": p.record, "image_id": None, "problems": [p.to_dict()]})
    report.records, report.kept, report.rejected = len(records) + len(file_problems), len(rows), len(rejected)
    report.unknown_labels = labels.report()
    shown = labels.summarize(all_problems)
    hint = labels.hint() if labels.unknown else None
    if all_problems and not skip_invalid:
        raise DatasetValidationError(
            shown, f"The {fmt} input {annotations}", hint=hint, rejected=rejected, report=report
        )
    if not rows:
        if not all_problems:
            raise DatasetValidationError(
                [Problem(annotations.name, "", "", "no image records: nothing to import")],
                f"The {fmt} input {annotations}",
                hint="Check --format and --annotations.",
                rejected=rejected,
                report=report,
            )
        raise DatasetValidationError(
            shown,
            f"Nothing is valid: --skip-invalid rejected every record of the {fmt} input {annotations}, which",
            hint=" ".join(filter(None, ["Every rejected record is listed with its reasons in rejected.jsonl.", hint])),
            rejected=rejected,
            report=report,
        )
    features = get_features()
    ds = Dataset.from_list(rows, features=features)
    row_labels = [[a["label"] for a in r["artifacts"]] for r in rows]
    train, test = stratified_split(
        row_labels, test_size=test_size, seed=seed, ids=[r["image_id"] for r in rows], test_ids=test_ids
    )
    return BuildResult(DatasetDict({"train": ds.select(train), "test": ds.select(test)}), rejected, report)
