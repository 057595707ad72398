"""The JSONL reader: one JSON object per line and image, paths relative to ``--images``."""

from __future__ import annotations

import json
from pathlib import Path

from synartifact.data.importers.records import Record, _Context, _id_from, _is_absolute, _local_image, _text
from synartifact.data.schema import Problem, detect_bbox_units


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
