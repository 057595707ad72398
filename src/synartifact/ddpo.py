"""DDPO of a Stable Diffusion generator on the artifact classifier's reward (the paper's RLAIF step), with TRL.

TRL 0.23.1 ``DDPOTrainer`` + ``DefaultDDPOStableDiffusionPipeline`` (LoRA on the UNet attention by default), the
reward :class:`synartifact.reward.ArtifactReward` (``1 - weighted share of artifact kinds found``), per-prompt
advantage normalization, a sample grid per epoch, checkpoints and resume, the LoRA weights with a model card.

Usage::

    # offline, tiny models built from configs when missing (CPU, seconds per epoch)
    python -m synartifact.ddpo --config recipes/tiny/ddpo/config_cpu.yaml
    synartifact ddpo --config recipes/tiny/ddpo/config_cpu.yaml --num_epochs 4 --output_dir outputs/ddpo-tiny

    # Stable Diffusion 1.5 with the LLaVA classifier, one GPU
    accelerate launch --config_file recipes/accelerate_configs/single_gpu.yaml -m synartifact.ddpo \\
        --config recipes/sd-1.5/ddpo/config_lora.yaml --classifier outputs/llava-1.5-7b-synartifact-lora

    # a rerun into the same (unfinished) output_dir resumes from its last complete checkpoint; or name one
    synartifact ddpo --config recipes/tiny/ddpo/config_cpu.yaml --resume_from outputs/ddpo-tiny/checkpoints

Outputs in ``output_dir``: ``pytorch_lora_weights.safetensors`` (load with
``StableDiffusionPipeline.from_pretrained(base).load_lora_weights(output_dir)``; with ``use_lora=False`` the whole
pipeline instead), ``README.md`` (model card), ``reward_log.jsonl`` (one line per epoch), ``reward_curve.png``,
``samples/epoch_XXXX.png`` and ``checkpoints/checkpoint_N`` (accelerate state; TRL writes one when
``epoch != 0 and epoch % save_freq == 0``; resuming goes on at the epoch after the one it ended),
``ddpo_summary.json`` (reward before/after on held-out prompts with fixed seeds, the epoch time split, the
settings, the training and evaluation prompts) and ``train_log.jsonl`` (TRL's loss, approx_kl, clipfrac per
optimizer step); with ``build_tiny_models_if_missing`` and no classifier, the untrained one in ``tiny-classifier/``.

Guards (:mod:`synartifact.generator.guards`): ``reward_funcs`` / ``reward_funcs_weights`` mix reward terms
(``artifact``, and ``drift``, a penalty entering as minus the pixel MSE to the base model's image of the same prompt;
each term's epoch mean goes to ``terms`` in ``reward_log.jsonl``); ``judge`` (with ``judge_every``,
``judge_num_prompts``, ``judge_images_per_prompt``) scores samples of prompts of its own (the evaluation split's
prompts after the evaluation ones, removed from training: the epoch is chosen on prompts that neither training nor
the before/after comparison uses) with an independent classifier (``judge_reward`` in the log, next to the training
reward in ``reward_curve.png``) and keeps the best-judged epoch's weights in ``best/``
(``best_epoch``, ``best_judge_reward`` in ``ddpo_summary.json``); the weights in ``output_dir`` stay the last
epoch's. Content guard: each judged epoch's samples are compared with the base model's samples of the same prompts
and noise (``content_fidelity``, ``content_kept`` in the log); an epoch whose content is lost is never the best
(``content_guard`` in the summary; ``best_epoch`` null when no judged epoch kept its content). The before/after rewards are always the artifact reward's.

Prompts: the evaluation prompts (the first ``num_eval_images`` of the dataset's test split, of the prompt file or of
the built-in list: the ones ``synartifact evaluate-generator`` scores by default) are kept out of training.

Choices made here, against TRL 0.23.1's own behaviour:

- the output holds only the LoRA weights (not a copy of the base pipeline, which for SD-1.5 would be GBs and which
  does not reload anyway); ``DDPOTrainer.save_pretrained`` is not used (it crashes in 0.23.1);
- resuming writes the checkpoint's LoRA weights into the trained adapter (TRL adds a second, untrained one);
- resuming restores what TRL's own resume forgets, so that training goes on as if never stopped: the epoch the
  checkpoint ended (TRL re-runs it), the global step, the prompt cycle's position and the per-prompt reward
  statistics (a progress record saved with each checkpoint); checkpoints a kill left incomplete are skipped, with a
  warning, and a rerun into an unfinished ``output_dir`` resumes from its last complete checkpoint;
- a JSONL tracker is always attached, because TRL hands ``accelerator.trackers[0]`` to the image hook;
- TRL's ``train()`` loop is run here epoch by epoch (same calls) to time sampling, reward and training.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from synartifact.checkpoints import file_problem, newest_complete, numbered_folders
from synartifact.configs import DDPO_CONFIG_DEFAULTS, DDPOScriptArguments, ddpo_config_defaults
from synartifact.generator.ddpo_tracking import (
    LORA_WEIGHTS,
    BestByJudge,
    EpochRecorder,
    PromptCycle,
    TrainingProgress,
    _eval_reward,
    _jsonl_tracker,
    _save_weights,
    plot_reward_curve,
)
from synartifact.utils import is_local_path

__all__ = ["main", "cli_main", "BestByJudge", "EpochRecorder", "PromptCycle", "plot_reward_curve"]

logger = logging.getLogger("synartifact.ddpo")

CHECKPOINT_PATTERN = r"checkpoint_(\d+)"
# accelerate writes the registered progress record after every other part of a checkpoint
PROGRESS_FILE = "custom_checkpoint_0.pkl"
# where an untrained tiny classifier goes when the classifier folder is missing (build_tiny_models_if_missing)
TINY_CLASSIFIER = "tiny-classifier"


def _pipeline_class():
    """TRL's ``DefaultDDPOStableDiffusionPipeline`` with a resume that restores the trained LoRA adapter.

    TRL 0.23.1 loads a checkpoint's LoRA weights with ``load_lora_into_unet``, which adds a *second* adapter
    (``default_0``) next to the one the optimizer trains; training then goes on from the fresh adapter. Here the
    checkpoint's weights are written into the existing ``default`` adapter instead.
    """
    from trl import DefaultDDPOStableDiffusionPipeline

    class ResumableDDPOStableDiffusionPipeline(DefaultDDPOStableDiffusionPipeline):
        def load_checkpoint(self, models, input_dir):
            if not self.use_lora:
                return super().load_checkpoint(models, input_dir)
            from diffusers.utils import convert_unet_state_dict_to_peft
            from peft import set_peft_model_state_dict

            state_dict, _ = self.sd_pipeline.lora_state_dict(input_dir, weight_name=LORA_WEIGHTS)
            unet_state = {k[len("unet.") :]: v for k, v in state_dict.items() if k.startswith("unet.")}
            result = set_peft_model_state_dict(
                models[0], convert_unet_state_dict_to_peft(unet_state), adapter_name="default"
            )
            unexpected = getattr(result, "unexpected_keys", None)
            if unexpected:
                raise ValueError(
                    f"Checkpoint {input_dir} does not match the UNet's LoRA layers: "
                    f"unexpected keys {unexpected[:3]}..."
                )

    return ResumableDDPOStableDiffusionPipeline


def _check_settings(args: DDPOScriptArguments, config: Any) -> None:
    """Refuse, before anything is built, settings that would fail later."""
    if config.sample_guidance_scale <= 1.0:
        # TRL passes negative prompt embeddings, which diffusers' _encode_prompt concatenates even without CFG
        raise ValueError(
            f"sample_guidance_scale={config.sample_guidance_scale}: TRL 0.23.1's DDPO sampler needs "
            "classifier-free guidance (a value > 1, e.g. 5.0) with train_cfg true."
        )
    if config.push_to_hub and not args.hub_model_id:
        raise ValueError("push_to_hub needs --hub_model_id ORG/NAME.")
    from synartifact.generator.guards import check_reward_funcs

    check_reward_funcs(args.reward_funcs, args.reward_funcs_weights)
    if args.judge and min(args.judge_every, args.judge_num_prompts, args.judge_images_per_prompt) < 1:
        raise ValueError(
            f"judge_every={args.judge_every}, judge_num_prompts={args.judge_num_prompts}, judge_images_per_prompt="
            f"{args.judge_images_per_prompt}: with --judge all must be >= 1 (e.g. --judge_every 10 "
            "--judge_num_prompts 4 --judge_images_per_prompt 4)."
        )


def _checkpoint_problem(folder: Path, use_lora: bool) -> str | None:
    """Why a DDPO ``checkpoint_N`` folder cannot be resumed from, or ``None`` when it is complete: the (LoRA or UNet)
    weights, the optimizer, the random states and the progress record (written last) all there and whole."""
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if use_lora:
        files = [folder / LORA_WEIGHTS]
    else:
        unet = folder / "unet"
        index = unet / "diffusion_pytorch_model.safetensors.index.json"
        files = [unet / "config.json"]
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, AttributeError):
                return f"{index.name} is not a valid shard index"
            files += [unet / shard for shard in shards]
        else:
            files.append(unet / "diffusion_pytorch_model.safetensors")
    for path in files + [folder / "optimizer.bin", folder / "random_states_0.pkl", folder / PROGRESS_FILE]:
        problem = file_problem(path)
        if problem:
            return problem
    return None


def _last_complete_checkpoint(folder: Path, use_lora: bool) -> Path | None:
    """The newest complete ``checkpoint_N`` of a checkpoints folder; newer incomplete ones are skipped, with a warning."""
    found, _ = newest_complete(
        numbered_folders(folder, CHECKPOINT_PATTERN), lambda f: _checkpoint_problem(f, use_lora)
    )
    return found


def _resolve_resume(resume_from: str, use_lora: bool) -> str:
    """The complete checkpoint that ``resume_from`` names: a ``checkpoint_N`` folder itself, else the newest complete
    one of a checkpoints folder or of a run's output folder."""
    path = Path(resume_from).expanduser()
    if (path / "checkpoints").is_dir():
        path = path / "checkpoints"
    if not path.exists():
        raise FileNotFoundError(
            f"resume_from {path} does not exist: give a checkpoints folder or "
            "a checkpoints/checkpoint_N folder of an earlier run."
        )
    if re.fullmatch(CHECKPOINT_PATTERN, path.name):
        problem = _checkpoint_problem(path, use_lora)
        if problem:
            raise ValueError(
                f"Cannot resume from {path}: {problem}. Give a complete checkpoint_N folder, or the checkpoints "
                "folder to take its last complete one."
            )
        return str(path)
    found = _last_complete_checkpoint(path, use_lora)
    if found is None:
        raise ValueError(
            f"resume_from {path} holds no complete checkpoint_N folder (TRL writes one every save_freq epochs, "
            "from epoch save_freq on): start a new run instead."
        )
    return str(found)


def _prepare_output_dir(args: DDPOScriptArguments, config: Any, remove: bool = True) -> Path:
    """The output folder, checked; TRL's checkpoint settings point into it and ``resume_from`` becomes a complete
    checkpoint. A rerun into an unfinished folder resumes from its last complete checkpoint; a finished run is
    continued only with ``resume_from`` and replaced only with ``overwrite_output_dir`` (which starts over without
    the old checkpoints; the removal only where ``remove``: the main process)."""
    out = Path(args.output_dir)
    finished = (out / LORA_WEIGHTS).exists() or (out / "model_index.json").exists()
    if finished and not config.resume_from and not args.overwrite_output_dir:
        raise FileExistsError(
            f"{out} already holds a finished run: pass --overwrite_output_dir true, another "
            "--output_dir, or --resume_from to continue it."
        )
    if args.overwrite_output_dir and not config.resume_from and remove:
        if finished:
            shutil.rmtree(out)
        elif (out / "checkpoints").is_dir():
            logger.warning("overwrite_output_dir: removing the old checkpoints in %s.", out / "checkpoints")
            shutil.rmtree(out / "checkpoints")
    out.mkdir(parents=True, exist_ok=True)

    project = dict(config.project_kwargs or {})
    project.setdefault("project_dir", str(out))
    project.setdefault("automatic_checkpoint_naming", True)
    project.setdefault("total_limit", config.num_checkpoint_limit)
    config.project_kwargs = project
    if config.resume_from:
        config.resume_from = _resolve_resume(config.resume_from, args.use_lora)
    elif not args.overwrite_output_dir:
        found = _last_complete_checkpoint(out / "checkpoints", args.use_lora)
        if found is not None:
            logger.info("Resuming the unfinished run in %s from %s.", out, found)
            config.resume_from = str(found)
    return out


def _ensure_models(args: DDPOScriptArguments, build: bool = True) -> None:
    """Build the tiny SD pipeline / tiny (untrained) classifier when their local folders are missing and allowed.

    The tiny SD goes to ``pretrained_model``; the untrained classifier to ``<output_dir>/tiny-classifier``, which
    then becomes ``classifier``. Every process calls it (the arguments change alike); only the one with ``build``
    writes folders.
    """
    missing_sd = is_local_path(args.pretrained_model) and not Path(args.pretrained_model).exists()
    missing_clf = is_local_path(args.classifier) and not Path(args.classifier).exists()
    if (missing_sd or missing_clf) and not args.build_tiny_models_if_missing:
        which = args.pretrained_model if missing_sd else args.classifier
        raise FileNotFoundError(
            f"{which} does not exist: build it first (`synartifact tiny sd --out ...`, "
            "`synartifact sft ...`) or pass --build_tiny_models_if_missing true."
        )
    if missing_sd and build:
        from synartifact.tiny import build_tiny_sd

        logger.warning(
            "Building the tiny Stable Diffusion pipeline at %s with RANDOM weights: its samples are noise that "
            "the classifier reads alike (a flat reward). Pre-train it first for a meaningful run: `synartifact "
            "tiny sd --out %s --pretrain-dataset DATASET_DIR --overwrite`.",
            args.pretrained_model,
            args.pretrained_model,
        )
        build_tiny_sd(args.pretrained_model)
    if missing_clf:
        from synartifact.tiny import build_tiny_vlm

        fallback = Path(args.output_dir) / TINY_CLASSIFIER
        logger.warning(
            "No classifier at %s: using the UNTRAINED tiny VLM at %s (built when missing), with constrained "
            "scoring so that its answers are read at all. Its reward is close to noise; train a classifier with "
            "`synartifact sft --config recipes/tiny/sft/config_cpu.yaml` for a meaningful run.",
            args.classifier,
            fallback,
        )
        if build and not fallback.exists():
            build_tiny_vlm(fallback, arch="llava")
        args.classifier = str(fallback)
        args.reward_constrained = True


def _write_card(
    out: Path,
    args: DDPOScriptArguments,
    config: Any,
    reward: Any,
    before: dict,
    after: dict,
    epochs_log: list[dict],
    timing: dict,
    judge_summary: dict | None = None,
) -> None:
    """The model card: the reward and its terms, the judge (when one was used), the training reward per epoch and
    the installed TRL / diffusers / torch versions. ``judge_summary`` is ``BestByJudge.summary()``."""
    from synartifact.cards import hub_card_data, installed_version, save_model_card
    from synartifact.generator.guards import check_reward_funcs
    from synartifact.utils import final_path

    # the card names the folder users load (not a temporary one being written) or the Hub repo
    repo_id = args.hub_model_id or str(final_path(out))
    card_data = hub_card_data(
        model_name=Path(repo_id).name,
        library_name="diffusers",
        pipeline_tag="text-to-image",
        tags=["synartifact", "trl", "ddpo", "rlaif", "text-to-image", "stable-diffusion"]
        + (["lora"] if args.use_lora else []),
        base_model=args.pretrained_model,
        datasets=[args.prompts],
        license="creativeml-openrail-m" if "stable-diffusion" in args.pretrained_model else "apache-2.0",
    )
    keys = (
        "num_epochs",
        "sample_num_steps",
        "sample_batch_size",
        "sample_num_batches_per_epoch",
        "train_batch_size",
        "train_learning_rate",
        "train_gradient_accumulation_steps",
        "train_num_inner_epochs",
        "train_clip_range",
        "sample_guidance_scale",
        "sample_eta",
        "per_prompt_stat_tracking",
        "mixed_precision",
        "seed",
    )
    names, weights = check_reward_funcs(
        getattr(args, "reward_funcs", None) or ["artifact"], getattr(args, "reward_funcs_weights", None)
    )
    judge = None
    if judge_summary and judge_summary.get("judge"):
        judge = {
            "classifier": str(judge_summary["judge"]),
            "every": getattr(args, "judge_every", None),
            "num_prompts": len(judge_summary.get("judge_prompts") or []),
            "images_per_prompt": getattr(args, "judge_images_per_prompt", None),
            "best_epoch": judge_summary.get("best_epoch"),
            "best_judge_reward": judge_summary.get("best_judge_reward"),
            "lost_epochs": (judge_summary.get("content_guard") or {}).get("lost_epochs", []),
        }
    save_model_card(
        out,
        "generator_card.md",
        card_data,
        model_name=card_data["model_name"],
        reward_terms=[[name, weight] for name, weight in zip(names, weights)],
        judge=judge,
        versions={name: installed_version(name) for name in ("trl", "diffusers", "torch", "synartifact")},
        repo_id=repo_id,
        base_model=args.pretrained_model,
        base_model_local="base_model" not in card_data,
        classifier=args.classifier,
        reward_mode=reward.mode,
        reward_soft=reward.soft,
        weights={k: v for k, v in reward.weights.items() if v != 1.0},
        unparsable_reward=reward.unparsable_reward,
        use_lora=args.use_lora,
        config={k: getattr(config, k) for k in keys},
        before=before,
        after=after,
        epochs=epochs_log,
        timing=timing,
        output_dir=repo_id,
        prompts=args.prompts or "the built-in prompts",
    )


def _resume(trainer: Any, progress: TrainingProgress, checkpoint: str) -> tuple[int, int]:
    """Load a complete checkpoint (weights, optimizer, random states, progress); the first epoch and global step
    to go on from."""
    trainer.accelerator.load_state(checkpoint)
    first_epoch = progress.epoch + 1
    logger.info("Resumed from %s: epoch %d, global step %d.", checkpoint, first_epoch, progress.global_step)
    return first_epoch, progress.global_step


def _get_reward(args: DDPOScriptArguments, device: str) -> Any:
    """The classifier as an :class:`~synartifact.reward.ArtifactReward`, set as ``args`` say."""
    from synartifact.reward import ArtifactReward, reward_settings

    return ArtifactReward(args.classifier, device=device, **reward_settings(vars(args)))


def _judge_prompts(args: DDPOScriptArguments, eval_prompts: list[str], train_prompts: list[str]) -> list[str]:
    """The prompts the judge scores during training: the ``judge_num_prompts`` held-out prompts that follow the
    evaluation prompts (the test split's next ones), so that the epoch the judge picks is chosen on prompts that
    neither training nor the final before/after comparison uses. The caller removes them from training."""
    from synartifact.generator.sampling import held_out_prompts

    wanted = len(eval_prompts) + args.judge_num_prompts
    candidates = held_out_prompts(args.prompts, wanted, "test")
    evaluation = set(eval_prompts)
    prompts = [p for p in candidates if p not in evaluation][: args.judge_num_prompts]
    if not prompts or set(train_prompts) <= set(prompts):
        raise ValueError(
            f"--judge needs {args.judge_num_prompts} held-out prompts besides the {len(eval_prompts)} evaluation "
            f"prompts and at least one prompt left to train on; {args.prompts or 'the built-in prompt list'} has "
            f"{len(candidates)} evaluation-split prompts: lower judge_num_prompts or num_eval_images."
        )
    if len(prompts) < args.judge_num_prompts:
        logger.warning(
            "judge_num_prompts=%d: only %d held-out prompts to judge.", args.judge_num_prompts, len(prompts)
        )
    return prompts


def _get_pipeline(args: DDPOScriptArguments) -> Any:
    """TRL's DDPO pipeline (LoRA on the UNet attention unless ``use_lora`` is off) around ``pretrained_model``."""
    from synartifact.hub_access import require_hub

    require_hub(args.pretrained_model, "generator")
    return _pipeline_class()(
        args.pretrained_model, pretrained_model_revision=args.pretrained_revision, use_lora=args.use_lora
    )


def _get_trainer(config: Any, recorder: EpochRecorder, prompts: list[str], pipeline: Any, out: Path, is_main: bool):
    """TRL's ``DDPOTrainer``, with a JSONL tracker after the user's trackers and the recorder's reward and hook.

    It keeps its global step (for the checkpoints' progress record) and leaves ``config.resume_from`` to
    :func:`_resume`; checkpoints are numbered after every one already in ``checkpoints/``.
    """
    from trl import DDPOTrainer

    class StepKeepingDDPOTrainer(DDPOTrainer):
        global_step = 0

        def _train_batched_samples(self, *args: Any, **kwargs: Any) -> int:
            self.global_step = super()._train_batched_samples(*args, **kwargs)
            return self.global_step

    log_with = config.log_with if isinstance(config.log_with, list) else [config.log_with] if config.log_with else []
    config.log_with = log_with + [_jsonl_tracker(out / "train_log.jsonl")]
    resume_from, config.resume_from = config.resume_from, ""
    try:
        trainer = StepKeepingDDPOTrainer(
            config,
            recorder.reward_fn,
            PromptCycle(prompts),
            pipeline,
            # TRL hands the hook accelerator.trackers[0], which only the main process has
            image_samples_hook=recorder.image_samples_hook if is_main else None,
        )
    finally:
        config.resume_from = resume_from
    # accelerate refuses to save into an existing checkpoint_N (one a kill left incomplete, say)
    numbers = [n for n, _ in numbered_folders(out / "checkpoints", CHECKPOINT_PATTERN)]
    trainer.accelerator.project_configuration.iteration = max(numbers, default=-1) + 1
    return trainer


def _write_summary(out: Path, args: DDPOScriptArguments, config: Any, summary: dict) -> None:
    """``ddpo_summary.json``: ``summary`` (rewards, timing, prompts) with the script's and TRL's settings."""
    from synartifact.utils import final_path

    summary = dict(
        summary,
        # the folder users load, not the temporary one a caller (the demo) may run the script into
        script_args={**vars(args), "output_dir": str(final_path(args.output_dir))},
        ddpo_config={k: v for k, v in vars(config).items() if isinstance(v, (int, float, str, bool, type(None)))},
    )
    (out / "ddpo_summary.json").write_text(json.dumps(summary, indent=2, default=str))


def _push_to_hub(out: Path, repo_id: str) -> None:
    """Upload the output folder (without checkpoints, temporary files or a fallback classifier) to ``repo_id``."""
    from huggingface_hub import create_repo, upload_folder

    from synartifact.utils import TMP_MARK

    create_repo(repo_id, exist_ok=True)
    upload_folder(
        repo_id=repo_id,
        folder_path=str(out),
        ignore_patterns=["checkpoints/*", ".*", f"*{TMP_MARK}*", f"{TINY_CLASSIFIER}/*"],
    )
    logger.info("Pushed to https://huggingface.co/%s", repo_id)


def main(script_args: DDPOScriptArguments, ddpo_config: Any) -> Path:
    """Run DDPO with ``script_args`` (ours) and ``ddpo_config`` (TRL's ``DDPOConfig``); return the output folder."""
    import accelerate
    import torch

    from synartifact.generator.sampling import split_prompts

    # --- seed, logging ----------------------------------------------------------------------------------------
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    ddpo_config_defaults(ddpo_config)
    _check_settings(script_args, ddpo_config)
    torch.manual_seed(ddpo_config.seed)
    # TRL's pipeline logs through accelerate before any Accelerator exists, so the state comes first. Without a GPU,
    # cpu=True lets accelerate see a torchrun / mpirun launch as MULTI_CPU (gloo) instead of one process per rank.
    state = accelerate.PartialState(cpu=not torch.cuda.is_available())

    # --- output folder, resume --------------------------------------------------------------------------------
    out = _prepare_output_dir(script_args, ddpo_config, remove=state.is_main_process)
    state.wait_for_everyone()
    _ensure_models(script_args, build=state.is_main_process)
    state.wait_for_everyone()

    # --- data: prompts (the held-out evaluation prompts kept out of training) ----------------------------------
    prompts, eval_prompts = split_prompts(
        script_args.prompts,
        script_args.num_eval_images,
        train_split=script_args.prompt_split,
        max_prompts=script_args.max_prompts,
        holdout=script_args.holdout_eval_prompts,
    )
    # the judge's own held-out prompts (when given) leave training too
    judge_prompts = _judge_prompts(script_args, eval_prompts, prompts) if script_args.judge else []
    judged = set(judge_prompts)
    prompts = [p for p in prompts if p not in judged]
    held_out = len(set(eval_prompts) - set(prompts))
    logger.info(
        "%d training prompts, %d evaluation prompts (%d held out), %d judge prompts",
        len(prompts),
        len(eval_prompts),
        held_out,
        len(judge_prompts),
    )

    # --- reward -----------------------------------------------------------------------------------------------
    reward = _get_reward(script_args, device=str(state.device))
    logger.info("Reward: %r", reward)

    # --- pipeline ---------------------------------------------------------------------------------------------
    pipeline = _get_pipeline(script_args)

    # --- trainer ----------------------------------------------------------------------------------------------
    recorder = EpochRecorder(reward, out, write=state.is_main_process)
    trainer = _get_trainer(ddpo_config, recorder, prompts, pipeline, out, is_main=state.is_main_process)
    progress = TrainingProgress(trainer, recorder)
    trainer.accelerator.register_for_checkpointing(progress)

    # --- guards: the reward terms (drift references from the base model, on the trainer's device) and the judge ---
    from synartifact.generator.guards import get_reward_funcs

    recorder.reward = get_reward_funcs(
        script_args.reward_funcs,
        script_args.reward_funcs_weights,
        artifact=reward,
        sd_pipeline=pipeline.sd_pipeline,
        prompts=prompts,
        config=ddpo_config,
    )
    logger.info("Training reward: %r", recorder.reward)
    best = None
    if script_args.judge and state.is_main_process:
        from synartifact.reward import ArtifactReward

        judge = ArtifactReward(script_args.judge, mode="generate", soft=False, device=str(state.device))
        best = BestByJudge(judge, judge_prompts, trainer, pipeline, out, script_args, ddpo_config)
        # the content guard's references: the base model's samples of the judge's prompts, once per run, before
        # training and before a checkpoint is loaded (an epoch whose samples lost their content is never the best)
        best.sample_references()
        recorder.after_epoch = best

    # --- train (TRL's loop, timed per epoch), with the reward of held-out prompts before and after ------------
    # "before" is measured on the base model, so a resumed run loads its checkpoint only afterwards
    before = _eval_reward(pipeline.sd_pipeline, reward, eval_prompts, ddpo_config) if state.is_main_process else {}
    logger.info("Reward before training: %s", before)
    first_epoch, global_step = (
        _resume(trainer, progress, ddpo_config.resume_from) if ddpo_config.resume_from else (0, 0)
    )
    recorder.resume(first_epoch, global_step, progress.row)
    if best is not None:
        best.resume(recorder.rows)
    for epoch in range(first_epoch, ddpo_config.num_epochs):
        global_step = recorder.run_epoch(trainer, epoch, global_step)
    state.wait_for_everyone()
    if not state.is_main_process:
        return out
    after = _eval_reward(pipeline.sd_pipeline, reward, eval_prompts, ddpo_config)
    logger.info("Reward after training: %s", after)

    # --- save (main process) ----------------------------------------------------------------------------------
    _save_weights(trainer, pipeline, out, script_args.use_lora)
    if recorder.log_file.exists():
        plot_reward_curve(recorder.log_file, out / "reward_curve.png")
    timing = recorder.timing()
    summary = {
        "before": before,
        "after": after,
        "epochs": len(recorder.rows),
        "world_size": trainer.accelerator.num_processes,
        "timing": timing,
        "train_prompts": prompts,
        "eval_prompts": eval_prompts,
    }
    if best is not None:
        summary.update(best.summary())
    _write_summary(out, script_args, ddpo_config, summary)

    # --- card, push (main process) ----------------------------------------------------------------------------
    _write_card(
        out,
        script_args,
        ddpo_config,
        reward,
        before,
        after,
        recorder.rows,
        timing,
        judge_summary=best.summary() if best is not None else None,
    )
    if ddpo_config.push_to_hub:
        _push_to_hub(out, script_args.hub_model_id)
    logger.info("LoRA weights and card in %s", out)
    return out


def cli_main(argv: list[str] | None = None) -> int:
    """``synartifact ddpo --config YAML [--any_field VALUE ...]``: parse with TrlParser and run :func:`main`."""
    from trl import DDPOConfig, TrlParser

    parser = TrlParser((DDPOScriptArguments, DDPOConfig), prog="synartifact ddpo")
    parser.set_defaults(**DDPO_CONFIG_DEFAULTS)
    script_args, ddpo_config = parser.parse_args_and_config(args=list(sys.argv[1:] if argv is None else argv))
    main(script_args, ddpo_config)
    return 0


if __name__ == "__main__":
    sys.exit(cli_main())
