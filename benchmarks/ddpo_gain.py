"""DDPO across seeds: the gain as a distribution over training runs, not one trajectory (issue 20, item 1).

    python benchmarks/ddpo_gain.py --seeds 0 1 2                        # three DDPO training seeds (make demo first)
    python benchmarks/ddpo_gain.py --seeds 0 1 2 --classifier-seeds 1 2  # also retrain the reward's classifier
    python benchmarks/ddpo_gain.py --seeds 0 --eval-seeds 0 1 --out /tmp/smoke --json /tmp/smoke.json \\
        -- --num_epochs 2                                                # a smoke run: any ddpo field after --

For each reward classifier (the demo's, ``--classifier``, and one retrained per ``--classifier-seeds`` seed with
``synartifact sft`` on the demo's SFT recipe, the classifier's own base model and dataset, and that ``--seed``) and
each training seed of ``--seeds``, runs ``synartifact ddpo --config recipes/tiny/ddpo/config_cpu.yaml --seed S``
(training prompts exclude the held-out ones) into ``OUT/runs/<classifier>-s<S>``, then ``synartifact
evaluate-generator`` on the held-out prompts x ``--eval-seeds`` (the evaluation seeds, apart from the training seeds)
x ``--images-per-prompt`` with the reward the run trained on and the independent ``--judge`` (its strength from
``--judge-eval``) into ``OUT/evals/<classifier>-s<S>``. ``--skip-train`` re-evaluates existing runs.

Per run and as mean and spread (sample standard deviation over runs): reward gain, judge gain (both in units of
their seed spread), artifact rates under both, relative drift, fine-detail ratio, content fidelity and the run's
verdict; then the study's verdict against issue 20's targets (every run's reward gain >= 2x its seed spread, the
judge gain >= 2x on the mean and > 0 on every run, the judge's artifact rate <= 0.8x the base's on the mean,
fine-detail ratio within [0.85, 1.15] and content fidelity kept on every run, a judge strong enough to judge).
The rows go to a result file (``--json PATH``, default ``benchmarks/results/``) that ``python benchmarks/report.py``
renders into benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

from _record import add_json_flag, write_result

REPO = Path(__file__).resolve().parents[1]
# the figures of a run that are averaged over runs
FIGURES = (
    "reward_base",
    "reward_refined",
    "gain",
    "gain_in_spread",
    "judge_gain",
    "judge_gain_in_spread",
    "reward_artifact_rate_base",
    "reward_artifact_rate_refined",
    "judge_artifact_rate_base",
    "judge_artifact_rate_refined",
    "judge_rate_ratio",
    "relative_drift",
    "noise_ratio",
    "content_fidelity",
    "ddpo_minutes",
    "sampling_share",
    "reward_share",
    "training_share",
)


def _run(args: list[str]) -> None:
    cmd = [sys.executable, "-m", "synartifact.cli", *args]
    print("$", shlex.join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)


def _default(path: str) -> str | None:
    return path if (REPO / path).exists() else None


def _retrain_classifier(classifier: str, seed: int, out: Path, recipe: str, extra: list[str], skip: bool) -> str:
    """``synartifact sft`` of the classifier's own base model on its own dataset with another ``seed`` (once)."""
    if skip and (out / "sft_run.json").is_file():
        return str(out)
    record = Path(classifier) / "sft_run.json"
    if not record.is_file():
        raise SystemExit(f"{record} not found: --classifier-seeds retrains a `synartifact sft` output's recipe.")
    run = json.loads(record.read_text())
    base = run.get("base_model_path") or run["base_model"]
    args = ["sft", "--config", recipe, "--dataset_name", run["dataset"], "--model_name_or_path", base]
    args += ["--dataset_train_split", run.get("train_split", "train"), "--output_dir", str(out)]
    _run([*args, "--seed", str(seed), "--overwrite_output_dir", "true", *extra])
    return str(out)


def run_row(metrics: dict, summary: dict, minutes: float | None) -> dict:
    """One run's figures from its evaluate-generator ``metrics`` and its DDPO ``summary``."""
    base, refined, delta = metrics["base"], metrics["refined"], metrics["delta"]
    timing = summary.get("timing", {})
    drift, fidelity = metrics.get("drift") or {}, metrics.get("fidelity") or {}
    row = {
        "epochs": summary.get("epochs"),
        "ddpo_minutes": minutes,
        "reward_base": base["mean_reward"],
        "reward_refined": refined["mean_reward"],
        "gain": delta["mean_reward"],
        "spread": max(base["std"], refined["std"]),
        "gain_in_spread": metrics.get("reward_gain_in_spread"),
        "reward_artifact_rate_base": base["artifact_rate"],
        "reward_artifact_rate_refined": refined["artifact_rate"],
        "relative_drift": drift.get("relative_drift"),
        "noise_ratio": drift.get("noise_ratio"),
        "content_fidelity": fidelity.get("fidelity"),
        "content_kept": fidelity.get("kept"),
        "sampling_share": timing.get("sampling_share"),
        "reward_share": timing.get("reward_share"),
        "training_share": timing.get("training_share"),
        "verdict": (metrics.get("verdict") or {}).get("verdict"),
    }
    judge = metrics.get("judge")
    if judge:
        before, after = judge["base"]["artifact_rate"], judge["refined"]["artifact_rate"]
        strength = judge.get("strength") or {}
        row.update(
            judge_gain=judge["delta"]["mean_reward"],
            judge_gain_in_spread=metrics.get("judge_gain_in_spread"),
            judge_artifact_rate_base=before,
            judge_artifact_rate_refined=after,
            judge_rate_ratio=after / before if before > 0 else None,
            judge_strong=bool(strength.get("strong")) and bool(judge["config"].get("independent", True)),
            judge_binary_f1=strength.get("binary_f1"),
        )
    return row


def _mean_std(values: list) -> tuple[float | None, float | None]:
    numbers = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not numbers or len(numbers) != len(values):
        return None, None  # a figure missing from a run is missing from the mean
    mean = sum(numbers) / len(numbers)
    std = math.sqrt(sum((v - mean) ** 2 for v in numbers) / (len(numbers) - 1)) if len(numbers) > 1 else None
    return mean, std


def summarize(rows: list[dict]) -> tuple[dict, dict, dict]:
    """The mean row, the spread row (sample std over runs) and the study's verdict with its reasons."""
    mean, spread = {"run": "mean"}, {"run": "spread (std over runs)"}
    for key in FIGURES:
        mean[key], spread[key] = _mean_std([row.get(key) for row in rows])
    study = study_verdict(rows, mean)
    mean["verdict"] = study["verdict"]
    mean["runs"] = spread["runs"] = len(rows)
    return mean, spread, study


def study_verdict(rows: list[dict], mean: dict) -> dict:
    """Issue 20's targets over the runs: ``confirmed`` when all are met, ``not confirmed`` when a run's own verdict or
    the mean speaks against the gain, else ``inconclusive``; with one reason per target (value, threshold, pass)."""
    from synartifact.generator.verdict import FINE_DETAIL_RANGE, GAIN_IN_SPREAD_MIN, JUDGE_RATE_RATIO_MAX

    low, high = FINE_DETAIL_RANGE

    def every(key, test):
        values = [row.get(key) for row in rows]
        return values, all(isinstance(v, (int, float)) and test(v) for v in values)

    targets = []
    values, ok = every("gain_in_spread", lambda v: v >= GAIN_IN_SPREAD_MIN)
    targets.append(("reward gain / seed spread, every run", values, f">= {GAIN_IN_SPREAD_MIN:g}", ok))
    targets.append(
        (
            "judge gain / seed spread, mean",
            mean.get("judge_gain_in_spread"),
            f">= {GAIN_IN_SPREAD_MIN:g}",
            (mean.get("judge_gain_in_spread") or -math.inf) >= GAIN_IN_SPREAD_MIN,
        )
    )
    values, ok = every("judge_gain_in_spread", lambda v: v > 0)
    targets.append(("judge gain / seed spread, every run", values, "> 0", ok))
    ratio = mean.get("judge_rate_ratio")
    targets.append(
        (
            "judge artifact rate refined / base, mean",
            ratio,
            f"<= {JUDGE_RATE_RATIO_MAX:g}",
            ratio is not None and ratio <= JUDGE_RATE_RATIO_MAX,
        )
    )
    values, ok = every("noise_ratio", lambda v: low <= v <= high)
    targets.append(("fine-detail ratio, every run", values, f"within [{low}, {high}]", ok))
    kept = [row.get("content_kept") for row in rows]
    targets.append(("content fidelity kept, every run", kept, "kept", all(k is True for k in kept)))
    strong = [row.get("judge_strong") for row in rows]
    targets.append(("judge strong enough to judge", strong, "binary F1 >= 0.85, every kind", all(strong)))
    reasons = [{"target": t, "value": v, "threshold": th, "passed": bool(p)} for t, v, th, p in targets]
    verdicts = [row.get("verdict") for row in rows]
    if all(r["passed"] for r in reasons):
        verdict = "confirmed"
    elif "not confirmed" in verdicts or (ratio is not None and ratio >= 1 and all(strong)):
        verdict = "not confirmed"
    else:
        verdict = "inconclusive"
    return {"verdict": verdict, "reasons": reasons, "run_verdicts": verdicts}


def _fmt(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    """Run the study and print its figures."""
    import torch

    argv = list(sys.argv[1:] if argv is None else argv)
    argv_given = list(argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="outputs/demo/tiny-sd", help="pre-trained tiny SD folder")
    parser.add_argument("--classifier", default="outputs/demo/classifier", help="the reward's classifier folder")
    parser.add_argument("--dataset", default="outputs/demo/dataset", help="dataset folder (prompts)")
    parser.add_argument("--recipe", default="recipes/tiny/ddpo/config_cpu.yaml", help="DDPO recipe")
    parser.add_argument(
        "--sft-recipe", default="recipes/tiny/sft/config_cpu.yaml", help="SFT recipe for --classifier-seeds"
    )
    parser.add_argument(
        "--sft-args", default="", help="extra `synartifact sft` flags for --classifier-seeds, one string"
    )
    parser.add_argument("--out", default="outputs/bench-ddpo", help="output folder (classifiers/, runs/, evals/)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="DDPO training seeds (default 0 1 2)")
    parser.add_argument(
        "--classifier-seeds",
        type=int,
        nargs="*",
        default=[],
        help="also retrain the reward's classifier with each of these SFT seeds and run every training seed on it",
    )
    parser.add_argument(
        "--eval-seeds", type=int, nargs="+", default=[0, 1, 2], help="evaluation seeds (default 0 1 2)"
    )
    parser.add_argument("--skip-train", action="store_true", help="evaluate existing runs in OUT/runs")
    parser.add_argument("--judge", default=_default("outputs/demo/judge"), help="an independent classifier folder")
    parser.add_argument(
        "--judge-eval",
        default=_default("outputs/demo/judge-eval/metrics.json"),
        help="the judge's own test metrics (its `synartifact evaluate` metrics.json)",
    )
    parser.add_argument("--images-per-prompt", type=int, default=4, help="images per held-out prompt and seed")
    add_json_flag(parser)
    args = parser.parse_args(argv)
    for flag, folder in (("--base", args.base), ("--classifier", args.classifier), ("--dataset", args.dataset)):
        if not (REPO / folder).is_dir():
            # without these DDPO would start from random weights and the study would measure nothing
            raise SystemExit(f"{flag} {folder}: no such folder; run `make demo` first or pass {flag} DIR.")

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, cuda {torch.cuda.is_available()}"
    )
    out = Path(args.out)
    classifiers = [("clf", args.classifier, None)]
    for seed in args.classifier_seeds:
        folder = out / "classifiers" / f"seed{seed}"
        sft_extra = shlex.split(args.sft_args)
        classifiers.append(
            (
                f"clf-seed{seed}",
                _retrain_classifier(args.classifier, seed, folder, args.sft_recipe, sft_extra, args.skip_train),
                seed,
            )
        )
    rows = []
    for label, classifier, classifier_seed in classifiers:
        for seed in args.seeds:
            name = f"{label}-s{seed}"
            run, evaluation = out / "runs" / name, out / "evals" / name
            start = time.perf_counter()
            if not args.skip_train:
                ddpo = ["ddpo", "--config", args.recipe, "--pretrained_model", args.base, "--classifier", classifier]
                ddpo += ["--prompts", args.dataset, "--output_dir", str(run), "--overwrite_output_dir", "true"]
                _run([*ddpo, "--seed", str(seed), *extra])
            minutes = None if args.skip_train else (time.perf_counter() - start) / 60
            evaluate = ["evaluate-generator", "--base", args.base, "--lora", str(run), "--classifier", classifier]
            evaluate += ["--prompts", args.dataset, "--seeds", *map(str, args.eval_seeds)]
            evaluate += ["--images-per-prompt", str(args.images_per_prompt), "--out", str(evaluation), "--overwrite"]
            if args.judge:
                evaluate += ["--judge", args.judge]
                if args.judge_eval:
                    evaluate += ["--judge-eval", args.judge_eval]
            _run(evaluate)
            metrics = json.loads((evaluation / "metrics.json").read_text())
            summary = json.loads((run / "ddpo_summary.json").read_text())
            row = {
                "run": name,
                "classifier": classifier,
                "classifier_seed": classifier_seed,
                "train_seed": seed,
                "judge": args.judge,
                "eval_seeds": args.eval_seeds,
                "images_per_prompt": args.images_per_prompt,
                **run_row(metrics, summary, minutes),
            }
            rows.append(row)
            print(
                f"{name}: reward gain/spread {_fmt(row['gain_in_spread'])}, judge gain/spread "
                f"{_fmt(row.get('judge_gain_in_spread'))}, judge rate {_fmt(row.get('judge_artifact_rate_base'))} -> "
                f"{_fmt(row.get('judge_artifact_rate_refined'))}, drift {_fmt(row['relative_drift'])}, fine-detail "
                f"{_fmt(row['noise_ratio'])}, fidelity {_fmt(row['content_fidelity'])}, verdict {row['verdict']}",
                flush=True,
            )
    mean, spread, study = summarize(rows)
    for key in FIGURES:
        print(f"{key:30s} mean {_fmt(mean[key])}  std {_fmt(spread[key])}")
    print(f"study verdict: {study['verdict']}")
    for reason in study["reasons"]:
        mark = "pass" if reason["passed"] else "FAIL"
        print(f"  {mark}  {reason['target']}: {_fmt(reason['value'])} (target {reason['threshold']})")
    write_result("ddpo_gain", [*rows, {**mean, "study": study}, spread], args.json, argv_given)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
