"""Pre-train a tiny VLM's vision side (vision tower + projector) on an artifact dataset, before SFT.

A real VLM (LLaVA-1.5, Qwen2.5-VL, SmolVLM) comes with a vision tower pre-trained on hundreds of millions of images;
the tiny VLM that :func:`synartifact.tiny.build_tiny_vlm` builds from configs has random weights, and SFT alone must
then teach it to see through the language-model loss, one answer token at a time. This module gives it the
pre-training a real vision tower has, in minutes on a CPU, as :mod:`synartifact.generator.pretrain` does for the
tiny Stable Diffusion.

The objective (dense, on the image tokens the language model reads, i.e. after the projector):

- **where and what**: each image token (one cell of the token grid) predicts, through a linear head, which artifact
  kinds cover its cell (a kind counts when its box covers at least :data:`CELL_COVER` of the cell): a per-cell
  multi-label kind map;
- **the box**: each covered cell regresses the normalized box ``[x0, y0, x1, y1]`` of the artifact that covers it
  most (L1), so a token inside an artifact carries the whole box: SFT then only has to read it out as text;
- **whether at all**: the tokens, max-pooled, predict the image's kinds (multi-label), as the answer names them;
- **what the cell looks like** (after MaskFeat, Wei et al. 2022, which regresses hand-made HOG descriptors): each
  token regresses its cell's colour moments, its colour's deviation from the image's, and its gradient and
  Laplacian energy (:func:`cell_descriptors`, standardized over the split). A from-scratch patch embedding learns
  the kinds slowly from the artifact labels alone (a blur or a texture is a change in exactly these statistics);
  with this term more kinds emerge in the same steps (``benchmarks/vision_pretrain.py`` measures both).

The heads are thrown away; what stays is a vision side whose tokens say, linearly, which artifact sits where. The
language model stays as built (random): SFT teaches it the question-answer template. Only the training split is
used; the figures in ``vision_pretrain.json`` (and the folder's ``README.md``) are measured on the held-out split
through the same linear heads: per-kind F1 of the image-level head, and the mean IoU of the box read from the tokens
of each true artifact's kind.

``synartifact tiny vlm --out DIR --pretrain-dataset outputs/demo/dataset`` or :func:`pretrain_vision`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["pretrain_vision", "cell_targets", "cell_descriptors", "VISION_PRETRAIN_FILE", "CELL_COVER"]

VISION_PRETRAIN_FILE = "vision_pretrain.json"
# A kind is present in a token's cell when its box covers at least this share of the cell.
CELL_COVER = 0.25


def cell_targets(artifacts: Sequence[dict], grid: int, num_kinds: int):
    """Per-cell targets of one image on a ``grid`` x ``grid`` token grid (row-major, cell ``r * grid + c``).

    ``artifacts``: the schema's ``[{"label": int, "bbox": [x0, y0, x1, y1] (0-1)}, ...]``; a label < 0 (no kind)
    counts as an artifact with no kind. Returns ``(kinds [cells, num_kinds] 0/1, boxes [cells, 4], covered
    [cells] 0/1, image_kinds [num_kinds] 0/1)`` as float32 numpy arrays; a cell's box is the one covering most of it.
    """
    import numpy as np

    cells = grid * grid
    kinds = np.zeros((cells, num_kinds), np.float32)
    boxes = np.zeros((cells, 4), np.float32)
    cover = np.zeros(cells, np.float32)
    image_kinds = np.zeros(num_kinds, np.float32)
    side = 1.0 / grid
    for artifact in artifacts:
        x0, y0, x1, y1 = (float(v) for v in artifact["bbox"])
        label = int(artifact["label"]) if artifact.get("label") is not None else -1
        if 0 <= label < num_kinds:
            image_kinds[label] = 1.0
        for r in range(grid):
            dy = max(0.0, min(y1, (r + 1) * side) - max(y0, r * side))
            if dy <= 0:
                continue
            for c in range(grid):
                dx = max(0.0, min(x1, (c + 1) * side) - max(x0, c * side))
                share = dx * dy / (side * side)
                if share < CELL_COVER:
                    continue
                cell = r * grid + c
                if 0 <= label < num_kinds:
                    kinds[cell, label] = 1.0
                if share > cover[cell]:
                    cover[cell] = share
                    boxes[cell] = (x0, y0, x1, y1)
    return kinds, boxes, (cover > 0).astype(np.float32), image_kinds


def cell_descriptors(image: Any, grid: int):
    """Hand-made descriptors of each cell of a ``grid`` x ``grid`` split of an RGB image (row-major), ``[cells, 14]``:
    per-channel mean and standard deviation (6), the mean's deviation from the whole image's (3), mean absolute
    Laplacian and horizontal / vertical gradient of the grey image (3), and the grey mean and its deviation (2).
    Pixels in [0, 1]; the image is resized to a multiple of ``grid`` first."""
    import numpy as np

    side = max(grid, (max(image.size) // grid) * grid)
    a = np.asarray(image.convert("RGB").resize((side, side)), dtype=np.float32) / 255.0
    grey = a.mean(-1)
    lap = np.zeros_like(grey)
    lap[1:-1, 1:-1] = np.abs(
        4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    )
    gx = np.abs(np.diff(grey, axis=1, append=grey[:, -1:]))
    gy = np.abs(np.diff(grey, axis=0, append=grey[-1:]))
    c = side // grid

    def cells(x):
        return x.reshape(grid, c, grid, c, -1).mean((1, 3)).reshape(grid * grid, -1)

    mean = cells(a)
    std = np.sqrt(np.maximum(cells(a**2) - mean**2, 0.0))
    grey_mean = cells(grey[..., None])
    parts = [mean, std, mean - a.mean((0, 1)), cells(lap[..., None]), cells(gx[..., None]), cells(gy[..., None])]
    parts += [grey_mean, grey_mean - grey.mean()]
    return np.concatenate(parts, -1).astype(np.float32)


def _image_inputs(processor: Any, images: list) -> list[dict]:
    """Each image's processor tensors, once, in the shape ``get_image_features`` takes (see :func:`_collate`)."""
    from synartifact.classifier.families import processor_nests_images

    image_processor = processor.image_processor
    keep = ("pixel_values", "pixel_attention_mask", "image_grid_thw")
    per_image: list[dict] = []
    for start in range(0, len(images), 256):
        chunk = images[start : start + 256]
        # Idefics3 batches are lists of images per sample
        batch = [[image] for image in chunk] if processor_nests_images(image_processor) else chunk
        inputs = {k: v for k, v in image_processor(batch, return_tensors="pt").items() if k in keep}
        if "image_grid_thw" in inputs:
            # Qwen2-VL: the patches of all images in one [patches, dim] tensor, split by each image's t * h * w
            sizes = inputs["image_grid_thw"].prod(-1).tolist()
            pixels = inputs["pixel_values"].split(sizes)
            per_image += [
                {"pixel_values": px, "image_grid_thw": inputs["image_grid_thw"][i : i + 1]}
                for i, px in enumerate(pixels)
            ]
        else:
            per_image += [{k: v[i : i + 1] for k, v in inputs.items()} for i in range(len(chunk))]
    return per_image


def _collate(items: list[dict]) -> dict:
    """One batch from per-image tensors (every family's image inputs concatenate along the first dimension)."""
    import torch

    return {k: torch.cat([item[k] for item in items]) for k in items[0]}


def _evaluate(features, grid, heads, targets, kinds_seen) -> dict:
    """Held-out figures of the linear heads: per-kind image-level F1 and the token-read box IoU per true artifact."""
    import numpy as np
    import torch

    from synartifact.classifier.metrics import box_iou
    from synartifact.taxonomy import SLUGS

    dense_head, box_head, image_head = heads[0], heads[1], heads[2]
    with torch.no_grad():
        image_prob = torch.sigmoid(image_head(features.max(1).values)).numpy()
        dense_prob = torch.sigmoid(dense_head(features)).numpy()
        box_pred = box_head(features).numpy()
    image_true = targets["image_kinds"]
    per_kind = {}
    for k in kinds_seen:
        pred, true = image_prob[:, k] >= 0.5, image_true[:, k] >= 0.5
        tp, fp, fn = int((pred & true).sum()), int((pred & ~true).sum()), int((~pred & true).sum())
        per_kind[SLUGS[k]] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    ious = []
    for i, artifacts in enumerate(targets["artifacts"]):
        for artifact in artifacts:
            k = int(artifact["label"])
            if k < 0:
                continue
            cells = np.flatnonzero(dense_prob[i, :, k] >= 0.5)
            if len(cells) == 0:
                ious.append(0.0)
                continue
            weights = dense_prob[i, cells, k][:, None]
            box = (box_pred[i, cells] * weights).sum(0) / weights.sum()
            ious.append(box_iou(box, artifact["bbox"]))
    return {
        "per_kind_f1": per_kind,
        "macro_f1": float(np.mean(list(per_kind.values()))) if per_kind else float("nan"),
        "box_iou": float(np.mean(ious)) if ious else float("nan"),
        "num_images": int(len(image_true)),
        "grid": grid,
    }


def _load_split(dataset: Any, split: str, max_images: int | None) -> tuple[list, list[list[dict]]]:
    from synartifact.data import load_artifact_dataset
    from synartifact.data.splits import select_split

    data = load_artifact_dataset(str(dataset)) if isinstance(dataset, (str, Path)) else dataset
    where = str(dataset) if isinstance(dataset, (str, Path)) else "the given dataset"
    if hasattr(data, "keys"):
        data = select_split(data, split, where)
    for column in ("image", "artifacts"):
        if column not in data.column_names:
            raise ValueError(
                f"{where} ({split}) has no {column!r} column (columns: {', '.join(data.column_names)}): vision "
                "pre-training needs each record's image and its artifacts (label and bbox)."
            )
    if max_images:
        data = data.select(range(min(int(max_images), len(data))))
    images, artifacts = [], []
    for i, row in enumerate(data):
        if row["image"] is None:
            raise ValueError(f"{where} ({split}) record {i}: 'image' is empty; every record needs an image.")
        images.append(row["image"].convert("RGB"))
        artifacts.append([{"label": a["label"], "bbox": list(a["bbox"])} for a in row["artifacts"] or []])
    return images, artifacts


def _plot(log: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for key in ("kinds", "boxes", "image", "cells"):
        ax.plot([r["step"] for r in log], [r[key] for r in log], lw=1, label=key)
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.set_title("vision pre-training losses", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


_CARD = """# Tiny VLM with a pre-trained vision side

`{base}` (built from configs, random weights) whose vision tower and projector were pre-trained on `{dataset}`
(split `{split}`, {num_images} images) for {epochs} epochs ({steps} steps, batch {batch_size}, learning rate {lr}) in
{seconds} s, by `synartifact.tiny.vision_pretrain` (written {date}). The language model is untouched: fine-tune the
whole model with `synartifact sft` before asking it anything.

Objective: each image token (a {grid}x{grid} grid) predicts which artifact kinds cover its cell and regresses the box
of the artifact covering it; the max-pooled tokens predict the image's kinds; each token regresses its cell's colour and gradient
statistics (weight {descriptor_weight}). Held-out figures of these linear probes on
`{test_split}` ({test_images} images):

| kind | image-level F1 |
|---|---:|
{rows}

Macro-F1 {macro_f1:.3f}; mean IoU of the box read from the tokens of each true artifact's kind: {box_iou:.3f}.
All figures: `vision_pretrain.json`; losses: `vision_pretrain_loss.png`.
"""


def pretrain_vision(
    base: str | Path,
    dataset: Any,
    out: str | Path,
    *,
    split: str = "train",
    test_split: str | None = "test",
    max_images: int | None = None,
    test_images: int = 600,
    epochs: int = 3,
    batch_size: int = 64,
    lr: float = 3e-3,
    descriptor_weight: float = 1.0,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    base_name: str | None = None,
) -> Path:
    """Pre-train the vision side of the VLM at ``base`` on ``dataset`` and write the whole VLM to ``out``.

    ``base`` may equal ``out`` with ``overwrite=True``. The folder appears only when complete and holds the model,
    its processor, ``vision_pretrain.json`` (settings, losses, held-out figures, time), ``vision_pretrain_loss.png``
    and a ``README.md`` card. ``base_name`` is what they record as the base (default: ``base``'s path).
    """
    import datetime

    import numpy as np
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm
    from transformers import AutoModelForImageTextToText

    from synartifact.classifier.loading import load_vlm_processor
    from synartifact.compat import image_token_features, write_portable_processor_files
    from synartifact.taxonomy import SLUGS
    from synartifact.utils import atomic_dir

    if epochs < 0 or batch_size < 1 or not lr > 0:
        raise ValueError(f"epochs must be >= 0, batch_size >= 1 and lr > 0 (got {epochs}, {batch_size}, {lr}).")
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists: pass overwrite=True (or --overwrite) to replace it.")
    started = time.perf_counter()
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_pretrained(str(base))
    processor = load_vlm_processor(str(base))
    model.eval()
    num_kinds = len(SLUGS)

    def encode(items: list[dict], train: bool) -> torch.Tensor:
        with torch.set_grad_enabled(train):
            return image_token_features(model, _collate(items), len(items))

    pil_images, artifacts = _load_split(dataset, split, max_images)
    images = _image_inputs(processor, pil_images)
    probe = encode(images[:1], False)
    tokens, hidden = int(probe.shape[1]), int(probe.shape[2])
    grid = int(round(math.sqrt(tokens)))
    if grid * grid != tokens:
        raise ValueError(f"{base}: {tokens} image tokens per image do not form a square grid; cannot map boxes.")
    descriptors = None
    if descriptor_weight:
        descriptors = torch.from_numpy(np.stack([cell_descriptors(image, grid) for image in pil_images]))
        center, scale = descriptors.mean((0, 1)), descriptors.std((0, 1)).clamp(min=1e-6)
        descriptors = (descriptors - center) / scale
    del pil_images
    per_image = [cell_targets(a, grid, num_kinds) for a in artifacts]
    dense_kinds = torch.from_numpy(np.stack([t[0] for t in per_image]))
    dense_boxes = torch.from_numpy(np.stack([t[1] for t in per_image]))
    covered = torch.from_numpy(np.stack([t[2] for t in per_image]))
    image_kinds = torch.from_numpy(np.stack([t[3] for t in per_image]))
    kinds_seen = [k for k in range(num_kinds) if image_kinds[:, k].any()]

    heads = torch.nn.ModuleList(
        [
            torch.nn.Linear(hidden, num_kinds),
            torch.nn.Linear(hidden, 4),
            torch.nn.Linear(hidden, num_kinds),
            torch.nn.Linear(hidden, descriptors.shape[-1] if descriptors is not None else 1),
        ]
    )
    vision_params = [p for n, p in model.named_parameters() if not _is_language(n)]
    for name, param in model.named_parameters():
        param.requires_grad_(not _is_language(name))
    optimizer = torch.optim.AdamW([*vision_params, *heads.parameters()], lr=lr, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(images) / batch_size)
    total = steps_per_epoch * epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / max(1, total // 20)) * 0.5 * (1 + math.cos(math.pi * s / max(1, total))),
    )
    generator = torch.Generator().manual_seed(seed)
    log: list[dict] = []
    model.train()
    step = 0
    with tqdm(total=total, desc="pretrain vision", disable=not progress) as bar:
        for _ in range(epochs):
            order = torch.randperm(len(images), generator=generator)
            for start in range(0, len(images), batch_size):
                index = order[start : start + batch_size]
                feats = encode([images[i] for i in index.tolist()], True)
                dense, box, image = heads[0](feats), heads[1](feats), heads[2](feats.max(1).values)
                mask = covered[index].unsqueeze(-1)
                loss_kinds = F.binary_cross_entropy_with_logits(dense, dense_kinds[index])
                loss_boxes = (F.l1_loss(box, dense_boxes[index], reduction="none") * mask).sum() / (
                    mask.sum() * 4
                ).clamp(min=1)
                loss_image = F.binary_cross_entropy_with_logits(image, image_kinds[index])
                loss_cells = (
                    F.mse_loss(heads[3](feats), descriptors[index]) if descriptors is not None else torch.zeros(())
                )
                loss = loss_kinds + loss_boxes + loss_image + descriptor_weight * loss_cells
                if not math.isfinite(float(loss.detach())):
                    raise FloatingPointError(f"vision pre-training loss is {float(loss)} at step {step}: lower lr.")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                log.append(
                    {
                        "step": step,
                        "kinds": float(loss_kinds.detach()),
                        "boxes": float(loss_boxes.detach()),
                        "image": float(loss_image.detach()),
                        "cells": float(loss_cells.detach()),
                    }
                )
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
                step += 1
    model.eval()
    for param in model.parameters():
        param.requires_grad_(True)

    held_out = None
    if test_split:
        test_imgs, test_artifacts = _load_split(dataset, test_split, test_images)
        test_imgs = _image_inputs(processor, test_imgs)
        with torch.no_grad():
            feats = torch.cat([encode(test_imgs[i : i + 128], False) for i in range(0, len(test_imgs), 128)])
        held_out = _evaluate(
            feats,
            grid,
            heads,
            {
                "image_kinds": np.stack([cell_targets(a, grid, num_kinds)[3] for a in test_artifacts]),
                "artifacts": test_artifacts,
            },
            kinds_seen,
        )

    def tail(key: str) -> float | None:
        values = [r[key] for r in log][-20:]
        return float(sum(values) / len(values)) if values else None

    summary = {
        "base": base_name or str(base),
        "dataset": str(dataset) if isinstance(dataset, (str, Path)) else type(dataset).__name__,
        "split": split,
        "test_split": test_split,
        "num_images": len(images),
        "epochs": epochs,
        "steps": step,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "grid": grid,
        "cell_cover": CELL_COVER,
        "descriptor_weight": descriptor_weight,
        "final_losses": {k: tail(k) for k in ("kinds", "boxes", "image", "cells")},
        "held_out": held_out,
        "seconds": round(time.perf_counter() - started, 1),
        "date": datetime.date.today().isoformat(),
    }
    with atomic_dir(out, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        write_portable_processor_files(tmp)
        (tmp / VISION_PRETRAIN_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        if log:
            _plot(log, tmp / "vision_pretrain_loss.png")
        if held_out is not None:
            rows = "\n".join(f"| {k} | {v:.3f} |" for k, v in held_out["per_kind_f1"].items())
            card = _CARD.format(
                **{k: summary[k] for k in ("base", "dataset", "split", "num_images", "epochs", "steps", "lr")},
                batch_size=batch_size,
                descriptor_weight=descriptor_weight,
                seconds=summary["seconds"],
                date=summary["date"],
                grid=grid,
                test_split=test_split,
                test_images=held_out["num_images"],
                rows=rows,
                macro_f1=held_out["macro_f1"],
                box_iou=held_out["box_iou"],
            )
            (tmp / "README.md").write_text(card, encoding="utf-8")
    logger.info("vision-pretrained VLM written to %s (%.0f s)", out, summary["seconds"])
    return out


def _is_language(name: str) -> bool:
    """Whether a parameter belongs to the language model (kept as built) rather than the vision side."""
    return "language_model" in name or name.startswith("lm_head") or ".lm_head" in name or "embed_tokens" in name
