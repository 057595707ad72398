"""The RichHF-18K reader: TFRecord files of ``tf.train.Example`` (read without TensorFlow, see
:mod:`synartifact.data.tfrecord`); the ``artifact_map`` heatmap becomes boxes, images are looked up by file name."""

from __future__ import annotations

import io
from pathlib import Path, PurePosixPath

from synartifact.data.importers.field import (
    DEFAULT_HEATMAP_THRESHOLD,
    DEFAULT_MIN_REGION_PIXELS,
    add_mask_regions,
    locate_image,
)
from synartifact.data.importers.records import Record, _Context, _is_absolute
from synartifact.data.schema import _BASE_COLUMNS, ORIGIN_COLUMN, Problem
from synartifact.data.tfrecord import TFRecordError, iter_records, parse_example


def _files(annotations: Path) -> list[Path]:
    if annotations.is_file():
        return [annotations]
    return sorted(p for p in annotations.rglob("*") if p.is_file() and "tfrecord" in p.name.lower())


def _read_richhf(annotations: Path, ctx: _Context) -> tuple[list[Record], list[Problem], set[str] | None]:
    files = _files(annotations)
    if not files:
        raise FileNotFoundError(f"--annotations {annotations}: no TFRecord file (*tfrecord*) under it")
    records, problems = [], []
    for path in files:
        fname = path.relative_to(annotations).as_posix() if annotations.is_dir() else path.name
        for n, (offset, data) in enumerate(iter_records(path)):
            key = f"record {n} (byte {offset})"
            if isinstance(data, TFRecordError):
                problems.append(Problem(fname, key, "", str(data)))
                continue
            try:
                example = parse_example(data)
            except TFRecordError as err:
                problems.append(Problem(fname, key, "", f"not a tf.train.Example ({err})"))
                continue
            names = example.get("filename") or []
            if not names or not isinstance(names[0], bytes):
                problems.append(Problem(fname, key, "filename", "required: a bytes feature with the image's name"))
                continue
            filename = names[0].decode("utf-8", "replace")
            records.append(_record(ctx, fname, f"record {n} ({filename})", filename, example))
    return records, problems, None


def _record(ctx: _Context, fname: str, key: str, filename: str, example: dict) -> Record:
    import numpy as np
    from PIL import Image

    rec = Record(fname, key, PurePosixPath(filename).stem, None, raw=None)
    name = PurePosixPath(filename.replace("\\", "/")).name
    locate_image(ctx, rec, "filename", [] if _is_absolute(filename) else [filename], name)
    prompt = example.get("prompt") or example.get("caption") or []
    if prompt and isinstance(prompt[0], bytes):
        rec.prompt = prompt[0].decode("utf-8", "replace")
    # every single float (artifact_score, aesthetics_score, ...) becomes an image-level column of its name
    scores = {
        k: float(v[0])
        for k, v in example.items()
        if len(v) == 1 and isinstance(v[0], float) and k not in _BASE_COLUMNS and k != ORIGIN_COLUMN
    }
    if scores:
        rec.report.image_fields[rec.image_id] = scores
    heatmap = example.get("artifact_map") or []
    if not heatmap or not isinstance(heatmap[0], bytes):
        rec.problems.append(Problem(fname, key, "artifact_map", "required: the encoded heatmap (PNG bytes)"))
        return rec
    try:
        with Image.open(io.BytesIO(heatmap[0])) as im:
            im.load()
            values = np.asarray(im if im.mode == "L" else im.convert("L"))
    except Exception as err:  # noqa: BLE001 - Pillow raises several kinds for bad bytes
        rec.problems.append(Problem(fname, key, "artifact_map", f"not a readable image ({err})"))
        return rec
    threshold = ctx.options.get("heatmap_threshold", DEFAULT_HEATMAP_THRESHOLD)
    min_pixels = ctx.options.get("min_region_pixels", DEFAULT_MIN_REGION_PIXELS)
    add_mask_regions(ctx, rec, "richhf", values >= threshold, min_pixels, "artifact_map region", "heatmap")
    return rec
