"""Where occlusion puts the box, against where the artifact is: the repair's boxes for a classifier without boxes.

    python benchmarks/locate_boxes.py                       # the demo's classifier on its dataset's test split
    python benchmarks/locate_boxes.py --classifier DIR --dataset DIR --n 64 [--split test] [--json PATH]

The demo's classifier answers kinds without boxes, so the repair asks it where by occlusion
(:func:`synartifact.repair.locate.locate_artifacts`). This script runs that on the first ``--n`` images of a split
that have injected artifacts, for each kind the classifier names there, and compares the box with the injected
artifacts' true boxes (the best-matching one): intersection over union, the share of the true box the located box
covers (what a repair must paint) and the box's area. Two blind boxes are the floor any locator must beat: a
centred square of the true boxes' mean area and the centred half-side square (where the synthesizer places
artifacts is spread over the image, so a centred box already overlaps many). A second occlusion row asks for the
true kind instead of the predicted one (how well it locates when the classifier names the right kind).

Figures go to a result file (``--json``, default ``benchmarks/results/``) that ``python benchmarks/report.py``
renders into benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

from _record import add_json_flag, write_result


def coverage(box, truth) -> float:
    w = max(0.0, min(box[2], truth[2]) - max(box[0], truth[0]))
    h = max(0.0, min(box[3], truth[3]) - max(box[1], truth[1]))
    return w * h / ((truth[2] - truth[0]) * (truth[3] - truth[1]))


def figures(method: str, boxes: list, truths: list, kinds: list, asked: int, seconds: float | None) -> dict:
    """One row: ``boxes[i]`` is the box given for ``truths[i]`` (a list of true boxes), ``None`` when not located."""
    from synartifact.classifier.metrics import box_iou

    pairs = [(b, t, k) for b, t, k in zip(boxes, truths, kinds) if b is not None]
    ious = [max(box_iou(b, x) for x in t) for b, t, _ in pairs]
    per_kind: dict[str, list[float]] = {}
    for value, (_, _, kind) in zip(ious, pairs):
        per_kind.setdefault(kind, []).append(value)
    mean = lambda values: sum(values) / len(values) if values else math.nan  # noqa: E731
    return {
        "method": method,
        "asked": asked,
        "located": len(pairs),
        "iou": mean(ious),
        "iou_over_0_5": mean([float(v >= 0.5) for v in ious]),
        "coverage": mean([max(coverage(b, x) for x in t) for b, t, _ in pairs]),
        "area": mean([(b[2] - b[0]) * (b[3] - b[1]) for b, _, _ in pairs]),
        "seconds_per_image": seconds,
        "per_kind_iou": {k: round(mean(v), 3) for k, v in sorted(per_kind.items())},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classifier", default="outputs/demo/classifier", help="a classifier folder")
    parser.add_argument("--dataset", default="outputs/demo/dataset", help="a dataset folder with true boxes")
    parser.add_argument("--split", default="test", help="dataset split (default test: images SFT never saw)")
    parser.add_argument("--n", type=int, default=64, help="images with injected artifacts (default 64)")
    add_json_flag(parser)
    args = parser.parse_args(argv)

    from synartifact.data import load_artifact_dataset
    from synartifact.repair.locate import locate_artifacts
    from synartifact.reward import ArtifactReward
    from synartifact.taxonomy import SLUGS

    data = load_artifact_dataset(args.dataset, split=args.split)
    head = data.select(range(min(len(data), 20 * args.n)))
    rows = [i for i, artifacts in enumerate(head["artifacts"]) if artifacts][: args.n]
    if not rows:
        raise SystemExit(f"{args.dataset} ({args.split}) has no image with artifacts.")
    subset = head.select(rows)
    images = list(subset["image"])
    truths = [[tuple(a["bbox"]) for a in artifacts if a.get("bbox")] for artifacts in subset["artifacts"]]
    true_kinds = [[SLUGS[a["label"]] for a in artifacts] for artifacts in subset["artifacts"]]
    scorer = ArtifactReward(args.classifier, mode="score", soft=True, batch_size=64, device="cpu")
    predicted = [sorted(s) for s in scorer.label_sets(images)]

    out = []
    for method, asked_kinds in (
        ("occlusion, the kinds it names", predicted),
        ("occlusion, the true kinds", true_kinds),
    ):
        start = time.perf_counter()
        located = locate_artifacts(scorer, images, asked_kinds, progress=True)
        seconds = (time.perf_counter() - start) / len(images)
        boxes, boxed_truths, kinds = [], [], []
        for found, truth in zip(located, truths):
            for kind, box in found.items():
                boxes.append(box)
                boxed_truths.append(truth)
                kinds.append(kind)
        out.append(figures(method, boxes, boxed_truths, kinds, sum(map(len, asked_kinds)), seconds))
        print(out[-1], flush=True)
    mean_area = sum((t[0][2] - t[0][0]) * (t[0][3] - t[0][1]) for t in truths) / len(truths)
    for method, side in (
        ("blind: centred, the true boxes' mean area", math.sqrt(mean_area)),
        ("blind: centred half side", 0.5),
    ):
        box = (0.5 - side / 2, 0.5 - side / 2, 0.5 + side / 2, 0.5 + side / 2)
        flat = [k[0] for k in true_kinds]
        out.append(figures(method, [box] * len(truths), truths, flat, len(truths), None))
        print(out[-1], flush=True)
    for row in out:
        row.update(classifier=args.classifier, images=len(images), split=args.split)
    write_result("locate_boxes", out, args.json, argv=sys.argv[1:] if argv is None else argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
