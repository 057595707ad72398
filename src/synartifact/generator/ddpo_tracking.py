"""What a DDPO run keeps track of, epoch by epoch: the prompt cycle, the per-epoch reward log and its plot, the
progress record a checkpoint carries, the held-out reward, the saved weights and the best epoch by the judge.

Used by :mod:`synartifact.ddpo` (the script); kept apart so that the script reads as its steps.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "LORA_WEIGHTS",
    "BestByJudge",
    "EpochRecorder",
    "PromptCycle",
    "TrainingProgress",
    "content_guard_allows",
    "plot_reward_curve",
]

logger = logging.getLogger("synartifact.ddpo")

LORA_WEIGHTS = "pytorch_lora_weights.safetensors"


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
    reward at the epochs it was measured (``judge_reward``, on its own axis: the two classifiers' scales differ) and,
    when the reward has guard terms (``drift``, ``contrast``, ``noise``), each term's epoch mean in a second panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(log_file).read_text().splitlines() if line.strip()]
    guards = sorted({name for r in rows for name in (r.get("terms") or {}) if name != "artifact"})
    fig, axes = plt.subplots(1, 2 if guards else 1, figsize=(9.5 if guards else 5.5, 3.4), squeeze=False)
    ax = axes[0][0]
    handles = []
    if rows:
        epochs = [r["epoch"] for r in rows]
        handles += ax.plot(epochs, [r["reward_mean"] for r in rows], marker="o", ms=2, label="training reward (mean)")
        handles.append(
            ax.fill_between(
                epochs, [r["reward_min"] for r in rows], [r["reward_max"] for r in rows], alpha=0.2, label="min-max"
            )
        )
        judged = [r for r in rows if r.get("judge_reward") is not None]
        if judged:
            # the judge's reward beside the training reward: a gap that opens up shows overoptimization
            twin = ax.twinx()
            handles += twin.plot(
                [r["epoch"] for r in judged],
                [r["judge_reward"] for r in judged],
                marker="s",
                linestyle="--",
                color="#c44e52",
                label="judge reward (its held-out prompts)",
            )
            twin.set_ylabel("judge reward", color="#c44e52")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training reward (1 = no artifact found)")
    ax.set_title("DDPO: training reward vs independent judge", fontsize=10)
    ax.legend(handles=handles, loc="upper left", fontsize=7, framealpha=0.6)
    if guards:
        right = axes[0][1]
        for name in guards:
            kept = [r for r in rows if name in (r.get("terms") or {})]
            right.plot([r["epoch"] for r in kept], [r["terms"][name] for r in kept], label=name)
        right.set_xlabel("epoch")
        right.set_ylabel("term, epoch mean (unweighted; 0 = nothing lost)")
        from synartifact.generator.guards import TERM_MEANINGS

        meanings = ", ".join(f"{name} = {TERM_MEANINGS[name]}" for name in guards if name in TERM_MEANINGS)
        right.set_title(f"guard terms: {meanings}", fontsize=8)
        right.legend(fontsize=7)
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


def _sample_held_out(sd_pipeline: Any, prompts: list[str], config: Any, seed: int = 1234) -> list:
    """Images of held-out prompts with fixed seeds (image ``i`` always from the same noise), in eval mode."""
    from synartifact.generator.sampling import sample_images

    was_training = sd_pipeline.unet.training
    sd_pipeline.unet.eval()
    try:
        return sample_images(
            sd_pipeline,
            prompts,
            seed,
            num_inference_steps=config.sample_num_steps,
            guidance_scale=config.sample_guidance_scale,
            eta=config.sample_eta,
        )
    finally:
        sd_pipeline.unet.train(was_training)


def _eval_reward(
    sd_pipeline: Any, reward: Any, prompts: list[str], config: Any, seed: int = 1234, images: list | None = None
) -> dict:
    """Mean reward of images from held-out prompts with fixed seeds (the card's before/after numbers); ``images``
    (a list), when given, receives the sampled images."""
    if not prompts:
        return {}
    sampled = _sample_held_out(sd_pipeline, prompts, config, seed)
    if images is not None:
        images.extend(sampled)
    rows = reward.details(sampled)
    values = [r["reward"] for r in rows]
    return {
        "mean_reward": float(sum(values) / len(values)),
        "num_images": len(values),
        "seed": seed,
        "unparsable": int(sum(r["unparsable"] for r in rows)),
    }


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

    def resume(self, first_epoch: int, global_step: int, checkpoint_row: dict | None = None) -> None:
        """Go on from ``first_epoch`` and ``global_step`` (0 and 0 for a new run): keep only the rows logged before
        them, here, in ``reward_log.jsonl`` and in ``train_log.jsonl``, dropping what a killed run logged past its
        last checkpoint, so that the run's logs read as one. ``checkpoint_row`` is the checkpoint's own epoch's
        reward row (TRL saves inside the epoch, before the row is logged): added when a kill lost it."""
        self.rows = _truncate_jsonl(self.log_file, lambda row: row.get("epoch", first_epoch) < first_epoch, self.write)
        if checkpoint_row and checkpoint_row.get("epoch") == first_epoch - 1:
            if all(row.get("epoch") != first_epoch - 1 for row in self.rows):
                self.rows.append(dict(checkpoint_row))
                if self.write:
                    with open(self.log_file, "a") as fh:
                        fh.write(json.dumps(checkpoint_row) + "\n")
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
        self.row: dict | None = None  # the checkpoint epoch's reward row, as far as it was recorded when saved

    def state_dict(self) -> dict:
        """The progress now (TRL saves at the end of an epoch's step, after its training)."""
        import numpy as np

        tracker = getattr(self.trainer, "stat_tracker", None)
        return {
            "epoch": self.recorder.epoch,
            "global_step": self.trainer.global_step,
            "prompt_calls": self.trainer.prompt_fn.calls,
            "row": dict(self.recorder.row),
            "stat_tracker": {str(p): np.asarray(q) for p, q in tracker.stats.items()} if tracker else None,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore the prompt cycle and reward statistics; keep the epoch and global step to go on from."""
        from collections import deque

        self.epoch, self.global_step = int(state["epoch"]), int(state["global_step"])
        self.row = state.get("row")
        self.trainer.global_step = self.global_step
        self.trainer.prompt_fn.calls = int(state["prompt_calls"])
        tracker = getattr(self.trainer, "stat_tracker", None)
        if tracker is not None and state.get("stat_tracker") is not None:
            tracker.stats = {p: deque(q, maxlen=tracker.buffer_size) for p, q in state["stat_tracker"].items()}


def _save_weights(trainer: Any, pipeline: Any, out: Path, use_lora: bool) -> None:
    """The trained LoRA weights (or, without LoRA, the whole pipeline) into ``out``, written aside then moved in."""
    from synartifact.utils import make_temp_dir

    tmp = make_temp_dir(out / "final")
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


def content_guard_allows(row: dict) -> bool:
    """Whether an epoch's row may be picked as the best epoch: not when its held-out samples lost their content
    (``content_kept`` is ``False``: :func:`~synartifact.generator.fidelity.content_fidelity` against the base
    model's samples of the same prompts and noise). Unmeasured (``None`` or absent: no references, one judge prompt,
    one image per prompt, or a base model whose prompts cannot be told apart) decides nothing and allows."""
    return row.get("content_kept") is not False


class BestByJudge:
    """``EpochRecorder.after_epoch`` with a judge: every ``judge_every`` epochs (and after the last) the judge scores
    held-out samples; the weights of the best-judged epoch are saved to ``<output_dir>/best/`` with ``best.json``.

    Content guard: :meth:`sample_references` (called once per run, on the base model, before training and before a
    checkpoint is loaded) samples the judge's prompts with the same noise; each judged epoch's samples are then
    compared with them by :func:`~synartifact.generator.fidelity.content_fidelity` (``content_fidelity``,
    ``content_kept``, ``content_lost``, ``content_gained`` in its row). An epoch whose content is lost (``kept``
    False) is never picked as best, however high its judge reward: a judge may rate a blank above a scene. When no
    judged epoch keeps content, ``best_epoch`` is ``None`` and ``best/`` is not written (see :meth:`summary`).
    Fidelity needs at least two judge prompts and two images of each (``judge_images_per_prompt`` >= 2); otherwise
    it is recorded as unmeasurable and the guard decides nothing."""

    def __init__(self, judge: Any, prompts: list[str], trainer: Any, pipeline: Any, out: Path, args: Any, config: Any):
        from synartifact.generator.guards import BestTracker

        self.judge, self.prompts, self.trainer, self.pipeline = judge, prompts, trainer, pipeline
        self.dir, self.args, self.config = out / "best", args, config
        self.tracker = BestTracker()
        self.references: list | None = None  # the base model's samples of the judged prompts (sample_references)
        self.lost_epochs: list[int] = []  # judged epochs the content guard refused
        self.judged_epochs = 0

    def _sampled_prompts(self) -> list[str]:
        # each image of a prompt has its own fixed noise
        return [p for p in self.prompts for _ in range(self.args.judge_images_per_prompt)]

    def sample_references(self) -> None:
        """Sample the judged prompts on the model as it is now (the base model: call before training and before
        loading a checkpoint), with the noise every judged epoch uses: the content guard's references."""
        self.references = _sample_held_out(self.pipeline.sd_pipeline, self._sampled_prompts(), self.config)

    def _fidelity(self, images: list) -> dict:
        """The content-fidelity fields of a judged epoch's row (``None`` values without references)."""
        from synartifact.generator.fidelity import content_fidelity

        if self.references is None:
            return {"content_fidelity": None, "content_kept": None}
        fid = content_fidelity({0: self.references}, {0: images}, self._sampled_prompts())
        return {
            "content_fidelity": fid["fidelity"],
            "content_kept": fid["kept"],
            "content_measurable": fid["measurable"],
            "content_lost": fid.get("lost"),
            "content_gained": fid.get("gained"),
        }

    def resume(self, rows: list[dict]) -> None:
        """Take up the best epoch of the rows kept on resume, when ``best/`` holds its weights; else start over.
        Rows whose content was lost (:func:`content_guard_allows`) are not candidates."""
        for row in rows:
            if row.get("judge_reward") is not None:
                self.judged_epochs += 1
                if not content_guard_allows(row):
                    self.lost_epochs.append(row["epoch"])
                    continue
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
        images: list = []
        value = _eval_reward(
            self.pipeline.sd_pipeline, self.judge, self._sampled_prompts(), self.config, images=images
        )
        row = {"judge_reward": value["mean_reward"], **self._fidelity(images)}
        value = row["judge_reward"]
        self.judged_epochs += 1
        if not content_guard_allows(row):
            self.lost_epochs.append(epoch)
            logger.warning(
                "epoch %d: judge reward %.4f, but its held-out samples lost their content (fidelity %s): not a "
                "candidate for the best epoch.",
                epoch,
                value,
                row["content_fidelity"],
            )
        elif self.tracker.update(epoch, value):
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / "best.json").unlink(missing_ok=True)
            _save_weights(self.trainer, self.pipeline, self.dir, self.args.use_lora)
            (self.dir / "best.json").write_text(json.dumps({"epoch": epoch, "judge_reward": value}))
            logger.info("epoch %d: judge reward %.4f, the best so far: weights saved to %s", epoch, value, self.dir)
        return row

    def summary(self) -> dict:
        """The best epoch, its judge reward, which weights are where and what the content guard refused
        (``content_guard``: ``lost_epochs``; ``no_epoch_kept_content`` when every judged epoch lost its content, in
        which case ``best_epoch`` is ``None`` and ``best/`` holds nothing)."""
        none_kept = self.judged_epochs > 0 and len(self.lost_epochs) == self.judged_epochs
        return {
            "best_epoch": self.tracker.best_epoch,
            "best_judge_reward": self.tracker.best_value,
            "judge": self.args.judge,
            "judge_prompts": self.prompts,
            "content_guard": {
                "rule": "an epoch whose judged samples lost their content (content_kept false: content_fidelity "
                "against the base model's samples of the same prompts and noise) is never the best epoch",
                "references": self.references is not None,
                "judged_epochs": self.judged_epochs,
                "lost_epochs": list(self.lost_epochs),
                "no_epoch_kept_content": none_kept,
            },
            "weights": {
                "final": f"{LORA_WEIGHTS if self.args.use_lora else 'the pipeline'} in output_dir: the last epoch's",
                "best": "best/: the epoch with the highest judge reward among those that kept their content "
                "(best_epoch)" + ("; none did, so best/ holds no weights" if none_kept else ""),
            },
        }
