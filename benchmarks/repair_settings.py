"""The demo's repair settings (mask margin, rounds), chosen on images its report never shows, by the classifier alone.

    python benchmarks/repair_settings.py                      # after make demo: the grid below, 64 tuning images
    python benchmarks/repair_settings.py --grid 0.05:4 0.05:6 --n 64 [--skip 32] [--json PATH]

The demo's repair stage (``synartifact.demo``) reports on the first 32 held-out test images with injected
artifacts. This script runs the same repair (:func:`synartifact.repair.repair_folder`: occlusion boxes, no hints,
the demo's inpainter and steps) on the next ``--n`` such images (after ``--skip``) for each ``margin:rounds`` of
``--grid``, and marks as chosen the setting with the highest share of images the classifier finds improved (the
fewest rounds on a tie). The independent judge's artifact rates before and after are measured and shown, never used
to choose: a setting picked by the judge's figure would be optimized against the judge.

Figures go to a result file (``--json``, default ``benchmarks/results/``) that ``python benchmarks/report.py``
renders into benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _record import add_json_flag, write_result

DEFAULT_GRID = ("0.05:4", "0.1:4", "0.15:4", "0.05:6", "0.1:6", "0.05:8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", default="outputs/demo", help="a finished `synartifact demo` output folder")
    parser.add_argument("--grid", nargs="+", default=list(DEFAULT_GRID), help="margin:rounds settings to try")
    parser.add_argument("--n", type=int, default=64, help="tuning images with injected artifacts (default 64)")
    parser.add_argument("--skip", type=int, default=32, help="images the demo's report uses, left out (default 32)")
    add_json_flag(parser)
    args = parser.parse_args(argv)

    from synartifact.data import load_artifact_dataset
    from synartifact.demo.settings import DemoSettings
    from synartifact.demo.stages import _judged_repair
    from synartifact.repair import repair_folder

    grid = []
    for item in args.grid:
        try:
            margin, rounds = item.split(":")
            grid.append((float(margin), int(rounds)))
        except ValueError:
            raise SystemExit(f"--grid {item!r}: expected margin:rounds, e.g. 0.05:6") from None
    demo = Path(args.demo)
    settings = DemoSettings(out=demo)
    test = load_artifact_dataset(str(demo / "dataset"), split="test")
    rows = [i for i, artifacts in enumerate(test["artifacts"]) if artifacts][args.skip : args.skip + args.n]
    if not rows:
        raise SystemExit(f"{demo / 'dataset'} has no test image with artifacts after the first {args.skip}.")
    images = test.select(rows)

    out = []
    for margin, rounds in grid:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            summary = repair_folder(
                str(demo / "classifier"),
                str(demo / "tiny-sd-inpaint"),
                images,
                Path(tmp) / "repair",
                rounds=rounds,
                margin=margin,
                seed=settings.seed,
                num_inference_steps=settings.repair_inference_steps,
                unboxed="locate",
                device="cpu",
                progress=False,
                extra_metrics=lambda results: _judged_repair(settings, results),
            )
        row = {"margin": margin, "rounds": rounds, "images": len(rows), "skip": args.skip}
        row.update({k: summary[k] for k in ("improved", "worse", "artifact_rate_before", "artifact_rate_after")})
        row.update(
            {k: summary[k] for k in ("mean_mask_area", "judge_artifact_rate_before", "judge_artifact_rate_after")}
        )
        row["seconds"] = time.perf_counter() - start
        out.append(row)
        print(row, flush=True)
    best = max(out, key=lambda r: (r["improved"], -r["rounds"], -r["margin"]))
    for row in out:
        row["chosen"] = row is best
    write_result("repair_settings", out, args.json, argv=sys.argv[1:] if argv is None else argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
