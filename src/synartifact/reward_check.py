"""``synartifact reward-check``: does the reward prefer an image without an artifact to the same image with one?

``synartifact reward-check --reward CLASSIFIER --dataset DIR_OR_ID [--split test] --out DIR`` takes the clean
images of a held-out split (rows without artifacts), injects one artifact of each kind the synthesizer makes into
each (:func:`synartifact.data.synth.inject_artifact`: the same photo, crop and size, pixels changed only inside the
artifact's box) and counts how often the reward ranks the clean image higher; a tie counts half, so a reward that
cannot tell the two apart scores 0.5. A reward that DDPO can trust to steer a generator away from a kind scores
well above 0.5 on that kind; one near or below 0.5 is a reward the generator can satisfy without removing the
artifact. Writes ``DIR/metrics.json`` (``{"pair_accuracy", "per_kind", "n_pairs", ...}``), ``DIR/per_kind.png``,
``DIR/examples.png`` and ``DIR/report.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from synartifact.data.synth import SYNTH_KINDS, inject_artifact
from synartifact.taxonomy import SLUGS, get_kind
from synartifact.utils import atomic_dir

__all__ = ["RewardPair", "add_cli", "build_reward_pairs", "pair_accuracy", "parse_kinds", "run_reward_check"]

logger = logging.getLogger(__name__)

# Fewer clean images than this and the per-kind accuracies are too rough to compare kinds (10 images: +-0.15).
MIN_CLEAN_IMAGES = 20


@dataclass(frozen=True)
class RewardPair:
    """One held-out image without artifacts and the same image with one injected artifact of ``kind``."""

    image_id: str
    kind: str
    clean: Image.Image
    injected: Image.Image
    box: tuple[int, int, int, int]
    caption: str


def parse_kinds(kinds: str | Sequence[str] | None) -> tuple[str, ...]:
    """Synthesizable kinds (slugs) from ``"a,b"`` or a list of slugs/names; ``None`` or ``"synth"``: all of them."""
    if kinds is None or kinds == "synth" or kinds == "":
        return SYNTH_KINDS
    items = [k.strip() for k in kinds.split(",")] if isinstance(kinds, str) else [str(k).strip() for k in kinds]
    slugs: list[str] = []
    for item in filter(None, items):
        try:
            slug = get_kind(item).slug
        except (KeyError, ValueError):
            slug = item
        if slug not in SYNTH_KINDS:
            raise ValueError(
                f"--kinds: {item!r} cannot be injected; the synthesizable kinds are {', '.join(SYNTH_KINDS)}."
            )
        if slug not in slugs:
            slugs.append(slug)
    if not slugs:
        raise ValueError(f"--kinds is empty: choose some of {', '.join(SYNTH_KINDS)}.")
    return tuple(slugs)


def _is_clean(row: Mapping[str, Any]) -> bool:
    # an artifact described without a box ("other artifacts") still makes the image unclean
    return not row.get("artifacts") and not (row.get("other_artifacts_caption") or "").strip()


def _clean_rows(dataset: Any, max_images: int | None) -> tuple[list[Mapping[str, Any]], int]:
    """The rows without artifacts (at most ``max_images``) and how many rows were looked at."""
    if hasattr(dataset, "column_names") and hasattr(dataset, "select"):
        # read the annotation columns only: no image is decoded for the rows left out
        columns = [c for c in ("artifacts", "other_artifacts_caption") if c in dataset.column_names]
        meta = dataset.select_columns(columns).to_list()
        keep = [i for i, row in enumerate(meta) if _is_clean(row)]
        keep = keep[:max_images] if max_images is not None else keep
        return list(dataset.select(keep)), len(meta)
    rows = list(dataset)
    clean = [row for row in rows if _is_clean(row)]
    return (clean[:max_images] if max_images is not None else clean), len(rows)


def build_reward_pairs(
    dataset: Any,
    kinds: Sequence[str] | str | None = None,
    seed: int = 0,
    max_images: int | None = None,
) -> tuple[list[RewardPair], dict[str, Any]]:
    """Pairs (clean image, the same image with one artifact of a kind) for every clean row and every kind.

    ``dataset`` is a ``datasets.Dataset`` split or an iterable of rows with ``image`` and ``artifacts``; only rows
    without artifacts are used, at most ``max_images`` of them in order. The artifact of pair (image ``i``,
    ``kind``) is drawn from ``numpy.random.default_rng([seed, i, kind index])`` alone. Returns the pairs and a
    summary: ``n_rows``, ``n_clean_images``, ``per_kind_n`` and ``per_kind_skipped`` (a kind that cannot apply to
    an image, e.g. nothing to omit on a flat area, gives no pair for it).
    """
    kinds = parse_kinds(kinds)
    if max_images is not None and int(max_images) < 1:
        raise ValueError(f"max_images must be at least 1, got {max_images}.")
    rows, n_rows = _clean_rows(dataset, max_images)
    pairs: list[RewardPair] = []
    made = dict.fromkeys(kinds, 0)
    skipped = dict.fromkeys(kinds, 0)
    for i, row in enumerate(rows):
        image = row["image"]
        if not isinstance(image, Image.Image):
            from synartifact.images import to_rgb

            image = to_rgb(image, row.get("image_id", i))
        clean = image.convert("RGB")
        image_id = str(row.get("image_id", i))
        for kind in kinds:
            rng = np.random.default_rng([int(seed), i, get_kind(kind).index])
            result = inject_artifact(clean, kind, rng)
            if result is None:
                skipped[kind] += 1
                continue
            injected, box, caption = result
            pairs.append(RewardPair(image_id, kind, clean, injected, box, caption))
            made[kind] += 1
    info = {"n_rows": n_rows, "n_clean_images": len(rows), "per_kind_n": made, "per_kind_skipped": skipped}
    return pairs, info


def _score(reward: Any, images: list[Image.Image]) -> tuple[list[float], list[set[str] | None], list[bool]]:
    """Rewards, the kinds found (``None`` when the reward cannot tell) and unparsable flags of ``images``."""
    if not images:
        return [], [], []
    if hasattr(reward, "details"):
        rows = reward.details(images)
        return (
            [float(r["reward"]) for r in rows],
            [set(r["kinds"]) for r in rows],
            [bool(r["unparsable"]) for r in rows],
        )
    values = [float(v) for v in reward.score_images(images)]
    return values, [None] * len(values), [False] * len(values)


def pair_accuracy(reward: Any, pairs: Sequence[RewardPair]) -> dict[str, Any]:
    """How often ``reward`` scores the clean image of a pair above the injected one (a tie counts half).

    ``reward`` has ``score_images(images) -> list[float]`` (and optionally ``details(images)``, as
    :class:`~synartifact.reward.ArtifactReward` does, which adds how often the injected kind itself is named).
    Each clean image is scored once however many pairs share it. Returns ``pair_accuracy``, ``per_kind``,
    ``n_pairs``, ``per_kind_n``, ``ties``, ``per_kind_ties``, ``mean_reward_clean``, ``per_kind_mean_reward``
    (injected images), ``per_kind_named`` (or ``None``), ``clean_flagged_rate`` and ``unparsable_rate``.
    """
    if not pairs:
        raise ValueError("No pairs to score: the split has no clean image, or no kind could be injected.")
    cleans: dict[int, int] = {}
    clean_images: list[Image.Image] = []
    for pair in pairs:
        if id(pair.clean) not in cleans:
            cleans[id(pair.clean)] = len(clean_images)
            clean_images.append(pair.clean)
    clean_scores, clean_kinds, clean_bad = _score(reward, clean_images)
    injected_scores, injected_kinds, injected_bad = _score(reward, [p.injected for p in pairs])
    if len(clean_scores) != len(clean_images) or len(injected_scores) != len(pairs):
        raise ValueError("The reward returned a different number of scores than images it was given.")
    kinds = list(dict.fromkeys(p.kind for p in pairs))
    wins = {k: 0.0 for k in kinds}
    ties = dict.fromkeys(kinds, 0)
    counts = dict.fromkeys(kinds, 0)
    named = dict.fromkeys(kinds, 0)
    rewards = {k: [] for k in kinds}
    for pair, value, found in zip(pairs, injected_scores, injected_kinds):
        clean = clean_scores[cleans[id(pair.clean)]]
        counts[pair.kind] += 1
        rewards[pair.kind].append(value)
        if clean > value:
            wins[pair.kind] += 1.0
        elif clean == value:
            wins[pair.kind] += 0.5
            ties[pair.kind] += 1
        named[pair.kind] += int(found is not None and pair.kind in found)
    knows_kinds = all(found is not None for found in injected_kinds)
    n = len(pairs)
    return {
        "pair_accuracy": sum(wins.values()) / n,
        "per_kind": {k: wins[k] / counts[k] for k in kinds},
        "n_pairs": n,
        "per_kind_n": counts,
        "ties": sum(ties.values()),
        "per_kind_ties": ties,
        "mean_reward_clean": float(np.mean(clean_scores)),
        "per_kind_mean_reward": {k: float(np.mean(rewards[k])) for k in kinds},
        "per_kind_named": {k: named[k] / counts[k] for k in kinds} if knows_kinds else None,
        "clean_flagged_rate": float(np.mean([bool(f) for f in clean_kinds])) if knows_kinds else None,
        "unparsable_rate": (sum(clean_bad) + sum(injected_bad)) / (len(clean_bad) + len(injected_bad)),
    }


def _training_split(reward_source: Any, dataset: Any) -> str | None:
    """The split of ``dataset`` the classifier was fine-tuned on (its ``sft_run.json``), or None if not this data."""
    if not isinstance(reward_source, (str, os.PathLike)) or not isinstance(dataset, (str, os.PathLike)):
        return None
    from synartifact.classifier.loading import read_classifier_config

    try:
        config = read_classifier_config(os.fspath(reward_source))
    except (OSError, ValueError):
        return None
    trained_on = config.get("dataset")
    if not trained_on or not Path(trained_on).is_dir() or not Path(dataset).is_dir():
        return None
    if Path(trained_on).resolve() != Path(dataset).resolve():
        return None
    return str(config.get("train_split") or "train")


def _kinds_in(splits: Any, split: str | None) -> list[str] | None:
    """The kinds annotated in ``splits[split]`` (None when there is no such split)."""
    if split is None or not isinstance(splits, Mapping) or split not in splits:
        return None
    labels = {a["label"] for arts in splits[split].select_columns(["artifacts"])["artifacts"] for a in arts}
    return [SLUGS[i] for i in sorted(labels) if i >= 0]  # -1: a kind-less artifact names no kind


def _plot_per_kind(metrics: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(metrics["per_kind"])
    values = [metrics["per_kind"][k] for k in kinds]
    trained = metrics.get("kinds_trained")
    colours = ["#4c72b0" if trained is None or k in trained else "#bbbbbb" for k in kinds]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.7 * len(kinds) + 1.5), 3.6))
    bars = ax.bar(range(len(kinds)), values, color=colours)
    ax.axhline(0.5, color="#c44e52", linestyle="--", linewidth=1, label="chance (0.5)")
    ax.axhline(
        metrics["pair_accuracy"], color="#333333", linewidth=1, label=f"all pairs ({metrics['pair_accuracy']:.2f})"
    )
    for bar, kind in zip(bars, kinds):
        ax.text(
            bar.get_x() + bar.get_width() / 2,
            bar.get_height() + 0.01,
            f"n={metrics['per_kind_n'][kind]}",
            ha="center",
            va="bottom",
            fontsize=6,
        )
    ax.set_xticks(range(len(kinds)))
    ax.set_xticklabels(kinds, rotation=40, ha="right", fontsize=7)
    ax.set_ylim(0, 1.25)
    ax.set_ylabel("pair accuracy (clean ranked higher)")
    title = "Reward pair accuracy per injected kind"
    ax.set_title(title + (" (grey: kind not in training data)" if trained is not None else ""), fontsize=9)
    ax.legend(fontsize=7, loc="upper right", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_examples(pairs: Sequence[RewardPair], path: Path) -> None:
    """The first clean image and its injected versions, one per kind, boxes outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    first = [p for p in pairs if p.image_id == pairs[0].image_id]
    fig, axes = plt.subplots(1, len(first) + 1, figsize=(1.5 * (len(first) + 1), 1.9), squeeze=False)
    panels = [(first[0].clean, "clean", None)] + [(p.injected, p.kind, p.box) for p in first]
    for ax, (image, title, box) in zip(axes[0], panels):
        ax.imshow(image)
        ax.set_title(title.replace("_", "\n", 1), fontsize=6)
        ax.set_xticks([])
        ax.set_yticks([])
        if box is not None:
            x0, y0, x1, y1 = box
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color="red", linewidth=0.8))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _report_md(metrics: Mapping[str, Any]) -> str:
    settings = metrics["reward"]
    lines = [
        "# Reward check: clean vs injected pairs",
        "",
        f"- reward: `{metrics['config']['reward']}` (mode `{settings['mode']}`, soft {settings['soft']}, "
        f"constrained {settings['constrained']})",
        f"- dataset: `{metrics['config']['dataset']}`, split `{metrics['config']['split']}`: "
        f"{metrics['n_clean_images']} clean images of {metrics['n_rows']} rows, seed {metrics['config']['seed']}",
        "",
        "Each clean image of the split is paired with the same image carrying one injected artifact per kind. Pair "
        "accuracy: the share of pairs where the reward scores the clean image higher, a tie counting half "
        "(0.5: the reward cannot tell them apart).",
        "",
        f"**Pair accuracy: {metrics['pair_accuracy']:.3f}** over {metrics['n_pairs']} pairs ({metrics['ties']} ties).",
        "",
    ]
    for warning in metrics.get("warnings", []):
        lines += [f"> Warning: {warning}", ""]
    named = metrics.get("per_kind_named")
    trained = metrics.get("kinds_trained")
    header = "| kind | pairs | pair accuracy | ties | mean reward (injected) |"
    rule = "|---|---:|---:|---:|---:|"
    if named is not None:
        header += " kind named |"
        rule += "---:|"
    if trained is not None:
        header += " in training data |"
        rule += "---|"
    lines += [header, rule]
    for kind, value in metrics["per_kind"].items():
        row = (
            f"| {kind} | {metrics['per_kind_n'][kind]} | {value:.3f} | {metrics['per_kind_ties'][kind]} | "
            f"{metrics['per_kind_mean_reward'][kind]:.3f} |"
        )
        if named is not None:
            row += f" {named[kind]:.3f} |"
        if trained is not None:
            row += f" {'yes' if kind in trained else 'no'} |"
        lines.append(row)
    lines += [
        "",
        f"Mean reward of the clean images: {metrics['mean_reward_clean']:.3f}"
        + (
            f"; share of clean images where the classifier finds an artifact: {metrics['clean_flagged_rate']:.3f}"
            if metrics.get("clean_flagged_rate") is not None
            else ""
        )
        + f"; unparsable answers: {metrics['unparsable_rate']:.3f}.",
        "",
        "![pair accuracy per kind](per_kind.png)",
        "",
        "![a clean image and its injected versions](examples.png)",
        "",
    ]
    return "\n".join(lines)


def run_reward_check(
    reward: Any,
    dataset: Any,
    out: str | Path,
    split: str = "test",
    max_images: int | None = None,
    kinds: Sequence[str] | str | None = None,
    seed: int = 0,
    overwrite: bool = False,
    device: str | None = None,
    **reward_options: Any,
) -> dict[str, Any]:
    """Pair accuracy of ``reward`` on the clean images of ``dataset``'s ``split``; writes ``out`` and returns metrics.

    ``reward`` is a classifier folder or Hub id, an ``ArtifactClassifier`` or an ``ArtifactReward`` (then the
    ``reward_*`` settings must be left at ``None``); ``dataset`` a dataset folder, Hub id, ``DatasetDict`` or split.
    ``reward_options``: the reward settings by their script names (:data:`synartifact.reward.REWARD_SETTINGS`, e.g.
    ``reward_mode="score", reward_soft=True``); unset ones keep ArtifactReward's defaults.
    """
    from synartifact.reward import ArtifactReward, check_reward_options, reward_settings

    check_reward_options(reward_options, "run_reward_check")

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists: choose another output folder or pass --overwrite.")
    kinds = parse_kinds(kinds)
    settings = reward_settings(reward_options)
    if isinstance(reward, ArtifactReward):
        if settings:
            raise ValueError(f"reward is an ArtifactReward already: set {sorted(settings)} on it, not here.")
        scorer = reward
    else:
        scorer = ArtifactReward(reward, device=device, **settings)

    if isinstance(dataset, (str, os.PathLike)):
        from synartifact.data import load_artifact_dataset

        splits = load_artifact_dataset(os.fspath(dataset))
    else:
        splits = dataset
    rows = splits
    if isinstance(splits, Mapping):  # a DatasetDict
        if split not in splits:
            raise ValueError(
                f"Dataset {dataset} has no split {split!r}: its splits are {', '.join(map(str, splits))}."
            )
        rows = splits[split]
    pairs, info = build_reward_pairs(rows, kinds=kinds, seed=seed, max_images=max_images)
    if info["n_clean_images"] == 0:
        raise ValueError(
            f"Split {split!r} of {dataset} has no clean image (a row without artifacts) among its {info['n_rows']} "
            "rows: pairs need clean photos. Use a split with some, or synthesize a dataset with a larger "
            "clean fraction (`synartifact dataset synth --clean-fraction`)."
        )
    warnings = []
    train_split = _training_split(reward, dataset)
    if train_split == split:
        warnings.append(
            f"the classifier was fine-tuned on split {split!r} of this dataset: these images are not held out."
        )
    if info["n_clean_images"] < MIN_CLEAN_IMAGES:
        warnings.append(
            f"only {info['n_clean_images']} clean images in split {split!r}: each kind's accuracy rests on at most "
            f"{info['n_clean_images']} pairs and is rough (at least {MIN_CLEAN_IMAGES} are advised)."
        )
    metrics = pair_accuracy(scorer, pairs)
    if metrics["unparsable_rate"] > 0.5:
        warnings.append(
            f"{metrics['unparsable_rate']:.0%} of the classifier's answers are unparsable: they all get the same "
            "reward, so their pairs are ties, not judgements."
        )
    for warning in warnings:
        logger.warning(warning)
    metrics.update(
        n_rows=info["n_rows"],
        n_clean_images=info["n_clean_images"],
        per_kind_skipped=info["per_kind_skipped"],
        kinds_trained=_kinds_in(splits, train_split),
        warnings=warnings,
        reward={
            "mode": scorer.mode,
            "soft": scorer.soft,
            "constrained": scorer.constrained,
            "temperature": scorer.temperature,
            "follow_lines": scorer.follow_lines,
            "unparsable_reward": scorer.unparsable_reward,
            "weights": scorer.weights,
        },
        config={
            "reward": os.fspath(reward) if isinstance(reward, (str, os.PathLike)) else type(reward).__name__,
            "dataset": os.fspath(dataset) if isinstance(dataset, (str, os.PathLike)) else type(dataset).__name__,
            "split": split,
            "max_images": max_images,
            "kinds": list(kinds),
            "seed": int(seed),
        },
    )
    if not math.isfinite(metrics["pair_accuracy"]):
        raise RuntimeError(f"The pair accuracy is not finite: check the reward {reward}.")
    with atomic_dir(out, overwrite=overwrite) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        _plot_per_kind(metrics, tmp / "per_kind.png")
        _plot_examples(pairs, tmp / "examples.png")
        (tmp / "report.md").write_text(_report_md(metrics))
    return metrics


def _as_list(values: Iterable[str] | None) -> str:
    return ", ".join(values) if values else "-"


def add_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``synartifact reward-check``."""
    from synartifact.reward import add_reward_arguments, reward_arguments

    p = subparsers.add_parser(
        "reward-check",
        help="how often the reward prefers a clean held-out image to the same image with an injected artifact",
        description="Pairs each clean image of a held-out split with the same image carrying one injected artifact "
        "per kind and counts how often the reward ranks the clean one higher (ties count half; 0.5 is chance). "
        "Writes DIR/metrics.json, DIR/per_kind.png, DIR/examples.png and DIR/report.md.",
    )
    p.add_argument("--reward", required=True, help="artifact classifier folder or Hub id (the reward's classifier)")
    p.add_argument("--dataset", required=True, help="dataset folder or Hub id (its clean rows are used)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--split", default="test", help="held-out split whose clean images are used (default: test)")
    p.add_argument("--max-images", type=int, default=None, help="use at most the first N clean images")
    p.add_argument(
        "--kinds",
        default=None,
        help=f"comma-separated kinds to inject (default: all the synthesizer makes: {', '.join(SYNTH_KINDS)})",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the injected artifacts (default: 0)")
    add_reward_arguments(p)
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")

    def run(args: argparse.Namespace) -> int:
        metrics = run_reward_check(
            reward=args.reward,
            dataset=args.dataset,
            out=args.out,
            split=args.split,
            max_images=args.max_images,
            kinds=args.kinds,
            seed=args.seed,
            **reward_arguments(args),
            overwrite=args.overwrite,
            device=args.device,
        )
        print(f"pair accuracy {metrics['pair_accuracy']:.3f} over {metrics['n_pairs']} pairs ({metrics['ties']} ties)")
        weak = [k for k, v in metrics["per_kind"].items() if v <= 0.5]
        print(f"kinds at or below chance: {_as_list(weak)}")
        print(f"wrote {Path(args.out) / 'report.md'}")
        return 0

    p.set_defaults(func=run)
    return p
