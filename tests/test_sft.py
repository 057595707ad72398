"""The SFT script: 2 steps on tiny VLMs (full and LoRA), resume, recipes, accelerate launch and 2 processes."""

import json
import os
import subprocess
import sys
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
    """SFTTrainer that keeps the trainable parameters as they were before training and counts the steps it ran."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial = {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}
        self.steps_run = 0
        recorder = self

        class Count(TrainerCallback):
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
    second = run_sft(monkeypatch, *common, "--max_steps", "3")  # the last checkpoint is found and resumed
    assert second.steps_run == 1 and second.state.global_step == 3
    assert [e["step"] for e in second.state.log_history if "loss" in e] == [1, 2, 3]


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
    out = _launch(launcher, tmp_path / "ddp", tiny_dataset, base)
    run = json.loads((out / "sft_run.json").read_text())
    assert run["world_size"] == 2 and run["global_step"] == 2
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in one_process_output.iterdir())
    one = AutoModelForImageTextToText.from_pretrained(one_process_output).state_dict()
    two = AutoModelForImageTextToText.from_pretrained(out).state_dict()
    assert {k: v.shape for k, v in one.items()} == {k: v.shape for k, v in two.items()}
    assert all(torch.isfinite(v).all() for v in two.values())
