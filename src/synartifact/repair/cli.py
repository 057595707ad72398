"""``synartifact repair``: repair a folder of images or a dataset split (:func:`repair_folder`), write the
repaired images, the before/after grid (:func:`save_repair_grid`) and ``repair.jsonl``; the command's options
(:func:`resolve_cli_options`, a ``--config`` YAML) and its parser (:func:`add_cli`)."""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from synartifact.images import to_rgb
from synartifact.repair.masks import DEFAULT_MARGIN, Box
from synartifact.repair.repairer import UNBOXED_POLICIES, ArtifactRepairer
from synartifact.repair.results import RepairResult, summarize

__all__ = [
    "CLI_DEFAULTS",
    "GRID_NAME",
    "JSONL_NAME",
    "add_cli",
    "repair_folder",
    "resolve_cli_options",
    "save_repair_grid",
]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
JSONL_NAME = "repair.jsonl"
GRID_NAME = "before_after.png"


@dataclass
class _Item:
    name: str  # the input's file name, or <image_id or index>.png for a dataset row
    output: str  # the file written
    image: Image.Image
    prompt: str | None
    hints: list[Box]


def _is_dataset(source: str) -> bool:
    from synartifact.utils import is_local_path

    path = Path(source)
    if path.is_dir():
        return (path / "data").is_dir() or any(path.glob("*.parquet")) or (path / "dataset_dict.json").is_file()
    if path.exists():
        raise NotADirectoryError(f"--images {source} is a file: give a folder of images or a dataset.")
    if is_local_path(source):
        raise FileNotFoundError(f"--images {source} does not exist: give a folder of images, a dataset folder or id.")
    return True


def _output_name(name: str, taken: set[str]) -> str:
    """The name to write a repaired image under: the input's own name when its format is lossless (the pixels
    outside the mask must stay bit-identical), else ``<stem>.png``."""
    path = Path(name)
    out = name if path.suffix.lower() in (".png", ".bmp", ".tif", ".tiff") else str(path.with_suffix(".png"))
    if out in taken:
        out = name + ".png"
    taken.add(out)
    return out


def _load_items(
    source: Any,
    split: str,
    prompts_column: str | None,
    max_images: int | None,
    hint_boxes: bool,
    allow_outside_images: bool = False,
) -> tuple[list[_Item], list[dict]]:
    """The images to repair and the inputs refused (``{"image", "reason"}``). ``source``: a folder of images, a
    dataset folder or Hub id, or a ``datasets.Dataset``."""
    from synartifact.utils import link_outside

    items, bad, taken = [], [], set()
    if isinstance(source, (str, os.PathLike)) and not _is_dataset(str(source)):
        folder = Path(source)
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"--images {source} holds no image files ({', '.join(IMAGE_SUFFIXES)}).")
        for path in files[:max_images] if max_images else files:
            name = str(path.relative_to(folder))
            escaped = None if allow_outside_images else link_outside(folder, path)
            if escaped is not None:
                bad.append(
                    {
                        "image": name,
                        "reason": f"a symbolic link (or in a linked folder) that leads outside --images {folder}, to "
                        f"{escaped}: image files must stay inside it (pass --allow-outside-images to read it anyway)",
                    }
                )
                continue
            try:
                image = to_rgb(path)
            except (ValueError, FileNotFoundError) as err:
                bad.append({"image": name, "reason": str(err)})
                continue
            items.append(_Item(name, _output_name(name, taken), image, None, []))
        return items, bad
    from datasets import Dataset, DatasetDict
    from datasets import Image as ImageFeature

    from synartifact.data import load_artifact_dataset

    data = source if isinstance(source, (Dataset, DatasetDict)) else load_artifact_dataset(source)
    if isinstance(data, DatasetDict):
        if split not in data:
            raise ValueError(f"Dataset {source} has no split {split!r} (--split); its splits: {', '.join(data)}.")
        data = data[split]
    if "image" not in data.column_names:
        raise ValueError(f"Dataset {source} has no 'image' column (columns: {', '.join(data.column_names)}).")
    if prompts_column and prompts_column not in data.column_names:
        raise ValueError(
            f"Dataset {source} has no {prompts_column!r} column for --prompts-column (columns: "
            f"{', '.join(data.column_names)}); pass --prompts-column '' to repair without prompts."
        )
    if max_images:
        data = data.select(range(min(int(max_images), len(data))))
    data = data.cast_column("image", ImageFeature(decode=False))
    for index, row in enumerate(data):
        stem = str(row.get("image_id") or index)
        name = f"{stem.replace('/', '_')}.png"
        try:
            image = to_rgb(row["image"], index)
        except (ValueError, FileNotFoundError, TypeError) as err:
            bad.append({"image": name, "reason": str(err)})
            continue
        hints = []
        if hint_boxes:
            hints = [tuple(a["bbox"]) for a in row.get("artifacts") or [] if a.get("bbox")]
        prompt = str(row.get(prompts_column) or "") if prompts_column else None
        items.append(_Item(name, _output_name(name, taken), image, prompt, hints))
    return items, bad


def _draw_boxes(image: Image.Image, boxes: Sequence[Box], mask: Image.Image | None = None) -> Image.Image:
    """A copy with the boxes in red and the outline of ``mask`` (the repainted area) in yellow."""
    shown = image.copy()
    draw = ImageDraw.Draw(shown)
    width = max(1, round(max(image.size) / 100))
    if mask is not None and np.asarray(mask).any():
        edges = np.asarray(mask.filter(ImageFilter.FIND_EDGES)) > 0
        pixels = np.asarray(shown).copy()
        pixels[edges] = (255, 220, 0)
        shown = Image.fromarray(pixels, "RGB")
        draw = ImageDraw.Draw(shown)
    for box in boxes:
        x0, y0, x1, y1 = box
        w, h = image.size
        draw.rectangle((x0 * w, y0 * h, x1 * w - 1, y1 * h - 1), outline=(230, 25, 75), width=width)
    return shown


def save_repair_grid(results: Sequence[RepairResult], names: Sequence[str], path: Path, max_columns: int = 12) -> Path:
    """A PNG grid (matplotlib): the originals with the boxes found (red) over the repaired images with the repainted
    area's outline (yellow) and the boxes still found, each captioned with its reward."""
    from synartifact.generator.sampling import save_image_grid

    shown = list(zip(results, names))[:max_columns]
    before = [
        (_draw_boxes(r.original, [a.bbox for a in r.report_before.artifacts if a.bbox]), r.reward_before)
        for r, _ in shown
    ]
    after = [
        (_draw_boxes(r.image, [a.bbox for a in r.report_after.artifacts if a.bbox], r.mask), r.reward_after)
        for r, _ in shown
    ]
    return save_image_grid([("before", before), ("after", after)], path, titles=[n for _, n in shown])


def _outside_mask_unchanged(result: RepairResult) -> bool:
    mask = np.asarray(result.mask) > 0
    return bool(np.array_equal(np.asarray(result.original)[~mask], np.asarray(result.image)[~mask]))


def repair_folder(
    classifier: Any,
    inpainter: Any,
    images: Any,
    out: str | Path,
    *,
    rounds: int = 2,
    margin: float = DEFAULT_MARGIN,
    seed: int = 0,
    prompts_column: str | None = "prompt",
    split: str = "test",
    max_images: int | None = None,
    num_inference_steps: int = 20,
    guidance_scale: float = 7.5,
    batch_size: int = 8,
    unboxed: str = "skip",
    hint_boxes: bool = False,
    allow_outside_images: bool = False,
    device: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    extra_metrics: Callable[[list[RepairResult]], Mapping[str, Any]] | None = None,
) -> dict:
    """Repair a folder of images or a dataset split (a folder, a Hub id or a ``datasets.Dataset``) into ``out``;
    return the summary.

    Writes the repaired images (under the input file names; a dataset's rows as ``<image_id or index>.png``), a
    before/after grid (``before_after.png``), ``repair.jsonl`` (one line per image: ``image``, ``output``,
    ``kinds_before``, ``kinds_after``, ``reward_before``, ``reward_after``, ``rounds``, ``mask_area``, ...),
    ``skipped.jsonl`` (inputs that are not readable images, or symbolic links leading outside a folder ``images``
    unless ``allow_outside_images``, with the reason) and ``summary.json``, to which ``extra_metrics(results)``
    adds its figures (the demo's judge). The folder appears only when complete.
    """
    from synartifact.hub_access import require_hub
    from synartifact.utils import atomic_dir

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists: choose another output folder or pass --overwrite.")
    for model, what in ((classifier, "classifier"), (inpainter, "inpainter")):
        if isinstance(model, (str, os.PathLike)):  # before minutes of loading the other one
            require_hub(model, what)
    source = str(images) if isinstance(images, os.PathLike) else images
    items, bad = _load_items(source, split, prompts_column, max_images, hint_boxes, allow_outside_images)
    for row in bad:
        logger.warning("skipped %s: %s", row["image"], row["reason"])
    if not items:
        raise ValueError(f"No readable image in {images}: {len(bad)} skipped (see the messages above).")
    repairer = ArtifactRepairer(
        classifier,
        inpainter,
        margin=margin,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        batch_size=batch_size,
        unboxed=unboxed,
        device=device,
        progress=progress,
    )
    results = repairer.repair(
        [item.image for item in items],
        prompts=[item.prompt for item in items],
        rounds=rounds,
        seed=seed,
        hints=[item.hints for item in items],
    )
    summary = summarize(results)
    summary.update(
        {
            "images": source if isinstance(source, str) else f"{len(items) + len(bad)} dataset rows",
            "skipped": len(bad),
            "rounds": rounds,
            "seed": seed,
            "margin": margin,
            "num_inference_steps": num_inference_steps,
            "hint_boxes": hint_boxes,
            "unboxed": unboxed,
            "reward_mode": getattr(repairer.reward, "mode", None),
            # the repairer's promise, checked pixel by pixel: it repaints inside the mask only
            "outside_mask_unchanged": all(_outside_mask_unchanged(r) for r in results),
        }
    )
    if extra_metrics is not None:
        summary.update(extra_metrics(results))
    # the grid shows the images the classifier flagged first (the others are unchanged by construction)
    shown = sorted(range(len(results)), key=lambda i: (not results[i].rounds, i))
    with atomic_dir(out, overwrite=overwrite) as tmp:
        with open(tmp / JSONL_NAME, "w", encoding="utf-8") as handle:
            for item, result in zip(items, results):
                target = tmp / item.output
                target.parent.mkdir(parents=True, exist_ok=True)
                result.image.save(target)
                handle.write(json.dumps({"image": item.name, "output": item.output, **result.to_dict()}) + "\n")
        if bad:
            (tmp / "skipped.jsonl").write_text("".join(json.dumps(row) + "\n" for row in bad), encoding="utf-8")
        save_repair_grid([results[i] for i in shown], [items[i].name for i in shown], tmp / GRID_NAME)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    summary["skipped_images"] = bad
    return summary


# The command's options and their defaults; a --config YAML may give any of them (its keys are these names).
CLI_DEFAULTS: dict[str, Any] = {
    "classifier": None,
    "inpainter": None,
    "images": None,
    "output_dir": None,
    "rounds": 2,
    "margin": DEFAULT_MARGIN,
    "seed": 0,
    "prompts_column": "prompt",
    "split": "test",
    "max_images": None,
    "num_inference_steps": 20,
    "guidance_scale": 7.5,
    "batch_size": 8,
    "unboxed": "skip",
    "hint_boxes": False,
    "allow_outside_images": False,
    "device": None,
    "overwrite": False,
}


def resolve_cli_options(args: argparse.Namespace) -> dict[str, Any]:
    """The command's options: the command line's, else the ``--config`` YAML's, else :data:`CLI_DEFAULTS`.
    Unknown YAML keys and missing required options are errors that name them."""
    config: dict[str, Any] = {}
    if getattr(args, "config", None):
        import yaml

        path = Path(args.config)
        if not path.is_file():
            raise FileNotFoundError(f"--config {path} does not exist.")
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(config, dict):
            raise ValueError(f"{path} must be a mapping of option: value (keys: {', '.join(CLI_DEFAULTS)}).")
        unknown = sorted(set(config) - set(CLI_DEFAULTS))
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(CLI_DEFAULTS)}.")
    options = {}
    for key, default in CLI_DEFAULTS.items():
        given = getattr(args, key, None)
        options[key] = given if given is not None else config.get(key, default)
    missing = [key for key in ("classifier", "inpainter", "images", "output_dir") if not options[key]]
    if missing:
        flags = ", ".join("--" + ("out" if k == "output_dir" else k.replace("_", "-")) for k in missing)
        raise ValueError(f"Missing {flags}: give them on the command line or in --config.")
    return options


def add_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``synartifact repair``."""
    p = subparsers.add_parser(
        "repair",
        help="inpaint the artifacts the classifier finds, check again, keep the better image",
        description="Classify each image, mask the artifacts' boxes (padded by --margin), inpaint them, classify "
        "again and keep the result only if the reward went up; repeat for --rounds. Writes the repaired images, "
        f"{GRID_NAME} and {JSONL_NAME} to --out. Options may also come from --config YAML (keys: the option names "
        "with underscores, --out as output_dir).",
    )
    p.add_argument("--config", default=None, help="YAML file of options (command-line flags override it)")
    p.add_argument("--classifier", default=None, help="artifact classifier folder or Hub id")
    p.add_argument(
        "--inpainter",
        default=None,
        help="inpainting pipeline folder or Hub id (e.g. stable-diffusion-v1-5/stable-diffusion-inpainting, or "
        "`synartifact tiny sd-inpaint` output)",
    )
    p.add_argument("--images", default=None, help="folder of images, or a dataset folder / Hub id")
    p.add_argument("--out", "--output-dir", dest="output_dir", default=None, help="output folder")
    d = CLI_DEFAULTS
    p.add_argument("--rounds", type=int, default=None, help=f"repair rounds at most (default: {d['rounds']})")
    p.add_argument(
        "--margin",
        type=float,
        default=None,
        help=f"box padding, a fraction of the image side (default: {d['margin']})",
    )
    p.add_argument("--seed", type=int, default=None, help=f"seed of the inpainting noise (default: {d['seed']})")
    p.add_argument(
        "--prompts-column",
        default=None,
        help=f"dataset column of the prompts, '' for none (default: {d['prompts_column']})",
    )
    p.add_argument("--split", default=None, help=f"dataset split (default: {d['split']})")
    p.add_argument("--max-images", type=int, default=None, help="repair at most N images")
    p.add_argument(
        "--num-inference-steps", type=int, default=None, help=f"inpainting steps (default: {d['num_inference_steps']})"
    )
    p.add_argument(
        "--guidance-scale", type=float, default=None, help=f"inpainting guidance (default: {d['guidance_scale']})"
    )
    p.add_argument("--batch-size", type=int, default=None, help=f"images per batch (default: {d['batch_size']})")
    p.add_argument(
        "--unboxed",
        choices=list(UNBOXED_POLICIES),
        default=None,
        help="artifacts named without a box (labels-mode classifiers): skip them, repaint the whole image, or "
        "locate them by occlusion (the window whose covering lowers the classifier's probability of the kind most) "
        "(default: skip)",
    )
    p.add_argument(
        "--hint-boxes",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="for a dataset: use its annotated boxes where the classifier names a kind without a box",
    )
    p.add_argument(
        "--allow-outside-images",
        action="store_true",
        default=None,
        help="read image files inside --images that are symbolic links leading outside it (default: skip and "
        "report them, as `synartifact dataset build` does)",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    p.add_argument("--overwrite", action="store_true", default=None, help="replace an existing output folder")

    def run(args: argparse.Namespace) -> int:
        o = resolve_cli_options(args)
        summary = repair_folder(
            o["classifier"],
            o["inpainter"],
            o["images"],
            o["output_dir"],
            rounds=o["rounds"],
            margin=o["margin"],
            seed=o["seed"],
            prompts_column=o["prompts_column"] or None,
            split=o["split"],
            max_images=o["max_images"],
            num_inference_steps=o["num_inference_steps"],
            guidance_scale=o["guidance_scale"],
            batch_size=o["batch_size"],
            unboxed=o["unboxed"],
            hint_boxes=bool(o["hint_boxes"]),
            allow_outside_images=bool(o["allow_outside_images"]),
            device=o["device"],
            overwrite=bool(o["overwrite"]),
        )
        for row in summary["skipped_images"]:
            print(f"skipped {row['image']}: {row['reason']}")
        print(
            f"{summary['num_images']} images: mean reward {summary['mean_reward_before']:.4f} -> "
            f"{summary['mean_reward_after']:.4f}, artifact rate {summary['artifact_rate_before']:.3f} -> "
            f"{summary['artifact_rate_after']:.3f}, improved {summary['improved']:.1%}, worse {summary['worse']:.1%}"
        )
        print(f"wrote {Path(o['output_dir']) / JSONL_NAME}")
        return 0

    p.set_defaults(func=run)
    return p
