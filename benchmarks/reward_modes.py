"""Reward ``score`` vs ``generate`` mode per classifier: images/s of each and how often their label sets agree.

    python benchmarks/reward_modes.py --classifier outputs/demo/classifier outputs/classifier-full [--batch-size 1] \
        [--json PATH]

(``outputs/classifier-full``: ``python -m synartifact.sft --config recipes/tiny/sft/config_cpu_full.yaml``.)

Images come from the dataset's test split (or are synthesized when the folder is missing), or, with
``--generator DIR``, are that Stable Diffusion pipeline's samples for the dataset's test prompts (fixed seeds): the
images a reward scores during DDPO. Per classifier: its
answer mode, the mean number of tokens ``generate`` decodes per image, then each mode runs once to warm up and
``--repeats`` times; the median time counts. ``score`` is the reward's default single pass (one forward per batch,
``logits_to_keep=1``). A cost model follows each classifier's timings: ``generate`` on one batch forced to 1 and
to 33 new tokens gives its fixed cost and the cost of a decode step, hence the speedup predicted for this run's
answer lengths and the decode steps per batch that a 5x speedup would need on this machine (``generate`` runs
until the longest answer of a batch ends). The last line is, for the LAST classifier given,
``speedup=<score images/s over generate images/s> agreement=<fraction of images with the same label set>``.
One row per classifier goes to a result file (``--json``, default ``benchmarks/results/``) that
``python benchmarks/report.py`` renders.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

from _record import add_json_flag, write_result


def _images(dataset: str, n: int, split: str) -> list:
    if Path(dataset).is_dir():
        from synartifact.data import load_artifact_dataset

        data = load_artifact_dataset(dataset)
        data = data[split] if split in data else data[next(iter(data.keys()))]
        return [row["image"].convert("RGB") for row in data.select(range(min(n, len(data))))]
    from synartifact.data import synthesize_dataset

    print(f"{dataset} not found: synthesizing {n} images")
    data = synthesize_dataset(2 * n, size=64, seed=123, test_size=0.5)
    return [row["image"].convert("RGB") for row in data["test"]][:n]


def _generated_tokens(classifier, images: list, batch_size: int) -> tuple[float, int, float]:
    """Mean number of tokens greedy decoding generates per image (up to and including the end token), how
    many answers ran into ``max_new_tokens`` without ending (``ArtifactClassifier.generate_ids``, as ``predict``),
    and the mean number of decode steps per batch (its longest answer)."""
    tokenizer = classifier.tokenizer
    eos = classifier.model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) | {tokenizer.eos_token_id}
    counts, truncated, steps = [], 0, []
    for start in range(0, len(images), batch_size):
        new_tokens = classifier.generate_ids(images[start : start + batch_size])
        steps.append(new_tokens.shape[1])
        for row in new_tokens.tolist():
            ends = [i for i, token in enumerate(row) if token in eos_ids]
            counts.append(ends[0] + 1 if ends else len(row))
            truncated += not ends
    return sum(counts) / max(1, len(counts)), truncated, sum(steps) / max(1, len(steps))


def _decode_cost(classifier, images: list, repeats: int, long: int = 33) -> tuple[float, float]:
    """Seconds of ``ArtifactClassifier.generate_ids`` for one batch (inputs prepared as ``predict`` does) forced to
    1 new token, and the seconds each further decode step adds (from a run forced to ``long`` new tokens)."""

    def run(steps: int) -> float:
        times = []
        for _ in range(repeats + 1):  # the first run warms up
            start = time.perf_counter()
            classifier.generate_ids(images, max_new_tokens=steps, min_new_tokens=steps)
            times.append(time.perf_counter() - start)
        return statistics.median(times[1:])

    first = run(1)
    return first, max(0.0, (run(long) - first) / (long - 1))


def _bench(path: str, images: list, args) -> dict:
    """One classifier: both modes timed, their agreement; prints a block and returns its figures."""
    from synartifact.classifier import ArtifactClassifier
    from synartifact.reward import ArtifactReward

    classifier = ArtifactClassifier.from_pretrained(path)
    mean_tokens, truncated, mean_steps = _generated_tokens(classifier, images, args.batch_size)
    print(
        f"classifier {path}: answer mode {classifier.mode}, max_new_tokens {classifier.max_new_tokens}, "
        f"{len(images)} images, batch {args.batch_size}"
    )
    print(
        f"  generate: {mean_tokens:.1f} generated tokens per image on average (end token included), "
        f"{truncated} answers cut at max_new_tokens"
    )
    results = {}
    for mode in ("generate", "score"):
        reward = ArtifactReward(classifier, mode=mode, batch_size=args.batch_size)
        labels = reward.label_sets(images[: args.batch_size])  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            labels = reward.label_sets(images)
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        results[mode] = (labels, seconds)
        how = ""
        if mode == "score":
            keep = reward._accepts_logits_to_keep(classifier.model)
            how = f" [1 forward per batch, logits_to_keep={'1' if keep else 'unsupported: full logits'}]"
        print(f"  {mode:8s}: {len(images) / seconds:8.1f} images/s (median of {args.repeats}: {seconds:.3f} s){how}")
    agree = sum(a == b for a, b in zip(results["generate"][0], results["score"][0])) / len(images)
    found = sum(bool(s) for s in results["generate"][0]) / len(images)
    multi = sum(len(s) > 1 for s in results["generate"][0])
    speedup = results["generate"][1] / results["score"][1]
    print(f"  images with at least one kind (generate): {found:.2f}; with several kinds: {multi}")
    batches = -(-len(images) // args.batch_size)
    score_batch = results["score"][1] / batches
    first, step = _decode_cost(classifier, images[: args.batch_size], args.repeats)
    predicted = (first + (mean_steps - 1) * step) / score_batch
    needed = 1 + (5 * score_batch - first) / step if step > 0 else float("inf")
    print(
        f"  cost model per batch of {args.batch_size}: score {1000 * score_batch:.1f} ms; generate "
        f"{1000 * first:.1f} ms for the first token + {1000 * step:.2f} ms per further decode step; this run "
        f"decodes {mean_steps:.1f} steps per batch -> predicted speedup {predicted:.2f}; 5x needs "
        f">= {needed:.0f} decode steps per batch"
    )
    print(f"  {path}: speedup={speedup:.2f} agreement={agree:.3f}")
    return {
        "classifier": path,
        "answer_mode": classifier.mode,
        "images": len(images),
        "batch_size": args.batch_size,
        "generated_tokens_per_image": mean_tokens,
        "score_images_per_s": len(images) / results["score"][1],
        "generate_images_per_s": len(images) / results["generate"][1],
        "speedup": speedup,
        "predicted_speedup": predicted,
        "agreement": agree,
    }


def _generated_images(generator: str, dataset: str, n: int) -> list:
    """``n`` samples of the pipeline at ``generator`` for the dataset's test prompts, seeds fixed per image."""
    from diffusers import StableDiffusionPipeline

    from synartifact.generator.sampling import load_prompts, sample_images

    prompts = load_prompts(dataset if Path(dataset).is_dir() else None, "test")
    pipe = StableDiffusionPipeline.from_pretrained(generator, safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    return sample_images(pipe, [prompts[i % len(prompts)] for i in range(n)], seed=0, num_inference_steps=8)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--classifier",
        nargs="+",
        default=["outputs/demo/classifier"],
        help="classifier folder(s); the last line reports the last one",
    )
    parser.add_argument("--dataset", default="outputs/demo/dataset", help="dataset folder (test split images)")
    parser.add_argument("--split", default="test", help="dataset split")
    parser.add_argument(
        "--generator", default=None, help="score this SD pipeline's samples (e.g. outputs/demo/tiny-sd) instead"
    )
    parser.add_argument("--n", type=int, default=64, help="number of images")
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per mode (median)")
    add_json_flag(parser)
    args = parser.parse_args(argv)

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
        f"{torch.__version__}, threads {torch.get_num_threads()}, cuda {torch.cuda.is_available()}"
    )
    source = f"samples of {args.generator}" if args.generator else f"{args.dataset} ({args.split})"
    if args.generator:
        images = _generated_images(args.generator, args.dataset, args.n)
        print(
            f"images: {len(images)} samples of {args.generator} (8 steps, guidance 5, eta 1, seed 0: the DDPO recipe's sampler)"
        )
    else:
        images = _images(args.dataset, args.n, args.split)
        print(f"images: {len(images)} from {args.dataset} ({args.split})")
    speedup, agree = float("nan"), float("nan")
    rows = []
    for path in args.classifier:
        rows.append({**_bench(path, images, args), "image_source": source})
        speedup, agree = rows[-1]["speedup"], rows[-1]["agreement"]
    print(f"speedup={speedup:.2f} agreement={agree:.3f}")
    write_result("reward_modes", rows, args.json, argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
