"""Reward ``score`` vs ``generate`` mode on one classifier: images/s of each and how often their label sets agree.

    python benchmarks/reward_modes.py --classifier outputs/demo/classifier --dataset outputs/demo/dataset

Images come from the dataset's test split (or are synthesized when the folder is missing). Each mode runs once to
warm up, then ``--repeats`` times; the median time counts. The last line is
``speedup=<score images/s over generate images/s> agreement=<fraction of images with the same label set>``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path


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


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    import torch

    from synartifact.classifier import ArtifactClassifier
    from synartifact.reward import ArtifactReward

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier", default="outputs/demo/classifier", help="classifier folder")
    parser.add_argument("--dataset", default="outputs/demo/dataset", help="dataset folder (test split images)")
    parser.add_argument("--split", default="test", help="dataset split")
    parser.add_argument("--n", type=int, default=64, help="number of images")
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per mode (median)")
    args = parser.parse_args(argv)

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
        f"{torch.__version__}, threads {torch.get_num_threads()}, cuda {torch.cuda.is_available()}"
    )
    classifier = ArtifactClassifier.from_pretrained(args.classifier)
    images = _images(args.dataset, args.n, args.split)
    print(f"classifier {args.classifier} ({classifier.mode}), {len(images)} images, batch {args.batch_size}")

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
        print(f"{mode:8s}: {len(images) / seconds:8.1f} images/s (median of {args.repeats}: {seconds:.3f} s)")
    agree = sum(a == b for a, b in zip(results["generate"][0], results["score"][0])) / len(images)
    found = sum(bool(s) for s in results["generate"][0]) / len(images)
    print(f"images with at least one kind (generate): {found:.2f}")
    speedup = results["generate"][1] / results["score"][1]
    print(f"speedup={speedup:.2f} agreement={agree:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
