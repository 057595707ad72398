"""``synartifact dataset``: build a Hub dataset folder from annotations, synthesize one, show its stats, push it."""

from __future__ import annotations

import argparse
import os

from synartifact.data.importers import FORMATS
from synartifact.data.synth import SYNTH_KINDS

__all__ = ["add_cli"]

_FORMATS_HELP = """formats:
  synartifact  --annotations is the SynArtifact-1K release root: eval.txt (the test split) and
               <folder>/annotation_json_artifacts_class/<image_id>.json; images found next to them
  jsonl        one JSON object per image and line, paths relative to --images:
               {"image": "a.png", "prompt": "...", "artifacts": [{"label": "localized_blur",
                "bbox": [x0, y0, x1, y1], "caption": "..."}]}   (optional: image_id, generator,
                other_artifacts_caption, split, bbox_format xyxy|xywh, bbox_units pixels|normalized)
  coco         COCO detection JSON; categories matched to the kinds by name; caption in the
               annotation's "caption" or "attributes.caption"; bbox [x, y, w, h] in pixels
  labelstudio  Label Studio JSON export: RectangleLabels (percent) + TextArea per region (same id)
labels: a slug, a display name (loose spelling) or a 0-based index of the taxonomy."""


def _build(args: argparse.Namespace) -> int:
    from synartifact.data.hub import save_hub_folder, write_rejected
    from synartifact.data.importers import build_dataset

    if args.images is None and args.format != "synartifact":
        raise ValueError(f"--images is required for --format {args.format}")
    dsdict, rejected = build_dataset(
        args.format,
        args.annotations,
        args.images,
        seed=args.seed,
        test_size=args.test_size,
        skip_invalid=args.skip_invalid,
    )
    out = save_hub_folder(dsdict, args.out, overwrite=args.overwrite, card_context={"rejected": len(rejected)})
    if args.skip_invalid:
        path = write_rejected(out, rejected)
        print(f"Skipped {len(rejected)} invalid record(s), listed in {path}")
    print(f"Wrote {out}: " + ", ".join(f"{s} {len(d)}" for s, d in dsdict.items()) + " images")
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
    """Add the ``dataset`` command and its ``build``, ``synth``, ``stats`` and ``push`` subcommands."""
    p = subparsers.add_parser(
        "dataset",
        help="build, synthesize, inspect and push SynArtifact-style Hub datasets",
        description="Make SynArtifact datasets: a folder with a dataset card and parquet shards that "
        "`datasets.load_dataset(folder)` reads and `synartifact dataset push` uploads to the Hub as is.",
    )
    sub = p.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND", required=True)

    b = sub.add_parser(
        "build",
        help="build a Hub dataset folder from annotations (SynArtifact-1K release, JSONL, COCO, Label Studio)",
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
    b.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    b.set_defaults(func=_build)

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
