"""The SFT script: 2 steps on tiny VLMs (full and LoRA), resume, recipes, accelerate launch and 2 processes."""

import inspect
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from conftest import SMALL_VLM, free_port
from transformers import AutoModelForImageTextToText, TrainerCallback

import synartifact.sft as sft
from synartifact.classifier.loading import load_vlm_processor

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes").glob("*/sft/config_*.yaml"))
ACCELERATE_CONFIGS = sorted((REPO / "recipes" / "accelerate_configs").glob("*.yaml"))
SMALL = {k: v for k, v in SMALL_VLM.items() if k not in ("image_size", "patch_size")}  # widths and depths only
# The LLaVA "default" feature strategy reads the last encoder layer before the vision tower's final norm, so that
# norm gets no gradient (the reason the recipes set ddp_find_unused_parameters).
UNUSED_BY_DESIGN = ("post_layernorm",)


class Recorder(sft.SFTTrainer):
    """SFTTrainer that keeps the trainable parameters as they were before training (and as training began, after
    any resume) and counts the steps it ran."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial = {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}
        self.at_train_begin = {}
        self.steps_run = 0
        recorder = self

        class Count(TrainerCallback):
            def on_train_begin(self, args, state, control, model=None, **kw):
                recorder.at_train_begin = {n: p.detach().clone() for n, p in model.named_parameters()}

            def on_step_end(self, args, state, control, **kw):
                recorder.steps_run += 1

        self.add_callback(Count())


def run_sft(monkeypatch, *flags):
    monkeypatch.setattr(sft, "SFTTrainer", Recorder)
    argv = [
        "--config",
        str(REPO / "recipes/tiny/sft/config_cpu.yaml"),
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "2",
        "--logging_steps",
        "1",
        "--report_to",
        "none",
        "--warmup_ratio",
        "0",
        *flags,
    ]  # no warmup: a first step at lr 0 would leave LoRA's A matrices unchanged
    return sft.main(*sft.make_parser().parse_args_and_config(args=argv))


def assert_trained_parameters_changed(trainer):
    current = dict(trainer.model.named_parameters())
    checked = 0
    for name, before in trainer.initial.items():
        if any(part in name for part in UNUSED_BY_DESIGN):
            continue
        assert not torch.equal(before, current[name].detach()), f"{name} did not change"
        checked += 1
    assert checked > 0


def test_full_finetune_two_steps(monkeypatch, tmp_path, tiny_dataset, tiny_vlm_small):
    out = tmp_path / "full"
    trainer = run_sft(
        monkeypatch,
        "--dataset_name",
        str(tiny_dataset),
        "--model_name_or_path",
        str(tiny_vlm_small),
        "--output_dir",
        str(out),
    )
    assert trainer.steps_run == 2
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(loss > 0 for loss in losses)
    assert_trained_parameters_changed(trainer)

    model = AutoModelForImageTextToText.from_pretrained(out)
    trained = dict(trainer.model.named_parameters())
    for name, param in model.named_parameters():
        assert torch.equal(param, trained[name].detach()), name
    load_vlm_processor(out)
    run = json.loads((out / "sft_run.json").read_text())
    assert run["world_size"] == 1 and run["global_step"] == 2 and run["use_peft"] is False
    assert run["base_model_path"] == str(tiny_vlm_small.resolve())
    card = (out / "README.md").read_text()
    assert "pipeline_tag: image-text-to-text" in card and "full fine-tuning" in card
    assert (out / "training_args.bin").is_file()

    with pytest.raises(FileExistsError, match="overwrite_output_dir"):
        run_sft(
            monkeypatch,
            "--dataset_name",
            str(tiny_dataset),
            "--model_name_or_path",
            str(tiny_vlm_small),
            "--output_dir",
            str(out),
        )


def test_lora_two_steps_saves_an_adapter_on_an_absolute_base(monkeypatch, tmp_path, tiny_dataset, tiny_vlm_small):
    from peft import PeftModel

    out = tmp_path / "lora"
    (tmp_path / "eval_results.json").write_text(
        json.dumps({"model": {"accuracy": 0.75, "macro_f1": 0.5}, "baseline": {"accuracy": 0.25, "macro_f1": 0.125}})
    )
    trainer = run_sft(
        monkeypatch,
        "--dataset_name",
        str(tiny_dataset),
        "--model_name_or_path",
        str(tiny_vlm_small),
        "--output_dir",
        str(out),
        "--use_peft",
        "true",
        "--lora_r",
        "4",
        "--lora_alpha",
        "8",
        "--answer_mode",
        "full",
        "--eval_results",
        str(tmp_path / "eval_results.json"),
    )
    assert set(trainer.initial) and all("lora_" in name for name in trainer.initial)
    assert_trained_parameters_changed(trainer)
    assert not any("vision" in name for name in trainer.initial)  # the default targets skip the vision tower

    adapter = json.loads((out / "adapter_config.json").read_text())
    assert Path(adapter["base_model_name_or_path"]) == tiny_vlm_small.resolve()
    assert not (out / "config.json").exists()
    model = PeftModel.from_pretrained(
        AutoModelForImageTextToText.from_pretrained(adapter["base_model_name_or_path"]), out
    )
    trained = dict(trainer.model.named_parameters())
    for name, param in model.named_parameters():
        if "lora_" in name:
            assert torch.equal(param, trained[name].detach()), name
    card = (out / "README.md").read_text()
    assert "library_name: peft" in card and "| macro_f1 | 0.1250 | 0.5000 |" in card


def test_resume_from_checkpoint(monkeypatch, tmp_path, tiny_dataset, tiny_vlm_small):
    out = tmp_path / "resume"
    common = [
        "--dataset_name",
        str(tiny_dataset),
        "--model_name_or_path",
        str(tiny_vlm_small),
        "--output_dir",
        str(out),
        "--save_strategy",
        "steps",
        "--save_steps",
        "1",
    ]
    first = run_sft(monkeypatch, *common)
    assert first.steps_run == 2 and (out / "checkpoint-2").is_dir()
    with pytest.raises(FileExistsError, match="resume_from_checkpoint true"):
        run_sft(monkeypatch, *common, "--max_steps", "3")  # a finished run is continued only when asked
    second = run_sft(monkeypatch, *common, "--max_steps", "3", "--resume_from_checkpoint", "true")
    assert second.steps_run == 1 and second.state.global_step == 3
    assert [e["step"] for e in second.state.log_history if "loss" in e] == [1, 2, 3]
    third = run_sft(monkeypatch, *common, "--max_steps", "3", "--resume_from_checkpoint", str(out / "checkpoint-1"))
    assert third.steps_run == 2 and third.state.global_step == 3
    assert_same_weights(third.at_train_begin, out / "checkpoint-1")


def checkpoint_weights(checkpoint: Path) -> dict:
    """The trainable weights a checkpoint holds, by the names the training model gives them."""
    from safetensors.torch import load_file

    if (checkpoint / "adapter_model.safetensors").is_file():  # PEFT names without the adapter's name
        saved = load_file(checkpoint / "adapter_model.safetensors")
        return {k.replace(".weight", ".default.weight"): v for k, v in saved.items()}
    # from_pretrained converts the saved (older) names on its own: an independent reading of the checkpoint
    return dict(AutoModelForImageTextToText.from_pretrained(checkpoint).named_parameters())


def assert_same_weights(params: dict, checkpoint: Path) -> None:
    expected = checkpoint_weights(checkpoint)
    assert expected and set(expected) <= set(params), sorted(set(expected) - set(params))[:3]
    for name, value in expected.items():
        assert torch.equal(params[name], value.detach()), f"{name} differs from {checkpoint.name}"


def losses(log_history: list[dict]) -> dict[int, float]:
    return {entry["step"]: entry["loss"] for entry in log_history if "loss" in entry}


@pytest.mark.parametrize("peft", [False, True], ids=["full", "lora"])
def test_resume_restores_the_weights_and_skips_a_truncated_checkpoint(
    monkeypatch, tmp_path, tiny_dataset, tiny_vlm_small, caplog, peft
):
    out = tmp_path / "run"
    common = ["--dataset_name", str(tiny_dataset), "--model_name_or_path", str(tiny_vlm_small)]
    common += ["--output_dir", str(out), "--save_strategy", "steps", "--save_steps", "2", "--max_steps", "4"]
    common += ["--use_peft", "true", "--lora_r", "4"] if peft else []
    uninterrupted = run_sft(monkeypatch, *common)
    weights = out / "checkpoint-4" / ("adapter_model.safetensors" if peft else "model.safetensors")
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a kill while saving

    with pytest.raises(ValueError, match=f"{weights.name} is truncated"):
        run_sft(monkeypatch, *common, "--resume_from_checkpoint", str(weights.parent))
    caplog.clear()
    resumed = run_sft(monkeypatch, *common, "--resume_from_checkpoint", "true")
    assert any("checkpoint-4" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records), caplog.text
    assert resumed.steps_run == 2 and resumed.state.global_step == 4
    assert_same_weights(resumed.at_train_begin, out / "checkpoint-2")
    before, after = losses(uninterrupted.state.log_history), losses(resumed.state.log_history)
    assert sorted(after) == [1, 2, 3, 4]
    for step in (3, 4):
        assert after[step] == pytest.approx(before[step], rel=1e-4), (step, before, after)


def _sft_command(out: Path, tiny_dataset: Path, model: Path, *flags: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "synartifact.sft",
        "--config",
        "recipes/tiny/sft/config_cpu.yaml",
        "--dataset_name",
        str(tiny_dataset),
        "--model_name_or_path",
        str(model),
        "--output_dir",
        str(out),
        "--per_device_train_batch_size",
        "2",
        "--logging_steps",
        "1",
        "--warmup_ratio",
        "0",
        "--report_to",
        "none",
        *flags,
    ]


def test_a_killed_run_resumes_where_its_last_checkpoint_left_off(monkeypatch, tmp_path, tiny_dataset, tiny_vlm_small):
    """SIGKILL a real run after its first checkpoint, rerun it into the same folder: the rest of the loss curve is
    the uninterrupted run's, not that of an untrained model."""
    flags = ["--max_steps", "6", "--save_strategy", "steps", "--save_steps", "2"]
    out = tmp_path / "killed"
    log = tmp_path / "killed.log"
    with open(log, "w") as fh:  # a file, not a pipe: a full pipe would stall the run before its checkpoint
        process = subprocess.Popen(
            _sft_command(out, tiny_dataset, tiny_vlm_small, *flags), cwd=REPO, env=_env(), stdout=fh, stderr=fh
        )
    try:
        deadline = time.monotonic() + 300
        while sft.last_complete_checkpoint(out) is None:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert not (out / "sft_run.json").exists(), "the run finished before it was killed"
    resumed_from = int(Path(sft.last_complete_checkpoint(out)).name.split("-")[1])
    assert resumed_from < 6

    rerun = subprocess.run(
        _sft_command(out, tiny_dataset, tiny_vlm_small, *flags),
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "missing keys" not in rerun.stdout + rerun.stderr
    after = losses(json.loads((out / "trainer_state.json").read_text())["log_history"])
    assert sorted(after) == [1, 2, 3, 4, 5, 6]

    common = ["--dataset_name", str(tiny_dataset), "--model_name_or_path", str(tiny_vlm_small), *flags]
    expected = losses(run_sft(monkeypatch, *common, "--output_dir", str(tmp_path / "whole")).state.log_history)
    for step in range(resumed_from + 1, 7):
        assert after[step] == pytest.approx(expected[step], rel=1e-4), (step, expected, after)
    # an untrained model (learning rate 0, same data order) would give another loss at the first resumed step
    first = resumed_from + 1
    untrained = run_sft(
        monkeypatch,
        *common,
        "--max_steps",
        str(first),
        "--learning_rate",
        "0",
        "--output_dir",
        str(tmp_path / "untrained"),
    )
    assert abs(losses(untrained.state.log_history)[first] - after[first]) > 1e-3 * abs(after[first])


@pytest.mark.parametrize("arch", ["idefics3", "qwen2vl"])
def test_other_families_train_with_lora(monkeypatch, tmp_path, tiny_dataset, arch):
    from peft import PeftModel

    out = tmp_path / arch
    sizes = dict(SMALL, heads=4) if arch == "qwen2vl" else SMALL
    trainer = run_sft(
        monkeypatch,
        "--dataset_name",
        str(tiny_dataset),
        "--model_name_or_path",
        str(tmp_path / "base"),
        "--tiny_model_arch",
        arch,
        "--tiny_model_sizes",
        json.dumps(sizes),
        "--output_dir",
        str(out),
        "--use_peft",
        "true",
        "--lora_r",
        "4",
    )
    assert trainer.state.global_step == 2 and (tmp_path / "base" / "config.json").is_file()  # built when missing
    assert_trained_parameters_changed(trainer)
    PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(tmp_path / "base"), out)
    load_vlm_processor(out)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.parent.parent.name)
def test_every_recipe_parses_with_the_real_parser(recipe):
    first_line = recipe.read_text().splitlines()[0]
    assert first_line.startswith("# Hardware:")
    # GPU recipes ask for bf16, which TrainingArguments refuses on a CPU-only machine: override it here only
    script_args, training_args, model_args = sft.make_parser().parse_args_and_config(
        args=["--config", str(recipe), "--bf16", "false", "--use_cpu", "true"]
    )
    assert model_args.model_name_or_path and script_args.dataset_name and training_args.output_dir
    assert script_args.answer_mode in ("labels", "full")
    if recipe.parent.parent.name == "tiny":
        assert script_args.build_tiny_model_if_missing and not model_args.use_peft
        assert training_args.ddp_find_unused_parameters is True
    else:
        assert model_args.use_peft and "/" in model_args.model_name_or_path


def test_unknown_recipe_keys_are_an_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("output_dir: x\nbf16: false\nuse_cpu: true\nlora_rank: 8\n")
    with pytest.raises(ValueError, match="lora_rank"):
        sft.make_parser().parse_args_and_config(args=["--config", str(bad)])


@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=lambda p: p.stem)
def test_accelerate_configs_load_with_accelerate(path):
    config = load_config_from_file(str(path))
    assert path.read_text().startswith("# Hardware:")
    expected = {
        "cpu": ("NO", 1),
        "cpu_2proc": ("MULTI_CPU", 2),
        "single_gpu": ("NO", 1),
        "ddp": ("MULTI_GPU", 8),
        "zero2": ("DEEPSPEED", 8),
        "zero3": ("DEEPSPEED", 8),
        "fsdp": ("FSDP", 8),
    }[path.stem]
    assert (str(config.distributed_type).split(".")[-1], config.num_processes) == expected
    assert config.use_cpu is path.stem.startswith("cpu")


# --------------------------------------------------------------------------------------------------------------
# Real launchers, in subprocesses
# --------------------------------------------------------------------------------------------------------------


def _env():
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        WANDB_DISABLED="true",
    )
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return env


def _launch(launcher: list[str], out: Path, tiny_dataset: Path, model: Path, *flags: str) -> Path:
    cmd = [
        *launcher,
        "-m",
        "synartifact.sft",
        "--config",
        "recipes/tiny/sft/config_cpu.yaml",
        "--dataset_name",
        str(tiny_dataset),
        "--model_name_or_path",
        str(model),
        "--output_dir",
        str(out),
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "2",
        "--logging_steps",
        "1",
        *flags,
    ]
    result = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


# 2 training rows in batches of 2 (one process) or 1 + 1 (two): every step sees both rows, whatever the shuffling,
# so that one process and two take the same steps
ONE_BATCH = ("--max_train_samples", "2", "--per_device_train_batch_size", "2")


@pytest.fixture(scope="module")
def one_process_output(tmp_path_factory, tiny_dataset):
    """One run through `accelerate launch` with recipes/accelerate_configs/cpu.yaml; the tiny model built on the way."""
    root = tmp_path_factory.mktemp("launch")
    launcher = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        "recipes/accelerate_configs/cpu.yaml",
        "--main_process_port",
        str(free_port()),
    ]
    return _launch(
        launcher,
        root / "accelerate",
        tiny_dataset,
        root / "tiny-built",
        "--tiny_model_sizes",
        json.dumps(dict(SMALL, image_size=32)),
        *ONE_BATCH,
    )


def test_accelerate_launch_runs_the_recipe(one_process_output):
    run = json.loads((one_process_output / "sft_run.json").read_text())
    assert run["world_size"] == 1 and run["global_step"] == 2
    assert Path(run["base_model_path"], "config.json").is_file()  # the tiny model was built when missing
    AutoModelForImageTextToText.from_pretrained(one_process_output)


def test_torchrun_two_processes(tmp_path, tiny_dataset, one_process_output):
    base = Path(json.loads((one_process_output / "sft_run.json").read_text())["base_model_path"])
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
    ]
    # the same global batch as the one-process run: 1 row per process, 2 processes
    out = _launch(launcher, tmp_path / "ddp", tiny_dataset, base, *ONE_BATCH[:2], "--per_device_train_batch_size", "1")
    run = json.loads((out / "sft_run.json").read_text())
    assert run["world_size"] == 2 and run["global_step"] == 2
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in one_process_output.iterdir())
    start = AutoModelForImageTextToText.from_pretrained(base).state_dict()
    one = AutoModelForImageTextToText.from_pretrained(one_process_output).state_dict()
    two = AutoModelForImageTextToText.from_pretrained(out).state_dict()
    # trained: with warmup the first step's learning rate is 0, the second's 5e-4, and Adam's step moves each weight
    # by about the learning rate. All tensors moved but those without a gradient: the unused norm, and the keys'
    # bias (it shifts all of a query's attention scores alike, which the softmax ignores)
    still = {k for k in start if (two[k] - start[k]).abs().max() < 1e-4}
    assert len(still) < len(start) // 4 and "lm_head.weight" not in still
    assert all(any(part in k for part in (*UNUSED_BY_DESIGN, "k_proj.bias")) for k in still), still
    # and two processes took the steps one process took: DDP averages the two halves' gradients as the one process
    # sums its batch, so only float rounding differs (~1e-7 measured), far below the steps' 5e-4
    for name in start:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("arch", ["llava", "idefics3", "qwen2vl"])
def test_training_loss_on_completion_logits_is_the_models_own_loss(tmp_path, tiny_dataset, arch):
    """TRL's batches, token for token, with the chat templates rendered once; the trainer's training loss projects
    only the completion positions onto the vocabulary; the model's own
    full-sequence causal-LM loss (transformers' oracle) gives the same loss and gradients, with and without
    ``num_items_in_batch``, and the logged token accuracy is the one read off the full logits."""
    from synartifact.configs import SFTModelArguments, SFTScriptArguments, SFTTrainingArguments
    from synartifact.tiny import build_tiny_vlm

    sizes = dict(SMALL, heads=4) if arch == "qwen2vl" else SMALL
    base = build_tiny_vlm(tmp_path / "base", arch=arch, seed=0, image_size=32, patch_size=8, **sizes)
    script = SFTScriptArguments(dataset_name=str(tiny_dataset), answer_mode="full", image_size=32)
    train, _ = sft.load_sft_datasets(script)
    model, processor = sft.load_model(str(base), SFTModelArguments(model_name_or_path=str(base)))
    args = SFTTrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none")
    trainer = sft.SFTTrainer(model=model, args=args, train_dataset=train, processing_class=processor)
    batch = trainer.data_collator([train[i] for i in range(4)])
    # the batches are TRL's own collator's, token for token, though each chat template is rendered once
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from synartifact.compat import align_mm_token_type_ids

    trl_collator = DataCollatorForVisionLanguageModeling(processor=processor, completion_only_loss=True)
    expected = align_mm_token_type_ids(trl_collator, processor)([train[i] for i in range(4)])
    for again in (trainer.data_collator([train[i] for i in range(4)]), batch):  # memoized, then fresh
        assert again.keys() == expected.keys()
        for key in expected:
            assert torch.equal(again[key], expected[key]), key
    labels = batch["labels"]
    assert (labels != -100).sum() > 4  # several completion tokens per row, boxes and captions included
    model.train()
    keeps_logits = "logits_to_keep" in inspect.signature(type(model).forward).parameters
    assert keeps_logits or arch == "qwen2vl"

    def grads():
        out = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad()
        return out

    for count in (None, 7):
        loss, outputs = trainer.compute_loss(model, dict(batch), return_outputs=True, num_items_in_batch=count)
        projected = outputs.logits.shape[1]
        if keeps_logits:  # only the completion positions were projected onto the vocabulary
            assert projected < batch["input_ids"].shape[1]
        else:  # transformers 4.57's Qwen2-VL: TRL's path, the whole sequence
            assert projected == batch["input_ids"].shape[1]
        loss.backward()
        fast = grads()
        extra = {} if count is None else {"num_items_in_batch": count}
        oracle = model(**batch, use_cache=False, **extra)
        oracle.loss.backward()
        slow = grads()
        torch.testing.assert_close(loss, oracle.loss, rtol=1e-5, atol=1e-6)
        assert fast.keys() == slow.keys() and fast
        for name in slow:
            torch.testing.assert_close(fast[name], slow[name], rtol=1e-4, atol=1e-6, msg=name)

    with torch.no_grad():
        predicted = model(**batch, use_cache=False).logits[:, :-1].argmax(-1)
    target = labels[:, 1:]
    expected = ((predicted == target) & (target != -100)).sum().item() / (target != -100).sum().item()
    assert trainer._metrics["train"]["mean_token_accuracy"][-1] == pytest.approx(expected)
