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
    "write_portable_processor_files",
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


# transformers 5.0 saves tokenizers as `TokenizersBackend` with `extra_special_tokens` as a list, the image
# processor inside processor_config.json and RoPE settings as `rope_parameters`; 4.57 knows none of them (it raises
# "Tokenizer class TokenizersBackend does not exist", finds no preprocessor_config.json, and Qwen2-VL fails on a
# missing `rope_scaling["mrope_section"]`), and it silently re-initializes a 5.x LLaVA's vision tower, whose
# weights 5.x saves under other names. 5.x reads the 4.57 spellings too, so a folder written in both loads on
# both stacks.
_PORTABLE_TOKENIZER_CLASSES = {"TokenizersBackend": "PreTrainedTokenizerFast"}


def write_portable_processor_files(folder: Any) -> None:
    """Rewrite the config, tokenizer and processor files that transformers 5 saved in ``folder`` so that
    transformers 4.57 loads them as well (no-op for files already in its spellings).

    ``tokenizer_config.json``: ``tokenizer_class`` ``TokenizersBackend`` becomes ``PreTrainedTokenizerFast`` (the
    same ``tokenizer.json`` model on both) and a list of ``extra_special_tokens`` becomes
    ``additional_special_tokens``. ``preprocessor_config.json`` is written from ``processor_config.json``'s
    ``image_processor`` when missing. ``config.json``: each (sub)config's ``rope_parameters`` is also written as
    4.57's ``rope_theta`` and, when it is more than a plain RoPE, ``rope_scaling``. The weights: 5.x saves a LLaVA's
    CLIP/SigLIP vision tower as ``vision_tower.embeddings...``, where 4.57 reads ``vision_tower.vision_model.embeddings...``
    and, finding none, starts the vision tower from random weights with only a warning; the tensors are renamed to
    4.57's names, which 5.x maps back when it loads. Each file is replaced whole (written beside it, then renamed).
    """
    import json
    from pathlib import Path

    from synartifact.utils import write_text_atomic

    folder = Path(folder)

    def rewrite(path: Path, data: dict) -> None:
        write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    tokenizer_file = folder / "tokenizer_config.json"
    if tokenizer_file.is_file():
        config = json.loads(tokenizer_file.read_text())
        changed = False
        portable = _PORTABLE_TOKENIZER_CLASSES.get(config.get("tokenizer_class"))
        if portable:
            config["tokenizer_class"], changed = portable, True
        extra = config.get("extra_special_tokens")
        if isinstance(extra, list):
            known = list(config.get("additional_special_tokens") or [])
            config["additional_special_tokens"] = known + [t for t in extra if t not in known]
            config["extra_special_tokens"], changed = {}, True
        if changed:
            rewrite(tokenizer_file, config)
    config_file = folder / "config.json"
    if config_file.is_file():
        config = json.loads(config_file.read_text())
        if _add_rope_scaling(config) + sum(_add_rope_scaling(v) for v in config.values() if isinstance(v, dict)):
            rewrite(config_file, config)
        _portable_weight_names(folder, config)
    processor_file, image_file = folder / "processor_config.json", folder / "preprocessor_config.json"
    if processor_file.is_file() and not image_file.exists():
        processor = json.loads(processor_file.read_text())
        image = processor.get("image_processor")
        if isinstance(image, dict):
            image = dict(image)
            if processor.get("processor_class"):
                image.setdefault("processor_class", processor["processor_class"])
            rewrite(image_file, image)


def _add_rope_scaling(config: dict) -> bool:
    """4.57's ``rope_theta`` / ``rope_scaling`` beside 5.x's ``rope_parameters`` in one (sub)config dict."""
    params = config.get("rope_parameters")
    if not isinstance(params, dict) or "rope_scaling" in config:
        return False
    if "rope_theta" in params:
        config.setdefault("rope_theta", params["rope_theta"])
    scaling = {k: v for k, v in params.items() if k != "rope_theta"}
    if scaling.get("rope_type", "default") != "default" or "mrope_section" in scaling:
        if "mrope_section" in scaling:  # 4.57's Qwen2-VL names the multimodal RoPE "default"
            scaling["rope_type"] = scaling["type"] = "default"
        config["rope_scaling"] = scaling
    return True


# LLaVA-family configs whose vision tower 4.57 builds as a `*VisionModel` holding a `vision_model` (CLIP, SigLIP)
_NESTED_VISION_MODELS = ("clip_vision_model", "siglip_vision_model")


def _portable_weight_names(folder: Any, config: dict) -> None:
    """Rename a LLaVA's vision-tower tensors from 5.x's names to 4.57's, in ``model.safetensors`` or its shards."""
    import json
    import os

    vision = config.get("vision_config") or {}
    if (
        not str(config.get("model_type", "")).startswith("llava")
        or vision.get("model_type") not in _NESTED_VISION_MODELS
    ):
        return

    def renamed(key: str) -> str:
        for prefix in ("model.vision_tower.", "vision_tower."):
            if key.startswith(prefix) and not key.startswith(prefix + "vision_model."):
                return prefix + "vision_model." + key[len(prefix) :]
        return key

    index_file = folder / "model.safetensors.index.json"
    index = json.loads(index_file.read_text()) if index_file.is_file() else None
    shards = sorted(set(index["weight_map"].values())) if index else ["model.safetensors"]
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from synartifact.utils import write_text_atomic

    for shard in shards:
        path = folder / shard
        if not path.is_file():
            continue
        with safe_open(str(path), framework="pt") as f:  # the names only: a shard is loaded when one needs renaming
            if all(renamed(k) == k for k in f.keys()):
                continue
        tensors = load_file(str(path))
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        save_file({renamed(k): v for k, v in tensors.items()}, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, path)
    if index and any(renamed(k) != k for k in index["weight_map"]):
        index["weight_map"] = {renamed(k): v for k, v in index["weight_map"].items()}
        write_text_atomic(index_file, json.dumps(index, indent=2) + "\n")
