"""Compare a base and a refined (DDPO LoRA) generator by the artifact classifier's reward.

``synartifact evaluate-generator --base DIR_OR_ID [--lora DIR] --classifier DIR_OR_ID --prompts FILE_OR_DATASET
--seeds 0 1 2 --out DIR``: the same prompts and the same seeds (one ``torch.Generator`` per image, seeded from the
seed and the prompt's position) through the base pipeline and through base + ``load_lora_weights(lora)``; per
generator the mean reward, the rate of each artifact kind, the mean reward of each seed and their spread (sample
standard deviation of the per-seed means); the difference refined - base with the spread of the per-seed
differences. Writes ``DIR/metrics.json``, ``DIR/report.md`` and ``DIR/before_after.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synartifact.generator.sampling import (
    held_out_prompts,
    load_prompts,
    sample_images,
    save_image_grid,
    to_device_pipeline,
)
from synartifact.taxonomy import SLUGS
from synartifact.utils import atomic_dir

__all__ = [
    "load_prompts",
    "sample_images",
    "score_generator",
    "evaluate_generator",
    "add_cli",
    "save_image_grid",
]

logger = logging.getLogger(__name__)


def score_generator(
    pipe: Any,
    reward: Any,
    prompts: Sequence[str],
    seeds: Sequence[int],
    num_inference_steps: int = 20,
    guidance_scale: float = 5.0,
    eta: float = 1.0,
) -> tuple[dict, dict[int, list]]:
    """Mean reward, per-kind rate, per-seed means and their spread for one pipeline; also the images per seed."""
    rewards_all, per_seed, images_by_seed, counts, unparsable = [], [], {}, dict.fromkeys(SLUGS, 0), 0
    for seed in seeds:
        images = sample_images(pipe, prompts, seed, num_inference_steps, guidance_scale, eta)
        details = reward.details(images)
        values = [d["reward"] for d in details]
        for d in details:
            for kind in d["kinds"]:
                counts[kind] += 1
            unparsable += int(d["unparsable"])
        rewards_all += values
        per_seed.append(float(np.mean(values)))
        images_by_seed[int(seed)] = list(zip(images, values))
    n = max(1, len(rewards_all))
    stats = {
        "mean_reward": float(np.mean(rewards_all)) if rewards_all else float("nan"),
        "per_kind_rate": {k: v / n for k, v in counts.items()},
        "per_seed_mean": per_seed,
        "std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0,
        "num_images": len(rewards_all),
        "unparsable_rate": unparsable / n,
    }
    return stats, images_by_seed


def _delta(base: dict, refined: dict) -> dict:
    per_seed = [b - a for a, b in zip(base["per_seed_mean"], refined["per_seed_mean"])]
    return {
        "mean_reward": refined["mean_reward"] - base["mean_reward"],
        "per_kind_rate": {k: refined["per_kind_rate"][k] - base["per_kind_rate"][k] for k in SLUGS},
        "per_seed_mean": per_seed,
        "std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0,
        # the gain in units of the larger seed-to-seed spread of the mean reward (> 2: a gain beyond seed noise)
        "gain_over_spread": (refined["mean_reward"] - base["mean_reward"]) / spread
        if (spread := max(base["std"], refined["std"])) > 0
        else None,
    }


def _report_md(metrics: dict) -> str:
    lines = [
        "# Generator evaluation: base vs refined",
        "",
        f"- base: `{metrics['config']['base']}`",
        f"- LoRA: `{metrics['config']['lora']}`",
        f"- classifier: `{metrics['config']['classifier']}` (reward mode `{metrics['config']['reward_mode']}`, "
        f"temperature {metrics['config'].get('reward_temperature', 1.0)}, "
        f"follow lines {metrics['config'].get('reward_follow_lines', False)})",
        f"- {metrics['config']['num_prompts']} prompts x {metrics['config'].get('images_per_prompt', 1)} images x "
        f"seeds {metrics['config']['seeds']}, "
        f"{metrics['config']['num_inference_steps']} steps, guidance {metrics['config']['guidance_scale']}",
        "",
        "Reward = 1 - weighted share of artifact kinds the classifier finds (1: none found). Spread: sample "
        "standard deviation of the per-seed mean rewards.",
        "",
        "| generator | mean reward | std over seeds | per-seed means |",
        "|---|---|---|---|",
    ]
    for key in ("base", "refined", "delta"):
        if key in metrics:
            part = metrics[key]
            seeds = ", ".join(f"{v:.3f}" for v in part["per_seed_mean"])
            lines.append(f"| {key} | {part['mean_reward']:.3f} | {part['std']:.3f} | {seeds} |")
    if "delta" in metrics:
        d = metrics["delta"]
        spread = max(metrics["base"]["std"], metrics["refined"]["std"])
        verdict = "exceeds" if d["mean_reward"] > 2 * spread else "does not exceed"
        lines += [
            "",
            f"The reward gain {d['mean_reward']:+.3f} {verdict} twice the larger seed spread ({2 * spread:.3f}).",
            "",
        ]
    lines += ["", "| kind | base rate | refined rate | difference |", "|---|---|---|---|"]
    for slug in SLUGS:
        base = metrics["base"]["per_kind_rate"][slug]
        if "refined" in metrics:
            ref = metrics["refined"]["per_kind_rate"][slug]
            lines.append(f"| {slug} | {base:.3f} | {ref:.3f} | {ref - base:+.3f} |")
        else:
            lines.append(f"| {slug} | {base:.3f} | | |")
    lines += ["", "![before and after](before_after.png)", ""]
    return "\n".join(lines)


def _run_summary(lora: str | None) -> dict:
    """The ``ddpo_summary.json`` of the DDPO run that wrote ``lora`` (``{}`` when there is none)."""
    summary = Path(lora) / "ddpo_summary.json" if lora else None
    return json.loads(summary.read_text()) if summary is not None and summary.is_file() else {}


def _sampler_settings(run: dict, steps: int | None, guidance: float | None, eta: float | None) -> tuple:
    """Unset sampler settings come from the DDPO run's summary ``run``, else 20/5.0/1.0."""
    trained = run.get("ddpo_config", {})
    steps = steps if steps is not None else int(trained.get("sample_num_steps", 20))
    guidance = guidance if guidance is not None else float(trained.get("sample_guidance_scale", 5.0))
    eta = eta if eta is not None else float(trained.get("sample_eta", 1.0))
    return steps, guidance, eta


def evaluate_generator(
    base: str,
    classifier: Any,
    out: str | Path,
    prompts: str | Sequence[str] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    lora: str | None = None,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    eta: float | None = None,
    num_prompts: int | None = 8,
    prompt_split: str = "test",
    images_per_prompt: int = 1,
    reward_mode: str | None = None,
    reward_weights: Any = None,
    reward_soft: bool | None = None,
    reward_constrained: bool | None = None,
    reward_temperature: float | None = None,
    reward_follow_lines: bool | None = None,
    overwrite: bool = False,
    device: str | None = None,
) -> dict:
    """Base vs refined generator on the same prompts and seeds; writes metrics.json, report.md, before_after.png.

    ``classifier`` is a folder/Hub id, an ``ArtifactClassifier`` or an ``ArtifactReward``. Returns the metrics dict
    ``{"base": {...}, "refined": {...}, "delta": {...}, "config": {...}}`` (no refined/delta without ``lora``).
    Sampler and reward settings left at ``None`` are the DDPO run's (``lora``'s ``ddpo_summary.json``): the
    generator is judged by the reward it was trained on unless told otherwise.
    """
    from diffusers import StableDiffusionPipeline

    from synartifact.reward import ArtifactReward, reward_settings

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists: pass overwrite=True (--overwrite) to replace it.")
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed, e.g. --seeds 0 1 2.")
    if int(images_per_prompt) < 1:
        raise ValueError(f"images_per_prompt must be >= 1, got {images_per_prompt}.")
    if lora is not None and not (Path(lora) / "pytorch_lora_weights.safetensors").is_file() and Path(lora).exists():
        raise FileNotFoundError(
            f"{lora} holds no pytorch_lora_weights.safetensors: is it a `synartifact ddpo` output?"
        )
    run = _run_summary(lora)
    num_inference_steps, guidance_scale, eta = _sampler_settings(run, num_inference_steps, guidance_scale, eta)
    if isinstance(prompts, (list, tuple)):
        prompt_list = list(prompts)[:num_prompts] if num_prompts else list(prompts)
    else:
        prompt_list = held_out_prompts(prompts, num_prompts or None, prompt_split)
    # each prompt k times per seed (image i of a seed has its own noise): a finer per-seed mean
    sampled = [p for p in prompt_list for _ in range(int(images_per_prompt))]
    given = {
        "reward_mode": reward_mode,
        "reward_weights": reward_weights,
        "reward_soft": reward_soft,
        "reward_constrained": reward_constrained,
        "reward_temperature": reward_temperature,
        "reward_follow_lines": reward_follow_lines,
    }
    reward = (
        classifier
        if isinstance(classifier, ArtifactReward)
        else ArtifactReward(classifier, device=device, **reward_settings(given, run.get("script_args", {})))
    )

    pipe = to_device_pipeline(StableDiffusionPipeline.from_pretrained(base, safety_checker=None), device)
    metrics: dict = {}
    metrics["base"], base_images = score_generator(
        pipe, reward, sampled, seeds, num_inference_steps, guidance_scale, eta
    )
    step = int(images_per_prompt)
    rows = [("base", base_images[int(seeds[0])][::step])]
    if lora is not None:
        pipe.load_lora_weights(lora, weight_name="pytorch_lora_weights.safetensors")
        metrics["refined"], refined_images = score_generator(
            pipe, reward, sampled, seeds, num_inference_steps, guidance_scale, eta
        )
        metrics["delta"] = _delta(metrics["base"], metrics["refined"])
        rows.append(("refined", refined_images[int(seeds[0])][::step]))
    metrics["config"] = {
        "base": str(base),
        "lora": str(lora) if lora else None,
        "classifier": str(getattr(classifier, "name_or_path", classifier))
        if not isinstance(classifier, ArtifactReward)
        else "ArtifactReward",
        "reward_mode": reward.mode,
        "reward_soft": getattr(reward, "soft", False),
        "reward_constrained": getattr(reward, "constrained", False),
        "reward_temperature": getattr(reward, "temperature", 1.0),
        "reward_follow_lines": getattr(reward, "follow_lines", False),
        "weights": reward.weights,
        "seeds": [int(s) for s in seeds],
        "num_prompts": len(prompt_list),
        "images_per_prompt": int(images_per_prompt),
        "num_inference_steps": num_inference_steps,
        "guidance_scale": guidance_scale,
        "eta": eta,
        "prompts": prompt_list,
    }
    for part in ("base", "refined", "delta"):
        if part in metrics and not math.isfinite(metrics[part]["mean_reward"]):
            raise RuntimeError(f"The {part} mean reward is not finite: check the classifier at {classifier}.")

    with atomic_dir(out, overwrite=overwrite) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        save_image_grid(rows, tmp / "before_after.png", titles=prompt_list)
        (tmp / "report.md").write_text(_report_md(metrics))
    # the refined generator's own card (a `synartifact ddpo` folder) shows the comparison from now on
    from synartifact.cards import record_generator_evaluation

    if record_generator_evaluation(lora, metrics, prompts) is not None:
        logger.info("Added the comparison to the model card in %s", lora)
    return metrics


def add_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``synartifact evaluate-generator``."""
    p = subparsers.add_parser(
        "evaluate-generator",
        help="compare a base and a refined generator by the classifier's reward",
        description="Same prompts, same seeds through the base pipeline and base + LoRA: mean reward, artifact "
        "rate per kind, their difference with a spread over seeds, a before/after grid. Writes DIR/metrics.json, "
        "DIR/report.md and DIR/before_after.png.",
    )
    p.add_argument("--base", required=True, help="base Stable Diffusion pipeline: folder or Hub id")
    p.add_argument(
        "--lora", default=None, help="folder with pytorch_lora_weights.safetensors (a `synartifact ddpo` output)"
    )
    p.add_argument("--classifier", required=True, help="artifact classifier folder or Hub id")
    p.add_argument(
        "--prompts",
        default=None,
        help="text file (one prompt a line) or dataset folder/Hub id with a "
        "'prompt' column (default: the built-in prompts)",
    )
    p.add_argument("--prompt-split", default="test", help="dataset split to read prompts from (default: test)")
    p.add_argument(
        "--num-prompts",
        type=int,
        default=8,
        help="score the first N prompts, the ones a DDPO run with num_eval_images N kept out of training (default: 8)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default: 0 1 2)")
    p.add_argument(
        "--images-per-prompt",
        type=int,
        default=1,
        help="images per prompt and seed, each with its own noise (default: 1); more make each seed's mean finer",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--num-inference-steps",
        type=int,
        default=None,
        help="sampler steps (default: the DDPO run's, from --lora's ddpo_summary.json, else 20)",
    )
    p.add_argument(
        "--guidance-scale",
        type=float,
        default=None,
        help="classifier-free guidance (default: the DDPO run's, else 5.0)",
    )
    p.add_argument("--eta", type=float, default=None, help="DDIM eta (default: the DDPO run's, else 1.0)")
    run = " (default: the DDPO run's, from --lora's ddpo_summary.json, else %s)"
    p.add_argument(
        "--reward-mode", default=None, choices=["score", "generate"], help="how the classifier is read" + run % "score"
    )
    p.add_argument(
        "--reward-weights", default=None, help="per-kind weights, e.g. 'awkward_facial_expression=2'" + run % "all 1"
    )
    p.add_argument(
        "--reward-soft",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="score mode: kind probabilities in the reward" + run % "hard labels",
    )
    p.add_argument(
        "--reward-constrained",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="score mode: constrained decoding (no answer counts as unparsable)" + run % "off",
    )
    p.add_argument(
        "--reward-temperature",
        type=float,
        default=None,
        help="score mode with --reward-soft: temperature (> 0) of the kind probabilities; > 1 softer" + run % "1",
    )
    p.add_argument(
        "--reward-follow-lines",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="score mode: read every answer line (labels-mode classifiers), not only the first in one pass"
        + run % "off",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")

    def run(args: argparse.Namespace) -> int:
        metrics = evaluate_generator(
            base=args.base,
            lora=args.lora,
            classifier=args.classifier,
            prompts=args.prompts,
            seeds=args.seeds,
            out=args.out,
            num_inference_steps=args.num_inference_steps,
            guidance_scale=args.guidance_scale,
            eta=args.eta,
            num_prompts=args.num_prompts,
            images_per_prompt=args.images_per_prompt,
            prompt_split=args.prompt_split,
            reward_mode=args.reward_mode,
            reward_weights=args.reward_weights,
            reward_soft=args.reward_soft,
            reward_constrained=args.reward_constrained,
            reward_temperature=args.reward_temperature,
            reward_follow_lines=args.reward_follow_lines,
            overwrite=args.overwrite,
            device=args.device,
        )
        for key in ("base", "refined", "delta"):
            if key in metrics:
                print(
                    f"{key}: mean reward {metrics[key]['mean_reward']:.4f} (std over seeds {metrics[key]['std']:.4f})"
                )
        print(f"wrote {Path(args.out) / 'report.md'}")
        return 0

    p.set_defaults(func=run)
    return p
