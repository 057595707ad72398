"""The one image normalizer: anything a user may hand over becomes an RGB PIL image, or a clear refusal.

Every stage that takes images (dataset build, SFT examples, ``ArtifactClassifier``, ``ArtifactReward``, the Spaces)
goes through :func:`to_rgb`, so that the same input gives the same pixels everywhere.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DEFAULT_MAX_PIXELS", "MIN_SIDE", "as_image_list", "to_rgb"]

DEFAULT_MAX_PIXELS = 64_000_000
#: The smallest width and height accepted. transformers' image processors guess the channel axis from the array
#: shape: an image 1 or 3 pixels tall reads as channels-first (an error deep in normalization for 1, silently
#: wrong colours for 3), so anything under 4 x 4 pixels is refused up front.
MIN_SIDE = 4
_VALID_INPUTS = (
    "a PIL image, a file path, image bytes, a numpy array (HxW, HxWxC or CxHxW with C in 1, 3, 4; "
    "uint8, uint16, bool, or float in [0, 1]) or a torch tensor (CxHxW or HxWxC, values in [0, 1] or "
    "[0, 255])"
)
# Decoders round slightly past [0, 1] (e.g. 1.0000001); under half an 8-bit level, so clipping changes no pixel.
_UNIT_SLACK = 1e-3
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "PA")


def _refuse(index: int, problem: str) -> ValueError:
    return ValueError(f"Image {index}: {problem}. Valid inputs: {_VALID_INPUTS}.")


def _check_size(width: int, height: int, index: int, max_pixels: int | None) -> None:
    if width <= 0 or height <= 0:
        raise _refuse(index, f"the image is empty ({width}x{height} pixels)")
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ValueError(
            f"Image {index}: {width}x{height} pixels is too small; images must be at least {MIN_SIDE} x {MIN_SIDE} "
            "pixels (upscale it first)."
        )
    if max_pixels and width * height > max_pixels:
        raise ValueError(
            f"Image {index}: {width}x{height} = {width * height:,} pixels is over the limit of {max_pixels:,} "
            "(max_pixels); resize it first or raise max_pixels."
        )


def _sixteen_to_uint8(array: np.ndarray) -> np.ndarray:
    # value * 255 / 65535 == value / 257: the full 16-bit range maps onto the full 8-bit range.
    return np.round(array.astype(np.float64) / 257.0).astype(np.uint8)


def _array_to_uint8(array: np.ndarray, index: int, float_rule: str) -> np.ndarray:
    """``float_rule``: "unit" (numpy: floats must be in [0, 1]), "unit_or_255" (tensors: [0, 1] is scaled, up
    to 255 kept) or "clip" (PIL "F" mode: [0, 1] is scaled, anything else clipped to [0, 255])."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        return _sixteen_to_uint8(array)
    is_float = np.issubdtype(array.dtype, np.floating)
    if not (is_float or np.issubdtype(array.dtype, np.integer)):
        raise _refuse(index, f"array dtype {array.dtype} is not an image type")
    values = array.astype(np.float64)
    if values.size and not np.all(np.isfinite(values)):
        raise _refuse(index, "the array holds NaN or infinite values")
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if is_float and low >= -_UNIT_SLACK and high <= 1.0 + _UNIT_SLACK:
        values = np.clip(values, 0.0, 1.0) * 255.0
    elif is_float and float_rule == "clip":
        values = np.clip(values, 0.0, 255.0)
    elif low < 0:
        raise _refuse(index, f"values range from {low:g} to {high:g}; negative values are not pixels")
    elif is_float and float_rule == "unit":
        raise _refuse(index, f"float values range up to {high:g}; float arrays must be in [0, 1]")
    elif high > 255.0:
        raise _refuse(index, f"{array.dtype} values range up to {high:g}, over 255")
    return np.round(values).astype(np.uint8)


def _array_to_image(array: np.ndarray, index: int, channels_first: bool, float_rule: str):
    from PIL import Image

    if array.ndim == 3:
        first, last = array.shape[0] in (1, 3, 4), array.shape[-1] in (1, 3, 4)
        if channels_first and first or (first and not last):
            array = np.moveaxis(array, 0, -1)
        elif not last:
            raise _refuse(index, f"shape {tuple(array.shape)} has no channel axis of size 1, 3 or 4")
        if array.shape[-1] == 1:
            array = array[..., 0]
    elif array.ndim != 2:
        raise _refuse(index, f"shape {tuple(array.shape)} has {array.ndim} dimensions; expected 2 or 3")
    height, width = array.shape[:2]
    if width == 0 or height == 0:
        raise _refuse(index, f"the image is empty (shape {tuple(array.shape)})")
    array = np.ascontiguousarray(_array_to_uint8(array, index, float_rule))
    mode = {2: "L"}.get(array.ndim) or {3: "RGB", 4: "RGBA"}[array.shape[-1]]
    return Image.fromarray(array, mode=mode)


def _flatten_alpha(image):
    from PIL import Image

    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _pil_to_rgb(image, index: int):
    from PIL import Image, ImageOps

    if image.getexif().get(0x0112, 1) != 1:  # EXIF Orientation: show the image the way a viewer does
        image = ImageOps.exif_transpose(image)
    if image.mode == "RGB":
        return image
    if image.mode in _SIXTEEN_BIT_MODES:
        return Image.fromarray(_sixteen_to_uint8(np.asarray(image)), mode="L").convert("RGB")
    if image.mode == "I":  # how 16-bit PNGs open in older Pillow: read as 16-bit
        array = np.asarray(image)
        low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
        if low < 0 or high > 65535:
            raise _refuse(
                index, f"32-bit 'I' mode values range from {low} to {high}; only 0 to 65535 (16-bit) is read"
            )
        return Image.fromarray(_sixteen_to_uint8(array), mode="L").convert("RGB")
    if image.mode == "F":
        return Image.fromarray(_array_to_uint8(np.asarray(image), index, "clip"), mode="L").convert("RGB")
    if image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
        return _flatten_alpha(image)
    try:
        return image.convert("RGB")
    except ValueError as err:
        raise _refuse(index, f"PIL mode {image.mode!r} cannot be converted to RGB ({err})") from err


def to_rgb(image: Any, index: int = 0, max_pixels: int | None = DEFAULT_MAX_PIXELS):
    """One input image as an RGB PIL image, or a ``ValueError`` / ``FileNotFoundError`` naming ``index``.

    Accepted: PIL images; file paths (``str`` / ``os.PathLike``), image bytes and undecoded ``datasets`` Image
    values (``{"bytes": ..., "path": ...}``); numpy arrays and torch tensors shaped HxW, HxWxC or CxHxW with C in
    1, 3, 4 (when both axes could be channels, numpy arrays are read as HxWxC and tensors as CxHxW).

    Pixels, the same for every stage:

    - EXIF orientation is applied (``ImageOps.exif_transpose``), as a photo viewer shows the image.
    - Alpha (RGBA, LA, PA, palette with transparency, RGBA arrays) is composited on white; L, 1, P, CMYK, YCbCr
      are converted by PIL.
    - 16-bit (PIL ``I;16`` modes, numpy/torch uint16) is scaled, ``round(value * 255 / 65535)``, never clipped.
      32-bit ``I`` mode (how older Pillow opens 16-bit PNGs) is read as 16-bit when its values lie in
      0..65535 and refused otherwise.
    - ``F`` mode (32-bit float): values within [0, 1] are multiplied by 255; otherwise values are clipped to
      [0, 255] (taken as 8-bit levels).
    - Arrays and tensors: uint8 as is; bool as 0 / 255; other integers must lie in 0..255; floats within [0, 1]
      are multiplied by 255 (values up to 1e-3 outside are clipped first: decoder rounding). Float tensors may
      also hold 8-bit levels in [0, 255]; float numpy arrays must be in [0, 1]. NaN / inf are refused.

    Refused: unreadable or truncated data, wrong shapes, images smaller than ``MIN_SIDE`` x ``MIN_SIDE`` pixels
    (the VLM image processors misread them) and images over ``max_pixels`` pixels (``None``: no limit).
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, Mapping):  # an undecoded datasets Image value: {"bytes": ..., "path": ...}
        if image.get("bytes"):
            image = image["bytes"]
        elif image.get("path"):
            image = image["path"]
        else:
            raise _refuse(index, f"got a dict with keys {sorted(image)} but no 'bytes' or 'path'")
    if isinstance(image, (str, os.PathLike, bytes, bytearray)):
        source = image
        if isinstance(image, (str, os.PathLike)):
            path = Path(image)
            if not path.is_file():
                raise FileNotFoundError(f"Image {index}: no such file {str(path)!r}.")
            label = f"file {str(path)!r}"
        else:
            source, label = io.BytesIO(bytes(image)), "the image bytes"
        try:
            opened = Image.open(source)
        except Image.DecompressionBombError as err:
            raise ValueError(f"Image {index}: {label} is too large to decode safely ({err}).") from err
        except (UnidentifiedImageError, OSError) as err:
            raise _refuse(index, f"{label} is not a readable image ({err})") from err
        image = opened
    if isinstance(image, Image.Image):
        _check_size(image.width, image.height, index, max_pixels)
        try:
            image.load()
        except Image.DecompressionBombError as err:
            raise ValueError(f"Image {index}: too large to decode safely ({err}).") from err
        except (OSError, SyntaxError, ValueError) as err:
            raise _refuse(index, f"the image data is corrupt or truncated ({err})") from err
        return _pil_to_rgb(image, index)
    if type(image).__module__.startswith("torch"):
        import torch

        if not isinstance(image, torch.Tensor):
            raise _refuse(index, f"got {type(image).__name__}")
        tensor = image.detach().to("cpu")
        if tensor.dtype in (torch.bfloat16, torch.float16):
            tensor = tensor.float()
        rgb = _array_to_image(tensor.numpy(), index, channels_first=True, float_rule="unit_or_255")
    elif isinstance(image, np.ndarray):
        rgb = _array_to_image(image, index, channels_first=False, float_rule="unit")
    else:
        raise _refuse(index, f"got {type(image).__name__}")
    _check_size(rgb.width, rgb.height, index, max_pixels)
    return _pil_to_rgb(rgb, index)


def as_image_list(images: Any) -> list:
    """One image or a batch of them as a list of single images (a 4-D array or tensor is split on its first
    axis), ready for :func:`to_rgb` one by one."""
    from PIL import Image

    if isinstance(images, (Image.Image, str, os.PathLike, bytes, bytearray, Mapping)):
        return [images]
    if isinstance(images, np.ndarray) or type(images).__module__.startswith("torch"):
        if getattr(images, "ndim", 0) == 4:
            return list(images)
        return [images]
    if isinstance(images, Sequence) or hasattr(images, "__iter__"):
        return list(images)
    return [images]
