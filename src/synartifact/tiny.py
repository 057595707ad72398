"""Tiny models built from configs, with offline tokenizers and processors: a VLM and a Stable Diffusion pipeline.

Random weights, no download. Tests, the offline default (``make demo``) and the Spaces all build their tiny
models here, so that one code path serves tiny folders and real checkpoints alike.
``synartifact tiny vlm --out DIR`` and ``synartifact tiny sd --out DIR`` write them to folders.
"""

from __future__ import annotations

import argparse

# ---------------------------------------------------------------------------------------------------------------
# Vision-language models (LLaVA, Idefics3/SmolVLM, Qwen2-VL families) — owned by the classifier work.
# Public: build_tiny_vlm(out, arch="llava", seed=0, ...) -> Path
# ---------------------------------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------------------------------
# Stable Diffusion — owned by the alleviation work.
# Public: build_tiny_sd(out, seed=0, ...) -> Path
# ---------------------------------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------------------------------
# Command line: `synartifact tiny vlm|sd --out DIR`
# ---------------------------------------------------------------------------------------------------------------


def add_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``synartifact tiny {vlm,sd}``."""
    parser = subparsers.add_parser("tiny", help="write tiny offline models built from configs",
                                   description="Write a tiny model with random weights, built from configs, to a folder "
                                   "that from_pretrained loads. No download.")
    sub = parser.add_subparsers(dest="tiny_command", metavar="MODEL", required=True)
    vlm = sub.add_parser("vlm", help="a tiny vision-language model (model + processor)")
    vlm.add_argument("--out", required=True, help="folder to write")
    vlm.add_argument("--arch", default="llava", choices=["llava", "idefics3", "qwen2vl"],
                     help="architecture family (default: llava, the paper's)")
    vlm.add_argument("--seed", type=int, default=0, help="seed for the random weights")
    vlm.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    vlm.set_defaults(func=lambda a: print(build_tiny_vlm(a.out, arch=a.arch, seed=a.seed, overwrite=a.overwrite)))  # noqa: F821
    sd = sub.add_parser("sd", help="a tiny Stable Diffusion pipeline (UNet, VAE, CLIP text encoder, tokenizer, DDIM)")
    sd.add_argument("--out", required=True, help="folder to write")
    sd.add_argument("--seed", type=int, default=0, help="seed for the random weights")
    sd.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    sd.set_defaults(func=lambda a: print(build_tiny_sd(a.out, seed=a.seed, overwrite=a.overwrite)))  # noqa: F821
    return parser
