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

import logging
import math
import os
import warnings
from collections.abc import Sequence
from typing import Any

from synartifact.classifier.loading import (
    adapter_base,
    config_base,
    load_classifier_model,
    load_classifier_processor,
    read_classifier_config,
    resolve_dtype,
)
from synartifact.images import DEFAULT_MAX_PIXELS, as_image_list, to_rgb
from synartifact.prompts import ANSWER_MODES, build_messages, parse_answer
from synartifact.report import ArtifactReport

__all__ = ["ArtifactClassifier", "DEFAULT_MAX_NEW_TOKENS"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = {"labels": 128, "full": 512}


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
        torch_dtype = resolve_dtype("auto" if dtype is None else dtype)
        base = adapter_base(path)
        if base is not None:
            from peft import PeftModel

            model = load_classifier_model(base, torch_dtype, **kwargs)
            model = PeftModel.from_pretrained(model, path)
            if merge_lora:
                with warnings.catch_warnings():  # peft warns about untying embeddings that LoRA did not touch
                    warnings.filterwarnings("ignore", message="Input and output embeddings are no longer tied")
                    model = model.merge_and_unload()
            processor = load_classifier_processor(path, fallback=base)
        else:
            model = load_classifier_model(path, torch_dtype, **kwargs)
            processor = load_classifier_processor(path, fallback=config_base(config))
        if kwargs.get("device_map") is None:  # with a device_map, accelerate has placed the weights already
            model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        return cls(
            model,
            processor,
            mode=mode,
            max_new_tokens=max_new_tokens,
            max_pixels=max_pixels,
            name_or_path=path,
            base_model=base or config_base(config),
        )

    # ------------------------------------------------------------------------------------------------------
    def load_images(self, images: Any) -> list:
        """The inputs as RGB PIL images (see :func:`synartifact.images.to_rgb`), refusing bad ones with their index."""
        return [to_rgb(image, i, self.max_pixels) for i, image in enumerate(as_image_list(images))]

    def _processor_images(self, images: list) -> list:
        from synartifact.classifier.families import processor_nests_images

        return [[image] for image in images] if processor_nests_images(self.processor) else images

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
