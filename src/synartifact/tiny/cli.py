"""``synartifact tiny vlm|sd|sd-inpaint --out DIR``: write tiny offline models built from configs."""

from __future__ import annotations

import argparse

from synartifact.tiny.sd import build_tiny_sd
from synartifact.tiny.vlm import VLM_ARCHS, build_tiny_vlm


def add_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``synartifact tiny {vlm,sd,sd-inpaint}``."""
    parser = subparsers.add_parser(
        "tiny",
        help="write tiny offline models built from configs",
        description="Write a tiny model with random weights, built from configs, to a folder "
        "that from_pretrained loads. No download.",
    )
    sub = parser.add_subparsers(dest="tiny_command", metavar="MODEL", required=True)
    vlm = sub.add_parser("vlm", help="a tiny vision-language model (model + processor)")
    vlm.add_argument("--out", required=True, help="folder to write")
    vlm.add_argument(
        "--arch", default="llava", choices=list(VLM_ARCHS), help="architecture family (default: llava, the paper's)"
    )
    vlm.add_argument("--seed", type=int, default=0, help="seed for the random weights")
    vlm.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    vlm.add_argument("--image-size", type=int, default=None, help="image side in pixels (default: the family's)")
    vlm.add_argument(
        "--patch-size", type=int, default=None, help="vision patch side in pixels (default: the family's)"
    )
    vlm.add_argument("--vision-hidden-size", type=int, default=None, help="vision tower width (default: the family's)")
    vpre = vlm.add_argument_group(
        "vision pre-training (synartifact.tiny.vision_pretrain): without it the vision tower stays random"
    )
    vpre.add_argument(
        "--pretrain-dataset",
        default=None,
        metavar="DIR_OR_ID",
        help="pre-train the vision tower and projector on this artifact dataset (e.g. outputs/demo/dataset): "
        "per image token, which kinds cover its cell and the box covering it",
    )
    vpre.add_argument("--pretrain-split", default="train", help="split to pre-train on (default: train)")
    vpre.add_argument(
        "--pretrain-test-split", default="test", help="held-out split the card's figures are measured on ('' for none)"
    )
    vpre.add_argument("--pretrain-epochs", type=int, default=4, help="passes over the split (default: 4)")
    vpre.add_argument("--pretrain-batch-size", type=int, default=64, help="images per step (default: 64)")
    vpre.add_argument("--pretrain-lr", type=float, default=3e-3, help="learning rate (default: 3e-3)")
    vpre.add_argument(
        "--pretrain-descriptor-weight",
        type=float,
        default=1.0,
        help="weight of the cell-descriptor regression term (0: artifact labels only; default: 1)",
    )
    vpre.add_argument("--pretrain-max-images", type=int, default=None, help="use at most this many images")
    vlm.set_defaults(func=_tiny_vlm_command)
    sd = sub.add_parser("sd", help="a tiny Stable Diffusion pipeline (UNet, VAE, CLIP text encoder, tokenizer, DDIM)")
    sd.add_argument("--out", required=True, help="folder to write")
    sd.add_argument("--seed", type=int, default=0, help="seed for the random weights")
    sd.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    pre = sd.add_argument_group(
        "pre-training (synartifact.generator.pretrain): without it the weights stay random and samples are noise"
    )
    pre.add_argument(
        "--pretrain-dataset",
        default=None,
        metavar="DIR_OR_ID",
        help="pre-train the VAE and UNet on this dataset's images and prompts (e.g. outputs/demo/dataset)",
    )
    pre.add_argument("--pretrain-split", default="train", help="dataset split to pre-train on")
    pre.add_argument("--vae-steps", type=int, default=200, help="VAE autoencoder steps")
    pre.add_argument("--unet-steps", type=int, default=800, help="UNet noise-prediction steps")
    pre.add_argument("--pretrain-batch-size", type=int, default=16, help="images per pre-training step")
    pre.add_argument("--pretrain-max-images", type=int, default=4000, help="use at most this many images")
    sd.set_defaults(func=_tiny_sd_command)
    inpaint = sub.add_parser(
        "sd-inpaint",
        help="a tiny Stable Diffusion inpainting pipeline (9-channel UNet), pre-trained to fill random boxes",
        description="Widen a tiny Stable Diffusion UNet to the 9 inpainting input channels (4 latent + 1 mask + 4 "
        "masked-image latent; the new channels start at zero) and pre-train it on a dataset's images with random "
        "masks (synartifact.generator.inpaint). StableDiffusionInpaintPipeline.from_pretrained(DIR) loads it.",
    )
    inpaint.add_argument("--out", required=True, help="folder to write")
    inpaint.add_argument(
        "--base",
        default=None,
        metavar="DIR",
        help="tiny text-to-image pipeline to start from, e.g. the demo's outputs/demo/tiny-sd (default: a fresh "
        "`tiny sd`, whose VAE is then pre-trained too)",
    )
    inpaint.add_argument(
        "--pretrain-dataset",
        default=None,
        metavar="DIR_OR_ID",
        help="pre-train on this dataset's images and prompts (without it the inpainter is written untrained)",
    )
    inpaint.add_argument("--pretrain-split", default="train", help="dataset split to pre-train on")
    inpaint.add_argument("--steps", type=int, default=200, help="inpainting UNet steps (default: 200)")
    inpaint.add_argument(
        "--vae-steps", type=int, default=None, help="VAE steps first (default: 0 with --base, else 100)"
    )
    inpaint.add_argument("--pretrain-batch-size", type=int, default=16, help="images per pre-training step")
    inpaint.add_argument("--pretrain-max-images", type=int, default=2000, help="use at most this many images")
    inpaint.add_argument("--seed", type=int, default=0, help="seed for the weights and the training")
    inpaint.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    inpaint.set_defaults(func=_tiny_sd_inpaint_command)
    return parser


def _tiny_vlm_command(args: argparse.Namespace) -> None:
    sizes = {"vision_hidden_size": args.vision_hidden_size} if args.vision_hidden_size else {}
    kwargs = dict(arch=args.arch, seed=args.seed, image_size=args.image_size, patch_size=args.patch_size, **sizes)
    if not args.pretrain_dataset:
        print(build_tiny_vlm(args.out, overwrite=args.overwrite, **kwargs))
        return
    print(
        build_tiny_vlm(
            args.out,
            overwrite=args.overwrite,
            pretrain=dict(
                dataset=args.pretrain_dataset,
                split=args.pretrain_split,
                test_split=args.pretrain_test_split or None,
                epochs=args.pretrain_epochs,
                batch_size=args.pretrain_batch_size,
                lr=args.pretrain_lr,
                descriptor_weight=args.pretrain_descriptor_weight,
                max_images=args.pretrain_max_images,
            ),
            **kwargs,
        )
    )


def _tiny_sd_inpaint_command(args: argparse.Namespace) -> None:
    from synartifact.tiny import build_tiny_sd_inpaint

    kwargs = {
        "split": args.pretrain_split,
        "steps": args.steps,
        "batch_size": args.pretrain_batch_size,
        "max_images": args.pretrain_max_images,
    }
    if args.vae_steps is not None:
        kwargs["vae_steps"] = args.vae_steps
    print(
        build_tiny_sd_inpaint(
            args.out, args.pretrain_dataset, base=args.base, seed=args.seed, overwrite=args.overwrite, **kwargs
        )
    )


def _tiny_sd_command(args: argparse.Namespace) -> None:
    if not args.pretrain_dataset:
        print(build_tiny_sd(args.out, seed=args.seed, overwrite=args.overwrite))
        return
    from synartifact.tiny import build_pretrained_tiny_sd

    print(
        build_pretrained_tiny_sd(
            args.out,
            args.pretrain_dataset,
            seed=args.seed,
            overwrite=args.overwrite,
            split=args.pretrain_split,
            max_images=args.pretrain_max_images,
            vae_steps=args.vae_steps,
            unet_steps=args.unet_steps,
            batch_size=args.pretrain_batch_size,
        )
    )
