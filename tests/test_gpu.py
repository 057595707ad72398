"""GPU paths (`make slow_test`): CUDA, bf16, a few SFT and DDPO steps on models built from configs at a realistic
width. Skipped without a CUDA device; nothing is downloaded."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

REPO = Path(__file__).resolve().parents[1]
# A LLaVA built from configs at the width of a small real model (SmolVLM-256M's text side is 576 wide).
MEDIUM_VLM = {
    "image_size": 224,
    "patch_size": 14,
    "hidden_size": 576,
    "intermediate_size": 1536,
    "layers": 6,
    "heads": 9,
    "vision_hidden_size": 384,
    "vision_intermediate_size": 1536,
    "vision_layers": 6,
    "vision_heads": 6,
}


@pytest.fixture(scope="module")
def medium_vlm(tmp_path_factory):
    from synartifact.tiny import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("gpu") / "medium-vlm", seed=0, **MEDIUM_VLM)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from synartifact.data import save_hub_folder, synthesize_dataset

    return save_hub_folder(synthesize_dataset(64, size=224, seed=0), tmp_path_factory.mktemp("gpu") / "dataset")


def test_classifier_predicts_on_cuda_in_bf16(medium_vlm):
    from PIL import Image

    from synartifact import ArtifactClassifier

    clf = ArtifactClassifier.from_pretrained(str(medium_vlm), device="cuda", dtype="bfloat16")
    assert next(clf.model.parameters()).dtype == torch.bfloat16
    assert next(clf.model.parameters()).device.type == "cuda"
    reports = clf.predict([Image.new("RGB", (300, 200), "white")] * 4, batch_size=4)
    assert len(reports) == 4 and all(isinstance(r.raw_text, str) for r in reports)


def test_sft_lora_steps_in_bf16_on_cuda(medium_vlm, dataset, tmp_path):
    import synartifact.sft as sft

    out = tmp_path / "classifier"
    argv = [
        "--config", str(REPO / "recipes/tiny/sft/config_cpu.yaml"),
        "--model_name_or_path", str(medium_vlm),
        "--dataset_name", str(dataset),
        "--output_dir", str(out),
        "--use_cpu", "false",
        "--bf16", "true",
        "--dtype", "bfloat16",
        "--use_peft", "true",
        "--image_size", "224",
        "--max_steps", "4",
        "--per_device_train_batch_size", "8",
        "--logging_steps", "1",
        "--warmup_ratio", "0",
        "--report_to", "none",
    ]  # fmt: skip
    trainer = sft.main(*sft.make_parser().parse_args_and_config(args=argv))
    assert next(trainer.model.parameters()).device.type == "cuda"
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    assert (out / "adapter_config.json").is_file()


def test_ddpo_steps_on_cuda_in_bf16(medium_vlm, tmp_path):
    from synartifact.ddpo import cli_main
    from synartifact.tiny import build_tiny_sd

    sd = build_tiny_sd(tmp_path / "sd", seed=0)
    out = tmp_path / "generator"
    argv = [
        "--config", str(REPO / "recipes/tiny/ddpo/config_cpu.yaml"),
        "--pretrained_model", str(sd),
        "--classifier", str(medium_vlm),
        "--output_dir", str(out),
        "--mixed_precision", "bf16",
        "--num_epochs", "2",
        "--sample_num_steps", "4",
        "--sample_batch_size", "4",
        "--sample_num_batches_per_epoch", "1",
        "--train_batch_size", "4",
        "--num_eval_images", "2",
        "--per_prompt_stat_tracking_min_count", "1",
        "--reward_constrained", "true",
        "--build_tiny_models_if_missing", "false",
    ]  # fmt: skip
    assert cli_main(argv) == 0
    assert (out / "pytorch_lora_weights.safetensors").is_file()
    log = [json.loads(line) for line in (out / "reward_log.jsonl").read_text().splitlines() if line.strip()]
    assert log and all(math.isfinite(e["reward_mean"]) for e in log)
