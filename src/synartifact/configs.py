"""Every script's configuration dataclasses, parsed by TRL's ``TrlParser`` (YAML via ``--config``, flags override).

Each field has a ``help`` so that ``--help`` documents it. Script arguments subclass TRL's ``ScriptArguments``;
training arguments are TRL's own ``SFTConfig`` / ``DDPOConfig`` with our defaults where theirs do not fit.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Optional

from trl import ModelConfig, ScriptArguments, SFTConfig

from synartifact.compat import apply_warmup_ratio

__all__ = [
    "DDPO_CONFIG_DEFAULTS",
    "DDPOScriptArguments",
    "SFTModelArguments",
    "SFTScriptArguments",
    "SFTTrainingArguments",
    "ddpo_config_defaults",
]


@dataclass
class SFTScriptArguments(ScriptArguments):
    """Arguments of ``synartifact sft`` beyond TRL's ``SFTConfig``: the dataset, the answer format, the image size."""

    dataset_name: Optional[str] = field(
        default=None,
        metadata={
            "help": "SynArtifact-style dataset (required): a local Hub-layout folder (card + parquet) or a Hub "
            "dataset id."
        },
    )
    dataset_train_split: str = field(
        default="train",
        metadata={"help": "Split to train on, or a slice of it in the datasets spelling: train[:4000], train[50%%:]."},
    )
    dataset_test_split: str = field(
        default="test", metadata={"help": "Split to evaluate on when eval_strategy is not 'no' or do_eval is set."}
    )
    answer_mode: str = field(
        default="labels",
        metadata={
            "help": "Reference answer format: 'labels' (the kinds present, the paper's task) or 'full' "
            "(each artifact with its box and caption).",
            "choices": ["labels", "full"],
        },
    )
    image_size: Optional[int] = field(
        default=None,
        metadata={
            "help": "Resize images to this square size before the processor (saves time and memory on big "
            "images); None keeps them and lets the processor resize."
        },
    )
    max_train_samples: Optional[int] = field(
        default=None, metadata={"help": "Use at most this many training rows (the first ones); None uses all."}
    )
    max_eval_samples: Optional[int] = field(
        default=None, metadata={"help": "Use at most this many evaluation rows; None uses all."}
    )
    build_tiny_model_if_missing: bool = field(
        default=False,
        metadata={
            "help": "When model_name_or_path is a local folder that does not exist, build a tiny VLM there "
            "(synartifact.tiny.build_tiny_vlm) first: the offline default."
        },
    )
    tiny_model_arch: str = field(
        default="llava",
        metadata={
            "help": "Architecture of that tiny VLM: llava, idefics3, qwen2vl or qwen2_5vl.",
            "choices": ["llava", "idefics3", "qwen2vl", "qwen2_5vl"],
        },
    )
    tiny_model_sizes: Optional[str] = field(
        default=None,
        metadata={
            "help": "Keyword arguments of build_tiny_vlm for that tiny VLM (image_size, patch_size, hidden_size, "
            "layers, vision_layers, ...), as a YAML mapping or a JSON string."
        },
    )
    eval_results: Optional[str] = field(
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
            try:
                self.tiny_model_sizes = json.loads(self.tiny_model_sizes)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"tiny_model_sizes must be a JSON object, got {self.tiny_model_sizes!r}: {err}"
                ) from err


@dataclass
class SFTModelArguments(ModelConfig):
    """TRL's ``ModelConfig`` (model path, dtype, LoRA r/alpha/dropout/targets, ``use_peft``) plus VLM-specific choices."""

    model_name_or_path: Optional[str] = field(
        default=None,
        metadata={"help": "VLM to fine-tune (required): a local folder or a Hub id (e.g. llava-hf/llava-1.5-7b-hf)."},
    )
    dtype: Optional[str] = field(
        default="float32",
        metadata={
            "help": "Weights dtype: 'auto', 'float32', 'bfloat16' or 'float16'.",
            "choices": ["auto", "bfloat16", "float16", "float32"],
        },
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: Optional[list[str]] = field(
        default=None,
        metadata={
            "help": "Module names that get LoRA adapters; None targets the language model's attention and MLP "
            "projections (q/k/v/o_proj, gate/up/down_proj)."
        },
    )
    lora_modules_to_save: Optional[list[str]] = field(
        default=None,
        metadata={"help": "Modules trained in full and saved with the adapter (e.g. multi_modal_projector)."},
    )
    freeze_vision_tower: bool = field(
        default=False,
        metadata={
            "help": "Keep the vision encoder's weights fixed (in full fine-tuning; with LoRA only adapters train)."
        },
    )
    freeze_multi_modal_projector: bool = field(
        default=False, metadata={"help": "Keep the vision-to-text projector fixed in full fine-tuning."}
    )


@dataclass
class SFTTrainingArguments(SFTConfig):
    """TRL's ``SFTConfig`` plus the two fields transformers 5 removed from ``TrainingArguments``, which the SFT script
    and the recipes keep on both stacks (:mod:`synartifact.compat` gives ``warmup_ratio`` its meaning there)."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Train again into an output_dir that holds a finished model (its checkpoints are removed); "
            "without it such a rerun is refused and an unfinished one resumes."
        },
    )
    warmup_ratio: float = field(
        default=0.0,
        metadata={"help": "Linear warmup over this fraction of the training steps, in [0, 1); 0 for none."},
    )

    def __post_init__(self):
        apply_warmup_ratio(self)
        super().__post_init__()


@dataclass
class DDPOScriptArguments:
    """Arguments of ``synartifact ddpo`` beyond TRL's ``DDPOConfig``: generator, classifier, reward and prompts."""

    pretrained_model: str = field(
        metadata={
            "help": "Stable Diffusion pipeline to fine-tune (required): a local folder or a Hub id "
            "(e.g. stable-diffusion-v1-5/stable-diffusion-v1-5)."
        },
    )
    classifier: str = field(
        metadata={
            "help": "Artifact classifier giving the reward (required): a folder written by `synartifact sft` or a "
            "Hub id."
        },
    )
    output_dir: str = field(
        metadata={
            "help": "Where the LoRA weights, checkpoints (checkpoints/), sample grids (samples/), the reward "
            "log and the model card go (required)."
        },
    )
    pretrained_revision: str = field(
        default="main", metadata={"help": "Hub revision of pretrained_model (ignored for local folders)."}
    )
    reward_mode: str = field(
        default="score",
        metadata={
            "help": "How the classifier is read: 'score' (the answer's first-token probabilities in one forward "
            "pass; fast) or 'generate' (decode and parse the answer).",
            "choices": ["score", "generate"],
        },
    )
    reward_weights: Optional[str] = field(
        default=None,
        metadata={
            "help": "Per-kind weights 'kind=weight,...' by slug or name, e.g. "
            "'awkward_facial_expression=2,localized_blur=0' (0 ignores a kind; others weigh 1)."
        },
    )
    reward_soft: bool = field(
        default=False,
        metadata={"help": "In 'score' mode, use each kind's probability instead of the 0/1 decision in the reward."},
    )
    unparsable_reward: float = field(
        default=0.0, metadata={"help": "Reward for an image whose classifier answer does not parse."}
    )
    reward_constrained: bool = field(
        default=False,
        metadata={
            "help": "In 'score' mode, compare only the answer format's allowed tokens (constrained decoding), "
            "so no answer counts as unparsable; for zero-shot or untrained classifiers."
        },
    )
    reward_batch_size: int = field(default=16, metadata={"help": "Images per classifier forward pass."})
    reward_temperature: float = field(
        default=1.0,
        metadata={
            "help": "In 'score' mode with reward_soft, divide the kinds' log-probabilities by this (> 0) before the "
            "softmax; > 1 keeps a confident classifier's probabilities off 0/1 so RL sees differences between "
            "samples."
        },
    )
    reward_follow_lines: bool = field(
        default=False,
        metadata={
            "help": "In 'score' mode, read every answer line (1 + kinds found forward passes; 'labels' answer "
            "mode only) instead of the first line's kind in a single forward pass."
        },
    )
    prompts: Optional[str] = field(
        default=None,
        metadata={
            "help": "Prompts: a text file (one per line), a dataset folder or Hub id with a 'prompt' column. "
            "Default (null): the built-in prompt list (synartifact.generator.sampling.DEFAULT_PROMPTS)."
        },
    )
    prompt_split: str = field(
        default="train", metadata={"help": "Dataset split to read prompts from (when `prompts` is a dataset)."}
    )
    max_prompts: Optional[int] = field(
        default=None, metadata={"help": "Use at most this many distinct prompts (None: all)."}
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace a finished run already in output_dir (otherwise an error)."}
    )
    use_lora: bool = field(
        default=True,
        metadata={"help": "Train LoRA adapters on the UNet attention (TRL's default) instead of the full UNet."},
    )
    build_tiny_models_if_missing: bool = field(
        default=False,
        metadata={
            "help": "When the local pretrained_model folder is missing, build the tiny offline SD pipeline there; "
            "when the local classifier folder is missing, use an untrained tiny VLM built in "
            "<output_dir>/tiny-classifier (a smoke test: its reward is close to noise)."
        },
    )
    num_eval_images: int = field(
        default=8,
        metadata={"help": "Images (held-out prompts, fixed seeds) scored before and after training for the card."},
    )
    holdout_eval_prompts: bool = field(
        default=True,
        metadata={
            "help": "Keep the evaluation prompts out of training, so the before/after rewards are measured on "
            "prompts the generator was not trained on. They are the first `num_eval_images` distinct prompts of "
            "the dataset's 'test' split, of the prompt file or of the built-in list: the ones `synartifact "
            "evaluate-generator` scores by default."
        },
    )
    hub_model_id: Optional[str] = field(
        default=None, metadata={"help": "Hub repo for the LoRA weights and card when push_to_hub is set."}
    )
    reward_funcs: list[str] = field(
        default_factory=lambda: ["artifact"],
        metadata={
            "help": "Reward terms (synartifact.generator.guards.REWARD_FUNCS_REGISTRY): 'artifact' (the "
            "classifier's reward), 'contrast' (a guard: minus the share of its floor, 0.7 of its prompt's base-model "
            "contrast, a sample fell short of; 0 above the floor, -1 for a blank), 'noise' (a guard: minus the share by "
            "which a sample's Laplacian energy exceeds 1.3x its prompt's base-model mean; -1 at twice that) and 'drift' (a "
            "penalty: minus the mean squared pixel error to the base model's image of the same prompt). Total reward = sum(weight * term)."
        },
    )
    reward_funcs_weights: Optional[list[float]] = field(
        default=None,
        metadata={
            "help": "One weight (finite, >= 0) per reward_funcs entry, in order (default: all 1.0). Not the "
            "per-kind reward_weights of the artifact reward."
        },
    )
    judge: Optional[str] = field(
        default=None,
        metadata={
            "help": "An independent classifier folder: every judge_every epochs it scores (generate mode, hard "
            "labels) samples of judge_num_prompts held-out prompts; the LoRA weights of the best-judged epoch go "
            "to <output_dir>/best/."
        },
    )
    judge_every: int = field(default=10, metadata={"help": "Epochs between two judge measurements (with judge)."})
    judge_num_prompts: int = field(
        default=4,
        metadata={
            "help": "Prompts the judge scores (with judge): the evaluation split's prompts after the num_eval_images "
            "evaluation ones, kept out of training and out of the before/after comparison."
        },
    )
    judge_images_per_prompt: int = field(
        default=4, metadata={"help": "Images per judge prompt at each judge measurement (fixed seeds)."}
    )


# Our defaults for TRL's DDPOConfig (set on the parser, so a recipe or a flag still overrides them): fp32 on CPU
# (TRL's default "fp16" casts the frozen parts to fp16 even there) and per-prompt advantage normalization.
DDPO_CONFIG_DEFAULTS: dict = {"mixed_precision": "no", "per_prompt_stat_tracking": True, "log_with": None}


def ddpo_config_defaults(config) -> None:
    """Make a TRL ``DDPOConfig`` runnable here: no fp16/bf16 mixed precision without CUDA."""
    import torch

    if not torch.cuda.is_available() and config.mixed_precision in ("fp16", "bf16"):
        logging.getLogger(__name__).warning(
            "mixed_precision %r needs CUDA, which is not available: training in full precision (mixed_precision "
            "'no') instead.",
            config.mixed_precision,
        )
        config.mixed_precision = "no"
