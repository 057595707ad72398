"""The reader of the paper's SynArtifact-1K release: per-image JSON files, ``eval.txt`` as the test split."""

from __future__ import annotations

import json
from pathlib import Path

from synartifact.data.importers.records import IMAGE_EXTENSIONS, Record, _Context, _find_image, _text
from synartifact.data.schema import Problem


def _read_synartifact(annotations: Path, ctx: _Context) -> tuple[list[Record], list[Problem], set[str] | None]:
    root, images = annotations, ctx.images
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
