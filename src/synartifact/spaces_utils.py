"""What the two Gradio Spaces (``spaces/classify``, ``spaces/generate``) share: input checks, models, display.

- Input checks that turn bad uploads and prompts into one friendly sentence (file too large, not an image,
  too many pixels, empty or too long prompt, out-of-range settings), never a traceback.
- Models loaded lazily, once per process, from environment variables (``SYNARTIFACT_CLASSIFIER``,
  ``SYNARTIFACT_GENERATOR_BASE``, ``SYNARTIFACT_GENERATOR_LORA``, ``SYNARTIFACT_INPAINTER``: a Hub id or a
  folder). Without them the tiny offline models of :mod:`synartifact.tiny` are built into ``$SYNARTIFACT_CACHE``
  (default ``~/.cache/synartifact``), and :func:`demo_notice` says on the page that they are untrained.
- Conversion of an :class:`~synartifact.report.ArtifactReport` into what ``gr.AnnotatedImage`` and
  ``gr.Dataframe`` show.

Needs the ``spaces`` extra (gradio). Importing this module is cheap: torch, diffusers and the classifier are
imported only when a model is first needed.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image, UnidentifiedImageError

from synartifact.images import MIN_SIDE, to_rgb
from synartifact.report import ArtifactReport
from synartifact.taxonomy import KINDS
from synartifact.utils import atomic_dir, is_local_path

__all__ = [
    "ENV_CLASSIFIER",
    "ENV_GENERATOR_BASE",
    "ENV_GENERATOR_LORA",
    "ENV_CACHE",
    "MAX_FILE_BYTES",
    "MAX_PIXELS",
    "MAX_SIDE",
    "MAX_PROMPT_CHARS",
    "TABLE_HEADERS",
    "KIND_COLORS",
    "ModelSource",
    "GeneratorPair",
    "validated_image",
    "cache_dir",
    "load_image",
    "validate_prompt",
    "validate_generation_settings",
    "classifier_source",
    "generator_sources",
    "get_classifier",
    "report_reward",
    "get_generator",
    "analyse",
    "annotations",
    "report_table",
    "report_summary",
    "demo_notice",
    "ENV_INPAINTER",
    "inpainter_source",
    "inpainter_notice",
    "get_repairer",
    "repair",
    "repair_summary",
    "trained_kinds",
    "example_images",
    "kinds_notice",
    "gpu",
    "user_errors",
]

logger = logging.getLogger(__name__)

ENV_CLASSIFIER = "SYNARTIFACT_CLASSIFIER"
ENV_GENERATOR_BASE = "SYNARTIFACT_GENERATOR_BASE"
ENV_GENERATOR_LORA = "SYNARTIFACT_GENERATOR_LORA"
ENV_CACHE = "SYNARTIFACT_CACHE"

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 25_000_000
MAX_SIDE = 8192
MAX_PROMPT_CHARS = 500
MAX_STEPS = 100
MAX_GUIDANCE = 30.0
MAX_SEED = 2**32 - 1

TABLE_HEADERS = ["kind", "group", "caption", "box (x0, y0, x1, y1)"]

# One colour per kind, stable across calls, so a legend reads the same on every image.
_PALETTE = (
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
    "#bfef45", "#fabed4", "#469990", "#9a6324", "#800000", "#000075",
)  # fmt: skip
KIND_COLORS: dict[str, str] = {k.name: _PALETTE[k.index % len(_PALETTE)] for k in KINDS}


def _human_bytes(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"


# ------------------------------------------------------------------------------------------------------------
# Input checks
# ------------------------------------------------------------------------------------------------------------


def load_image(
    source: Any,
    *,
    max_bytes: int = MAX_FILE_BYTES,
    max_pixels: int = MAX_PIXELS,
    max_side: int = MAX_SIDE,
) -> Image.Image:
    """Open an uploaded image (a path or PIL image; arrays, tensors and bytes also work) as an RGB PIL image, or
    raise ``ValueError`` with a message for the user.

    Checks, in order: the file exists and is at most ``max_bytes``; it is an image; its size (read from the
    header, before decoding) is at least ``MIN_SIDE`` and at most ``max_side`` on each side and ``max_pixels`` in
    all; it decodes. The pixels then come from :func:`synartifact.images.to_rgb`, as in every other stage (EXIF
    rotation applied; greyscale, palette, RGBA, CMYK and 16-bit images converted to RGB).
    """
    if source is None:
        raise ValueError("Please upload an image first.")
    if not isinstance(source, (str, os.PathLike, Image.Image)):  # an array, tensor or bytes (API callers)
        try:
            source = to_rgb(source, 0, max_pixels=None)
        except ValueError as err:
            raise ValueError(f"This is not an image ({err})") from err
    if isinstance(source, Image.Image):
        image = source
        _check_dimensions(image.size, max_pixels, max_side)
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError("The uploaded file could not be found; please upload it again.")
        size = path.stat().st_size
        if size > max_bytes:
            raise ValueError(
                f"The file is too large ({_human_bytes(size)}): please upload an image of at most "
                f"{_human_bytes(max_bytes)}."
            )
        if size == 0:
            raise ValueError("The uploaded file is empty: please upload a PNG, JPEG or WebP image.")
        try:
            image = Image.open(path)
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as err:
            if isinstance(err, Image.DecompressionBombError):
                raise ValueError(
                    f"The image has too many pixels: please upload one of at most {max_pixels / 1e6:.0f} megapixels."
                ) from err
            raise ValueError(
                "This file is not an image that can be read (it may be corrupt or in an unsupported format): "
                "please upload a PNG, JPEG or WebP image."
            ) from err
        _check_dimensions(image.size, max_pixels, max_side)
    try:
        if getattr(image, "n_frames", 1) > 1:  # an animation: its first frame
            image.seek(0)
        # A truncated file must fail here rather than give a half-grey image (unless a caller opted into that).
        image.load()
    except (OSError, ValueError, SyntaxError) as err:
        raise ValueError(
            "This image could not be decoded (the file looks corrupt or truncated): please upload another one."
        ) from err
    try:
        return to_rgb(image, 0, max_pixels=None)
    except ValueError as err:
        logger.warning("could not convert an uploaded image: %s", err)
        raise ValueError(
            f"This image's format ({image.mode} pixels) is not supported: please upload a PNG, JPEG or WebP image."
        ) from err


def _check_dimensions(size: tuple[int, int], max_pixels: int, max_side: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ValueError("The image has no pixels: please upload another one.")
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ValueError(
            f"The image is too small ({width} x {height} pixels): please upload one of at least {MIN_SIDE} x "
            f"{MIN_SIDE} pixels."
        )
    if width > max_side or height > max_side or width * height > max_pixels:
        raise ValueError(
            f"The image is too large ({width} x {height} pixels): please upload one of at most {max_side} "
            f"pixels a side and {max_pixels / 1e6:.0f} megapixels in all."
        )


def validate_prompt(prompt: Any, max_chars: int = MAX_PROMPT_CHARS) -> str:
    """Return the prompt stripped of surrounding whitespace, or raise ``ValueError`` if empty or too long."""
    text = "" if prompt is None else " ".join(str(prompt).split())
    if not text:
        raise ValueError("Please write a prompt: it is empty.")
    if len(text) > max_chars:
        raise ValueError(f"The prompt is too long ({len(text)} characters): please keep it to {max_chars}.")
    return text


def validate_generation_settings(seed: Any, steps: Any, guidance: Any) -> tuple[int, int, float]:
    """Check seed (0 to 2**32-1), steps (1 to 100) and guidance (0 to 30); return them as int, int, float."""
    try:
        seed_f, steps_f, guidance_f = float(seed), float(steps), float(guidance)
    except (TypeError, ValueError) as err:
        raise ValueError("Seed, steps and guidance must be numbers.") from err
    if not all(math.isfinite(v) for v in (seed_f, steps_f, guidance_f)):
        raise ValueError("Seed, steps and guidance must be finite numbers.")
    if not 0 <= seed_f <= MAX_SEED or seed_f != int(seed_f):
        raise ValueError(f"The seed must be a whole number from 0 to {MAX_SEED}.")
    if not 1 <= steps_f <= MAX_STEPS or steps_f != int(steps_f):
        raise ValueError(f"Steps must be a whole number from 1 to {MAX_STEPS}.")
    if not 0 <= guidance_f <= MAX_GUIDANCE:
        raise ValueError(f"Guidance must be between 0 and {MAX_GUIDANCE:g}.")
    return int(seed_f), int(steps_f), guidance_f


def validated_image(**kwargs: Any) -> gr.Image:
    """A ``gr.Image`` input whose upload is checked by :func:`load_image`; bad files give a friendly ``gr.Error``.

    Plain ``gr.Image`` decodes the upload before the event function runs, so a corrupt or huge file fails
    with a generic processing error. This one passes the event function an RGB PIL image or says what is wrong.
    (The component's ``preprocess`` is replaced on the instance: a ``gr.Image`` subclass would make gradio write
    a ``.pyi`` stub next to this module.)
    """
    component = gr.Image(**{"type": "pil", **kwargs})
    original = component.preprocess

    def preprocess(payload: Any) -> Image.Image | None:
        if payload is None:
            return None
        try:
            path = getattr(payload, "path", None)
            if path is None:
                # A pasted data: URL; gradio decodes it, then the same checks apply.
                return load_image(original(payload))
            return load_image(path)
        except ValueError as err:
            raise gr.Error(str(err), title="Invalid image") from None
        except (OSError, SyntaxError, Image.DecompressionBombError) as err:  # Pillow could not decode the file
            logger.warning("could not decode an uploaded image: %r", err)
            raise gr.Error(
                "This file is not an image that can be read: please upload a PNG, JPEG or WebP image.",
                title="Invalid image",
            ) from None
        except Exception:  # noqa: BLE001 - not the file's fault: say so, and keep the traceback in the log
            logger.exception("reading an upload failed")
            raise gr.Error(
                "The server failed while reading the upload (this is not a problem with your image); please try "
                "again, and report it if it keeps happening.",
                title="Server error",
            ) from None

    component.preprocess = preprocess  # type: ignore[method-assign]
    return component


def user_errors(fn: Callable) -> Callable:
    """Wrap an event function: ``ValueError`` becomes a ``gr.Error`` with its message, anything else a short
    apology (logged with its traceback on the server, never shown on the page)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (ValueError, FileNotFoundError) as err:
            raise gr.Error(str(err)) from None
        except Exception:  # noqa: BLE001 - the page shows a sentence, the log keeps the traceback
            logger.exception("event %s failed", getattr(fn, "__name__", fn))
            raise gr.Error("Something went wrong while running the model; please try again.") from None

    return wrapper


def gpu(fn: Callable | None = None, **kwargs) -> Callable:
    """``spaces.GPU`` (ZeroGPU: a GPU is attached for the call) where the ``spaces`` package is installed,
    otherwise the function unchanged. Usable as ``@gpu`` or ``@gpu(duration=60)``."""
    try:
        import spaces  # type: ignore[import-not-found]

        decorator = spaces.GPU(**kwargs) if kwargs else spaces.GPU
    except Exception:  # noqa: BLE001 - no spaces package (or not on a Space): run as is
        decorator = None
    if fn is None:
        return (lambda f: decorator(f)) if decorator is not None else (lambda f: f)
    return decorator(fn) if decorator is not None else fn


# ------------------------------------------------------------------------------------------------------------
# Models, once per process
# ------------------------------------------------------------------------------------------------------------


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


def cache_dir() -> Path:
    """Where the tiny offline models are built: ``$SYNARTIFACT_CACHE`` or ``~/.cache/synartifact``."""
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "synartifact").expanduser()


_BUILD_LOCK = threading.RLock()


def _build_once(folder: Path, build: Callable[[Path], Any]) -> Path:
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


def _tiny_vlm(folder: Path) -> None:
    from synartifact.tiny import build_tiny_vlm

    build_tiny_vlm(folder, arch="llava", seed=0)


def _tiny_sd(folder: Path) -> None:
    from synartifact.tiny import build_tiny_sd

    build_tiny_sd(folder, seed=0)


def _tiny_lora(folder: Path) -> None:
    """A random LoRA on the tiny UNet, standing in for a DDPO-refined adapter (so the two sides differ)."""
    import torch
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    base = _build_once(cache_dir() / "tiny-sd", _tiny_sd)
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


_MODEL_LOCK = threading.RLock()


@functools.cache
def _classifier_for(path: str, tiny: bool):
    from synartifact.classifier import ArtifactClassifier

    if tiny:
        _build_once(Path(path), _tiny_vlm)
    return ArtifactClassifier.from_pretrained(path)


def _load_configured(load: Callable[[], Any], *named: tuple[ModelSource | None, str, str]) -> Any:
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
    with _MODEL_LOCK:
        return _load_configured(
            lambda: _classifier_for(source.path, source.tiny), (source, ENV_CLASSIFIER, "classifier")
        )


def report_reward(report: ArtifactReport, mode: str = "labels") -> float:
    """The reward of the image a report describes, by :class:`~synartifact.reward.ArtifactReward`'s rule
    (``1 -`` the weighted share of kinds found; 0 for an answer that names neither a kind nor ``None``).

    Computed from the report itself (as the reward's ``generate`` mode would), so the number always matches
    the table shown next to it and costs no second pass through the model.
    """
    from synartifact.reward import reward_from_report

    return reward_from_report(report, mode)


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
        _build_once(Path(base), _tiny_sd)
    if lora and lora_tiny:
        _build_once(Path(lora), _tiny_lora)
    return GeneratorPair(base, lora)


def get_generator() -> GeneratorPair:
    """The process's :class:`GeneratorPair`, loaded on first call."""
    base, lora = generator_sources()
    with _MODEL_LOCK:
        return _load_configured(
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


# ------------------------------------------------------------------------------------------------------------
# Reports -> display
# ------------------------------------------------------------------------------------------------------------


def analyse(image: Image.Image) -> tuple[ArtifactReport, float]:
    """Classify one RGB image and score it: the report and the reward (higher means fewer artifacts)."""
    classifier = get_classifier()
    report = classifier.predict([image])[0]
    if report.width is None or report.height is None:
        report.width, report.height = image.size
    return report, report_reward(report, getattr(classifier, "mode", "labels"))


def annotations(report: ArtifactReport, image: Image.Image) -> tuple[Image.Image, list[tuple[tuple, str]]]:
    """The value of a ``gr.AnnotatedImage``: the image and one ``((x0, y0, x1, y1), label)`` per boxed artifact.

    Boxes are clipped to the image and given at least one pixel a side; a kind found twice keeps one label
    (and one colour) for both boxes.
    """
    width, height = image.size
    boxes = []
    for artifact in report.artifacts:
        px = artifact.bbox_pixels(width, height)
        if px is None:
            continue
        x0, y0, x1, y1 = px
        x0, x1 = sorted((max(0, min(width - 1, x0)), max(0, min(width, x1))))
        y0, y1 = sorted((max(0, min(height - 1, y0)), max(0, min(height, y1))))
        boxes.append(((x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)), artifact.name))
    return image, boxes


def report_table(report: ArtifactReport) -> list[list[str]]:
    """One row per artifact for a ``gr.Dataframe`` with :data:`TABLE_HEADERS`: kind, group, caption, box."""
    rows = []
    for artifact in report.artifacts:
        box = "" if artifact.bbox is None else "(" + ", ".join(f"{v:.2f}" for v in artifact.bbox) + ")"
        rows.append([artifact.name, artifact.group, artifact.caption or "", box])
    return rows


def report_summary(report: ArtifactReport, reward: float) -> str:
    """One Markdown line: how many artifacts of which kinds, the reward, and whether the answer parsed."""
    if report.artifacts:
        names = sorted({a.name for a in report.artifacts})
        found = f"**{len(report.artifacts)} artifact{'s' if len(report.artifacts) != 1 else ''} found:** "
        found += ", ".join(names) + "."
    else:
        found = "**No artifacts found.**"
    parsed = (
        "" if report.well_formed else " The model's answer did not follow the expected format (see the raw answer)."
    )
    return f"{found} Reward: **{reward:.3f}** (higher means fewer artifacts).{parsed}"


# ------------------------------------------------------------------------------------------------------------
# Example images
# ------------------------------------------------------------------------------------------------------------

# (artifact kind, synthesis index) of the classify Space's examples: indices picked for clear, varied pictures.
# They cover the kinds the demo's classifier learns (DemoSettings.kinds) and a few more.
EXAMPLE_SPECS: tuple[tuple[str, int], ...] = (
    ("localized_blur", 7),
    ("chromatic_irregularity", 4),
    ("illegible_letters", 6),
    ("distorted_components", 0),
    ("abnormal_texture", 4),
    ("impractical_luminosity", 2),
    ("luminance_discrepancy", 0),
)
# The synthesis index of an example of a kind that EXAMPLE_SPECS does not list (written to the model cache).
_EXTRA_EXAMPLE_INDEX = 1


def write_examples(folder: str | os.PathLike, size: int = 176, overwrite: bool = False) -> list[Path]:
    """Write the classify Space's example images into ``folder`` as small PNGs and return their paths, in order.

    Each is a bundled scikit-image photograph with one artifact of :data:`EXAMPLE_SPECS` injected by
    :func:`synartifact.data.synth.synthesize_example` (the project's synthetic data). Existing files are kept
    unless ``overwrite``.
    """
    folder = Path(folder)
    paths = [folder / f"{index}_{kind}.png" for kind, index in EXAMPLE_SPECS]
    if all(p.is_file() for p in paths) and not overwrite:
        return paths
    from synartifact.data.synth import synthesize_example

    folder.mkdir(parents=True, exist_ok=True)
    for path, (kind, index) in zip(paths, EXAMPLE_SPECS):
        if path.is_file() and not overwrite:
            continue
        row = synthesize_example(index, seed=0, size=size, clean_fraction=0.0, kinds=(kind,))
        tmp = path.with_name(path.stem + ".tmp.png")
        row["image"].save(tmp, optimize=True)
        tmp.replace(path)
    return paths


def trained_kinds(source: ModelSource | None = None) -> list[str] | None:
    """The kinds (slugs, taxonomy order) the classifier was trained on, from its training record
    (``trained_kinds`` in ``synartifact_config.json`` or ``sft_run.json``); ``None`` when it does not say (an
    untrained tiny model, a record from before the field existed, a checkpoint not made by ``synartifact sft``)."""
    from synartifact.classifier.loading import read_classifier_config
    from synartifact.taxonomy import SLUGS, get_kind

    source = source or classifier_source()
    if source.tiny:
        return None
    try:
        record = read_classifier_config(source.path)
    except Exception as err:  # noqa: BLE001 - a page without the kinds line beats a page that does not load
        logger.warning("could not read the training record of %s: %r", source.path, err)
        return None
    kinds = record.get("trained_kinds")
    if not isinstance(kinds, list) or not kinds:
        return None
    slugs = set()
    for kind in kinds:
        try:
            slugs.add(get_kind(kind).slug)
        except (ValueError, KeyError, TypeError):
            logger.warning("unknown kind %r in the training record of %s", kind, source.path)
    return [slug for slug in SLUGS if slug in slugs] or None


def example_images(folder: str | os.PathLike, kinds: list[str] | None = None, size: int = 176) -> list[Path]:
    """The classify Space's examples: one image per kind in ``kinds`` that can be synthesized (the bundled ones
    from ``folder``, others written to ``<cache>/examples``), so that the first click finds something the classifier
    knows; all bundled examples when ``kinds`` is ``None`` or none of them can be synthesized."""
    from synartifact.data.synth import SYNTH_KINDS, synthesize_example

    bundled = dict(zip((kind for kind, _ in EXAMPLE_SPECS), write_examples(folder, size=size)))
    wanted = [kind for kind in (kinds or []) if kind in bundled or kind in SYNTH_KINDS]
    if not wanted:
        return list(bundled.values())
    paths = []
    for kind in wanted:
        if kind in bundled:
            paths.append(bundled[kind])
            continue
        path = cache_dir() / "examples" / f"{_EXTRA_EXAMPLE_INDEX}_{kind}.png"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            row = synthesize_example(_EXTRA_EXAMPLE_INDEX, seed=0, size=size, clean_fraction=0.0, kinds=(kind,))
            tmp = path.with_name(path.stem + f".tmp-{os.getpid()}.png")
            row["image"].save(tmp, optimize=True)
            tmp.replace(path)
        paths.append(path)
    return paths


def kinds_notice(kinds: list[str] | None) -> str:
    """One Markdown line for the page: which kinds this classifier was trained to find (or that it is not known)."""
    from synartifact.taxonomy import get_kind

    if not kinds:
        return (
            "This classifier's training record does not list the kinds it learned (`trained_kinds` in "
            "`sft_run.json`): it is asked about all 13."
        )
    names = ", ".join(get_kind(kind).name for kind in kinds)
    return f"**This classifier was trained on {len(kinds)} of the 13 kinds:** {names}. The examples show these kinds."


# ------------------------------------------------------------------------------------------------------------
# Repair
# ------------------------------------------------------------------------------------------------------------

ENV_INPAINTER = "SYNARTIFACT_INPAINTER"
# Inpainting steps: a real pipeline's usual count; the untrained tiny one only shows the flow.
REPAIR_STEPS = {"real": 20, "tiny": 4}


def inpainter_source() -> ModelSource:
    """The inpainting pipeline named by ``SYNARTIFACT_INPAINTER`` (a folder or Hub id), else the tiny untrained one
    built offline into the cache on first use."""
    named = os.environ.get(ENV_INPAINTER, "").strip()
    if named:
        return ModelSource(named, tiny=False)
    return ModelSource(str(cache_dir() / "tiny-sd-inpaint"), tiny=True)


def inpainter_notice(source: ModelSource) -> str:
    """One Markdown line naming the inpainter, or saying plainly that it is the untrained tiny one."""
    if source.tiny:
        return (
            "⚠️ Repair uses an **untrained tiny inpainter** built offline: what it paints is noise, so a repair is "
            f"rarely kept. Set `{ENV_INPAINTER}` to an inpainting pipeline (a Hub id such as "
            "`stable-diffusion-v1-5/stable-diffusion-inpainting`, or a folder) to repair for real."
        )
    return f"Inpainter: `{source.display_name}`."


def _tiny_inpainter(folder: Path) -> None:
    from synartifact.tiny import build_tiny_sd_inpaint

    build_tiny_sd_inpaint(folder, seed=0)


@functools.cache
def _repairer_for(classifier_path: str, classifier_tiny: bool, inpainter_path: str, inpainter_tiny: bool):
    from synartifact.repair import ArtifactRepairer

    if inpainter_tiny:
        _build_once(Path(inpainter_path), _tiny_inpainter)
    steps = REPAIR_STEPS["tiny" if inpainter_tiny else "real"]
    return ArtifactRepairer(
        _classifier_for(classifier_path, classifier_tiny), inpainter_path, num_inference_steps=steps, progress=False
    )


def get_repairer():
    """The process's :class:`~synartifact.repair.ArtifactRepairer` (the page's classifier + the inpainter)."""
    classifier, inpainter = classifier_source(), inpainter_source()
    with _MODEL_LOCK:
        return _load_configured(
            lambda: _repairer_for(classifier.path, classifier.tiny, inpainter.path, inpainter.tiny),
            (classifier, ENV_CLASSIFIER, "classifier"),
            (inpainter, ENV_INPAINTER, "inpainter"),
        )


def repair_summary(result: Any) -> str:
    """One Markdown paragraph on a :class:`~synartifact.repair.RepairResult`: rewards, kinds, rounds, area."""
    tried = len(result.rounds)
    line = f"Reward **{result.reward_before:.3f} → {result.reward_after:.3f}**"
    if not result.report_before.artifacts:
        return f"**Nothing to repair:** no artifacts found. {line}."
    if not tried:
        return (
            f"**Nothing repaired:** the classifier named {', '.join(a.name for a in result.report_before.artifacts)} "
            f"without a box, so there is no region to repaint. {line}."
        )
    if not result.changed:
        return (
            f"**No repair kept:** {tried} attempt{'s' if tried != 1 else ''}, none raised the reward, so the "
            f"original is shown on both sides. {line}."
        )
    after = ", ".join(sorted({a.name for a in result.report_after.artifacts})) or "none"
    return (
        f"**Repaired:** {line}; {100 * result.mask_area:.1f} % of the pixels repainted (inside the boxes, padded); "
        f"artifacts still found: {after}."
    )


def repair(image: Image.Image) -> Any:
    """Repair one RGB image with the page's models; the :class:`~synartifact.repair.RepairResult`."""
    return get_repairer().repair([image], rounds=2, seed=0)[0]
