"""What the VLM families do differently, decided in one place from their type names (a model's ``model_type``, a
processor's class): Idefics3 / SmolVLM processors take a list of images per text, Qwen2-VL and Qwen2.5-VL compute
their own (M-RoPE) positions and have a processor that can be rebuilt without a video processor."""

from __future__ import annotations

from typing import Any

__all__ = ["is_qwen_vl", "model_computes_positions", "processor_nests_images"]

_NESTED_IMAGE_PROCESSORS = ("idefics", "smolvlm")


def is_qwen_vl(model_type: str) -> bool:
    """Whether a ``model_type`` (or image processor type) names the Qwen2-VL family (Qwen2-VL, Qwen2.5-VL)."""
    return str(model_type).lower().startswith("qwen2")


def model_computes_positions(model: Any) -> bool:
    """Whether the model computes its own position ids from the inputs (Qwen2-VL's 3-D M-RoPE): callers must not
    pass 1-D positions to it."""
    return is_qwen_vl(getattr(getattr(model, "config", None), "model_type", "") or "")


def processor_nests_images(processor: Any) -> bool:
    """Whether the processor takes one list of images per text (Idefics3 / SmolVLM) rather than a flat list."""
    name = type(processor).__name__.lower()
    return any(family in name for family in _NESTED_IMAGE_PROCESSORS)
