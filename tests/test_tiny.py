"""The tiny VLMs built from configs: each family builds offline, reloads, renders its chat template and runs."""

import json

import pytest
import torch
from conftest import SMALL_VLM
from PIL import Image
from transformers import AutoModelForImageTextToText

from synartifact.classifier.loading import load_vlm_processor
from synartifact.prompts import build_messages, render_answer
from synartifact.tiny import VLM_ARCHS, build_tiny_vlm, build_vlm_tokenizer, get_tiny_vlm

SMALL = {k: v for k, v in SMALL_VLM.items() if k not in ("image_size", "patch_size")}  # widths and depths only
IMAGE_SIZE = {"llava": 32, "idefics3": 32, "qwen2vl": 56, "qwen2_5vl": 56}


@pytest.fixture(scope="module", params=VLM_ARCHS)
def tiny_folder(request, tmp_path_factory):
    arch = request.param
    out = tmp_path_factory.mktemp("tiny") / arch
    small = dict(SMALL, heads=4 if arch.startswith("qwen") else 2)  # mrope needs a head dim of 8+
    return arch, build_tiny_vlm(out, arch=arch, image_size=IMAGE_SIZE[arch], **small)


def test_each_family_loads_renders_the_chat_template_and_runs(tiny_folder):
    arch, folder = tiny_folder
    model = AutoModelForImageTextToText.from_pretrained(folder)
    processor = load_vlm_processor(folder)
    assert model.config.model_type == {"qwen2vl": "qwen2_vl", "qwen2_5vl": "qwen2_5_vl"}.get(arch, arch)

    prompt = processor.apply_chat_template(build_messages(), add_generation_prompt=True)
    answer = render_answer([{"label": 7}])
    full = processor.apply_chat_template(
        build_messages() + [{"role": "assistant", "content": [{"type": "text", "text": answer}]}]
    )
    # TRL splits prompt and completion by the prompt being a prefix of the whole conversation
    assert full.startswith(prompt)
    assert full[len(prompt) :] == answer + processor.tokenizer.eos_token
    assert "Which artifacts" in prompt

    images = [Image.new("RGB", (70, 50), (200, 30, 30)), Image.new("RGB", (40, 40), (10, 10, 10))]
    processor.tokenizer.padding_side = "left"
    inputs = processor(
        images=[[im] for im in images] if arch == "idefics3" else images,
        text=[prompt, prompt],
        return_tensors="pt",
        padding=True,
    )
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[:2] == inputs["input_ids"].shape and torch.isfinite(logits).all()
    generated = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert generated.shape[0] == 2 and generated.shape[1] <= inputs["input_ids"].shape[1] + 3


def test_tokenizer_is_offline_compact_and_lossless():
    tokenizer = build_vlm_tokenizer("llava")
    answer = "B) Awkward Facial Expression\nH) Localized Blur"
    ids = tokenizer(answer, add_special_tokens=False).input_ids
    assert len(ids) == 3  # one token per kind line, and the newline
    for text in (answer, "Any other text, with ünïcode and 0.37 | [x]", build_messages()[0]["content"][1]["text"]):
        assert tokenizer.decode(tokenizer(text, add_special_tokens=False).input_ids) == text
    assert tokenizer.model_input_names == ["input_ids", "attention_mask"]


def test_build_writes_atomically_and_refuses_to_overwrite(tmp_path):
    out = build_tiny_vlm(tmp_path / "m", image_size=32, patch_size=8, **SMALL)
    assert json.loads((out / "config.json").read_text())["model_type"] == "llava"
    assert not list(tmp_path.glob("m.tmp-*"))
    with pytest.raises(FileExistsError, match="overwrite"):
        build_tiny_vlm(out)
    assert get_tiny_vlm(out) == out  # exists: not rebuilt
    with pytest.raises(ValueError, match="valid ones"):
        build_tiny_vlm(tmp_path / "x", arch="gpt")
    with pytest.raises(ValueError, match="multiple of patch_size"):
        build_tiny_vlm(tmp_path / "y", image_size=30, patch_size=8)
    with pytest.raises(ValueError, match="Unknown tiny VLM size"):
        build_tiny_vlm(tmp_path / "z", depth=3)


def test_build_is_deterministic_for_a_seed(tmp_path):
    a = AutoModelForImageTextToText.from_pretrained(build_tiny_vlm(tmp_path / "a", image_size=32, seed=3, **SMALL))
    b = AutoModelForImageTextToText.from_pretrained(build_tiny_vlm(tmp_path / "b", image_size=32, seed=3, **SMALL))
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name
