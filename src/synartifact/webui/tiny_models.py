"""The Spaces' offline defaults: the tiny untrained models (VLM classifier, Stable Diffusion, a random LoRA,
inpainter) built from configs into ``$SYNARTIFACT_CACHE`` (default ``~/.cache/synartifact``) the first time a page
needs one, once per folder. The only part of the Spaces' code that imports :mod:`synartifact.tiny`."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synartifact.utils import atomic_dir

__all__ = ["ENV_CACHE", "build_once", "cache_dir", "tiny_inpainter", "tiny_lora", "tiny_sd", "tiny_vlm"]

ENV_CACHE = "SYNARTIFACT_CACHE"


def cache_dir() -> Path:
    """Where the tiny offline models are built: ``$SYNARTIFACT_CACHE`` or ``~/.cache/synartifact``."""
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "synartifact").expanduser()


_BUILD_LOCK = threading.RLock()


def build_once(folder: Path, build: Callable[[Path], Any]) -> Path:
    """Build a tiny model folder unless it exists; a concurrent builder winning the rename is fine."""
    with _BUILD_LOCK:
        if not folder.is_dir():
            folder.parent.mkdir(parents=True, exist_ok=True)
            try:
                build(folder)
            except FileExistsError:
                if not folder.is_dir():
                    raise
    return folder


def tiny_vlm(folder: Path) -> None:
    from synartifact.tiny import build_tiny_vlm

    build_tiny_vlm(folder, arch="llava", seed=0)


def tiny_sd(folder: Path) -> None:
    from synartifact.tiny import build_tiny_sd

    build_tiny_sd(folder, seed=0)


def tiny_lora(folder: Path) -> None:
    """A random LoRA on the tiny UNet, standing in for a DDPO-refined adapter (so the two sides differ)."""
    import torch
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    base = build_once(cache_dir() / "tiny-sd", tiny_sd)
    pipe = StableDiffusionPipeline.from_pretrained(base, safety_checker=None, requires_safety_checker=False)
    torch.manual_seed(1)
    # init_lora_weights=False: both LoRA matrices random, so the adapter changes the images.
    pipe.unet.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    )
    with atomic_dir(folder) as tmp:
        StableDiffusionPipeline.save_lora_weights(
            tmp, unet_lora_layers=get_peft_model_state_dict(pipe.unet), safe_serialization=True
        )


def tiny_inpainter(folder: Path) -> None:
    from synartifact.tiny import build_tiny_sd_inpaint

    build_tiny_sd_inpaint(folder, seed=0)
