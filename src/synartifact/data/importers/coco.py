"""The COCO detection JSON reader: images, annotations (pixel ``xywh`` boxes or polygons) and categories."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from synartifact.data.importers.records import (
    Record,
    _Context,
    _is_absolute,
    _load_json,
    _local_image,
    _polygon_box,
    _text,
)
from synartifact.data.schema import DatasetValidationError, Problem

# the build report's reasons for what ``skip_crowd`` (``--skip-crowd``) leaves out
SKIPPED_CROWD = "COCO iscrowd regions (--skip-crowd)"
ONLY_CROWD = "images whose regions were all iscrowd (--skip-crowd): not clean, so left out"


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

    seen_ann, crowded = set(), set()
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
        if ann.get("iscrowd") and ctx.options.get("skip_crowd"):
            ctx.report.dropped[SKIPPED_CROWD] += 1
            crowded.add(id(rec))
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
            "crowd": bool(ann.get("iscrowd")),  # imported like any region (unless skip_crowd), and counted
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
    kept = []
    for rec in records.values():
        if id(rec) in crowded and not rec.artifacts and not rec.problems:
            # its regions were all skipped: it is not a clean image, so it is left out, not labelled clean
            ctx.report.dropped[ONLY_CROWD] += 1
            continue
        kept.append(rec)
    return kept, problems, None
