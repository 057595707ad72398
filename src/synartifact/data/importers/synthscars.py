"""The SynthScars (LEGION) reader: ``{train,test}/annotations/{train,test}.json`` of one-key dicts, COCO polygons."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from synartifact.data.importers.field import add_kindless, locate_image, number, split_of
from synartifact.data.importers.records import Record, _Context, _is_absolute, _load_json, _polygon_box, _text
from synartifact.data.schema import DatasetValidationError, Problem


def _annotation_files(annotations: Path) -> list[tuple[Path, str | None]]:
    if annotations.is_file():
        split = annotations.stem if annotations.stem in ("train", "test") else None
        return [(annotations, split)]
    files = []
    for path in sorted(annotations.glob("*/annotations/*.json")):
        files.append((path, split_of(path.parent.parent.name)))
    return files


def _read_synthscars(annotations: Path, ctx: _Context) -> tuple[list[Record], list[Problem], set[str] | None]:
    files = _annotation_files(annotations)
    if not files:
        raise FileNotFoundError(
            f"--annotations {annotations}: no {{train,test}}/annotations/*.json under it; give the SynthScars root "
            "or one annotation JSON file"
        )
    records: list[Record] = []
    problems: list[Problem] = []
    for path, split in files:
        fname = path.relative_to(annotations).as_posix() if annotations.is_dir() else path.name
        data = _load_json(path, "SynthScars file")
        if isinstance(data, dict):
            data = [{k: v} for k, v in data.items()]
        if not isinstance(data, list):
            raise DatasetValidationError(
                [Problem(fname, "", "", "must be a list of {annotation_id: {caption, img_file_name, refs}}")],
                f"SynthScars file {path}",
            )
        for i, item in enumerate(data):
            if not isinstance(item, dict) or len(item) != 1 or not isinstance(next(iter(item.values())), dict):
                problems.append(Problem(fname, f"[{i}]", "", "must be a one-key object {annotation_id: {...}}"))
                continue
            ann_id, entry = next(iter(item.items()))
            records.append(_record(ctx, fname, f"[{i}] ({ann_id})", entry, split))
    test_ids = None
    if any(r.split is not None for r in records):
        test_ids = {r.image_id for r in records if r.split == "test"}
    return records, problems, test_ids


def _record(ctx: _Context, fname: str, key: str, entry: dict[str, Any], split: str | None) -> Record:
    rec = Record(fname, key, "", None, raw=entry, split=split)
    file_name = entry.get("img_file_name")
    if not isinstance(file_name, str) or not file_name:
        rec.problems.append(Problem(fname, key, "img_file_name", "required: the image's file name"))
        rec.image_id = key
    elif _is_absolute(file_name):
        # a path of the authors' machine: only its file name is looked up, inside --images (never read outside)
        locate_image(ctx, rec, "img_file_name", [], PurePosixPath(file_name.replace("\\", "/")).name)
        rec.report.notes["synthscars absolute img_file_name resolved by its file name inside --images"] += 1
    else:
        refs = [f"{split}/images/{file_name}", f"images/{file_name}", file_name] if split else [file_name]
        locate_image(ctx, rec, "img_file_name", refs, PurePosixPath(file_name).name)
    rec.image_id = rec.image_id or key
    rec.prompt = _text(entry.get("caption"))
    refs_list = entry.get("refs", [])
    if not isinstance(refs_list, list):
        rec.problems.append(Problem(fname, key, "refs", "must be a list of {sentence, explanation, segmentation}"))
        refs_list = []
    for j, ref in enumerate(refs_list):
        where = f"refs[{j}]"
        if not isinstance(ref, dict):
            rec.problems.append(Problem(fname, key, where, "must be an object {sentence, explanation, segmentation}"))
            continue
        sentence, explanation = _text(ref.get("sentence")).strip(), _text(ref.get("explanation")).strip()
        if not explanation:
            rec.report.notes["synthscars refs with an empty explanation (caption: the sentence alone)"] += 1
        caption = f"{sentence}: {explanation}" if sentence and explanation else sentence or explanation
        seg, bbox = ref.get("segmentation"), ref.get("bbox")
        box = _polygon_box(seg) if seg is not None else None
        flat = [v for item in seg for v in (item if isinstance(item, list) else [item])] if box else []
        art: dict[str, Any] = {"caption": caption, "units": "pixels", "field": where}
        if box is not None and len(flat) >= 6:
            art.update(bbox=box, fmt="xyxy", shape="polygon")
            if ctx.options.get("masks", True):  # rasterized at the image's size once it is opened (build._finish)
                pairs = all(isinstance(i, list) for i in seg) and all(len(i) == 2 for i in seg)
                nested = all(isinstance(i, list) for i in seg) and not pairs
                art["polygons"] = [list(p) for p in seg] if nested else [flat]
        elif box is not None:
            rec.problems.append(
                Problem(fname, key, f"{where}.segmentation", f"a polygon needs 3 points or more, got {len(flat) // 2}")
            )
            continue
        elif isinstance(bbox, list) and len(bbox) == 4 and all(number(v) for v in bbox):
            art.update(bbox=bbox, fmt="xywh")
        else:
            rec.problems.append(
                Problem(
                    fname,
                    key,
                    f"{where}.segmentation",
                    "required: a polygon [[x1, y1, x2, y2, ...]] in pixels (its bbox is null)",
                )
            )
            continue
        if ref.get("category") not in (None, ""):
            art["label"] = ref["category"]
            rec.artifacts.append(art)
        else:
            add_kindless(ctx, rec, "synthscars", art)
    return rec
