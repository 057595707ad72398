"""The main job end to end, offline, on tiny models: ``synartifact demo`` (``make demo``).

Stages, each also its own command, each writing to its own folder under ``--out`` (default ``outputs/demo``):

1. ``dataset``         synthesize SynArtifact-style data on bundled photographs -> Hub folder (card + parquet)
2. ``judge-dataset``   the judge's own data: the same kinds synthesized with another seed (images the reward never sees)
3. ``tiny-vlm``        build the tiny VLM (LLaVA) from configs (the untrained baseline)
4. ``judge-vlm``       build the judge's tiny VLM: another family (Idefics3) and seed
5. ``judge``           train the independent judge on ``judge-dataset``     } the side lane: a second process, beside
6. ``judge-eval``      the judge against its zero-shot base on the test split } stages 7-9 (one thread each)
7. ``sft``             fine-tune the tiny VLM with TRL SFTTrainer on the train split (``recipes/tiny/sft/config_cpu.yaml``):
                       the classifier whose verdict is DDPO's reward
8. ``reward-check``    pair accuracy: does the reward rank a clean image above the same image with an artifact?
9. ``evaluate``        the fine-tuned classifier against its zero-shot base on the test split
10. ``tiny-sd``        build the tiny Stable Diffusion pipeline from configs and pre-train it on the dataset's
                       images and prompts (the offline stand-in for SD 1.5's pre-training; random weights draw noise)
11. ``ddpo``           fine-tune the generator with TRL DDPOTrainer on the classifier's reward; the judge scores
                       prompts of its own every 10 epochs (the reward curve's judge points, ``best/``)
12. ``generator-eval`` base vs refined generator on held-out prompts: the reward and the judge with their seed
                       spreads, per-kind artifact rates, drift, image grid
13. ``tiny-sd-inpaint`` widen the pre-trained tiny SD into an inpainting pipeline and pre-train it to fill boxes
14. ``repair``         inpaint the artifacts the classifier finds in held-out images, keep a repair only if the
                       reward rises (:mod:`synartifact.repair`), judged again by the judge
15. ``report``         ``REPORT.md`` with the tables and plots

With 2 cores or more the side lane runs in a second process (:mod:`synartifact.demo.lanes`; ``--sequential`` runs
everything in order in one process): on tiny models a second thread adds little, a second process puts the idle
core to work (REPORT.md's stage table). Which stage runs with how many threads is fixed, so two runs on one machine
give the same figures.

A rerun skips every stage whose output exists and whose fingerprint (its settings and its inputs'
fingerprints) matches; ``--force`` redoes them all, ``--force-stage NAME`` one and those after it. A stage that
fails is named, and the outputs of the stages before it stay intact (each stage writes to a temporary
folder that is renamed only when complete: :func:`synartifact.utils.atomic_dir`).

This package runs the stages; :mod:`synartifact.demo.settings` holds the knobs, :mod:`synartifact.demo.stages`
what each stage does, and :mod:`synartifact.demo.report` writes ``REPORT.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from synartifact.demo.lanes import SideLane, lane_plan, run_stage, stage_paths, threads, write_lanes
from synartifact.demo.report import write_report
from synartifact.demo.settings import FINGERPRINT_FILE, RECIPES, DemoSettings
from synartifact.demo.stages import STAGES_BEFORE_REPORT, Stage
from synartifact.demo.stages import _python_module as _python_module  # re-exported: how a stage runs a script

__all__ = ["DemoSettings", "run_demo", "add_cli", "STAGES", "Stage", "write_report", "FINGERPRINT_FILE", "RECIPES"]


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _stage_report(s: DemoSettings, out: Path) -> None:
    write_report(s, out)


# The report stage lives here, not in the stages module, so that it calls this package's ``write_report``.
STAGES: tuple[Stage, ...] = (
    *STAGES_BEFORE_REPORT,
    Stage(
        "report",
        ".",
        "write REPORT.md",
        _stage_report,
        lambda s: {},
        after=("dataset", "evaluate", "reward-check", "judge-eval", "generator-eval", "repair"),
    ),
)


def _stage_fingerprints(s: DemoSettings) -> dict[str, str]:
    prints: dict[str, str] = {}
    for stage in STAGES:
        prints[stage.name] = _digest(
            {"stage": stage.name, "config": stage.config(s), "inputs": [prints[a] for a in stage.after]}
        )
    return prints


def _read_fingerprint(folder: Path) -> str | None:
    marker = folder / FINGERPRINT_FILE
    if not marker.is_file():
        return None
    try:
        return json.loads(marker.read_text()).get("fingerprint")
    except (OSError, json.JSONDecodeError):
        return None


def run_demo(settings: DemoSettings) -> Path:
    """Run every stage that is not up to date and return the path of ``REPORT.md``.

    With two cores or more (and ``settings.parallel``), the side lane's stages (the judge) run in a second process
    beside the main lane (:mod:`synartifact.demo.lanes`); ``.stages/lanes.json`` records the plan and the wait."""
    import os

    from tqdm.auto import tqdm

    s = settings
    s.out = Path(s.out)
    s.out.mkdir(parents=True, exist_ok=True)
    prints = _stage_fingerprints(s)
    names = [st.name for st in STAGES]
    if s.force_stage is not None and s.force_stage not in names:
        raise ValueError(f"--force-stage {s.force_stage!r} is not a stage; stages: {', '.join(names)}.")
    forced_from = names.index(s.force_stage) if s.force_stage else None
    side, beside, n_threads = lane_plan(STAGES, os.cpu_count() or 1) if s.parallel else (set(), set(), None)

    def due(i: int, stage: Stage) -> bool:
        forced = s.force or (forced_from is not None and i >= forced_from)
        return forced or _read_fingerprint(stage_paths(s.out, stage)[1]) != prints[stage.name]

    lane: SideLane | None = None
    waited, ran_side, ran_beside = 0.0, [], []
    bar = tqdm(STAGES, desc="synartifact demo", unit="stage")
    try:
        for i, stage in enumerate(bar):
            bar.set_postfix_str(stage.name)
            label = f"[{i + 1}/{len(STAGES)}] {stage.name}"
            if stage.name in side:
                if stage.name == min(side, key=names.index):  # where the side lane starts: all its stages decided
                    jobs = [(st, prints[st.name]) for k, st in enumerate(STAGES) if st.name in side and due(k, st)]
                    ran_side = [st.name for st, _ in jobs]
                    if jobs:
                        lane = SideLane(s, jobs, n_threads)
                        lane.start()
                        tqdm.write(
                            f"{label}: started in a second process with {', '.join(ran_side)}, "
                            f"{n_threads} thread(s), beside {', '.join(sorted(beside, key=names.index))} "
                            f"(its output: {lane.log_file})"
                        )
                if stage.name not in ran_side:  # decided once: the side lane may be writing its fingerprint now
                    tqdm.write(f"{label}: up to date, skipped ({stage_paths(s.out, stage)[0]})")
                continue
            if lane is not None and (side & set(stage.after) or stage.lane == "alone"):
                bar.set_postfix_str(f"waiting for {', '.join(sorted(side, key=names.index))}")
                start = time.perf_counter()
                lane.wait()
                waited += time.perf_counter() - start
                lane = None
            if not due(i, stage):
                tqdm.write(f"{label}: up to date, skipped ({stage_paths(s.out, stage)[0]})")
                continue
            if stage.name == "report":
                write_lanes(s.out, ran_side, ran_beside, n_threads, waited)
            if stage.name in beside:
                ran_beside.append(stage.name)
            tqdm.write(f"{label}: {stage.describe}" + (f" ({n_threads} thread(s))" if stage.name in beside else ""))
            with threads(n_threads if stage.name in beside else None):
                run_stage(s, stage, prints[stage.name])
    finally:
        if lane is not None:  # a main stage failed: let the side lane finish its stage (its outputs are atomic)
            with contextlib.suppress(RuntimeError):
                lane.wait()
    report = s.out / "REPORT.md"
    print(f"\nDone. Report: {report}")
    print("Open the Spaces on the trained models:")
    print(
        f"  SYNARTIFACT_CLASSIFIER={s.out / 'classifier'} SYNARTIFACT_INPAINTER={s.out / 'tiny-sd-inpaint'} "
        "python spaces/classify/app.py"
    )
    print(
        f"  SYNARTIFACT_CLASSIFIER={s.out / 'classifier'} SYNARTIFACT_GENERATOR_BASE={s.out / 'tiny-sd'} "
        f"SYNARTIFACT_GENERATOR_LORA={s.out / 'generator'} python spaces/generate/app.py"
    )
    return report


# --- command line -------------------------------------------------------------------------------------------------


def add_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``synartifact demo``."""
    d = DemoSettings(out=Path("outputs/demo"))  # the command's default output folder
    parser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline offline on tiny models and write a report",
        description="Synthesize data -> build the tiny VLM -> evaluate it untrained -> SFT -> evaluate -> DDPO the tiny "
        "generator on its reward -> evaluate base vs refined -> repair held-out images by inpainting -> REPORT.md. "
        "Stages that are up to date are skipped.",
    )
    parser.add_argument("--out", type=Path, default=d.out, help=f"output folder (default: {d.out})")
    parser.add_argument(
        "--n-images", type=int, default=d.n_images, help=f"images to synthesize (default: {d.n_images})"
    )
    parser.add_argument(
        "--image-size", type=int, default=d.image_size, help=f"synthesized image size in px (default: {d.image_size})"
    )
    parser.add_argument(
        "--kinds",
        default=",".join(d.kinds),
        help="comma-separated kinds to synthesize, or 'all' (default: the five a tiny VLM learns from scratch)",
    )
    parser.add_argument(
        "--max-artifacts", type=int, default=d.max_artifacts, help="artifacts per synthesized image, at most"
    )
    parser.add_argument("--seed", type=int, default=d.seed, help="seed for data, models and training")
    parser.add_argument("--sft-recipe", type=Path, default=d.sft_recipe, help="SFT recipe YAML")
    parser.add_argument("--ddpo-recipe", type=Path, default=d.ddpo_recipe, help="DDPO recipe YAML")
    parser.add_argument(
        "--sft-arg",
        action="append",
        default=[],
        dest="sft_overrides",
        metavar="FLAG",
        help="extra flag for the SFT script, e.g. --sft-arg=--max_steps=20 (repeatable)",
    )
    parser.add_argument(
        "--ddpo-arg",
        action="append",
        default=[],
        dest="ddpo_overrides",
        metavar="FLAG",
        help="extra flag for the DDPO script, e.g. --ddpo-arg=--num_epochs=2 (repeatable)",
    )
    parser.add_argument(
        "--eval-max-samples", type=int, default=d.eval_max_samples, help="cap the evaluation split (0: all)"
    )
    parser.add_argument(
        "--vlm-pretrain-epochs",
        type=int,
        default=d.vlm_pretrain_epochs,
        help="pre-train the classifier's and the judge's vision side this many epochs on their data before SFT "
        f"(synartifact.tiny.vision_pretrain; default: {d.vlm_pretrain_epochs}, random vision towers)",
    )
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="run every stage in order in one process (default: the judge's stages beside the classifier's, "
        "one thread each, when there are 2 cores or more)",
    )
    parser.add_argument("--force", action="store_true", help="redo every stage")
    parser.add_argument(
        "--force-stage",
        default=None,
        choices=[st.name for st in STAGES],
        help="redo this stage and every stage after it",
    )
    parser.set_defaults(func=_cli)
    return parser


def _cli(args: argparse.Namespace) -> int:
    settings = DemoSettings(
        out=args.out,
        n_images=args.n_images,
        image_size=args.image_size,
        kinds=None if args.kinds == "all" else tuple(k.strip() for k in args.kinds.split(",") if k.strip()),
        max_artifacts=args.max_artifacts,
        seed=args.seed,
        sft_recipe=args.sft_recipe,
        ddpo_recipe=args.ddpo_recipe,
        sft_overrides=args.sft_overrides,
        ddpo_overrides=args.ddpo_overrides,
        eval_max_samples=args.eval_max_samples or None,
        vlm_pretrain_epochs=args.vlm_pretrain_epochs,
        force=args.force,
        force_stage=args.force_stage,
        parallel=not args.sequential,
    )
    run_demo(settings)
    return 0
