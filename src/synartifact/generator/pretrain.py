"""Pre-train a (tiny) Stable Diffusion pipeline on a dataset's images and prompts: the offline base generator.

Stable Diffusion 1.5 comes pre-trained; the tiny pipeline that :func:`synartifact.tiny.build_tiny_sd` builds from
configs has random weights, so its samples are colour noise that any artifact classifier reads the same way (a
constant reward: DDPO has nothing to learn from). This module gives it the pre-training a real generator has, in
minutes on a CPU: first the VAE as an autoencoder (reconstruction + a small KL term; its latent
``scaling_factor`` is then set so latents have unit variance, as SD's 0.18215 does), then the UNet with the
standard noise-prediction loss on those latents, conditioned on the frozen text encoder's embedding of each image's
``prompt`` (dropped to the empty prompt 10 % of the time, so classifier-free guidance works).

Trained on SynArtifact images -- clean ones and ones with artifacts -- the generator reproduces the photographs
for their prompts and, like a real generator, some artifacts: the setting the paper's RLAIF step is for.

``synartifact tiny sd --out DIR --pretrain-dataset outputs/demo/dataset [--vae-steps 200 --unet-steps 800]``
or :func:`pretrain_sd`. Writes the pipeline (``StableDiffusionPipeline.from_pretrained(DIR)``), ``pretrain.json``
(settings, losses, time), ``pretrain_log.jsonl``, ``pretrain_loss.png`` and ``pretrain_samples.png``; the folder
appears only when complete.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["pretrain_sd", "load_training_pairs", "name_pipeline", "pixel_tensor", "prompt_table"]

PRETRAIN_FILE = "pretrain.json"


def load_training_pairs(dataset: Any, split: str = "train", max_images: int | None = None) -> tuple[list, list[str]]:
    """``(RGB PIL images, prompts)`` from a dataset folder / Hub id (or a ``datasets.Dataset``) with ``image`` and
    ``prompt`` columns. Errors name the dataset and the missing column or the bad record."""
    if isinstance(dataset, (str, Path)):
        from synartifact.data import load_artifact_dataset

        data = load_artifact_dataset(str(dataset))
        where = str(dataset)
    else:
        data, where = dataset, "the given dataset"
    from datasets import DatasetDict, IterableDatasetDict

    if isinstance(data, (DatasetDict, IterableDatasetDict)):
        if split not in data:
            raise ValueError(f"{where} has no split {split!r} (splits: {', '.join(data.keys())}).")
        data = data[split]
    missing = [c for c in ("image", "prompt") if c not in data.column_names]
    if missing:
        raise ValueError(
            f"{where} has no {' or '.join(repr(c) for c in missing)} column (columns: {', '.join(data.column_names)})"
            ": pre-training needs an 'image' and a 'prompt' per record."
        )
    if max_images:
        data = data.select(range(min(int(max_images), len(data))))
    if len(data) == 0:
        raise ValueError(f"{where} ({split}) holds no records to pre-train on.")
    images, prompts = [], []
    for i, row in enumerate(data):
        image, prompt = row["image"], row["prompt"]
        if image is None:
            raise ValueError(f"{where} ({split}) record {i}: 'image' is empty; every record needs an image.")
        images.append(image.convert("RGB"))
        prompts.append(" ".join(str(prompt or "").split()))
    return images, prompts


def pixel_tensor(images: list, resolution: int) -> Any:
    """RGB PIL images as one ``[n, 3, resolution, resolution]`` float tensor in [-1, 1] (bicubic resize)."""
    import numpy as np
    import torch

    pixels = np.stack([np.asarray(image.resize((resolution, resolution), 3)) for image in images])
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def prompt_table(tokenizer: Any, text_encoder: Any, prompts: list[str]) -> tuple[Any, Any, int]:
    """The frozen text encoder's embeddings of the distinct prompts (and ``""``), once: ``(table, index of each
    prompt in the table, index of the empty prompt)``."""
    import torch

    distinct = sorted(set(prompts) | {""})
    position = {p: i for i, p in enumerate(distinct)}
    ids = tokenizer(
        distinct, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        table = torch.cat([text_encoder(ids[i : i + 64])[0] for i in range(0, len(ids), 64)])
    return table, torch.tensor([position[p] for p in prompts]), position[""]


def _plot_losses(log: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, part in zip(axes, ("vae", "unet")):
        rows = [r for r in log if r["part"] == part]
        if rows:
            ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=1)
        ax.set_title(f"{part} loss ({'reconstruction' if part == 'vae' else 'noise prediction'})", fontsize=9)
        ax.set_xlabel("step")
        ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _sample_grid(pipe: Any, prompts: list[str], path: Path, per_prompt: int = 6, seed: int = 0) -> None:
    from synartifact.generator.sampling import sample_images, save_image_grid

    rows = []
    for prompt in prompts:
        images = sample_images(pipe, [prompt] * per_prompt, seed, num_inference_steps=20, guidance_scale=5.0)
        rows.append((prompt[:24], [(image, None) for image in images]))
    save_image_grid(rows, path)


def name_pipeline(pipe: Any, out: str | Path) -> None:
    """Record the folder a pipeline is being saved to as its ``_name_or_path`` (the pipeline's and each diffusers
    component's), as loading it from there would: not the scratch folder it was built in, nor a temporary folder
    being written (:func:`~synartifact.utils.final_path`)."""
    from synartifact.utils import final_path

    final = final_path(out)
    pipe.register_to_config(_name_or_path=str(final))
    for name, component in pipe.components.items():
        if "_name_or_path" in (getattr(component, "config", None) or {}) and hasattr(component, "register_to_config"):
            component.register_to_config(_name_or_path=str(final / name))


def check_training_settings(steps: dict[str, int], batch_size: int, cond_dropout: float) -> None:
    """Refuse negative step counts, an empty batch and a conditioning dropout outside [0, 1), naming the setting."""
    for name, value in steps.items():
        if int(value) < 0:
            raise ValueError(f"{name} must be >= 0, got {value}.")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if not 0.0 <= float(cond_dropout) < 1.0:
        raise ValueError(f"cond_dropout must be in [0, 1), got {cond_dropout}.")


def pretrain_sd(
    base: str | Path,
    dataset: Any,
    out: str | Path,
    *,
    split: str = "train",
    max_images: int | None = 4000,
    vae_steps: int = 200,
    unet_steps: int = 800,
    batch_size: int = 16,
    vae_lr: float = 1e-3,
    unet_lr: float = 1e-3,
    kl_weight: float = 1e-6,
    cond_dropout: float = 0.1,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    sample_prompts: int = 6,
    base_name: str | None = None,
) -> Path:
    """Pre-train the pipeline at ``base`` on ``dataset`` (image + prompt) and write it to ``out``; return ``out``.

    ``vae_steps=0`` keeps the VAE (a pre-trained one: fine-tune only the UNet). Resolution: the pipeline's
    (``unet.config.sample_size * vae_scale_factor``). ``base`` may equal ``out`` with ``overwrite=True``.
    ``base_name`` is what ``pretrain.json`` records as the base (default: ``base``'s path).
    """
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler, StableDiffusionPipeline
    from tqdm.auto import tqdm

    from synartifact.utils import atomic_dir

    check_training_settings({"vae_steps": vae_steps, "unet_steps": unet_steps}, batch_size, cond_dropout)
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists: pass overwrite=True (or --overwrite) to replace it.")
    started = time.perf_counter()
    torch.manual_seed(seed)
    from synartifact.hub_access import require_hub

    require_hub(base, "generator")
    pipe = StableDiffusionPipeline.from_pretrained(str(base), safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    vae, unet, text_encoder, tokenizer = pipe.vae, pipe.unet, pipe.text_encoder, pipe.tokenizer
    resolution = int(unet.config.sample_size) * int(pipe.vae_scale_factor)

    images, prompts = load_training_pairs(dataset, split=split, max_images=max_images)
    x_all = pixel_tensor(images, resolution)
    logger.info("pre-training on %d images at %d px", len(x_all), resolution)
    log: list[dict] = []
    generator = torch.Generator().manual_seed(seed)

    def batch_index() -> torch.Tensor:
        return torch.randint(0, len(x_all), (min(batch_size, len(x_all)),), generator=generator)

    # --- 1. VAE: an autoencoder for these images ------------------------------------------------------------
    text_encoder.requires_grad_(False)
    if vae_steps:
        vae.train().requires_grad_(True)
        optimizer = torch.optim.AdamW(vae.parameters(), lr=vae_lr, weight_decay=0.0)
        for step in tqdm(range(vae_steps), desc="pretrain VAE", disable=not progress):
            x = x_all[batch_index()]
            posterior = vae.encode(x).latent_dist
            reconstruction = vae.decode(posterior.sample(generator=generator)).sample
            loss = F.mse_loss(reconstruction, x) + kl_weight * posterior.kl().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            log.append({"part": "vae", "step": step, "loss": float(loss.detach())})
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        latents = torch.cat([vae.encode(x_all[i : i + 256]).latent_dist.mean for i in range(0, len(x_all), 256)])
        if vae_steps:
            scaling = float(1.0 / latents.std().clamp(min=1e-6))
            vae.register_to_config(scaling_factor=scaling)
        latents = latents * float(vae.config.scaling_factor)

        # --- text embeddings, once (the text encoder stays frozen) -------------------------------------------
        table, prompt_index, empty = prompt_table(tokenizer, text_encoder, prompts)

    # --- 2. UNet: noise prediction on the latents -------------------------------------------------------------
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    if unet_steps:
        unet.train().requires_grad_(True)
        optimizer = torch.optim.AdamW(unet.parameters(), lr=unet_lr, weight_decay=0.0)
        for step in tqdm(range(unet_steps), desc="pretrain UNet", disable=not progress):
            index = batch_index()
            z0 = latents[index]
            which = prompt_index[index].clone()
            which[torch.rand(len(which), generator=generator) < cond_dropout] = empty
            noise = torch.randn(z0.shape, generator=generator)
            t = torch.randint(0, scheduler.config.num_train_timesteps, (len(z0),), generator=generator)
            prediction = unet(scheduler.add_noise(z0, noise, t), t, table[which]).sample
            loss = F.mse_loss(prediction, noise)
            if not math.isfinite(float(loss.detach())):
                raise FloatingPointError(f"UNet pre-training loss is {float(loss)} at step {step}: lower unet_lr.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            log.append({"part": "unet", "step": step, "loss": float(loss.detach())})
    unet.eval().requires_grad_(False)

    def tail_mean(part: str) -> float | None:
        values = [r["loss"] for r in log if r["part"] == part][-50:]
        return float(sum(values) / len(values)) if values else None

    name_pipeline(pipe, out)
    with atomic_dir(out, overwrite=True) as tmp:
        pipe.save_pretrained(tmp)
        with open(tmp / "pretrain_log.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in log)
        _plot_losses(log, tmp / "pretrain_loss.png")
        shown = list(dict.fromkeys(p for p in prompts if p))[:sample_prompts]
        if shown:
            _sample_grid(pipe, shown, tmp / "pretrain_samples.png", seed=seed)
        summary = {
            "base": base_name or str(base),
            "dataset": str(dataset) if isinstance(dataset, (str, Path)) else type(dataset).__name__,
            "split": split,
            "num_images": len(x_all),
            "num_prompts": len(table) - 1,
            "resolution": resolution,
            "vae_steps": vae_steps,
            "unet_steps": unet_steps,
            "batch_size": batch_size,
            "vae_lr": vae_lr,
            "unet_lr": unet_lr,
            "kl_weight": kl_weight,
            "cond_dropout": cond_dropout,
            "seed": seed,
            "vae_scaling_factor": float(vae.config.scaling_factor),
            "final_vae_loss": tail_mean("vae"),
            "final_unet_loss": tail_mean("unet"),
            "seconds": round(time.perf_counter() - started, 1),
        }
        (tmp / PRETRAIN_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    logger.info("pre-trained generator written to %s (%.0f s)", out, summary["seconds"])
    return out
