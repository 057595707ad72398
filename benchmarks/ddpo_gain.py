"""DDPO on the tiny recipe: reward gain on held-out prompts over its seed-to-seed spread, and the epoch time split.

    python benchmarks/ddpo_gain.py                       # uses the demo's outputs (make demo first)
    python benchmarks/ddpo_gain.py --base outputs/demo/tiny-sd --classifier outputs/demo/classifier \\
        --dataset outputs/demo/dataset --out outputs/bench-ddpo [-- --num_epochs 60 ...any ddpo field]

Runs ``synartifact ddpo --config recipes/tiny/ddpo/config_cpu.yaml`` (training prompts exclude the held-out ones)
then ``synartifact evaluate-generator`` (the same 8 held-out prompts x seeds 0 1 2, base vs base + LoRA, with the
reward the run was trained on, 4 images per prompt; with ``--judge DIR`` also under that independent classifier).
``--skip-train`` re-evaluates an existing run. The last line is ``gain=<refined - base mean reward> spread=<larger
seed std> ratio=<gain / spread> [judge_ratio=<judge gain / its spread> judge_rate=<base -> refined>]
drift=<relative drift> noise_ratio=<fine-detail energy refined / base> ddpo_minutes=<wall>``. The figures go to
a result file (``--json PATH``, default ``benchmarks/results/``) that ``python benchmarks/report.py`` renders.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from _record import add_json_flag, write_result

REPO = Path(__file__).resolve().parents[1]


def _run(args: list[str]) -> None:
    cmd = [sys.executable, "-m", "synartifact.cli", *args]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    import torch

    argv = list(sys.argv[1:] if argv is None else argv)
    argv_given = list(argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="outputs/demo/tiny-sd", help="pre-trained tiny SD folder")
    parser.add_argument("--classifier", default="outputs/demo/classifier", help="classifier folder")
    parser.add_argument("--dataset", default="outputs/demo/dataset", help="dataset folder (prompts)")
    parser.add_argument("--recipe", default="recipes/tiny/ddpo/config_cpu.yaml", help="DDPO recipe")
    parser.add_argument("--out", default="outputs/bench-ddpo", help="output folder (run/ and eval/ inside)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="evaluation seeds")
    parser.add_argument("--skip-train", action="store_true", help="evaluate an existing run in OUT/run")
    parser.add_argument("--judge", default=None, help="an independent classifier folder (e.g. outputs/demo/judge)")
    parser.add_argument("--images-per-prompt", type=int, default=4, help="images per held-out prompt and seed")
    add_json_flag(parser)
    args = parser.parse_args(argv)

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, cuda {torch.cuda.is_available()}"
    )
    out = Path(args.out)
    run, evaluation = out / "run", out / "eval"
    start = time.perf_counter()
    if not args.skip_train:
        _run(
            [
                "ddpo",
                "--config",
                args.recipe,
                "--pretrained_model",
                args.base,
                "--classifier",
                args.classifier,
                "--prompts",
                args.dataset,
                "--output_dir",
                str(run),
                "--overwrite_output_dir",
                "true",
                *extra,
            ]
        )
    minutes = (time.perf_counter() - start) / 60
    seeds = [str(s) for s in args.seeds]
    _run(
        [
            "evaluate-generator",
            "--base",
            args.base,
            "--lora",
            str(run),
            "--classifier",
            args.classifier,
            "--prompts",
            args.dataset,
            "--seeds",
            *seeds,
            "--images-per-prompt",
            str(args.images_per_prompt),
            "--out",
            str(evaluation),
            "--overwrite",
            *(["--judge", args.judge] if args.judge else []),
        ]
    )
    summary = json.loads((run / "ddpo_summary.json").read_text())
    metrics = json.loads((evaluation / "metrics.json").read_text())
    base, refined, delta = metrics["base"], metrics["refined"], metrics["delta"]
    held_out = set(metrics["config"]["prompts"]) - set(summary.get("train_prompts", []))
    timing = summary["timing"]
    print(f"epochs {summary['epochs']}, {len(summary.get('train_prompts', []))} training prompts")
    print(
        f"epoch split: sampling {timing['sampling_share']:.0%}, reward {timing['reward_share']:.0%}, "
        f"training {timing['training_share']:.0%} ({timing['sampling_s'] + timing['reward_s'] + timing['training_s']:.0f} s)"
    )
    print(f"evaluation: {len(metrics['config']['prompts'])} prompts ({len(held_out)} held out) x seeds {args.seeds}")
    for key, part in (("base", base), ("refined", refined)):
        seeds_text = " ".join(f"{v:.4f}" for v in part["per_seed_mean"])
        print(f"{key:8s} mean reward {part['mean_reward']:.4f}  seed std {part['std']:.4f}  per seed {seeds_text}")
    rates = {k: v for k, v in delta["per_kind_rate"].items() if abs(v) > 1e-9}
    print("artifact rate change per kind:", {k: round(v, 3) for k, v in rates.items()} or "none")
    spread = max(base["std"], refined["std"])
    ratio = delta["mean_reward"] / spread if spread > 0 else float("inf")
    label = f"ddpo_minutes={minutes:.1f}" if not args.skip_train else "ddpo_minutes=skipped"
    judged = ""
    if "judge" in metrics:
        judge = metrics["judge"]
        ratio_j = metrics["judge_gain_in_spread"]
        judged = (
            f" judge_ratio={ratio_j:.2f}" if ratio_j is not None else " judge_ratio=n/a"
        ) + f" judge_rate={judge['base']['artifact_rate']:.3f}->{judge['refined']['artifact_rate']:.3f}"
    drift = metrics.get("drift") or {}
    if drift:
        judged += f" drift={drift['relative_drift']:.2f} noise_ratio={drift['noise_ratio']:.2f}"
    print(f"gain={delta['mean_reward']:.4f} spread={spread:.4f} ratio={ratio:.2f}{judged} {label}")
    row = {
        "classifier": args.classifier,
        "judge": args.judge,
        "epochs": summary["epochs"],
        "ddpo_minutes": None if args.skip_train else minutes,
        "reward_base": base["mean_reward"],
        "reward_refined": refined["mean_reward"],
        "gain": delta["mean_reward"],
        "spread": spread,
        "gain_in_spread": ratio if spread > 0 else None,
        "sampling_share": timing["sampling_share"],
        "reward_share": timing["reward_share"],
        "training_share": timing["training_share"],
        "prompts": len(metrics["config"]["prompts"]),
        "held_out_prompts": len(held_out),
        "seeds": args.seeds,
        "images_per_prompt": args.images_per_prompt,
    }
    if "judge" in metrics:
        judge = metrics["judge"]
        row.update(
            judge_gain_in_spread=metrics["judge_gain_in_spread"],
            judge_artifact_rate_base=judge["base"]["artifact_rate"],
            judge_artifact_rate_refined=judge["refined"]["artifact_rate"],
        )
    if drift:
        row.update(relative_drift=drift["relative_drift"], noise_ratio=drift["noise_ratio"])
    write_result("ddpo_gain", [row], args.json, argv_given)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
