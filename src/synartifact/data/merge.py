"""Merge SynArtifact dataset folders into one: an ``origin`` column, de-duplication by image content, one split each.

``synartifact dataset merge A B ... --out C`` (or :func:`merge_datasets`):

- **origin**: every row says which input it comes from in the ``origin`` column (``source`` keeps its meaning,
  ``annotated`` / ``synthetic``). An input that has an ``origin`` column already (an earlier merge) keeps its
  values; otherwise the name is the one given as ``NAME=FOLDER``, else the ``format`` its ``build_report.json``
  records (``synthscars``, ``had``, ...), else the folder's name. ``image_id`` becomes ``<origin>/<image_id>``
  (ids of different inputs may collide) unless it starts so already.
- **de-duplication**: images are compared by a SHA-256 of their decoded RGB pixels and size, so that one image saved
  by two encoders (PNG re-encoded by a build, or stored twice) is found. The first row (inputs in the order given,
  splits in each input's order) is kept with its annotations; the others are dropped and listed in
  ``merge_report.json``.
- **splits**: an image keeps one split. The kept row goes to ``test`` when any copy of the image was in a ``test``
  split (a benchmark's test image is never trained on), else to the split of its first copy.
- **columns**: the union of the inputs' optional columns (``mask`` in artifacts, image-level scores, ``origin``);
  a row without one gets ``None``. The same column with different types in two inputs is an error naming both.

The output is written to ``<out>.tmp-*`` and renamed when complete (:func:`synartifact.utils.atomic_dir`, through
:func:`synartifact.data.hub.save_hub_folder`); the inputs are only read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synartifact.data.schema import _BASE_COLUMNS, ORIGIN_COLUMN, get_features

__all__ = ["MERGE_REPORT_NAME", "merge_datasets", "parse_inputs"]

MERGE_REPORT_NAME = "merge_report.json"
TEST_SPLIT = "test"


def parse_inputs(specs: Sequence[str]) -> list[tuple[str | None, Path]]:
    """``["NAME=FOLDER" or "FOLDER", ...]`` as ``[(name or None, folder)]``; a missing folder raises."""
    out = []
    for spec in specs:
        name, _, folder = spec.rpartition("=") if "=" in spec and not Path(spec).exists() else ("", "", spec)
        path = Path(folder)
        if not path.is_dir():
            raise FileNotFoundError(
                f"merge input {spec!r}: {path} is not a folder (give a dataset folder or NAME=FOLDER)"
            )
        if not (path / "data").is_dir():
            raise FileNotFoundError(
                f"merge input {spec!r}: {path} is not a SynArtifact dataset folder (it has no data/ folder of parquet "
                "shards; write one with `synartifact dataset build` or `synth`)"
            )
        out.append((name.strip() or None, path))
    return out


def _default_name(folder: Path) -> str:
    report = folder / "build_report.json"
    if report.is_file():
        try:
            fmt = json.loads(report.read_text(encoding="utf-8")).get("format")
        except (json.JSONDecodeError, OSError, AttributeError):
            fmt = None
        if isinstance(fmt, str) and fmt:
            return fmt
    return folder.resolve().name


def _image_hash(image: dict[str, Any]) -> str:
    """SHA-256 of an image's decoded RGB pixels and size (``image`` as stored: ``{"bytes", "path"}``)."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(image["bytes"])) as im:
        rgb = im.convert("RGB")
        digest = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
        digest.update(rgb.tobytes())
    return digest.hexdigest()


def _check_columns(inputs: list[tuple[str, Path, Any]]) -> tuple[bool, list[str]]:
    """Whether any input has masks, and the union of image-level columns; raises on a column typed two ways."""
    from datasets import Value

    masks, extra, seen = False, [], {}
    for _, folder, dsdict in inputs:
        for split, ds in dsdict.items():
            missing = [c for c in _BASE_COLUMNS if c not in ds.column_names]
            if missing:
                raise ValueError(
                    f"merge input {folder}, split {split!r}: column(s) {', '.join(missing)} missing; a SynArtifact "
                    f"dataset has {', '.join(_BASE_COLUMNS)}"
                )
            art = ds.features["artifacts"]
            fields = getattr(art, "feature", art)
            fields = fields if isinstance(fields, dict) else {}
            masks = masks or "mask" in fields
            for name in ds.column_names:
                if name in _BASE_COLUMNS or name == ORIGIN_COLUMN:
                    continue
                feature = ds.features[name]
                if not (isinstance(feature, Value) and feature.dtype.startswith("float")):
                    raise ValueError(
                        f"merge input {folder}, split {split!r}, column {name!r}: only float image-level columns can "
                        f"be merged besides the schema's, got {feature}"
                    )
                if name in seen and seen[name][1] != feature.dtype:
                    raise ValueError(
                        f"column {name!r} is {seen[name][1]} in {seen[name][0]} but {feature.dtype} in {folder}"
                    )
                seen[name] = (folder, feature.dtype)
                if name not in extra:
                    extra.append(name)
    return masks, sorted(extra)


def merge_datasets(
    inputs: Sequence[tuple[str | None, str | Path]], progress: bool = True
) -> tuple[Any, dict[str, Any]]:
    """Merge dataset folders ``[(name or None, folder)]`` into a ``DatasetDict``; returns it and the merge report.

    See the module docstring for origin names, de-duplication and splits.
    """
    from datasets import DatasetDict, Image, concatenate_datasets
    from tqdm.auto import tqdm

    from synartifact.data.hub import load_artifact_dataset

    if len(inputs) < 2:
        raise ValueError("merge needs two or more dataset folders")
    loaded = []
    for name, folder in inputs:
        folder = Path(folder)
        dsdict = load_artifact_dataset(folder)
        loaded.append((name or _default_name(folder), folder, dsdict))
    names = [n for n, _, d in loaded if not any(ORIGIN_COLUMN in ds.column_names for ds in d.values())]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(
            f"two merge inputs would both be named {', '.join(map(repr, twice))}: name them with NAME=FOLDER"
        )
    masks, extra = _check_columns(loaded)
    features = get_features(masks=masks, image_columns=extra, origin=True)

    parts, meta = [], []  # meta per merged row: (input index, split)
    for index, (name, _, dsdict) in enumerate(loaded):
        for split, ds in dsdict.items():
            if ORIGIN_COLUMN not in ds.column_names:
                ds = ds.add_column(ORIGIN_COLUMN, [name] * len(ds))
            for col in extra:
                if col not in ds.column_names:
                    ds = ds.add_column(col, [None] * len(ds))
            columns = ds.select_columns(["image_id", ORIGIN_COLUMN])
            new_ids = [
                image_id if image_id.startswith(f"{origin}/") else f"{origin}/{image_id}"
                for image_id, origin in zip(columns["image_id"], columns[ORIGIN_COLUMN])
            ]
            ds = ds.remove_columns("image_id").add_column("image_id", new_ids)
            ds = ds.select_columns(list(features)).cast(features)
            parts.append(ds)
            meta.extend((index, split) for _ in range(len(ds)))
    merged = concatenate_datasets(parts)
    raw = merged.cast_column("image", Image(decode=False))

    first: dict[str, int] = {}
    in_test: set[str] = set()
    duplicates = []
    hashes = []
    for i, image in enumerate(tqdm(raw["image"] if len(raw) else [], desc="hash images", disable=not progress)):
        digest = _image_hash(image)
        hashes.append(digest)
        if meta[i][1] == TEST_SPLIT:
            in_test.add(digest)
        if digest in first:
            kept = first[digest]
            duplicates.append(
                {
                    "dropped": {"image_id": raw[i]["image_id"], "origin": raw[i][ORIGIN_COLUMN], "split": meta[i][1]},
                    "kept": {
                        "image_id": raw[kept]["image_id"],
                        "origin": raw[kept][ORIGIN_COLUMN],
                        "split": meta[kept][1],
                    },
                }
            )
        else:
            first[digest] = i
    ids = merged["image_id"]
    seen_ids: dict[str, int] = {}
    for i in first.values():
        if ids[i] in seen_ids:
            raise ValueError(
                f"image_id {ids[i]!r} names two different images (from {loaded[meta[seen_ids[ids[i]]][0]][1]} and "
                f"{loaded[meta[i][0]][1]}): rename one input with NAME=FOLDER"
            )
        seen_ids[ids[i]] = i
    splits: dict[str, list[int]] = {}
    moved = 0
    for digest, i in first.items():
        split = meta[i][1]
        if digest in in_test and split != TEST_SPLIT:
            split, moved = TEST_SPLIT, moved + 1
        splits.setdefault(split, []).append(i)
    order = [s for _, _, d in loaded for s in d if s in splits]
    out = DatasetDict({s: merged.select(sorted(splits[s])) for s in dict.fromkeys(order)})
    report = {
        "inputs": [{"name": n, "folder": str(f), "rows": sum(len(d) for d in dd.values())} for n, f, dd in loaded],
        "rows_read": len(merged),
        "rows_kept": len(first),
        "duplicates": len(duplicates),
        "moved_to_test": moved,
        "duplicate_rows": duplicates,
        "splits": {s: len(d) for s, d in out.items()},
    }
    return out, report
