"""DDPO on tiny models: training changes the LoRA weights, the output loads on the base, resume, recipes, evaluation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import free_port

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes/tiny/ddpo/config_cpu.yaml"
LORA = "pytorch_lora_weights.safetensors"
# the smallest run that still trains: 2 images, 2 sampler steps, one training batch per epoch
FAST = [
    "--sample_num_steps",
    "2",
    "--sample_batch_size",
    "2",
    "--sample_num_batches_per_epoch",
    "1",
    "--train_batch_size",
    "2",
    "--num_eval_images",
    "2",
    "--max_prompts",
    "2",
    "--per_prompt_stat_tracking_min_count",
    "1",
    "--reward_soft",
    "true",
    "--reward_constrained",
    "true",
    "--build_tiny_models_if_missing",
    "false",
]


@pytest.fixture(scope="session")
def tiny_models(tiny_sd, tiny_vlm):
    return tiny_sd, tiny_vlm


@pytest.fixture(scope="session")
def trained(tiny_models, tmp_path_factory):
    from synartifact.ddpo import cli_main

    sd, vlm = tiny_models
    out = tmp_path_factory.mktemp("ddpo-run") / "out"
    args = [
        "--config",
        str(RECIPE),
        "--pretrained_model",
        str(sd),
        "--classifier",
        str(vlm),
        "--output_dir",
        str(out),
        "--num_epochs",
        "2",
        "--save_freq",
        "1",
        *FAST,
    ]
    assert cli_main(args) == 0
    return out, args


def _sample(pipe, seed=0):
    generator = torch.Generator("cpu").manual_seed(seed)
    return np.asarray(pipe("a cat on a sofa", num_inference_steps=2, generator=generator, output_type="np").images)


def test_tiny_sd_reloads_and_samples(tiny_models):
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_models[0])
    assert isinstance(pipe.scheduler, DDIMScheduler) and pipe.safety_checker is None
    image = _sample(pipe)
    assert image.shape == (1, 32, 32, 3) and np.isfinite(image).all()
    with pytest.raises(FileExistsError):
        from synartifact.tiny import build_tiny_sd

        build_tiny_sd(tiny_models[0])


def test_ddpo_trains_lora_and_writes_a_loadable_folder(trained, tiny_models):
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file

    out, _ = trained
    lora = load_file(out / "pytorch_lora_weights.safetensors")
    lora_b = [v for k, v in lora.items() if "lora_B" in k or "lora.up" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b), "LoRA B starts at zero: training must move it"
    for name in ("README.md", "reward_log.jsonl", "reward_curve.png", "train_log.jsonl", "ddpo_summary.json"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == ["epoch_0000.png", "epoch_0001.png"]
    log = [json.loads(line) for line in (out / "reward_log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == [0, 1]
    assert all(np.isfinite(row["reward_mean"]) and row["sampling_s"] >= 0 for row in log)
    card = (out / "README.md").read_text()
    assert str(tiny_models[0]) in card and "Reward before and after" in card

    base = StableDiffusionPipeline.from_pretrained(tiny_models[0])
    before = _sample(base)
    base.load_lora_weights(out, weight_name="pytorch_lora_weights.safetensors")
    after = _sample(base)
    assert not np.allclose(before, after), "the LoRA weights must change the images"


def test_lora_folder_loads_without_a_weight_name(trained, tiny_models, monkeypatch):
    """``pipeline.load_lora_weights(output_dir)`` as users write it. The suite sets HF_HUB_OFFLINE=1, under which
    diffusers 0.39 demands a ``weight_name`` even for a local folder; a user's online session does not."""
    from diffusers import StableDiffusionPipeline
    from diffusers.loaders import lora_base

    out, _ = trained
    monkeypatch.setattr(lora_base, "HF_HUB_OFFLINE", False)
    pipe = StableDiffusionPipeline.from_pretrained(tiny_models[0])
    before = _sample(pipe)
    pipe.load_lora_weights(out)
    assert not np.allclose(before, _sample(pipe))


def test_ddpo_resumes_from_checkpoint(trained):
    from safetensors.torch import load_file

    from synartifact.ddpo import cli_main

    out, args = trained
    args = list(args)
    checkpoint = out / "checkpoints" / "checkpoint_0" / "pytorch_lora_weights.safetensors"
    assert checkpoint.is_file()  # TRL saves after epoch 1 (never after epoch 0) as checkpoint_0
    with pytest.raises(FileExistsError, match="finished run"):
        cli_main(args)
    resume = ["--resume_from", str(out / "checkpoints")]
    # checkpoint_0 ended epoch 1 -> first epoch 2; with num_epochs 2 nothing trains: the saved LoRA is the checkpoint's
    assert cli_main(args + resume) == 0
    saved, expected = load_file(out / "pytorch_lora_weights.safetensors"), load_file(checkpoint)
    assert saved.keys() == expected.keys()
    assert all(torch.equal(saved[k], expected[k]) for k in expected)
    args[args.index("--num_epochs") + 1] = "3"
    assert cli_main(args + resume) == 0
    epochs = [json.loads(line)["epoch"] for line in (out / "reward_log.jsonl").read_text().splitlines()]
    assert epochs == [0, 1, 2]  # epoch 1 is not trained twice
    continued = load_file(out / "pytorch_lora_weights.safetensors")
    assert any(not torch.equal(continued[k], expected[k]) for k in expected), "training after resume moves the LoRA"


LORA = "pytorch_lora_weights.safetensors"


def _three_epoch_args(sd: Path, vlm: Path, out: Path) -> list[str]:
    # 3 epochs with save_freq 1: checkpoints after epochs 1 and 2, and an epoch to train after the first one
    args = ["--config", str(RECIPE), "--pretrained_model", str(sd), "--classifier", str(vlm), "--output_dir", str(out)]
    return args + ["--num_epochs", "3", "--save_freq", "1", *FAST]


@pytest.fixture(scope="module")
def three_epochs(tiny_models, tmp_path_factory):
    """An uninterrupted 3-epoch run: what a resumed run must reproduce."""
    from synartifact.ddpo import cli_main

    out = tmp_path_factory.mktemp("ddpo-whole") / "out"
    assert cli_main(_three_epoch_args(*tiny_models, out)) == 0
    return out


def _losses(out: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return {row["step"]: row["loss"] for row in rows if "loss" in row}


def _rewards(out: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "reward_log.jsonl").read_text().splitlines()]
    assert len({row["epoch"] for row in rows}) == len(rows), "an epoch logged twice"
    return {row["epoch"]: row["reward_mean"] for row in rows}


def _assert_same_run(out: Path, whole: Path, from_epoch: int, from_step: int) -> None:
    """The run in ``out`` (resumed) logged what the uninterrupted one did, from an epoch and a step on."""
    from safetensors.torch import load_file

    losses, expected = _losses(out), _losses(whole)
    assert sorted(losses) == sorted(expected)
    assert [s for s in expected if s >= from_step], "no step to compare after the checkpoint"
    for step in sorted(expected):
        assert losses[step] == pytest.approx(expected[step], rel=1e-4, abs=1e-7), (step, losses, expected)
    rewards, expected_rewards = _rewards(out), _rewards(whole)
    assert sorted(rewards) == [0, 1, 2] and from_epoch <= 2
    for epoch in range(from_epoch, 3):
        assert rewards[epoch] == pytest.approx(expected_rewards[epoch], rel=1e-4), (epoch, rewards, expected_rewards)
    lora, expected_lora = load_file(out / LORA), load_file(whole / LORA)
    assert lora.keys() == expected_lora.keys()
    for key, value in expected_lora.items():
        torch.testing.assert_close(lora[key], value, rtol=1e-4, atol=1e-6)


def test_killed_ddpo_run_resumes_where_its_last_checkpoint_left_off(tiny_models, three_epochs, tmp_path):
    """SIGKILL a real run after its first checkpoint and rerun it into the same folder: it goes on from the epoch
    after the checkpoint's, with its weights, optimizer, prompts and random state, as if never stopped."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from synartifact.ddpo import _last_complete_checkpoint, cli_main

    out = tmp_path / "killed"
    args = _three_epoch_args(*tiny_models, out)
    log = tmp_path / "killed.log"
    with open(log, "w") as fh:
        process = subprocess.Popen([sys.executable, "-m", "synartifact.ddpo", *args], cwd=REPO, stdout=fh, stderr=fh)
    try:
        deadline = time.monotonic() + 300
        while _last_complete_checkpoint(out / "checkpoints", use_lora=True) is None:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert not (out / LORA).exists(), "the run finished before it was killed"
    checkpoint = _last_complete_checkpoint(out / "checkpoints", use_lora=True)
    progress = torch.load(checkpoint / "custom_checkpoint_0.pkl", weights_only=False)
    assert progress["epoch"] >= 1 and progress["global_step"] > 0

    assert cli_main(args) == 0  # the same command again: resumes from the last complete checkpoint
    _assert_same_run(out, three_epochs, progress["epoch"] + 1, progress["global_step"])


def test_ddpo_skips_a_truncated_checkpoint(tiny_models, three_epochs, tmp_path, caplog):
    import logging
    import shutil

    from synartifact.ddpo import cli_main

    out = tmp_path / "run"
    shutil.copytree(three_epochs, out)
    (out / LORA).unlink()  # an unfinished run, killed while writing its second checkpoint
    weights = out / "checkpoints" / "checkpoint_1" / LORA
    weights.write_bytes(weights.read_bytes()[:-100])
    args = _three_epoch_args(*tiny_models, out)

    with pytest.raises(ValueError, match=f"{LORA} is truncated"):
        cli_main([*args, "--resume_from", str(weights.parent)])
    caplog.clear()
    caplog.set_level(logging.INFO, logger="synartifact.ddpo")
    assert cli_main(args) == 0
    assert any("checkpoint_1" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records), caplog.text
    assert "checkpoint_0: epoch 2" in caplog.text  # resumed from the complete one, after the epoch it ended
    progress = torch.load(out / "checkpoints" / "checkpoint_2" / "custom_checkpoint_0.pkl", weights_only=False)
    assert progress["epoch"] == 2  # the next checkpoint is numbered after the incomplete one
    _assert_same_run(out, three_epochs, 2, 0)


def test_evaluate_generator_writes_report(trained, tiny_models, tmp_path):
    from synartifact.cli import main

    out, _ = trained
    sd, vlm = tiny_models
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat on a sofa\na red car\n\na red car\n")
    target = tmp_path / "eval"
    code = main(
        [
            "evaluate-generator",
            "--base",
            str(sd),
            "--lora",
            str(out),
            "--classifier",
            str(vlm),
            "--prompts",
            str(prompts),
            "--seeds",
            "0",
            "1",
            "--out",
            str(target),
            "--num-inference-steps",
            "2",
            "--reward-soft",
            "--reward-constrained",
        ]
    )
    assert code == 0
    metrics = json.loads((target / "metrics.json").read_text())
    assert metrics["config"]["prompts"] == ["a cat on a sofa", "a red car"]
    for part in ("base", "refined"):
        assert len(metrics[part]["per_seed_mean"]) == 2 and set(metrics[part]["per_kind_rate"]) >= {"localized_blur"}
    assert metrics["delta"]["mean_reward"] == pytest.approx(
        metrics["refined"]["mean_reward"] - metrics["base"]["mean_reward"]
    )
    assert (target / "report.md").is_file() and (target / "before_after.png").is_file()
    # two seeds: a spread, so a gain in its units. The sample std of two values is |x0 - x1| / sqrt(2); the spread is
    # the larger of the base's and the refined's
    (b0, b1), (r0, r1) = metrics["base"]["per_seed_mean"], metrics["refined"]["per_seed_mean"]
    spread = max(abs(b0 - b1), abs(r0 - r1)) / math.sqrt(2)
    assert spread > 0 and metrics["delta"]["gain_over_spread"] == pytest.approx(
        (metrics["refined"]["mean_reward"] - metrics["base"]["mean_reward"]) / spread
    )
    # without reward flags the generator is judged by the reward it was trained on (the run's summary)
    run = json.loads((out / "ddpo_summary.json").read_text())["script_args"]
    again = tmp_path / "eval-run-reward"
    base_args = ["evaluate-generator", "--base", str(sd), "--lora", str(out), "--classifier", str(vlm)]
    common = ["--prompts", str(prompts), "--seeds", "0", "--num-inference-steps", "2"]
    assert main([*base_args, *common, "--out", str(again), "--images-per-prompt", "2"]) == 0
    again_metrics = json.loads((again / "metrics.json").read_text())
    config = again_metrics["config"]
    assert again_metrics["refined"]["num_images"] == 4 and config["images_per_prompt"] == 2  # 2 prompts x 2 x seed 0
    assert (config["reward_soft"], config["reward_constrained"]) == (run["reward_soft"], run["reward_constrained"])
    assert main([*base_args, *common, "--out", str(again), "--overwrite", "--no-reward-soft"]) == 0
    assert json.loads((again / "metrics.json").read_text())["config"]["reward_soft"] is False
    assert (
        main(
            [
                "evaluate-generator",
                "--base",
                str(sd),
                "--classifier",
                str(vlm),
                "--prompts",
                str(prompts),
                "--out",
                str(target),
            ]
        )
        == 2
    )  # exists, no --overwrite


def test_training_prompts_exclude_the_held_out_evaluation_prompts(tmp_path):
    from synartifact.generator.sampling import DEFAULT_PROMPTS, held_out_prompts, split_prompts

    # no prompt source: the built-in list, whose first prompts are held out as for a prompt file
    train, evaluation = split_prompts(None, num_eval=8)
    assert evaluation == held_out_prompts(None, 8) == list(DEFAULT_PROMPTS[:8])
    assert train == list(DEFAULT_PROMPTS[8:])
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a\nb\n\nb\nc\nd\n")
    assert split_prompts(str(prompts), num_eval=2) == (["c", "d"], ["a", "b"])
    assert split_prompts(str(prompts), num_eval=1, max_prompts=2) == (["b", "c"], ["a"])
    assert split_prompts(str(prompts), num_eval=1, holdout=False) == (["a", "b", "c", "d"], ["a"])
    assert split_prompts(str(prompts), num_eval=0) == (["a", "b", "c", "d"], [])
    # every prompt held out: train on them anyway (a warning), rather than on nothing
    assert split_prompts(str(prompts), num_eval=10) == (["a", "b", "c", "d"], ["a", "b", "c", "d"])


def test_ddpo_without_a_prompt_source_trains_on_no_held_out_prompt(trained):
    from synartifact.generator.sampling import DEFAULT_PROMPTS, held_out_prompts

    out, args = trained
    assert "--prompts" not in args  # the recipe's `prompts: null`
    summary = json.loads((out / "ddpo_summary.json").read_text())
    assert summary["script_args"]["prompts"] is None
    # FAST: --num_eval_images 2 --max_prompts 2
    assert summary["eval_prompts"] == held_out_prompts(None, 2) == list(DEFAULT_PROMPTS[:2])
    assert summary["train_prompts"] == list(DEFAULT_PROMPTS[2:4])
    assert summary["before"]["num_images"] == summary["after"]["num_images"] == 2


def test_one_mapping_from_script_arguments_to_reward_settings():
    import dataclasses
    import inspect

    from synartifact.configs import DDPOScriptArguments
    from synartifact.reward import REWARD_SETTINGS, ArtifactReward, reward_settings

    # reward_funcs / reward_funcs_weights choose and weigh the reward terms (guards), not ArtifactReward's settings
    guards = {"reward_funcs", "reward_funcs_weights"}
    reward_fields = {f.name for f in dataclasses.fields(DDPOScriptArguments) if "reward" in f.name} - guards
    assert reward_fields == set(REWARD_SETTINGS), "every reward field of the DDPO script reaches ArtifactReward"
    assert set(REWARD_SETTINGS.values()) <= set(inspect.signature(ArtifactReward).parameters)
    # the first source with a value wins (the command line, then the DDPO run); None is "not given"
    given = {"reward_soft": None, "reward_mode": "generate", "other": 1}
    run = {"reward_soft": True, "reward_mode": "score", "unparsable_reward": 0.5, "reward_weights": None}
    assert reward_settings(given, run) == {"mode": "generate", "soft": True, "unparsable_reward": 0.5}
    assert reward_settings({}) == {}


def test_ddpo_builds_missing_tiny_models(tmp_path, monkeypatch):
    from synartifact.ddpo import cli_main

    monkeypatch.chdir(tmp_path)
    # "outputs/tiny-sd" has the shape of a Hub id "org/name": it must still be taken as a local folder
    args = ["--config", str(RECIPE), "--pretrained_model", "outputs/tiny-sd", "--classifier", "no/such/classifier"]
    with pytest.raises(FileNotFoundError, match="build_tiny_models_if_missing"):
        cli_main([*args, "--output_dir", "o", *FAST])
    assert (
        cli_main([*args, "--output_dir", "o", "--num_epochs", "1", *FAST, "--build_tiny_models_if_missing", "true"])
        == 0
    )
    assert (tmp_path / "outputs/tiny-sd/model_index.json").is_file()
    # the untrained fallback classifier goes into the run's own folder, never into a fixed demo folder
    assert (tmp_path / "o" / "tiny-classifier" / "config.json").is_file()
    assert not (tmp_path / "outputs/tiny-vlm").exists()
    assert (tmp_path / "o" / "pytorch_lora_weights.safetensors").is_file()
    summary = json.loads((tmp_path / "o" / "ddpo_summary.json").read_text())
    assert summary["script_args"]["classifier"] == "o/tiny-classifier"
    assert summary["script_args"]["reward_constrained"] is True


def test_ddpo_refuses_sampling_without_guidance(tiny_models, tmp_path):
    from synartifact.ddpo import cli_main

    sd, vlm = tiny_models
    args = ["--config", str(RECIPE), "--pretrained_model", str(sd), "--classifier", str(vlm)]
    with pytest.raises(ValueError, match="classifier-free guidance"):
        cli_main([*args, "--output_dir", str(tmp_path / "o"), "--sample_guidance_scale", "1.0", *FAST])


@pytest.mark.parametrize("recipe", sorted(REPO.glob("recipes/*/ddpo/*.yaml")), ids=lambda p: p.parent.parent.name)
def test_ddpo_recipes_parse(recipe):
    from trl import DDPOConfig, TrlParser

    from synartifact.configs import DDPOScriptArguments

    first = recipe.read_text().splitlines()[0]
    assert first.startswith("#") and "Hardware" in first
    script_args, config = TrlParser((DDPOScriptArguments, DDPOConfig)).parse_args_and_config(["--config", str(recipe)])
    assert script_args.pretrained_model and script_args.classifier and config.num_epochs >= 1
    assert script_args.reward_mode in ("score", "generate")
    assert config.sample_batch_size % config.train_batch_size == 0


def test_ddpo_needs_the_generator_the_classifier_and_the_output_folder(tmp_path, capsys):
    from synartifact.ddpo import cli_main

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("pretrained_model: x\noutput_dir: y\n")  # no classifier, and no default to fall back on
    with pytest.raises(SystemExit) as err:
        cli_main(["--config", str(recipe)])
    assert err.value.code == 2 and "--classifier" in capsys.readouterr().err


def _lora_halves(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A LoRA folder's down (A) and up (B) weights, each flattened into one vector."""
    from safetensors.torch import load_file

    lora = load_file(folder / LORA)
    down = [v.flatten() for k, v in sorted(lora.items()) if "lora.down" in k or "lora_A" in k]
    up = [v.flatten() for k, v in sorted(lora.items()) if "lora.up" in k or "lora_B" in k]
    assert down and len(down) == len(up)
    return torch.cat(down), torch.cat(up)


def test_ddpo_under_torchrun_two_processes(tiny_models, tmp_path):
    """The same script under a real launcher: world size 2 over gloo, one LoRA folder that loads on the base, the
    weights trained, and the same step as one process with the same global batch (4 samples, one optimizer step).

    The two runs cannot match weight for weight: TRL seeds each process apart (``set_seed(seed,
    device_specific=True)``), so the second process samples other noise and prompts, and the gradients differ (the
    signs of B agree on about half its entries). What they share is what does not depend on the samples: A (LoRA's
    down weights) starts from the same seeded values and gets no gradient in the first step (B = 0), and Adam's first
    step moves each entry of B by the learning rate times g / (|g| + eps), i.e. by the recipe's lr for every entry whose
    gradient is not tiny. So: A equal to 1e-6, and |B| above 0 everywhere, at most lr, and within 1 % of lr on 99 % of B.
    """
    import subprocess
    import sys

    import yaml
    from diffusers import StableDiffusionPipeline

    from synartifact.ddpo import cli_main

    sd, vlm = tiny_models
    out = tmp_path / "ddp"
    common = ["--config", str(RECIPE), "--pretrained_model", str(sd), "--classifier", str(vlm), "--num_epochs", "1"]
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
    ]
    cmd = [*launcher, "-m", "synartifact.ddpo", *common, "--output_dir", str(out), *FAST]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "ddpo_summary.json").read_text())
    assert summary["world_size"] == 2
    pipe = StableDiffusionPipeline.from_pretrained(sd)
    before = _sample(pipe)
    pipe.load_lora_weights(str(out), weight_name="pytorch_lora_weights.safetensors")
    assert np.isfinite(_sample(pipe)).all() and not np.allclose(_sample(pipe), before)

    # one process, the same global batch: 4 samples (2 per process above), one training batch of 4
    alone = tmp_path / "one"
    assert (
        cli_main([*common, "--output_dir", str(alone), *FAST, "--sample_batch_size", "4", "--train_batch_size", "4"])
        == 0
    )
    lr = yaml.safe_load(RECIPE.read_text())["train_learning_rate"]  # the recipe's, not what the run recorded
    steps = {}
    for run in (out, alone):
        steps[run.name] = sum(
            "loss" in json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()
        )
        _, up = _lora_halves(run)
        assert float(up.abs().max()) <= lr * (1 + 1e-5), f"{run.name}: more than one Adam step of lr {lr}"
        # every entry moved; one whose gradient is within a few eps of 0 moves by less than lr (0.87 lr was seen)
        assert float(up.abs().min()) > 0, f"{run.name}: an entry of B did not move (trained nothing?)"
        assert float(((up.abs() - lr).abs() < 0.01 * lr).float().mean()) > 0.99
    assert steps == {"ddp": 1, "one": 1}
    (down_two, up_two), (down_one, up_one) = _lora_halves(out), _lora_halves(alone)
    torch.testing.assert_close(down_two, down_one, rtol=0, atol=1e-6)
    assert float(up_two.abs().mean()) == pytest.approx(float(up_one.abs().mean()), rel=1e-3)


def test_evaluate_generator_with_an_independent_judge(trained, tiny_models, tmp_path, monkeypatch):
    import shutil

    from synartifact.cli import main
    from synartifact.generator import evaluation
    from synartifact.reward import ArtifactReward
    from synartifact.taxonomy import SLUGS

    out, _ = trained
    sd, vlm = tiny_models
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat on a sofa\na red car\n")
    target = tmp_path / "judged"
    args = ["evaluate-generator", "--base", str(sd), "--lora", str(out), "--classifier", str(vlm), "--judge", str(vlm)]
    args += ["--prompts", str(prompts), "--seeds", "0", "1", "--num-inference-steps", "2", "--out", str(target)]
    judge_eval = tmp_path / "judge-eval.json"
    per_kind = {"localized_blur": {"f1": 0.9, "support": 4}}
    judge_eval.write_text(
        json.dumps({"model": {"binary_f1": 0.95, "per_kind": per_kind, "macro_f1_kinds": ["localized_blur"]}})
    )
    assert main([*args, "--reward-soft", "--reward-constrained", "--judge-eval", str(judge_eval)]) == 0
    metrics = json.loads((target / "metrics.json").read_text())
    judge = metrics["judge"]
    # a strong judge on paper, but the reward's own classifier: the verdict cannot rest on it
    assert judge["strength"]["strong"] is True and judge["strength"]["source"] == str(judge_eval)
    assert metrics["verdict"]["verdict"] in ("inconclusive", "not confirmed")
    reasons = {r["target"]: r for r in metrics["verdict"]["reasons"]}
    assert reasons["judge_strength"]["outcome"] == "undecided"
    assert reasons["fine_detail"]["value"] == metrics["drift"]["noise_ratio"]
    # content fidelity of 2 prompts x 2 seeds: each prompt has 2 base samples, so a prototype without the same noise
    fidelity = metrics["fidelity"]
    assert fidelity["num_images"] == 4 and fidelity["chance"] == 0.5 and len(fidelity["refined_hits"]) == 4
    assert reasons["content_fidelity"]["value"] == fidelity["fidelity"]
    assert (target / "fidelity.png").is_file()
    assert judge["config"]["mode"] == "generate" and judge["config"]["soft"] is False
    assert judge["config"]["independent"] is False  # the same folder as the reward: flagged, not trusted
    assert metrics["config"]["judge"] == str(vlm) and metrics["config"]["judge_mode"] == "generate"
    for side in (metrics, judge):
        for part in ("base", "refined"):
            stats = side[part]
            assert stats["num_images"] == 4 and len(stats["per_seed_mean"]) == 2
            assert set(stats["per_kind_rate"]) == set(SLUGS)
            # an image with an artifact has at least one kind, and one kind's images all have an artifact
            assert (
                max(stats["per_kind_rate"].values()) <= stats["artifact_rate"] <= sum(stats["per_kind_rate"].values())
            )
        assert side["delta"]["artifact_rate"] == pytest.approx(
            side["refined"]["artifact_rate"] - side["base"]["artifact_rate"]
        )
        assert side["delta"]["mean_reward"] == pytest.approx(
            side["refined"]["mean_reward"] - side["base"]["mean_reward"]
        )
    assert metrics["reward_gain_in_spread"] == metrics["delta"]["gain_over_spread"]
    assert metrics["judge_gain_in_spread"] == judge["delta"]["gain_over_spread"]
    report = (target / "report.md").read_text()
    assert "Training reward vs independent judge" in report and "not independent" in report
    assert (target / "before_after.png").is_file()
    # drift: one distance per image pair (2 prompts x 2 seeds), and the seed-to-seed scale from the 2 base seeds
    drift = metrics["drift"]
    assert len(drift["mse"]) == 4 and len(drift["seed_to_seed"]) == 2 and drift["mean_mse"] >= 0
    assert drift["relative_drift"] == pytest.approx(drift["mean_mse"] / drift["seed_to_seed_mse"])
    assert (target / "drift.png").is_file() and "## Drift" in report
    assert "## Content fidelity" in report
    verdict = report[report.index("## Verdict") :]
    assert verdict.startswith(f"## Verdict\n\n**Verdict: {metrics['verdict']['verdict']}.**")
    assert verdict.rstrip().endswith("|") and verdict.count("\n| ") == 1 + len(reasons)  # header + one row each

    # generate once, score twice: the judge sees the very images the reward saw
    calls = []
    sample = evaluation.sample_images
    monkeypatch.setattr(evaluation, "sample_images", lambda *a, **k: calls.append(1) or sample(*a, **k))
    settings = {"mode": "score", "soft": False, "constrained": True}
    copy = shutil.copytree(vlm, tmp_path / "a-copy-of-the-reward")  # another folder, the same weights
    metrics = evaluation.evaluate_generator(
        base=str(sd),
        lora=str(out),
        classifier=ArtifactReward(vlm, **settings),
        judge=ArtifactReward(copy, **settings),
        prompts=["a cat on a sofa", "a red car"],
        seeds=[0, 1],
        num_inference_steps=2,
        out=tmp_path / "same-judge",
    )
    assert len(calls) == 2 * 2  # base and refined, two seeds each
    # independence is decided by the weights, not the folder: a copy of the reward is the reward
    assert metrics["judge"]["config"]["independent"] is False
    assert "not independent" in (tmp_path / "same-judge" / "report.md").read_text()
    for part in ("base", "refined"):
        assert metrics["judge"][part] == metrics[part]
        assert metrics[part]["artifact_rate"] == 1.0  # a constrained score-mode reward always names a kind
        assert sum(metrics[part]["per_kind_rate"].values()) == pytest.approx(1.0)
    # without a judge both gain keys are still there, the judge's as None; one seed has no spread
    plain = evaluation.evaluate_generator(
        base=str(sd),
        lora=str(out),
        classifier=ArtifactReward(vlm, **settings),
        prompts=["a red car"],
        seeds=[0],
        num_inference_steps=2,
        out=tmp_path / "no-judge",
    )
    assert "judge" not in plain and plain["judge_gain_in_spread"] is None and plain["reward_gain_in_spread"] is None
    assert plain["config"]["judge"] is None and plain["refined"]["artifact_rate"] == 1.0


def test_two_evaluations_of_one_generator_give_identical_figures(trained, tiny_models, tmp_path):
    """Sampling (a seeded CPU generator per image) and scoring (reward and judge) are deterministic on one machine:
    the same evaluation twice writes the same metrics.json and report.md, byte for byte."""
    from synartifact.generator.evaluation import evaluate_generator
    from synartifact.tiny import build_tiny_vlm

    out, _ = trained
    sd, vlm = tiny_models
    judge = build_tiny_vlm(tmp_path / "judge", seed=1)  # another classifier: an independent judge
    runs = []
    for name in ("first", "second"):
        evaluate_generator(
            base=str(sd),
            lora=str(out),
            classifier=str(vlm),
            judge=str(judge),
            judge_mode="score",
            prompts=["a cat on a sofa", "a red car"],
            seeds=[0, 1],
            images_per_prompt=2,
            num_inference_steps=2,
            reward_soft=True,
            out=tmp_path / name,
        )
        runs.append({f: (tmp_path / name / f).read_text() for f in ("metrics.json", "report.md")})
    assert runs[0] == runs[1]
    metrics = json.loads(runs[0]["metrics.json"])
    assert metrics["judge"]["config"]["independent"] is True and len(metrics["drift"]["mse"]) == 8
    # the figures are not trivially equal: the images differ from seed to seed and the refined ones from the base
    assert metrics["drift"]["mean_mse"] > 0 and len(set(metrics["drift"]["seed_to_seed"])) > 1


def test_a_judge_is_independent_only_when_its_weights_differ(tiny_vlm, tmp_path):
    """Independence by content: a copy of the reward's folder, or the same weights loaded twice, is the
    reward's classifier; one changed weight makes another classifier."""
    import shutil

    from safetensors.torch import load_file, save_file

    from synartifact.classifier import ArtifactClassifier
    from synartifact.generator.evaluation import _judge_reward, same_classifier
    from synartifact.reward import ArtifactReward

    copy = shutil.copytree(tiny_vlm, tmp_path / "copy")
    changed = shutil.copytree(tiny_vlm, tmp_path / "changed")
    weights = load_file(changed / "model.safetensors")
    name = sorted(weights)[0]
    weights[name] = weights[name] + 1e-3
    save_file(weights, changed / "model.safetensors", metadata={"format": "pt"})

    reward = ArtifactReward(tiny_vlm, mode="score")
    assert same_classifier(str(copy), reward) and same_classifier(copy, tiny_vlm)
    assert not same_classifier(changed, reward) and not same_classifier(changed, copy)
    # loaded models, told apart by their weights alone (no folder to read)
    loaded = [ArtifactClassifier.from_pretrained(folder, device="cpu") for folder in (tiny_vlm, copy, changed)]
    for clf in loaded:
        clf.name_or_path = None
    assert same_classifier(loaded[0], loaded[1]) and not same_classifier(loaded[0], loaded[2])
    # what evaluate_generator records
    assert _judge_reward(str(copy), "score", reward, None)[1]["independent"] is False
    assert _judge_reward(str(changed), "score", reward, None)[1]["independent"] is True


# ---- guards: reward terms, drift penalty, best-by-judge ----------------------------------------------------------


def test_reward_terms_are_weighted_summed_and_reported():
    from synartifact.generator.guards import MixedReward, check_reward_funcs, get_reward_funcs

    def artifact(images, prompts, metadata):
        return torch.tensor([1.0, 0.5]), {"unparsable": 1, "kinds_found": {"localized_blur": 1}}

    def drift(images, prompts, metadata):
        return torch.tensor([-0.2, -0.4]), {"mean_drift": 0.3}

    mixed = MixedReward({"artifact": artifact, "drift": drift}, [1.0, 2.0])
    total, info = mixed(None, ["a", "b"], None)
    assert torch.allclose(total, torch.tensor([1.0 - 0.4, 0.5 - 0.8]))
    assert info["terms"] == pytest.approx({"artifact": 0.75, "drift": -0.3})
    assert info["unparsable"] == 1 and info["kinds_found"] == {"localized_blur": 1}
    # the default is today's reward itself, untouched
    assert get_reward_funcs(["artifact"], None, artifact=artifact) is artifact
    assert check_reward_funcs(["artifact", "drift"]) == (["artifact", "drift"], [1.0, 1.0])
    with pytest.raises(ValueError, match="2 values for 1 reward_funcs"):
        check_reward_funcs(["artifact"], [1.0, 0.5])
    with pytest.raises(ValueError, match="must be one of artifact, contrast, drift"):
        check_reward_funcs(["artifact", "beauty"])
    with pytest.raises(ValueError, match="finite and >= 0"):
        check_reward_funcs(["drift"], [-1.0])


def test_drift_is_zero_for_the_base_reference_and_positive_elsewhere(tiny_sd):
    from diffusers import StableDiffusionPipeline

    from synartifact.generator.guards import DriftPenalty, get_reward_funcs
    from synartifact.generator.sampling import sample_images

    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd)
    pipe.set_progress_bar_config(disable=True)
    prompts = ["a cat on a sofa", "a red car"]
    drift = DriftPenalty.from_pipeline(pipe, prompts, seed=0, num_inference_steps=2)
    same = sample_images(pipe, prompts, 0, num_inference_steps=2)
    other = sample_images(pipe, prompts, 1, num_inference_steps=2)
    assert drift.distances(same, prompts) == [0.0, 0.0]
    # TRL hands the scorer a (B, 3, H, W) tensor in [0, 1]: the same images read the same
    batch = torch.stack([torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1) for im in same])
    terms, info = drift(batch, prompts, None)
    assert torch.equal(terms, torch.zeros(2)) and info["mean_drift"] == 0.0
    terms, _ = drift(other, prompts, None)
    assert (terms < 0).all(), "a different image is a positive distance, a negative reward term"
    with pytest.raises(ValueError, match="no reference for prompt 'a dog'"):
        drift(same[:1], ["a dog"], None)
    config = type("Config", (), dict(seed=0, sample_num_steps=2, sample_guidance_scale=5.0, sample_eta=1.0))
    mixed = get_reward_funcs(
        ["artifact", "drift"],
        [0.0, 3.0],
        artifact=lambda im, p, m: (torch.ones(len(p)), {}),
        sd_pipeline=pipe,
        prompts=prompts,
        config=config,
    )
    total, info = mixed(other, prompts, None)
    assert torch.allclose(total, 3.0 * terms) and info["terms"]["drift"] == pytest.approx(float(terms.mean()))


def test_contrast_guard_by_hand():
    from synartifact.generator.guards import ContrastGuard, rms_contrast

    def halves(low, high):  # left half `low`, right half `high` (grey levels in [0, 1]): luminance std (high-low)/2
        array = np.full((4, 4, 3), low, np.float32)
        array[:, 2:] = high
        return array

    assert rms_contrast(np.full((4, 4, 3), 0.3, np.float32)) == 0.0
    assert rms_contrast(halves(0.0, 1.0)) == pytest.approx(0.5)
    # a pure red/green split: luminance 0.299 vs 0.587 (Rec. 601), std half the difference
    red_green = np.zeros((4, 4, 3), np.float32)
    red_green[:, :2, 0], red_green[:, 2:, 1] = 1.0, 1.0
    assert rms_contrast(red_green) == pytest.approx((0.587 - 0.299) / 2, abs=1e-6)
    guard = ContrastGuard({"p": 0.25, "flat prompt": 0.0}, floor=1.0)
    images = [halves(0.0, 1.0), halves(0.25, 0.75), halves(0.375, 0.625), halves(0.5, 0.5), halves(0.2, 0.4)]
    terms, info = guard(images, ["p", "p", "p", "p", "flat prompt"], None)
    # above and at the reference: nothing; half the contrast: -0.5; a blank: -1; a prompt with no contrast: nothing
    assert terms.tolist() == pytest.approx([0.0, 0.0, -0.5, -1.0, 0.0])
    assert info["mean_contrast_ratio"] == pytest.approx((2.0 + 1.0 + 0.5 + 0.0 + 1.0) / 5)
    # with a floor of 0.5, half the reference contrast is free, a quarter of it costs half, a blank all
    guard = ContrastGuard({"p": 0.25}, floor=0.5)
    images = [halves(0.375, 0.625), halves(0.4375, 0.5625), halves(0.5, 0.5)]
    assert guard(images, ["p"] * 3, None)[0].tolist() == pytest.approx([0.0, -0.5, -1.0])
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        ContrastGuard({"p": 0.25}, floor=0.0)
    with pytest.raises(ValueError, match="no reference for prompt 'a dog'"):
        guard(images[:1], ["a dog"], None)
    with pytest.raises(ValueError, match="2 images for 1 prompts"):
        guard(images[:2], ["p"], None)
    with pytest.raises(ValueError, match="finite and >= 0"):
        ContrastGuard({"p": float("nan")})


def test_contrast_and_noise_guard_references_are_the_base_models_means(tiny_sd):
    from diffusers import StableDiffusionPipeline
    from PIL import Image
    from scipy import ndimage

    from synartifact.generator.guards import CONTRAST_FLOOR, NOISE_CEILING, REFERENCE_SEEDS, get_reward_funcs
    from synartifact.generator.sampling import sample_images

    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd)
    pipe.set_progress_bar_config(disable=True)
    prompts = ["a cat on a sofa", "a red car"]
    config = type("Config", (), dict(seed=3, sample_num_steps=2, sample_guidance_scale=5.0, sample_eta=1.0))
    calls = []
    real_call = type(pipe).__call__

    class Counting(type(pipe)):
        def __call__(self, *args, **kwargs):
            calls.append(1)
            return real_call(self, *args, **kwargs)

    pipe.__class__ = Counting
    mixed = get_reward_funcs(
        ["artifact", "contrast", "noise"],
        [1.0, 0.5, 0.25],
        artifact=lambda im, p, m: (torch.ones(len(p)), {}),
        sd_pipeline=pipe,
        prompts=prompts,
        config=config,
    )
    # the two guards share one set of base samples: one pipeline call per seed, not two
    assert len(calls) == REFERENCE_SEEDS
    pipe.__class__ = Counting.__mro__[1]
    guard, noise = mixed.funcs["contrast"], mixed.funcs["noise"]
    # oracle: PIL's own luminance conversion of the base samples of seeds 3..3+N-1, averaged per prompt; for the
    # noise guard, scipy's Laplace filter of that luminance on the interior pixels
    samples = [sample_images(pipe, prompts, 3 + k, num_inference_steps=2) for k in range(REFERENCE_SEEDS)]
    for i, prompt in enumerate(prompts):
        luminance = [np.asarray(s[i].convert("L"), np.float64) / 255 for s in samples]
        assert guard.references[prompt] == pytest.approx(np.mean([lum.std() for lum in luminance]), rel=0.02)
        energy = np.mean([np.abs(ndimage.laplace(lum))[1:-1, 1:-1].mean() for lum in luminance])
        assert noise.references[prompt] == pytest.approx(energy, rel=0.03)
    # a blank of each sample's mean colour loses all its contrast and has no grain: the total is 1 - 0.5
    blanks = [Image.new("RGB", im.size, tuple(np.asarray(im).reshape(-1, 3).mean(0).astype(int))) for im in samples[0]]
    total, info = mixed(blanks, prompts, None)
    assert total.tolist() == pytest.approx([0.5, 0.5]) and info["terms"]["contrast"] == pytest.approx(-1.0)
    assert info["terms"]["noise"] == 0.0
    # strong grain on a sample costs the noise guard's whole weight (and none of the contrast guard's)
    rng = np.random.default_rng(0)
    grainy = [
        Image.fromarray(
            np.clip(np.asarray(im, np.float64) + rng.normal(0, 80, (*im.size[::-1], 3)), 0, 255).astype(np.uint8)
        )
        for im in samples[0]
    ]
    total, info = mixed(grainy, prompts, None)
    assert info["terms"]["noise"] == pytest.approx(-1.0) and total.tolist() == pytest.approx([0.75, 0.75])
    # the base model's own samples lie around their references, inside the free band: on average they lose little
    assert guard.floor == CONTRAST_FLOOR and noise.ceiling == NOISE_CEILING
    for term in (guard, noise):
        terms, _ = term(samples[0] + samples[1], prompts * 2, None)
        assert float(terms.mean()) > -0.2


def test_noise_guard_by_hand():
    from synartifact.generator.guards import NoiseGuard, laplacian_energy

    checker = (np.indices((6, 6)).sum(0) % 2).astype(np.float32)[..., None].repeat(3, -1)  # black/white checkerboard
    ramp = np.linspace(0, 1, 6, dtype=np.float32)[None, :, None].repeat(6, 0).repeat(3, -1)
    assert laplacian_energy(np.full((5, 5, 3), 0.4, np.float32)) == pytest.approx(0.0, abs=1e-6)
    assert laplacian_energy(ramp) == pytest.approx(0.0, abs=1e-6)  # a linear ramp has no curvature
    assert laplacian_energy(checker) == pytest.approx(4.0)  # every interior pixel differs by 1 from 4 neighbours
    assert laplacian_energy(0.25 * checker) == pytest.approx(1.0)
    guard = NoiseGuard({"p": 1.0, "flat prompt": 0.0}, ceiling=1.25)
    images = [0.25 * checker, 0.3125 * checker, 0.46875 * checker, 0.625 * checker, checker, 0.25 * checker]
    terms, info = guard(images, ["p"] * 5 + ["flat prompt"], None)
    # up to the ceiling: nothing; 1.5x the ceiling: -0.5; twice the ceiling and beyond: -1; no reference: nothing
    assert terms.tolist() == pytest.approx([0.0, 0.0, -0.5, -1.0, -1.0, 0.0])
    assert info["mean_noise_ratio"] == pytest.approx((1.0 + 1.25 + 1.875 + 2.5 + 4.0 + 1.0) / 6)
    with pytest.raises(ValueError, match=">= 1"):
        NoiseGuard({"p": 1.0}, ceiling=0.9)
    with pytest.raises(ValueError, match="no reference for prompt 'a dog'"):
        guard(images[:1], ["a dog"], None)
    with pytest.raises(ValueError, match="at least 3 x 3"):
        laplacian_energy(np.zeros((2, 5, 3), np.float32))


def test_drift_measures_by_hand():
    from synartifact.generator.guards import high_frequency, measure_drift, pixel_mse

    grey, white = np.full((4, 4, 3), 0.5, np.float32), np.ones((4, 4, 3), np.float32)
    stripes = np.zeros((4, 4, 3), np.uint8)
    stripes[:, ::2] = 255  # columns alternate black and white: every horizontal neighbour differs by 1
    assert pixel_mse(grey, white) == pytest.approx(0.25) and pixel_mse(white, white) == 0.0
    assert high_frequency(grey) == 0.0 and high_frequency(stripes) == pytest.approx(0.5)  # (1 + 0) / 2
    base = {0: [grey, grey], 1: [white, grey]}
    refined = {0: [grey, white], 1: [white, stripes]}
    drift = measure_drift(base, refined)
    assert drift["mse"] == pytest.approx([0.0, 0.25, 0.0, pixel_mse(grey, stripes)])
    # seed 0 vs seed 1 of the base, image by image: grey-white and grey-grey
    assert drift["seed_to_seed"] == pytest.approx([0.25, 0.0])
    assert drift["relative_drift"] == pytest.approx(drift["mean_mse"] / 0.125)
    assert drift["high_frequency"]["base"]["mean"] == 0.0 and drift["noise_ratio"] is None
    with pytest.raises(ValueError, match="same size"):
        pixel_mse(grey, np.ones((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="at least one seed"):
        measure_drift({0: [grey]}, {1: [grey]})


def test_best_epoch_is_the_first_with_the_highest_judge_reward():
    from synartifact.generator.guards import BestTracker

    best = BestTracker()
    judged = [0.2, 0.5, 0.4, 0.5, float("nan"), 0.7, 0.6]
    assert [best.update(epoch, value) for epoch, value in enumerate(judged)] == [1, 1, 0, 0, 0, 1, 0]
    assert (best.best_epoch, best.best_value) == (5, 0.7)


def test_ddpo_with_drift_and_a_judge_keeps_the_best_epoch(tiny_models, tmp_path):
    from safetensors.torch import load_file

    from synartifact.ddpo import cli_main

    sd, vlm = tiny_models
    out = tmp_path / "out"
    args = ["--config", str(RECIPE), "--pretrained_model", str(sd), "--classifier", str(vlm)]
    args += ["--output_dir", str(out), "--num_epochs", "2", *FAST]
    args += ["--reward_funcs", "artifact", "drift", "--reward_funcs_weights", "1", "0.5"]
    args += ["--judge", str(vlm), "--judge_every", "1", "--judge_num_prompts", "1", "--judge_images_per_prompt", "2"]
    assert cli_main(args) == 0
    log = [json.loads(line) for line in (out / "reward_log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == [0, 1]
    for row in log:
        terms = row["terms"]
        assert set(terms) == {"artifact", "drift"} and terms["drift"] <= 0 <= terms["artifact"]
        assert row["reward_mean"] == pytest.approx(terms["artifact"] + 0.5 * terms["drift"], abs=1e-5)
        assert 0 <= row["judge_reward"] <= 1
        # the content guard's fields are recorded (one judge prompt: not measurable, so it decides nothing)
        assert row["content_measurable"] is False and row["content_kept"] is None
    summary = json.loads((out / "ddpo_summary.json").read_text())
    assert summary["content_guard"]["references"] is True and summary["content_guard"]["lost_epochs"] == []
    judged = [row["judge_reward"] for row in log]
    assert summary["best_epoch"] == judged.index(max(judged)) and summary["best_judge_reward"] == max(judged)
    # the judge picks the epoch on its own held-out prompt: neither trained on nor in the before/after comparison
    (judge_prompt,) = summary["judge_prompts"]
    assert judge_prompt not in summary["eval_prompts"] and judge_prompt not in summary["train_prompts"]
    assert set(summary["weights"]) == {"final", "best"}
    assert json.loads((out / "best" / "best.json").read_text())["epoch"] == summary["best_epoch"]
    best, final = load_file(out / "best" / LORA), load_file(out / LORA)
    assert best.keys() == final.keys()
    # the output folder holds the last epoch's weights; best/ those of the best-judged epoch (the same when it is last)
    same = all(torch.equal(best[k], final[k]) for k in final)
    assert same == (summary["best_epoch"] == 1)
    assert (out / "reward_curve.png").is_file()
    with pytest.raises(ValueError, match="2 values for 1 reward_funcs"):
        cli_main([*args, "--overwrite_output_dir", "true", "--reward_funcs", "drift"])


def test_resumed_judging_keeps_best_only_when_it_is_this_runs(tmp_path):
    from synartifact.ddpo import BestByJudge

    rows = [{"epoch": 0, "judge_reward": 0.3}, {"epoch": 1}, {"epoch": 2, "judge_reward": 0.6}]
    (tmp_path / "best").mkdir()
    (tmp_path / "best" / "best.json").write_text(json.dumps({"epoch": 2, "judge_reward": 0.6}))
    best = BestByJudge(None, ["p"], None, None, tmp_path, None, None)
    best.resume(rows)
    assert (best.tracker.best_epoch, best.tracker.best_value) == (2, 0.6) and (tmp_path / "best").is_dir()
    # a killed run saved epoch 4 as its best, but resumes from a checkpoint before it: that best is not this run's
    (tmp_path / "best" / "best.json").write_text(json.dumps({"epoch": 4, "judge_reward": 0.9}))
    best = BestByJudge(None, ["p"], None, None, tmp_path, None, None)
    best.resume(rows)
    assert best.tracker.best_epoch is None and not (tmp_path / "best").exists()


def test_judge_prompts_follow_the_evaluation_prompts_and_leave_training(tmp_path):
    from types import SimpleNamespace

    from synartifact.ddpo import _judge_prompts
    from synartifact.generator.sampling import split_prompts

    source = tmp_path / "prompts.txt"
    source.write_text("".join(f"prompt {i}\n" for i in range(6)))
    train, evaluation = split_prompts(str(source), 2)
    args = SimpleNamespace(prompts=str(source), judge_num_prompts=3)
    assert evaluation == ["prompt 0", "prompt 1"]
    assert _judge_prompts(args, evaluation, train) == ["prompt 2", "prompt 3", "prompt 4"]
    # nothing would be left to train on: a clear error, not a run that trains on the judge's prompts
    args.judge_num_prompts = 4
    with pytest.raises(ValueError, match="lower judge_num_prompts or num_eval_images"):
        _judge_prompts(args, evaluation, train)


def test_a_kill_between_the_checkpoint_and_the_reward_row_loses_no_epoch(tmp_path):
    """TRL saves a checkpoint inside the epoch, before the epoch's reward row is logged: a kill in between must not
    leave the resumed run without that epoch's row (the checkpoint carries it), nor log an epoch twice."""
    from synartifact.generator.ddpo_tracking import EpochRecorder

    log = tmp_path / "reward_log.jsonl"
    log.write_text(json.dumps({"epoch": 0, "reward_mean": 0.5}) + "\n" + '{"epoch": 2, "rew')  # a torn later line
    recorder = EpochRecorder(reward=None, out=tmp_path, write=True)
    recorder.resume(2, 10, {"epoch": 1, "reward_mean": 0.75})
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert rows == [{"epoch": 0, "reward_mean": 0.5}, {"epoch": 1, "reward_mean": 0.75}] == recorder.rows

    recorder = EpochRecorder(reward=None, out=tmp_path, write=True)
    recorder.resume(2, 10, {"epoch": 1, "reward_mean": 0.9})  # logged already: kept as logged, not twice
    assert [json.loads(line) for line in log.read_text().splitlines()] == rows
    recorder.resume(3, 10, {"epoch": 1, "reward_mean": 0.9})  # not the checkpoint's epoch: ignored
    assert [json.loads(line) for line in log.read_text().splitlines()] == rows


def test_reward_curve_names_every_guard_term_it_draws(tmp_path, monkeypatch):
    """The guard panel's title says what each drawn term measures, the noise guard's included."""
    import matplotlib.figure

    from synartifact.generator.ddpo_tracking import plot_reward_curve

    log = tmp_path / "reward_log.jsonl"
    rows = [
        {
            "epoch": e,
            "reward_mean": 0.9,
            "reward_min": 0.8,
            "reward_max": 1.0,
            "terms": {"artifact": 0.9, "contrast": -0.01, "noise": -0.02},
        }
        for e in range(3)
    ]
    log.write_text("\n".join(json.dumps(r) for r in rows))
    titles = []
    monkeypatch.setattr(
        matplotlib.figure.Figure, "savefig", lambda fig, *a, **k: titles.extend(ax.get_title() for ax in fig.axes)
    )
    plot_reward_curve(log, tmp_path / "curve.png")
    guard_title = next(t for t in titles if t.startswith("guard terms"))
    assert "contrast = -share of contrast lost" in guard_title
    assert "noise = -share of fine detail" in guard_title and "drift" not in guard_title


def test_sampling_a_pipeline_whose_parts_are_bf16(tiny_sd):
    """DDPO with mixed_precision bf16 casts the frozen VAE and text encoder to bf16 while the denoising loop's latents
    can come out in float32; sampling such a pipeline (the guards' base samples, the held-out evaluation) must run,
    as TRL's own sampling does under autocast. Seen failing on CUDA ('Input type (float) and bias type
    (c10::BFloat16) should be the same' in the VAE's decode); here the same state on CPU: a float32 UNet, a bf16 VAE."""
    from diffusers import StableDiffusionPipeline

    from synartifact.generator.sampling import sample_images

    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.vae.to(torch.bfloat16)
    images = sample_images(pipe, ["a red car", "a cat"], seed=0, num_inference_steps=2, eta=1.0)
    assert len(images) == 2 and images[0].size == images[1].size
