"""Fine-tune a vision-language model as an artifact classifier with TRL's ``SFTTrainer`` (LoRA or full).

Dataset rows (the SynArtifact contract, :mod:`synartifact.data`) become TRL ``prompt``/``completion`` examples
(:func:`synartifact.prompts.to_sft_example`): the question lists the 13 kinds as options, the completion is the
reference answer, and the loss falls on the answer only. Every field of the config dataclasses
(:mod:`synartifact.configs`, TRL's ``SFTConfig``) can come from the YAML recipe or the command line.

Usage::

    # one process (CPU or one GPU); the tiny recipe builds its tiny LLaVA when missing
    python -m synartifact.sft --config recipes/tiny/sft/config_cpu.yaml
    synartifact sft --config recipes/tiny/sft/config_cpu.yaml --max_steps 10 --output_dir outputs/sft-try

    # through accelerate (the config file picks the hardware, the recipe the model)
    accelerate launch --config_file recipes/accelerate_configs/cpu.yaml -m synartifact.sft \\
        --config recipes/tiny/sft/config_cpu.yaml
    accelerate launch --config_file recipes/accelerate_configs/single_gpu.yaml -m synartifact.sft \\
        --config recipes/smolvlm-256m/sft/config_lora.yaml
    accelerate launch --config_file recipes/accelerate_configs/zero2.yaml --num_processes 8 -m synartifact.sft \\
        --config recipes/llava-1.5-7b/sft/config_lora.yaml

    # several processes on CPU (DDP over gloo): accelerate --cpu starts only one process without MPI, so use torchrun
    torchrun --nproc_per_node 2 -m synartifact.sft --config recipes/tiny/sft/config_cpu.yaml

    # resume: rerun into the same unfinished --output_dir (its last complete checkpoint-N), or name a checkpoint
    synartifact sft --config recipes/tiny/sft/config_cpu.yaml --resume_from_checkpoint true

Checkpoints a kill left incomplete (no ``trainer_state.json``, missing or truncated weights or optimizer states) are
skipped with a warning. A finished ``--output_dir`` is continued only with ``--resume_from_checkpoint`` and replaced
only with ``--overwrite_output_dir``.

The output folder holds the weights (or the LoRA adapter, whose ``base_model_name_or_path`` points at the base
model), the processor, ``training_args.bin``, ``sft_run.json`` (base model, data, world size, metrics) and a model
card rendered from ``hub_cards/classifier_card.md`` (``synartifact_card.json`` keeps what it was rendered from, so
that ``synartifact evaluate`` can add its results). ``--push_to_hub`` uploads it with the standard arguments.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import datasets
import torch
import transformers
from transformers import AutoModelForImageTextToText, set_seed
from trl import SFTTrainer as TRLSFTTrainer
from trl import TrlParser

from synartifact.cards import classifier_results_table, hub_card_data, save_model_card
from synartifact.checkpoints import file_problem, newest_complete, numbered_folders
from synartifact.compat import align_mm_token_type_ids, write_portable_processor_files
from synartifact.configs import SFTModelArguments, SFTScriptArguments, SFTTrainingArguments
from synartifact.prompts import ANSWER_MODES, render_answer, to_sft_example
from synartifact.utils import final_path, is_local_path

__all__ = [
    "main",
    "cli_main",
    "load_sft_datasets",
    "load_model",
    "make_peft_config",
    "write_model_card",
    "SFTTrainer",
    "checkpoint_problem",
    "last_complete_checkpoint",
    "resolve_checkpoint",
]

logger = logging.getLogger(__name__)

# LoRA on the language model's projections only: the vision towers use other names or are excluded by the lookahead.
DEFAULT_LORA_TARGETS = r"^(?!.*(vision|visual)).*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"
VISION_TOWER_NAMES = ("vision_tower", "vision_model", "visual")
PROJECTOR_NAMES = ("multi_modal_projector", "connector", "merger")
CARD_TEMPLATE = "classifier_card.md"
RUN_FILE = "sft_run.json"
# what a finished run leaves in output_dir (a rerun must not replace it unasked)
FINAL_FILES = ("config.json", "adapter_config.json", RUN_FILE)
CHECKPOINT_PATTERN = r"checkpoint-(\d+)"
# full weights as Trainer writes them (single file, or shards listed by an index), safetensors first
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")


# ------------------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------------------


def load_sft_datasets(script_args: SFTScriptArguments, training_args: SFTTrainingArguments | None = None):
    """The train (and, when evaluating, test) split as TRL ``images`` + ``prompt``/``completion`` datasets."""
    from synartifact.data import load_artifact_dataset
    from synartifact.data.splits import select_split

    if not script_args.dataset_name:
        raise ValueError("dataset_name is not set: give a local dataset folder or a Hub dataset id.")
    dataset = load_artifact_dataset(script_args.dataset_name)
    splits = dict(dataset) if isinstance(dataset, datasets.DatasetDict) else {"train": dataset}
    where = f"Dataset {script_args.dataset_name} (dataset_train_split)"
    select_split(splits, script_args.dataset_train_split, where)  # a bad name fails here, before any work
    wanted = {"train": (script_args.dataset_train_split, script_args.max_train_samples)}
    evaluating = training_args is not None and (training_args.eval_strategy != "no" or training_args.do_eval)
    if evaluating:
        if script_args.dataset_test_split not in splits:
            raise ValueError(
                f"Evaluation is on (eval_strategy/do_eval) but dataset {script_args.dataset_name} has no split "
                f"{script_args.dataset_test_split!r} (dataset_test_split); its splits are {sorted(splits)}."
            )
        wanted["test"] = (script_args.dataset_test_split, script_args.max_eval_samples)
    num_proc = training_args.dataset_num_proc if training_args is not None else None

    def convert(row: dict) -> dict:
        return to_sft_example(row, mode=script_args.answer_mode, image_size=script_args.image_size)

    out = {}
    for name, (split, limit) in wanted.items():
        part = select_split(splits, split, f"Dataset {script_args.dataset_name}")
        part = _without_kindless(part, f"{script_args.dataset_name} ({split})")
        if limit is not None:
            part = part.select(range(min(int(limit), len(part))))
        out[name] = part.map(
            convert, remove_columns=part.column_names, num_proc=num_proc, desc=f"QA template ({split})"
        )
    return out.get("train"), out.get("test")


def _without_kindless(part: Any, where: str) -> Any:
    """The rows of a split without a kind-less artifact (label -1); how many were left out is logged. The answer
    names a kind per artifact (:func:`synartifact.prompts.has_kindless` says why such rows are not trained on)."""
    from synartifact.prompts import has_kindless

    flags = [has_kindless(arts) for arts in part.select_columns(["artifacts"])["artifacts"]]
    if not any(flags):
        return part
    keep = [i for i, flag in enumerate(flags) if not flag]
    if not keep:
        raise ValueError(
            f"Dataset {where}: all {len(flags)} rows have an artifact without a kind (label -1), which the answer "
            "cannot name; build it with --kinds-from-captions or --label-map SOURCE_region=KIND, or merge it with "
            "a dataset whose artifacts have kinds."
        )
    logger.warning(
        "Dataset %s: %d of %d rows left out of SFT: they have an artifact without a kind (label -1), which the "
        "answer cannot name.",
        where,
        len(flags) - len(keep),
        len(flags),
    )
    return part.select(keep)


def trained_kinds(dataset: Any, mode: str = "labels") -> list[str]:
    """The kinds (taxonomy slugs, in taxonomy order) that the answers of a converted training split name: what the
    classifier was taught to find (recorded in ``sft_run.json``; the classify Space offers examples of them)."""
    from synartifact.prompts import parse_answer
    from synartifact.taxonomy import SLUGS

    found: set[str] = set()
    for completion in dataset["completion"]:
        found |= parse_answer(completion[-1]["content"][0]["text"], mode).kinds
    return [slug for slug in SLUGS if slug in found]


# ------------------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------------------


def ensure_model(
    script_args: SFTScriptArguments, model_args: SFTModelArguments, training_args: SFTTrainingArguments
) -> str:
    """The model path, building the tiny VLM there first when it is a missing local folder and that is allowed."""
    name = model_args.model_name_or_path
    if not name:
        raise ValueError("model_name_or_path is not set: give a local model folder or a Hub id.")
    if Path(name).exists() or not is_local_path(name):
        return name
    if not script_args.build_tiny_model_if_missing:
        raise FileNotFoundError(
            f"Model folder {name} does not exist: build it with `synartifact tiny vlm --out {name}` or set "
            "build_tiny_model_if_missing: true."
        )
    from synartifact.tiny import get_tiny_vlm

    with training_args.main_process_first(desc="build the tiny VLM"):
        if not (Path(name) / "config.json").is_file():
            logger.info("Building the tiny %s VLM at %s", script_args.tiny_model_arch, name)
            get_tiny_vlm(name, arch=script_args.tiny_model_arch, **dict(script_args.tiny_model_sizes or {}))
    return name


def _find_modules(model: torch.nn.Module, names: tuple[str, ...]) -> list[torch.nn.Module]:
    found, prefixes = [], []
    for path, module in model.named_modules():
        if path.split(".")[-1] in names and not any(path.startswith(p + ".") for p in prefixes):
            found.append(module)
            prefixes.append(path)
    return found


def load_model(path: str, model_args: SFTModelArguments):
    """The VLM and its processor from a folder or Hub id, with the vision tower or projector frozen if asked."""
    from synartifact.classifier.loading import load_vlm_processor

    dtype = model_args.dtype or model_args.torch_dtype
    kwargs: dict[str, Any] = {"revision": model_args.model_revision, "trust_remote_code": model_args.trust_remote_code}
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    if dtype:
        kwargs["dtype"] = dtype if dtype == "auto" else getattr(torch, dtype)
    model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    processor = load_vlm_processor(
        path, revision=model_args.model_revision, trust_remote_code=model_args.trust_remote_code
    )
    if not model_args.use_peft:
        frozen = []
        if model_args.freeze_vision_tower:
            frozen += _find_modules(model, VISION_TOWER_NAMES)
        if model_args.freeze_multi_modal_projector:
            frozen += _find_modules(model, PROJECTOR_NAMES)
        for module in frozen:
            module.requires_grad_(False)
    return model, processor


def make_peft_config(model_args: SFTModelArguments):
    """The PEFT ``LoraConfig`` from the model arguments, or ``None`` for full fine-tuning."""
    if not model_args.use_peft:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=model_args.lora_target_modules or DEFAULT_LORA_TARGETS,
        modules_to_save=model_args.lora_modules_to_save,
        task_type=model_args.lora_task_type,
        use_rslora=model_args.use_rslora,
        use_dora=model_args.use_dora,
        bias="none",
    )


# ------------------------------------------------------------------------------------------------------------
# Resume
# ------------------------------------------------------------------------------------------------------------


def _weight_files(folder: Path) -> list[Path]:
    """The full-model weight files of a checkpoint (one file, or every shard of its index); [] when there are none."""
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return [folder / name]
    for name in WEIGHT_INDEXES:
        if (folder / name).is_file():
            try:
                shards = json.loads((folder / name).read_text(encoding="utf-8"))["weight_map"].values()
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, AttributeError):
                return [folder / name]  # reported as unreadable by checkpoint_problem
            return [folder / name] + [folder / shard for shard in sorted(set(shards))]
    return []


def checkpoint_problem(folder: str | Path, need_optimizer: bool = True) -> str | None:
    """Why a Trainer ``checkpoint-N`` folder cannot be resumed from, or ``None`` when it is complete.

    Complete: ``trainer_state.json`` (written last) parses, the model or adapter weights are all there and whole and,
    unless ``need_optimizer`` is off (``save_only_model``), so are the optimizer, scheduler and RNG states.
    DeepSpeed and FSDP checkpoints are checked for the trainer state only (their shards have their own layout).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return f"{folder} is not a folder"
    problem = file_problem(folder / "trainer_state.json")
    if problem:
        return problem
    if any(p.is_dir() and (p.name.startswith("global_step") or "fsdp" in p.name) for p in folder.iterdir()):
        return None
    files = _weight_files(folder) or [folder / n for n in ADAPTER_FILES if (folder / n).is_file()][:1]
    if not files:
        return f"no model weights ({', '.join(WEIGHT_FILES + ADAPTER_FILES)} or a sharded index)"
    if need_optimizer:
        rng = sorted(folder.glob("rng_state*.pth"))
        files += [folder / "optimizer.pt", folder / "scheduler.pt"] + (rng or [folder / "rng_state.pth"])
    for path in files:
        problem = file_problem(path)
        if problem:
            return problem
    return None


def last_complete_checkpoint(output_dir: str | Path, need_optimizer: bool = True) -> str | None:
    """The newest complete ``checkpoint-N`` folder of ``output_dir``; newer incomplete ones are skipped with a
    warning naming each. ``None`` when there is none."""
    found, _ = newest_complete(
        numbered_folders(output_dir, CHECKPOINT_PATTERN), lambda f: checkpoint_problem(f, need_optimizer)
    )
    return str(found) if found is not None else None


def resolve_checkpoint(training_args: SFTTrainingArguments) -> str | None:
    """The checkpoint this run resumes from, or ``None`` to start fresh.

    ``--resume_from_checkpoint DIR`` must name a complete checkpoint; ``--resume_from_checkpoint true`` takes the last
    complete one of ``output_dir``. Without it, a rerun into an unfinished ``output_dir`` resumes from its last
    complete checkpoint; one into a finished run is refused unless ``--overwrite_output_dir`` (which starts over and
    removes the old checkpoints).
    """
    output_dir = Path(training_args.output_dir)
    need_optimizer = not training_args.save_only_model
    asked = str(training_args.resume_from_checkpoint or "").strip()
    if asked.lower() in ("false", "none"):
        asked = ""
    if asked.lower() == "true":
        found = last_complete_checkpoint(output_dir, need_optimizer)
        if found is None:
            raise ValueError(
                f"--resume_from_checkpoint true: {output_dir} has no complete checkpoint-N folder to resume from. "
                "Give a checkpoint folder, or leave the flag out to start a new run."
            )
        return found
    if asked:
        problem = checkpoint_problem(asked, need_optimizer)
        if problem:
            raise ValueError(
                f"Cannot resume from {asked}: {problem}. Give a complete checkpoint-N folder, or true for the last "
                f"complete one in {output_dir}."
            )
        return asked
    if not output_dir.is_dir():
        return None
    if training_args.overwrite_output_dir:
        if training_args.should_save:
            for _, folder in numbered_folders(output_dir, CHECKPOINT_PATTERN):
                logger.warning("overwrite_output_dir: removing the old checkpoint %s.", folder)
                shutil.rmtree(folder)
        return None
    if any((output_dir / f).is_file() for f in FINAL_FILES):
        raise FileExistsError(
            f"{output_dir} already holds a trained model: pass --resume_from_checkpoint true to continue it from its "
            "last checkpoint, --overwrite_output_dir true to train it again, or another --output_dir."
        )
    found = last_complete_checkpoint(output_dir, need_optimizer)
    if found is not None:
        logger.info("Checkpoint detected, resuming training at %s.", found)
    return found


class SFTTrainer(TRLSFTTrainer):
    """TRL's ``SFTTrainer`` whose resume (and best-model reload) restores exactly the weights a checkpoint holds.

    transformers saves a VLM under its older weight names (4.57: ``_checkpoint_conversion_mapping`` reversed; 5.x:
    its conversion mapping reversed) but ``Trainer`` reloads a checkpoint with a plain ``load_state_dict``: no name
    matches, a warning lists them and training goes on from the untrained model. Here the checkpoint is read with
    ``from_pretrained``, which renames by the installed version's own rules, and a checkpoint that does not fit the
    model is an error. LoRA adapters, DeepSpeed and FSDP load as before.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.data_collator = align_mm_token_type_ids(
            _TemplatedOnce.wrap(self.data_collator, self.processing_class), self.processing_class
        )
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model  # PEFT or not
        self._keeps_logits = "logits_to_keep" in inspect.signature(base.forward).parameters

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """In training, the language-model head runs on the completion tokens only.

        TRL's loss masks the prompt, yet the model still projects every position (image tokens and the long question
        included) onto the whole vocabulary, and TRL then takes a full-vocabulary softmax again for its entropy log:
        with a tiny model most of a step. Here the model returns logits at the positions that predict a completion
        token (``logits_to_keep``, the union over the batch) and the loss is the same cross-entropy over the same
        tokens, normalized as ``Trainer`` normalizes a causal LM's own loss (``num_items_in_batch``). The logged
        ``mean_token_accuracy`` is TRL's; ``entropy`` is taken over the completion tokens. Evaluation, label smoothing,
        Liger, prompt tuning and models without ``logits_to_keep`` take TRL's path unchanged.
        """
        keep = self._completion_positions(model, inputs)
        if keep is None:
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        targets = inputs["labels"][:, 1:][:, keep]
        mask = targets != -100
        saved_loss_func = self.compute_loss_func
        self.compute_loss_func = _KeptTokenLoss(targets)  # Trainer.compute_loss: labels kept out of the model's call
        try:
            loss, outputs = transformers.Trainer.compute_loss(
                self,
                model,
                {**inputs, "logits_to_keep": keep, "use_cache": False},
                return_outputs=True,
                num_items_in_batch=num_items_in_batch,
            )
        finally:
            self.compute_loss_func = saved_loss_func
        with torch.no_grad():
            logits = outputs.logits.detach().float()
            log_probs = torch.log_softmax(logits, dim=-1)
            entropy = -(log_probs.exp() * log_probs).sum(-1)[mask].mean()
            correct = ((logits.argmax(-1) == targets) & mask).sum()
        gather = self.accelerator.gather_for_metrics
        self._metrics["train"]["entropy"].append(gather(entropy).mean().item())
        self._total_train_tokens += gather(inputs["attention_mask"].sum()).sum().item()
        self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
        total = gather(mask.sum()).sum()
        self._metrics["train"]["mean_token_accuracy"].append(
            (gather(correct).sum() / total).item() if total > 0 else 0.0
        )
        return (loss, outputs) if return_outputs else loss

    def _completion_positions(self, model, inputs) -> torch.Tensor | None:
        """The sequence positions whose next token is a completion token in some row, or None where the fast path
        does not apply (see ``compute_loss``)."""
        labels = inputs.get("labels")
        if (
            not model.training
            or labels is None
            or "attention_mask" not in inputs
            or "shift_labels" in inputs
            or self.label_smoother is not None
            or self.compute_loss_func is not None
            or self.args.use_liger_kernel
            or getattr(self, "num_virtual_tokens", 0)
            or self.aux_loss_enabled
            or not self._keeps_logits
        ):
            return None
        keep = (labels[:, 1:] != -100).any(dim=0).nonzero().squeeze(1)
        return keep if keep.numel() else None

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        if not self._load_renamed_weights(resume_from_checkpoint, self.model if model is None else model):
            super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _load_best_model(self):
        if not self._load_renamed_weights(self.state.best_model_checkpoint, self.model):
            super()._load_best_model()

    def _load_renamed_weights(self, checkpoint: str, model: torch.nn.Module) -> bool:
        """Load a full-weights checkpoint folder into ``model`` under its current names; False when that is not the
        case (an adapter, DeepSpeed, FSDP, no ``config.json``)."""
        from peft import PeftModel
        from transformers import PreTrainedModel

        folder = Path(checkpoint)
        if (
            not isinstance(model, PreTrainedModel)
            or isinstance(model, PeftModel)
            or self.is_deepspeed_enabled
            or self.is_fsdp_enabled
            or not (folder / "config.json").is_file()
            or not _weight_files(folder)
        ):
            return False
        dtype = next(model.parameters()).dtype
        try:
            saved, info = type(model).from_pretrained(folder, dtype=dtype, output_loading_info=True)
        except (OSError, RuntimeError, ValueError) as err:
            raise ValueError(
                f"Checkpoint {checkpoint} does not fit the model being trained ({type(err).__name__}: {err}). Resume "
                "from a checkpoint of this model and configuration, or start a new --output_dir."
            ) from err
        missing, unexpected = list(info.get("missing_keys") or ()), list(info.get("unexpected_keys") or ())
        mismatched = list(info.get("mismatched_keys") or ())
        if missing or unexpected or mismatched:
            raise ValueError(
                f"Checkpoint {checkpoint} does not fit the model being trained: {len(missing)} weights missing "
                f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}), {len(mismatched)} of "
                "another shape. Resume from a checkpoint of this model and configuration, or start a new --output_dir."
            )
        weights = saved.state_dict()
        try:
            model.load_state_dict(weights, strict=True)
        except RuntimeError as err:
            raise ValueError(f"Checkpoint {checkpoint} does not fit the model being trained: {err}") from err
        logger.info("Restored %d weights from %s.", len(weights), checkpoint)
        del saved, weights
        return True


class _TemplatedOnce:
    """TRL's vision collator, with each example's chat template rendered once instead of once per epoch.

    TRL 0.23.1 renders the prompt and the prompt + completion through the chat template for every example of every
    batch (``trl.data_utils.apply_chat_template``); with a tiny model that is a fair share of a step. Here the same two
    TRL functions turn a conversational example into the ``prompt``/``completion`` strings they would give, memoized
    by the messages (an answer repeats across images and epochs), and the strings go to TRL's collator, which then
    only tokenizes them: the batches are TRL's own, token for token (``tests/test_sft.py``).
    """

    MAX_ENTRIES = 1 << 16

    def __init__(self, collator: Any, processor: Any):
        self.collator, self.processor, self.rendered = collator, processor, {}

    @classmethod
    def wrap(cls, collator: Any, processor: Any) -> Any:
        from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

        return cls(collator, processor) if isinstance(collator, DataCollatorForVisionLanguageModeling) else collator

    def __call__(self, examples: list[dict]) -> dict:
        return self.collator([self._rendered(example) for example in examples])

    def _rendered(self, example: dict) -> dict:
        from trl.data_utils import apply_chat_template, is_conversational, prepare_multimodal_messages

        if "prompt" not in example or "completion" not in example or not is_conversational(example):
            return example
        images = len(example.get("images") or ())
        key = json.dumps([example["prompt"], example["completion"], images], sort_keys=True, default=str)
        texts = self.rendered.get(key)
        if texts is None:
            messages = {"prompt": copy.deepcopy(example["prompt"]), "completion": copy.deepcopy(example["completion"])}
            prepare_multimodal_messages(messages["prompt"] + messages["completion"], images)
            out = apply_chat_template(messages, self.processor)
            texts = (out["prompt"], out["completion"])
            if len(self.rendered) >= self.MAX_ENTRIES:
                self.rendered.clear()
            self.rendered[key] = texts
        return {**example, "prompt": texts[0], "completion": texts[1]}


class _KeptTokenLoss:
    """Cross-entropy of logits kept at some positions against those positions' targets (-100 ignored): a sum over
    ``num_items_in_batch`` when ``Trainer`` counts the tokens (gradient accumulation), else the mean, as
    ``transformers``' own causal-LM loss."""

    def __init__(self, targets: torch.Tensor):
        self.targets = targets

    def __call__(self, outputs, labels, num_items_in_batch=None):
        logits = outputs.logits.float()
        targets = self.targets.to(logits.device)
        reduction = "sum" if num_items_in_batch is not None else "mean"
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction=reduction
        )
        if num_items_in_batch is not None:
            if torch.is_tensor(num_items_in_batch):
                num_items_in_batch = num_items_in_batch.to(loss.device)
            loss = loss / num_items_in_batch
        return loss


# ------------------------------------------------------------------------------------------------------------
# Card
# ------------------------------------------------------------------------------------------------------------


def write_model_card(output_dir: str | Path, run: dict, eval_results: str | Path | None = None) -> Path:
    """Render ``templates/classifier_card.md`` into ``output_dir/README.md`` from the run record and eval results.

    The card names ``run["hub_model_id"]`` when set, else the final output folder (``run["output_dir"]``, or
    :func:`~synartifact.utils.final_path` of ``output_dir``, which may be a temporary folder). Hub ids of the base
    model and dataset become the card's ``base_model`` / ``datasets`` metadata; local folders are named in the text
    only.
    """
    import accelerate
    import peft
    import trl

    output_dir = Path(output_dir)
    eval_file = Path(eval_results) if eval_results else output_dir / "eval_results.json"
    table = note = ""
    if eval_file.is_file():
        try:
            table = classifier_results_table(json.loads(eval_file.read_text()))
        except (json.JSONDecodeError, AttributeError, TypeError) as err:
            raise ValueError(f"Evaluation results {eval_file} are not a metrics JSON object: {err}") from err
        # the card says where its figures came from: they were not measured by this training run
        modified = datetime.fromtimestamp(eval_file.stat().st_mtime, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        given = f"`{eval_file}` (given with `--eval_results`)"
        source = given if eval_results else "`eval_results.json` found in the output folder"
        note = f"Read from {source}, last modified {modified}: these figures were not measured by this training run."
    base, data = run["base_model"], run["dataset"]
    repo_id = run.get("hub_model_id") or str(run.get("output_dir") or final_path(output_dir))
    card_data = hub_card_data(
        model_name=Path(repo_id).name,
        library_name="peft" if run["use_peft"] else "transformers",
        pipeline_tag="image-text-to-text",
        tags=["synartifact", "trl", "sft", "artifact-detection"] + (["lora"] if run["use_peft"] else []),
        base_model=base,
        datasets=[data],
        license="apache-2.0",
    )
    base_on_hub, data_on_hub = "base_model" in card_data, "datasets" in card_data
    mode = run["answer_mode"]
    config_rows = sorted((k, v) for k, v in run["config"].items())
    return save_model_card(
        output_dir,
        CARD_TEMPLATE,
        card_data,
        model_name=card_data["model_name"],
        repo_id=repo_id,
        base_model=base,
        base_model_link=f"[{base}](https://huggingface.co/{base})" if base_on_hub else f"`{base}` (a local folder)",
        dataset=data,
        dataset_link=f"[{data}](https://huggingface.co/datasets/{data})"
        if data_on_hub
        else f"`{data}` (a local folder)",
        train_split=run["train_split"],
        num_train_samples=run["num_train_samples"],
        method=(
            f"LoRA (r={run['config'].get('lora_r')}, alpha={run['config'].get('lora_alpha')})"
            if run["use_peft"]
            else "full fine-tuning"
        ),
        answer_mode=mode,
        answer_mode_description="the kinds present" if mode == "labels" else "each artifact's kind, box and caption",
        world_size=run["world_size"],
        global_step=run["global_step"],
        train_loss=f"{run['train_loss']:.4f}" if isinstance(run.get("train_loss"), (int, float)) else "n/a",
        example_answer=render_answer(
            [
                {"label": 1, "bbox": [0.42, 0.10, 0.61, 0.33], "caption": "The face is asymmetric."},
                {"label": 7, "bbox": [0.00, 0.55, 0.40, 1.00], "caption": "The lower left corner is blurred."},
            ],
            mode,
        ),
        evaluation_table=table,
        evaluation_note=note,
        config_rows=config_rows,
        versions=[
            ("synartifact", _version("synartifact")),
            ("transformers", transformers.__version__),
            ("trl", trl.__version__),
            ("peft", peft.__version__),
            ("accelerate", accelerate.__version__),
            ("datasets", datasets.__version__),
            ("torch", torch.__version__),
        ],
    )


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


# ------------------------------------------------------------------------------------------------------------
# The script
# ------------------------------------------------------------------------------------------------------------


def main(
    script_args: SFTScriptArguments, training_args: SFTTrainingArguments, model_args: SFTModelArguments
) -> SFTTrainer:
    """Run SFT: seed, logging, resume, data, model, trainer, train, save, card, push. Returns the trainer."""
    if script_args.answer_mode not in ANSWER_MODES:
        raise ValueError(f"answer_mode must be one of {ANSWER_MODES}, not {script_args.answer_mode!r}.")

    # --- seed
    set_seed(training_args.seed)

    # --- logging
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    logger.info("Model %s", model_args)
    logger.info("Script %s", script_args)
    logger.info(
        "world size %d, process rank %d, device %s",
        training_args.world_size,
        training_args.process_index,
        training_args.device,
    )

    # --- resume (the last complete checkpoint; a finished output_dir is never replaced unasked)
    output_dir = Path(training_args.output_dir)
    checkpoint = resolve_checkpoint(training_args)

    # --- data
    with training_args.main_process_first(desc="dataset conversion"):
        train_dataset, eval_dataset = load_sft_datasets(script_args, training_args)
    logger.info(
        "%d training examples, %s evaluation examples",
        len(train_dataset),
        len(eval_dataset) if eval_dataset is not None else "no",
    )

    # --- model
    model_path = ensure_model(script_args, model_args, training_args)
    model, processor = load_model(model_path, model_args)
    peft_config = make_peft_config(model_args)

    # --- trainer
    trainer = SFTTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        peft_config=peft_config,
    )

    # --- train
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    metrics = dict(train_result.metrics)
    metrics["train_samples"] = len(train_dataset)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()

    # --- save
    base_reference = str(Path(model_path).resolve()) if Path(model_path).exists() else model_path
    if peft_config is not None:
        # the adapter must name a base that ArtifactClassifier can load from anywhere, not a relative folder
        for config in trainer.model.peft_config.values():
            config.base_model_name_or_path = base_reference
    trainer.model.config.use_cache = True
    trainer.save_model(str(output_dir))
    if trainer.accelerator.is_main_process:
        processor.save_pretrained(str(output_dir))
        write_portable_processor_files(output_dir)

    # --- evaluate
    if training_args.do_eval and eval_dataset is not None:
        eval_metrics = trainer.evaluate()
        eval_metrics["eval_samples"] = len(eval_dataset)
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)

    # --- card and push (main process only)
    if trainer.accelerator.is_main_process:
        run = {
            "base_model": model_args.model_name_or_path,
            "base_model_path": base_reference,
            "dataset": script_args.dataset_name,
            "train_split": script_args.dataset_train_split,
            "answer_mode": script_args.answer_mode,
            "image_size": script_args.image_size,
            "use_peft": peft_config is not None,
            "world_size": training_args.world_size,
            "global_step": trainer.state.global_step,
            "num_train_samples": len(train_dataset),
            "trained_kinds": trained_kinds(train_dataset, script_args.answer_mode),
            "train_loss": metrics.get("train_loss"),
            "train_runtime": metrics.get("train_runtime"),
            "hub_model_id": training_args.hub_model_id,
            # the folder users will load: output_dir may be a temporary folder renamed when the run is complete
            "output_dir": str(final_path(output_dir)),
            "config": {
                "learning_rate": training_args.learning_rate,
                "num_train_epochs": training_args.num_train_epochs,
                "max_steps": training_args.max_steps,
                "per_device_train_batch_size": training_args.per_device_train_batch_size,
                "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
                "seed": training_args.seed,
                "answer_mode": script_args.answer_mode,
                "image_size": script_args.image_size,
                "use_peft": model_args.use_peft,
                "lora_r": model_args.lora_r if model_args.use_peft else None,
                "lora_alpha": model_args.lora_alpha if model_args.use_peft else None,
                "freeze_vision_tower": model_args.freeze_vision_tower,
                "dtype": model_args.dtype,
            },
        }
        (output_dir / RUN_FILE).write_text(json.dumps(run, indent=2, default=str), encoding="utf-8")
        write_model_card(output_dir, run, script_args.eval_results)
        logger.info("Saved the classifier to %s (world size %d)", output_dir, training_args.world_size)
        if training_args.push_to_hub:
            trainer.create_model_card = lambda *args, **kwargs: None  # keep our card, not TRL's generic one
            trainer.push_to_hub(commit_message="synartifact sft")
    trainer.accelerator.wait_for_everyone()
    return trainer


def make_parser() -> TrlParser:
    """The parser of ``synartifact sft``: script arguments, TRL's ``SFTConfig`` (``SFTTrainingArguments``), model arguments."""
    return TrlParser((SFTScriptArguments, SFTTrainingArguments, SFTModelArguments))


def cli_main(argv: list[str] | None = None) -> int:
    """Parse ``--config YAML`` and flags (flags override the YAML; unknown keys are an error) and run :func:`main`."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    script_args, training_args, model_args = make_parser().parse_args_and_config(args=argv)
    main(script_args, training_args, model_args)
    return 0


if __name__ == "__main__":
    sys.exit(cli_main())
