"""Loading a classifier folder or Hub id: its training record, its base model, the model and the processor.

Used for tiny folders and real checkpoints alike (the one code path); the SFT script loads its processor here too.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from synartifact.hub_access import HubUnreachableError, require_hub
from synartifact.utils import is_local_path

__all__ = [
    "CONFIG_NAME",
    "check_model_folder",
    "load_classifier_model",
    "load_classifier_processor",
    "load_vlm_processor",
    "qwen_processor_class",
    "read_classifier_config",
    "resolve_base_model",
    "resolve_dtype",
]

logger = logging.getLogger(__name__)

CONFIG_NAME = "synartifact_config.json"
CONFIG_FILES = (CONFIG_NAME, "sft_run.json")  # ours first, then the record that `synartifact sft` writes
ADAPTER_CONFIG = "adapter_config.json"


def _read_json(path_or_repo: str, filename: str) -> dict | None:
    """A JSON file of a local folder or a Hub repo, or ``None`` when the file is absent."""
    local = Path(path_or_repo)
    if local.is_dir():
        file = local / filename
        return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None
    if local.exists():
        raise NotADirectoryError(f"{path_or_repo} is a file; expected a model folder or a Hub id.")
    if is_local_path(path_or_repo):
        raise FileNotFoundError(f"Model folder {path_or_repo!r} does not exist (and is not a Hub id 'org/name').")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import EntryNotFoundError, HFValidationError, RepositoryNotFoundError

    require_hub(path_or_repo, "classifier")
    try:
        file = hf_hub_download(str(path_or_repo), filename)
    except EntryNotFoundError:
        return None
    except (RepositoryNotFoundError, HFValidationError) as err:
        raise FileNotFoundError(
            f"{path_or_repo!r} is neither a local model folder nor a Hub repo that can be read "
            f"({type(err).__name__}): pass an existing folder or an 'org/name' Hub id."
        ) from err
    except Exception as err:  # noqa: BLE001 - offline, a server error: the caller says what it assumes instead
        raise _HubReadError(f"{type(err).__name__}: {err}") from err
    return json.loads(Path(file).read_text(encoding="utf-8"))


class _HubReadError(Exception):
    """A file of a Hub repo could not be read for another reason than its absence (offline and not cached, ...)."""


def read_classifier_config(path_or_repo_id: str) -> dict:
    """How a classifier folder was trained: ``synartifact_config.json``, else the ``sft_run.json`` that
    ``synartifact sft`` writes (``{}`` when neither exists). Keys used: ``answer_mode``, ``base_model_path`` /
    ``base_model`` and ``max_new_tokens``."""
    unread = []
    for name in CONFIG_FILES:
        try:
            found = _read_json(str(path_or_repo_id), name)
        except HubUnreachableError:
            raise
        except (FileNotFoundError, NotADirectoryError):
            return {}
        except _HubReadError as err:
            unread.append(f"{name} ({err})")
            continue
        if found is not None:
            return found
    if unread:
        # the answer mode, base and answer length it records cannot be known: say what is assumed instead
        logger.warning(
            "Could not read the training record of %s from the Hub: %s. Assuming answer_mode 'labels' and no recorded "
            "base model; pass the mode explicitly (mode=...) or set HF_HUB_OFFLINE=1 with the record in the cache.",
            path_or_repo_id,
            "; ".join(unread),
        )
    return {}


def config_base(config: dict) -> str | None:
    return config.get("base_model_path") or config.get("base_model") or None


def adapter_base(path_or_repo_id: str) -> str | None:
    try:
        adapter = _read_json(str(path_or_repo_id), ADAPTER_CONFIG)
    except _HubReadError as err:
        logger.warning(
            "Could not read %s of %s (%s): loading it as full weights.", ADAPTER_CONFIG, path_or_repo_id, err
        )
        return None
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
    return adapter_base(str(path_or_repo_id)) or config_base(read_classifier_config(path_or_repo_id))


def resolve_dtype(dtype: Any):
    import torch

    if dtype is None or dtype == "auto" or isinstance(dtype, torch.dtype):
        return dtype
    name = str(dtype).replace("torch.", "")
    aliases = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "half": "float16", "float": "float32"}
    value = getattr(torch, aliases.get(name, name), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"Unknown dtype {dtype!r}: valid ones are float32, float16, bfloat16 or 'auto'.")
    return value


def check_model_folder(path: str | Path, what: str = "model") -> None:
    """Raise ``FileNotFoundError`` in one line when ``path`` is a local folder that holds no model (no
    ``config.json`` nor ``adapter_config.json``), a missing folder or a file; a Hub id passes."""
    local = Path(path)
    if local.is_dir():
        if not (local / "config.json").is_file() and not (local / ADAPTER_CONFIG).is_file():
            raise FileNotFoundError(
                f"{path} is not a {what} folder: it has no config.json (nor {ADAPTER_CONFIG}). Give the folder that "
                "`synartifact sft` or `synartifact tiny vlm` wrote, or a Hub id 'org/name'."
            )
        return
    if local.exists():
        raise NotADirectoryError(f"{path} is a file; expected a {what} folder or a Hub id 'org/name'.")
    if is_local_path(str(path)):
        raise FileNotFoundError(
            f"{what.capitalize()} folder {str(path)!r} does not exist (and is not a Hub id 'org/name')."
        )


def _unrecognized(path: str, err: ValueError) -> ValueError:
    """Transformers' "Unrecognized model" error without its list of every model type (5 KB) in one line."""
    first = str(err).split(". Should have", 1)[0].split("\n", 1)[0]
    return ValueError(
        f"{first}: {Path(path) / 'config.json'} names no model type that transformers {_transformers_version()} "
        "knows (its 'model_type' key); give a vision-language model folder or Hub id."
    )


def _transformers_version() -> str:
    from synartifact.compat import library_version

    return str(library_version("transformers"))


def load_classifier_model(path: str, dtype: Any, **kwargs: Any):
    from transformers import AutoModelForImageTextToText

    check_model_folder(path)
    require_hub(path, "model")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if dtype is not None:
        kwargs["dtype"] = dtype
    try:
        return AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    except ValueError as err:  # an architecture registered only for the older auto class
        if str(err).startswith("Unrecognized"):
            raise _unrecognized(path, err) from None
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


def load_classifier_processor(path: str, fallback: str | None):
    try:
        return load_vlm_processor(path)
    except (OSError, ValueError, TypeError, ImportError) as err:
        if fallback is None:
            raise ValueError(f"Could not load a processor from {path}: {err}") from err
        logger.info("No processor in %s (%s); using the base model's from %s", path, err, fallback)
        return load_vlm_processor(fallback)


def qwen_processor_class():
    """Qwen2-VL's processor without a video processor (video processors need torchvision, absent here)."""
    from transformers import Qwen2VLProcessor

    class TinyQwen2VLProcessor(Qwen2VLProcessor):
        attributes = ["image_processor", "tokenizer"]
        tokenizer_class = "AutoTokenizer"  # the tiny models' PreTrainedTokenizerFast as well as Qwen's own

        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            super().__init__(image_processor, tokenizer, video_processor=None, chat_template=chat_template, **kwargs)

    return TinyQwen2VLProcessor


def load_vlm_processor(path, **kwargs):
    """The processor of a VLM folder or Hub id: ``AutoProcessor``, or for Qwen2-VL folders without a video processor
    (video processors need torchvision, which may be absent) the image processor + tokenizer pair."""
    import json

    from transformers import AutoProcessor, ProcessorMixin

    error: Exception | None = None
    try:
        processor = AutoProcessor.from_pretrained(path, **kwargs)
        if isinstance(processor, ProcessorMixin):
            return processor
    except (ImportError, OSError, ValueError, TypeError, AttributeError) as err:
        error = err
    kind = ""
    # transformers 4.57 saves the image processor as preprocessor_config.json, 5.x inside processor_config.json
    for name, keys in (
        ("config.json", ("model_type",)),
        ("preprocessor_config.json", ("image_processor_type",)),
        ("processor_config.json", ("image_processor", "image_processor_type")),
    ):
        file = Path(path) / name
        if not kind and file.is_file():
            found = json.loads(file.read_text())
            for key in keys:
                found = found.get(key, {}) if isinstance(found, dict) else {}
            kind = str(found or "").lower()
    if kind.startswith("qwen2"):
        from transformers import AutoImageProcessor, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        return qwen_processor_class()(
            image_processor=AutoImageProcessor.from_pretrained(path, **kwargs),
            tokenizer=tokenizer,
            chat_template=tokenizer.chat_template,
        )
    if error is not None:
        raise error
    raise ValueError(f"{path} holds no multimodal processor (processor_config.json / preprocessor_config.json).")
