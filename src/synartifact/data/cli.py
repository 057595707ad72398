"""``synartifact dataset``: build a Hub dataset folder from annotations, synthesize one, show its stats, push it."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from synartifact.data.hub import REJECTED_NAME
from synartifact.data.importers import ANNOTATORS, FORMATS, LABELSTUDIO_BBOX_TOLERANCE
from synartifact.data.importers.field import DEFAULT_HEATMAP_THRESHOLD, DEFAULT_MIN_REGION_PIXELS
from synartifact.data.synth import SYNTH_KINDS
from synartifact.images import DEFAULT_MAX_PIXELS

__all__ = ["add_cli"]

logger = logging.getLogger(__name__)

REPORT_NAME = "build_report.json"

_FORMATS_HELP = (
    """formats:
  synartifact  --annotations is the SynArtifact-1K release root: eval.txt (the test split) and
               <folder>/annotation_json_artifacts_class/<image_id>.json; images found next to them
  jsonl        one JSON object per image and line, paths relative to --images:
               {"image": "a.png", "prompt": "...", "artifacts": [{"label": "localized_blur",
                "bbox": [x0, y0, x1, y1], "caption": "..."}]}   (optional: image_id, generator,
                other_artifacts_caption, split, bbox_format xyxy|xywh, bbox_units pixels|normalized)
  coco         COCO detection JSON; categories matched to the kinds by name; caption in the
               annotation's "caption" or "attributes.caption"; bbox [x, y, w, h] in pixels; iscrowd
               regions are imported as artifacts like the others and counted in the build report, or
               left out with --skip-crowd (with the images that had only those; both counted)
  labelstudio  Label Studio JSON export: RectangleLabels (percent; rotated boxes become their bounding box),
               PolygonLabels and BrushLabels (RLE) as bounding boxes, TextArea per region (same id) as caption;
               data.image may be /data/local-files/?d=PATH, /data/upload/N/<hash>-NAME, s3://, gs://,
               azure-blob://, http(s)://... or a bare name: found under --images by relative path, then by
               file name; boxes overshooting the image by up to """
    + f"{LABELSTUDIO_BBOX_TOLERANCE:.0%}"
    + """ of a side are clipped
the field's datasets (label presets in synartifact/data/importers/field.py; regions without a kind in their source
are kept as kind-less artifacts (label -1) unless --kinds-from-captions or --label-map SOURCE_region=KIND gives
them one; polygons and masks are kept per artifact in `mask` unless --no-masks):
  synthscars   SynthScars root ({train,test}/annotations/*.json; images under --images/<split>/images/) or one
               JSON file: [{id: {caption, img_file_name, refs: [{sentence, explanation, segmentation}]}}];
               polygons -> bounding boxes; absolute img_file_name looked up by file name inside --images
  had          HAD annotations folder (<split>/<stem>.json: image{file_name, height, width},
               annotation[{body_parts, level, bbox [x1, y1, x2, y2] px}]); swapped corners normalized
  loki         LOKI's JSON (UTF-16 with BOM): [{image_path, problems: {regional: [{region [x, y, w, h], desc}],
               global: [{desc}]}}]
  artiagent    ArtiAgent JSON file(s): {image_name, global_explanation, bboxes: [{bbox [x1, y1, x2, y2],
               category, caption}]}; pixels or normalized 0-1 detected per record
  richhf       RichHF-18K TFRecord file(s) (no TensorFlow needed): artifact_map heatmap -> boxes
               (--heatmap-threshold, --min-region-pixels); images found in --images by file name
  pal4vst      PAL4VST labels folder (labels/<split>/*.png, 0 background, 1 bad region) with --images holding
               <split>/*.jpg; one box per connected component; images without a mask are counted, not imported
labels: a slug, a display name (loose spelling) or a 0-based index of the taxonomy, or any name that
        --label-map maps to one (or to ignore).
Image files must stay inside --images: a path that leaves it, absolute or through '..' or a symbolic link, is a
record problem (unless --allow-outside-images); so is one image file given under two image ids.
The build report (clipped boxes, converted shapes, crowd regions, dropped regions and labels) is printed and written
to OUT/build_report.json."""
)


def _check_out(out: Path, images: Path | None, annotations: Path) -> None:
    """Refuse an --out that would replace or sit among the inputs (--overwrite would delete them)."""
    target = out.resolve()
    if images is not None:
        src = images.resolve()
        if target == src or src.is_relative_to(target) or target.is_relative_to(src):
            raise ValueError(
                f"--out {out} must lie outside --images {images} (not the same folder, not one of its parents or "
                "sub-folders): --overwrite would replace it with the dataset"
            )
    ann = annotations.resolve()
    if target == ann or ann.is_relative_to(target):
        raise ValueError(
            f"--out {out} must not be or contain --annotations {annotations}: --overwrite would delete it"
        )


def _remove_leftovers(out: Path) -> None:
    """Delete the temporary folders a killed build of the same --out left and settle the ``<out>.old-*`` folder of
    one killed while replacing --out (:func:`~synartifact.utils.remove_stale_temp_dirs`)."""
    from synartifact.utils import remove_stale_temp_dirs

    remove_stale_temp_dirs(out)


def _failed_build_folder(out: Path) -> bool:
    """Whether ``out`` only holds what a build that kept nothing wrote (so it may be replaced without --overwrite)."""
    return out.is_dir() and {p.name for p in out.iterdir()} <= {REJECTED_NAME, REPORT_NAME}


def _write_report(folder: Path, report) -> Path:
    path = folder / REPORT_NAME
    path.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _build(args: argparse.Namespace) -> int:
    from synartifact.data.hub import save_hub_folder, write_rejected
    from synartifact.data.importers import build_dataset
    from synartifact.data.importers.field import label_map_spec
    from synartifact.data.schema import DatasetValidationError

    if args.images is None and args.format != "synartifact":
        raise ValueError(f"--images is required for --format {args.format}")
    out = Path(args.out)
    images = Path(args.images) if args.images is not None else None
    _check_out(out, images, Path(args.annotations))
    _remove_leftovers(out)
    leftover = _failed_build_folder(out)
    if out.exists() and not args.overwrite and not leftover:
        raise FileExistsError(f"{out} already exists: choose another --out or pass --overwrite")
    label_map = label_map_spec(args.label_map)
    try:
        dsdict, rejected, report = build_dataset(
            args.format,
            args.annotations,
            args.images,
            seed=args.seed,
            test_size=args.test_size,
            skip_invalid=args.skip_invalid,
            label_map=label_map,
            annotator=args.annotator,
            max_pixels=args.max_pixels or None,
            allow_outside_images=args.allow_outside_images,
            kinds_from_captions=args.kinds_from_captions,
            heatmap_threshold=args.heatmap_threshold,
            min_region_pixels=args.min_region_pixels,
            masks=not args.no_masks,
            skip_crowd=args.skip_crowd,
        )
    except DatasetValidationError as err:
        if args.skip_invalid and err.rejected is not None:
            # nothing was valid: the reasons are the only output, and a previous dataset stays as it was
            folder = out if (not out.exists() or leftover) else out.with_name(f"{out.name}.rejected")
            folder.mkdir(parents=True, exist_ok=True)
            path = write_rejected(folder, err.rejected)
            _write_report(folder, err.report)
            print(f"Nothing valid to write; the {len(err.rejected)} rejected record(s) are listed in {path}")
        raise
    out = save_hub_folder(
        dsdict,
        out,
        overwrite=args.overwrite or leftover,
        card_context={"rejected": len(rejected), "build_report": report.to_dict()},
    )
    if args.skip_invalid:
        path = write_rejected(out, rejected)
        print(f"Skipped {len(rejected)} invalid record(s), listed in {path}")
    _write_report(out, report)
    print(f"Wrote {out}: " + ", ".join(f"{s} {len(d)}" for s, d in dsdict.items()) + " images")
    print("Build report (also in " + str(out / REPORT_NAME) + "):\n  " + "\n  ".join(report.lines()))
    return 0


def _merge(args: argparse.Namespace) -> int:
    from synartifact.data.hub import save_hub_folder
    from synartifact.data.merge import MERGE_REPORT_NAME, merge_datasets, parse_inputs

    out = Path(args.out)
    inputs = parse_inputs(args.inputs)
    for _, folder in inputs:
        target, src = out.resolve(), folder.resolve()
        if target == src or src.is_relative_to(target) or target.is_relative_to(src):
            raise ValueError(f"--out {out} must lie outside the input {folder}: --overwrite would replace it")
    _remove_leftovers(out)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} already exists: choose another --out or pass --overwrite")
    dsdict, report = merge_datasets(inputs)
    text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    names = ", ".join(i["name"] for i in report["inputs"])
    save_hub_folder(
        dsdict,
        out,
        overwrite=args.overwrite,
        card_context={
            "title": "SynArtifact dataset (merged)",
            "description": f"Merged with `synartifact dataset merge` from: {names}.",
            "merge_report": report,
        },
        extra_files={MERGE_REPORT_NAME: text},
    )
    print(f"Wrote {out}: " + ", ".join(f"{s} {len(d)}" for s, d in dsdict.items()) + " images")
    print(
        f"Merge report (also in {out / MERGE_REPORT_NAME}): {report['rows_read']} rows read from {names}; "
        f"{report['duplicates']} duplicate image(s) dropped; {report['moved_to_test']} row(s) moved to test"
    )
    return 0


def _synth(args: argparse.Namespace) -> int:
    from synartifact.data.hub import save_hub_folder
    from synartifact.data.synth import synthesize_dataset
    from synartifact.taxonomy import get_kind

    if os.path.exists(args.out) and not args.overwrite:
        raise FileExistsError(f"{args.out} already exists: choose another --out or pass --overwrite")
    kinds = None
    if args.kinds:
        kinds = tuple(get_kind(k.strip()).slug for k in args.kinds.split(",") if k.strip())
    dsdict = synthesize_dataset(
        args.n,
        kinds=kinds,
        max_artifacts=args.max_artifacts,
        size=args.size,
        seed=args.seed,
        clean_fraction=args.clean_fraction,
        test_size=args.test_size,
        num_proc=args.num_proc,
    )
    out = save_hub_folder(
        dsdict,
        args.out,
        overwrite=args.overwrite,
        card_context={
            "title": "SynArtifact synthetic artifacts",
            "description": f"{args.n} images at {args.size} px synthesized offline with seed {args.seed}.",
        },
    )
    print(f"Wrote {out}: " + ", ".join(f"{s} {len(d)}" for s, d in dsdict.items()) + " images")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from synartifact.data.hub import format_stats, stats

    print(format_stats(stats(args.folder)))
    return 0


def _push(args: argparse.Namespace) -> int:
    from synartifact.data.hub import push_to_hub

    url = push_to_hub(args.folder, args.repo_id, private=args.private)
    print(f"Uploaded {args.folder} to {url}")
    return 0


def add_cli(subparsers) -> None:
    """Add the ``dataset`` command and its ``build``, ``merge``, ``synth``, ``stats`` and ``push`` subcommands."""
    p = subparsers.add_parser(
        "dataset",
        help="build, synthesize, inspect and push SynArtifact-style Hub datasets",
        description="Make SynArtifact datasets: a folder with a dataset card and parquet shards that "
        "`datasets.load_dataset(folder)` reads and `synartifact dataset push` uploads to the Hub as is.",
    )
    sub = p.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND", required=True)

    b = sub.add_parser(
        "build",
        help="build a Hub dataset folder from annotations (SynArtifact-1K release, JSONL, COCO, Label Studio, "
        "SynthScars, HAD, LOKI, ArtiAgent, RichHF-18K, PAL4VST)",
        description="Import annotated images. All problems (missing/corrupt image, unknown label, degenerate or "
        "out-of-image box, duplicate id, malformed record) are reported at once; nothing is written unless "
        "--skip-invalid. Full record formats: `python -c 'import synartifact.data.importers as m; print(m.__doc__)'`.",
        epilog=_FORMATS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument("--format", required=True, choices=FORMATS, help="input format")
    b.add_argument(
        "--annotations",
        required=True,
        metavar="FILE_OR_DIR",
        help="the annotation file (jsonl, coco, labelstudio) or the release's root folder (synartifact)",
    )
    b.add_argument(
        "--images",
        metavar="DIR",
        default=None,
        help="folder the image paths are relative to (optional for --format synartifact)",
    )
    b.add_argument("--out", required=True, metavar="DIR", help="output folder (the Hub dataset repository)")
    b.add_argument(
        "--skip-invalid",
        action="store_true",
        help="keep the valid records and list every rejected one with its reasons in OUT/rejected.jsonl",
    )
    b.add_argument("--seed", type=int, default=0, help="seed of the stratified train/test split (default 0)")
    b.add_argument(
        "--test-size",
        type=float,
        default=0.2,
        help="test share when the input fixes no test split (eval.txt, JSONL 'split'); default 0.2",
    )
    b.add_argument(
        "--label-map",
        metavar="FILE_OR_PAIRS",
        default=None,
        help='map the export\'s own labels to kinds: a JSON/YAML file {"person": "distorted_components", '
        '"Car": "ignore"} or \'person=distorted_components,Car=ignore\' (kind: slug, name or index; ignore drops '
        "the artifact and counts it); looked up before the taxonomy, for every format; or a preset's name: "
        "synthscars, had, loki, artiagent, richhf, pal4vst (a field format uses its own preset under this map)",
    )
    b.add_argument(
        "--kinds-from-captions",
        action="store_true",
        help="field formats: give a region that has no kind in its source (LOKI, RichHF, PAL4VST, SynthScars) the "
        "kind whose keyword its caption holds (field.CAPTION_KEYWORDS); default: such regions are kept as kind-less "
        "artifacts (label -1) and counted",
    )
    b.add_argument(
        "--no-masks",
        action="store_true",
        help="synthscars, pal4vst, richhf: keep only each region's box, not its pixels (the artifact's `mask`)",
    )
    b.add_argument(
        "--heatmap-threshold",
        type=int,
        default=None,
        metavar="0-255",
        help=f"richhf: artifact_map pixels >= this are artifact pixels (default {DEFAULT_HEATMAP_THRESHOLD})",
    )
    b.add_argument(
        "--min-region-pixels",
        type=int,
        default=None,
        metavar="N",
        help="richhf, pal4vst: connected regions with fewer pixels are dropped and counted "
        f"(default {DEFAULT_MIN_REGION_PIXELS})",
    )
    b.add_argument(
        "--annotator",
        choices=ANNOTATORS,
        default="first",
        help="Label Studio tasks with several annotations: use the first non-cancelled one and count the others "
        "(default), or merge the regions of all non-cancelled ones",
    )
    b.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help=f"an image with more pixels is a record problem, like a decompression bomb (default {DEFAULT_MAX_PIXELS:,}; "
        "0: no limit besides Pillow's own)",
    )
    b.add_argument(
        "--allow-outside-images",
        action="store_true",
        help="read image paths that are absolute or leave --images through '..' or a symbolic link (default: a "
        "record problem)",
    )
    b.add_argument(
        "--skip-crowd",
        action="store_true",
        help="COCO: leave iscrowd regions out (a crowd box may cover several objects), and the images that had only "
        "those (they are not clean); both are counted in the build report (default: imported as artifacts, counted)",
    )
    b.add_argument(
        "--overwrite", action="store_true", help="replace OUT if it exists (OUT must lie outside the inputs)"
    )
    b.set_defaults(func=_build)

    m = sub.add_parser(
        "merge",
        help="merge dataset folders into one (origin column, de-duplication by image content, one split per image)",
        description="Merge SynArtifact dataset folders. Each row gets an `origin` column (the input's NAME, else the "
        "format recorded in its build_report.json, else the folder name; `source` keeps meaning annotated or "
        "synthetic) and image_id <origin>/<id>. Images with the same pixels are kept once (the first input's row) "
        "and counted in OUT/merge_report.json; an image that was in any input's test split goes to test.",
    )
    m.add_argument("inputs", nargs="+", metavar="[NAME=]DIR", help="two or more dataset folders, optionally named")
    m.add_argument("--out", required=True, metavar="DIR", help="output folder (the Hub dataset repository)")
    m.add_argument(
        "--overwrite", action="store_true", help="replace OUT if it exists (OUT must lie outside the inputs)"
    )
    m.set_defaults(func=_merge)

    s = sub.add_parser(
        "synth",
        help="synthesize images with injected artifacts (offline, exact boxes) as a Hub dataset folder",
        description="Inject artifacts procedurally into photographs bundled with scikit-image (random crops, "
        "flips, scales). Deterministic for a seed whatever --num-proc.",
    )
    s.add_argument("--n", type=int, required=True, help="number of images")
    s.add_argument("--out", required=True, metavar="DIR", help="output folder (the Hub dataset repository)")
    s.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    s.add_argument("--size", type=int, default=256, metavar="PX", help="image side in pixels (default 256)")
    s.add_argument("--clean-fraction", type=float, default=0.2, help="share of images without artifacts (default 0.2)")
    s.add_argument("--test-size", type=float, default=0.2, help="test share (default 0.2)")
    s.add_argument("--num-proc", type=int, default=1, help="worker processes (default 1; use the machine's cores)")
    s.add_argument(
        "--kinds",
        default=None,
        metavar="SLUG,...",
        help="comma-separated kinds to synthesize (default: all it can make: " + ", ".join(SYNTH_KINDS) + ")",
    )
    s.add_argument("--max-artifacts", type=int, default=3, help="at most this many artifacts per image (default 3)")
    s.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    s.set_defaults(func=_synth)

    st = sub.add_parser(
        "stats",
        help="print the per-kind table of a dataset folder",
        description="Print images and artifacts per kind and split of a dataset folder or Hub id.",
    )
    st.add_argument("folder", metavar="DIR", help="dataset folder (or Hub id)")
    st.set_defaults(func=_stats)

    pu = sub.add_parser(
        "push",
        help="upload a dataset folder to the Hugging Face Hub",
        description="Create the dataset repo (if needed) and upload the folder with huggingface_hub. "
        "The token comes from `huggingface-cli login` or HF_TOKEN and is never printed.",
    )
    pu.add_argument("folder", metavar="DIR", help="the folder written by build or synth")
    pu.add_argument("--repo-id", required=True, metavar="ORG/NAME", help="the dataset repository id")
    pu.add_argument("--private", action="store_true", help="create the repository as private")
    pu.set_defaults(func=_push)
