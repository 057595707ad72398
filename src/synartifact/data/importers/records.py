"""What every format's reader shares: the record, the build report, labels and the label map, image paths.

A reader (one module per format) turns its annotations into :class:`Record` objects, images not yet opened, through
a :class:`_Context`: the ``--images`` folder and the options, the labels, the report and the image lookup that keeps
paths inside ``--images``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from synartifact.data.schema import BBOX_TOLERANCE, DatasetValidationError, Problem, resolve_label
from synartifact.images import DEFAULT_MAX_PIXELS
from synartifact.taxonomy import SLUGS, normalize_name

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
ANNOTATORS: tuple[str, ...] = ("first", "all")
# Label Studio's editor lets a box run past the image edge (y + height = 101.6 % is common): such boxes are clipped.
LABELSTUDIO_BBOX_TOLERANCE = 0.05
IGNORE = "ignore"
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
    crowd_regions: int = 0
    ignored_labels: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    unknown_labels: dict[str, dict[str, Any]] = field(default_factory=dict)
    # what a reader of the field's datasets noted (units detected, corners swapped, regions without a kind), per reason
    notes: Counter = field(default_factory=Counter)
    # image-level values (RichHF scores), kept as float columns of the same names: image_id -> {name: value}
    image_fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    format: str = ""  # the --format read (merge names an input's rows after it)

    def merge(self, other: BuildReport) -> None:
        """Add another report's conversion and drop counts (those of one kept record) to this one."""
        for name in ("clipped_boxes", "rotated_boxes", "polygon_boxes", "mask_boxes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("unused_annotations", "cancelled_annotations", "crowd_regions"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.ignored_labels.update(other.ignored_labels)
        self.dropped.update(other.dropped)
        self.notes.update(other.notes)
        self.image_fields.update(other.image_fields)

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
            "crowd_regions": self.crowd_regions,
            "ignored_labels": dict(self.ignored_labels.most_common()),
            "dropped": dict(self.dropped.most_common()),
            "unknown_labels": self.unknown_labels,
            **({"notes": dict(self.notes.most_common())} if self.notes else {}),
            **({"image_columns": self.image_columns()} if self.image_fields else {}),
            **({"format": self.format} if self.format else {}),
        }

    def image_columns(self) -> list[str]:
        """The image-level columns the build added (RichHF's scores), sorted."""
        return sorted({k for v in self.image_fields.values() for k in v})

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
            (self.crowd_regions, "COCO iscrowd regions imported as artifacts (a crowd box may cover several objects)"),
        ):
            if count:
                out.append(f"{what}: {count}")
        out.extend(f"{note}: {count}" for note, count in self.notes.most_common())
        if self.image_fields:
            out.append(
                f"image-level columns (float, empty where a record has none): {', '.join(self.image_columns())}"
            )
        for reason, count in self.dropped.most_common():
            out.append(f"dropped {reason}: {count}")
        if self.ignored_labels:
            labels = ", ".join(f"{label!r} {n}" for label, n in self.ignored_labels.most_common())
            out.append(f"artifacts dropped by the label map (ignore): {labels}")
        for label, info in self.unknown_labels.items():
            out.append(f"unknown label {label!r}: {info['count']} time(s), e.g. in {', '.join(info['records'][:3])}")
        return out


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
    options: dict[str, Any] = field(default_factory=dict)  # format options (field datasets: see field.py)
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


def _link_outside(root: Path, path: Path) -> Path | None:
    """:func:`synartifact.utils.link_outside`: the one confinement rule, shared with ``synartifact repair``."""
    from synartifact.utils import link_outside

    return link_outside(root, path)


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


def _load_json(annotations: Path, what: str) -> Any:
    """A JSON annotation file: UTF-8 (with or without a BOM), or UTF-16 when a BOM says so (LOKI's exports)."""
    fname = annotations.name
    raw = annotations.read_bytes()
    encoding = "utf-16" if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    try:
        return json.loads(raw.decode(encoding))
    except UnicodeDecodeError as err:
        label = "utf-16" if encoding == "utf-16" else "UTF-8"
        raise DatasetValidationError(
            [Problem(fname, "", "", f"not valid {label} (byte 0x{err.object[err.start]:02x} at offset {err.start})")],
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


class _Dropped(Exception):
    """A region that cannot become a box, with the reason (reported, not rejected)."""
