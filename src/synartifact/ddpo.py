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
        --config recipes/sd-1.5/ddpo/config_lora.yaml --classifier outputs/llava-1.5-7b-artifacts

    # resume from the last checkpoint in output_dir/checkpoints
    synartifact ddpo --config recipes/tiny/ddpo/config_cpu.yaml --resume_from outputs/ddpo-tiny/checkpoints

Outputs in ``output_dir``: ``pytorch_lora_weights.safetensors`` (load with
``StableDiffusionPipeline.from_pretrained(base).load_lora_weights(output_dir)``; with ``use_lora=False`` the whole
pipeline instead), ``README.md`` (model card), ``reward_log.jsonl`` (one line per epoch), ``reward_curve.png``,
``samples/epoch_XXXX.png`` and ``checkpoints/checkpoint_N`` (accelerate state; TRL writes one when
``epoch != 0 and epoch % save_freq == 0``, numbered from 0, and resuming from ``checkpoint_N`` starts at epoch
``N + 1``), ``ddpo_summary.json`` (reward before/after on held-out prompts with fixed seeds, the epoch time split,
the settings) and ``train_log.jsonl`` (TRL's loss, approx_kl, clipfrac per optimizer step).

Choices made here, against TRL 0.23.1's own behaviour:

- the output holds only the LoRA weights (not a copy of the base pipeline, which for SD-1.5 would be GBs and which
  does not reload anyway); ``DDPOTrainer.save_pretrained`` is not used (it crashes in 0.23.1);
- resuming writes the checkpoint's LoRA weights into the trained adapter (TRL adds a second, untrained one);
- a JSONL tracker is always attached, because TRL hands ``accelerator.trackers[0]`` to the image hook;
- TRL's ``train()`` loop is run here epoch by epoch (same calls) to time sampling, reward and training.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from synartifact.configs import DDPO_CONFIG_DEFAULTS, DDPOScriptArguments, ddpo_config_defaults

__all__ = ["main", "cli_main", "make_prompt_fn", "plot_reward_curve", "split_prompts"]

logger = logging.getLogger("synartifact.ddpo")

LORA_WEIGHTS = "pytorch_lora_weights.safetensors"


def make_prompt_fn(prompts: list[str]):
    """A TRL ``prompt_fn``: cycles through ``prompts``, returning ``(prompt, {"index": i, "prompt": prompt})``."""
    if not prompts:
        raise ValueError("No prompts to train on: give --prompts a text file or a dataset with a 'prompt' column.")
    state = {"i": 0}

    def prompt_fn() -> tuple[str, dict]:
        index = state["i"] % len(prompts)
        state["i"] += 1
        return prompts[index], {"index": index, "prompt": prompts[index]}

    return prompt_fn


def split_prompts(
    train: list[str], evaluation: list[str], num_eval: int, max_prompts: int | None = None, holdout: bool = True
) -> tuple[list[str], list[str]]:
    """Training and evaluation prompts: with ``holdout``, the evaluation prompts are taken out of training (unless
    that would leave none); at most ``max_prompts`` train, ``num_eval`` evaluate (the training ones if none given)."""
    if holdout and evaluation:
        kept = [p for p in train if p not in set(evaluation)]
        if kept:
            train = kept
        else:
            logger.warning("Every training prompt is an evaluation prompt: training on them anyway.")
    train = train[:max_prompts] if max_prompts else list(train)
    return train, list(evaluation or train)[:num_eval]


def plot_reward_curve(log_file: Path | str, out: Path | str) -> Path:
    """Plot mean reward (with min/max band) per epoch from ``reward_log.jsonl`` to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(log_file).read_text().splitlines() if line.strip()]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    if rows:
        epochs = [r["epoch"] for r in rows]
        ax.plot(epochs, [r["reward_mean"] for r in rows], marker="o", label="mean reward")
        ax.fill_between(
            epochs, [r["reward_min"] for r in rows], [r["reward_max"] for r in rows], alpha=0.2, label="min-max"
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("reward (1 = no artifact found)")
    ax.set_title("DDPO on the artifact classifier's reward")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


def _jsonl_tracker(path: Path):
    """An accelerate tracker writing every logged value (loss, approx_kl, clipfrac, reward) to a JSONL file.

    TRL's DDPOTrainer hands ``accelerator.trackers[0]`` to the image hook, so one tracker must always exist.
    """
    from accelerate.tracking import GeneralTracker

    class JsonlTracker(GeneralTracker):
        name = "synartifact_jsonl"
        requires_logging_directory = False

        def __init__(self) -> None:
            super().__init__()
            self.path = Path(path)

        @property
        def tracker(self):
            return self

        def store_init_configuration(self, values: dict) -> None:
            pass

        def log(self, values: dict, step: int | None = None, **kwargs: Any) -> None:
            row = {"step": step}
            for key, value in values.items():
                try:
                    row[key] = float(value.detach()) if hasattr(value, "detach") else float(value)
                except (TypeError, ValueError):
                    continue
            with open(self.path, "a") as fh:
                fh.write(json.dumps(row) + "\n")

    return JsonlTracker()


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


def _is_local(path: str) -> bool:
    """Whether ``path`` names a local folder rather than a Hub id ``org/name``."""
    first = Path(path).parts[0] if Path(path).parts else ""
    return (
        Path(path).exists()
        or path.startswith((".", "/", "~"))
        or path.count("/") != 1
        or first in ("outputs", "data")  # the project's git-ignored output roots
        or Path(first).is_dir()
    )


def _ensure_models(args: DDPOScriptArguments, build: bool = True) -> None:
    """Build the tiny SD pipeline / tiny (untrained) classifier when their folders are missing and allowed.

    Every process calls it (the arguments change alike); only the one with ``build`` writes folders.
    """
    missing_sd = _is_local(args.pretrained_model) and not Path(args.pretrained_model).exists()
    missing_clf = _is_local(args.classifier) and not Path(args.classifier).exists()
    if (missing_sd or missing_clf) and not args.build_tiny_models_if_missing:
        which = args.pretrained_model if missing_sd else args.classifier
        raise FileNotFoundError(
            f"{which} does not exist: build it first (`synartifact tiny sd --out ...`, "
            "`synartifact sft ...`) or pass --build_tiny_models_if_missing true."
        )
    if missing_sd:
        from synartifact.tiny import build_tiny_sd

        if build:
            logger.warning(
                "Building the tiny Stable Diffusion pipeline at %s with RANDOM weights: its samples are noise that "
                "the classifier reads alike (a flat reward). Pre-train it first for a meaningful run: `synartifact "
                "tiny sd --out %s --pretrain-dataset outputs/demo/dataset --overwrite`.",
                args.pretrained_model,
                args.pretrained_model,
            )
            build_tiny_sd(args.pretrained_model)
    if missing_clf:
        from synartifact.tiny import build_tiny_vlm

        fallback = Path("outputs/tiny-vlm")
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


def _check_output_dir(args: DDPOScriptArguments, config: Any) -> Path:
    out = Path(args.output_dir)
    finished = (out / LORA_WEIGHTS).exists() or (out / "model_index.json").exists()
    if finished and not config.resume_from and not args.overwrite_output_dir:
        raise FileExistsError(
            f"{out} already holds a finished run: pass --overwrite_output_dir true, another "
            "--output_dir, or --resume_from to continue it."
        )
    if finished and args.overwrite_output_dir and not config.resume_from:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _eval_reward(sd_pipeline: Any, reward: Any, prompts: list[str], config: Any, seed: int = 1234) -> dict:
    """Mean reward of images from held-out prompts with fixed seeds (the card's before/after numbers)."""
    from synartifact.generator.sampling import sample_images

    if not prompts:
        return {}
    was_training = sd_pipeline.unet.training
    sd_pipeline.unet.eval()
    images = sample_images(
        sd_pipeline,
        prompts,
        seed,
        num_inference_steps=config.sample_num_steps,
        guidance_scale=config.sample_guidance_scale,
        eta=config.sample_eta,
    )
    sd_pipeline.unet.train(was_training)
    rows = reward.details(images)
    values = [r["reward"] for r in rows]
    return {
        "mean_reward": float(sum(values) / len(values)),
        "num_images": len(values),
        "seed": seed,
        "unparsable": int(sum(r["unparsable"] for r in rows)),
    }


def _write_card(
    out: Path,
    args: DDPOScriptArguments,
    config: Any,
    reward: Any,
    before: dict,
    after: dict,
    epochs_log: list[dict],
    timing: dict,
) -> None:
    from synartifact.cards import render_model_card

    card_data = {
        "base_model": args.pretrained_model if not Path(args.pretrained_model).exists() else None,
        "library_name": "diffusers",
        "license": "creativeml-openrail-m" if "stable-diffusion" in args.pretrained_model else "apache-2.0",
        "pipeline_tag": "text-to-image",
        "tags": ["synartifact", "ddpo", "trl", "rlaif", "text-to-image", "stable-diffusion"]
        + (["lora"] if args.use_lora else []),
    }
    card_data = {k: v for k, v in card_data.items() if v is not None}
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
    text = render_model_card(
        "generator_card.md",
        card_data,
        model_name=Path(args.hub_model_id or out.name).name,
        base_model=args.pretrained_model,
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
        output_dir=str(out),
        prompts=args.prompts or "SynArtifact dataset prompts",
    )
    (out / "README.md").write_text(text, encoding="utf-8")


def main(script_args: DDPOScriptArguments, ddpo_config: Any) -> Path:
    """Run DDPO with ``script_args`` (ours) and ``ddpo_config`` (TRL's ``DDPOConfig``); return the output folder."""
    import accelerate
    import torch

    from synartifact.generator.sampling import load_prompts, save_image_grid
    from synartifact.reward import ArtifactReward

    # --- seed, logging ---------------------------------------------------------------------------------------
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    ddpo_config_defaults(ddpo_config)
    torch.manual_seed(ddpo_config.seed)
    # TRL's pipeline logs through accelerate before any Accelerator exists, so the state comes first. Without a GPU,
    # cpu=True lets accelerate see a torchrun / mpirun launch as MULTI_CPU (gloo) instead of one process per rank.
    state = accelerate.PartialState(cpu=not torch.cuda.is_available())
    args = script_args

    # --- models present? output folder, checkpoints, resume ---------------------------------------------------
    _ensure_models(args, build=state.is_main_process)
    state.wait_for_everyone()
    out = _check_output_dir(args, ddpo_config)
    project = dict(ddpo_config.project_kwargs or {})
    project.setdefault("project_dir", str(out))
    project.setdefault("automatic_checkpoint_naming", True)
    project.setdefault("total_limit", ddpo_config.num_checkpoint_limit)
    ddpo_config.project_kwargs = project
    if ddpo_config.resume_from:
        resume = Path(ddpo_config.resume_from)
        if resume.resolve() == out.resolve():
            resume = out / "checkpoints"
        if not resume.exists():
            raise FileNotFoundError(
                f"resume_from {resume} does not exist: give a checkpoints folder or "
                "a checkpoints/checkpoint_N folder of an earlier run."
            )
        ddpo_config.resume_from = str(resume)

    if ddpo_config.sample_guidance_scale <= 1.0:
        # TRL passes negative prompt embeddings, which diffusers' _encode_prompt concatenates even without CFG
        raise ValueError(
            f"sample_guidance_scale={ddpo_config.sample_guidance_scale}: TRL 0.23.1's DDPO sampler needs "
            "classifier-free guidance (a value > 1, e.g. 5.0) with train_cfg true."
        )

    # --- data: prompts ---------------------------------------------------------------------------------------
    prompts = load_prompts(args.prompts, args.prompt_split)
    try:
        eval_prompts = load_prompts(args.prompts, "test", args.num_eval_images) if args.prompts else []
    except (ValueError, FileNotFoundError):
        eval_prompts = []
    prompts, eval_prompts = split_prompts(
        prompts, eval_prompts, args.num_eval_images, args.max_prompts, args.holdout_eval_prompts
    )
    held_out = len(set(eval_prompts) - set(prompts))
    logger.info("%d training prompts, %d evaluation prompts (%d held out)", len(prompts), len(eval_prompts), held_out)

    # --- models: generator and reward ------------------------------------------------------------------------
    from trl import DDPOTrainer

    pipeline = _pipeline_class()(
        args.pretrained_model, pretrained_model_revision=args.pretrained_revision, use_lora=args.use_lora
    )
    device = state.device
    reward = ArtifactReward(
        args.classifier,
        mode=args.reward_mode,
        weights=args.reward_weights,
        unparsable_reward=args.unparsable_reward,
        batch_size=args.reward_batch_size,
        soft=args.reward_soft,
        constrained=args.reward_constrained,
        device=str(device),
        follow_lines=args.reward_follow_lines,
        temperature=args.reward_temperature,
    )
    logger.info("Reward: %r", reward)

    timing = {"reward_s": 0.0}

    def reward_fn(images, batch_prompts, metadata):
        start = time.perf_counter()
        result = reward(images, batch_prompts, metadata)
        timing["reward_s"] += time.perf_counter() - start
        return result

    # --- trainer ---------------------------------------------------------------------------------------------
    samples_dir = out / "samples"
    samples_dir.mkdir(exist_ok=True)
    log_file = out / "reward_log.jsonl"
    epoch_box = {"epoch": 0, "hook_at": 0.0, "step_start": 0.0, "reward_at_start": 0.0}
    epochs_log: list[dict] = []

    def image_samples_hook(prompt_image_data, global_step, tracker):
        epoch_box["hook_at"] = time.perf_counter()
        rewards = torch.cat([torch.as_tensor(batch[3]).flatten().float().cpu() for batch in prompt_image_data])
        infos = [batch[4] for batch in prompt_image_data]
        if state.is_main_process:
            items = []
            for images, _prompts, _meta, batch_rewards, _info in prompt_image_data:
                pil = reward_images(images)
                items += list(zip(pil, [float(r) for r in torch.as_tensor(batch_rewards).flatten()]))
            save_image_grid(
                [(f"epoch {epoch_box['epoch']}", items[:8])], samples_dir / f"epoch_{epoch_box['epoch']:04d}.png"
            )
        row = {
            "epoch": epoch_box["epoch"],
            "global_step": global_step,
            "reward_mean": float(rewards.mean()),
            "reward_std": float(rewards.std(unbiased=False)),
            "reward_min": float(rewards.min()),
            "reward_max": float(rewards.max()),
            "num_images": int(rewards.numel()),
            "unparsable": int(sum(i.get("unparsable", 0) for i in infos)),
            "nan_rewards": int(sum(i.get("nan_rewards", 0) for i in infos)),
            "kinds_found": {
                k: int(sum(i.get("kinds_found", {}).get(k, 0) for i in infos))
                for k in sorted({k for i in infos for k in i.get("kinds_found", {})})
            },
        }
        epoch_box["row"] = row

    def reward_images(images):
        from synartifact.reward import images_to_pil

        return images_to_pil(images)[0]

    user_trackers = (
        ddpo_config.log_with
        if isinstance(ddpo_config.log_with, list)
        else ([ddpo_config.log_with] if ddpo_config.log_with else [])
    )
    ddpo_config.log_with = user_trackers + [_jsonl_tracker(out / "train_log.jsonl")]
    trainer = DDPOTrainer(
        ddpo_config,
        reward_fn,
        make_prompt_fn(prompts),
        pipeline,
        # TRL hands the hook accelerator.trackers[0], which only the main process has
        image_samples_hook=image_samples_hook if state.is_main_process else None,
    )

    # --- before: reward of held-out prompts with fixed seeds ---------------------------------------------------
    before = _eval_reward(pipeline.sd_pipeline, reward, eval_prompts, ddpo_config) if state.is_main_process else {}
    logger.info("Reward before training: %s", before)

    # --- train (TRL's loop, timed per epoch) -----------------------------------------------------------------
    global_step = 0
    totals = {"sampling_s": 0.0, "reward_s": 0.0, "training_s": 0.0}
    for epoch in range(trainer.first_epoch, ddpo_config.num_epochs):
        epoch_box["epoch"] = epoch
        start = time.perf_counter()
        reward_before = timing["reward_s"]
        global_step = trainer.step(epoch, global_step)
        end = time.perf_counter()
        reward_s = timing["reward_s"] - reward_before
        hook_at = epoch_box["hook_at"] if epoch_box["hook_at"] >= start else end
        row = dict(epoch_box.get("row", {"epoch": epoch}))
        row.update(
            {
                "sampling_s": round(hook_at - start - reward_s, 3),
                "reward_s": round(reward_s, 3),
                "training_s": round(end - hook_at, 3),
                "epoch_s": round(end - start, 3),
            }
        )
        for key in totals:
            totals[key] += row[key]
        epochs_log.append(row)
        if state.is_main_process:
            with open(log_file, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            logger.info(
                "epoch %d: reward %.4f (sampling %.1fs, reward %.1fs, training %.1fs)",
                epoch,
                row.get("reward_mean", float("nan")),
                row["sampling_s"],
                row["reward_s"],
                row["training_s"],
            )

    # --- after, save, card, push (main process) --------------------------------------------------------------
    state.wait_for_everyone()
    if state.is_main_process:
        after = _eval_reward(pipeline.sd_pipeline, reward, eval_prompts, ddpo_config)
        logger.info("Reward after training: %s", after)
        tmp = Path(tempfile.mkdtemp(prefix=".final.tmp-", dir=out))
        try:
            if args.use_lora:
                from diffusers.utils import convert_state_dict_to_diffusers
                from peft.utils import get_peft_model_state_dict

                unet = trainer.accelerator.unwrap_model(pipeline.sd_pipeline.unet)
                lora = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
                pipeline.sd_pipeline.save_lora_weights(save_directory=str(tmp), unet_lora_layers=lora)
            else:
                pipeline.save_pretrained(str(tmp))
            for item in tmp.iterdir():
                target = out / item.name
                if target.is_dir():
                    shutil.rmtree(target)
                os.replace(item, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if log_file.exists():
            plot_reward_curve(log_file, out / "reward_curve.png")
        total = sum(totals.values()) or 1.0
        timing_summary = {k: round(v, 2) for k, v in totals.items()}
        timing_summary.update({f"{k[:-2]}_share": round(v / total, 3) for k, v in totals.items()})
        summary = {
            "before": before,
            "after": after,
            "epochs": len(epochs_log),
            "world_size": trainer.accelerator.num_processes,
            "timing": timing_summary,
            "train_prompts": prompts,
            "eval_prompts": eval_prompts,
            "script_args": vars(args),
            "ddpo_config": {
                k: v for k, v in vars(ddpo_config).items() if isinstance(v, (int, float, str, bool, type(None)))
            },
        }
        (out / "ddpo_summary.json").write_text(json.dumps(summary, indent=2, default=str))
        _write_card(out, args, ddpo_config, reward, before, after, epochs_log, timing_summary)
        if ddpo_config.push_to_hub:
            from huggingface_hub import create_repo, upload_folder

            if not args.hub_model_id:
                raise ValueError("push_to_hub needs --hub_model_id ORG/NAME.")
            create_repo(args.hub_model_id, exist_ok=True)
            upload_folder(repo_id=args.hub_model_id, folder_path=str(out), ignore_patterns=["checkpoints/*", ".*"])
            logger.info("Pushed to https://huggingface.co/%s", args.hub_model_id)
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
