"""The demo's stages: what each one runs, and the table of them in order with their fingerprinted settings.

Each stage is a function ``(settings, out)`` that writes its folder ``out``; the report stage, which runs last,
is added by :mod:`synartifact.demo` itself.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from synartifact.demo.settings import DemoSettings

__all__ = ["Stage", "STAGES_BEFORE_REPORT"]


def _file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] if Path(path).is_file() else "missing"


@dataclass
class Stage:
    """One step of the demo: what it runs into its ``folder`` (``"."`` writes into ``--out`` itself), the settings
    its fingerprint covers, and the stages whose outputs it reads."""

    name: str
    folder: str
    describe: str
    run: Callable[[DemoSettings, Path], None]
    config: Callable[[DemoSettings], dict]
    after: tuple[str, ...] = ()
    # "side": the stage runs in a second process beside the main lane's stages (one thread each) from the point in
    # the order where the first side stage stands to the first main stage that reads a side stage's output or is
    # "alone" (a stage that gains from every core, such as convolution training: the side lane is waited for first)
    lane: str = "main"


def _python_module(module: str, args: list[str]) -> None:
    cmd = [sys.executable, "-m", module, *args]
    print("  $", " ".join(cmd), flush=True)
    result = subprocess.run(cmd)  # the caller's working directory: the stage paths are relative to it
    if result.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` exited with {result.returncode}")


def _synth_settings(s: DemoSettings, judge: bool = False) -> dict:
    """What a dataset stage synthesizes (and its fingerprint): the demo's dataset, or with ``judge`` the judge's own
    data (``judge_n_images``, the next seed: images the reward's classifier never sees)."""
    return {
        "n": s.judge_n_images if judge else s.n_images,
        "size": s.image_size,
        "clean": s.clean_fraction,
        "test": s.test_size,
        "seed": s.seed + 1 if judge else s.seed,
        "kinds": s.kinds,
        "max_artifacts": s.max_artifacts,
    }


def _synthesize(s: DemoSettings, out: Path, judge: bool = False) -> None:
    from synartifact.data import save_hub_folder, synthesize_dataset

    c = _synth_settings(s, judge)
    dsdict = synthesize_dataset(
        c["n"],
        size=c["size"],
        seed=c["seed"],
        clean_fraction=c["clean"],
        test_size=c["test"],
        num_proc=s.num_proc,
        kinds=list(c["kinds"]) if c["kinds"] else None,
        max_artifacts=c["max_artifacts"],
    )
    save_hub_folder(dsdict, out, overwrite=True)


def _stage_dataset(s: DemoSettings, out: Path) -> None:
    _synthesize(s, out)


def _stage_judge_dataset(s: DemoSettings, out: Path) -> None:
    _synthesize(s, out, judge=True)


def _vision_pretraining(s: DemoSettings, dataset: str, split: str) -> dict | None:
    """``build_tiny_vlm``'s ``pretrain`` argument: the vision side pre-trained on a demo dataset, or ``None`` (off)."""
    if s.vlm_pretrain_epochs <= 0:
        return None
    return {"dataset": str(s.out / dataset), "split": split, "epochs": s.vlm_pretrain_epochs}


def _stage_tiny_vlm(s: DemoSettings, out: Path) -> None:
    from synartifact.tiny import build_tiny_vlm

    pretrain = _vision_pretraining(s, "dataset", s.reward_train_split)
    build_tiny_vlm(out, arch="llava", seed=s.seed, overwrite=True, pretrain=pretrain)


def _sft(s: DemoSettings, out: Path, model: str, split: str, seed: int, *extra: str, dataset: str = "dataset") -> None:
    """The SFT script in a subprocess on one of the demo's datasets: ``model`` trained on ``split`` into ``out``."""
    dataset = str(s.out / dataset)
    args = ["--config", str(s.sft_recipe), "--dataset_name", dataset, "--model_name_or_path", str(s.out / model)]
    args += ["--output_dir", str(out), "--dataset_train_split", split, "--seed", str(seed), *extra]
    _python_module("synartifact.sft", args)


def _stage_sft(s: DemoSettings, out: Path) -> None:
    _sft(s, out, "tiny-vlm", s.reward_train_split, s.seed, *s.sft_overrides)


def _stage_judge_vlm(s: DemoSettings, out: Path) -> None:
    from synartifact.tiny import build_tiny_vlm

    build_tiny_vlm(
        out,
        arch=s.judge_arch,
        seed=s.seed + 1,
        overwrite=True,
        image_size=s.judge_image_size,
        patch_size=s.judge_patch_size,
        vision_hidden_size=s.judge_vision_hidden_size,
        pretrain=_vision_pretraining(s, "judge-dataset", s.judge_train_split),
    )


def _stage_judge(s: DemoSettings, out: Path) -> None:
    epochs = ("--num_train_epochs", str(s.judge_epochs))
    _sft(s, out, "judge-vlm", s.judge_train_split, s.seed + 1, *epochs, dataset="judge-dataset")


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
            # the judge picks the best epoch on prompts of its own and draws its points on the reward curve
            "--judge",
            str(s.out / "judge"),
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
        # the judge's own test metrics: a judge too weak to judge makes the verdict inconclusive
        judge_eval=s.out / "judge-eval" / "metrics.json",
        out=out,
        overwrite=True,
    )


def _stage_tiny_sd_inpaint(s: DemoSettings, out: Path) -> None:
    from synartifact.tiny import build_tiny_sd_inpaint

    build_tiny_sd_inpaint(
        out, s.out / "dataset", base=s.out / "tiny-sd", seed=s.seed, overwrite=True, steps=s.inpaint_steps
    )


def _stage_repair(s: DemoSettings, out: Path) -> None:
    """``synartifact repair`` (:func:`~synartifact.repair.repair_folder`) on held-out test images that have injected
    artifacts, judged by the classifier's reward and then by the judge. The demo's classifier answers kinds without
    boxes, so it is asked where by occlusion (``unboxed="locate"``); the injected artifacts' known boxes are never
    read (``synartifact repair --hint-boxes`` would use them)."""
    from synartifact.data import load_artifact_dataset
    from synartifact.repair import repair_folder

    test = load_artifact_dataset(str(s.out / "dataset"), split="test")
    head = test.select(range(min(len(test), 20 * s.repair_images)))
    rows = [i for i, artifacts in enumerate(head["artifacts"]) if artifacts][: s.repair_images]
    if not rows:
        raise ValueError(f"{s.out / 'dataset'} has no test image with artifacts to repair.")

    def judged(results: list) -> dict:
        return {
            **_judged_repair(s, results),
            "images": f"{s.out / 'dataset'} (test split, the first {len(rows)} images with injected artifacts)",
            "hints": "the classifier's own occlusion boxes (it answers kinds without boxes; the dataset's are not read)",
        }

    repair_folder(
        str(s.out / "classifier"),
        str(s.out / "tiny-sd-inpaint"),
        head.select(rows),
        out,
        rounds=s.repair_rounds,
        seed=s.seed,
        num_inference_steps=s.repair_inference_steps,
        unboxed="locate",
        hint_boxes=False,
        device="cpu",
        overwrite=True,
        extra_metrics=judged,
    )


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


STAGES_BEFORE_REPORT: tuple[Stage, ...] = (
    Stage(
        "dataset",
        "dataset",
        "synthesize the dataset (Hub layout, card)",
        _stage_dataset,
        _synth_settings,
    ),
    Stage(
        "judge-dataset",
        "judge-dataset",
        "synthesize the judge's own training data (another seed: images the reward never sees)",
        _stage_judge_dataset,
        lambda s: _synth_settings(s, judge=True),
    ),
    Stage(
        "tiny-vlm",
        "tiny-vlm",
        "build the tiny VLM from configs (and pre-train its vision side with --vlm-pretrain-epochs)",
        _stage_tiny_vlm,
        lambda s: (
            {"seed": s.seed}
            | (
                {"pretrain_epochs": s.vlm_pretrain_epochs, "split": s.reward_train_split}
                if s.vlm_pretrain_epochs
                else {}
            )
        ),
        after=("dataset",),
    ),
    Stage(
        "judge-vlm",
        "judge-vlm",
        "build the judge's tiny VLM (another family, another seed)",
        _stage_judge_vlm,
        lambda s: (
            {
                "seed": s.seed + 1,
                "arch": s.judge_arch,
                "size": (s.judge_image_size, s.judge_patch_size, s.judge_vision_hidden_size),
            }
            | (
                {"pretrain_epochs": s.vlm_pretrain_epochs, "split": s.judge_train_split}
                if s.vlm_pretrain_epochs
                else {}
            )
        ),
        after=("judge-dataset",),
    ),
    Stage(
        "judge",
        "judge",
        "train the independent judge on its own data, which the reward's classifier never saw",
        _stage_judge,
        lambda s: {
            "recipe": _file_digest(s.sft_recipe),
            "seed": s.seed + 1,
            "split": s.judge_train_split,
            "epochs": s.judge_epochs,
        },
        after=("judge-dataset", "judge-vlm"),
        lane="side",
    ),
    Stage(
        "judge-eval",
        "judge-eval",
        "evaluate the judge (zero-shot base vs trained) on the test split",
        _stage_judge_eval,
        lambda s: {"max": s.eval_max_samples},
        after=("dataset", "judge-vlm", "judge"),
        lane="side",
    ),
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
        lane="alone",  # convolutions gain from the second core: it waits for the judge and runs with all threads
    ),
    Stage(
        "ddpo",
        "generator",
        "fine-tune the generator with TRL DDPOTrainer on the classifier's reward",
        _stage_ddpo,
        lambda s: {"recipe": _file_digest(s.ddpo_recipe), "overrides": s.ddpo_overrides},
        after=("dataset", "sft", "judge", "tiny-sd"),
    ),
    Stage(
        "generator-eval",
        "generator-eval",
        "compare base and refined generator on the same prompts and seeds",
        _stage_generator_eval,
        lambda s: {"seeds": list(s.gen_seeds), "images_per_prompt": s.gen_images_per_prompt, "v": 2},
        after=("dataset", "sft", "tiny-sd", "ddpo", "judge", "judge-eval"),
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
            "v": 3,  # v2: written by repair_folder (summary.json, the repaired images); v3: occlusion boxes, no hints
        },
        after=("dataset", "sft", "judge", "tiny-sd-inpaint"),
    ),
)
