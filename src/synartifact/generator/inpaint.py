"""An inpainting pipeline from a text-to-image one, briefly pre-trained to fill masked boxes: the offline inpainter.

The public Stable Diffusion inpainting checkpoints were made from the text-to-image UNet by widening its first
convolution from 4 to 9 input channels (4 noisy latents + 1 mask + 4 latents of the masked image), the new channels'
weights set to zero, then training on images with random masks. :func:`inpainting_unet` does the widening (so the
new UNet starts out computing exactly what the old one did) and :func:`pretrain_inpaint` the training, on a
dataset's images and prompts (:func:`~synartifact.generator.pretrain.load_training_pairs`), with random boxes as
masks; an optional first stage trains the VAE (:func:`~synartifact.generator.pretrain.pretrain_sd`), for a base whose
VAE has random weights.

``synartifact tiny sd-inpaint --out DIR --pretrain-dataset outputs/demo/dataset --base outputs/demo/tiny-sd`` or
:func:`pretrain_inpaint`. Writes a ``StableDiffusionInpaintPipeline`` folder (``from_pretrained(DIR)``),
``inpaint_pretrain.json`` (settings, losses, time) and ``inpaint_pretrain_log.jsonl``; the folder appears only when
complete.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["INPAINT_PRETRAIN_FILE", "inpainting_unet", "random_box_masks", "pretrain_inpaint"]

INPAINT_PRETRAIN_FILE = "inpaint_pretrain.json"
# 4 noisy latents + 1 mask + 4 latents of the masked image, in the order diffusers' inpainting pipeline concatenates.
INPAINT_IN_CHANNELS = 9


def inpainting_unet(unet: Any) -> Any:
    """A copy of a text-to-image ``UNet2DConditionModel`` whose first convolution takes the 9 inpainting channels.

    The first 4 input channels keep the original weights; the 5 new ones (mask, masked-image latents) start at
    zero, so the new UNet predicts exactly what the old one did until training teaches it to read them.
    """
    import torch
    from diffusers import UNet2DConditionModel

    if int(unet.config.in_channels) == INPAINT_IN_CHANNELS:
        raise ValueError("The UNet already takes 9 input channels: it is an inpainting UNet.")
    if int(unet.config.in_channels) != 4:
        raise ValueError(f"Expected a text-to-image UNet with 4 input channels, got {unet.config.in_channels}.")
    config = dict(unet.config)
    config["in_channels"] = INPAINT_IN_CHANNELS
    wide = UNet2DConditionModel.from_config(config)
    state = {k: v for k, v in unet.state_dict().items() if k != "conv_in.weight"}
    old = unet.conv_in.weight.detach()
    weight = torch.zeros(old.shape[0], INPAINT_IN_CHANNELS, *old.shape[2:], dtype=old.dtype)
    weight[:, :4] = old
    state["conv_in.weight"] = weight
    wide.load_state_dict(state)
    return wide if wide.dtype == unet.dtype else wide.to(dtype=unet.dtype)


def random_box_masks(n: int, size: int, generator: Any, full_fraction: float = 0.1) -> Any:
    """``n`` masks ``[n, 1, size, size]`` (1 = repaint): one random box each, 1/8 to 3/4 of a side wide and high;
    ``full_fraction`` of them cover the whole image (so the model also learns to draw from the prompt alone)."""
    import torch

    masks = torch.zeros(n, 1, size, size)
    low, high = max(1, size // 8), max(2, (3 * size) // 4)
    for i in range(n):
        if float(torch.rand((), generator=generator)) < full_fraction:
            masks[i] = 1.0
            continue
        w, h = (int(v) for v in torch.randint(low, high + 1, (2,), generator=generator))
        x0 = int(torch.randint(0, size - w + 1, (), generator=generator))
        y0 = int(torch.randint(0, size - h + 1, (), generator=generator))
        masks[i, :, y0 : y0 + h, x0 : x0 + w] = 1.0
    return masks


def pretrain_inpaint(
    base: str | Path,
    dataset: Any,
    out: str | Path,
    *,
    split: str = "train",
    max_images: int | None = 2000,
    steps: int = 200,
    vae_steps: int = 0,
    batch_size: int = 16,
    lr: float = 1e-3,
    cond_dropout: float = 0.1,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    base_name: str | None = None,
) -> Path:
    """Widen the text-to-image pipeline at ``base`` into an inpainting pipeline, train it ``steps`` steps to fill
    random boxes of ``dataset``'s images (image + prompt), and write it to ``out``; return ``out``.

    ``dataset=None`` (or ``steps=0`` and ``vae_steps=0``) writes the widened pipeline untrained: it then repaints
    a masked box as the text-to-image model would draw it. ``vae_steps > 0`` first trains the VAE as
    :func:`~synartifact.generator.pretrain.pretrain_sd` does (for a base with a random VAE). Resolution: the
    pipeline's (``unet.config.sample_size * vae_scale_factor``).
    """
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler, StableDiffusionInpaintPipeline, StableDiffusionPipeline
    from tqdm.auto import tqdm

    from synartifact.generator.pretrain import (
        check_training_settings,
        load_training_pairs,
        name_pipeline,
        pixel_tensor,
        pretrain_sd,
        prompt_table,
    )
    from synartifact.utils import atomic_dir, scratch_dir

    check_training_settings({"steps": steps, "vae_steps": vae_steps}, batch_size, cond_dropout)
    if (steps or vae_steps) and dataset is None:
        raise ValueError("Pre-training needs a dataset (image + prompt columns): pass one, or steps=0, vae_steps=0.")
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists: pass overwrite=True (or --overwrite) to replace it.")
    if Path(base).exists() and not (Path(base) / "model_index.json").is_file():
        raise FileNotFoundError(f"{base} is not a Stable Diffusion pipeline folder (no model_index.json).")
    from synartifact.hub_access import require_hub

    require_hub(base, "generator")
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    log: list[dict] = []
    with scratch_dir(out) as scratch:
        source = base
        if vae_steps:
            source = pretrain_sd(
                base,
                dataset,
                scratch / "vae",
                split=split,
                max_images=max_images,
                vae_steps=vae_steps,
                unet_steps=0,
                batch_size=batch_size,
                seed=seed,
                progress=progress,
                sample_prompts=0,
            )
            vae_log = Path(source) / "pretrain_log.jsonl"
            log += [json.loads(line) for line in vae_log.read_text().splitlines() if line.strip()]
        torch.manual_seed(seed)
        t2i = StableDiffusionPipeline.from_pretrained(str(source), safety_checker=None, requires_safety_checker=False)
    unet = inpainting_unet(t2i.unet)
    pipe = StableDiffusionInpaintPipeline(
        vae=t2i.vae,
        text_encoder=t2i.text_encoder,
        tokenizer=t2i.tokenizer,
        unet=unet,
        scheduler=t2i.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    vae, text_encoder = pipe.vae.eval().requires_grad_(False), pipe.text_encoder.eval().requires_grad_(False)
    resolution = int(unet.config.sample_size) * int(pipe.vae_scale_factor)
    num_images = 0
    if steps:
        images, prompts = load_training_pairs(dataset, split=split, max_images=max_images)
        num_images = len(images)
        x_all = pixel_tensor(images, resolution)
        generator = torch.Generator().manual_seed(seed)
        scale = float(vae.config.scaling_factor)
        with torch.no_grad():
            latents = torch.cat([vae.encode(x_all[i : i + 256]).latent_dist.mean for i in range(0, len(x_all), 256)])
            latents = latents * scale
        table, prompt_index, empty = prompt_table(pipe.tokenizer, text_encoder, prompts)
        scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        latent_size = latents.shape[-1]
        unet.train().requires_grad_(True)
        optimizer = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
        logger.info("inpainting pre-training on %d images at %d px", num_images, resolution)
        for step in tqdm(range(steps), desc="pretrain inpainting UNet", disable=not progress):
            index = torch.randint(0, len(x_all), (min(batch_size, len(x_all)),), generator=generator)
            masks = random_box_masks(len(index), resolution, generator)
            # the masked image as diffusers' pipeline builds it: masked pixels set to 0 (mid-grey in [-1, 1])
            with torch.no_grad():
                masked = vae.encode(x_all[index] * (masks < 0.5)).latent_dist.mean * scale
            small = F.interpolate(masks, size=(latent_size, latent_size))
            which = prompt_index[index].clone()
            which[torch.rand(len(which), generator=generator) < cond_dropout] = empty
            z0 = latents[index]
            noise = torch.randn(z0.shape, generator=generator)
            t = torch.randint(0, scheduler.config.num_train_timesteps, (len(z0),), generator=generator)
            model_input = torch.cat([scheduler.add_noise(z0, noise, t), small, masked], dim=1)
            loss = F.mse_loss(unet(model_input, t, table[which]).sample, noise)
            if not math.isfinite(float(loss.detach())):
                raise FloatingPointError(f"Inpainting pre-training loss is {float(loss)} at step {step}: lower lr.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            log.append({"part": "inpaint_unet", "step": step, "loss": float(loss.detach())})
    unet.eval().requires_grad_(False)
    tail = [r["loss"] for r in log if r["part"] == "inpaint_unet"][-50:]
    name_pipeline(pipe, out)
    with atomic_dir(out, overwrite=True) as tmp:
        pipe.save_pretrained(tmp)
        with open(tmp / "inpaint_pretrain_log.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in log)
        summary = {
            "base": base_name or str(base),
            "dataset": None
            if dataset is None
            else (str(dataset) if isinstance(dataset, (str, Path)) else type(dataset).__name__),
            "split": split,
            "num_images": num_images,
            "resolution": resolution,
            "in_channels": INPAINT_IN_CHANNELS,
            "steps": int(steps),
            "vae_steps": int(vae_steps),
            "batch_size": int(batch_size),
            "lr": lr,
            "cond_dropout": cond_dropout,
            "seed": seed,
            "final_loss": float(sum(tail) / len(tail)) if tail else None,
            "seconds": round(time.perf_counter() - started, 1),
        }
        (tmp / INPAINT_PRETRAIN_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    logger.info("inpainting pipeline written to %s (%.0f s)", out, summary["seconds"])
    return out
