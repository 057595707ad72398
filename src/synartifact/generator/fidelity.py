"""Content fidelity: do the refined generator's samples still show what their prompts ask for?

A generator can please an artifact classifier by drawing less: a flat blank, or one texture for every prompt, has
no illegible letters and no distorted hands. Pixel distance to the base model's sample (``measure_drift``) does not
catch this on its own: a blank of the image's mean colour lies close to a dim scene, and a detailed but different
picture lies far. What a person checks, looking at a before/after grid, is whether they can still *tell which
prompt* an image was made from. :func:`content_fidelity` measures exactly that, offline and without any model:

- a recognizer is built from the **base** model's own samples: one prototype per prompt, the mean of the prompt's
  base samples as 8 x 8 colour thumbnails (layout and colour: what a person sees at a glance; fine detail, which a
  tiny generator varies from seed to seed, is averaged away);
- each image, base or refined, is recognized as the prompt whose prototype lies nearest; the base sample made from
  the same noise is left out of its prompt's prototype, so a refined sample is never matched against its own
  starting point, and base and refined samples are graded by the very same recognizer;
- ``fidelity`` is the share of refined samples recognized divided by the share of base samples recognized (1: as
  recognizable as the base; a generator that turns every scene into one blank is recognized at chance, 1 / the
  number of prompts). Fidelity is **kept** at :data:`FIDELITY_MIN` or above, or when the loss is within counting
  noise: the samples whose prompt was recognized on the base side and is not on the refined side (``lost``) outnumber
  the opposite ones (``gained``) by no more than twice the standard deviation of that difference under no change
  (McNemar's test on the paired samples, ``lost - gained <= 2 * sqrt(lost + gained)``). A few flips among a few
  dozen samples are noise; a blank loses every recognized scene.

The measure needs a base model whose prompts can be told apart (base recognition at least twice chance, capped at
halfway from chance to certain): otherwise it says ``measurable: False`` and decides nothing. It needs at least two
base samples per prompt (several seeds, or several images per prompt). Also usable during training on a fixed set of
held-out prompts, with the base model's samples as the reference (one seed, two or more images per prompt).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["FIDELITY_MIN", "THUMBNAIL", "content_fidelity", "thumbnail", "save_fidelity_figure"]

# refined samples must be recognized at least this share as often as the base's own samples
FIDELITY_MIN = 0.8
# side of the thumbnails the recognizer compares
THUMBNAIL = 8


def thumbnail(image: Any, size: int = THUMBNAIL) -> np.ndarray:
    """An image (PIL, array or tensor) as a flat ``size x size`` RGB thumbnail (box-filtered, values in [0, 1])."""
    from PIL import Image

    from synartifact.generator.guards import image_array

    array = image_array(image)
    pil = Image.fromarray(np.round(array * 255).astype(np.uint8))
    return np.asarray(pil.resize((size, size), Image.BOX), dtype=np.float64).reshape(-1) / 255.0


def _recognize(
    queries: np.ndarray, gallery: np.ndarray, labels: np.ndarray, sums: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """The prompt recognized for each query ``j``: the nearest prototype, its own prompt's prototype made without
    ``gallery[j]`` (the base sample of the same noise)."""
    predicted = np.empty(len(queries), dtype=int)
    for j, (query, label) in enumerate(zip(queries, labels)):
        prototypes = sums / counts[:, None]
        prototypes[label] = (sums[label] - gallery[j]) / (counts[label] - 1)
        predicted[j] = int(np.argmin(((prototypes - query) ** 2).sum(axis=1)))
    return predicted


def content_fidelity(
    base: Mapping[int, Sequence[Any]], refined: Mapping[int, Sequence[Any]], prompts: Sequence[str]
) -> dict:
    """How recognizable the refined samples' prompts are, relative to the base samples' (see the module docstring).

    ``base`` and ``refined`` map a seed to its images, image ``i`` of a seed made from ``prompts[i]`` and the same
    noise on both sides. Returns ``base_recognized`` and ``refined_recognized`` (shares of images whose prompt the
    recognizer names), ``chance`` (1 / number of prompts), ``fidelity`` (refined / base), ``measurable``, ``lost``
    and ``gained`` (samples recognized on one side only), ``loss_within_noise``, ``kept`` (``fidelity >=
    FIDELITY_MIN`` or a loss within noise; ``None`` when not measurable), ``threshold``, ``per_prompt`` (each
    prompt's shares) and ``refined_hits`` (per refined image, in seed order).
    """
    seeds = [s for s in base if s in refined]
    if not seeds:
        raise ValueError("content_fidelity needs the images of at least one seed on both sides.")
    names = list(dict.fromkeys(prompts))
    index = {p: k for k, p in enumerate(names)}
    labels, gallery, queries = [], [], []
    for s in seeds:
        if not (len(base[s]) == len(refined[s]) == len(prompts)):
            raise ValueError(
                f"Seed {s}: {len(base[s])} base and {len(refined[s])} refined images for {len(prompts)} prompts: "
                "give one prompt per image, the same on both sides."
            )
        labels += [index[p] for p in prompts]
        gallery += [thumbnail(im) for im in base[s]]
        queries += [thumbnail(im) for im in refined[s]]
    labels_a, gallery_a, queries_a = np.array(labels), np.stack(gallery), np.stack(queries)
    counts = np.bincount(labels_a, minlength=len(names)).astype(np.float64)
    chance = 1.0 / len(names)
    result: dict = {
        "chance": chance,
        "threshold": FIDELITY_MIN,
        "thumbnail": THUMBNAIL,
        "num_prompts": len(names),
        "num_images": len(labels),
    }
    if len(names) < 2 or counts.min() < 2:
        # one prompt is always "recognized"; a prompt with one base sample has no prototype without it
        return {
            **result,
            "base_recognized": None,
            "refined_recognized": None,
            "fidelity": None,
            "measurable": False,
            "kept": None,
            "per_prompt": {},
            "refined_hits": [],
            "why_not_measurable": "needs two or more prompts and two or more base samples of each (seeds x images)",
        }
    sums = np.zeros((len(names), gallery_a.shape[1]))
    np.add.at(sums, labels_a, gallery_a)
    base_hits = _recognize(gallery_a, gallery_a, labels_a, sums, counts) == labels_a
    refined_hits = _recognize(queries_a, gallery_a, labels_a, sums, counts) == labels_a
    base_rate, refined_rate = float(base_hits.mean()), float(refined_hits.mean())
    lost, gained = int((base_hits & ~refined_hits).sum()), int((~base_hits & refined_hits).sum())
    within_noise = lost - gained <= 2 * np.sqrt(lost + gained)
    needed = min(2 * chance, (1 + chance) / 2)
    measurable = base_rate >= needed
    fidelity = refined_rate / base_rate if base_rate > 0 else None
    return {
        **result,
        "base_recognized": base_rate,
        "refined_recognized": refined_rate,
        "fidelity": fidelity,
        "measurable": bool(measurable),
        "kept": bool(fidelity >= FIDELITY_MIN or within_noise) if measurable and fidelity is not None else None,
        "lost": lost,
        "gained": gained,
        "loss_within_noise": bool(within_noise),
        "per_prompt": {
            name: {
                "base": float(base_hits[labels_a == k].mean()),
                "refined": float(refined_hits[labels_a == k].mean()),
            }
            for k, name in enumerate(names)
        },
        "refined_hits": [bool(h) for h in refined_hits],
        **(
            {}
            if measurable
            else {
                "why_not_measurable": f"the base samples' prompts are recognized at {base_rate:.3f}, below "
                f"{needed:.3f}: the base model does not draw its prompts distinctly enough to tell"
            }
        ),
    }


def save_fidelity_figure(fidelity: Mapping[str, Any], path: Any) -> Any:
    """Per prompt, the share of base and refined samples whose prompt the recognizer names, with chance marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per = fidelity.get("per_prompt") or {}
    names = list(per)
    fig, ax = plt.subplots(figsize=(max(4.5, 0.75 * len(names) + 2), 3.4))
    xs = np.arange(len(names))
    ax.bar(xs - 0.2, [per[n]["base"] for n in names], 0.4, label="base", color="#8c8c8c")
    ax.bar(xs + 0.2, [per[n]["refined"] for n in names], 0.4, label="refined", color="#4c72b0")
    ax.axhline(fidelity["chance"], color="#c44e52", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(xs)
    ax.set_xticklabels([n[:22] for n in names], rotation=30, ha="right", fontsize=6)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share recognized", fontsize=8)
    value = fidelity.get("fidelity")
    ax.set_title(
        "content fidelity: which prompt does the sample show?"
        + (f" refined / base = {value:.2f}" if value is not None else ""),
        fontsize=8,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
