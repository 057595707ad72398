"""Vision pre-training of the tiny VLM (synartifact.tiny.vision_pretrain): what its objective's terms are worth.

    python benchmarks/vision_pretrain.py --dataset outputs/demo/dataset [--epochs 4] [--descriptor-weights 1 0]
        [--max-images N] [--arch llava] [--json PATH]

Builds the tiny VLM (random weights) once, pre-trains its vision side once per descriptor weight (1: the default
objective with the MaskFeat-style cell-descriptor term; 0: artifact labels and boxes only) with the same seed, data
and steps, and reports each run's held-out figures through the same linear probes: image-level macro-F1 over the
kinds the split holds, per-kind F1, the mean IoU of the box read from the tokens, and the wall time. The figures go
to a result file (``--json``, default ``benchmarks/results/``) that ``python benchmarks/report.py`` renders.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _record import add_json_flag, write_result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    from synartifact.tiny import build_tiny_vlm
    from synartifact.tiny.vision_pretrain import VISION_PRETRAIN_FILE, pretrain_vision

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="outputs/demo/dataset", help="artifact dataset folder (train + test)")
    parser.add_argument("--arch", default="llava", help="tiny VLM family (default: llava, the demo's classifier)")
    parser.add_argument("--epochs", type=int, default=4, help="pre-training epochs per run")
    parser.add_argument("--max-images", type=int, default=None, help="use at most this many training images")
    parser.add_argument("--test-images", type=int, default=600, help="held-out images the probes are scored on")
    parser.add_argument("--descriptor-weights", type=float, nargs="+", default=[1.0, 0.0], help="one run per weight")
    parser.add_argument("--seed", type=int, default=0)
    add_json_flag(parser)
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-vision-") as scratch:
        base = build_tiny_vlm(Path(scratch) / "base", arch=args.arch, seed=args.seed)
        for weight in args.descriptor_weights:
            out = Path(scratch) / f"pre-{weight}"
            started = time.perf_counter()
            pretrain_vision(
                base,
                args.dataset,
                out,
                epochs=args.epochs,
                max_images=args.max_images,
                test_images=args.test_images,
                descriptor_weight=weight,
                seed=args.seed,
            )
            summary = json.loads((out / VISION_PRETRAIN_FILE).read_text())
            held = summary["held_out"]
            row = {
                "arch": args.arch,
                "descriptor_weight": weight,
                "epochs": args.epochs,
                "steps": summary["steps"],
                "images": summary["num_images"],
                "seconds": round(time.perf_counter() - started, 1),
                "macro_f1": held["macro_f1"],
                "box_iou": held["box_iou"],
                "kinds_over_0_5": sum(v >= 0.5 for v in held["per_kind_f1"].values()),
                "kinds": len(held["per_kind_f1"]),
                "per_kind_f1": held["per_kind_f1"],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    path = write_result("vision_pretrain", rows, args.json, argv=sys.argv[1:] if argv is None else argv)
    print(f"result: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
