"""The HAD (HADM) reader: ``annotations/<split>/<stem>.json`` with body-part boxes (corners sometimes swapped)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from synartifact.data.importers.field import locate_image, number, records_by_split, split_of
from synartifact.data.importers.records import Record, _Context, _is_absolute, _load_json, _local_image
from synartifact.data.schema import Problem

LEVELS = ("mild", "severe")


def _read_had(annotations: Path, ctx: _Context) -> tuple[list[Record], list[Problem], set[str] | None]:
    files = [annotations] if annotations.is_file() else sorted(annotations.rglob("*.json"))
    if not files:
        raise FileNotFoundError(f"--annotations {annotations}: no HAD annotation (*.json) under it")
    return records_by_split(annotations, files, annotations.is_file(), lambda p, n, sp: _record(ctx, p, n, sp))


def _record(ctx: _Context, path: Path, fname: str, split: str | None) -> Record:
    rec = Record(fname, PurePosixPath(fname).stem, PurePosixPath(fname).with_suffix("").as_posix(), None)
    rec.split = split_of(split) if split else None
    try:
        data = _load_json(path, "HAD file")
    except Exception as err:  # noqa: BLE001 - a bad file is this record's problem, the others are still read
        rec.problems.append(Problem(fname, rec.key, "", str(getattr(err, "problems", [err])[0])))
        return rec
    rec.raw = data
    image = data.get("image") if isinstance(data, dict) else None
    if not isinstance(image, dict) or not isinstance(image.get("file_name"), str):
        rec.problems.append(Problem(fname, rec.key, "image", "required: {file_name, height, width}"))
        return rec
    file_name = image["file_name"]
    if _is_absolute(file_name):
        _, _, outside = _local_image(ctx, file_name)
        rec.problems.append(Problem(fname, rec.key, "image.file_name", outside or "an absolute path"))
    else:
        refs = [f"{split}/{file_name}", file_name] if split else [file_name]
        locate_image(ctx, rec, "image.file_name", refs, PurePosixPath(file_name).name)
    w, h = image.get("width"), image.get("height")
    if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0:
        rec.declared_size = (w, h)
    anns = data.get("annotation", [])
    if not isinstance(anns, list):
        rec.problems.append(Problem(fname, rec.key, "annotation", "must be a list of {body_parts, level, bbox}"))
        anns = []
    for i, ann in enumerate(anns):
        where = f"annotation[{i}]"
        if not isinstance(ann, dict):
            rec.problems.append(Problem(fname, rec.key, where, "must be an object {body_parts, level, bbox}"))
            continue
        parts = ann.get("body_parts")
        parts = [parts] if isinstance(parts, str) else parts
        if not isinstance(parts, list) or not parts or not all(isinstance(p, str) and p for p in parts):
            rec.problems.append(
                Problem(fname, rec.key, f"{where}.body_parts", "required: a label or a list of labels")
            )
            continue
        level = ann.get("level")
        if level is not None and level not in LEVELS:
            rec.problems.append(Problem(fname, rec.key, f"{where}.level", f"{level!r} must be 'mild' or 'severe'"))
        box: Any = ann.get("bbox")
        if isinstance(box, list) and len(box) == 4 and all(number(v) for v in box):
            if box[0] > box[2] or box[1] > box[3]:
                rec.report.notes["had boxes with swapped corners (normalized)"] += 1
        for part in parts:
            rec.artifacts.append(
                {
                    "label": part,
                    "bbox": box,
                    "caption": f"{level} {part}" if level else part,
                    "fmt": "xyxy",
                    "units": "pixels",
                    "field": where,
                    "label_field": f"{where}.body_parts",
                }
            )
    humans = data.get("human")
    if isinstance(humans, list) and humans:
        rec.report.dropped["had human boxes (where the people are, not artifacts)"] += len(humans)
    return rec
