"""``ArtifactClassifier``: a fine-tuned VLM (full weights or base + LoRA adapter) that reports artifacts in images.

>>> clf = ArtifactClassifier.from_pretrained("outputs/classifier")          # doctest: +SKIP
>>> [r.kinds for r in clf.predict([image_a, image_b])]                        # doctest: +SKIP
[{'localized_blur'}, set()]

The folder is what ``synartifact sft`` writes: full weights + processor, or a PEFT adapter + processor whose
``adapter_config.json`` names the base model. A ``synartifact_config.json`` (or, failing that, the ``sft_run.json``
that ``synartifact sft`` writes) next to them records how the classifier was trained; keys read here:
``answer_mode`` (``labels`` | ``full``, default ``labels``), ``base_model_path`` / ``base_model`` (the zero-shot
baseline's folder or Hub id) and ``max_new_tokens`` (the answer length bound).
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synartifact.prompts import ANSWER_MODES, build_messages, parse_answer
from synartifact.report import ArtifactReport

__all__ = [
    "ArtifactClassifier",
    "CONFIG_NAME",
    "DEFAULT_MAX_PIXELS",
    "read_classifier_config",
    "resolve_base_model",
    "to_rgb_image",
]

logger = logging.getLogger(__name__)

CONFIG_NAME = "synartifact_config.json"
CONFIG_FILES = (CONFIG_NAME, "sft_run.json")  # ours first, then the record that `synartifact sft` writes
ADAPTER_CONFIG = "adapter_config.json"
DEFAULT_MAX_PIXELS = 64_000_000
DEFAULT_MAX_NEW_TOKENS = {"labels": 128, "full": 512}
_VALID_INPUTS = (
    "a PIL image, a file path, image bytes, a numpy array (HxW, HxWxC or CxHxW with C in 1, 3, 4; "
    "uint8, uint16, bool, or float in [0, 1]) or a torch tensor (CxHxW or HxWxC, values in [0, 1] or "
    "[0, 255])"
)


# ------------------------------------------------------------------------------------------------------------
# Images: anything reasonable -> RGB PIL, or a clear refusal
# ------------------------------------------------------------------------------------------------------------


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


def to_rgb_image(image: Any, index: int = 0, max_pixels: int | None = DEFAULT_MAX_PIXELS):
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


def _as_image_list(images: Any) -> list:
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


# ------------------------------------------------------------------------------------------------------------
# Folders: adapter or full model, config, base model
# ------------------------------------------------------------------------------------------------------------


def _read_json(path_or_repo: str, filename: str) -> dict | None:
    """A JSON file of a local folder or a Hub repo, or ``None`` when the file is absent."""
    local = Path(path_or_repo)
    if local.is_dir():
        file = local / filename
        return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None
    if local.exists():
        raise NotADirectoryError(f"{path_or_repo} is a file; expected a model folder or a Hub id.")
    if (
        str(path_or_repo).startswith((".", "/", "~"))
        or os.sep + os.sep in str(path_or_repo)
        or str(path_or_repo).count("/") > 1
    ):
        raise FileNotFoundError(f"Model folder {path_or_repo!r} does not exist (and is not a Hub id 'org/name').")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import EntryNotFoundError, HFValidationError, RepositoryNotFoundError

    try:
        file = hf_hub_download(str(path_or_repo), filename)
    except EntryNotFoundError:
        return None
    except (RepositoryNotFoundError, HFValidationError) as err:
        raise FileNotFoundError(
            f"{path_or_repo!r} is neither a local model folder nor a Hub repo that can be read "
            f"({type(err).__name__}): pass an existing folder or an 'org/name' Hub id."
        ) from err
    except Exception as err:  # noqa: BLE001 - offline: let from_pretrained try its cache and report
        logger.info("Could not read %s of %s (%s: %s)", filename, path_or_repo, type(err).__name__, err)
        return None
    return json.loads(Path(file).read_text(encoding="utf-8"))


def read_classifier_config(path_or_repo_id: str) -> dict:
    """How a classifier folder was trained: ``synartifact_config.json``, else the ``sft_run.json`` that
    ``synartifact sft`` writes (``{}`` when neither exists). Keys used: ``answer_mode``, ``base_model_path`` /
    ``base_model`` and ``max_new_tokens``."""
    for name in CONFIG_FILES:
        try:
            found = _read_json(str(path_or_repo_id), name)
        except (FileNotFoundError, NotADirectoryError):
            return {}
        if found is not None:
            return found
    return {}


def _config_base(config: dict) -> str | None:
    return config.get("base_model_path") or config.get("base_model") or None


def _adapter_base(path_or_repo_id: str) -> str | None:
    adapter = _read_json(str(path_or_repo_id), ADAPTER_CONFIG)
    if adapter is None:
        return None
    base = adapter.get("base_model_name_or_path")
    if not base:
        raise ValueError(
            f"{Path(path_or_repo_id) / ADAPTER_CONFIG} has no 'base_model_name_or_path': "
            "cannot tell which base model the LoRA adapter belongs to."
        )
    local = Path(path_or_repo_id)
    if local.is_dir() and not Path(base).is_absolute() and not Path(base).exists() and (local / base).exists():
        base = str(local / base)  # a base recorded relative to the adapter folder
    return base


def resolve_base_model(path_or_repo_id: str) -> str | None:
    """The zero-shot base of a classifier: the LoRA adapter's base, else ``base_model`` in its config, else None."""
    return _adapter_base(str(path_or_repo_id)) or _config_base(read_classifier_config(path_or_repo_id))


def _resolve_dtype(dtype: Any):
    import torch

    if dtype is None or dtype == "auto" or isinstance(dtype, torch.dtype):
        return dtype
    name = str(dtype).replace("torch.", "")
    aliases = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "half": "float16", "float": "float32"}
    value = getattr(torch, aliases.get(name, name), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"Unknown dtype {dtype!r}: valid ones are float32, float16, bfloat16 or 'auto'.")
    return value


def _load_model(path: str, dtype: Any, **kwargs: Any):
    from transformers import AutoModelForImageTextToText

    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if dtype is not None:
        kwargs["dtype"] = dtype
    try:
        return AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    except ValueError as err:  # an architecture registered only for the older auto class
        try:
            from transformers import AutoModelForVision2Seq
        except ImportError:
            raise err from None
        try:
            return AutoModelForVision2Seq.from_pretrained(path, **kwargs)
        except ValueError:
            raise err from None
    except OSError as err:
        if Path(path).is_dir():
            raise FileNotFoundError(f"{path} holds no loadable model weights and config ({err}).") from err
        raise FileNotFoundError(f"Could not load the model {path!r} from the Hub or its cache: {err}") from err


def _load_processor(path: str, fallback: str | None):
    from synartifact.tiny import load_vlm_processor

    try:
        return load_vlm_processor(path)
    except (OSError, ValueError, TypeError, ImportError) as err:
        if fallback is None:
            raise ValueError(f"Could not load a processor from {path}: {err}") from err
        logger.info("No processor in %s (%s); using the base model's from %s", path, err, fallback)
        return load_vlm_processor(fallback)


# ------------------------------------------------------------------------------------------------------------
# The classifier
# ------------------------------------------------------------------------------------------------------------


class ArtifactClassifier:
    """A VLM artifact classifier: asks the question of :mod:`synartifact.prompts` and parses the answer.

    Build it with :meth:`from_pretrained`; :meth:`predict` returns one :class:`~synartifact.report.ArtifactReport`
    per image. ``model``, ``processor``, ``mode`` and ``device`` are public so that other stages (the reward's
    scoring mode) can run their own forward passes on :meth:`prepare_inputs`.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        mode: str = "labels",
        max_new_tokens: int | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        name_or_path: str | None = None,
        base_model: str | None = None,
    ) -> None:
        if mode not in ANSWER_MODES:
            raise ValueError(f"Unknown answer mode {mode!r}: valid modes are {', '.join(ANSWER_MODES)}.")
        self.model = model
        self.processor = processor
        self.mode = mode
        self.max_new_tokens = int(max_new_tokens or DEFAULT_MAX_NEW_TOKENS[mode])
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}.")
        self.max_pixels = max_pixels
        self.name_or_path = name_or_path
        self.base_model = base_model
        self.model.eval()
        tokenizer = self.tokenizer
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._prompt = processor.apply_chat_template(build_messages(mode), add_generation_prompt=True, tokenize=False)

    @property
    def tokenizer(self) -> Any:
        """The processor's tokenizer (left padding)."""
        return getattr(self.processor, "tokenizer", self.processor)

    @property
    def device(self) -> Any:
        """The device of the model's parameters."""
        return next(self.model.parameters()).device

    @property
    def prompt(self) -> str:
        """The chat-formatted question, ending with the generation prompt."""
        return self._prompt

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | os.PathLike,
        device: str | None = None,
        dtype: Any = None,
        mode: str | None = None,
        max_new_tokens: int | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        merge_lora: bool = True,
        **kwargs: Any,
    ) -> ArtifactClassifier:
        """Load a classifier folder or Hub id: full weights, or a LoRA adapter on top of the base it names.

        ``device`` defaults to CUDA when available, else CPU; ``dtype`` (``torch.dtype`` or a name such as
        ``"bfloat16"``) to the checkpoint's. ``mode`` and ``max_new_tokens`` default to the folder's record
        (``answer_mode``, ``max_new_tokens`` in ``synartifact_config.json`` or ``sft_run.json``), else ``labels`` and
        128 (512 in ``full`` mode). ``merge_lora`` folds the adapter into the base weights for faster inference.
        ``max_pixels`` bounds the input size. Other keyword arguments (e.g. ``device_map``) go to the model's
        ``from_pretrained``.
        """
        import torch

        path = os.fspath(path_or_repo_id)
        config = read_classifier_config(path)
        mode = mode or config.get("answer_mode") or config.get("mode") or "labels"
        max_new_tokens = max_new_tokens or config.get("max_new_tokens")
        torch_dtype = _resolve_dtype("auto" if dtype is None else dtype)
        base = _adapter_base(path)
        if base is not None:
            from peft import PeftModel

            model = _load_model(base, torch_dtype, **kwargs)
            model = PeftModel.from_pretrained(model, path)
            if merge_lora:
                with warnings.catch_warnings():  # peft warns about untying embeddings that LoRA did not touch
                    warnings.filterwarnings("ignore", message="Input and output embeddings are no longer tied")
                    model = model.merge_and_unload()
            processor = _load_processor(path, fallback=base)
        else:
            model = _load_model(path, torch_dtype, **kwargs)
            processor = _load_processor(path, fallback=_config_base(config))
        if kwargs.get("device_map") is None:  # with a device_map, accelerate has placed the weights already
            model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        return cls(
            model,
            processor,
            mode=mode,
            max_new_tokens=max_new_tokens,
            max_pixels=max_pixels,
            name_or_path=path,
            base_model=base or _config_base(config),
        )

    # ------------------------------------------------------------------------------------------------------
    def load_images(self, images: Any) -> list:
        """The inputs as RGB PIL images (see :func:`to_rgb_image`), refusing bad ones with their index."""
        return [to_rgb_image(image, i, self.max_pixels) for i, image in enumerate(_as_image_list(images))]

    def _processor_images(self, images: list) -> list:
        # Idefics3-style processors want one list of images per text; LLaVA / Qwen2-VL take a flat list.
        name = type(self.processor).__name__.lower()
        return [[image] for image in images] if "idefics" in name or "smolvlm" in name else images

    def prepare_inputs(self, images: Any, texts: Sequence[str] | None = None) -> Any:
        """The model inputs for a batch: the question (or ``texts``, already chat-formatted) per image, left-padded.

        Returns the processor's ``BatchFeature`` on :attr:`device`, with floating tensors (pixel values) in the
        model's dtype. Images go through :meth:`load_images` first.
        """
        rgb = self.load_images(images)
        if not rgb:
            raise ValueError("No images given: pass at least one image.")
        prompts = list(texts) if texts is not None else [self._prompt] * len(rgb)
        if len(prompts) != len(rgb):
            raise ValueError(f"Got {len(rgb)} images but {len(prompts)} texts: one text per image.")
        self.tokenizer.padding_side = "left"
        batch = self.processor(text=prompts, images=self._processor_images(rgb), padding=True, return_tensors="pt")
        dtype = self.model.dtype
        return batch.to(self.device).to(dtype) if hasattr(batch, "to") else batch

    def generate_ids(self, images: Any, max_new_tokens: int | None = None, min_new_tokens: int | None = None) -> Any:
        """Greedy decoding for one batch: the new token ids (a ``[batch, steps]`` tensor, padded after the end).
        ``max_new_tokens`` defaults to the classifier's; ``min_new_tokens`` forces that many steps (benchmarks)."""
        import torch

        inputs = self.prepare_inputs(images)
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                do_sample=False,
                max_new_tokens=max_new_tokens or self.max_new_tokens,
                min_new_tokens=min_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                num_beams=1,
                temperature=None,
                top_p=None,
                top_k=None,
            )
        return output[:, inputs["input_ids"].shape[1] :]

    def _generate(self, images: list) -> list[str]:
        return self.tokenizer.batch_decode(self.generate_ids(images), skip_special_tokens=True)

    def predict_text(self, images: Any, batch_size: int = 8, progress: bool = False) -> list[str]:
        """The raw answers (new tokens only, special tokens removed), one per image."""
        from tqdm.auto import tqdm

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        rgb = self.load_images(images)
        answers: list[str] = []
        steps = range(0, len(rgb), batch_size)
        for start in tqdm(steps, desc="classify", disable=not progress, total=math.ceil(len(rgb) / batch_size)):
            answers.extend(self._generate(rgb[start : start + batch_size]))
        return answers

    def predict(self, images: Any, batch_size: int = 8, progress: bool = False) -> list[ArtifactReport]:
        """One :class:`ArtifactReport` per image: the artifacts read from the answer, the raw answer, whether it
        parsed cleanly, and the image's width and height.

        ``images``: one image or a list of them (PIL images, file paths, bytes, numpy arrays, torch tensors, or a
        4-D batch array/tensor). Bad images raise ``ValueError`` (``FileNotFoundError`` for missing files) naming
        the index, before any generation.
        """
        rgb = self.load_images(images)
        answers = self.predict_text(rgb, batch_size=batch_size, progress=progress)
        reports = []
        for image, text in zip(rgb, answers):
            parsed = parse_answer(text, self.mode)
            reports.append(
                ArtifactReport(
                    artifacts=list(parsed.artifacts),
                    raw_text=text,
                    well_formed=parsed.well_formed,
                    width=image.width,
                    height=image.height,
                )
            )
        return reports

    def __call__(self, images: Any, **kwargs: Any) -> list[ArtifactReport]:
        """Same as :meth:`predict`."""
        return self.predict(images, **kwargs)

    def __repr__(self) -> str:
        return (
            f"ArtifactClassifier({self.name_or_path!r}, mode={self.mode!r}, device={str(self.device)!r}, "
            f"max_new_tokens={self.max_new_tokens})"
        )
