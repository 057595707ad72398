"""Tiny models built from configs, with offline tokenizers and processors: random weights, no download.

Tests, the offline default (``make demo``) and the Spaces build their tiny models here, so that one code path
serves tiny folders and real checkpoints alike; code that loads real checkpoints never imports this package.
``synartifact tiny vlm --out DIR``, ``synartifact tiny sd --out DIR`` and ``synartifact tiny sd-inpaint --out DIR``
write them to folders.
"""

from synartifact.tiny.sd import build_pretrained_tiny_sd, build_tiny_sd, build_tiny_sd_inpaint
from synartifact.tiny.vlm import VLM_ARCHS, build_tiny_vlm, build_vlm_tokenizer, get_tiny_vlm

__all__ = [
    "VLM_ARCHS",
    "build_pretrained_tiny_sd",
    "build_tiny_sd",
    "build_tiny_sd_inpaint",
    "build_tiny_vlm",
    "build_vlm_tokenizer",
    "get_tiny_vlm",
]
