"""From annotations to a ``DatasetDict``: the format's reader, then each record's image and boxes checked, then the split.

Every problem of every record is collected before one error is raised (or the record rejected with ``skip_invalid``).
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from PIL import Image, UnidentifiedImageError

from synartifact.data.importers.artiagent import _read_artiagent
from synartifact.data.importers.coco import _read_coco
from synartifact.data.importers.field import FIELD_FORMATS, format_label_map
from synartifact.data.importers.had import _read_had
from synartifact.data.importers.jsonl import _read_jsonl
from synartifact.data.importers.labelstudio import _decode_ls_rle, _read_labelstudio
from synartifact.data.importers.loki import _read_loki
from synartifact.data.importers.pal4vst import _read_pal4vst
from synartifact.data.importers.records import (
    ANNOTATORS,
    IGNORE,
    BuildReport,
    Record,
    _Context,
    _Dropped,
    _Labels,
    _link_outside,
)
from synartifact.data.importers.release import _read_synartifact
from synartifact.data.importers.richhf import _read_richhf
from synartifact.data.importers.synthscars import _read_synthscars
from synartifact.data.schema import (
    BBOX_TOLERANCE,
    KINDLESS,
    DatasetValidationError,
    Problem,
    bbox_to_unit,
    get_features,
    normalize_bbox,
)
from synartifact.images import DEFAULT_MAX_PIXELS, to_rgb

FORMATS: tuple[str, ...] = ("synartifact", "jsonl", "coco", "labelstudio", *FIELD_FORMATS)


class BuildResult(NamedTuple):
    """What :func:`build_dataset` returns: the ``DatasetDict``, the rejected records and the build report."""

    dataset: Any
    rejected: list[dict[str, Any]]
    report: BuildReport


_READERS = {
    "synartifact": _read_synartifact,
    "jsonl": _read_jsonl,
    "coco": _read_coco,
    "labelstudio": _read_labelstudio,
    "synthscars": _read_synthscars,
    "had": _read_had,
    "loki": _read_loki,
    "artiagent": _read_artiagent,
    "richhf": _read_richhf,
    "pal4vst": _read_pal4vst,
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
    options: Mapping[str, Any] | None = None,
) -> tuple[list[Record], list[Problem], set[str] | None]:
    """Parse one input into records (images not yet opened), file-level problems and the fixed test ids."""
    annotations, ctx = _make_context(fmt, annotations, images, annotator, allow_outside_images)
    ctx.options = dict(options or {})  # the field formats' options, as build_dataset's
    return _READERS[fmt](annotations, ctx)


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


def _file_key(path: Path | None) -> tuple[int, int] | None:
    """What identifies an image file whatever the path (links, ``..``): its device and inode; None if absent."""
    try:
        stat = path.stat() if path is not None else None
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino) if stat is not None and stat.st_ino else None


def _finish(rec: Record, ctx: _Context, index: int) -> dict[str, Any] | None:
    """Open the record's image, convert its artifacts; append problems to ``rec.problems``; the row if valid."""
    image = None
    width = height = 0
    local = rec.report
    escaped = None
    if rec.image_path is not None and ctx.images is not None and not ctx.allow_outside:
        escaped = _link_outside(ctx.images, rec.image_path)
    if escaped is not None:
        rec.problems.append(
            Problem(
                rec.file,
                rec.key,
                "image",
                f"{rec.image_path} is a symbolic link (or lies in a linked folder) that leads outside --images "
                f"{ctx.images}, to {escaped}: image files must stay inside it (pass --allow-outside-images / "
                "allow_outside_images=True to read it anyway)",
            )
        )
    elif rec.image_path is not None:
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
        label = KINDLESS if art.get("kindless") else ctx.labels.resolve(rec, art)
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
        local.crowd_regions += bool(art.get("crowd"))
        item = {"label": label, "bbox": bbox, "caption": art["caption"]}
        if art.get("mask") is not None:
            item["mask"] = art["mask"]
        elif art.get("polygons"):
            from synartifact.data.masks import encode_rle, polygon_mask

            item["mask"] = encode_rle(polygon_mask(art["polygons"], width, height))
        artifacts.append(item)
    if rec.problems or image is None:
        return None
    return {
        **rec.report.image_fields.get(rec.image_id, {}),
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
    kinds_from_captions: bool = False,
    heatmap_threshold: int | None = None,
    min_region_pixels: int | None = None,
    masks: bool = True,
    skip_crowd: bool = False,
) -> BuildResult:
    """Read annotations in ``fmt`` (one of :data:`FORMATS`) into a ``DatasetDict`` with ``train`` / ``test``.

    Returns a :class:`BuildResult` ``(dataset, rejected, report)``: ``rejected`` lists ``{"record", "file",
    "image_id", "problems"}`` per skipped record (empty unless ``skip_invalid``), ``report`` counts what was
    converted, clipped or dropped. Without ``skip_invalid`` any problem raises one :class:`DatasetValidationError`
    listing all of them (an unknown label once, with its count). ``label_map`` maps source labels to kinds (see
    :func:`load_label_map`); ``annotator`` (``"first"`` / ``"all"``) picks Label Studio annotations; images over
    ``max_pixels`` (0/None: no limit) are record problems. The test split is the release's ``eval.txt`` or the
    JSONL ``split`` fields when given, else a seeded stratified split. The field's formats (SynthScars, HAD, LOKI,
    ArtiAgent, RichHF-18K, PAL4VST) use their preset label map (``field.LABEL_PRESETS``) under ``label_map``;
    ``kinds_from_captions``, ``heatmap_threshold`` (RichHF, 0-255), ``min_region_pixels`` and ``masks`` (keep
    each polygon / mask region in the artifact's ``mask``; default True) are theirs. Image-level scores (RichHF)
    become float columns. ``skip_crowd`` (COCO) leaves ``iscrowd`` regions out, and images that had only those;
    the report counts both (without it they are imported as artifacts and counted as ``crowd_regions``).
    """
    from datasets import Dataset, DatasetDict
    from tqdm.auto import tqdm

    from synartifact.data.splits import stratified_split

    if skip_crowd and fmt != "coco":
        raise ValueError(f"--skip-crowd (skip_crowd) applies to --format coco (its iscrowd regions), not {fmt}")
    labels = _Labels(format_label_map(fmt, label_map))  # a field format's preset under the user's map
    annotations, ctx = _make_context(fmt, annotations, images, annotator, allow_outside_images)
    ctx.labels, ctx.max_pixels = labels, max_pixels
    # the field formats' options (importers/field.py): None keeps the default
    opts = {"heatmap_threshold": heatmap_threshold, "min_region_pixels": min_region_pixels}
    ctx.options = {
        "kinds_from_captions": kinds_from_captions,
        "masks": masks,
        "skip_crowd": skip_crowd,
        **{k: v for k, v in opts.items() if v is not None},
    }
    report = ctx.report
    report.format = fmt
    records, file_problems, test_ids = _READERS[fmt](annotations, ctx)
    rows, rejected, all_problems = [], [], list(file_problems)
    seen: dict[str, str] = {}
    seen_files: dict[tuple[int, int], Record] = {}  # (device, inode) -> the first record of that image file
    for index, rec in enumerate(tqdm(records, desc=f"Checking {fmt} records", unit="img", disable=not progress)):
        if rec.image_id in seen:
            rec.problems.append(
                Problem(rec.file, rec.key, "image_id", f"duplicate id {rec.image_id!r} (also {seen[rec.image_id]})")
            )
        else:
            seen[rec.image_id] = rec.key
        file_key = _file_key(rec.image_path)
        first = seen_files.setdefault(file_key, rec) if file_key is not None else rec
        if first is not rec and first.image_id != rec.image_id:
            rec.problems.append(
                Problem(
                    rec.file,
                    rec.key,
                    "image",
                    f"the image file {rec.image_path} is also the image of {first.key} (image_id {first.image_id!r}): "
                    "one image under two ids could land in both the train and the test split; annotate it once",
                )
            )
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
    from synartifact.data.schema import _BASE_COLUMNS

    with_masks = any("mask" in a for r in rows for a in r["artifacts"])
    if with_masks:
        for r in rows:
            for a in r["artifacts"]:
                a.setdefault("mask", None)
    extra = sorted({k for r in rows for k in r} - set(_BASE_COLUMNS))
    for r in rows:
        for name in extra:
            r.setdefault(name, None)
    features = get_features(masks=with_masks, image_columns=extra)
    ds = Dataset.from_list(rows, features=features)
    row_labels = [[a["label"] for a in r["artifacts"]] for r in rows]
    train, test = stratified_split(
        row_labels, test_size=test_size, seed=seed, ids=[r["image_id"] for r in rows], test_ids=test_ids
    )
    return BuildResult(DatasetDict({"train": ds.select(train), "test": ds.select(test)}), rejected, report)
