"""Repair: inpaint the artifacts the classifier finds, check again, keep the better image.

Each round, for every image still judged to have artifacts: the classifier's boxes (padded by ``margin``) become a
mask; an inpainting pipeline (diffusers ``StableDiffusionInpaintPipeline`` / ``AutoPipelineForInpainting``)
repaints the masked region, prompted with the image's prompt when there is one and told to avoid the artifacts'
captions (the negative prompt); its output is pasted back inside the mask only, with a feathered edge that stays
inside the mask, so every pixel outside the mask is bit-identical to the input. The candidate is classified again
and kept only if its reward (:class:`~synartifact.reward.ArtifactReward`) is higher: the image returned is the best
one seen, never worse than the original. Rounds stop when nothing is found or they are spent.

>>> repairer = ArtifactRepairer("outputs/classifier", "outputs/inpainter")                # doctest: +SKIP
>>> result = repairer.repair([image], prompts=["a cat on a sofa"], rounds=2, seed=0)[0]   # doctest: +SKIP
>>> result.reward_before, result.reward_after, result.mask_area                           # doctest: +SKIP

``synartifact repair --classifier DIR --inpainter DIR_OR_HUB_ID --images FOLDER_OR_DATASET --out DIR`` runs it on a
folder of images or a dataset split and writes the repaired images, a before/after grid and ``repair.jsonl``.

A classifier that answers without boxes (the ``labels`` answer mode) names kinds but not places: such artifacts are
repaired only where ``hints`` (known boxes, e.g. a dataset's annotations) say, or over the whole image with
``unboxed="image"``; by default (``"skip"``) they are reported and left alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from synartifact.images import to_rgb
from synartifact.report import ArtifactReport

__all__ = [
    "ArtifactRepairer",
    "RepairResult",
    "RepairRound",
    "UNBOXED_POLICIES",
    "artifact_mask",
    "load_inpainter",
    "repair_folder",
    "add_cli",
]

logger = logging.getLogger(__name__)

UNBOXED_POLICIES: tuple[str, ...] = ("skip", "image")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
JSONL_NAME = "repair.jsonl"
GRID_NAME = "before_after.png"

Box = tuple[float, float, float, float]


# ------------------------------------------------------------------------------------------------------------
# Masks
# ------------------------------------------------------------------------------------------------------------


def _check_box(box: Any, where: str) -> Box:
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: a box is 4 numbers (x0, y0, x1, y1) in [0, 1], got {box!r}.") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or not (x0 < x1 and y0 < y1):
        raise ValueError(f"{where}: box {box!r} must be finite with x0 < x1 and y0 < y1 (normalized to [0, 1]).")
    return x0, y0, x1, y1


def artifact_mask(
    size: tuple[int, int], boxes: Sequence[Box], margin: float = 0.05, feather: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The repair mask of an image of ``size`` (width, height): ``(hard, alpha)``.

    ``hard`` (bool, ``[height, width]``) covers each normalized box padded by ``margin`` times the image's width
    (left, right) and height (top, bottom), clipped to the image. ``alpha`` (float in [0, 1]) is ``hard`` feathered
    inward by a Gaussian of ``feather`` pixels (default: 2 % of the longer side, at least 1): 0 wherever ``hard``
    is False, so blending with it leaves every pixel outside the mask untouched.
    """
    width, height = int(size[0]), int(size[1])
    if not 0.0 <= float(margin) <= 1.0:
        raise ValueError(f"margin must be a fraction of the image side in [0, 1], got {margin!r}.")
    hard = np.zeros((height, width), dtype=bool)
    for box in boxes:
        x0, y0, x1, y1 = _check_box(box, "artifact_mask")
        # a hair of slack so that float error (0.7 * 50 = 35.000000000000004) does not add a pixel row
        left = max(0, math.floor((x0 - margin) * width + 1e-6))
        top = max(0, math.floor((y0 - margin) * height + 1e-6))
        right = min(width, math.ceil((x1 + margin) * width - 1e-6))
        bottom = min(height, math.ceil((y1 + margin) * height - 1e-6))
        if right > left and bottom > top:
            hard[top:bottom, left:right] = True
    radius = max(1.0, 0.02 * max(width, height)) if feather is None else float(feather)
    if radius <= 0 or not hard.any():
        return hard, hard.astype(np.float32)
    blurred = Image.fromarray(hard.astype(np.uint8) * 255).filter(ImageFilter.GaussianBlur(radius))
    alpha = np.asarray(blurred, dtype=np.float32) / 255.0
    # rescaled so the blur's edge value (~0.5) becomes 0 and the inside 1: the feather stays within the mask
    alpha = np.clip(2.0 * alpha - 1.0, 0.0, 1.0) * hard
    alpha[hard & (alpha <= 0)] = 1.0 / 255.0
    return hard, alpha


def _paste(original: Image.Image, inpainted: Image.Image, hard: np.ndarray, alpha: np.ndarray) -> Image.Image:
    """``original`` with ``inpainted`` blended in by ``alpha``; pixels outside ``hard`` are the original's bytes."""
    source = np.asarray(original, dtype=np.uint8)
    repaint = np.asarray(inpainted.convert("RGB").resize(original.size, Image.BICUBIC), dtype=np.float32)
    blended = source.astype(np.float32) * (1.0 - alpha[..., None]) + repaint * alpha[..., None]
    out = np.where(hard[..., None], np.clip(np.round(blended), 0, 255).astype(np.uint8), source)
    return Image.fromarray(out, "RGB")


# ------------------------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------------------------


@dataclass
class RepairRound:
    """One round for one image: the boxes masked, the mask, the candidate's report and reward, and whether it won."""

    index: int
    boxes: list[Box]
    mask: Image.Image
    negative_prompt: str
    report: ArtifactReport
    reward_before: float
    reward_after: float
    accepted: bool

    def to_dict(self) -> dict:
        """A JSON-ready summary (no images)."""
        return {
            "round": self.index,
            "boxes": [list(b) for b in self.boxes],
            "mask_area": float(np.asarray(self.mask).astype(bool).mean()),
            "negative_prompt": self.negative_prompt,
            "kinds": sorted(self.report.kinds),
            "reward_before": self.reward_before,
            "reward_after": self.reward_after,
            "accepted": self.accepted,
        }


@dataclass
class RepairResult:
    """The repair of one image: the image returned (the best seen), the original, the mask of every pixel that may
    differ from it, the reports and rewards before and after, and each round."""

    image: Image.Image
    original: Image.Image
    mask: Image.Image
    report_before: ArtifactReport
    report_after: ArtifactReport
    reward_before: float
    reward_after: float
    rounds: list[RepairRound] = field(default_factory=list)
    prompt: str | None = None
    unboxed: bool = False

    @property
    def kinds_before(self) -> list[str]:
        """Kinds found in the original."""
        return sorted(self.report_before.kinds)

    @property
    def kinds_after(self) -> list[str]:
        """Kinds found in the image returned."""
        return sorted(self.report_after.kinds)

    @property
    def changed(self) -> bool:
        """Whether a repair was kept (the image differs from the original)."""
        return any(r.accepted for r in self.rounds)

    @property
    def improved(self) -> bool:
        """Whether the reward went up."""
        return self.reward_after > self.reward_before

    @property
    def mask_area(self) -> float:
        """The fraction of the image's pixels the final mask covers (0 when nothing was kept)."""
        return float(np.asarray(self.mask).astype(bool).mean())

    def to_dict(self) -> dict:
        """A JSON-ready summary (no images)."""
        return {
            "kinds_before": self.kinds_before,
            "kinds_after": self.kinds_after,
            "reward_before": self.reward_before,
            "reward_after": self.reward_after,
            "rounds": len(self.rounds),
            "accepted_rounds": [r.index for r in self.rounds if r.accepted],
            "mask_area": self.mask_area,
            "unboxed_artifacts": self.unboxed,
            "round_details": [r.to_dict() for r in self.rounds],
        }


# ------------------------------------------------------------------------------------------------------------
# The inpainter
# ------------------------------------------------------------------------------------------------------------


def _device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def load_inpainter(inpainter: Any, device: str | None = None) -> Any:
    """A diffusers inpainting pipeline from a pipeline object (used as is) or a folder / Hub id
    (``AutoPipelineForInpainting``, fp16 on CUDA), on ``device`` (default: CUDA when available, else CPU)."""
    if isinstance(inpainter, (str, os.PathLike)):
        import torch
        from diffusers import AutoPipelineForInpainting

        from synartifact.utils import is_local_path

        name = os.fspath(inpainter)
        if is_local_path(name) and not (Path(name) / "model_index.json").is_file():
            raise FileNotFoundError(
                f"Inpainter {name!r} is not a diffusers pipeline folder (no model_index.json) nor a Hub id: build "
                "one with `synartifact tiny sd-inpaint --out DIR` or name e.g. "
                "stable-diffusion-v1-5/stable-diffusion-inpainting."
            )
        device = _device(device)
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        pipe = AutoPipelineForInpainting.from_pretrained(name, torch_dtype=dtype)
        pipe.to(device)
    elif callable(inpainter) and hasattr(inpainter, "unet") and hasattr(inpainter, "vae"):
        pipe = inpainter
    else:
        raise ValueError(
            f"inpainter must be a diffusers inpainting pipeline, a pipeline folder or a Hub id, not "
            f"{type(inpainter).__name__}."
        )
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    return pipe


def _native_resolution(pipe: Any) -> int:
    sample = getattr(getattr(pipe.unet, "config", None), "sample_size", 64)
    sample = sample[0] if isinstance(sample, (list, tuple)) else sample
    return int(sample) * int(getattr(pipe, "vae_scale_factor", 8))


def _working_size(size: tuple[int, int], resolution: int) -> tuple[int, int]:
    """The inpainting size: the longer side at ``resolution``, both sides multiples of 8."""
    width, height = size
    scale = resolution / max(width, height)
    return tuple(max(8, int(round(v * scale / 8)) * 8) for v in (width, height))  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------------------
# The repairer
# ------------------------------------------------------------------------------------------------------------


class ArtifactRepairer:
    """Classify -> mask the artifacts' boxes -> inpaint -> classify again -> keep the candidate only if its reward
    is higher. See the module docstring.

    ``classifier``: an :class:`~synartifact.classifier.ArtifactClassifier` or its folder / Hub id. ``inpainter``: a
    diffusers inpainting pipeline or its folder / Hub id. ``reward``: an
    :class:`~synartifact.reward.ArtifactReward` (or any object with ``score_images``); default: one on the
    classifier in ``generate`` mode, read from the reports already made (no second pass through the model).
    """

    def __init__(
        self,
        classifier: Any,
        inpainter: Any,
        reward: Any = None,
        *,
        margin: float = 0.05,
        feather: float | None = None,
        num_inference_steps: int = 20,
        guidance_scale: float = 7.5,
        strength: float = 1.0,
        resolution: int | None = None,
        batch_size: int = 8,
        unboxed: str = "skip",
        device: str | None = None,
        progress: bool = True,
    ) -> None:
        if not 0.0 <= float(margin) <= 1.0:
            raise ValueError(f"margin must be a fraction of the image side in [0, 1], got {margin!r}.")
        if int(num_inference_steps) < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps!r}.")
        if not 0.0 < float(strength) <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {strength!r}.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}.")
        if unboxed not in UNBOXED_POLICIES:
            raise ValueError(f"unboxed must be one of {', '.join(UNBOXED_POLICIES)}, got {unboxed!r}.")
        if resolution is not None and int(resolution) < 8:
            raise ValueError(f"resolution must be >= 8 pixels, got {resolution!r}.")
        if isinstance(classifier, (str, os.PathLike)):
            from synartifact.classifier import ArtifactClassifier

            classifier = ArtifactClassifier.from_pretrained(os.fspath(classifier), device=device)
        if not hasattr(classifier, "predict"):
            raise ValueError(f"classifier must have a predict(images) method, got {type(classifier).__name__}.")
        self.classifier = classifier
        self.inpainter = load_inpainter(inpainter, device)
        if reward is None:
            from synartifact.reward import ArtifactReward

            reward = ArtifactReward(classifier, mode="generate")
        if not hasattr(reward, "score_images"):
            raise ValueError(f"reward must have a score_images(images) method, got {type(reward).__name__}.")
        self.reward = reward
        self.margin = float(margin)
        self.feather = feather
        self.num_inference_steps = int(num_inference_steps)
        self.guidance_scale = float(guidance_scale)
        self.strength = float(strength)
        self.resolution = int(resolution) if resolution else _native_resolution(self.inpainter)
        self.batch_size = int(batch_size)
        self.unboxed = unboxed
        self.progress = progress

    # ---- public API ------------------------------------------------------------------------------------------

    def repair(
        self,
        images: Any,
        prompts: Sequence[str | None] | None = None,
        rounds: int = 2,
        seed: int = 0,
        hints: Sequence[Sequence[Box] | None] | None = None,
    ) -> list[RepairResult]:
        """Repair each image in up to ``rounds`` rounds; one :class:`RepairResult` per image, in order.

        ``prompts``: one per image (``None`` or ``""``: no prompt). ``hints``: per image, known artifact boxes
        (normalized), used for artifacts the classifier names without a box. ``seed`` fixes the inpainting noise of
        each image and round, whatever the batching.
        """
        from tqdm.auto import tqdm

        originals = [to_rgb(image, i) for i, image in enumerate(_as_list(images))]
        if not originals:
            raise ValueError("No images given: pass at least one image.")
        n = len(originals)
        if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 1:
            raise ValueError(f"rounds must be a whole number >= 1, got {rounds!r}.")
        prompts = [None] * n if prompts is None else list(prompts)
        if len(prompts) != n:
            raise ValueError(f"Got {n} images but {len(prompts)} prompts: give one prompt per image (or none).")
        hints = [None] * n if hints is None else list(hints)
        if len(hints) != n:
            raise ValueError(f"Got {n} images but {len(hints)} hints: give one list of boxes per image (or none).")
        hints = [[_check_box(b, f"hints[{i}]") for b in (h or [])] for i, h in enumerate(hints)]

        current = list(originals)
        reports = self._classify(current)
        rewards = self._rewards(current, reports)
        before = list(zip(reports, rewards))
        union = [np.zeros((im.height, im.width), dtype=bool) for im in originals]
        history: list[list[RepairRound]] = [[] for _ in range(n)]
        unboxed = [False] * n
        active = [i for i in range(n) if reports[i].artifacts]
        bar = tqdm(range(rounds), desc="repair", unit="round", disable=not self.progress)
        for round_index in bar:
            plans = {}
            for i in active:
                boxes, had_unboxed = self._boxes(reports[i], hints[i])
                unboxed[i] = unboxed[i] or had_unboxed
                if boxes:
                    plans[i] = boxes
            bar.set_postfix(to_repair=len(plans))
            if not plans:
                break
            order = sorted(plans)
            masks = {i: artifact_mask(current[i].size, plans[i], self.margin, self.feather) for i in order}
            negatives = {i: _negative_prompt(reports[i]) for i in order}
            candidates = self._inpaint(
                [current[i] for i in order],
                [masks[i][0] for i in order],
                [prompts[i] or "" for i in order],
                [negatives[i] for i in order],
                [seed * 1_000_003 + i * 101 + round_index for i in order],
            )
            pasted = [_paste(current[i], cand, *masks[i]) for i, cand in zip(order, candidates)]
            new_reports = self._classify(pasted)
            new_rewards = self._rewards(pasted, new_reports)
            for i, image, report, value in zip(order, pasted, new_reports, new_rewards):
                accepted = value > rewards[i]
                history[i].append(
                    RepairRound(
                        index=round_index,
                        boxes=list(plans[i]),
                        mask=Image.fromarray(masks[i][0].astype(np.uint8) * 255, "L"),
                        negative_prompt=negatives[i],
                        report=report,
                        reward_before=rewards[i],
                        reward_after=value,
                        accepted=accepted,
                    )
                )
                if accepted:
                    current[i], reports[i], rewards[i] = image, report, value
                    union[i] |= masks[i][0]
            active = [i for i in order if reports[i].artifacts]
        return [
            RepairResult(
                image=current[i],
                original=originals[i],
                mask=Image.fromarray(union[i].astype(np.uint8) * 255, "L"),
                report_before=before[i][0],
                report_after=reports[i],
                reward_before=before[i][1],
                reward_after=rewards[i],
                rounds=history[i],
                prompt=prompts[i],
                unboxed=unboxed[i],
            )
            for i in range(n)
        ]

    # ---- internals -------------------------------------------------------------------------------------------

    def _classify(self, images: list[Image.Image]) -> list[ArtifactReport]:
        reports = self.classifier.predict(images, batch_size=self.batch_size)
        for report, image in zip(reports, images):
            if report.width is None or report.height is None:
                report.width, report.height = image.size
        return reports

    def _rewards(self, images: list[Image.Image], reports: list[ArtifactReport]) -> list[float]:
        from synartifact.reward import ArtifactReward, reward_from_kinds

        reward = self.reward
        if isinstance(reward, ArtifactReward) and reward.mode == "generate" and reward.classifier is self.classifier:
            # generate mode reads the same greedy answers these reports hold: score them without a second pass
            from synartifact.prompts import answer_kinds

            mode = getattr(self.classifier, "mode", "labels")
            values = []
            for report in reports:
                kinds, bad = answer_kinds(report.raw_text, mode, report.kinds)
                value = reward.unparsable_reward if bad else reward_from_kinds(kinds, reward.weights)
                values.append(float(value) if math.isfinite(value) else reward.unparsable_reward)
            return values
        return [float(v) for v in reward.score_images(images)]

    def _boxes(self, report: ArtifactReport, hints: list[Box]) -> tuple[list[Box], bool]:
        """The boxes to mask for one report, and whether some artifact had no box of its own."""
        boxes = [tuple(a.bbox) for a in report.artifacts if a.bbox is not None]
        unboxed = any(a.bbox is None for a in report.artifacts)
        if unboxed:
            if hints:
                boxes += hints
            elif self.unboxed == "image":
                boxes.append((0.0, 0.0, 1.0, 1.0))
        return [b for b in boxes if b[2] > b[0] and b[3] > b[1]], unboxed  # type: ignore[misc]

    def _inpaint(
        self,
        images: list[Image.Image],
        masks: list[np.ndarray],
        prompts: list[str],
        negatives: list[str],
        seeds: list[int],
    ) -> list[Image.Image]:
        """One inpainted image per input at its working size, batched by working size."""
        import torch

        sizes = [_working_size(image.size, self.resolution) for image in images]
        out: list[Image.Image | None] = [None] * len(images)
        for size in dict.fromkeys(sizes):
            group = [i for i, s in enumerate(sizes) if s == size]
            for start in range(0, len(group), self.batch_size):
                chunk = group[start : start + self.batch_size]
                work = [images[i].resize(size, Image.BICUBIC) for i in chunk]
                # BOX-resized then thresholded: a mask pixel is repainted if any of its source pixels is
                work_masks = [
                    Image.fromarray(
                        ((np.asarray(Image.fromarray(masks[i]).resize(size, Image.BOX)) > 0) * 255).astype(np.uint8),
                        "L",
                    )
                    for i in chunk
                ]
                with torch.no_grad():
                    result = self.inpainter(
                        prompt=[prompts[i] for i in chunk],
                        negative_prompt=[negatives[i] for i in chunk],
                        image=work,
                        mask_image=work_masks,
                        height=size[1],
                        width=size[0],
                        num_inference_steps=self.num_inference_steps,
                        guidance_scale=self.guidance_scale,
                        strength=self.strength,
                        generator=[torch.Generator("cpu").manual_seed(int(seeds[i])) for i in chunk],
                        output_type="pil",
                    )
                for i, image in zip(chunk, result.images):
                    out[i] = image
        return out  # type: ignore[return-value]


def _as_list(images: Any) -> list:
    from synartifact.images import as_image_list

    return as_image_list(images)


def _negative_prompt(report: ArtifactReport) -> str:
    """The artifacts' captions (or, without captions, their kinds' names) as the inpainter's negative prompt."""
    parts = [a.caption.strip() if a.caption and a.caption.strip() else a.name.lower() for a in report.artifacts]
    return ", ".join(dict.fromkeys(parts))


# ------------------------------------------------------------------------------------------------------------
# Folders and datasets: `synartifact repair`
# ------------------------------------------------------------------------------------------------------------


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
    source: str,
    split: str,
    prompts_column: str | None,
    max_images: int | None,
    hint_boxes: bool,
) -> tuple[list[_Item], list[dict]]:
    """The images to repair and the inputs refused (``{"image", "reason"}``)."""
    items, bad, taken = [], [], set()
    if not _is_dataset(source):
        folder = Path(source)
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"--images {source} holds no image files ({', '.join(IMAGE_SUFFIXES)}).")
        for path in files[:max_images] if max_images else files:
            name = str(path.relative_to(folder))
            try:
                image = to_rgb(path)
            except (ValueError, FileNotFoundError) as err:
                bad.append({"image": name, "reason": str(err)})
                continue
            items.append(_Item(name, _output_name(name, taken), image, None, []))
        return items, bad
    from datasets import DatasetDict
    from datasets import Image as ImageFeature

    from synartifact.data import load_artifact_dataset

    data = load_artifact_dataset(source)
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


def repair_folder(
    classifier: Any,
    inpainter: Any,
    images: str,
    out: str | Path,
    *,
    rounds: int = 2,
    margin: float = 0.05,
    seed: int = 0,
    prompts_column: str | None = "prompt",
    split: str = "test",
    max_images: int | None = None,
    num_inference_steps: int = 20,
    guidance_scale: float = 7.5,
    batch_size: int = 8,
    unboxed: str = "skip",
    hint_boxes: bool = False,
    device: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Repair a folder of images or a dataset split into ``out``; return the summary.

    Writes the repaired images (under the input file names; a dataset's rows as ``<image_id or index>.png``), a
    before/after grid (``before_after.png``), ``repair.jsonl`` (one line per image: ``image``, ``output``,
    ``kinds_before``, ``kinds_after``, ``reward_before``, ``reward_after``, ``rounds``, ``mask_area``, ...),
    ``skipped.jsonl`` (inputs that are not readable images, with the reason) and ``summary.json``. The folder
    appears only when complete.
    """
    from synartifact.utils import atomic_dir

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists: choose another output folder or pass --overwrite.")
    items, bad = _load_items(str(images), split, prompts_column, max_images, hint_boxes)
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
    summary.update({"images": str(images), "skipped": len(bad), "rounds": rounds, "seed": seed, "margin": margin})
    with atomic_dir(out, overwrite=overwrite) as tmp:
        with open(tmp / JSONL_NAME, "w", encoding="utf-8") as handle:
            for item, result in zip(items, results):
                target = tmp / item.output
                target.parent.mkdir(parents=True, exist_ok=True)
                result.image.save(target)
                handle.write(json.dumps({"image": item.name, "output": item.output, **result.to_dict()}) + "\n")
        if bad:
            (tmp / "skipped.jsonl").write_text("".join(json.dumps(row) + "\n" for row in bad), encoding="utf-8")
        save_repair_grid(results, [item.name for item in items], tmp / GRID_NAME)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    summary["skipped_images"] = bad
    return summary


def summarize(results: Sequence[RepairResult]) -> dict:
    """Artifact rate and mean reward before and after, and the share of images improved, unchanged and worse."""
    n = len(results)
    if not n:
        return {"num_images": 0}
    return {
        "num_images": n,
        "artifact_rate_before": sum(bool(r.report_before.artifacts) for r in results) / n,
        "artifact_rate_after": sum(bool(r.report_after.artifacts) for r in results) / n,
        "mean_reward_before": float(np.mean([r.reward_before for r in results])),
        "mean_reward_after": float(np.mean([r.reward_after for r in results])),
        "improved": sum(r.reward_after > r.reward_before for r in results) / n,
        "unchanged": sum(r.reward_after == r.reward_before for r in results) / n,
        "worse": sum(r.reward_after < r.reward_before for r in results) / n,
        "mean_mask_area": float(np.mean([r.mask_area for r in results])),
        "unboxed": sum(r.unboxed for r in results) / n,
    }


# The command's options and their defaults; a --config YAML may give any of them (its keys are these names).
CLI_DEFAULTS: dict[str, Any] = {
    "classifier": None,
    "inpainter": None,
    "images": None,
    "output_dir": None,
    "rounds": 2,
    "margin": 0.05,
    "seed": 0,
    "prompts_column": "prompt",
    "split": "test",
    "max_images": None,
    "num_inference_steps": 20,
    "guidance_scale": 7.5,
    "batch_size": 8,
    "unboxed": "skip",
    "hint_boxes": False,
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
        help="artifacts named without a box (labels-mode classifiers): skip them, or repaint the whole image "
        "(default: skip)",
    )
    p.add_argument(
        "--hint-boxes",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="for a dataset: use its annotated boxes where the classifier names a kind without a box",
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
