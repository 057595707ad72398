"""Input checks for the Spaces: bad uploads, prompts and settings become one sentence for the user (file too large,
not an image, too many pixels, empty or too long prompt, out-of-range settings), never a traceback."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image, UnidentifiedImageError

from synartifact.images import MIN_SIDE, to_rgb

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_GUIDANCE",
    "MAX_PIXELS",
    "MAX_PROMPT_CHARS",
    "MAX_SEED",
    "MAX_SIDE",
    "MAX_STEPS",
    "load_image",
    "validate_generation_settings",
    "validate_prompt",
    "validated_image",
]

logger = logging.getLogger(__name__)

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 25_000_000
MAX_SIDE = 8192
MAX_PROMPT_CHARS = 500
MAX_STEPS = 100
MAX_GUIDANCE = 30.0
MAX_SEED = 2**32 - 1


def _human_bytes(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"


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
