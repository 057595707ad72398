"""The LOKI reader (image part): one JSON file in UTF-16 with a BOM; regions ``[x, y, w, h]`` with a description."""

from __future__ import annotations

from pathlib import Path

from synartifact.data.importers.field import add_kindless, number
from synartifact.data.importers.records import Record, _Context, _load_json, _local_image, _text
from synartifact.data.schema import DatasetValidationError, Problem


def _read_loki(annotations: Path, ctx: _Context) -> tuple[list[Record], list[Problem], set[str] | None]:
    if not annotations.is_file():
        raise FileNotFoundError(f"--annotations {annotations} is not a file: give LOKI's JSON file")
    fname = annotations.name
    data = _load_json(annotations, "LOKI file")
    if isinstance(data, dict):
        data = list(data.values())
    if not isinstance(data, list):
        raise DatasetValidationError(
            [Problem(fname, "", "", "must be a list of {image_path, problems}")], f"LOKI file {annotations}"
        )
    records, problems = [], []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("image_path"), str) or not item["image_path"]:
            problems.append(Problem(fname, f"[{i}]", "image_path", "required: the image path relative to --images"))
            continue
        ref = item["image_path"]
        path, image_id, outside = _local_image(ctx, ref)
        rec = Record(fname, f"[{i}] ({ref})", image_id, None if outside else path, raw=item)
        if outside:
            rec.problems.append(Problem(fname, rec.key, "image_path", outside))
        found = item.get("problems") or {}
        if not isinstance(found, dict):
            rec.problems.append(Problem(fname, rec.key, "problems", "must be an object {regional, global}"))
            found = {}
        glob = found.get("global") or []
        if not isinstance(glob, list):
            rec.problems.append(Problem(fname, rec.key, "problems.global", "must be a list of {desc}"))
            glob = []
        rec.other_artifacts_caption = "; ".join(
            _text(g.get("desc")) if isinstance(g, dict) else _text(g) for g in glob if g
        )
        regional = found.get("regional") or []
        if not isinstance(regional, list):
            rec.problems.append(Problem(fname, rec.key, "problems.regional", "must be a list of {region, desc}"))
            regional = []
        for j, reg in enumerate(regional):
            where = f"problems.regional[{j}]"
            if not isinstance(reg, dict) or "region" not in reg:
                rec.problems.append(Problem(fname, rec.key, where, "must be an object {region: [x, y, w, h], desc}"))
                continue
            box = reg["region"]
            if not isinstance(box, list) or len(box) != 4 or not all(number(v) for v in box):
                rec.problems.append(
                    Problem(fname, rec.key, f"{where}.region", f"must be [x, y, w, h] pixels, got {box!r}")
                )
                continue
            art = {"bbox": box, "caption": _text(reg.get("desc")), "fmt": "xywh", "units": "pixels", "field": where}
            add_kindless(ctx, rec, "loki", art)
        records.append(rec)
    return records, problems, None
