"""The Spaces' models, loaded lazily, once per process, from environment variables (``SYNARTIFACT_CLASSIFIER``,
``SYNARTIFACT_GENERATOR_BASE``, ``SYNARTIFACT_GENERATOR_LORA``: a Hub id or a folder); without them the tiny offline
models (:mod:`.tiny_models`) stand in and :func:`demo_notice` says on the page that they are untrained. Importing
this module is cheap: torch, diffusers and the classifier are imported only when a model is first needed."""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from synartifact.utils import is_local_path
from synartifact.webui.tiny_models import build_once, cache_dir, tiny_lora, tiny_sd, tiny_vlm

__all__ = [
    "MODEL_LOCK",
    "ENV_CLASSIFIER",
    "ENV_GENERATOR_BASE",
    "ENV_GENERATOR_LORA",
    "GeneratorPair",
    "ModelSource",
    "classifier_for",
    "classifier_source",
    "demo_notice",
    "generator_sources",
    "get_classifier",
    "get_generator",
    "load_configured",
]

logger = logging.getLogger(__name__)

ENV_CLASSIFIER = "SYNARTIFACT_CLASSIFIER"
ENV_GENERATOR_BASE = "SYNARTIFACT_GENERATOR_BASE"
ENV_GENERATOR_LORA = "SYNARTIFACT_GENERATOR_LORA"


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: a Hub id or folder, and whether it is the untrained tiny offline default."""

    path: str
    tiny: bool

    @property
    def display_name(self) -> str:
        """How the page names the model: its Hub id, or a local folder's name only (never a server path)."""
        if not is_local_path(self.path):
            return self.path
        return Path(self.path.rstrip("/\\")).expanduser().name or "a local folder"


def classifier_source() -> ModelSource:
    """The classifier named by ``SYNARTIFACT_CLASSIFIER``, else the tiny offline VLM (built on first use)."""
    named = os.environ.get(ENV_CLASSIFIER, "").strip()
    if named:
        return ModelSource(named, tiny=False)
    return ModelSource(str(cache_dir() / "tiny-vlm-llava"), tiny=True)


def generator_sources() -> tuple[ModelSource, ModelSource | None]:
    """The base generator and its refined LoRA from the environment, else the tiny offline pair.

    A base named without a LoRA gives ``None`` for the LoRA: the refined side is then the base itself. A LoRA
    named without its base raises ``ValueError``.
    """
    base = os.environ.get(ENV_GENERATOR_BASE, "").strip()
    lora = os.environ.get(ENV_GENERATOR_LORA, "").strip()
    if lora and not base:
        raise ValueError(
            f"{ENV_GENERATOR_LORA} is set ({lora!r}) but {ENV_GENERATOR_BASE} is not: set it to the Stable Diffusion "
            "pipeline (Hub id or folder) that the LoRA was trained on."
        )
    if base:
        return ModelSource(base, tiny=False), (ModelSource(lora, tiny=False) if lora else None)
    return ModelSource(str(cache_dir() / "tiny-sd"), tiny=True), ModelSource(
        str(cache_dir() / "tiny-sd-lora"), tiny=True
    )


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# One model loads at a time (the classifier is shared by the classify, generate and repair caches).
MODEL_LOCK = threading.RLock()


@functools.cache
def classifier_for(path: str, tiny: bool):
    """The :class:`~synartifact.classifier.ArtifactClassifier` at ``path`` (built first when it is the tiny one),
    loaded once per process and shared by the page's analysis and repair."""
    from synartifact.classifier import ArtifactClassifier

    if tiny:
        build_once(Path(path), tiny_vlm)
    return ArtifactClassifier.from_pretrained(path)


def load_configured(load: Callable[[], Any], *named: tuple[ModelSource | None, str, str]) -> Any:
    """``load()``, its loading errors told without the server's paths: ``named`` is ``(source, environment variable,
    what)`` per model it loads. The page gets the name the user gave (a Hub id, a folder's name) and what to fix;
    the full error, paths included, goes to the server log."""
    try:
        return load()
    except (OSError, ValueError) as err:
        given = [(s, env, what) for s, env, what in named if s is not None and not s.tiny]
        if not given:
            raise
        logger.exception("could not load the configured model(s): %s", ", ".join(f"{e}={s.path}" for s, e, _ in given))
        for source, env, what in given:
            if is_local_path(source.path) and not Path(source.path).expanduser().exists():
                raise ValueError(
                    f"The {what} folder {source.display_name!r} set by {env} does not exist on the server: set {env} "
                    "to an existing folder or a Hub id."
                ) from None
        if all(not is_local_path(s.path) for s, _, _ in given):  # Hub ids only: their message names no server path
            raise ValueError(str(err)) from None
        names = ", ".join(f"{what} {s.display_name!r} ({env})" for s, env, what in given)
        raise ValueError(f"The model could not be loaded ({names}); the server log has the details.") from None


def get_classifier():
    """The process's :class:`~synartifact.classifier.ArtifactClassifier`, loaded on first call."""
    source = classifier_source()
    with MODEL_LOCK:
        return load_configured(
            lambda: classifier_for(source.path, source.tiny), (source, ENV_CLASSIFIER, "classifier")
        )


class GeneratorPair:
    """One Stable Diffusion pipeline that draws both sides: the base (LoRA off) and the refined (LoRA on).

    One pipeline with the adapter toggled keeps a single copy of the weights in memory; a lock serialises
    the calls, since toggling is not thread-safe.
    """

    def __init__(self, base: str, lora: str | None, device: str | None = None):
        import torch
        from diffusers import StableDiffusionPipeline

        from synartifact.hub_access import require_hub

        require_hub(base, "generator")
        if lora:
            require_hub(lora, "LoRA adapter")
        self.device = device or _device()
        dtype = torch.float16 if self.device == "cuda" else torch.float32
        self.pipe = StableDiffusionPipeline.from_pretrained(
            base, torch_dtype=dtype, safety_checker=None, requires_safety_checker=False
        )
        self.has_lora = bool(lora)
        if lora:
            weight_name = "pytorch_lora_weights.safetensors"
            if Path(lora).is_dir() and not (Path(lora) / weight_name).is_file():
                weight_name = None
            self.pipe.load_lora_weights(lora, weight_name=weight_name, adapter_name="refined")
        self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self._lock = threading.Lock()

    def generate(self, prompt: str, seed: int, steps: int, guidance: float, refined: bool) -> Image.Image:
        """One image for ``prompt``; the same seed gives the same starting noise on both sides."""
        import torch

        with self._lock:
            if self.has_lora:
                if refined:
                    self.pipe.enable_lora()
                else:
                    self.pipe.disable_lora()
            generator = torch.Generator(device="cpu").manual_seed(int(seed))
            result = self.pipe(
                prompt, num_inference_steps=int(steps), guidance_scale=float(guidance), generator=generator
            )
        return result.images[0].convert("RGB")


@functools.cache
def _generator_for(base: str, base_tiny: bool, lora: str | None, lora_tiny: bool) -> GeneratorPair:
    if base_tiny:
        build_once(Path(base), tiny_sd)
    if lora and lora_tiny:
        build_once(Path(lora), tiny_lora)
    return GeneratorPair(base, lora)


def get_generator() -> GeneratorPair:
    """The process's :class:`GeneratorPair`, loaded on first call."""
    base, lora = generator_sources()
    with MODEL_LOCK:
        return load_configured(
            lambda: _generator_for(base.path, base.tiny, lora.path if lora else None, bool(lora and lora.tiny)),
            (base, ENV_GENERATOR_BASE, "generator"),
            (lora, ENV_GENERATOR_LORA, "LoRA adapter"),
        )


def demo_notice(*sources: ModelSource | None) -> str:
    """A Markdown notice for the page: names the models (Hub id or folder name) and says plainly when one is an
    untrained tiny demo model."""
    tiny = [s for s in sources if s is not None and s.tiny]
    if not tiny:
        names = ", ".join(f"`{s.display_name}`" for s in sources if s is not None)
        return f"Models: {names}."
    return (
        "⚠️ **Untrained demo models.** No model was configured, so this page runs tiny models with random "
        "weights, built offline. Their answers, boxes and rewards are noise: they show how the app works, not "
        "what the method finds. Set `"
        + ENV_CLASSIFIER
        + "` (and for generation `"
        + ENV_GENERATOR_BASE
        + "`, `"
        + ENV_GENERATOR_LORA
        + "`) to a Hub id or a folder to use trained models."
    )
