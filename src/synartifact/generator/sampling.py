"""Sampling from a text-to-image pipeline: prompts from a file or a dataset, seeded images, image grids.

Shared by DDPO (held-out samples), the generator's evaluation and the tiny SD's pre-training."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synartifact.utils import is_local_path

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_PROMPTS",
    "held_out_prompts",
    "load_prompts",
    "sample_images",
    "save_image_grid",
    "split_prompts",
    "to_device_pipeline",
]

# Used when no prompt source is given (`prompts: null`): held out and trained on like any prompt list.
DEFAULT_PROMPTS: tuple[str, ...] = (
    "a portrait photo of a smiling woman",
    "a man holding a tennis racket",
    "a street sign with a shop name",
    "a red car parked by a wooden house",
    "a close-up of a hand holding a cup of coffee",
    "a cat sitting on a sofa in warm evening light",
    "an astronaut standing next to a rocket",
    "a bowl of fruit on a kitchen table",
    "two children playing football in a park",
    "a motorcycle on a mountain road at sunset",
    "a dog running on the beach",
    "a bookshelf full of old books",
)


def load_prompts(source: str | None, split: str = "train", max_prompts: int | None = None) -> list[str]:
    """Distinct non-empty prompts from a text file (one a line), a dataset folder or Hub id with a ``prompt`` column.

    ``None`` gives :data:`DEFAULT_PROMPTS`. A dataset without the split falls back to its first split.
    """
    if source is None:
        return list(DEFAULT_PROMPTS)[:max_prompts]
    path = Path(source)
    if path.is_file():
        if path.suffix in (".parquet", ".json", ".jsonl", ".csv"):
            import datasets

            kind = {".jsonl": "json"}.get(path.suffix, path.suffix[1:])
            column = datasets.load_dataset(kind, data_files=str(path), split="train")
            prompts = _prompt_column(column, str(path))
        else:
            prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    else:
        if not path.exists() and is_local_path(source):
            raise FileNotFoundError(
                f"Prompt source {source!r} does not exist: give a text file (one prompt a line), a dataset folder "
                "or a Hub dataset id with a 'prompt' column."
            )
        try:
            from synartifact.data import load_artifact_dataset

            data = load_artifact_dataset(source)
        except ImportError:
            import datasets

            data = datasets.load_dataset(source)
        if hasattr(data, "keys"):
            if split not in data:
                fallback = next(iter(data.keys()))
                logger.warning("Dataset %s has no split %r: reading prompts from %r.", source, split, fallback)
                split = fallback
            data = data[split]
        prompts = _prompt_column(data, source)
    seen: dict[str, None] = {}
    for prompt in prompts:
        prompt = " ".join(str(prompt or "").split())
        if prompt:
            seen.setdefault(prompt, None)
    result = list(seen)
    if not result:
        logger.warning("Prompt source %s holds no non-empty prompt: using the built-in prompts.", source)
        result = list(DEFAULT_PROMPTS)
    return result[:max_prompts] if max_prompts else result


def held_out_prompts(source: str | None, num_prompts: int | None = 8, split: str = "test") -> list[str]:
    """The evaluation prompts of a prompt source: what ``synartifact evaluate-generator`` scores by default and what
    DDPO keeps out of training.

    The first ``num_prompts`` distinct prompts of a dataset's ``split`` split, of a text file or of
    :data:`DEFAULT_PROMPTS` (``source=None``); all of them for ``None``, none for 0.
    """
    if num_prompts is not None and num_prompts <= 0:
        return []
    return load_prompts(source, split, num_prompts)


def split_prompts(
    source: str | None,
    num_eval: int,
    train_split: str = "train",
    max_prompts: int | None = None,
    holdout: bool = True,
    eval_split: str = "test",
) -> tuple[list[str], list[str]]:
    """DDPO's training and evaluation prompts from one source.

    Evaluation: :func:`held_out_prompts` (``num_eval`` of them). Training: the ``train_split`` prompts, without the
    evaluation ones when ``holdout`` (unless that would leave none), at most ``max_prompts``.
    """
    evaluation = held_out_prompts(source, num_eval, eval_split)
    train = load_prompts(source, train_split)
    if holdout and evaluation:
        held = set(evaluation)
        kept = [p for p in train if p not in held]
        if kept:
            train = kept
        else:
            logger.warning(
                "Every training prompt of %s is one of the %d evaluation prompts: training on them anyway.",
                source or "the built-in prompt list",
                len(evaluation),
            )
    return (train[:max_prompts] if max_prompts else train), evaluation


def _prompt_column(data: Any, where: str) -> list[str]:
    if "prompt" not in data.column_names:
        raise ValueError(f"Dataset {where} has no 'prompt' column (columns: {', '.join(data.column_names)}).")
    return list(data["prompt"])


def to_device_pipeline(pipe: Any, device: str | None) -> Any:
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample_images(
    pipe: Any,
    prompts: Sequence[str],
    seed: int,
    num_inference_steps: int = 20,
    guidance_scale: float = 5.0,
    eta: float = 1.0,
    batch_size: int = 8,
) -> list:
    """One PIL image per prompt; image ``i`` uses a CPU generator seeded with ``seed * 100003 + i`` (batch-independent).

    A pipeline whose parts are in half precision (DDPO's ``mixed_precision``: a bf16 VAE and text encoder, float32
    LoRA weights) is sampled under autocast to that precision, as TRL samples it; a float32 pipeline as it is."""
    import contextlib

    import torch

    vae = getattr(pipe, "vae", None)
    dtype = getattr(vae, "dtype", torch.float32)
    autocast = (
        torch.autocast(vae.device.type, dtype=dtype)
        if dtype in (torch.float16, torch.bfloat16)
        else contextlib.nullcontext()
    )
    images = []
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start : start + batch_size])
        generators = [torch.Generator("cpu").manual_seed(seed * 100003 + start + i) for i in range(len(chunk))]
        with torch.no_grad(), autocast:
            out = pipe(
                chunk,
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                eta=eta,
                generator=generators,
                output_type="pil",
            )
        images += list(out.images)
    return images


def save_image_grid(
    rows: Sequence[tuple[str, Sequence[tuple[Any, float]]]], path: Path | str, titles: Sequence[str] | None = None
) -> Path:
    """A PNG grid: one row per ``(label, [(PIL image, reward), ...])``, each image captioned with its reward (none
    for a reward of ``None``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = max(1, max(len(items) for _, items in rows))
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.6 * ncols + 1, 1.8 * len(rows)), squeeze=False)
    for r, (label, items) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(items):
                image, value = items[c]
                ax.imshow(image)
                if value is not None:
                    ax.set_xlabel(f"reward {value:.2f}", fontsize=7)
                if r == 0 and titles is not None and c < len(titles):
                    ax.set_title(titles[c][:28], fontsize=6)
            else:
                ax.axis("off")
        axes[r][0].set_ylabel(label, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
