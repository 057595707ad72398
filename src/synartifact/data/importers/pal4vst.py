"""The PAL4VST reader: ``labels/{split}/*.png`` index masks (0 background, 1 bad region) beside
``images/{split}/*.jpg``; one box per 8-connected component of the mask."""

from __future__ import annotations

from pathlib import Path

from synartifact.data.importers.field import (
    DEFAULT_MIN_REGION_PIXELS,
    add_mask_regions,
    locate_image,
    records_by_split,
    split_of,
)
from synartifact.data.importers.records import IMAGE_EXTENSIONS, Record, _Context
from synartifact.data.schema import Problem


def _read_pal4vst(annotations: Path, ctx: _Context) -> tuple[list[Record], list[Problem], set[str] | None]:
    root = annotations / "labels" if (annotations / "labels").is_dir() else annotations
    masks = [annotations] if annotations.is_file() else sorted(root.rglob("*.png"))
    if not masks:
        raise FileNotFoundError(f"--annotations {annotations}: no label mask (labels/<split>/*.png) under it")
    out = records_by_split(root, masks, annotations.is_file(), lambda p, n, sp: _record(ctx, p, n, sp))
    if not annotations.is_file():
        unlabelled = _images_without_mask(ctx, {r.image_id for r in out[0]})
        if unlabelled:
            ctx.report.dropped[PAL4VST_UNLABELLED] += unlabelled
    return out


# An image with no label file is not imported: without its mask nobody said it is clean (an all-zero mask does).
PAL4VST_UNLABELLED = "pal4vst images without a label mask (not imported: no mask does not mean clean)"


def _images_without_mask(ctx: _Context, ids: set[str]) -> int:
    """How many image files under --images (``<split>/<stem>.jpg``, or ``images/<split>/...``) have no mask."""
    if ctx.images is None or not ctx.images.is_dir():
        return 0
    count = 0
    for path in ctx.images.rglob("*"):
        if path.suffix.lower() not in IMAGE_EXTENSIONS or not path.is_file():
            continue
        rel = path.relative_to(ctx.images).with_suffix("").as_posix()
        stem = rel[len("images/") :] if rel.startswith("images/") else rel
        count += stem not in ids and rel not in ids
    return count


def _record(ctx: _Context, path: Path, fname: str, split: str | None) -> Record:
    import numpy as np
    from PIL import Image

    stem = Path(fname).with_suffix("").as_posix()
    rec = Record(fname, fname, stem, None, split=split_of(split) if split else None)
    locate_image(ctx, rec, "image", [f"{stem}.jpg", f"images/{stem}.jpg"], None, count_other=False)
    try:
        with Image.open(path) as im:
            im.load()
            mask = np.asarray(im)
    except Exception as err:  # noqa: BLE001 - Pillow raises several kinds for bad bytes
        rec.problems.append(Problem(fname, fname, "mask", f"not a readable PNG ({err})"))
        return rec
    if mask.ndim != 2:
        rec.problems.append(
            Problem(fname, fname, "mask", f"must be a single-channel index mask, got shape {mask.shape}")
        )
        return rec
    height, width = mask.shape
    if rec.image_path is not None and rec.image_path.is_file():
        try:
            with Image.open(rec.image_path) as im:
                size = im.size
        except Exception:  # noqa: BLE001 - the record check reports an unreadable image
            size = None
        if size is not None and size != (width, height):
            rec.problems.append(
                Problem(fname, fname, "mask", f"the mask is {width}x{height} but the image is {size[0]}x{size[1]}")
            )
    if (mask > 1).any():
        rec.report.notes["pal4vst masks with values other than 0/1 (non-zero read as a bad region)"] += 1
    min_pixels = ctx.options.get("min_region_pixels", DEFAULT_MIN_REGION_PIXELS)
    add_mask_regions(ctx, rec, "pal4vst", mask > 0, min_pixels, "mask region")
    return rec
