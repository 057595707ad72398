"""Every difference between the two Hugging Face stacks synartifact supports, in one place.

The oldest stack is ``constraints/oldest.txt`` (transformers 4.57, diffusers 0.39, huggingface_hub 0.36,
tokenizers 0.22, gradio 6.17); the newest is ``constraints/latest.txt`` (transformers 5.x, diffusers 0.42,
huggingface_hub 2.x, tokenizers 0.23, gradio 6.31). Code elsewhere calls these helpers instead of testing versions
itself, so that dropping the old stack is deleting the old branch of each helper here. Each names the release
that changed the behaviour.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import version as _installed_version
from typing import Any

from packaging.version import Version

__all__ = [
    "TRANSFORMERS_5",
    "align_mm_token_type_ids",
    "apply_warmup_ratio",
    "library_version",
]


@cache
def library_version(name: str) -> Version:
    """The installed version of a distribution (read from its metadata, without importing it)."""
    return Version(_installed_version(name))


# transformers 5.0 removed TrainingArguments.warmup_ratio and .overwrite_output_dir, made warmup_steps a float
# (< 1 means a ratio of the total steps) and moved tokenizers onto the `tokenizers` library.
TRANSFORMERS_5: bool = library_version("transformers") >= Version("5.0.0.dev0")


def apply_warmup_ratio(args: Any) -> None:
    """Give ``args.warmup_ratio`` (our SFT field on both stacks) its meaning on transformers 5.

    transformers 4.57 reads ``warmup_ratio`` itself; 5.x reads a ratio from ``warmup_steps`` when it is below 1.
    Setting both is refused as 4.57 would silently prefer ``warmup_steps``.
    """
    ratio = getattr(args, "warmup_ratio", 0.0) or 0.0
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"warmup_ratio must be in [0, 1); got {ratio}.")
    if not ratio:
        return
    if args.warmup_steps:
        raise ValueError(
            f"Set warmup_ratio ({ratio}) or warmup_steps ({args.warmup_steps}), not both: which one wins differs "
            "between transformers 4 and 5."
        )
    if TRANSFORMERS_5:
        args.warmup_steps = ratio


def align_mm_token_type_ids(collator: Any, processor: Any) -> Any:
    """A data collator whose batches carry ``mm_token_type_ids`` as long as their ``input_ids``.

    transformers 5's Qwen2-VL processors return ``mm_token_type_ids`` (which the model's rope index reads); TRL
    0.23.1's prompt-completion collator concatenates the completion to ``input_ids`` but keeps the prompt's types, so
    the model fails ("The shape of the mask [752] ... does not match ... [727]"). The types are rebuilt from the final
    ``input_ids`` by the processor's own rule. transformers 4.57 returns no such field: the collator is kept as is.
    """
    rebuild = getattr(processor, "create_mm_token_type_ids", None)
    if rebuild is None:
        return collator

    def collate(examples):
        batch = collator(examples)
        if "mm_token_type_ids" in batch:
            import torch

            ids = batch["input_ids"]
            batch["mm_token_type_ids"] = torch.as_tensor(rebuild(ids), dtype=torch.long, device=ids.device)
        return batch

    return collate


def image_token_features(model: Any, inputs: dict, num_images: int) -> Any:
    """The image tokens the language model reads (after the projector) as one ``[num_images, tokens, hidden]`` tensor.

    ``get_image_features`` returns a tensor or a list per image (transformers 4.57: LLaVA a list of ``[tokens,
    hidden]``, Idefics3 ``[images, tokens, hidden]``, Qwen2-VL a tuple per image) or, from 5.0, an output object whose
    ``pooler_output`` holds them (Idefics3: one ``[images * tokens, hidden]`` tensor in a list)."""
    import torch

    pixel_values = inputs["pixel_values"]
    extra = {k: v for k, v in inputs.items() if k != "pixel_values"}
    out = model.get_image_features(pixel_values, **extra)
    if not torch.is_tensor(out) and not isinstance(out, (list, tuple)):
        out = out.pooler_output
    if isinstance(out, (list, tuple)):
        out = torch.cat([t.reshape(-1, t.shape[-1]) for t in out])
    return out.reshape(num_images, -1, out.shape[-1])
