"""benchmarks/report.py renders benchmarks/README.md's tables from the benchmark scripts' result files only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
SCRIPTS = (
    "dataset_throughput",
    "sft_overhead",
    "reward_modes",
    "ddpo_gain",
    "stage_memory",
    "vision_pretrain",
    "kind_learnability",
    "reward_shortcuts",
    "locate_boxes",
    "repair_settings",
)
BEGIN = "<!-- report.py: begin (rendered from benchmarks/results/*.json; do not edit by hand) -->"
END = "<!-- report.py: end -->"


def _record(benchmark: str, date: str, rows: list[dict], commit: str = "0123456789abcdef", **extra) -> dict:
    return {
        "schema": 1,
        "benchmark": benchmark,
        "command": f"python benchmarks/{benchmark}.py --n 200",
        "argv": ["--n", "200"],
        "date": date,
        "machine": {"platform": "Linux-6.18-x86_64", "machine": "x86_64", "processor": "x86_64", "cpu_count": 2,
                    "load_average": [1.5, 1.0, 0.5]},
        "commit": commit,
        "dirty": False,
        "versions": {"torch": "2.13.0+cpu", "transformers": "5.24.0", "trl": "0.23.1", "diffusers": "0.42.1"},
        "rows": rows,
        **extra,
    }  # fmt: skip


THROUGHPUT = {
    "synth_images_per_cpu_s": 142.04,
    "synth_images_per_s_wall": 82.0,
    "synthesize_dataset_images_per_s": 81.96,
    "build_images_per_s": 260.0,
    "load_iterate_images_per_s": 258.0,
    "n": 200,
    "size": 256,
    "runs": 3,
}


def _fixtures(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "dataset_throughput-old.json": _record(
            "dataset_throughput", "2026-11-25T10:00:00+00:00", [{**THROUGHPUT, "synth_images_per_cpu_s": 99.0}]
        ),
        "dataset_throughput-new.json": _record(
            "dataset_throughput", "2026-12-02T09:30:00+00:00", [THROUGHPUT], commit="fedcba9876543210", dirty=True
        ),
        "stage_memory-1.json": _record(
            "stage_memory",
            "2026-12-01T08:00:00+00:00",
            [
                {"stage": "sft", "seconds": 11.14, "peak_rss_mib": 769.4},
                {
                    "stage": "ddpo",
                    "seconds": 12.0,
                    "peak_rss_mib": 784.0,
                    "sampling_share": 0.39,
                    "reward_share": 0.02,
                    "training_share": 0.59,
                },
            ],
        ),
        "ddpo_gain-1.json": _record(
            "ddpo_gain",
            "2026-12-01T12:00:00+00:00",
            [
                {
                    "classifier": "outputs/demo/classifier",
                    "judge": "outputs/demo/judge",
                    "epochs": 130,
                    "ddpo_minutes": 4.2,
                    "reward_base": 0.939,
                    "reward_refined": 0.946,
                    "gain_in_spread": 2.44,
                    "judge_gain_in_spread": 4.8,
                    "judge_artifact_rate_base": 0.583,
                    "judge_artifact_rate_refined": 0.354,
                    "sampling_share": 0.39,
                    "reward_share": 0.02,
                    "training_share": 0.59,
                    "relative_drift": 0.44,
                }
            ],
        ),
    }
    run = {
        "classifier": "outputs/demo/classifier",
        "judge": "outputs/demo/judge",
        "epochs": 2,
        "verdict": "inconclusive",
    }
    files["ddpo_gain-2.json"] = _record(
        "ddpo_gain",
        "2026-12-04T12:00:00+00:00",
        [
            {**run, "run": "clf-s0", "gain_in_spread": -2.14, "noise_ratio": 0.71, "content_fidelity": 0.29},
            {**run, "run": "clf-s1", "gain_in_spread": 3.5, "noise_ratio": 1.01, "content_fidelity": 0.98},
            {"run": "mean", "gain_in_spread": 0.68, "noise_ratio": 0.86, "verdict": "not confirmed", "runs": 2},
            {"run": "spread (std over runs)", "gain_in_spread": 4.0, "runs": 2},
        ],
    )
    for name, record in files.items():
        (folder / name).write_text(json.dumps(record))
    return folder


README = f"# Benchmarks\n\nProse that stays.\n\n{BEGIN}\nstale hand-copied row\n{END}\n\n## After\n\nMore prose.\n"


def _report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCH / "report.py"), *args], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def test_report_renders_the_rows_of_the_result_files(tmp_path):
    results = _fixtures(tmp_path / "results")
    readme = tmp_path / "README.md"
    readme.write_text(README)
    done = _report("--results", str(results), "--readme", str(readme))
    assert done.returncode == 0, done.stderr
    text = readme.read_text()
    # the prose around the markers is kept, what was between them is replaced
    assert text.startswith("# Benchmarks\n\nProse that stays.\n\n" + BEGIN) and text.endswith(
        f"{END}\n\n## After\n\nMore prose.\n"
    )
    assert "stale hand-copied row" not in text
    machine = "Linux-6.18-x86_64, 2 CPUs, load 1.5"
    versions = "torch 2.13.0+cpu, transformers 5.24.0, trl 0.23.1, diffusers 0.42.1"
    new = (
        f"| 142.0 | 82.0 | 82.0 | 260.0 | 258.0 | 200 | 256 | 2026-12-02 09:30 | {machine} | `fedcba9876` +changes | "
        f"{versions} | `python benchmarks/dataset_throughput.py --n 200` |"
    )
    old = f"| 99.0 | 82.0 | 82.0 | 260.0 | 258.0 | 200 | 256 | 2026-11-25 10:00 | {machine} | `0123456789` | "
    assert new in text and old in text
    assert text.index(new) < text.index(old)  # newest run first
    # one row per stage, each with its run's date, machine and commit
    common = (
        f"2026-12-01 08:00 | {machine} | `0123456789` | {versions} | `python benchmarks/stage_memory.py --n 200` |"
    )
    assert f"| sft | 11.1 | 769 |  | {common}" in text
    assert f"| ddpo | 12.0 | 784 | 39% / 2% / 59% | {common}" in text
    # a result of the single-run era renders in the study's columns: what it lacks is "-"
    assert (
        "| - | `outputs/demo/classifier` | `outputs/demo/judge` | 130 | 4.2 | 0.9390 -> 0.9460 | 2.44 | 4.80 | - | "
        "0.583 -> 0.354 | 0.44 | - | - | - | 39% / 2% / 59% | 2026-12-01 12:00 |"
    ) in text
    # the study: one row per run, then the mean (with the study's verdict) and the spread over runs
    clf = "`outputs/demo/classifier` | `outputs/demo/judge` | 2 | - | - |"
    first = f"| clf-s0 | {clf} -2.14 | - | - | - | - | 0.71 | 0.29 | inconclusive |"
    second = f"| clf-s1 | {clf} 3.50 | - | - | - | - | 1.01 | 0.98 | inconclusive |"
    mean = "| mean | - | - | - | - | - | 0.68 | - | - | - | - | 0.86 | - | not confirmed |"
    spread = "| spread (std over runs) | - | - | - | - | - | 4.00 | - | - | - | - | - | - | - |"
    assert all(line in text for line in (first, second, mean, spread))
    assert text.index(first) < text.index(second) < text.index(mean) < text.index(spread)
    # benchmarks without a result file say so, with the command that writes one
    assert "No result file yet: run `python benchmarks/sft_overhead.py`." in text
    assert "No result file yet: run `python benchmarks/reward_modes.py`." in text
    # --check: up to date now; stale once a result file is added
    assert _report("--results", str(results), "--readme", str(readme), "--check").returncode == 0
    (results / "sft_overhead-1.json").write_text(
        json.dumps(_record("sft_overhead", "2026-12-03T00:00:00+00:00", [{"overhead_train_loop_pct": 1.5}]))
    )
    stale = _report("--results", str(results), "--readme", str(readme), "--check")
    assert stale.returncode == 1 and "not what" in stale.stdout
    assert "| - | - | +1.5 % |" in _report("--results", str(results), "--stdout").stdout


def test_report_refuses_a_file_that_is_not_a_result(tmp_path):
    results = _fixtures(tmp_path / "results")
    (results / "notes.json").write_text(json.dumps({"figure": "142 images/s"}))
    done = _report("--results", str(results), "--stdout")
    assert done.returncode != 0 and "notes.json is not a benchmark result file" in done.stderr


def test_report_needs_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\n| hand | copied |\n")
    done = _report("--results", str(_fixtures(tmp_path / "results")), "--readme", str(readme))
    assert done.returncode != 0 and "markers" in done.stderr
    assert readme.read_text() == "# Benchmarks\n\n| hand | copied |\n"


def test_benchmarks_readme_is_what_the_result_files_render():
    done = _report("--check")
    assert done.returncode == 0, f"{done.stdout}{done.stderr}: run python benchmarks/report.py"


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_benchmark_writes_a_result_file(script):
    source = (BENCH / f"{script}.py").read_text()
    assert "add_json_flag(parser)" in source and f'write_result("{script}", ' in source
    help_text = subprocess.run(
        [sys.executable, str(BENCH / f"{script}.py"), "--help"], capture_output=True, text=True, timeout=120
    ).stdout
    assert "--json JSON" in help_text


def test_a_real_run_writes_a_result_that_renders(tmp_path):
    """dataset_throughput.py on tiny settings: its result file records the run and report.py renders it."""
    out = tmp_path / "results" / "run.json"
    argv = ["--n", "4", "--size", "32", "--runs", "1", "--json", str(out)]
    done = subprocess.run(
        [sys.executable, str(BENCH / "dataset_throughput.py"), *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["benchmark"] == "dataset_throughput" and record["argv"] == argv
    assert record["command"] == "python benchmarks/dataset_throughput.py " + " ".join(argv)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if head.returncode == 0:
        assert record["commit"] == head.stdout.strip() and isinstance(record["dirty"], bool)
    assert record["machine"]["cpu_count"] >= 1 and record["machine"]["platform"]
    assert record["date"].endswith("+00:00") and record["versions"]["datasets"]
    (row,) = record["rows"]
    assert row["n"] == 4 and row["size"] == 32 and row["synth_images_per_cpu_s"] > 0
    printed = _report("--results", str(out.parent), "--stdout").stdout
    assert f"| {row['synth_images_per_cpu_s']:.1f} | {row['synth_images_per_s_wall']:.1f} |" in printed
    assert record["date"].replace("T", " ")[:16] in printed


def _study_rows() -> list[dict]:
    figures = {
        "gain_in_spread": (2.0, 4.0, 6.0),
        "judge_gain_in_spread": (3.0, 1.0, 2.0),
        "judge_rate_ratio": (0.5, 0.8, 0.8),
        "noise_ratio": (1.0, 0.85, 1.15),
    }
    verdicts = ("confirmed", "inconclusive", "inconclusive")  # a run's judge gain 1.0 is noise on its own
    return [
        {**{k: v[i] for k, v in figures.items()}, "content_kept": True, "judge_strong": True, "verdict": verdicts[i]}
        for i in range(3)
    ]


def test_ddpo_gain_study_mean_spread_and_verdict():
    """The seed study's mean and spread over runs (by hand: 2, 4, 6 -> mean 4, sample std 2) and its verdict against
    issue 20's targets: every run for the reward gain, fine detail and content; the mean for the judge."""
    sys.path.insert(0, str(BENCH))
    import ddpo_gain

    rows = _study_rows()
    mean, spread, study = ddpo_gain.summarize(rows)
    assert mean["gain_in_spread"] == 4.0 and spread["gain_in_spread"] == 2.0
    assert mean["judge_gain_in_spread"] == 2.0 and spread["judge_gain_in_spread"] == 1.0
    assert mean["judge_rate_ratio"] == pytest.approx(0.7) and mean["runs"] == 3
    assert mean["content_fidelity"] is None  # not in every run: no mean
    assert study["verdict"] == "confirmed" and mean["verdict"] == "confirmed"
    assert all(reason["passed"] for reason in study["reasons"])

    rows[1]["judge_gain_in_spread"] = -0.5  # the mean stays >= 2? no: (3 - 0.5 + 2) / 3 = 1.5, and one run <= 0
    study = ddpo_gain.summarize(rows)[2]
    failed = [r["target"] for r in study["reasons"] if not r["passed"]]
    assert failed == ["judge gain / seed spread, mean", "judge gain / seed spread, every run"]
    assert study["verdict"] == "inconclusive"  # no run's own verdict refutes the gain

    rows = _study_rows()
    rows[2].update(content_kept=False, verdict="not confirmed")  # one run turned its scenes into blanks
    study = ddpo_gain.summarize(rows)[2]
    assert study["verdict"] == "not confirmed"
    assert [r["target"] for r in study["reasons"] if not r["passed"]] == ["content fidelity kept, every run"]

    rows = _study_rows()
    for row in rows:
        row["judge_strong"] = False
    assert ddpo_gain.summarize(rows)[2]["verdict"] == "inconclusive"


def test_ddpo_gain_refuses_to_run_without_the_demos_outputs(tmp_path):
    """Without a pre-trained generator, classifier and dataset DDPO would start from random weights: the study stops
    before it trains anything and says what to run."""
    sys.path.insert(0, str(BENCH))
    import ddpo_gain

    missing = tmp_path / "tiny-sd"
    with pytest.raises(SystemExit, match=r"--base .*tiny-sd: no such folder; run `make demo` first"):
        ddpo_gain.main(["--base", str(missing), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
