"""Pre-training the tiny Stable Diffusion pipeline on a dataset's images and prompts (the offline base generator)."""

import json

import numpy as np
import pytest
import torch
from datasets import Dataset
from PIL import Image

from synartifact.generator.pretrain import load_training_pairs, pretrain_sd


def _pairs(n=24, size=32):
    """Two prompts, two very different images: a red square on black and a blue-white gradient."""
    rng = np.random.default_rng(0)
    images, prompts = [], []
    for i in range(n):
        if i % 2:
            a = np.zeros((size, size, 3), np.uint8)
            a[8:24, 8:24, 0] = 220
            prompts.append("a red square")
        else:
            ramp = np.linspace(0, 255, size, dtype=np.float32)[None, :, None]
            a = np.broadcast_to(ramp, (size, size, 3)).copy()
            a[..., 2] = 255
            prompts.append("a blue gradient")
        a = np.clip(a.astype(np.int16) + rng.integers(-5, 6, a.shape), 0, 255).astype(np.uint8)
        images.append(Image.fromarray(a))
    return Dataset.from_dict({"image": images, "prompt": prompts})


@pytest.fixture(scope="module")
def pretrained(tiny_sd, tmp_path_factory):
    out = tmp_path_factory.mktemp("pre") / "sd"
    pretrain_sd(tiny_sd, _pairs(), out, vae_steps=60, unet_steps=60, batch_size=8, progress=False)
    return out


def test_pretraining_writes_a_loadable_pipeline_with_its_record(pretrained):
    from diffusers import StableDiffusionPipeline

    record = json.loads((pretrained / "pretrain.json").read_text())
    assert record["num_images"] == 24 and record["num_prompts"] == 2 and record["resolution"] == 32
    log = [json.loads(line) for line in (pretrained / "pretrain_log.jsonl").read_text().splitlines()]
    assert [r["part"] for r in log].count("vae") == 60 and [r["part"] for r in log].count("unet") == 60
    # the VAE learned to reconstruct: its loss fell well below where it started
    vae = [r["loss"] for r in log if r["part"] == "vae"]
    assert np.mean(vae[-10:]) < 0.5 * np.mean(vae[:5])
    assert (pretrained / "pretrain_loss.png").stat().st_size > 0 and (pretrained / "pretrain_samples.png").exists()
    pipe = StableDiffusionPipeline.from_pretrained(pretrained, safety_checker=None)
    assert pipe.vae.config.scaling_factor == pytest.approx(record["vae_scaling_factor"])
    assert record["vae_scaling_factor"] != pytest.approx(0.18215)
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a red square", num_inference_steps=4, generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (32, 32)


def test_pretrained_vae_reconstructs_what_the_random_one_cannot(tiny_sd, pretrained):
    from diffusers import AutoencoderKL

    x = torch.from_numpy(np.array(_pairs(4)["image"][1].convert("RGB"))).permute(2, 0, 1)[None].float() / 127.5 - 1
    errors = {}
    for name, folder in (("random", tiny_sd), ("pretrained", pretrained)):
        vae = AutoencoderKL.from_pretrained(folder / "vae")
        with torch.no_grad():
            errors[name] = float(((vae.decode(vae.encode(x).latent_dist.mean).sample - x) ** 2).mean())
    assert errors["pretrained"] < 0.5 * errors["random"]


def test_bad_datasets_are_refused_with_the_field_named(tiny_sd, tmp_path):
    no_prompt = Dataset.from_dict({"image": [Image.new("RGB", (8, 8))]})
    with pytest.raises(ValueError, match="'prompt'"):
        load_training_pairs(no_prompt)
    with pytest.raises(ValueError, match="record 1: 'image' is empty"):
        load_training_pairs(Dataset.from_dict({"image": [Image.new("RGB", (8, 8)), None], "prompt": ["a", "b"]}))
    with pytest.raises(ValueError, match="unet_steps must be >= 0"):
        pretrain_sd(tiny_sd, _pairs(), tmp_path / "x", unet_steps=-1)
    # nothing half-written is left behind
    assert not (tmp_path / "x").exists()


def test_pretraining_refuses_to_overwrite(pretrained, tiny_sd):
    with pytest.raises(FileExistsError, match="--overwrite"):
        pretrain_sd(tiny_sd, _pairs(), pretrained, vae_steps=1, unet_steps=1)


def test_cli_tiny_sd_with_pretraining(tmp_path):
    from synartifact.cli import main
    from synartifact.data import save_hub_folder, synthesize_dataset

    save_hub_folder(synthesize_dataset(12, size=32, seed=0, progress=False), tmp_path / "data", overwrite=True)
    out = tmp_path / "sd"
    args = ["tiny", "sd", "--out", str(out), "--pretrain-dataset", str(tmp_path / "data")]
    assert main(args + ["--vae-steps", "2", "--unet-steps", "3", "--pretrain-batch-size", "4"]) == 0
    record = json.loads((out / "pretrain.json").read_text())
    assert (record["vae_steps"], record["unet_steps"], record["split"]) == (2, 3, "train")
    assert 0 < record["num_images"] < 12  # the train split only
    assert (out / "model_index.json").exists() and not list(tmp_path.glob("sd.random-*"))
    # an existing folder is kept unless --overwrite
    assert main(args) == 2 and (out / "pretrain.json").exists()
