"""Build a SynArtifact dataset from real annotations: the SynArtifact-1K release, JSONL, COCO or Label Studio.

Every importer collects *all* problems (missing or corrupt image, unknown label, degenerate box or one outside
the image, duplicate id, malformed record), each naming the file, the record and the field, and raises one
:class:`~synartifact.data.schema.DatasetValidationError` listing them. With ``skip_invalid=True`` the valid
records are kept and every rejected one is returned (``synartifact dataset build`` writes them to
``rejected.jsonl`` in the output folder): nothing is silently lost. A record with one bad artifact is
rejected as a whole, so that an image never looks cleaner than it was annotated.

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
    One JSON object per line, one line per image; images relative to ``--images``::

        {"image": "cats/0001.png",              # required: path relative to --images
         "image_id": "cat-0001",                # optional: defaults to the path without extension
         "prompt": "a cat on a sofa",           # optional
         "generator": "sdxl",                   # optional
         "other_artifacts_caption": "",         # optional: artifacts without a box
         "split": "test",                       # optional: "train" / "test"; if any record has it, it decides
         "bbox_format": "xyxy",                 # optional: "xyxy" (corners, any order, default) or "xywh"
         "bbox_units": "pixels",                # optional: "pixels" / "normalized"; default: detected per file
         "artifacts": [{"label": "localized_blur", "bbox": [10, 20, 110, 90], "caption": "blurred paw"}]}

    ``label`` is a slug, a display name ("Localized Blur", loose spellings too) or a 0-based index. Without
    ``bbox_units``, a file whose box coordinates all lie in [0, 1] is read as normalized, otherwise as pixels.

``coco``
    A COCO detection JSON: ``images`` (``id``, ``file_name``, ``width``, ``height``, optional ``prompt``,
    ``generator``, ``other_artifacts_caption``), ``annotations`` (``id``, ``image_id``, ``category_id``,
    ``bbox`` = ``[x, y, width, height]`` in pixels, caption in ``caption`` or ``attributes.caption``) and
    ``categories`` (``id``, ``name``; names matched to the taxonomy, loose spellings allowed).
    Images without annotations are clean images.

``labelstudio``
    A Label Studio JSON export (a list of tasks). Per task: ``data.image`` (the file name is looked up in
    ``--images``, also without Label Studio's ``<hash>-`` upload prefix), optional ``data.prompt`` /
    ``data.generator``; the first non-cancelled annotation's ``result`` holds ``rectanglelabels`` regions
    (``x``, ``y``, ``width``, ``height`` in percent, one label) and ``textarea`` regions: one with the same
    region ``id`` as a rectangle is its caption, the others form ``other_artifacts_caption``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from synartifact.data.schema import (
    DatasetValidationError,
    Problem,
    detect_bbox_units,
    get_features,
    normalize_bbox,
    resolve_label,
)

__all__ = ["FORMATS", "IMAGE_EXTENSIONS", "Record", "build_dataset", "read_records"]

FORMATS: tuple[str, ...] = ("synartifact", "jsonl", "coco", "labelstudio")
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


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
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    split: str | None = None
    declared_size: tuple[int, int] | None = None
    problems: list[Problem] = field(default_factory=list)
    raw: Any = None


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
        if not path.suffix:
            for ext in IMAGE_EXTENSIONS:
                for variant in (path.with_suffix(ext), path.with_suffix(ext.upper())):
                    if variant.is_file():
                        return variant
    return None


# --------------------------------------------------------------------------- the release
def _read_synartifact(annotations: Path, images: Path | None) -> tuple[list[Record], list[Problem], set[str] | None]:
    root = annotations
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
def _read_jsonl(annotations: Path, images: Path | None) -> tuple[list[Record], list[Problem], set[str] | None]:
    if not annotations.is_file():
        raise FileNotFoundError(
            f"--annotations {annotations} is not a file: give the JSONL file, one JSON record per line"
        )
    base = images if images is not None else annotations.parent
    fname = annotations.name
    records, problems = [], []
    for n, line in enumerate(annotations.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        key = f"line {n}"
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
        image_id = str(data.get("image_id") or Path(image).with_suffix("").as_posix())
        rec = Record(fname, f"{key} ({image_id})", image_id, base / image, raw=data)
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


# --------------------------------------------------------------------------- COCO
def _read_coco(annotations: Path, images: Path | None) -> tuple[list[Record], list[Problem], set[str] | None]:
    fname = annotations.name
    try:
        data = json.loads(annotations.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"--annotations {annotations} does not exist: give the COCO JSON file") from None
    except json.JSONDecodeError as err:
        raise DatasetValidationError(
            [Problem(fname, "", "", f"not valid JSON ({err})")], f"COCO file {annotations}"
        ) from None
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
    base = images if images is not None else annotations.parent

    categories: dict[Any, Any] = {}  # id -> class index, or a Problem for unknown names
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            problems.append(Problem(fname, f"categories[{i}]", "", "must be an object with id and name"))
            continue
        if cat["id"] in categories:
            problems.append(Problem(fname, f"categories[{i}] (id {cat['id']})", "id", "duplicate category id"))
            continue
        try:
            categories[cat["id"]] = resolve_label(cat["name"])
        except ValueError as err:
            categories[cat["id"]] = Problem(fname, f"category {cat['id']}", "name", str(err))

    records: dict[Any, Record] = {}
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img or not isinstance(img.get("file_name"), str):
            problems.append(Problem(fname, f"images[{i}]", "", "must be an object with id and file_name"))
            continue
        image_id = Path(img["file_name"]).with_suffix("").as_posix()
        if img["id"] in records:
            # both entries are rejected: the annotations cannot be told apart
            problems.append(Problem(fname, f"images[{i}] (id {img['id']})", "id", "duplicate image id"))
            first = records[img["id"]]
            first.problems.append(Problem(fname, first.key, "id", f"duplicate image id (again in images[{i}])"))
            continue
        rec = Record(fname, f"image {img['id']} ({img['file_name']})", image_id, base / img["file_name"], raw=img)
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
        if "bbox" not in ann:
            rec.problems.append(Problem(fname, rec.key, f"{key}.bbox", "required: [x, y, width, height] in pixels"))
            continue
        cat = categories.get(ann.get("category_id"))
        if cat is None:
            rec.problems.append(
                Problem(
                    fname,
                    rec.key,
                    f"{key}.category_id",
                    f"{ann.get('category_id')!r} is not a category id ({', '.join(map(str, categories))})",
                )
            )
        elif isinstance(cat, Problem):
            rec.problems.append(
                Problem(fname, rec.key, f"{key}.category_id", f"category {ann.get('category_id')!r}: {cat.message}")
            )
        caption = ann.get("caption")
        if caption is None and isinstance(ann.get("attributes"), dict):
            caption = ann["attributes"].get("caption")
        # a bad category is already reported; the box is still checked so that every problem shows at once
        rec.artifacts.append(
            {
                "label": cat if isinstance(cat, int) else None,
                "bbox": ann["bbox"],
                "caption": _text(caption),
                "fmt": "xywh",
                "units": "pixels",
                "field": key,
                "label_checked": not isinstance(cat, int),
            }
        )
    return list(records.values()), problems, None


# --------------------------------------------------------------------------- Label Studio
def _read_labelstudio(annotations: Path, images: Path | None) -> tuple[list[Record], list[Problem], set[str] | None]:
    fname = annotations.name
    try:
        data = json.loads(annotations.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"--annotations {annotations} does not exist: give the Label Studio JSON export"
        ) from None
    except json.JSONDecodeError as err:
        raise DatasetValidationError(
            [Problem(fname, "", "", f"not valid JSON ({err})")], f"Label Studio file {annotations}"
        ) from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise DatasetValidationError(
            [Problem(fname, "", "", "must be a list of tasks (Label Studio JSON export)")],
            f"Label Studio file {annotations}",
        )
    base = images if images is not None else annotations.parent
    index: dict[str, Path] = {}
    if base.is_dir():
        for p in sorted(base.rglob("*")):
            if p.suffix.lower() in IMAGE_EXTENSIONS:
                index.setdefault(p.name, p)
    records, problems = [], []
    for t, task in enumerate(data):
        key = f"task {task.get('id', t) if isinstance(task, dict) else t}"
        if (
            not isinstance(task, dict)
            or not isinstance(task.get("data"), dict)
            or not isinstance(task["data"].get("image"), str)
        ):
            problems.append(Problem(fname, key, "data.image", "required: each task needs data.image"))
            continue
        name = task["data"]["image"].split("?")[0].rsplit("/", 1)[-1]
        path = index.get(name)
        if path is None and "-" in name:
            path = index.get(name.split("-", 1)[1])  # Label Studio uploads are stored as <hash>-<file name>
        image_id = Path(path.name if path else name.split("-", 1)[-1]).with_suffix("").as_posix()
        rec = Record(fname, f"{key} ({name})", image_id, path, raw=task)
        rec.prompt, rec.generator = _text(task["data"].get("prompt")), _text(task["data"].get("generator"))
        records.append(rec)
        if path is None:
            rec.problems.append(Problem(fname, rec.key, "data.image", f"no file {name} in {base}"))
        anns = [
            a
            for a in task.get("annotations", task.get("completions", [])) or []
            if isinstance(a, dict) and not a.get("was_cancelled")
        ]
        if not anns:
            continue
        result = anns[0].get("result", [])
        if not isinstance(result, list):
            rec.problems.append(Problem(fname, rec.key, "annotations[0].result", "must be a list of regions"))
            continue
        rects, texts = {}, {}
        for r, region in enumerate(result):
            where = f"result[{r}]"
            if not isinstance(region, dict) or not isinstance(region.get("value"), dict):
                rec.problems.append(Problem(fname, rec.key, where, "must be a region object with a value"))
                continue
            value, rtype = region["value"], region.get("type")
            if rtype == "rectanglelabels":
                labels = value.get("rectanglelabels") or []
                if len(labels) != 1:
                    rec.problems.append(
                        Problem(
                            fname,
                            rec.key,
                            f"{where}.value.rectanglelabels",
                            f"needs exactly one label, got {labels!r}",
                        )
                    )
                    continue
                if value.get("rotation", 0):
                    rec.problems.append(
                        Problem(
                            fname,
                            rec.key,
                            f"{where}.value.rotation",
                            "rotated boxes are not supported: use rotation 0",
                        )
                    )
                    continue
                ow, oh = region.get("original_width"), region.get("original_height")
                if isinstance(ow, int) and isinstance(oh, int):
                    rec.declared_size = (ow, oh)
                rects[region.get("id", f"#{r}")] = {
                    "label": labels[0],
                    "bbox": [value.get("x"), value.get("y"), value.get("width"), value.get("height")],
                    "caption": "",
                    "fmt": "xywh",
                    "units": "percent",
                    "field": f"{where} (id {region.get('id')})",
                }
            elif rtype == "textarea":
                texts.setdefault(region.get("id"), []).append(_text(value.get("text")))
        other = []
        for rid, parts in texts.items():
            if rid in rects:
                rects[rid]["caption"] = " ".join(parts)
            else:
                other.extend(parts)
        rec.other_artifacts_caption = " ".join(other)
        rec.artifacts.extend(rects.values())
    return records, problems, None


_READERS = {
    "synartifact": _read_synartifact,
    "jsonl": _read_jsonl,
    "coco": _read_coco,
    "labelstudio": _read_labelstudio,
}


def read_records(fmt: str, annotations: str | Path, images: str | Path | None = None):
    """Parse one input into records (images not yet opened), file-level problems and the fixed test ids."""
    if fmt not in _READERS:
        raise ValueError(f"Unknown format {fmt!r}: valid formats are {', '.join(FORMATS)}")
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
    return _READERS[fmt](annotations, images)


def _load_image(path: Path) -> tuple[bytes, int, int]:
    """The image's bytes (re-encoded as PNG unless RGB already) and its size; raises ValueError when unreadable."""
    raw = path.read_bytes()
    try:
        with Image.open(io.BytesIO(raw)) as im:
            im.load()
            if im.mode == "RGB" and im.format in ("JPEG", "PNG", "WEBP"):
                return raw, im.width, im.height
            rgb = im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"{path.name} is not a readable image ({err})") from None
    buf = io.BytesIO()
    rgb.save(buf, format="PNG")
    return buf.getvalue(), rgb.width, rgb.height


def _finish(rec: Record) -> dict[str, Any] | None:
    """Open the record's image, convert its artifacts; append problems to ``rec.problems``; the row if valid."""
    image = None
    width = height = 0
    if rec.image_path is not None:
        if not rec.image_path.is_file():
            rec.problems.append(Problem(rec.file, rec.key, "image", f"missing image file {rec.image_path}"))
        else:
            try:
                data, width, height = _load_image(rec.image_path)
                image = {"bytes": data, "path": rec.image_path.name}
            except ValueError as err:
                rec.problems.append(Problem(rec.file, rec.key, "image", f"corrupt image: {err}"))
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
        label = None
        if not art.get("label_checked"):
            try:
                label = resolve_label(art["label"])
            except ValueError as err:
                rec.problems.append(Problem(rec.file, rec.key, f"{art['field']}.label", str(err)))
        if not width:
            continue
        try:
            bbox = normalize_bbox(art["bbox"], width, height, fmt=art["fmt"], units=art["units"])
        except (ValueError, TypeError) as err:
            rec.problems.append(Problem(rec.file, rec.key, f"{art['field']}.bbox", str(err)))
            continue
        if label is not None:
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
):
    """Read annotations in ``fmt`` (one of :data:`FORMATS`) into a ``DatasetDict`` with ``train`` / ``test``.

    Returns ``(dataset_dict, rejected)`` where ``rejected`` lists ``{"record", "file", "image_id", "problems"}``
    per skipped record (empty unless ``skip_invalid``). Without ``skip_invalid`` any problem raises one
    :class:`DatasetValidationError` listing all of them. The test split is the release's ``eval.txt`` or the
    JSONL ``split`` fields when given, else a seeded stratified split.
    """
    from datasets import Dataset, DatasetDict
    from tqdm.auto import tqdm

    from synartifact.data.splits import stratified_split

    records, file_problems, test_ids = read_records(fmt, annotations, images)
    rows, rejected, all_problems = [], [], list(file_problems)
    seen: dict[str, str] = {}
    for rec in tqdm(records, desc=f"Checking {fmt} records", unit="img", disable=not progress):
        if rec.image_id in seen:
            rec.problems.append(
                Problem(rec.file, rec.key, "image_id", f"duplicate id {rec.image_id!r} (also {seen[rec.image_id]})")
            )
        else:
            seen[rec.image_id] = rec.key
        row = _finish(rec)
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
            rows.append(row)
    for p in file_problems:
        rejected.append({"file": p.file, "record": p.record, "image_id": None, "problems": [p.to_dict()]})
    if all_problems and not skip_invalid:
        raise DatasetValidationError(all_problems, f"The {fmt} input {annotations}")
    if not rows:
        raise DatasetValidationError(
            all_problems or [Problem(str(annotations), "", "", "no records")],
            f"The {fmt} input {annotations} has no valid record;",
        )
    features = get_features()
    ds = Dataset.from_list(rows, features=features)
    labels = [[a["label"] for a in r["artifacts"]] for r in rows]
    train, test = stratified_split(
        labels, test_size=test_size, seed=seed, ids=[r["image_id"] for r in rows], test_ids=test_ids
    )
    return DatasetDict({"train": ds.select(train), "test": ds.select(test)}), rejected
