"""The repairer: classify -> mask the artifacts' boxes -> inpaint -> classify again -> keep the candidate only if its
reward is higher (:class:`ArtifactRepairer`), and loading the inpainting pipeline (:func:`load_inpainter`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from synartifact.images import to_rgb
from synartifact.repair.masks import DEFAULT_MARGIN, Box, _check_box, _paste, artifact_mask
from synartifact.repair.results import RepairResult, RepairRound
from synartifact.report import ArtifactReport

__all__ = ["ArtifactRepairer", "UNBOXED_POLICIES", "load_inpainter"]

# what to paint for an artifact named without a box (and no hint): nothing, the whole image, or the window whose
# covering lowers the classifier's probability of that kind most (:mod:`synartifact.repair.locate`)
UNBOXED_POLICIES: tuple[str, ...] = ("skip", "image", "locate")


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
        from synartifact.utils import is_local_path

        name = os.fspath(inpainter)
        if is_local_path(name) and not (Path(name) / "model_index.json").is_file():
            raise FileNotFoundError(
                f"Inpainter {name!r} is not a diffusers pipeline folder (no model_index.json) nor a Hub id: build "
                "one with `synartifact tiny sd-inpaint --out DIR` or name e.g. "
                "stable-diffusion-v1-5/stable-diffusion-inpainting."
            )
        from synartifact.hub_access import require_hub

        require_hub(name, "inpainter")  # before the seconds of importing diffusers
        import torch
        from diffusers import AutoPipelineForInpainting

        device = _device(device)
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        try:
            pipe = AutoPipelineForInpainting.from_pretrained(name, torch_dtype=dtype)
        except OSError as err:  # not on the Hub, not in the cache (offline), no model_index.json: as the classifier
            raise FileNotFoundError(
                f"Could not load the inpainter {name!r} from the Hub or its cache ({err}): pass a diffusers "
                "inpainting pipeline folder or an 'org/name' Hub id that can be fetched."
            ) from err
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
    is higher. See :mod:`synartifact.repair`.

    ``classifier``: an :class:`~synartifact.classifier.ArtifactClassifier` or its folder / Hub id. ``inpainter``: a
    diffusers inpainting pipeline or its folder / Hub id. ``reward``: an
    :class:`~synartifact.reward.ArtifactReward` (or any object with ``score_images``); default: one on the
    classifier in ``generate`` mode, read from the reports already made (no second pass through the model).
    ``unboxed``: what to paint for a kind named without a box (:data:`UNBOXED_POLICIES`); with ``"locate"`` the
    boxes come from ``locator`` (an object with ``presence(images)``; default: the classifier's own first-token
    probabilities, :class:`~synartifact.reward.ArtifactReward` in score mode) by occlusion
    (:func:`~synartifact.repair.locate.locate_artifacts`).
    """

    def __init__(
        self,
        classifier: Any,
        inpainter: Any,
        reward: Any = None,
        *,
        margin: float = DEFAULT_MARGIN,
        feather: float | None = None,
        num_inference_steps: int = 20,
        guidance_scale: float = 7.5,
        strength: float = 1.0,
        resolution: int | None = None,
        batch_size: int = 8,
        unboxed: str = "skip",
        locator: Any = None,
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
        if locator is not None and not hasattr(locator, "presence"):
            raise ValueError(f"locator must have a presence(images) method, got {type(locator).__name__}.")
        self._locator: Any = locator

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
        # each active image's report with occlusion boxes where it named kinds without one ("locate"); an image whose
        # last repair was not kept is the same image, so its boxes are kept too (a kept repair drops the entry)
        boxed: dict[int, ArtifactReport] = {}
        bar = tqdm(range(rounds), desc="repair", unit="round", disable=not self.progress)
        for round_index in bar:
            plans = {}
            fresh = [i for i in active if i not in boxed]
            boxed.update(
                zip(fresh, self._locate([current[i] for i in fresh], [reports[i] for i in fresh], fresh, hints))
            )
            if round_index == 0:
                # the report before repair shows where occlusion found what the classifier named without a box
                before = [(boxed.get(i, r), v) for i, (r, v) in enumerate(before)]
            for i in active:
                boxes, had_unboxed = self._boxes(boxed[i], hints[i])
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
                    boxed.pop(i, None)
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
        from synartifact.reward import ArtifactReward

        reward = self.reward
        if isinstance(reward, ArtifactReward) and reward.mode == "generate" and reward.classifier is self.classifier:
            # generate mode reads the same greedy answers these reports hold: score them without a second pass
            return [reward.report_reward(report) for report in reports]
        return [float(v) for v in reward.score_images(images)]

    def _locate(
        self, images: list[Image.Image], reports: list[ArtifactReport], index: list[int], hints: list[list[Box]]
    ) -> list[ArtifactReport]:
        """The reports of images ``index`` with occlusion boxes for the kinds named without a box, with
        ``unboxed="locate"`` and no hints for that image (:func:`~synartifact.repair.locate.with_located_boxes`);
        the others as they are."""
        todo = [k for k, i in enumerate(index) if self.unboxed == "locate" and not hints[i]]
        if not any(a.bbox is None for k in todo for a in reports[k].artifacts):
            return list(reports)
        from synartifact.repair.locate import occlusion_scorer, with_located_boxes

        if self._locator is None:
            # the classifier's own first-token probabilities, whatever reward judges the repairs
            self._locator = occlusion_scorer(self.classifier)
        out = list(reports)
        located = with_located_boxes(self._locator, [images[k] for k in todo], [reports[k] for k in todo])
        for k, report in zip(todo, located):
            out[k] = report
        return out

    def _boxes(self, report: ArtifactReport, hints: list[Box]) -> tuple[list[Box], bool]:
        """The boxes to mask for one report (its own and, with ``unboxed="locate"``, occlusion's), and whether some
        artifact had no box of its own."""
        boxes = [tuple(a.bbox) for a in report.artifacts if a.bbox is not None]
        missing = any(a.bbox is None for a in report.artifacts)
        if missing:
            if hints:
                boxes += hints
            elif self.unboxed == "image":
                boxes.append((0.0, 0.0, 1.0, 1.0))
        return [b for b in boxes if b[2] > b[0] and b[3] > b[1]], missing or bool(report.located)  # type: ignore[misc]

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
