"""The main job end to end, offline, on tiny models: ``synartifact demo`` (``make demo``).

Stages, each also its own command, each writing to its own folder under ``--out`` (default ``outputs/demo``):

1. ``dataset``       synthesize SynArtifact-style data on bundled photographs -> Hub folder (card + parquet)
2. ``tiny-vlm``      build the tiny VLM from configs (the untrained baseline)
3. ``sft``           fine-tune it with TRL SFTTrainer + LoRA (``recipes/tiny/sft/config_cpu.yaml``)
4. ``evaluate``      the fine-tuned classifier against its zero-shot base on the held-out split
5. ``tiny-sd``       build the tiny Stable Diffusion pipeline from configs and pre-train it on the dataset's
                     images and prompts (the offline stand-in for SD 1.5's pre-training; random weights draw noise)
6. ``ddpo``          fine-tune the generator with TRL DDPOTrainer on the classifier's reward
7. ``generator-eval`` base vs refined generator: reward with a spread over seeds, image grid
8. ``tiny-sd-inpaint`` widen the pre-trained tiny SD into an inpainting pipeline and pre-train it to fill boxes
9. ``repair``        inpaint the artifacts the classifier finds in held-out images, keep a repair only if the
                     reward rises (:mod:`synartifact.repair`)
10. ``report``       ``REPORT.md`` with the tables and plots

A rerun skips every stage whose output exists and whose fingerprint (its settings and its inputs'
fingerprints) matches; ``--force`` redoes them all, ``--force-stage NAME`` one and those after it. A stage that
fails is named, and the outputs of the stages before it stay intact (each stage writes to a temporary
folder that is renamed only when complete).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DemoSettings", "run_demo", "add_cli", "STAGES"]

FINGERPRINT_FILE = ".synartifact_stage.json"
# The tiny recipes ship inside the package (recipes/tiny/ at the repository's top links to them), so the demo runs
# from any working directory and from a wheel.
RECIPES = Path(__file__).resolve().parent / "recipes"


@dataclass
class DemoSettings:
    """The demo's knobs; the defaults fit 2 CPU cores and 15 minutes (DDPO takes 6 of them)."""

    out: Path
    n_images: int = 12000
    image_size: int = 64
    # A tiny VLM trained from scratch in minutes learns these five kinds from one artifact per image (macro-F1 ~0.6);
    # the other synthesized kinds need a pretrained vision tower (see recipes/tiny/sft/config_cpu.yaml).
    kinds: tuple[str, ...] | None = (
        "illegible_letters",
        "chromatic_irregularity",
        "abnormal_texture",
        "impractical_luminosity",
        "luminance_discrepancy",
    )
    max_artifacts: int = 1
    clean_fraction: float = 0.2
    test_size: float = 0.15
    seed: int = 0
    # The reward's classifier trains on the first part of the train split; the judge, on the rest (data the reward
    # model never saw), with another seed and another architecture family (Idefics3, the reward being LLaVA).
    reward_train_split: str = "train[:80%]"
    judge_train_split: str = "train[80%:]"
    judge_arch: str = "idefics3"
    judge_epochs: int = 15
    sft_recipe: Path = RECIPES / "tiny/sft/config_cpu.yaml"
    ddpo_recipe: Path = RECIPES / "tiny/ddpo/config_cpu.yaml"
    sft_overrides: list[str] = field(default_factory=list)
    ddpo_overrides: list[str] = field(default_factory=list)
    eval_max_samples: int | None = 600
    gen_seeds: tuple[int, ...] = (0, 1, 2)
    gen_images_per_prompt: int = 4  # per held-out prompt and seed: a finer per-seed mean reward
    # base generator pre-training (synartifact.generator.pretrain): ~2.5 min on 2 cores; 0/0 keeps random weights
    sd_vae_steps: int = 200
    sd_unet_steps: int = 800
    # the repair stages: ~1 min together on 2 cores
    inpaint_steps: int = 150
    repair_images: int = 32
    repair_rounds: int = 2
    repair_inference_steps: int = 4
    num_proc: int = max(1, min(2, os.cpu_count() or 1))
    force: bool = False
    force_stage: str | None = None


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] if Path(path).is_file() else "missing"


@dataclass
class Stage:
    name: str
    folder: str
    describe: str
    run: Callable[[DemoSettings, Path], None]
    config: Callable[[DemoSettings], dict]
    after: tuple[str, ...] = ()


def _python_module(module: str, args: list[str]) -> None:
    cmd = [sys.executable, "-m", module, *args]
    print("  $", " ".join(cmd), flush=True)
    result = subprocess.run(cmd)  # the caller's working directory: the stage paths are relative to it
    if result.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` exited with {result.returncode}")


# --- the stages ---------------------------------------------------------------------------------------------------


def _stage_dataset(s: DemoSettings, out: Path) -> None:
    from synartifact.data import save_hub_folder, synthesize_dataset

    dsdict = synthesize_dataset(
        s.n_images,
        size=s.image_size,
        seed=s.seed,
        clean_fraction=s.clean_fraction,
        test_size=s.test_size,
        num_proc=s.num_proc,
        kinds=list(s.kinds) if s.kinds else None,
        max_artifacts=s.max_artifacts,
    )
    save_hub_folder(dsdict, out, overwrite=True)


def _stage_tiny_vlm(s: DemoSettings, out: Path) -> None:
    from synartifact.tiny import build_tiny_vlm

    build_tiny_vlm(out, arch="llava", seed=s.seed, overwrite=True)


def _sft(s: DemoSettings, out: Path, model: str, split: str, seed: int, *extra: str) -> None:
    """The SFT script in a subprocess on the demo's dataset: ``model`` trained on ``split`` into ``out``."""
    dataset = str(s.out / "dataset")
    args = ["--config", str(s.sft_recipe), "--dataset_name", dataset, "--model_name_or_path", str(s.out / model)]
    args += ["--output_dir", str(out), "--dataset_train_split", split, "--seed", str(seed), *extra]
    _python_module("synartifact.sft", args)


def _stage_sft(s: DemoSettings, out: Path) -> None:
    _sft(s, out, "tiny-vlm", s.reward_train_split, s.seed, *s.sft_overrides)


def _stage_judge_vlm(s: DemoSettings, out: Path) -> None:
    from synartifact.tiny import build_tiny_vlm

    build_tiny_vlm(out, arch=s.judge_arch, seed=s.seed + 1, overwrite=True)


def _stage_judge(s: DemoSettings, out: Path) -> None:
    _sft(s, out, "judge-vlm", s.judge_train_split, s.seed + 1, "--num_train_epochs", str(s.judge_epochs))


def _evaluate(s: DemoSettings, out: Path, model: str, baseline: str) -> None:
    """``synartifact evaluate`` of ``model`` against its zero-shot ``baseline`` on the test split."""
    from synartifact.classifier.evaluation import run_evaluation

    dataset, n = str(s.out / "dataset"), s.eval_max_samples
    run_evaluation(str(s.out / model), str(s.out / baseline), dataset, "test", out, max_samples=n, overwrite=True)


def _stage_judge_eval(s: DemoSettings, out: Path) -> None:
    _evaluate(s, out, "judge", "judge-vlm")


def _stage_reward_check(s: DemoSettings, out: Path) -> None:
    """Pair accuracy of the reward DDPO optimizes (the recipe's score mode, soft), on the kinds the demo trains."""
    from synartifact.reward_check import run_reward_check

    run_reward_check(
        reward=str(s.out / "classifier"),
        dataset=str(s.out / "dataset"),
        out=out,
        split="test",
        kinds=list(s.kinds) if s.kinds else None,
        seed=s.seed,
        reward_mode="score",
        reward_soft=True,
        overwrite=True,
    )


def _stage_evaluate(s: DemoSettings, out: Path) -> None:
    _evaluate(s, out, "classifier", "tiny-vlm")


def _stage_tiny_sd(s: DemoSettings, out: Path) -> None:
    from synartifact.tiny import build_tiny_sd

    if not (s.sd_vae_steps or s.sd_unet_steps):
        build_tiny_sd(out, seed=s.seed, overwrite=True)
        return
    from synartifact.tiny import build_pretrained_tiny_sd

    build_pretrained_tiny_sd(
        out, s.out / "dataset", seed=s.seed, overwrite=True, vae_steps=s.sd_vae_steps, unet_steps=s.sd_unet_steps
    )


def _stage_ddpo(s: DemoSettings, out: Path) -> None:
    _python_module(
        "synartifact.ddpo",
        [
            "--config",
            str(s.ddpo_recipe),
            "--pretrained_model",
            str(s.out / "tiny-sd"),
            "--classifier",
            str(s.out / "classifier"),
            "--output_dir",
            str(out),
            "--prompts",
            str(s.out / "dataset"),
            *s.ddpo_overrides,
        ],
    )


def _stage_generator_eval(s: DemoSettings, out: Path) -> None:
    from synartifact.generator.evaluation import evaluate_generator

    evaluate_generator(
        base=str(s.out / "tiny-sd"),
        lora=str(s.out / "generator"),
        classifier=str(s.out / "classifier"),
        prompts=str(s.out / "dataset"),
        seeds=list(s.gen_seeds),
        images_per_prompt=s.gen_images_per_prompt,
        judge=str(s.out / "judge"),
        out=out,
        overwrite=True,
    )


def _stage_tiny_sd_inpaint(s: DemoSettings, out: Path) -> None:
    from synartifact.tiny import build_tiny_sd_inpaint

    build_tiny_sd_inpaint(
        out, s.out / "dataset", base=s.out / "tiny-sd", seed=s.seed, overwrite=True, steps=s.inpaint_steps
    )


def _stage_repair(s: DemoSettings, out: Path) -> None:
    """Repair held-out test images that have injected artifacts, judged by the classifier's reward. The demo's
    classifier answers kinds without boxes, so the injected artifacts' known boxes are the masks' hints."""
    import numpy as np

    from synartifact.data import load_artifact_dataset
    from synartifact.repair import JSONL_NAME, ArtifactRepairer, save_repair_grid, summarize

    test = load_artifact_dataset(str(s.out / "dataset"), split="test")
    rows = [row for row in test.select(range(min(len(test), 20 * s.repair_images))) if row["artifacts"]]
    rows = rows[: s.repair_images]
    if not rows:
        raise ValueError(f"{s.out / 'dataset'} has no test image with artifacts to repair.")
    repairer = ArtifactRepairer(
        str(s.out / "classifier"),
        str(s.out / "tiny-sd-inpaint"),
        num_inference_steps=s.repair_inference_steps,
        device="cpu",
    )
    results = repairer.repair(
        [row["image"] for row in rows],
        prompts=[row["prompt"] for row in rows],
        rounds=s.repair_rounds,
        seed=s.seed,
        hints=[[a["bbox"] for a in row["artifacts"]] for row in rows],
    )
    outside = []
    for result in results:
        mask = np.asarray(result.mask) > 0
        outside.append(bool(np.array_equal(np.asarray(result.original)[~mask], np.asarray(result.image)[~mask])))
    metrics = summarize(results)
    metrics.update(_judged_repair(s, results))
    metrics.update(
        {
            "outside_mask_unchanged": all(outside),
            "rounds": s.repair_rounds,
            "inference_steps": s.repair_inference_steps,
            "reward_mode": getattr(repairer.reward, "mode", None),
            "hints": "the injected artifacts' boxes (the classifier answers kinds without boxes)",
        }
    )
    out.mkdir(parents=True, exist_ok=True)
    with open(out / JSONL_NAME, "w", encoding="utf-8") as handle:
        for row, result in zip(rows, results):
            handle.write(json.dumps({"image": row["image_id"], **result.to_dict()}) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    # the grid shows the images the classifier flagged first (the others are unchanged by construction)
    order = sorted(range(len(results)), key=lambda i: (not results[i].rounds, i))[:12]
    save_repair_grid([results[i] for i in order], [rows[i]["image_id"] for i in order], out / "before_after.png")


def _judged_repair(s: DemoSettings, results: list) -> dict[str, float]:
    """The independent judge's artifact rate and mean reward on the images before and after repair."""
    from synartifact.reward import ArtifactReward

    judge = ArtifactReward(str(s.out / "judge"), mode="generate", soft=False, device="cpu")
    figures = {}
    for when, images in (("before", [r.original for r in results]), ("after", [r.image for r in results])):
        rows = judge.details(images)
        figures[f"judge_artifact_rate_{when}"] = sum(bool(r["kinds"]) for r in rows) / len(rows)
        figures[f"judge_mean_reward_{when}"] = sum(r["reward"] for r in rows) / len(rows)
    return figures


def _stage_report(s: DemoSettings, out: Path) -> None:
    write_report(s, out)


STAGES: tuple[Stage, ...] = (
    Stage(
        "dataset",
        "dataset",
        "synthesize the dataset (Hub layout, card)",
        _stage_dataset,
        lambda s: {
            "n": s.n_images,
            "size": s.image_size,
            "clean": s.clean_fraction,
            "test": s.test_size,
            "seed": s.seed,
            "kinds": s.kinds,
            "max_artifacts": s.max_artifacts,
        },
    ),
    Stage("tiny-vlm", "tiny-vlm", "build the tiny VLM from configs", _stage_tiny_vlm, lambda s: {"seed": s.seed}),
    Stage(
        "sft",
        "classifier",
        "fine-tune the classifier with TRL SFTTrainer (LoRA or full, as the recipe says)",
        _stage_sft,
        lambda s: {
            "recipe": _file_digest(s.sft_recipe),
            "overrides": s.sft_overrides,
            "seed": s.seed,
            "split": s.reward_train_split,
        },
        after=("dataset", "tiny-vlm"),
    ),
    Stage(
        "reward-check",
        "reward-check",
        "pair accuracy: does the reward rank a clean image above the same image with an artifact?",
        _stage_reward_check,
        lambda s: {"seed": s.seed, "kinds": s.kinds},
        after=("dataset", "sft"),
    ),
    Stage(
        "judge-vlm",
        "judge-vlm",
        "build the judge's tiny VLM (another family, another seed)",
        _stage_judge_vlm,
        lambda s: {"seed": s.seed + 1, "arch": s.judge_arch},
    ),
    Stage(
        "judge",
        "judge",
        "train the independent judge on the part of the train split the reward's classifier never saw",
        _stage_judge,
        lambda s: {
            "recipe": _file_digest(s.sft_recipe),
            "seed": s.seed + 1,
            "split": s.judge_train_split,
            "epochs": s.judge_epochs,
        },
        after=("dataset", "judge-vlm"),
    ),
    Stage(
        "judge-eval",
        "judge-eval",
        "evaluate the judge (zero-shot base vs trained) on the test split",
        _stage_judge_eval,
        lambda s: {"max": s.eval_max_samples},
        after=("dataset", "judge-vlm", "judge"),
    ),
    Stage(
        "evaluate",
        "classifier-eval",
        "evaluate base (zero-shot) vs fine-tuned classifier",
        _stage_evaluate,
        lambda s: {"max": s.eval_max_samples},
        after=("dataset", "tiny-vlm", "sft"),
    ),
    Stage(
        "tiny-sd",
        "tiny-sd",
        "build the tiny Stable Diffusion pipeline and pre-train it on the dataset",
        _stage_tiny_sd,
        lambda s: {"seed": s.seed, "vae_steps": s.sd_vae_steps, "unet_steps": s.sd_unet_steps, "v": 2},
        after=("dataset",),
    ),
    Stage(
        "ddpo",
        "generator",
        "fine-tune the generator with TRL DDPOTrainer on the classifier's reward",
        _stage_ddpo,
        lambda s: {"recipe": _file_digest(s.ddpo_recipe), "overrides": s.ddpo_overrides},
        after=("dataset", "sft", "tiny-sd"),
    ),
    Stage(
        "generator-eval",
        "generator-eval",
        "compare base and refined generator on the same prompts and seeds",
        _stage_generator_eval,
        lambda s: {"seeds": list(s.gen_seeds), "images_per_prompt": s.gen_images_per_prompt},
        after=("dataset", "sft", "tiny-sd", "ddpo", "judge"),
    ),
    Stage(
        "tiny-sd-inpaint",
        "tiny-sd-inpaint",
        "widen the tiny SD into an inpainting pipeline and pre-train it to fill random boxes",
        _stage_tiny_sd_inpaint,
        lambda s: {"seed": s.seed, "steps": s.inpaint_steps},
        after=("dataset", "tiny-sd"),
    ),
    Stage(
        "repair",
        "repair",
        "inpaint the artifacts the classifier finds in held-out images; keep a repair only if the reward rises",
        _stage_repair,
        lambda s: {
            "n": s.repair_images,
            "rounds": s.repair_rounds,
            "steps": s.repair_inference_steps,
            "seed": s.seed,
        },
        after=("dataset", "sft", "judge", "tiny-sd-inpaint"),
    ),
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
    """Run every stage that is not up to date and return the path of ``REPORT.md``."""
    from tqdm.auto import tqdm

    s = settings
    s.out = Path(s.out)
    s.out.mkdir(parents=True, exist_ok=True)
    prints = _stage_fingerprints(s)
    names = [st.name for st in STAGES]
    if s.force_stage is not None and s.force_stage not in names:
        raise ValueError(f"--force-stage {s.force_stage!r} is not a stage; stages: {', '.join(names)}.")
    forced_from = names.index(s.force_stage) if s.force_stage else None
    timings: dict[str, float] = {}
    bar = tqdm(STAGES, desc="synartifact demo", unit="stage")
    for i, stage in enumerate(bar):
        bar.set_postfix_str(stage.name)
        target = s.out if stage.folder == "." else s.out / stage.folder
        marker_dir = s.out / ".stages" / stage.name if stage.folder == "." else target
        forced = s.force or (forced_from is not None and i >= forced_from)
        if not forced and _read_fingerprint(marker_dir) == prints[stage.name]:
            tqdm.write(f"[{i + 1}/{len(STAGES)}] {stage.name}: up to date, skipped ({target})")
            continue
        tqdm.write(f"[{i + 1}/{len(STAGES)}] {stage.name}: {stage.describe}")
        start = time.perf_counter()
        tmp = target if stage.folder == "." else s.out / f".{stage.folder}.tmp-{os.getpid()}"
        if stage.folder != ".":
            shutil.rmtree(tmp, ignore_errors=True)
        try:
            stage.run(s, tmp)
        except Exception as err:
            if stage.folder != ".":
                shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError(
                f"demo stage '{stage.name}' failed ({err}); the outputs of earlier stages in {s.out} "
                f"are intact: fix the cause and rerun `synartifact demo` to continue from here."
            ) from err
        if stage.folder != ".":
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        timings[stage.name] = time.perf_counter() - start
        marker_dir.mkdir(parents=True, exist_ok=True)
        (marker_dir / FINGERPRINT_FILE).write_text(
            json.dumps({"fingerprint": prints[stage.name], "seconds": round(timings[stage.name], 1)})
        )
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


# --- the report ---------------------------------------------------------------------------------------------------


def _load_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def write_report(s: DemoSettings, folder: Path) -> Path:
    """Write ``REPORT.md`` from the stages' JSON outputs and link their plots."""
    out = Path(s.out)
    clf = _load_json(out / "classifier-eval" / "metrics.json")
    gen = _load_json(out / "generator-eval" / "metrics.json")
    times = {
        st.name: _load_json(
            (out / ".stages" / st.name if st.folder == "." else out / st.folder) / FINGERPRINT_FILE
        ).get("seconds")
        for st in STAGES
    }
    lines = [
        "# synartifact demo report",
        "",
        "Everything below ran offline on tiny models built from configs (random initial weights), on data "
        "synthesized from photographs bundled with scikit-image. The numbers show the pipeline works end to end; "
        "they say nothing about real checkpoints.",
        "",
    ]
    lines += ["## Dataset", "", f'Hub-layout folder: `{out / "dataset"}` (`load_dataset("{out / "dataset"}")`).', ""]
    if (out / "dataset" / "artifacts_per_kind.png").is_file():
        lines += ["![artifacts per kind](dataset/artifacts_per_kind.png)", ""]
    run = _load_json(out / "classifier" / "sft_run.json")
    method = "SFT + LoRA" if run.get("use_peft") else "SFT, full fine-tuning"
    lines += [f"## Classifier: zero-shot base vs fine-tuned ({method})", ""]
    if run:
        lines += [
            f"Trained {run.get('global_step')} steps on {run.get('num_train_samples')} images "
            f"(answer mode `{run.get('answer_mode')}`, final train loss {_fmt(run.get('train_loss'))}).",
            "",
        ]
    if clf:
        keys = ["accuracy", "macro_f1", "micro_f1", "exact_match"]
        lines += ["| metric | baseline (zero-shot) | fine-tuned | delta |", "|---|---|---|---|"]
        for key in keys:
            b, m = clf.get("baseline", {}).get(key), clf.get("model", {}).get(key)
            delta = m - b if isinstance(m, (int, float)) and isinstance(b, (int, float)) else ""
            lines.append(f"| {key} | {_fmt(b)} | {_fmt(m)} | {_fmt(delta)} |")
        lines += ["", "Full report: [classifier-eval/report.md](classifier-eval/report.md)", ""]
        for png in sorted((out / "classifier-eval").glob("*.png")):
            lines += [f"![{png.stem}](classifier-eval/{png.name})", ""]
    pre = _load_json(out / "tiny-sd" / "pretrain.json")
    if pre:
        lines += [
            "## Base generator: the tiny Stable Diffusion pre-trained on the dataset",
            "",
            f"VAE {pre.get('vae_steps')} steps, UNet {pre.get('unet_steps')} steps on {pre.get('num_images')} images "
            f"and {pre.get('num_prompts')} prompts at {pre.get('resolution')} px in {_fmt(pre.get('seconds'))} s "
            f"(final noise-prediction loss {_fmt(pre.get('final_unet_loss'))}). Samples:",
            "",
            "![pre-trained samples](tiny-sd/pretrain_samples.png)",
            "",
        ]
    lines += ["## Generator: base vs refined (DDPO on the classifier's reward)", ""]
    if gen:
        summary = _load_json(out / "generator" / "ddpo_summary.json")
        if summary:
            timing = summary.get("timing", {})
            lines += [
                f"DDPO: {summary.get('epochs')} epochs in {_fmt(sum(timing.get(k, 0) for k in ('sampling_s', 'reward_s', 'training_s')))} s "
                f"(sampling {100 * timing.get('sampling_share', 0):.0f} %, reward "
                f"{100 * timing.get('reward_share', 0):.0f} %, training {100 * timing.get('training_share', 0):.0f} %) "
                f"on {len(summary.get('train_prompts', []))} training prompts; evaluated below on "
                f"{gen.get('config', {}).get('num_prompts')} held-out prompts x "
                f"{gen.get('config', {}).get('images_per_prompt', 1)} images x seeds {gen.get('config', {}).get('seeds')}.",
                "",
            ]
        lines += ["| generator | mean reward | spread over seeds (std) |", "|---|---|---|"]
        for key in ("base", "refined"):
            part = gen.get(key, {})
            lines.append(f"| {key} | {_fmt(part.get('mean_reward'))} | {_fmt(part.get('std'))} |")
        delta = gen.get("delta", {})
        if delta:
            lines += [
                "",
                f"Gain {_fmt(delta.get('mean_reward'))} = {_fmt(delta.get('gain_over_spread'))} x the larger seed "
                "spread (the target is > 2).",
            ]
        lines += ["", "Full report: [generator-eval/report.md](generator-eval/report.md)", ""]
        for png in sorted((out / "generator-eval").glob("*.png")):
            lines += [f"![{png.stem}](generator-eval/{png.name})", ""]
    for png in sorted((out / "generator").glob("*.png")):
        lines += [f"![{png.stem}](generator/{png.name})", ""]
    lines += _trust_section(out)
    lines += _repair_section(out)
    lines += ["## Stage times (seconds)", "", "| stage | seconds |", "|---|---|"]
    lines += [
        f"| {name} | {_fmt(sec) if sec is not None else 'not run'} |"
        for name, sec in times.items()
        if name != "report"
    ]
    lines += [
        "",
        "## Next",
        "",
        "Open the Spaces on the trained models:",
        "",
        "```",
        f"SYNARTIFACT_CLASSIFIER={out / 'classifier'} python spaces/classify/app.py",
        f"SYNARTIFACT_CLASSIFIER={out / 'classifier'} SYNARTIFACT_GENERATOR_BASE={out / 'tiny-sd'} "
        f"SYNARTIFACT_GENERATOR_LORA={out / 'generator'} python spaces/generate/app.py",
        "```",
        "",
    ]
    path = out / "REPORT.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)
    return path


def _trust_section(out: Path) -> list[str]:
    """REPORT.md's "Is the gain real?": the reward's pair accuracy, the judge's quality, reward vs judge gains."""
    check = _load_json(out / "reward-check" / "metrics.json")
    judge_eval = _load_json(out / "judge-eval" / "metrics.json")
    gen = _load_json(out / "generator-eval" / "metrics.json")
    if not (check or judge_eval or gen.get("judge")):
        return []
    lines = ["## Is the gain real?", ""]
    if check:
        lines += [
            f"**Reward pair accuracy**: on {check.get('n_pairs')} pairs (a clean held-out image and the same image "
            "with one injected artifact), how often the reward ranks the clean one higher (ties count half): "
            f"**{_fmt(check.get('pair_accuracy'))}** overall.",
            "",
            "| kind | pair accuracy | pairs |",
            "|---|---|---|",
        ]
        for kind, value in check.get("per_kind", {}).items():
            lines.append(f"| {kind} | {_fmt(value)} | {check.get('per_kind_n', {}).get(kind, '')} |")
        lines += ["", "![pair accuracy per kind](reward-check/per_kind.png)", ""]
    if judge_eval:
        model, base = judge_eval.get("model", {}), judge_eval.get("baseline", {})
        lines += [
            "**The judge**: a tiny model of another family and seed, trained on the part of the train split the "
            f"reward's classifier never saw. On the test split: macro-F1 {_fmt(model.get('macro_f1'))} (zero-shot "
            f"{_fmt(base.get('macro_f1'))}), artifact / no-artifact F1 {_fmt(model.get('binary_f1'))}.",
            "",
        ]
    judged = gen.get("judge")
    if judged:
        lines += [
            "| judged by | base | refined | gain | gain / seed spread | artifact rate base -> refined |",
            "|---|---|---|---|---|---|",
        ]
        for name, side, gain in (
            ("training reward", gen, gen.get("reward_gain_in_spread")),
            ("independent judge", judged, gen.get("judge_gain_in_spread")),
        ):
            base, refined, delta = side.get("base", {}), side.get("refined", {}), side.get("delta", {})
            lines.append(
                f"| {name} | {_fmt(base.get('mean_reward'))} | {_fmt(refined.get('mean_reward'))} | "
                f"{_fmt(delta.get('mean_reward'))} | {_fmt(gain)} | {_fmt(base.get('artifact_rate'))} -> "
                f"{_fmt(refined.get('artifact_rate'))} |"
            )
        lines += [
            "",
            "A gain under the training reward that the judge does not confirm is reward hacking, not a result. Per-kind "
            "rates: [generator-eval/report.md](generator-eval/report.md).",
            "",
        ]
    return lines


def _repair_section(out: Path) -> list[str]:
    """REPORT.md's repair section, from ``repair/metrics.json`` (nothing when the stage has not run)."""
    rep = _load_json(out / "repair" / "metrics.json")
    if not rep:
        return []
    pre = _load_json(out / "tiny-sd-inpaint" / "inpaint_pretrain.json")
    lines = ["## Repair: inpaint what the classifier finds, keep the better image", ""]
    if pre:
        lines += [
            f"Inpainter: the pre-trained tiny SD widened to 9 input channels (mask channels zero-initialized), then "
            f"{pre.get('steps')} steps of filling random boxes on {pre.get('num_images')} images at "
            f"{pre.get('resolution')} px in {_fmt(pre.get('seconds'))} s.",
            "",
        ]
    lines += [
        f"{rep.get('num_images')} held-out test images with injected artifacts, {rep.get('rounds')} rounds of "
        f"{rep.get('inference_steps')} inpainting steps; judged by the classifier's reward (mode "
        f"`{rep.get('reward_mode')}`). Masks: {rep.get('hints')}, padded by 5 % of the side.",
        "",
        "| | before | after |",
        "|---|---|---|",
        f"| artifact rate (classifier) | {_fmt(rep.get('artifact_rate_before'))} | "
        f"{_fmt(rep.get('artifact_rate_after'))} |",
        f"| mean reward | {_fmt(rep.get('mean_reward_before'))} | {_fmt(rep.get('mean_reward_after'))} |",
        f"| artifact rate (independent judge) | {_fmt(rep.get('judge_artifact_rate_before'))} | "
        f"{_fmt(rep.get('judge_artifact_rate_after'))} |",
        f"| mean judge reward | {_fmt(rep.get('judge_mean_reward_before'))} | "
        f"{_fmt(rep.get('judge_mean_reward_after'))} |",
        "",
        f"Images improved {_fmt(rep.get('improved'))}, unchanged {_fmt(rep.get('unchanged'))}, made worse "
        f"{_fmt(rep.get('worse'))} (a repair is kept only if the reward rises, so this is 0 by construction). "
        f"Pixels outside the mask unchanged in every image: **{'yes' if rep.get('outside_mask_unchanged') else 'NO'}** "
        f"(checked pixel by pixel); mean repainted area {_fmt(rep.get('mean_mask_area'))} of the image.",
        "",
        "![repair before and after](repair/before_after.png)",
        "",
    ]
    return lines


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
        force=args.force,
        force_stage=args.force_stage,
    )
    run_demo(settings)
    return 0
