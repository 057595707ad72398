"""The one image normalizer: anything a user may hand over becomes an RGB PIL image, or a clear refusal.

Every stage that takes images (dataset build and synthesis, ``ArtifactClassifier``, ``ArtifactReward``, the
Spaces) goes through :func:`to_rgb`, so that the same input gives the same pixels everywhere.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DEFAULT_MAX_PIXELS", "as_image_list", "to_rgb"]

DEFAULT_MAX_PIXELS = 64_000_000
_VALID_INPUTS = (
    "a PIL image, a file path, image bytes, a numpy array (HxW, HxWxC or CxHxW with C in 1, 3, 4; "
    "uint8, uint16, bool, or float in [0, 1]) or a torch tensor (CxHxW or HxWxC, values in [0, 1] or "
    "[0, 255])"
)


def _refuse(index: int, problem: str) -> ValueError:
    return ValueError(f"Image {index}: {problem}. Valid inputs: {_VALID_INPUTS}.")


def _check_size(width: int, height: int, index: int, max_pixels: int | None) -> None:
    if width <= 0 or height <= 0:
        raise _refuse(index, f"the image is empty ({width}x{height} pixels)")
    if max_pixels and width * height > max_pixels:
        raise ValueError(
            f"Image {index}: {width}x{height} = {width * height:,} pixels is over the limit of {max_pixels:,} "
            "(max_pixels); resize it first or raise max_pixels."
        )


def _array_to_uint8(array: np.ndarray, index: int, scale_float: str = "unit") -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        return np.round(array.astype(np.float64) / 257.0).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer):
        values = array.astype(np.float64)
        if values.size and not np.all(np.isfinite(values)):
            raise _refuse(index, "the array holds NaN or infinite values")
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if low < 0:
            raise _refuse(index, f"values range from {low:g} to {high:g}; negative values are not pixels")
        is_float = np.issubdtype(array.dtype, np.floating)
        if is_float and high <= 1.0:
            values = values * 255.0
        elif is_float and scale_float == "unit_only":
            raise _refuse(index, f"float values range up to {high:g}; float arrays must be in [0, 1]")
        elif high > 255.0:
            raise _refuse(index, f"{array.dtype} values range up to {high:g}, over 255")
        return np.clip(np.round(values), 0, 255).astype(np.uint8)
    raise _refuse(index, f"array dtype {array.dtype} is not an image type")


def _array_to_image(array: np.ndarray, index: int, channels_first: bool, scale_float: str):
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
    array = np.ascontiguousarray(_array_to_uint8(array, index, scale_float))
    mode = {2: "L"}.get(array.ndim) or {3: "RGB", 4: "RGBA"}[array.shape[-1]]
    return Image.fromarray(array, mode=mode)


def _flatten_alpha(image):
    from PIL import Image

    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _pil_to_rgb(image, index: int):
    from PIL import Image

    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        array = np.asarray(image)
        if image.mode.startswith("I;16"):
            array = array.astype(np.uint16)
        elif image.mode == "I":
            high = int(array.max()) if array.size else 0
            array = array.astype(np.uint16) if 255 < high <= 65535 else array
        return Image.fromarray(_array_to_uint8(np.asarray(array), index, "unit"), mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        return _flatten_alpha(image)
    return image.convert("RGB")


def to_rgb(image: Any, index: int = 0, max_pixels: int | None = DEFAULT_MAX_PIXELS):
    """One input image as an RGB PIL image, or a ``ValueError`` / ``FileNotFoundError`` naming ``index``.

    Grayscale, palette, 16-bit and RGBA (composited on white) become RGB. Corrupt data, wrong shapes, empty images
    and images over ``max_pixels`` pixels are refused.
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
        array = tensor.numpy()
        rgb = _array_to_image(array, index, channels_first=True, scale_float="unit")
    elif isinstance(image, np.ndarray):
        rgb = _array_to_image(image, index, channels_first=False, scale_float="unit_only")
    else:
        raise _refuse(index, f"got {type(image).__name__}")
    _check_size(rgb.width, rgb.height, index, max_pixels)
    return _pil_to_rgb(rgb, index)


def as_image_list(images: Any) -> list:
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
