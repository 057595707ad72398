"""The Label Studio JSON export reader: image references in every form Label Studio writes, regions, RLE masks."""

from __future__ import annotations

import math
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from synartifact.data.importers.records import (
    _WINDOWS_PATH,
    IMAGE_EXTENSIONS,
    LABELSTUDIO_BBOX_TOLERANCE,
    Record,
    _Context,
    _Dropped,
    _find_image,
    _id_from,
    _load_json,
    _polygon_box,
    _relative_to,
    _text,
)
from synartifact.data.schema import DatasetValidationError, Problem

_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-(.+)$")


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
