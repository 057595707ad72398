"""Render the tables of ``benchmarks/README.md`` from the benchmark scripts' result files.

    python benchmarks/report.py                  # rewrite the rendered part of benchmarks/README.md
    python benchmarks/report.py --check          # exit 1 when the README is not what the result files render
    python benchmarks/report.py --stdout         # print the rendered part instead
    python benchmarks/report.py --results DIR --readme FILE

Every script in this folder writes one JSON file per run (``benchmarks/results/``, or ``--json PATH``; see
``_record.py``). This script turns each file's rows into table rows, newest run first, each with the run's date,
machine (platform, CPU count, load average at the end of the run), commit (``+changes`` when the working tree
differed from it), package versions and command line. Only the README's part between the two ``report.py``
markers is replaced; the prose around it is left as it is. A figure that no result file holds is not rendered.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BEGIN = "<!-- report.py: begin (rendered from benchmarks/results/*.json; do not edit by hand) -->"
END = "<!-- report.py: end -->"
_SPLIT = ("sampling", "reward", "training")


def _num(key: str, fmt: str = "{:.1f}") -> Callable[[dict], str]:
    def cell(row: dict) -> str:
        value = row.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "-" if value is None else str(value)
        return fmt.format(value)

    return cell


def _pct(key: str) -> Callable[[dict], str]:
    return _num(key, "{:+.1f} %")


def _share(key: str) -> Callable[[dict], str]:
    return _num(key, "{:.0%}")


def _text(key: str) -> Callable[[dict], str]:
    return lambda row: "-" if row.get(key) is None else f"`{row[key]}`"


def _per_kind(key: str) -> Callable[[dict], str]:
    """``{kind: figure}`` as "kind 0.12, kind 0.34" ("-" when the row has none)."""
    return lambda row: ", ".join(f"{k} {v:.2f}" for k, v in (row.get(key) or {}).items()) or "-"


def _arrow(first: str, second: str, fmt: str = "{:.4f}") -> Callable[[dict], str]:
    def cell(row: dict) -> str:
        a, b = row.get(first), row.get(second)
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            return "-"
        return f"{fmt.format(a)} -> {fmt.format(b)}"

    return cell


# benchmark -> (title, what the figures are checked against, the command that writes its result, columns)
SPECS: dict[str, tuple[str, str, str, list[tuple[str, Callable[[dict], str]]]]] = {
    "dataset_throughput": (
        "Dataset stage throughput",
        "synthesis >= 50 images per CPU-second (one core) at 256 px",
        "python benchmarks/dataset_throughput.py",
        [
            ("synth images/CPU-s", _num("synth_images_per_cpu_s")),
            ("synth images/s (wall)", _num("synth_images_per_s_wall")),
            ("`synthesize_dataset` images/s", _num("synthesize_dataset_images_per_s")),
            ("build (JSONL) images/s", _num("build_images_per_s")),
            ("load + iterate images/s", _num("load_iterate_images_per_s")),
            ("n", _num("n", "{}")),
            ("px", _num("size", "{}")),
        ],
    ),
    "sft_overhead": (
        "SFT: `synartifact.sft` vs a bare TRL `SFTTrainer`",
        "train-loop overhead <= 10 %",
        "python benchmarks/sft_overhead.py",
        [
            ("bare TRL samples/s", _num("bare_samples_per_s", "{:.2f}")),
            ("synartifact.sft samples/s", _num("ours_samples_per_s", "{:.2f}")),
            ("overhead, train loop", _pct("overhead_train_loop_pct")),
            ("overhead, end to end", _pct("overhead_end_to_end_pct")),
            ("steps", _num("steps", "{}")),
            ("runs", _num("runs", "{}")),
        ],
    ),
    "reward_modes": (
        "Reward `score` vs `generate`",
        "`score` >= 5x the images/s of `generate`, with the same label sets (agreement 1.000)",
        "python benchmarks/reward_modes.py",
        [
            ("classifier", _text("classifier")),
            ("answer mode", _num("answer_mode")),
            ("images", _num("image_source")),
            ("batch", _num("batch_size", "{}")),
            ("tokens/image (generate)", _num("generated_tokens_per_image")),
            ("score images/s", _num("score_images_per_s")),
            ("generate images/s", _num("generate_images_per_s")),
            ("speedup", _num("speedup", "{:.2f}")),
            ("predicted", _num("predicted_speedup", "{:.2f}")),
            ("agreement", _num("agreement", "{:.3f}")),
        ],
    ),
    "ddpo_gain": (
        "DDPO gain across training seeds (and reward classifiers)",
        "every run's reward gain >= 2x its seed spread; judge gain >= 2x on the mean and > 0 on every run; judge "
        "artifact rate <= 0.8x the base's on the mean; fine-detail ratio within [0.85, 1.15] and content fidelity "
        "kept on every run; a judge strong enough to judge (binary F1 >= 0.85). One row per run, then their mean "
        "(its verdict: the study's) and spread",
        "python benchmarks/ddpo_gain.py --seeds 0 1 2",
        [
            ("run", _num("run")),
            ("classifier", _text("classifier")),
            ("judge", _text("judge")),
            ("epochs", _num("epochs", "{}")),
            ("DDPO min", _num("ddpo_minutes")),
            ("reward base -> refined", _arrow("reward_base", "reward_refined")),
            ("gain / spread", _num("gain_in_spread", "{:.2f}")),
            ("judge gain / spread", _num("judge_gain_in_spread", "{:.2f}")),
            ("reward artifact rate", _arrow("reward_artifact_rate_base", "reward_artifact_rate_refined", "{:.3f}")),
            ("judge artifact rate", _arrow("judge_artifact_rate_base", "judge_artifact_rate_refined", "{:.3f}")),
            ("drift", _num("relative_drift", "{:.2f}")),
            ("fine-detail ratio", _num("noise_ratio", "{:.2f}")),
            ("content fidelity", _num("content_fidelity", "{:.2f}")),
            ("verdict", _num("verdict")),
            ("sampling / reward / training", lambda r: " / ".join(_share(f"{k}_share")(r) for k in _SPLIT)),
        ],
    ),
    "vision_pretrain": (
        "Tiny VLM vision pre-training: the objective's terms",
        "the default objective (descriptor weight 1) reaches a higher held-out macro-F1 than labels and boxes alone "
        "(weight 0) in the same steps",
        "python benchmarks/vision_pretrain.py --dataset outputs/demo/dataset",
        [
            ("arch", _text("arch")),
            ("descriptor weight", _num("descriptor_weight", "{:g}")),
            ("epochs", _num("epochs", "{}")),
            ("steps", _num("steps", "{}")),
            ("images", _num("images", "{}")),
            ("seconds", _num("seconds")),
            ("probe macro-F1", _num("macro_f1", "{:.3f}")),
            ("kinds with F1 >= 0.5", lambda r: f"{r['kinds_over_0_5']} of {r['kinds']}" if "kinds" in r else "-"),
            ("token box IoU", _num("box_iou", "{:.3f}")),
            ("then SFT epochs", _num("sft_epochs", "{:g}")),
            ("SFT s", _num("sft_seconds")),
            ("SFT macro-F1", _num("sft_macro_f1", "{:.3f}")),
            (
                "SFT kinds F1 >= 0.5",
                lambda r: f"{r['sft_kinds_over_0_5']} of {r['sft_kinds']}" if "sft_kinds" in r else "-",
            ),
            ("SFT box IoU (tp)", _num("sft_box_iou_tp", "{:.3f}")),
            ("note", _text("note")),
        ],
    ),
    "kind_learnability": (
        "Reference: how learnable each synthesizable kind is in a time budget (a small CNN, no language model)",
        "none of its own: what it reaches bounds what the demo's tiny VLM can be asked to reach in the same time "
        "(issue 19's target: macro-F1 >= 0.80 over the ten kinds, no kind under 0.5)",
        "python benchmarks/kind_learnability.py --dataset outputs/ds10-all-kinds",
        [
            ("model", _text("model")),
            ("seconds", _num("seconds")),
            ("steps", _num("steps", "{}")),
            ("images", _num("images", "{}")),
            ("px", _num("image_size", "{}")),
            ("macro-F1", _num("macro_f1", "{:.3f}")),
            ("kinds with F1 >= 0.5", lambda r: f"{r['kinds_over_0_5']} of {r['kinds']}" if "kinds" in r else "-"),
            ("weakest kind", lambda r: f"{r['weakest']} {r['weakest_f1']:.2f}" if "weakest" in r else "-"),
            ("per-kind F1", _per_kind("per_kind_f1")),
        ],
    ),
    "locate_boxes": (
        "Occlusion boxes for a classifier without boxes: located against the injected artifacts' true boxes",
        "beat both blind boxes on IoU and on the share of the true box covered (issue 19, item 3: the repair's masks "
        "come from the classifier, not the dataset)",
        "python benchmarks/locate_boxes.py",
        [
            ("method", _text("method")),
            ("classifier", _text("classifier")),
            ("images", _num("images", "{}")),
            ("located / asked", lambda r: f"{r['located']} / {r['asked']}" if "asked" in r else "-"),
            ("mean IoU", _num("iou", "{:.3f}")),
            ("IoU >= 0.5", _num("iou_over_0_5", "{:.2f}")),
            ("true box covered", _num("coverage", "{:.2f}")),
            ("box area", _num("area", "{:.3f}")),
            ("s per image", _num("seconds_per_image", "{:.2f}")),
            ("IoU per kind", _per_kind("per_kind_iou")),
        ],
    ),
    "repair_settings": (
        "The demo's repair settings: mask margin and rounds, on tuning images its report never shows",
        "the chosen setting (the classifier's highest improved share, fewest rounds on a tie) is the demo's; the "
        "judge's rates are shown, never used to choose (issue 19, item 3)",
        "python benchmarks/repair_settings.py",
        [
            ("margin", _num("margin", "{:.2f}")),
            ("rounds", _num("rounds", "{}")),
            ("images (after the report's)", lambda r: f"{r['images']} (after {r['skip']})" if "skip" in r else "-"),
            ("improved", _num("improved", "{:.3f}")),
            ("worse", _num("worse", "{:.3f}")),
            ("classifier artifact rate", _arrow("artifact_rate_before", "artifact_rate_after", "{:.3f}")),
            ("judge artifact rate", _arrow("judge_artifact_rate_before", "judge_artifact_rate_after", "{:.3f}")),
            ("mask area", _num("mean_mask_area", "{:.3f}")),
            ("chosen", lambda r: "yes" if r.get("chosen") else "-"),
            ("seconds", _num("seconds", "{:.0f}")),
        ],
    ),
    "reward_shortcuts": (
        "Which way the reward points: base samples scored before and after a change a generator could make",
        "none of its own: a change that raises the reward on most samples without removing an artifact (noise, "
        "blur, a blank) is a direction DDPO can climb instead of the artifacts (issue 20, item 2)",
        "python benchmarks/reward_shortcuts.py",
        [
            ("model", _text("model")),
            ("change", _text("change")),
            ("samples", _num("n", "{}")),
            ("mean score", _num("mean_score", "{:.4f}")),
            (
                "change in score (sem)",
                lambda r: (
                    f"{r['mean_delta']:+.4f} ({r['delta_sem']:.4f})"
                    if isinstance(r.get("delta_sem"), (int, float))
                    else "-"
                ),
            ),
            ("share of samples scored higher", _num("share_higher", "{:.2f}")),
            ("spread of the unchanged samples' scores", _num("base_spread", "{:.4f}")),
        ],
    ),
    "stage_memory": (
        "Time and peak memory per stage (tiny models, each stage its own process)",
        "DDPO epoch split: reward <= 20 %",
        "python benchmarks/stage_memory.py",
        [
            ("stage", _num("stage")),
            ("seconds", _num("seconds")),
            ("peak RSS MiB", _num("peak_rss_mib", "{:.0f}")),
            (
                "DDPO epoch split (sampling / reward / training)",
                lambda r: " / ".join(_share(f"{k}_share")(r) for k in _SPLIT) if "reward_share" in r else "",
            ),
        ],
    ),
}


def load_results(folder: Path) -> list[dict[str, Any]]:
    """Every result file in ``folder``, newest first; a file that is not a result is an error, not skipped."""
    results = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record.get("rows"), list) or not record.get("benchmark") or not record.get("date"):
                raise ValueError("needs 'benchmark', 'date' and a list of 'rows'")
        except (json.JSONDecodeError, AttributeError, ValueError) as err:
            raise SystemExit(f"{path} is not a benchmark result file: {err}") from err
        results.append({**record, "file": path.name})
    return sorted(results, key=lambda r: (r["date"], r["file"]), reverse=True)


def _machine(record: dict) -> str:
    m = record.get("machine") or {}
    parts = [f"{m.get('platform', '?')}", f"{m.get('cpu_count', '?')} CPUs"]
    if m.get("processor") and m.get("processor") != m.get("machine"):
        parts.insert(1, str(m["processor"]))
    if m.get("load_average"):
        parts.append(f"load {m['load_average'][0]}")
    return ", ".join(parts)


def _commit(record: dict) -> str:
    commit = record.get("commit")
    if not commit:
        return "unknown"
    return f"`{commit[:10]}`" + (" +changes" if record.get("dirty") else "")


def _versions(record: dict) -> str:
    v = record.get("versions") or {}
    return ", ".join(f"{k} {v[k]}" for k in ("torch", "transformers", "trl", "diffusers") if v.get(k))


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(results: list[dict[str, Any]]) -> str:
    """The rendered Markdown: one table per benchmark, one row per result row, newest run first."""
    by_name: dict[str, list[dict]] = {}
    for record in results:
        by_name.setdefault(record["benchmark"], []).append(record)
    out = []
    names = list(SPECS) + sorted(set(by_name) - set(SPECS))
    for name in names:
        records = by_name.get(name, [])
        if name in SPECS:
            title, goal, command, columns = SPECS[name]
        else:
            keys = list(dict.fromkeys(k for r in records for row in r["rows"] for k in row))
            title, goal, command, columns = name, "", f"python benchmarks/{name}.py", [(k, _num(k)) for k in keys]
        out += [f"### {title}", ""]
        if goal:
            out += [f"Goal: {goal}.", ""]
        if not records:
            out += [f"No result file yet: run `{command}`.", ""]
            continue
        header = [h for h, _ in columns] + ["date (UTC)", "machine", "commit", "versions", "command"]
        out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for record in records:
            when = record["date"].replace("T", " ")[:16]
            common = [when, _machine(record), _commit(record), _versions(record), f"`{record.get('command', '?')}`"]
            for row in record["rows"]:
                cells = [cell(row) for _, cell in columns] + common
                out.append("| " + " | ".join(_escape(c) for c in cells) + " |")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def splice(readme: str, rendered: str) -> str:
    """``readme`` with the part between the markers replaced by ``rendered``."""
    if readme.count(BEGIN) != 1 or readme.count(END) != 1 or readme.index(BEGIN) > readme.index(END):
        raise SystemExit(f"The README must hold the markers once each, in order:\n{BEGIN}\n{END}")
    head, rest = readme.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n\n{rendered}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=HERE / "results", help="folder of result files")
    parser.add_argument("--readme", type=Path, default=HERE / "README.md", help="the README to render into")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--check", action="store_true", help="exit 1 when the README is not up to date")
    how.add_argument("--stdout", action="store_true", help="print the rendered tables, write nothing")
    args = parser.parse_args(argv)

    rendered = render(load_results(args.results))
    if args.stdout:
        sys.stdout.write(rendered)
        return 0
    before = args.readme.read_text(encoding="utf-8")
    after = splice(before, rendered)
    if args.check:
        if after != before:
            print(f"{args.readme} is not what {args.results} renders: run python benchmarks/report.py")
            return 1
        return 0
    if after != before:
        args.readme.write_text(after, encoding="utf-8")
    print(f"{args.readme}: {len(load_results(args.results))} result file(s) rendered")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
