"""The ArtiAgent / ArtiBench reader: ``{image_name, global_explanation, bboxes: [{bbox, category, caption}]}``.

Boxes are ``[x1, y1, x2, y2]``, in pixels in some files and normalized 0-1 in others: the unit is detected per
record (every coordinate of its boxes in [0, 1]: normalized) and counted per file in the build report.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from synartifact.data.importers.field import locate_image, number
from synartifact.data.importers.records import Record, _Context, _is_absolute, _load_json, _local_image, _text
from synartifact.data.schema import DatasetValidationError, Problem, detect_bbox_units


def _read_artiagent(annotations: Path, ctx: _Context) -> tuple[list[Record], list[Problem], set[str] | None]:
    files = [annotations] if annotations.is_file() else sorted(annotations.rglob("*.json"))
    if not files:
        raise FileNotFoundError(f"--annotations {annotations}: no ArtiAgent annotation (*.json) under it")
    records: list[Record] = []
    problems: list[Problem] = []
    for path in files:
        fname = path.relative_to(annotations).as_posix() if annotations.is_dir() else path.name
        try:
            data = _load_json(path, "ArtiAgent file")
        except DatasetValidationError as err:
            problems.extend(err.problems)
            continue
        items = data if isinstance(data, list) else [data]
        for i, item in enumerate(items):
            key = f"[{i}]" if isinstance(data, list) else ""
            if not isinstance(item, dict) or not isinstance(item.get("image_name"), str) or not item["image_name"]:
                problems.append(Problem(fname, key or "(file)", "image_name", "required: the image's file name"))
                continue
            records.append(_record(ctx, fname, f"{key} ({item['image_name']})".strip(), item))
    return records, problems, None


def _record(ctx: _Context, fname: str, key: str, item: dict[str, Any]) -> Record:
    name = item["image_name"]
    rec = Record(fname, key, PurePosixPath(name).stem, None, raw=item)
    if _is_absolute(name):
        _, _, outside = _local_image(ctx, name)
        rec.problems.append(Problem(fname, key, "image_name", outside or "an absolute path"))
    else:
        locate_image(ctx, rec, "image_name", [name], PurePosixPath(name).name)
    rec.other_artifacts_caption = _text(item.get("global_explanation"))
    boxes = item.get("bboxes", [])
    if not isinstance(boxes, list):
        rec.problems.append(Problem(fname, key, "bboxes", "must be a list of {bbox, category, caption}"))
        boxes = []
    values = []
    for i, entry in enumerate(boxes):
        where = f"bboxes[{i}]"
        if not isinstance(entry, dict) or "bbox" not in entry:
            rec.problems.append(
                Problem(fname, key, where, "must be an object {bbox: [x1, y1, x2, y2], category, caption}")
            )
            continue
        if entry.get("category") in (None, ""):
            rec.problems.append(
                Problem(fname, key, f"{where}.category", "required: addition, removal, distortion or fusion")
            )
            continue
        box = entry["bbox"]
        if isinstance(box, list):
            values.extend(v for v in box if number(v))
        rec.artifacts.append(
            {
                "label": entry["category"],
                "bbox": box,
                "caption": _text(entry.get("caption")),
                "fmt": "xyxy",
                "units": None,
                "field": where,
                "label_field": f"{where}.category",
            }
        )
    units = detect_bbox_units(values)
    for art in rec.artifacts:
        art["units"] = units
    if rec.artifacts:
        shown = "normalized 0-1" if units == "normalized" else "pixels"
        rec.report.notes[f"artiagent records with boxes in {shown} (detected) in {fname}"] += 1
    return rec
