"""Which way does the reward point? Base samples scored before and after a change a generator could make (issue 20,
item 2: why DDPO does not learn, or learns the wrong thing).

    python benchmarks/reward_shortcuts.py                       # after `make demo`: its tiny SD, classifier and judge
    python benchmarks/reward_shortcuts.py --demo outputs/demo-oldest --prompts 16 --seeds 0

The pre-trained tiny SD (``DEMO/tiny-sd``) draws one sample per training prompt and seed (as DDPO samples them: 8
steps, guidance 5, eta 1); each sample is then changed in ways a fine-tuned generator could change it: Gaussian
pixel noise (sd 0.02, 0.05, 0.1 of the range), a 1-pixel Gaussian blur, and a flat image of the sample's mean colour
(a blank: no content at all). The reward's classifier (``DEMO/classifier``) and the independent judge
(``DEMO/judge``) score every version as DDPO's reward does (``score`` mode, soft); per model and change: the mean
score, the mean paired change against the unchanged sample with its standard error, and the share of samples whose
score rose. A change that raises the reward on most samples is a direction DDPO can climb without removing any
artifact; a change the judge also prefers will not be caught by the judge either.

A third model row is the training reward of the tiny DDPO recipe with its contrast guard: the classifier's score plus
``--contrast-weight`` (default: the recipe's weight of the ``contrast`` term) times the guard's term, whose references
are the base model's samples of the same prompts under seeds 0-3, as ``synartifact ddpo --seed 0`` makes them. With
the guard, a blank and a half-way blend must score below the unchanged samples.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from _record import add_json_flag, write_result

NOISE_LEVELS = (0.02, 0.05, 0.1)


def changes(seed: int = 0) -> dict:
    """Name -> function(PIL image) -> PIL image: the changes scored against the unchanged sample."""
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)

    def noise(level: float):
        def apply(image):
            array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
            array = np.clip(array + rng.normal(0.0, level, array.shape), 0.0, 1.0)
            return Image.fromarray((array * 255.0).round().astype(np.uint8))

        return apply

    def toward_mean(share: float):
        def apply(image):  # a blend towards the sample's mean colour: 1 is a blank of that colour
            array = np.asarray(image.convert("RGB"), dtype=np.float32)
            mean = array.reshape(-1, 3).mean(axis=0)
            return Image.fromarray(np.clip((1 - share) * array + share * mean, 0, 255).round().astype(np.uint8))

        return apply

    found = {f"noise {level:g}": noise(level) for level in NOISE_LEVELS}
    found["blur 1 px"] = lambda image: image.filter(ImageFilter.GaussianBlur(1))
    found["halfway to flat"] = toward_mean(0.5)
    found["flat (mean colour)"] = toward_mean(1.0)
    return found


RECIPE = Path(__file__).resolve().parents[1] / "src/synartifact/recipes/tiny/ddpo/config_cpu.yaml"


def recipe_contrast_weight(recipe: Path = RECIPE) -> float | None:
    """The tiny DDPO recipe's weight of its ``contrast`` reward term (``None`` when it has none)."""
    import yaml

    config = yaml.safe_load(recipe.read_text())
    names = list(config.get("reward_funcs") or ["artifact"])
    weights = config.get("reward_funcs_weights") or [1.0] * len(names)
    return float(weights[names.index("contrast")]) if "contrast" in names else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", default="outputs/demo", help="a `make demo` output folder")
    parser.add_argument("--prompts", type=int, default=None, help="at most this many training prompts (default all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="sampling seeds (default 0 1)")
    parser.add_argument("--steps", type=int, default=8, help="sampling steps (default 8, as the DDPO recipe)")
    parser.add_argument(
        "--contrast-weight",
        type=float,
        default=None,
        help="weight of the contrast guard in the guarded row (default: the tiny DDPO recipe's; 0 leaves the row out)",
    )
    add_json_flag(parser)
    args = parser.parse_args(argv)

    from diffusers import StableDiffusionPipeline

    from synartifact.generator.guards import ContrastGuard
    from synartifact.generator.sampling import load_prompts, sample_images
    from synartifact.reward import ArtifactReward

    demo = Path(args.demo)
    for part in ("tiny-sd", "classifier", "judge", "dataset"):
        if not (demo / part).exists():
            parser.error(f"{demo / part} does not exist: run `make demo` first, or pass --demo a demo output folder")
    start = time.perf_counter()
    pipe = StableDiffusionPipeline.from_pretrained(str(demo / "tiny-sd"), safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    prompts = load_prompts(str(demo / "dataset"), split="train", max_prompts=args.prompts)
    images = []
    for seed in args.seeds:
        images += sample_images(pipe, prompts, seed=seed, num_inference_steps=args.steps)
    versions = {"unchanged": images}
    versions.update({name: [apply(image) for image in images] for name, apply in changes().items()})
    weight = recipe_contrast_weight() if args.contrast_weight is None else args.contrast_weight
    weight = weight if weight is not None else 0.05
    guard = None
    if weight > 0:
        # the references as `synartifact ddpo --seed 0` makes them: seeds 0.. of the base model, the recipe's sampling
        guard = ContrastGuard.from_pipeline(pipe, prompts, seed=0, num_inference_steps=args.steps)
    labels = {"classifier": "reward's classifier", "judge": "independent judge"}
    scored = {}
    rows = []
    for model in ("classifier", "judge", "guarded"):
        if model == "guarded":
            if guard is None:
                continue
            labels[model] = f"reward + {weight:g} x contrast"
            prompt_list = list(prompts) * len(args.seeds)
            scored[model] = {
                name: scored["classifier"][name] + weight * guard(changed, prompt_list)[0].numpy().astype(np.float64)
                for name, changed in versions.items()
            }
        else:
            reward = ArtifactReward(str(demo / model), mode="score", soft=True)
            scored[model] = {
                name: np.asarray(reward.score_images(changed), dtype=np.float64) for name, changed in versions.items()
            }
        base = scored[model]["unchanged"]
        for name in versions:
            scores = scored[model][name]
            delta = scores - base
            row = {
                "model": labels[model],
                "change": name,
                "n": int(len(scores)),
                "mean_score": float(scores.mean()),
                "mean_delta": float(delta.mean()),
                "delta_sem": float(delta.std(ddof=1) / np.sqrt(len(delta))) if len(delta) > 1 else None,
                "share_higher": float(np.mean(delta > 0)),
                "base_spread": float(base.std(ddof=1)) if len(base) > 1 else None,
            }
            rows.append(row)
            print(
                f"{row['model']:20s} {name:20s} mean {row['mean_score']:.4f}  change {row['mean_delta']:+.4f} "
                f"(sem {row['delta_sem'] or 0:.4f})  rose on {row['share_higher']:.2f}",
                flush=True,
            )
    seconds = time.perf_counter() - start
    for row in rows:
        row["seconds"] = seconds
    print(f"{len(images)} samples, {len(prompts)} prompts x seeds {args.seeds}, {seconds:.1f} s")
    write_result("reward_shortcuts", rows, args.json, argv=sys.argv[1:] if argv is None else argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
