"""Compare a base and a refined (DDPO LoRA) generator by the artifact classifier's reward.

``synartifact evaluate-generator --base DIR_OR_ID [--lora DIR] --classifier DIR_OR_ID --prompts FILE_OR_DATASET
--seeds 0 1 2 --out DIR``: the same prompts and the same seeds (one ``torch.Generator`` per image, seeded from the
seed and the prompt's position) through the base pipeline and through base + ``load_lora_weights(lora)``; per
generator the mean reward, the rate of each artifact kind, the mean reward of each seed and their spread (sample
standard deviation of the per-seed means); the difference refined - base with the spread of the per-seed
differences. Writes ``DIR/metrics.json``, ``DIR/report.md`` and ``DIR/before_after.png``.

``--judge DIR_OR_ID`` adds an independent classifier that scores the very same images (generated once) with hard
labels: ``metrics.json`` then holds ``judge`` (``base``/``refined``/``delta`` as for the reward, and ``config``)
and both gains in units of the seed spread (``reward_gain_in_spread``, ``judge_gain_in_spread``). A gain under the
training reward that the judge does not confirm means the generator learned to please the reward's classifier.
``--judge-eval FILE`` gives the judge's own test metrics (``synartifact evaluate``'s ``metrics.json``): its strength
goes to ``judge.strength``. ``fidelity`` says whether the refined samples still show their prompts
(:mod:`~synartifact.generator.fidelity`), and ``verdict`` weighs every target in one computed verdict
(:mod:`~synartifact.generator.verdict`): confirmed, not confirmed or inconclusive, with its reasons.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synartifact.generator.fidelity import content_fidelity, save_fidelity_figure
from synartifact.generator.guards import measure_drift
from synartifact.generator.sampling import (
    held_out_prompts,
    load_prompts,
    sample_images,
    save_image_grid,
    to_device_pipeline,
)
from synartifact.generator.verdict import assess_judge, compute_verdict, verdict_markdown
from synartifact.taxonomy import SLUGS
from synartifact.utils import atomic_dir

__all__ = [
    "load_prompts",
    "sample_images",
    "score_generator",
    "sample_and_score",
    "evaluate_generator",
    "add_cli",
    "save_image_grid",
    "save_drift_figure",
]

logger = logging.getLogger(__name__)

# Per-seed means that differ only by float rounding have a spread of ~1e-17, which would turn any gain into "many
# spreads": below this the spread counts as 0 and the gain is not weighed.
SPREAD_EPSILON = 1e-9


def _stats(details_by_seed: Sequence[Sequence[Mapping[str, Any]]]) -> dict:
    """Mean reward, per-kind and any-artifact rates, per-seed means and their spread from per-seed ``details``."""
    rewards_all, per_seed, counts, unparsable, flagged = [], [], dict.fromkeys(SLUGS, 0), 0, 0
    for details in details_by_seed:
        values = [d["reward"] for d in details]
        for d in details:
            for kind in d["kinds"]:
                counts[kind] += 1
            unparsable += int(d["unparsable"])
            flagged += int(bool(d["kinds"]))
        rewards_all += values
        per_seed.append(float(np.mean(values)))
    n = max(1, len(rewards_all))
    return {
        "mean_reward": float(np.mean(rewards_all)) if rewards_all else float("nan"),
        "per_kind_rate": {k: v / n for k, v in counts.items()},
        # the share of images in which at least one artifact is found (an unparsable answer finds none)
        "artifact_rate": flagged / n,
        "per_seed_mean": per_seed,
        "std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0,
        "num_images": len(rewards_all),
        "unparsable_rate": unparsable / n,
    }


def sample_and_score(
    pipe: Any,
    scorers: Mapping[str, Any],
    prompts: Sequence[str],
    seeds: Sequence[int],
    num_inference_steps: int = 20,
    guidance_scale: float = 5.0,
    eta: float = 1.0,
) -> tuple[dict[str, dict], dict[int, list[tuple[Any, dict[str, float]]]]]:
    """Sample each seed's images once and score the same images with every scorer (``{name: ArtifactReward}``).

    Returns ``{name: stats}`` (as :func:`score_generator`'s) and, per seed, ``[(image, {name: reward}), ...]``.
    """
    details: dict[str, list] = {name: [] for name in scorers}
    images_by_seed: dict[int, list] = {}
    for seed in seeds:
        images = sample_images(pipe, prompts, seed, num_inference_steps, guidance_scale, eta)
        scored = {name: scorer.details(images) for name, scorer in scorers.items()}
        for name, rows in scored.items():
            details[name].append(rows)
        images_by_seed[int(seed)] = [
            (image, {name: rows[i]["reward"] for name, rows in scored.items()}) for i, image in enumerate(images)
        ]
    return {name: _stats(rows) for name, rows in details.items()}, images_by_seed


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
    stats, images = sample_and_score(
        pipe, {"reward": reward}, prompts, seeds, num_inference_steps, guidance_scale, eta
    )
    return stats["reward"], {seed: [(im, v["reward"]) for im, v in rows] for seed, rows in images.items()}


def _delta(base: dict, refined: dict) -> dict:
    per_seed = [b - a for a, b in zip(base["per_seed_mean"], refined["per_seed_mean"])]
    return {
        "mean_reward": refined["mean_reward"] - base["mean_reward"],
        "per_kind_rate": {k: refined["per_kind_rate"][k] - base["per_kind_rate"][k] for k in SLUGS},
        "artifact_rate": refined["artifact_rate"] - base["artifact_rate"],
        "per_seed_mean": per_seed,
        "std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0,
        # the gain in units of the larger seed-to-seed spread of the mean reward (> 2: a gain beyond seed noise)
        "gain_over_spread": (refined["mean_reward"] - base["mean_reward"]) / spread
        if (spread := max(base["std"], refined["std"])) > SPREAD_EPSILON
        else None,
    }


def _in_spread(value: float | None) -> str:
    return f"{value:+.2f}" if value is not None else "n/a (no spread: one seed?)"


def _report_md(metrics: dict) -> str:
    config = metrics["config"]
    judge = metrics.get("judge")
    lines = [
        "# Generator evaluation: base vs refined",
        "",
        f"- base: `{config['base']}`",
        f"- LoRA: `{config['lora']}`",
        f"- classifier (training reward): `{config['classifier']}` (reward mode `{config['reward_mode']}`, "
        f"soft {config.get('reward_soft', False)}, temperature {config.get('reward_temperature', 1.0)}, "
        f"follow lines {config.get('reward_follow_lines', False)})",
    ]
    if judge is not None:
        jc = judge["config"]
        lines.append(
            f"- judge: `{jc['classifier']}` (mode `{jc['mode']}`, hard labels"
            + (
                ""
                if jc["independent"]
                else "; the SAME classifier as the reward (same folder or weights), so not independent"
            )
            + "), scoring the same images"
        )
    lines += [
        f"- {config['num_prompts']} prompts x {config.get('images_per_prompt', 1)} images x "
        f"seeds {config['seeds']}, {config['num_inference_steps']} steps, guidance {config['guidance_scale']}",
        "",
        "Reward = 1 - weighted share of artifact kinds the classifier finds (1: none found). Artifact rate: the "
        "share of images in which at least one artifact is found. Spread: sample standard deviation of the "
        "per-seed mean rewards.",
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
    sides = [("training reward", metrics)] + ([("judge", judge)] if judge is not None else [])
    parts = [p for p in ("base", "refined") if p in metrics]
    if judge is not None:
        lines += [
            "",
            "## Training reward vs independent judge",
            "",
            "| | " + " | ".join(name for name, _ in sides) + " |",
            "|---" + "|---:" * len(sides) + "|",
        ]
        for part in parts:
            lines.append(
                f"| {part} mean reward | " + " | ".join(f"{s[part]['mean_reward']:.3f}" for _, s in sides) + " |"
            )
        if "delta" in metrics:
            lines.append(
                "| gain (refined - base) | " + " | ".join(f"{s['delta']['mean_reward']:+.3f}" for _, s in sides) + " |"
            )
            gains = (metrics["reward_gain_in_spread"], metrics["judge_gain_in_spread"])
            lines.append("| gain / seed spread | " + " | ".join(_in_spread(g) for g in gains) + " |")
        for part in parts:
            lines.append(
                f"| {part} artifact rate | " + " | ".join(f"{s[part]['artifact_rate']:.3f}" for _, s in sides) + " |"
            )
        for part in parts:
            lines.append(
                f"| {part} unparsable | " + " | ".join(f"{s[part]['unparsable_rate']:.3f}" for _, s in sides) + " |"
            )
        strength = judge.get("strength") or {}
        if strength:
            lines += [
                "",
                f"Judge strength on its own test data ({strength.get('source') or 'not given'}): binary F1 "
                + (f"{strength['binary_f1']:.3f}" if strength.get("binary_f1") is not None else "n/a")
                + f" (needed: {strength['binary_f1_min']}); "
                + (
                    "strong enough to judge."
                    if strength.get("strong")
                    else f"not strong enough to judge: {strength.get('why', '')}."
                ),
            ]
        unread = max(judge[p]["unparsable_rate"] for p in parts)
        if unread > 0.5:
            lines += [
                "",
                f"> Warning: up to {unread:.0%} of the judge's answers are unparsable (they count as reward "
                f"{judge['config'].get('unparsable_reward', 0.0)} and no artifact): its figures say little. Use a "
                "judge that follows the answer format (a fine-tuned classifier).",
            ]
    header = ["kind"] + [f"{name}: {part}" for name, _ in sides for part in parts]
    if "refined" in metrics:
        header += [f"{name}: difference" for name, _ in sides]
    lines += ["", "Artifact rate per kind (share of images in which the kind is found):", ""]
    lines += ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for slug in [*SLUGS, "any artifact"]:
        cells = []
        for _, side in sides:
            for part in parts:
                rate = side[part]["artifact_rate"] if slug == "any artifact" else side[part]["per_kind_rate"][slug]
                cells.append(f"{rate:.3f}")
        if "refined" in metrics:
            for _, side in sides:
                diff = (
                    side["delta"]["artifact_rate"] if slug == "any artifact" else side["delta"]["per_kind_rate"][slug]
                )
                cells.append(f"{diff:+.3f}")
        lines.append(f"| {slug} | " + " | ".join(cells) + " |")
    drift = metrics.get("drift")
    if drift:
        relative, ratio = drift.get("relative_drift"), drift.get("noise_ratio")
        lines += [
            "",
            "## Drift: did the samples move away from the base model, or into noise?",
            "",
            f"Pixel MSE between each refined sample and the base sample of the same prompt and noise: "
            f"{drift['mean_mse']:.4f}; an independent base sample of the same prompt lies "
            + (f"{drift['seed_to_seed_mse']:.4f} away" if drift.get("seed_to_seed_mse") is not None else "n/a away")
            + (f", so the drift is {relative:.2f} x that" if relative is not None else "")
            + ". Fine-detail energy (mean |neighbour difference|): base "
            f"{drift['high_frequency']['base']['mean']:.4f}, refined {drift['high_frequency']['refined']['mean']:.4f}"
            + (f" (ratio {ratio:.2f}: > 1.5 would mean the samples turned noisy)." if ratio is not None else "."),
            "",
            "![drift](drift.png)",
        ]
    fidelity = metrics.get("fidelity")
    if fidelity:
        lines += [
            "",
            "## Content fidelity: do the samples still show their prompts?",
            "",
            _fidelity_sentence(fidelity),
        ]
        if fidelity.get("per_prompt"):
            lines += ["", "![content fidelity](fidelity.png)"]
    lines += ["", "![before and after](before_after.png)", ""]
    if metrics.get("verdict"):
        lines += verdict_markdown(metrics["verdict"], heading="Verdict") + [""]
    return "\n".join(lines)


def _fidelity_sentence(fidelity: Mapping[str, Any]) -> str:
    """What :func:`~synartifact.generator.fidelity.content_fidelity` found, in one paragraph (figures from it)."""
    text = (
        f"A recognizer built from the base model's own samples ({fidelity['thumbnail']} x {fidelity['thumbnail']} "
        "colour thumbnails, one prototype per prompt, the sample of the same noise left out) names the prompt of "
        "each sample. "
    )
    if fidelity.get("base_recognized") is None:
        return text + f"Not measurable: {fidelity.get('why_not_measurable', '')}."
    value = fidelity.get("fidelity")
    text += (
        f"It recognizes {fidelity['base_recognized']:.3f} of the base samples and {fidelity['refined_recognized']:.3f} "
        f"of the refined ones (chance {fidelity['chance']:.3f}): fidelity "
        + (f"{value:.3f}" if value is not None else "n/a")
        + f" (kept at {fidelity['threshold']} or above)"
    )
    if not fidelity.get("measurable"):
        return text + f"; not measurable: {fidelity.get('why_not_measurable', '')}."
    noise = (
        f" ({fidelity['lost']} samples recognized before and not after, {fidelity['gained']} the other way; a loss "
        "within twice its counting noise is kept)"
        if "lost" in fidelity
        else ""
    )
    return text + noise + (": content kept." if fidelity.get("kept") else ": the refined samples lost their content.")


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


def _classifier_source(model: Any) -> Any:
    """What a classifier was loaded from (a resolved local path or a Hub id), to tell two classifiers apart."""
    model = getattr(model, "classifier", model)  # an ArtifactReward's classifier
    name = model if isinstance(model, (str, os.PathLike)) else getattr(model, "name_or_path", None)
    if name is None:
        return id(model)
    path = Path(os.fspath(name)).expanduser()
    return str(path.resolve()) if path.exists() else os.fspath(name)


# the files a model folder keeps its weights in (a LoRA adapter's adapter_model.safetensors among them)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def _same_weight_files(first: Path, second: Path) -> bool:
    """Whether two model folders hold the same weight files byte for byte (a copied folder), whatever their names:
    the files' sizes are compared first, then their contents, stopping at the first differing byte (cheap for two
    different models; two equal ones are read once)."""
    import filecmp

    def files(folder: Path) -> list[Path]:
        found = [p for p in folder.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES)]
        return sorted(found, key=lambda p: (p.stat().st_size, p.name))

    ours, theirs = files(first), files(second)
    if not ours or [p.stat().st_size for p in ours] != [p.stat().st_size for p in theirs]:
        return False
    return all(filecmp.cmp(a, b, shallow=False) for a, b in zip(ours, theirs))


def _same_state_dict(first: Any, second: Any) -> bool:
    """Whether two loaded models have the same parameters and buffers (names, shapes, dtypes and values)."""
    import torch

    ours, theirs = first.state_dict(), second.state_dict()
    if list(ours) != list(theirs):
        return False
    return all(
        a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b.to(a.device))
        for a, b in zip(ours.values(), theirs.values())
    )


def same_classifier(first: Any, second: Any) -> bool:
    """Whether two classifiers (folders/Hub ids, ``ArtifactClassifier`` or ``ArtifactReward`` objects) are the same
    model, decided by content: the same source, two folders with the same weight files (a copy of the reward's
    folder is the reward's classifier), or two loaded models with equal weights. A judge for which this is True
    cannot reveal reward hacking."""
    if _classifier_source(first) == _classifier_source(second):
        return True
    folders = [_classifier_source(x) for x in (first, second)]
    if all(isinstance(f, str) and Path(f).is_dir() for f in folders):
        return _same_weight_files(Path(folders[0]), Path(folders[1]))
    models = [getattr(getattr(x, "classifier", x), "model", None) for x in (first, second)]
    if all(hasattr(m, "state_dict") for m in models):
        return _same_state_dict(*models)
    return False


def _judge_reward(judge: Any, mode: str, classifier: Any, device: str | None) -> tuple[Any, dict]:
    """The judge as an ArtifactReward with hard labels (one given is used as it is), and its ``config``."""
    from synartifact.reward import REWARD_MODES, ArtifactReward

    if mode not in REWARD_MODES:
        raise ValueError(f"Unknown judge mode {mode!r}: valid modes are {', '.join(REWARD_MODES)}.")
    scorer = (
        judge if isinstance(judge, ArtifactReward) else ArtifactReward(judge, mode=mode, soft=False, device=device)
    )
    # by content: a copy of the reward's folder (or a judge loaded with the same weights) is not independent
    independent = not same_classifier(scorer, classifier)
    if not independent:
        logger.warning(
            "The judge is the training reward's own classifier (the same folder, or the same weights): it cannot "
            "reveal reward hacking."
        )
    name = (
        judge
        if isinstance(judge, (str, os.PathLike))
        else getattr(getattr(scorer, "classifier", None), "name_or_path", None)
    )
    config = {
        "classifier": os.fspath(name) if name is not None else type(judge).__name__,
        "mode": scorer.mode,
        "soft": scorer.soft,
        "constrained": scorer.constrained,
        "unparsable_reward": scorer.unparsable_reward,
        "weights": scorer.weights,
        "independent": independent,
    }
    return scorer, config


def save_drift_figure(drift: Mapping[str, Any], path: Path) -> Path:
    """Two panels from :func:`~synartifact.generator.guards.measure_drift`: how far each refined sample lies from the
    base sample of the same prompt and noise, against how far an independent sample of the prompt lies (left); the
    fine-detail energy of base and refined samples, which rises when samples drift into noise (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    values = list(drift["mse"]) + list(drift.get("seed_to_seed") or [])
    bins = np.linspace(0, max(values) * 1.05 if values and max(values) > 0 else 1, 25)
    left.hist(drift["mse"], bins=bins, alpha=0.7, label="refined vs base (same prompt and noise)")
    if drift.get("seed_to_seed"):
        left.hist(drift["seed_to_seed"], bins=bins, alpha=0.5, label="base vs base, another seed")
    left.set_xlabel("pixel MSE (pixels in [0, 1])")
    left.set_ylabel("images")
    relative = drift.get("relative_drift")
    left.set_title(f"drift: {relative:.2f} x an independent sample" if relative is not None else "drift")
    left.legend(fontsize=7)
    hf = drift["high_frequency"]
    right.hist(hf["base"]["per_image"], bins=20, alpha=0.6, label="base")
    right.hist(hf["refined"]["per_image"], bins=20, alpha=0.6, label="refined")
    right.set_xlabel("fine-detail energy (mean |neighbour difference|)")
    ratio = drift.get("noise_ratio")
    right.set_title(f"noise: refined / base = {ratio:.2f}" if ratio is not None else "noise")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _save_before_after(rows: Sequence[tuple[str, Sequence]], path: Path, titles: Sequence[str], metrics: dict) -> Path:
    """The image grid (each image with its training reward and, with a judge, the judge's reward) and a panel of
    the mean rewards before and after, with the spread over seeds as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = max(1, max(len(items) for _, items in rows))
    fig = plt.figure(figsize=(1.6 * ncols + 3.6, max(2.6, 1.9 * len(rows))))
    grid = fig.add_gridspec(len(rows), ncols + 2)
    for r, (label, items) in enumerate(rows):
        for c in range(ncols):
            ax = fig.add_subplot(grid[r, c])
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(items):
                ax.axis("off")
                continue
            image, values = items[c]
            ax.imshow(image)
            ax.set_xlabel(" / ".join(f"{name} {v:.2f}" for name, v in values.items()), fontsize=6)
            if r == 0 and c < len(titles):
                ax.set_title(titles[c][:28], fontsize=6)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    panel = fig.add_subplot(grid[:, ncols:])
    sides = [("training reward", metrics)] + ([("judge", metrics["judge"])] if "judge" in metrics else [])
    parts = [p for p in ("base", "refined") if p in metrics]
    width = 0.8 / len(parts)
    for i, part in enumerate(parts):
        means = [side[part]["mean_reward"] for _, side in sides]
        spreads = [side[part]["std"] for _, side in sides]
        xs = [x + (i - (len(parts) - 1) / 2) * width for x in range(len(sides))]
        panel.bar(xs, means, width, yerr=spreads, capsize=3, label=part, color=("#8c8c8c", "#4c72b0")[i])
    panel.set_xticks(range(len(sides)))
    panel.set_xticklabels([name for name, _ in sides], fontsize=7)
    panel.set_ylim(0, 1.05)
    panel.set_ylabel("mean reward (error bar: std over seeds)", fontsize=7)
    panel.tick_params(labelsize=7)
    panel.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
    overwrite: bool = False,
    device: str | None = None,
    judge: Any = None,
    judge_mode: str = "generate",
    judge_eval: Any = None,
    **reward_options: Any,
) -> dict:
    """Base vs refined generator on the same prompts and seeds; writes metrics.json, report.md, before_after.png.

    ``classifier`` is a folder/Hub id, an ``ArtifactClassifier`` or an ``ArtifactReward``. Returns the metrics dict
    ``{"base": {...}, "refined": {...}, "delta": {...}, "reward_gain_in_spread": float | None,
    "judge_gain_in_spread": float | None, "config": {...}}`` (no refined/delta without ``lora``).
    Sampler and reward settings left at ``None`` are the DDPO run's (``lora``'s ``ddpo_summary.json``): the
    generator is judged by the reward it was trained on unless told otherwise. ``reward_options``: the reward
    settings by their script names (:data:`synartifact.reward.REWARD_SETTINGS`, e.g. ``reward_soft=True``).

    ``judge``: a second, independent classifier (folder/Hub id, ``ArtifactClassifier`` or ``ArtifactReward``) that
    scores the very same images with hard labels (``judge_mode`` ``"generate"``: decoded answers, or ``"score"``);
    its results go to ``metrics["judge"]`` (``base``/``refined``/``delta`` as above, and ``config``). A gain under
    the training reward that the judge does not see is a sign the generator learned to please the reward.
    ``judge_eval``: the judge's own test metrics (``synartifact evaluate``'s ``metrics.json``, its folder or the
    dict); its strength goes to ``metrics["judge"]["strength"]``. With ``lora``, ``metrics["fidelity"]`` (content
    fidelity) and ``metrics["verdict"]`` (:func:`~synartifact.generator.verdict.compute_verdict`) are added.
    """
    from diffusers import StableDiffusionPipeline

    from synartifact.reward import ArtifactReward, check_reward_options, reward_config, reward_settings

    check_reward_options(reward_options, "evaluate_generator")
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
    reward = (
        classifier
        if isinstance(classifier, ArtifactReward)
        else ArtifactReward(classifier, device=device, **reward_settings(reward_options, run.get("script_args", {})))
    )

    scorers = {"reward": reward}
    judge_config = None
    strength = None
    if judge is not None:
        strength = assess_judge(judge, judge_eval)  # before sampling: a wrong --judge-eval fails fast
        scorers["judge"], judge_config = _judge_reward(judge, judge_mode, reward, device)

    from synartifact.hub_access import require_hub

    require_hub(base, "generator")
    pipe = to_device_pipeline(StableDiffusionPipeline.from_pretrained(base, safety_checker=None), device)
    metrics: dict = {}
    judged: dict = {}
    sampler = (num_inference_steps, guidance_scale, eta)
    stats, base_images = sample_and_score(pipe, scorers, sampled, seeds, *sampler)
    metrics["base"] = stats["reward"]
    if judge is not None:
        judged["base"] = stats["judge"]
    step = int(images_per_prompt)
    rows = [("base", base_images[int(seeds[0])][::step])]
    if lora is not None:
        pipe.load_lora_weights(lora, weight_name="pytorch_lora_weights.safetensors")
        stats, refined_images = sample_and_score(pipe, scorers, sampled, seeds, *sampler)
        metrics["refined"] = stats["reward"]
        metrics["delta"] = _delta(metrics["base"], metrics["refined"])
        if judge is not None:
            judged["refined"] = stats["judge"]
            judged["delta"] = _delta(judged["base"], judged["refined"])
        rows.append(("refined", refined_images[int(seeds[0])][::step]))
        base_by_seed = {s: [im for im, _ in ims] for s, ims in base_images.items()}
        refined_by_seed = {s: [im for im, _ in ims] for s, ims in refined_images.items()}
        metrics["drift"] = measure_drift(base_by_seed, refined_by_seed)
        metrics["fidelity"] = content_fidelity(base_by_seed, refined_by_seed, sampled)
    metrics["reward_gain_in_spread"] = metrics["delta"]["gain_over_spread"] if "delta" in metrics else None
    metrics["judge_gain_in_spread"] = judged["delta"]["gain_over_spread"] if "delta" in judged else None
    if judge is not None:
        metrics["judge"] = {**judged, "config": judge_config, "strength": strength}
    metrics["config"] = {
        "base": str(base),
        "lora": str(lora) if lora else None,
        "classifier": str(getattr(classifier, "name_or_path", classifier))
        if not isinstance(classifier, ArtifactReward)
        else "ArtifactReward",
        **reward_config(reward),
        "seeds": [int(s) for s in seeds],
        "num_prompts": len(prompt_list),
        "images_per_prompt": int(images_per_prompt),
        "num_inference_steps": num_inference_steps,
        "guidance_scale": guidance_scale,
        "eta": eta,
        "prompts": prompt_list,
        "judge": judge_config["classifier"] if judge_config else None,
        "judge_mode": judge_config["mode"] if judge_config else None,
    }
    for part in ("base", "refined", "delta"):
        if part in metrics and not math.isfinite(metrics[part]["mean_reward"]):
            raise RuntimeError(f"The {part} mean reward is not finite: check the classifier at {classifier}.")
        if part in judged and not math.isfinite(judged[part]["mean_reward"]):
            raise RuntimeError(f"The judge's {part} mean reward is not finite: check the judge at {judge}.")

    if "delta" in metrics:
        metrics["verdict"] = compute_verdict(metrics)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        _save_before_after(rows, tmp / "before_after.png", prompt_list, metrics)
        if "drift" in metrics:
            save_drift_figure(metrics["drift"], tmp / "drift.png")
        if (metrics.get("fidelity") or {}).get("per_prompt"):
            save_fidelity_figure(metrics["fidelity"], tmp / "fidelity.png")
        (tmp / "report.md").write_text(_report_md(metrics))
    # the refined generator's own card (a `synartifact ddpo` folder) shows the comparison from now on
    from synartifact.cards import record_generator_evaluation

    if record_generator_evaluation(lora, metrics, prompts) is not None:
        logger.info("Added the comparison to the model card in %s", lora)
    return metrics


def add_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``synartifact evaluate-generator``."""
    from synartifact.reward import add_reward_arguments, reward_arguments

    p = subparsers.add_parser(
        "evaluate-generator",
        help="compare a base and a refined generator by the classifier's reward",
        description="Same prompts, same seeds through the base pipeline and base + LoRA: mean reward, artifact "
        "rate per kind, their difference with a spread over seeds, a before/after grid; with --judge the same under an "
        "independent classifier. Writes DIR/metrics.json, "
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
    add_reward_arguments(p, default="the DDPO run's, from --lora's ddpo_summary.json, else ArtifactReward's")
    p.add_argument(
        "--judge",
        default=None,
        help="an independent artifact classifier (folder or Hub id) that scores the same images with hard labels; "
        "a gain the judge does not confirm points at reward hacking",
    )
    p.add_argument(
        "--judge-mode",
        default="generate",
        choices=["generate", "score"],
        help="how the judge reads images: decoded answers (generate, default) or the first answer token (score, "
        "faster); hard labels either way",
    )
    p.add_argument(
        "--judge-eval",
        default=None,
        help="the judge's own test metrics (the metrics.json that `synartifact evaluate` wrote for the judge, or its "
        "folder): a judge weaker than binary F1 0.85 makes the verdict inconclusive (default: the binary F1 from the "
        "judge folder's card record, if any; per-kind F1 then unknown)",
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
            **reward_arguments(args),
            overwrite=args.overwrite,
            device=args.device,
            judge=args.judge,
            judge_mode=args.judge_mode,
            judge_eval=args.judge_eval,
        )
        for name, side in (("reward", metrics), ("judge", metrics.get("judge"))):
            for key in ("base", "refined", "delta"):
                if side is not None and key in side:
                    print(f"{name} {key}: mean {side[key]['mean_reward']:.4f} (std over seeds {side[key]['std']:.4f})")
        if metrics.get("verdict"):
            print(f"verdict: {metrics['verdict']['verdict']}. {metrics['verdict']['summary']}")
        print(f"wrote {Path(args.out) / 'report.md'}")
        return 0

    p.set_defaults(func=run)
    return p
