"""Every script's configuration dataclasses, parsed by TRL's ``TrlParser`` (YAML via ``--config``, flags override).

Each field has a ``help`` so that ``--help`` documents it. Script arguments subclass TRL's ``ScriptArguments``;
training arguments are TRL's own ``SFTConfig`` / ``DDPOConfig`` with our defaults where theirs do not fit.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------------------------------------------
# SFT (the artifact classifier) — owned by the classifier work
# ---------------------------------------------------------------------------------------------------------------
import dataclasses as _sft_dc  # noqa: E402
from typing import Optional as _SFTOptional  # noqa: E402

from trl import ModelConfig as _TRLModelConfig  # noqa: E402
from trl import ScriptArguments as _TRLScriptArguments  # noqa: E402


@_sft_dc.dataclass
class SFTScriptArguments(_TRLScriptArguments):
    """Arguments of ``synartifact sft`` beyond TRL's ``SFTConfig``: the dataset, the answer format, the image size."""

    dataset_name: _SFTOptional[str] = _sft_dc.field(
        default="outputs/demo/dataset",
        metadata={
            "help": "SynArtifact-style dataset: a local Hub-layout folder (card + parquet) or a Hub dataset id."
        },
    )
    dataset_train_split: str = _sft_dc.field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str = _sft_dc.field(
        default="test", metadata={"help": "Split to evaluate on when eval_strategy is not 'no' or do_eval is set."}
    )
    answer_mode: str = _sft_dc.field(
        default="labels",
        metadata={
            "help": "Reference answer format: 'labels' (the kinds present, the paper's task) or 'full' "
            "(each artifact with its box and caption).",
            "choices": ["labels", "full"],
        },
    )
    image_size: _SFTOptional[int] = _sft_dc.field(
        default=None,
        metadata={
            "help": "Resize images to this square size before the processor (saves time and memory on big "
            "images); None keeps them and lets the processor resize."
        },
    )
    max_train_samples: _SFTOptional[int] = _sft_dc.field(
        default=None, metadata={"help": "Use at most this many training rows (the first ones); None uses all."}
    )
    max_eval_samples: _SFTOptional[int] = _sft_dc.field(
        default=None, metadata={"help": "Use at most this many evaluation rows; None uses all."}
    )
    build_tiny_model_if_missing: bool = _sft_dc.field(
        default=False,
        metadata={
            "help": "When model_name_or_path is a local folder that does not exist, build a tiny VLM there "
            "(synartifact.tiny.build_tiny_vlm) first: the offline default."
        },
    )
    tiny_model_arch: str = _sft_dc.field(
        default="llava",
        metadata={
            "help": "Architecture of that tiny VLM: llava, idefics3, qwen2vl or qwen2_5vl.",
            "choices": ["llava", "idefics3", "qwen2vl", "qwen2_5vl"],
        },
    )
    tiny_model_sizes: _SFTOptional[str] = _sft_dc.field(
        default=None,
        metadata={
            "help": "Keyword arguments of build_tiny_vlm for that tiny VLM (image_size, patch_size, hidden_size, "
            "layers, vision_layers, ...), as a YAML mapping or a JSON string."
        },
    )
    eval_results: _SFTOptional[str] = _sft_dc.field(
        default=None,
        metadata={
            "help": "Evaluation JSON (synartifact evaluate's metrics.json) whose numbers go into the model card; "
            "default: <output_dir>/eval_results.json when present."
        },
    )

    def __post_init__(self):
        if self.answer_mode not in ("labels", "full"):
            raise ValueError(f"answer_mode must be 'labels' or 'full', not {self.answer_mode!r}.")
        if isinstance(self.tiny_model_sizes, str):
            import json

            try:
                self.tiny_model_sizes = json.loads(self.tiny_model_sizes)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"tiny_model_sizes must be a JSON object, got {self.tiny_model_sizes!r}: {err}"
                ) from err


@_sft_dc.dataclass
class SFTModelArguments(_TRLModelConfig):
    """TRL's ``ModelConfig`` (model path, dtype, LoRA r/alpha/dropout/targets, ``use_peft``) plus VLM-specific choices."""

    model_name_or_path: _SFTOptional[str] = _sft_dc.field(
        default="outputs/tiny-vlm",
        metadata={"help": "VLM to fine-tune: a local folder or a Hub id (e.g. llava-hf/llava-1.5-7b-hf)."},
    )
    dtype: _SFTOptional[str] = _sft_dc.field(
        default="float32",
        metadata={
            "help": "Weights dtype: 'auto', 'float32', 'bfloat16' or 'float16'.",
            "choices": ["auto", "bfloat16", "float16", "float32"],
        },
    )
    lora_r: int = _sft_dc.field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = _sft_dc.field(default=32, metadata={"help": "LoRA alpha (scale = alpha / r)."})
    lora_dropout: float = _sft_dc.field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: _SFTOptional[list[str]] = _sft_dc.field(
        default=None,
        metadata={
            "help": "Module names that get LoRA adapters; None targets the language model's attention and MLP "
            "projections (q/k/v/o_proj, gate/up/down_proj)."
        },
    )
    lora_modules_to_save: _SFTOptional[list[str]] = _sft_dc.field(
        default=None,
        metadata={"help": "Modules trained in full and saved with the adapter (e.g. multi_modal_projector)."},
    )
    freeze_vision_tower: bool = _sft_dc.field(
        default=False,
        metadata={
            "help": "Keep the vision encoder's weights fixed (in full fine-tuning; with LoRA only adapters train)."
        },
    )
    freeze_multi_modal_projector: bool = _sft_dc.field(
        default=False, metadata={"help": "Keep the vision-to-text projector fixed in full fine-tuning."}
    )


# ---------------------------------------------------------------------------------------------------------------
# DDPO (artifact alleviation) — owned by the alleviation work
# ---------------------------------------------------------------------------------------------------------------

import dataclasses as _ddpo_dc  # noqa: E402
from typing import Optional as _Optional  # noqa: E402


@_ddpo_dc.dataclass
class DDPOScriptArguments:
    """Arguments of ``synartifact ddpo`` beyond TRL's ``DDPOConfig``: generator, classifier, reward and prompts."""

    pretrained_model: str = _ddpo_dc.field(
        default="outputs/tiny-sd",
        metadata={
            "help": "Stable Diffusion pipeline to fine-tune: a local folder or a Hub id "
            "(e.g. stable-diffusion-v1-5/stable-diffusion-v1-5)."
        },
    )
    pretrained_revision: str = _ddpo_dc.field(
        default="main", metadata={"help": "Hub revision of pretrained_model (ignored for local folders)."}
    )
    classifier: str = _ddpo_dc.field(
        default="outputs/demo/classifier",
        metadata={"help": "Artifact classifier giving the reward: a folder written by `synartifact sft` or a Hub id."},
    )
    reward_mode: str = _ddpo_dc.field(
        default="score",
        metadata={
            "help": "How the classifier is read: 'score' (the answer's first-token probabilities in one forward "
            "pass; fast) or 'generate' (decode and parse the answer).",
            "choices": ["score", "generate"],
        },
    )
    reward_weights: _Optional[str] = _ddpo_dc.field(
        default=None,
        metadata={
            "help": "Per-kind weights 'kind=weight,...' by slug or name, e.g. "
            "'awkward_facial_expression=2,localized_blur=0' (0 ignores a kind; others weigh 1)."
        },
    )
    reward_soft: bool = _ddpo_dc.field(
        default=False,
        metadata={"help": "In 'score' mode, use each kind's probability instead of the 0/1 decision in the reward."},
    )
    unparsable_reward: float = _ddpo_dc.field(
        default=0.0, metadata={"help": "Reward for an image whose classifier answer does not parse."}
    )
    reward_constrained: bool = _ddpo_dc.field(
        default=False,
        metadata={
            "help": "In 'score' mode, compare only the answer format's allowed tokens (constrained decoding), "
            "so no answer counts as unparsable; for zero-shot or untrained classifiers."
        },
    )
    reward_batch_size: int = _ddpo_dc.field(default=16, metadata={"help": "Images per classifier forward pass."})
    reward_temperature: float = _ddpo_dc.field(
        default=1.0,
        metadata={
            "help": "In 'score' mode with reward_soft, divide the kinds' log-probabilities by this (> 0) before the "
            "softmax; > 1 keeps a confident classifier's probabilities off 0/1 so RL sees differences between "
            "samples."
        },
    )
    reward_follow_lines: bool = _ddpo_dc.field(
        default=False,
        metadata={
            "help": "In 'score' mode, read every answer line (1 + kinds found forward passes; 'labels' answer "
            "mode only) instead of the first line's kind in a single forward pass."
        },
    )
    prompts: _Optional[str] = _ddpo_dc.field(
        default=None,
        metadata={
            "help": "Prompts: a text file (one per line), a dataset folder or Hub id with a 'prompt' column. "
            "Default: the SynArtifact dataset's own prompts in outputs/demo/dataset."
        },
    )
    prompt_split: str = _ddpo_dc.field(
        default="train", metadata={"help": "Dataset split to read prompts from (when `prompts` is a dataset)."}
    )
    max_prompts: _Optional[int] = _ddpo_dc.field(
        default=None, metadata={"help": "Use at most this many distinct prompts (None: all)."}
    )
    output_dir: str = _ddpo_dc.field(
        default="outputs/ddpo",
        metadata={
            "help": "Where the LoRA weights, checkpoints (checkpoints/), sample grids (samples/), the reward "
            "log and the model card go."
        },
    )
    overwrite_output_dir: bool = _ddpo_dc.field(
        default=False, metadata={"help": "Replace a finished run already in output_dir (otherwise an error)."}
    )
    use_lora: bool = _ddpo_dc.field(
        default=True,
        metadata={"help": "Train LoRA adapters on the UNet attention (TRL's default) instead of the full UNet."},
    )
    build_tiny_models_if_missing: bool = _ddpo_dc.field(
        default=False,
        metadata={
            "help": "Build the tiny offline SD pipeline and (untrained) tiny classifier when their local "
            "folders are missing."
        },
    )
    num_eval_images: int = _ddpo_dc.field(
        default=8,
        metadata={"help": "Images (held-out prompts, fixed seeds) scored before and after training for the card."},
    )
    holdout_eval_prompts: bool = _ddpo_dc.field(
        default=True,
        metadata={
            "help": "Keep the evaluation prompts (the first `num_eval_images` distinct prompts of the dataset's "
            "'test' split, which `synartifact evaluate-generator` also uses by default) out of training, so the "
            "before/after rewards are measured on prompts the generator was not trained on."
        },
    )
    hub_model_id: _Optional[str] = _ddpo_dc.field(
        default=None, metadata={"help": "Hub repo for the LoRA weights and card when push_to_hub is set."}
    )


# Our defaults for TRL's DDPOConfig (set on the parser, so a recipe or a flag still overrides them): fp32 on CPU
# (TRL's default "fp16" casts the frozen parts to fp16 even there) and per-prompt advantage normalization.
DDPO_CONFIG_DEFAULTS: dict = {"mixed_precision": "no", "per_prompt_stat_tracking": True, "log_with": None}


def ddpo_config_defaults(config) -> None:
    """Make a TRL ``DDPOConfig`` runnable here: no fp16/bf16 mixed precision without CUDA."""
    import torch

    if not torch.cuda.is_available() and config.mixed_precision in ("fp16", "bf16"):
        config.mixed_precision = "no"
