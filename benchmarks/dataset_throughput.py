"""Throughput of the dataset stage: synthesis (per core, 256 px), build from JSONL, load_dataset + iterate.

    python benchmarks/dataset_throughput.py [--n 200] [--size 256] [--runs 3] [--json PATH]

Prints the median images/s of several runs and the machine; the last line is a one-line summary. The figures go to
a result file (``--json``, default ``benchmarks/results/``) that ``python benchmarks/report.py`` renders.
The issue's target: synthesis >= 50 images/s per core at 256 px.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _record import add_json_flag, write_result

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _median_rate(fn, n: int, runs: int, cpu: bool = False) -> float:
    """Median images/s over ``runs``; with ``cpu`` per CPU-second of this process (immune to other load)."""
    rates = []
    clock = time.process_time if cpu else time.perf_counter
    for r in range(runs):
        t = clock()
        fn(r)
        rates.append(n / (clock() - t))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    add_json_flag(parser)
    args = parser.parse_args()

    import datasets

    from synartifact.data import build_dataset, load_artifact_dataset, save_hub_folder, synthesize_dataset
    from synartifact.data.synth import iter_synthesized, synthesize_example

    datasets.disable_progress_bars()
    n, size = args.n, args.size
    print(
        f"machine: {platform.platform()}, python {platform.python_version()}, {os.cpu_count()} logical cores, "
        f"datasets {datasets.__version__}"
    )
    synthesize_example(0, size=size)  # load the photos once, as every worker does

    def synth_rows(r):
        for _ in iter_synthesized(n, size=size, seed=100 + r, progress=False):
            pass

    synth_wall = _median_rate(synth_rows, n, args.runs)
    synth_rate = _median_rate(synth_rows, n, args.runs, cpu=True)
    print(
        f"synth (rows + PNG encoding, 1 process, {size} px): {synth_rate:.1f} images per CPU-second "
        f"(wall clock: {synth_wall:.1f} images/s; lower when other processes share the cores)"
    )

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cache = tmp / "cache"

        def synth_ds(r):
            datasets.config.HF_DATASETS_CACHE = cache / f"s{r}"
            synthesize_dataset(n, size=size, seed=200 + r)

        ds_rate = _median_rate(synth_ds, n, args.runs)
        print(f"synthesize_dataset end to end (1 process, {size} px): {ds_rate:.1f} images/s")

        imgs = tmp / "imgs"
        imgs.mkdir()
        lines = []
        for i, row in enumerate(iter_synthesized(n, size=size, seed=1, progress=False)):
            (imgs / f"{i:05d}.png").write_bytes(row["image"]["bytes"])
            arts = [
                {"label": a["label"], "bbox": [v * size for v in a["bbox"]], "caption": a["caption"]}
                for a in row["artifacts"]
            ]
            lines.append(json.dumps({"image": f"{i:05d}.png", "prompt": row["prompt"], "artifacts": arts}))
        ann = tmp / "ann.jsonl"
        ann.write_text("\n".join(lines) + "\n")
        build_rate = _median_rate(lambda r: build_dataset("jsonl", ann, imgs, progress=False), n, args.runs)
        print(f"build --format jsonl (check + convert, in memory): {build_rate:.1f} images/s")

        folder = save_hub_folder(synthesize_dataset(n, size=size, seed=1), tmp / "hub")

        def load_iter(r):
            datasets.config.HF_DATASETS_CACHE = cache / f"l{r}"
            for split in load_artifact_dataset(folder).values():
                for row in split:
                    row["image"].load()

        load_rate = _median_rate(load_iter, n, args.runs)
        print(f"load_dataset(folder) + iterate with image decoding: {load_rate:.1f} images/s")
    print(
        f"SUMMARY synth {synth_rate:.0f} img/s/core ({'meets' if synth_rate >= 50 else 'BELOW'} the 50 target) | "
        f"synth dataset {ds_rate:.0f} img/s | build {build_rate:.0f} img/s | load+iterate {load_rate:.0f} img/s | "
        f"n={n} size={size} runs={args.runs}"
    )
    sys.stdout.flush()
    row = {
        "synth_images_per_cpu_s": synth_rate,
        "synth_images_per_s_wall": synth_wall,
        "synthesize_dataset_images_per_s": ds_rate,
        "build_images_per_s": build_rate,
        "load_iterate_images_per_s": load_rate,
        "n": n,
        "size": size,
        "runs": args.runs,
    }
    write_result("dataset_throughput", [row], args.json)


if __name__ == "__main__":
    main()
