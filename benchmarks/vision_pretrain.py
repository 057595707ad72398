"""Vision pre-training of the tiny VLM (synartifact.tiny.vision_pretrain): what its objective's terms are worth.

    python benchmarks/vision_pretrain.py --dataset outputs/demo/dataset [--epochs 4] [--descriptor-weights 1 0]
        [--max-images N] [--arch llava] [--sft-epochs 3 [--sft-random]] [--json PATH]

All ten synthesizable kinds, as the demo's classifier must learn them (one artifact per image, 64 px, the demo's
split sizes): ``synartifact dataset synth --n 12000 --size 64 --max-artifacts 1 --test-size 0.15 --num-proc 2
--out outputs/ds10-all-kinds``, then ``--dataset outputs/ds10-all-kinds``.

With ``--sft-epochs N`` each pre-trained model is then fine-tuned by ``synartifact.sft`` on the full-format recipe
(``recipes/tiny/sft/config_cpu_full.yaml``: kinds, boxes and captions) for N epochs and scored by ``synartifact
evaluate`` on the test split (``--sft-eval-samples`` images): macro-F1 over the kinds the split holds, kinds with F1
>= 0.5, the mean IoU of matched boxes (``localization.iou.tp``) and the SFT time; ``--sft-random`` adds the same SFT
from the random vision tower (the comparison that says what pre-training is worth).

Builds the tiny VLM (random weights) once, pre-trains its vision side once per descriptor weight (1: the default
objective with the MaskFeat-style cell-descriptor term; 0: artifact labels and boxes only) with the same seed, data
and steps, and reports each run's held-out figures through the same linear probes: image-level macro-F1 over the
kinds the split holds, per-kind F1, the mean IoU of the box read from the tokens, and the wall time. The figures go
to a result file (``--json``, default ``benchmarks/results/``) that ``python benchmarks/report.py`` renders.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _record import add_json_flag, write_result


def _sft_and_evaluate(args: argparse.Namespace, model: Path, out: Path) -> dict:
    """SFT ``model`` on the full-format recipe, evaluate it on the test split; the figures as a row's columns."""
    repo = Path(__file__).resolve().parents[1]
    dataset = str(Path(args.dataset).resolve())
    sft = [sys.executable, "-m", "synartifact.sft", "--config", str(repo / args.sft_recipe)]
    sft += ["--model_name_or_path", str(model), "--dataset_name", dataset, "--output_dir", str(out)]
    sft += ["--num_train_epochs", str(args.sft_epochs), "--seed", str(args.seed)]
    started = time.perf_counter()
    subprocess.run(sft, cwd=repo, check=True)
    sft_seconds = time.perf_counter() - started
    evaluation = out.parent / f"{out.name}-eval"
    command = [sys.executable, "-m", "synartifact.cli", "evaluate", "--model", str(out), "--baseline", str(model)]
    command += ["--dataset", dataset, "--max-samples", str(args.sft_eval_samples), "--out", str(evaluation)]
    subprocess.run(command + ["--no-css"], cwd=repo, check=True)
    metrics = json.loads((evaluation / "metrics.json").read_text())["model"]
    per_kind = {k: v["f1"] for k, v in metrics["per_kind"].items() if v.get("support", 0)}
    return {
        "sft_epochs": args.sft_epochs,
        "sft_seconds": round(sft_seconds, 1),
        "sft_macro_f1": metrics["macro_f1"],
        "sft_kinds_over_0_5": sum(v >= 0.5 for v in per_kind.values()),
        "sft_kinds": len(per_kind),
        "sft_box_iou_tp": (metrics.get("localization") or {}).get("iou", {}).get("tp"),
        "sft_well_formed": metrics["well_formed_rate"],
        "sft_per_kind_f1": per_kind,
    }


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
    parser.add_argument("--sft-epochs", type=float, default=0, help="then SFT each model this many epochs (0: no)")
    parser.add_argument("--sft-random", action="store_true", help="also SFT the random vision tower (baseline)")
    parser.add_argument("--sft-eval-samples", type=int, default=600, help="test images the SFT'd models are scored on")
    parser.add_argument("--sft-recipe", default="recipes/tiny/sft/config_cpu_full.yaml", help="SFT recipe")
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
            if args.sft_epochs:
                row.update(_sft_and_evaluate(args, out, Path(scratch) / f"sft-{weight}"))
            rows.append(row)
            print(json.dumps(row), flush=True)
        if args.sft_epochs and args.sft_random:
            row = {"arch": args.arch, "descriptor_weight": None, "epochs": 0, "note": "random vision tower"}
            row.update(_sft_and_evaluate(args, base, Path(scratch) / "sft-random"))
            rows.append(row)
            print(json.dumps(row), flush=True)
    path = write_result("vision_pretrain", rows, args.json, argv=sys.argv[1:] if argv is None else argv)
    print(f"result: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
