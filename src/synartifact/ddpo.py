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
``judge_num_prompts``) scores held-out prompts' samples with an independent classifier (``judge_reward`` in the
log, next to the training reward in ``reward_curve.png``) and keeps the best-judged epoch's weights in ``best/``
(``best_epoch``, ``best_judge_reward`` in ``ddpo_summary.json``); the weights in ``output_dir`` stay the last
epoch's. The before/after rewards are always the artifact reward's.

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
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synartifact.checkpoints import file_problem, newest_complete, numbered_folders
from synartifact.configs import DDPO_CONFIG_DEFAULTS, DDPOScriptArguments, ddpo_config_defaults
from synartifact.utils import is_local_path

__all__ = ["main", "cli_main", "BestByJudge", "EpochRecorder", "PromptCycle", "plot_reward_curve"]

logger = logging.getLogger("synartifact.ddpo")

LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
CHECKPOINT_PATTERN = r"checkpoint_(\d+)"
# accelerate writes the registered progress record after every other part of a checkpoint
PROGRESS_FILE = "custom_checkpoint_0.pkl"
# where an untrained tiny classifier goes when the classifier folder is missing (build_tiny_models_if_missing)
TINY_CLASSIFIER = "tiny-classifier"


class PromptCycle:
    """TRL's ``prompt_fn``: each call gives the next prompt, cycling, as ``(prompt, {"index": i, "prompt": prompt})``."""

    def __init__(self, prompts: Sequence[str]) -> None:
        if not prompts:
            raise ValueError("No prompts to train on: give --prompts a text file or a dataset with a 'prompt' column.")
        self.prompts = list(prompts)
        self.calls = 0

    def __call__(self) -> tuple[str, dict]:
        index = self.calls % len(self.prompts)
        self.calls += 1
        return self.prompts[index], {"index": index, "prompt": self.prompts[index]}


def plot_reward_curve(log_file: Path | str, out: Path | str) -> Path:
    """Plot mean training reward (with min/max band) per epoch from ``reward_log.jsonl`` to a PNG, with the judge's
    reward at the epochs it was measured (``judge_reward``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(log_file).read_text().splitlines() if line.strip()]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    if rows:
        epochs = [r["epoch"] for r in rows]
        ax.plot(epochs, [r["reward_mean"] for r in rows], marker="o", label="training reward (mean)")
        ax.fill_between(
            epochs, [r["reward_min"] for r in rows], [r["reward_max"] for r in rows], alpha=0.2, label="min-max"
        )
        judged = [r for r in rows if r.get("judge_reward") is not None]
        if judged:
            # the judge's reward beside the training reward: a gap that opens up shows overoptimization
            ax.plot(
                [r["epoch"] for r in judged],
                [r["judge_reward"] for r in judged],
                marker="s",
                linestyle="--",
                label="judge reward (held-out prompts)",
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
    if args.judge and (args.judge_every < 1 or args.judge_num_prompts < 1):
        raise ValueError(
            f"judge_every={args.judge_every}, judge_num_prompts={args.judge_num_prompts}: with --judge both must be "
            ">= 1 (e.g. --judge_every 10 --judge_num_prompts 4)."
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
    from synartifact.cards import final_output_dir, hub_card_data, save_model_card

    # the card names the folder users load (not a temporary one being written) or the Hub repo
    repo_id = args.hub_model_id or str(final_output_dir(out))
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
    save_model_card(
        out,
        "generator_card.md",
        card_data,
        model_name=card_data["model_name"],
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


class EpochRecorder:
    """TRL's reward function and image hook for one run: times each epoch's sampling, reward and training, and
    records its rewards (a row per epoch, in ``reward_log.jsonl`` where ``write``) and a grid of its samples."""

    def __init__(self, reward: Any, out: Path, write: bool) -> None:
        self.reward = reward
        self.samples_dir = out / "samples"
        self.log_file = out / "reward_log.jsonl"
        self.write = write
        if write:
            self.samples_dir.mkdir(exist_ok=True)
        self.epoch = 0
        self.reward_s = 0.0
        self.hook_at = 0.0
        self.row: dict = {}
        self.rows: list[dict] = []
        self.totals = dict.fromkeys(("sampling_s", "reward_s", "training_s"), 0.0)
        # called with the epoch after it trained (main process): extra keys for its row (the judge's reward)
        self.after_epoch: Any = None

    def reward_fn(self, images: Any, prompts: Sequence[str], metadata: Any) -> tuple[Any, dict]:
        """TRL's ``reward_function``: the reward, timed."""
        start = time.perf_counter()
        result = self.reward(images, prompts, metadata)
        self.reward_s += time.perf_counter() - start
        return result

    def image_samples_hook(self, prompt_image_data: list, global_step: int, tracker: Any) -> None:
        """TRL's ``image_samples_hook`` (main process only): the epoch's reward statistics and a sample grid."""
        import torch

        from synartifact.generator.sampling import save_image_grid
        from synartifact.reward import images_to_pil

        self.hook_at = time.perf_counter()
        rewards = torch.cat([torch.as_tensor(batch[3]).flatten().float().cpu() for batch in prompt_image_data])
        infos = [batch[4] for batch in prompt_image_data]
        items = []
        for images, _prompts, _meta, batch_rewards, _info in prompt_image_data:
            pil = images_to_pil(images)[0]
            items += list(zip(pil, [float(r) for r in torch.as_tensor(batch_rewards).flatten()]))
        save_image_grid([(f"epoch {self.epoch}", items[:8])], self.samples_dir / f"epoch_{self.epoch:04d}.png")
        self.row = {
            "epoch": self.epoch,
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
        sizes = [torch.as_tensor(batch[3]).numel() for batch in prompt_image_data]
        if all("terms" in i for i in infos) and infos:
            # each reward term's mean over the epoch's samples (unweighted), beside the total's
            self.row["terms"] = {
                name: float(sum(i["terms"][name] * n for i, n in zip(infos, sizes)) / max(sum(sizes), 1))
                for name in infos[0]["terms"]
            }

    def run_epoch(self, trainer: Any, epoch: int, global_step: int) -> int:
        """One epoch of TRL's loop (``trainer.step``, the calls ``train()`` makes), timed and logged; returns the
        global step after it."""
        self.epoch, self.row = epoch, {"epoch": epoch}
        start, reward_before = time.perf_counter(), self.reward_s
        global_step = trainer.step(epoch, global_step)
        end = time.perf_counter()
        reward_s = self.reward_s - reward_before
        # the hook runs between sampling (with the reward) and training; without it (other processes) all is sampling
        hook_at = self.hook_at if self.hook_at >= start else end
        row = dict(
            self.row,
            sampling_s=round(hook_at - start - reward_s, 3),
            reward_s=round(reward_s, 3),
            training_s=round(end - hook_at, 3),
            epoch_s=round(end - start, 3),
        )
        if self.after_epoch is not None:
            row.update(self.after_epoch(epoch))
        for key in self.totals:
            self.totals[key] += row[key]
        self.rows.append(row)
        if self.write:
            with open(self.log_file, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            logger.info(
                "epoch %d: reward %.4f (sampling %.1fs, reward %.1fs, training %.1fs)",
                epoch,
                row.get("reward_mean", float("nan")),
                row["sampling_s"],
                row["reward_s"],
                row["training_s"],
            )
        return global_step

    def resume(self, first_epoch: int, global_step: int) -> None:
        """Go on from ``first_epoch`` and ``global_step`` (0 and 0 for a new run): keep only the rows logged before
        them, here, in ``reward_log.jsonl`` and in ``train_log.jsonl``, dropping what a killed run logged past its
        last checkpoint, so that the run's logs read as one."""
        self.rows = _truncate_jsonl(self.log_file, lambda row: row.get("epoch", first_epoch) < first_epoch, self.write)
        _truncate_jsonl(
            self.log_file.parent / "train_log.jsonl", lambda row: row.get("step", 0) < global_step, self.write
        )
        for key in self.totals:
            self.totals[key] = sum(float(row.get(key, 0.0)) for row in self.rows)

    def timing(self) -> dict:
        """Seconds spent sampling, rewarding and training over the run, and each one's share."""
        total = sum(self.totals.values()) or 1.0
        summary = {k: round(v, 2) for k, v in self.totals.items()}
        summary.update({f"{k[:-2]}_share": round(v / total, 3) for k, v in self.totals.items()})
        return summary


def _truncate_jsonl(path: Path, keep: Any, write: bool) -> list[dict]:
    """The rows of a JSONL log that ``keep`` accepts (a line cut short by a kill is dropped), rewritten where
    ``write``."""
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and keep(row):
                rows.append(row)
        if write:
            path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return rows


class TrainingProgress:
    """What a DDPO checkpoint holds besides TRL's state, for training to go on exactly where it stopped: the epoch
    it ended, the global step, the prompt cycle's position and the per-prompt reward statistics.

    Saved into every checkpoint through ``accelerator.register_for_checkpointing`` (as the last file of it).
    """

    def __init__(self, trainer: Any, recorder: EpochRecorder) -> None:
        self.trainer = trainer
        self.recorder = recorder
        self.epoch = -1
        self.global_step = 0

    def state_dict(self) -> dict:
        """The progress now (TRL saves at the end of an epoch's step, after its training)."""
        import numpy as np

        tracker = getattr(self.trainer, "stat_tracker", None)
        return {
            "epoch": self.recorder.epoch,
            "global_step": self.trainer.global_step,
            "prompt_calls": self.trainer.prompt_fn.calls,
            "stat_tracker": {str(p): np.asarray(q) for p, q in tracker.stats.items()} if tracker else None,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore the prompt cycle and reward statistics; keep the epoch and global step to go on from."""
        from collections import deque

        self.epoch, self.global_step = int(state["epoch"]), int(state["global_step"])
        self.trainer.global_step = self.global_step
        self.trainer.prompt_fn.calls = int(state["prompt_calls"])
        tracker = getattr(self.trainer, "stat_tracker", None)
        if tracker is not None and state.get("stat_tracker") is not None:
            tracker.stats = {p: deque(q, maxlen=tracker.buffer_size) for p, q in state["stat_tracker"].items()}


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
    """The first ``judge_num_prompts`` evaluation prompts that are not training prompts (the judge never sees a
    prompt the generator was trained on)."""
    trained_on = set(train_prompts)
    prompts = [p for p in eval_prompts if p not in trained_on][: args.judge_num_prompts]
    if not prompts:
        raise ValueError(
            f"--judge needs held-out prompts, but none of the {len(eval_prompts)} evaluation prompts is kept out of "
            "training: set num_eval_images >= 1 with holdout_eval_prompts true and more prompts than num_eval_images."
        )
    if len(prompts) < args.judge_num_prompts:
        logger.warning(
            "judge_num_prompts=%d: only %d held-out prompts to judge.", args.judge_num_prompts, len(prompts)
        )
    return prompts


class BestByJudge:
    """``EpochRecorder.after_epoch`` with a judge: every ``judge_every`` epochs (and after the last) the judge scores
    held-out samples; the weights of the best-judged epoch are saved to ``<output_dir>/best/`` with ``best.json``."""

    def __init__(self, judge: Any, prompts: list[str], trainer: Any, pipeline: Any, out: Path, args: Any, config: Any):
        from synartifact.generator.guards import BestTracker

        self.judge, self.prompts, self.trainer, self.pipeline = judge, prompts, trainer, pipeline
        self.dir, self.args, self.config = out / "best", args, config
        self.tracker = BestTracker()

    def resume(self, rows: list[dict]) -> None:
        """Take up the best epoch of the rows kept on resume, when ``best/`` holds its weights; else start over."""
        for row in rows:
            if row.get("judge_reward") is not None:
                self.tracker.update(row["epoch"], row["judge_reward"])
        saved = self.dir / "best.json"
        held = json.loads(saved.read_text()).get("epoch") if saved.is_file() else None
        if held != self.tracker.best_epoch:
            # weights of an epoch past the checkpoint (a killed run) or of an earlier run: not this run's best
            if self.dir.exists():
                logger.warning("%s does not hold the best epoch of this run: removed, judging starts over.", self.dir)
                shutil.rmtree(self.dir, ignore_errors=True)
            self.tracker = type(self.tracker)()

    def __call__(self, epoch: int) -> dict:
        last = epoch == self.config.num_epochs - 1
        if (epoch + 1) % self.args.judge_every and not last:
            return {}
        value = _eval_reward(self.pipeline.sd_pipeline, self.judge, self.prompts, self.config)["mean_reward"]
        if self.tracker.update(epoch, value):
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / "best.json").unlink(missing_ok=True)
            _save_weights(self.trainer, self.pipeline, self.dir, self.args.use_lora)
            (self.dir / "best.json").write_text(json.dumps({"epoch": epoch, "judge_reward": value}))
            logger.info("epoch %d: judge reward %.4f, the best so far: weights saved to %s", epoch, value, self.dir)
        return {"judge_reward": value}

    def summary(self) -> dict:
        """The best epoch, its judge reward and which weights are where."""
        return {
            "best_epoch": self.tracker.best_epoch,
            "best_judge_reward": self.tracker.best_value,
            "judge": self.args.judge,
            "judge_prompts": self.prompts,
            "weights": {
                "final": f"{LORA_WEIGHTS if self.args.use_lora else 'the pipeline'} in output_dir: the last epoch's",
                "best": "best/: the epoch with the highest judge reward (best_epoch)",
            },
        }


def _get_pipeline(args: DDPOScriptArguments) -> Any:
    """TRL's DDPO pipeline (LoRA on the UNet attention unless ``use_lora`` is off) around ``pretrained_model``."""
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


def _save_weights(trainer: Any, pipeline: Any, out: Path, use_lora: bool) -> None:
    """The trained LoRA weights (or, without LoRA, the whole pipeline) into ``out``, written aside then moved in."""
    tmp = Path(tempfile.mkdtemp(prefix=".final.tmp-", dir=out))
    try:
        if use_lora:
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


def _write_summary(out: Path, args: DDPOScriptArguments, config: Any, summary: dict) -> None:
    """``ddpo_summary.json``: ``summary`` (rewards, timing, prompts) with the script's and TRL's settings."""
    summary = dict(
        summary,
        script_args=vars(args),
        ddpo_config={k: v for k, v in vars(config).items() if isinstance(v, (int, float, str, bool, type(None)))},
    )
    (out / "ddpo_summary.json").write_text(json.dumps(summary, indent=2, default=str))


def _push_to_hub(out: Path, repo_id: str) -> None:
    """Upload the output folder (without checkpoints, temporary files or a fallback classifier) to ``repo_id``."""
    from huggingface_hub import create_repo, upload_folder

    create_repo(repo_id, exist_ok=True)
    upload_folder(
        repo_id=repo_id, folder_path=str(out), ignore_patterns=["checkpoints/*", ".*", f"{TINY_CLASSIFIER}/*"]
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
    held_out = len(set(eval_prompts) - set(prompts))
    logger.info("%d training prompts, %d evaluation prompts (%d held out)", len(prompts), len(eval_prompts), held_out)

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
    judge_prompts = _judge_prompts(script_args, eval_prompts, prompts) if script_args.judge else []
    if script_args.judge and state.is_main_process:
        from synartifact.reward import ArtifactReward

        judge = ArtifactReward(script_args.judge, mode="generate", soft=False, device=str(state.device))
        best = BestByJudge(judge, judge_prompts, trainer, pipeline, out, script_args, ddpo_config)
        recorder.after_epoch = best

    # --- train (TRL's loop, timed per epoch), with the reward of held-out prompts before and after ------------
    # "before" is measured on the base model, so a resumed run loads its checkpoint only afterwards
    before = _eval_reward(pipeline.sd_pipeline, reward, eval_prompts, ddpo_config) if state.is_main_process else {}
    logger.info("Reward before training: %s", before)
    first_epoch, global_step = (
        _resume(trainer, progress, ddpo_config.resume_from) if ddpo_config.resume_from else (0, 0)
    )
    recorder.resume(first_epoch, global_step)
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
    _write_card(out, script_args, ddpo_config, reward, before, after, recorder.rows, timing)
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
