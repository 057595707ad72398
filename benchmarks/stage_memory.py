"""Wall time and peak memory (max RSS) of each pipeline stage, each run as its own ``synartifact`` process.

    python benchmarks/stage_memory.py [--out /tmp/synartifact-bench] [--n 400] [--json PATH]

Every stage is the real command a user types, in a fresh process, so its peak RSS is its own (``os.wait4``).
Small settings: the point is the relative cost and memory of the stages on the tiny models, not a full run.
The DDPO line also prints the epoch time split (sampling / reward / training) from the run's ``reward_log.jsonl``.
One row per stage goes to a result file (``--json``, default ``benchmarks/results/``) that
``python benchmarks/report.py`` renders.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _record import add_json_flag, write_result


def run(name: str, args: list[str]) -> tuple[float, float]:
    """Run ``synartifact ARGS`` and return (seconds, peak RSS in MiB)."""
    cmd = [sys.executable, "-m", "synartifact", *args]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"stage {name} failed: {' '.join(cmd)}\n{proc.stderr.read().decode()[-3000:]}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/synartifact-bench"))
    parser.add_argument("--n", type=int, default=400, help="images to synthesize")
    parser.add_argument("--sft-steps", type=int, default=20)
    parser.add_argument("--ddpo-epochs", type=int, default=2)
    add_json_flag(parser)
    args = parser.parse_args()
    out = args.out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    recipes = Path(__file__).resolve().parents[1] / "recipes"
    stages = [
        (
            "dataset synth",
            ["dataset", "synth", "--n", str(args.n), "--size", "64", "--out", str(out / "data"), "--num-proc", "1"],
        ),
        ("tiny vlm", ["tiny", "vlm", "--out", str(out / "tiny-vlm")]),
        (
            "sft",
            [
                "sft",
                "--config",
                str(recipes / "tiny/sft/config_cpu.yaml"),
                "--dataset_name",
                str(out / "data"),
                "--model_name_or_path",
                str(out / "tiny-vlm"),
                "--output_dir",
                str(out / "clf"),
                "--max_steps",
                str(args.sft_steps),
            ],
        ),
        (
            "evaluate",
            [
                "evaluate",
                "--model",
                str(out / "clf"),
                "--baseline",
                str(out / "tiny-vlm"),
                "--dataset",
                str(out / "data"),
                "--out",
                str(out / "eval"),
                "--no-css",
            ],
        ),
        ("tiny sd", ["tiny", "sd", "--out", str(out / "tiny-sd")]),
        (
            "ddpo",
            [
                "ddpo",
                "--config",
                str(recipes / "tiny/ddpo/config_cpu.yaml"),
                "--pretrained_model",
                str(out / "tiny-sd"),
                "--classifier",
                str(out / "clf"),
                "--prompts",
                str(out / "data"),
                "--output_dir",
                str(out / "gen"),
                "--num_epochs",
                str(args.ddpo_epochs),
            ],
        ),
        (
            "evaluate-generator",
            [
                "evaluate-generator",
                "--base",
                str(out / "tiny-sd"),
                "--lora",
                str(out / "gen"),
                "--classifier",
                str(out / "clf"),
                "--prompts",
                str(out / "data"),
                "--seeds",
                "0",
                "1",
                "--out",
                str(out / "gen-eval"),
            ],
        ),
    ]
    import torch

    print(f"machine: {platform.platform()}, {os.cpu_count()} logical cores, torch {torch.__version__}")
    print(f"{'stage':<20} {'seconds':>8} {'peak RSS MiB':>13}")
    rows = []
    for name, cmd in stages:
        seconds, rss = run(name, cmd)
        print(f"{name:<20} {seconds:>8.1f} {rss:>13.0f}")
        rows.append({"stage": name, "seconds": seconds, "peak_rss_mib": rss})
    log = [json.loads(line) for line in (out / "gen" / "reward_log.jsonl").read_text().splitlines() if line.strip()]
    parts = {k: sum(e[f"{k}_s"] for e in log) for k in ("sampling", "reward", "training")}
    total = sum(parts.values())
    print(
        "ddpo epoch split: "
        + ", ".join(f"{k} {v / total:.0%}" for k, v in parts.items())
        + f" ({total / len(log):.1f} s per epoch, goal: reward <= 20%)"
    )
    ddpo = next(row for row in rows if row["stage"] == "ddpo")
    ddpo.update({f"{k}_share": v / total for k, v in parts.items()}, seconds_per_epoch=total / len(log))
    settings = {"n": args.n, "sft_steps": args.sft_steps, "ddpo_epochs": args.ddpo_epochs}
    write_result("stage_memory", [{**row, **settings} for row in rows], args.json)


if __name__ == "__main__":
    main()
