"""Tiny vision-language models built from configs (LLaVA, Idefics3/SmolVLM, Qwen2-VL, Qwen2.5-VL families), with
offline tokenizers and processors: random weights, no download. Tests, the offline default and the Spaces use them."""

from __future__ import annotations

from pathlib import Path

from synartifact.classifier.loading import qwen_processor_class
from synartifact.compat import write_portable_processor_files

VLM_ARCHS: tuple[str, ...] = ("llava", "idefics3", "qwen2vl", "qwen2_5vl")

# Chat templates in each family's style. The assistant turn ends with the end-of-turn token and nothing after it,
# so that TRL's prompt/completion split (prompt rendered with add_generation_prompt) is a prefix of the whole.
_CONTENT = (
    "{%- if message['content'] is string -%}{{ message['content'] }}{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ IMAGE }}{%- elif part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
)


def _chat_template(user: str, assistant: str, end: str, image: str, generation: str, start: str = "") -> str:
    """A Jinja chat template: ``start``, then per turn its header and content, closed by ``end`` (a user or system
    turn) or the tokenizer's ``eos_token`` (an assistant turn, so that the model learns to stop)."""
    content = _CONTENT.replace("{{ IMAGE }}", "{{ " + repr(image) + " }}")
    return (
        "{{- " + repr(start) + " -}}"
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'assistant' -%}{{- " + repr(assistant) + " -}}"
        "{%- elif message['role'] == 'system' -%}{{- "
        + repr(user.replace("user", "system").replace("User", "System").replace("USER", "SYSTEM"))
        + " -}}"
        "{%- else -%}{{- "
        + repr(user)
        + " -}}{%- endif -%}"
        + content
        + "{%- if message['role'] == 'assistant' -%}{{- eos_token -}}{%- else -%}{{- "
        + repr(end)
        + " -}}{%- endif -%}"
        "{%- if not loop.last or message['role'] != 'assistant' -%}{{- '\\n' -}}{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- " + repr(generation) + " -}}{%- endif -%}"
    )


_VLM_TEMPLATES = {
    # llava-1.5: "USER: <image>\n{question}\nASSISTANT: {answer}</s>" (the end token of a user turn is empty)
    "llava": _chat_template("USER: ", "ASSISTANT: ", "", "<image>\n", "ASSISTANT: "),
    # SmolVLM: "<|im_start|>User:<image>{question}<end_of_utterance>\nAssistant: {answer}<end_of_utterance>"
    "idefics3": _chat_template(
        "User:", "Assistant: ", "<end_of_utterance>", "<image>", "Assistant: ", start="<|im_start|>"
    ),
    # Qwen2-VL: "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{question}<|im_end|>\n..."
    "qwen2vl": _chat_template(
        "<|im_start|>user\n",
        "<|im_start|>assistant\n",
        "<|im_end|>",
        "<|vision_start|><|image_pad|><|vision_end|>",
        "<|im_start|>assistant\n",
    ),
}
_VLM_TEMPLATES["qwen2_5vl"] = _VLM_TEMPLATES["qwen2vl"]

# (pad, bos, eos, extra special tokens) of each family's tokenizer.
_VLM_SPECIAL_TOKENS = {
    "llava": ("<pad>", "<s>", "</s>", ["<image>"]),
    "idefics3": ("<pad>", "<s>", "<end_of_utterance>", ["<image>", "<fake_token_around_image>", "<global-img>"]),
    "qwen2vl": (
        "<|endoftext|>",
        None,
        "<|im_end|>",
        ["<|im_start|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"],
    ),
}
_VLM_SPECIAL_TOKENS["qwen2_5vl"] = _VLM_SPECIAL_TOKENS["qwen2vl"]


def _check_vlm_arch(arch: str) -> str:
    if arch not in VLM_ARCHS:
        raise ValueError(f"Unknown tiny VLM architecture {arch!r}: valid ones are {', '.join(VLM_ARCHS)}.")
    return arch


def _tokenizer_corpus() -> list[str]:
    """Texts the tiny tokenizer's BPE is trained on: the question, every answer line, box numbers, chat headers."""
    import random

    from synartifact import prompts
    from synartifact.report import Artifact
    from synartifact.taxonomy import SLUGS

    rng = random.Random(0)
    texts = [prompts.build_question(mode) for mode in prompts.ANSWER_MODES]
    texts += [prompts.render_answer([Artifact(slug)], "labels") for slug in SLUGS] + [prompts.NONE_ANSWER]
    for _ in range(200):
        box = sorted(rng.random() for _ in range(2)) + sorted(rng.random() for _ in range(2))
        texts.append(
            prompts.render_answer(
                [Artifact(rng.choice(SLUGS), (box[0], box[2], box[1], box[3]), "The region looks wrong.")], "full"
            )
        )
    texts += [f"{i / 100:.2f}" for i in range(101)]
    texts += ["USER: ", "ASSISTANT: ", "User:", "Assistant: ", "System:", "user", "assistant", "system", "SYSTEM: "]
    return texts * 4


# Pre-tokens are whole lines (and box parts), not words: the BPE then merges each fixed line of the question and
# each answer line into one token, so the tiny model sees a short sequence and decides each kind in one token.
_PRETOKEN_SPLIT = r"\n|\s*\|\s*|\[|\]|,\s*"


def build_vlm_tokenizer(arch: str = "llava", vocab_size: int = 4096):
    """An offline byte-level BPE tokenizer (``PreTrainedTokenizerFast``) with the family's special tokens and template.

    The BPE is trained in memory on the question template and answers with line-level pre-tokens, so the question
    costs about one token a line and an answer one token per artifact kind; any other text still encodes (bytes).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    _check_vlm_arch(arch)
    pad, bos, eos, extra = _VLM_SPECIAL_TOKENS[arch]
    specials = [t for t in (pad, bos, eos) if t] + extra
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_PRETOKEN_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_tokenizer_corpus(), trainer=trainer)
    kwargs = {"pad_token": pad, "eos_token": eos, "additional_special_tokens": extra}
    if bos:
        kwargs["bos_token"] = bos
    if arch in ("qwen2vl", "qwen2_5vl"):
        kwargs["unk_token"] = None
    # PreTrainedTokenizerFast for every family, Qwen's included: it reads tokenizer.json as written on both stacks,
    # where transformers 5's Qwen2Tokenizer replaces the saved pre-tokenizer with Qwen's own regex on loading (the
    # line-level merges then never apply, and the two stacks tokenize the question differently)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        chat_template=_VLM_TEMPLATES[arch],
        clean_up_tokenization_spaces=False,
        model_input_names=["input_ids", "attention_mask"],
        **kwargs,
    )
    return tokenizer


def _write_atomically(out, overwrite: bool, write) -> Path:
    """Run ``write(tmp_folder)`` and rename the folder to ``out`` when it completes."""
    from synartifact.utils import atomic_dir

    with atomic_dir(out, overwrite=overwrite) as tmp:
        write(tmp)
    return Path(out)


def _llama_text_kwargs(tokenizer, sizes: dict) -> dict:
    """The tiny Llama language model's config, shared by the LLaVA and Idefics3 families."""
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=sizes.get("hidden_size", 64),
        intermediate_size=sizes.get("intermediate_size", 128),
        num_hidden_layers=sizes.get("layers", 2),
        num_attention_heads=sizes.get("heads", 4),
        num_key_value_heads=sizes.get("heads", 4),
        max_position_embeddings=sizes.get("max_position_embeddings", 1024),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def _tiny_llava(tokenizer, image_size: int, patch_size: int, sizes: dict):
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    num_patches = (image_size // patch_size) ** 2
    vision = CLIPVisionConfig(
        hidden_size=sizes.get("vision_hidden_size", 64),
        intermediate_size=sizes.get("vision_intermediate_size", 128),
        num_hidden_layers=sizes.get("vision_layers", 3),
        num_attention_heads=sizes.get("vision_heads", 4),
        image_size=image_size,
        patch_size=patch_size,
        projection_dim=sizes.get("vision_hidden_size", 64),
    )
    text = LlamaConfig(**_llama_text_kwargs(tokenizer, sizes))
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        image_seq_length=num_patches,
        projector_hidden_act="gelu",
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlavaForConditionalGeneration(config)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        do_center_crop=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        num_additional_image_tokens=1,
        vision_feature_select_strategy="default",
        chat_template=tokenizer.chat_template,
    )
    return model, processor


def _tiny_idefics3(tokenizer, image_size: int, patch_size: int, sizes: dict):
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
    )

    scale_factor = 2
    image_seq_len = (image_size // patch_size) ** 2 // scale_factor**2
    image_processor = Idefics3ImageProcessor(
        size={"longest_edge": image_size},
        max_image_size={"longest_edge": image_size},
        do_image_splitting=False,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=image_seq_len,
        chat_template=tokenizer.chat_template,
    )
    config = Idefics3Config(
        vision_config=dict(
            image_size=image_size,
            patch_size=patch_size,
            hidden_size=sizes.get("vision_hidden_size", 32),
            intermediate_size=sizes.get("vision_intermediate_size", 64),
            num_hidden_layers=sizes.get("vision_layers", 2),
            num_attention_heads=sizes.get("vision_heads", 4),
        ),
        text_config=dict(model_type="llama", **_llama_text_kwargs(tokenizer, sizes)),
        scale_factor=scale_factor,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    return Idefics3ForConditionalGeneration(config), processor


def _tiny_qwen(tokenizer, image_size: int, patch_size: int, sizes: dict, version: str):
    from transformers import Qwen2VLImageProcessor

    merge = 2
    side = max(image_size // (patch_size * merge), 1) * patch_size * merge
    image_processor = Qwen2VLImageProcessor(
        min_pixels=side * side,
        max_pixels=side * side,
        patch_size=patch_size,
        merge_size=merge,
        temporal_patch_size=2,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    processor = qwen_processor_class()(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=tokenizer.chat_template
    )
    hidden, heads = sizes.get("hidden_size", 64), sizes.get("heads", 4)
    head_dim = hidden // heads
    section = [head_dim // 8, 3 * head_dim // 16, head_dim // 2 - head_dim // 8 - 3 * head_dim // 16]
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=sizes.get("intermediate_size", 128),
        num_hidden_layers=sizes.get("layers", 2),
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=sizes.get("max_position_embeddings", 1024),
        rope_scaling={"type": "mrope", "mrope_section": section},
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    ids = {
        name: tokenizer.convert_tokens_to_ids(tok)
        for name, tok in (
            ("image_token_id", "<|image_pad|>"),
            ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"),
            ("vision_end_token_id", "<|vision_end|>"),
        )
    }
    vision_hidden = sizes.get("vision_hidden_size", 32)
    if version == "qwen2vl":
        from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

        vision = dict(
            depth=sizes.get("vision_layers", 2),
            embed_dim=vision_hidden,
            hidden_size=hidden,
            num_heads=sizes.get("vision_heads", 4),
            mlp_ratio=2,
            patch_size=patch_size,
            spatial_merge_size=merge,
            temporal_patch_size=2,
            in_channels=3,
        )
        config = Qwen2VLConfig(text_config=text, vision_config=vision, **text, **ids)
        model = Qwen2VLForConditionalGeneration(config)
    else:
        from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

        depth = sizes.get("vision_layers", 2)
        vision = dict(
            depth=depth,
            hidden_size=vision_hidden,
            out_hidden_size=hidden,
            intermediate_size=sizes.get("vision_intermediate_size", 64),
            num_heads=sizes.get("vision_heads", 4),
            patch_size=patch_size,
            spatial_merge_size=merge,
            temporal_patch_size=2,
            in_channels=3,
            window_size=patch_size * merge * 2,
            fullatt_block_indexes=[depth - 1],
        )
        config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **text, **ids)
        model = Qwen2_5_VLForConditionalGeneration(config)
    return model, processor


_VLM_DEFAULT_SIZES = {"llava": (64, 8), "idefics3": (32, 8), "qwen2vl": (56, 14), "qwen2_5vl": (56, 14)}


def build_tiny_vlm(
    out,
    arch: str = "llava",
    seed: int = 0,
    overwrite: bool = False,
    image_size: int | None = None,
    patch_size: int | None = None,
    vocab_size: int = 4096,
    pretrain: dict | None = None,
    **sizes: int,
) -> Path:
    """Write a tiny VLM with random weights, built from configs, and its offline processor to ``out``; return it.

    ``arch``: ``llava`` (the paper's family, default), ``idefics3`` (SmolVLM), ``qwen2vl`` (Qwen2-VL) or
    ``qwen2_5vl`` (Qwen2.5-VL). ``sizes`` override the widths and depths: ``hidden_size``, ``intermediate_size``,
    ``layers``, ``heads``, ``vision_hidden_size``, ``vision_intermediate_size``, ``vision_layers``, ``vision_heads``.
    ``AutoModelForImageTextToText.from_pretrained(out)`` and ``load_vlm_processor(out)`` load it.

    ``pretrain``: keyword arguments of :func:`synartifact.tiny.vision_pretrain.pretrain_vision` (at least
    ``dataset``): the vision tower and projector are then pre-trained on that artifact dataset before ``out`` is
    written (the language model stays random).
    """
    import torch

    _check_vlm_arch(arch)
    default_image, default_patch = _VLM_DEFAULT_SIZES[arch]
    image_size, patch_size = int(image_size or default_image), int(patch_size or default_patch)
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} must be a multiple of patch_size {patch_size}.")
    known = {
        "hidden_size",
        "intermediate_size",
        "layers",
        "heads",
        "vision_hidden_size",
        "vision_intermediate_size",
        "vision_layers",
        "vision_heads",
        "max_position_embeddings",
    }
    if set(sizes) - known:
        raise ValueError(f"Unknown tiny VLM size(s) {sorted(set(sizes) - known)}: valid ones are {sorted(known)}.")

    def write(folder: Path) -> None:
        torch.manual_seed(seed)
        tokenizer = build_vlm_tokenizer(arch, vocab_size=vocab_size)
        if arch == "llava":
            model, processor = _tiny_llava(tokenizer, image_size, patch_size, sizes)
        elif arch == "idefics3":
            model, processor = _tiny_idefics3(tokenizer, image_size, patch_size, sizes)
        else:
            model, processor = _tiny_qwen(tokenizer, image_size, patch_size, sizes, arch)
        for config in (model.config, model.generation_config):
            config.pad_token_id = tokenizer.pad_token_id
            config.eos_token_id = tokenizer.eos_token_id
            config.bos_token_id = tokenizer.bos_token_id
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        write_portable_processor_files(folder)

    if pretrain:
        import tempfile

        from synartifact.tiny.vision_pretrain import pretrain_vision

        if Path(out).exists() and not overwrite:
            raise FileExistsError(f"{out} already exists: pass overwrite=True (or --overwrite) to replace it.")
        with tempfile.TemporaryDirectory(prefix="synartifact-tiny-vlm-") as scratch:
            write(Path(scratch))
            settings = dict(pretrain)
            dataset = settings.pop("dataset")
            name = f"synartifact.tiny.build_tiny_vlm(arch={arch!r}, seed={seed}, image_size={image_size})"
            return pretrain_vision(scratch, dataset, out, overwrite=overwrite, seed=seed, base_name=name, **settings)
    return _write_atomically(out, overwrite, write)


def get_tiny_vlm(out_dir: str | Path, arch: str = "llava", **kwargs) -> Path:
    """The tiny VLM folder at ``out_dir``, built first when missing (the offline default's model)."""
    out = Path(out_dir)
    if (out / "config.json").is_file():
        return out
    return build_tiny_vlm(out, arch=arch, **kwargs)
