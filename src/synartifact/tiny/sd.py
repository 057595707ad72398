"""A tiny Stable Diffusion pipeline built from configs (UNet, VAE, CLIP text encoder, offline tokenizer, DDIM),
random or briefly pre-trained on a dataset's images (:mod:`synartifact.generator.pretrain`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# A few byte-level BPE merges over frequent English pairs, so that prompts tokenize into fewer symbols than bytes.
_SD_MERGES = (
    "t h",
    "th e</w>",
    "a n",
    "i n",
    "e r",
    "o n",
    "r e",
    "a t",
    "e n",
    "o r",
    "e s",
    "i s",
    "a r",
    "a l",
    "s t",
    "o u",
    "l e",
    "i t",
    "in g</w>",
    "an d</w>",
    "o f</w>",
)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-to-symbol table (CLIP's too): printable bytes map to themselves, the rest to unused code points."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes)))


def _write_tiny_clip_tokenizer_files(folder) -> tuple:
    """Write ``vocab.json`` and ``merges.txt`` of an offline byte-level CLIP BPE into ``folder``.

    Files that ``CLIPTokenizer.from_pretrained`` reads on both supported stacks (transformers 4.57's Python tokenizer
    and 5.x's ``tokenizers``-backed one give the same ids); every merge line is a pair, as 5.x requires.
    """
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(_bytes_to_unicode().values())
    vocab_list = symbols + [s + "</w>" for s in symbols]
    for merge in _SD_MERGES:
        merged = merge.replace(" ", "")
        if merged not in vocab_list:
            vocab_list.append(merged)
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(vocab_list)}
    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    vocab_file.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges_file.write_text("#version: 0.2\n" + "\n".join(_SD_MERGES) + "\n", encoding="utf-8")
    return vocab_file, merges_file


def build_tiny_sd(
    out,
    seed: int = 0,
    overwrite: bool = False,
    sample_size: int = 16,
    block_out_channels: tuple[int, ...] = (32, 64),
    cross_attention_dim: int = 32,
    max_length: int = 77,
    vae_block_out_channels: tuple[int, ...] = (16, 32),
):
    """Write a tiny Stable Diffusion pipeline with random weights, built from configs, to ``out``; return its path.

    UNet2DConditionModel + AutoencoderKL + CLIPTextModel + an offline byte-level CLIPTokenizer + DDIMScheduler,
    ``safety_checker=None``. Images are ``sample_size * 2`` pixels square (the VAE halves the resolution once):
    32 px by default, which samples in milliseconds per step on a CPU. ``StableDiffusionPipeline.from_pretrained(out)``
    reloads it; TRL's ``DefaultDDPOStableDiffusionPipeline(out, use_lora=True)`` fine-tunes it.
    ``vae_block_out_channels`` must have as many entries as ``block_out_channels`` (same downsampling); the VAE is
    narrower than the UNet by default, which makes its pre-training (:mod:`synartifact.generator.pretrain`) and
    decoding 3x cheaper.
    """
    import shutil

    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from synartifact.utils import atomic_dir

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists: pass overwrite=True (or --overwrite) to replace it.")
    if len(vae_block_out_channels) != len(block_out_channels):
        raise ValueError(
            f"vae_block_out_channels {tuple(vae_block_out_channels)} needs {len(block_out_channels)} entries, as "
            f"block_out_channels {tuple(block_out_channels)} (the latents must have the UNet's size)."
        )
    if sample_size < 4 or sample_size % 4:
        raise ValueError(f"sample_size={sample_size} must be a positive multiple of 4 (the UNet downsamples once).")
    with atomic_dir(out, overwrite=True) as tmp:
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=sample_size,
            in_channels=4,
            out_channels=4,
            block_out_channels=tuple(block_out_channels),
            layers_per_block=1,
            down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (len(block_out_channels) - 1),
            up_block_types=("CrossAttnUpBlock2D",) * (len(block_out_channels) - 1) + ("UpBlock2D",),
            cross_attention_dim=cross_attention_dim,
            attention_head_dim=8,
            norm_num_groups=min(32, block_out_channels[0]),
        )
        torch.manual_seed(seed + 1)
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            block_out_channels=list(vae_block_out_channels),
            down_block_types=["DownEncoderBlock2D"] * len(vae_block_out_channels),
            up_block_types=["UpDecoderBlock2D"] * len(vae_block_out_channels),
            latent_channels=4,
            norm_num_groups=min(32, vae_block_out_channels[0]),
            sample_size=sample_size * 2 ** (len(block_out_channels) - 1),
        )
        torch.manual_seed(seed + 2)
        tokenizer_src = tmp / "_tokenizer_src"
        _write_tiny_clip_tokenizer_files(tokenizer_src)
        tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_src), model_max_length=max_length)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=cross_attention_dim,
                intermediate_size=2 * cross_attention_dim,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=max_length,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                projection_dim=cross_attention_dim,
            )
        )
        scheduler = DDIMScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            clip_sample=False,
            set_alpha_to_one=False,
            steps_offset=1,
        )
        pipe = StableDiffusionPipeline(
            unet=unet,
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipe.save_pretrained(tmp)
        # transformers 5 saves only tokenizer.json; the vocabulary files keep the folder loadable by 4.57 too
        for name in ("vocab.json", "merges.txt"):
            if not (tmp / "tokenizer" / name).exists():
                shutil.copy2(tokenizer_src / name, tmp / "tokenizer" / name)
        shutil.rmtree(tokenizer_src)
    return out


def build_pretrained_tiny_sd(
    out: str | Path, dataset: Any, seed: int = 0, overwrite: bool = False, **kwargs: Any
) -> Path:
    """:func:`build_tiny_sd` (random weights, in a scratch folder next to ``out``), then
    :func:`~synartifact.generator.pretrain.pretrain_sd` on ``dataset`` into ``out``; ``kwargs`` go to :func:`~synartifact.generator.pretrain.pretrain_sd`. Returns ``out``."""
    from synartifact.generator.pretrain import pretrain_sd
    from synartifact.utils import scratch_dir

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists: pass overwrite=True (or --overwrite) to replace it.")
    out.parent.mkdir(parents=True, exist_ok=True)
    with scratch_dir(out) as scratch:
        base = build_tiny_sd(scratch / "random", seed=seed)
        kwargs.setdefault("base_name", f"synartifact.tiny.build_tiny_sd(seed={seed})")
        return pretrain_sd(base, dataset, out, seed=seed, overwrite=overwrite, **kwargs)


def build_tiny_sd_inpaint(
    out: str | Path,
    dataset: Any = None,
    base: str | Path | None = None,
    seed: int = 0,
    overwrite: bool = False,
    **kwargs: Any,
) -> Path:
    """A tiny inpainting pipeline (``StableDiffusionInpaintPipeline``, 9-channel UNet) written to ``out``.

    Starts from the tiny text-to-image pipeline at ``base`` (e.g. the demo's pre-trained ``outputs/demo/tiny-sd``),
    else from a fresh :func:`build_tiny_sd` (random weights; its VAE is then pre-trained too when a ``dataset`` is
    given), widens its UNet with zero-initialized mask channels and pre-trains it on ``dataset``
    (:func:`~synartifact.generator.inpaint.pretrain_inpaint`, which ``kwargs`` go to). Without ``dataset`` the
    widened pipeline is written untrained. Returns ``out``.
    """
    from synartifact.generator.inpaint import pretrain_inpaint
    from synartifact.utils import scratch_dir

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists: pass overwrite=True (or --overwrite) to replace it.")
    if dataset is None:
        kwargs["steps"] = 0
        kwargs["vae_steps"] = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    if base is not None:
        if not (Path(base) / "model_index.json").is_file():
            raise FileNotFoundError(
                f"--base {base} is not a Stable Diffusion pipeline folder (no model_index.json): build one with "
                "`synartifact tiny sd --out DIR`."
            )
        return pretrain_inpaint(base, dataset, out, seed=seed, overwrite=overwrite, **kwargs)
    kwargs.setdefault("vae_steps", 100)
    with scratch_dir(out) as scratch:
        fresh = build_tiny_sd(scratch / "random", seed=seed)
        kwargs.setdefault("base_name", f"synartifact.tiny.build_tiny_sd(seed={seed})")
        return pretrain_inpaint(fresh, dataset, out, seed=seed, overwrite=overwrite, **kwargs)
