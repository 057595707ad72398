"""ArtifactClassifier: loading full models and LoRA adapters, predicting on every kind of input, refusing bad ones."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from synartifact import ArtifactClassifier
from synartifact.report import ArtifactReport

MAX_NEW = 6


@pytest.fixture(scope="session")
def classifier(tiny_vlm):
    return ArtifactClassifier.from_pretrained(tiny_vlm, device="cpu", max_new_tokens=MAX_NEW)


def _inputs():
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)),  # PIL RGB 40x30
        rng.random((20, 24, 3)),  # float HWC in [0, 1]
        torch.rand(3, 16, 24),  # CHW tensor in [0, 1]
        Image.new("L", (12, 10), 128),  # grayscale
        Image.new("RGBA", (10, 12), (255, 0, 0, 128)),  # RGBA
    ]


def test_import_synartifact_stays_light():
    code = "import sys, synartifact; assert 'torch' not in sys.modules, 'torch imported'; print(synartifact.__all__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "ArtifactClassifier" in result.stdout


def _expected_pixels(inputs):
    """The RGB pixels each of :func:`_inputs` must reach the model as, worked out by hand."""
    pil, hwc, chw, _, _ = inputs
    return [
        np.asarray(pil),
        np.round(hwc * 255).astype(np.uint8),  # floats in [0, 1] scaled to 8 bits
        np.round(chw.double().permute(1, 2, 0).numpy() * 255).astype(np.uint8),  # channels last
        np.full((10, 12, 3), 128, dtype=np.uint8),  # grey level 128 in all three channels
        np.tile(np.array([255, 127, 127], dtype=np.uint8), (12, 10, 1)),  # red at alpha 128/255 over white
    ]


def test_predict_on_every_input_type(classifier, monkeypatch):
    seen = []
    generate = classifier._generate
    monkeypatch.setattr(classifier, "_generate", lambda images: seen.extend(images) or generate(images))
    inputs = _inputs()
    reports = classifier.predict(inputs, batch_size=3)
    assert len(reports) == 5 and all(isinstance(r, ArtifactReport) for r in reports)
    assert [(r.width, r.height) for r in reports] == [(40, 30), (24, 20), (24, 16), (12, 10), (10, 12)]
    # each input reaches the model as the pixels worked out by hand, and answers as that plain RGB image does
    expected = _expected_pixels(inputs)
    for i, (image, pixels) in enumerate(zip(seen, expected)):
        np.testing.assert_array_equal(np.asarray(image), pixels, err_msg=f"input {i}")
    plain = classifier.predict([Image.fromarray(p) for p in expected], batch_size=3)
    assert [r.raw_text for r in reports] == [r.raw_text for r in plain]
    for r in reports:
        assert isinstance(r.raw_text, str) and r.raw_text  # a random model still says something
        assert isinstance(r.well_formed, bool)
        assert all(a.kind for a in r.artifacts)
    one = classifier.predict(_inputs()[0])
    assert len(one) == 1 and one[0].raw_text == reports[0].raw_text
    batch = classifier.predict(torch.rand(2, 3, 8, 8))  # a 4-D batch tensor
    assert len(batch) == 2


def test_batch_size_does_not_change_answers(classifier):
    images = _inputs()[:3]
    by_three = [r.raw_text for r in classifier.predict(images, batch_size=3)]
    by_one = [r.raw_text for r in classifier.predict(images, batch_size=1)]
    assert by_three == by_one
    assert len(set(by_three)) > 1  # different images, different answers: the image reaches the model


def test_prepare_inputs_is_left_padded(classifier):
    images = _inputs()[:2]
    batch = classifier.prepare_inputs(images, texts=[classifier.prompt, "USER: <image>\nshort\nASSISTANT: "])
    mask = batch["attention_mask"]
    assert mask.shape[0] == 2 and mask[:, -1].all() and not mask[1, 0]
    assert batch["pixel_values"].dtype == classifier.model.dtype
    assert batch["input_ids"].device == classifier.device
    full = classifier.prepare_inputs(images)
    assert full["attention_mask"].all()  # the same question for every image: nothing to pad


def test_answer_parsed_into_report(classifier, monkeypatch):
    answers = iter([["H) Localized Blur\nI) Chromatic Irregularity", "None"]])
    monkeypatch.setattr(classifier, "_generate", lambda images: next(answers))
    blur, clean = classifier.predict(_inputs()[:2], batch_size=2)
    assert blur.kinds == {"localized_blur", "chromatic_irregularity"} and blur.well_formed
    assert blur.artifacts[0].group == "object-agnostic"
    assert clean.kinds == set() and clean.well_formed and clean.raw_text == "None"


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((5, 5, 5), dtype=np.uint8), r"Image 1: shape \(5, 5, 5\) has no channel axis"),
        (np.zeros((2, 2, 2, 2, 2)), "5 dimensions"),
        (np.zeros((0, 4, 3), dtype=np.uint8), "empty"),
        (np.full((4, 4, 3), 2.0), r"float arrays must be in \[0, 1\]"),
        (np.full((4, 4, 3), np.nan), "NaN"),
        (torch.full((3, 4, 4), -1.0), "negative"),
        (torch.full((3, 4, 4), 300.0), "over 255"),
        (b"definitely not an image", "not a readable image"),
        ({"an": "object"}, "no 'bytes' or 'path'"),
        (3.5, "got float"),
    ],
)
def test_bad_images_refused(classifier, bad, message):
    with pytest.raises(ValueError, match=message) as err:
        classifier.predict([Image.new("RGB", (8, 8)), bad])
    assert "Valid inputs" in str(err.value) or "Image 1" in str(err.value)


def test_bad_files_refused(classifier, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        classifier.predict([str(tmp_path / "missing.png")])
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(ValueError, match="Image 0: file .*junk.png.* not a readable image"):
        classifier.predict(junk)
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        classifier.predict([truncated])
    assert classifier.predict([good])[0].width == 64


def test_huge_images_refused(tiny_vlm):
    small_limit = ArtifactClassifier.from_pretrained(tiny_vlm, max_new_tokens=2, max_pixels=100)
    with pytest.raises(ValueError, match=r"Image 0: 11x10 = 110 pixels is over the limit of 100"):
        small_limit.predict(Image.new("RGB", (11, 10)))


def test_lora_adapter_folder(tiny_vlm, classifier, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_vlm)
    torch.manual_seed(1)
    peft_model = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    (adapter / "synartifact_config.json").write_text(json.dumps({"answer_mode": "full", "max_new_tokens": 5}))
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_vlm)

    tuned = ArtifactClassifier.from_pretrained(adapter)  # no processor in the folder: the base's is used
    assert tuned.mode == "full" and tuned.max_new_tokens == 5 and tuned.base_model == str(tiny_vlm)
    assert not hasattr(tuned.model, "peft_config")  # merged
    unmerged = ArtifactClassifier.from_pretrained(adapter, merge_lora=False, mode="labels", max_new_tokens=MAX_NEW)
    assert hasattr(unmerged.model, "peft_config") and unmerged.mode == "labels"
    images = _inputs()[:3]
    reports = tuned.predict(images)
    assert len(reports) == 3 and all(r.width for r in reports)
    # the adapter changes the model: its answers differ from the base's
    assert [r.raw_text for r in unmerged.predict(images)] != [r.raw_text for r in classifier.predict(images)]
    # merging changes nothing else: the merged model (same answer mode) gives the unmerged one's logits and answers
    merged = ArtifactClassifier.from_pretrained(adapter, mode="labels", max_new_tokens=MAX_NEW)
    assert not hasattr(merged.model, "peft_config")
    with torch.no_grad():
        logits = [clf.model(**clf.prepare_inputs(images)).logits for clf in (merged, unmerged, classifier)]
    torch.testing.assert_close(logits[0], logits[1], rtol=0, atol=1e-5)
    assert (logits[0] - logits[2]).abs().max() > 1e-2  # far beyond that tolerance: the adapter is in the merge
    assert [r.raw_text for r in merged.predict(images)] == [r.raw_text for r in unmerged.predict(images)]


def test_full_model_folder_with_sft_record(tiny_vlm, tmp_path):
    """A full fine-tuned folder: the answer mode and the baseline come from the record that `synartifact sft` writes."""
    import shutil

    from synartifact.classifier import resolve_base_model

    folder = tmp_path / "full"
    shutil.copytree(tiny_vlm, folder)
    assert resolve_base_model(folder) is None
    (folder / "sft_run.json").write_text(
        json.dumps({"answer_mode": "full", "base_model": "rel/base", "base_model_path": "/abs/base"})
    )
    assert resolve_base_model(folder) == "/abs/base"
    clf = ArtifactClassifier.from_pretrained(folder, max_new_tokens=3)
    assert clf.mode == "full" and clf.base_model == "/abs/base"
    (folder / "synartifact_config.json").write_text(json.dumps({"answer_mode": "labels", "base_model": "other"}))
    assert resolve_base_model(folder) == "other"  # synartifact_config.json wins
    assert ArtifactClassifier.from_pretrained(folder, max_new_tokens=3).mode == "labels"


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ArtifactClassifier.from_pretrained(str(tmp_path / "nothing-here"))
    with pytest.raises(ValueError, match="Unknown answer mode 'boxes'"):
        ArtifactClassifier(model=None, processor=None, mode="boxes")
    bad = tmp_path / "adapter"
    bad.mkdir()
    (bad / "adapter_config.json").write_text("{}")
    with pytest.raises(ValueError, match="base_model_name_or_path"):
        ArtifactClassifier.from_pretrained(bad)


@pytest.mark.parametrize("arch", ["idefics3", "qwen2vl"])
def test_other_families(arch, tmp_path):
    from synartifact.tiny import build_tiny_vlm

    folder = build_tiny_vlm(tmp_path / arch, arch=arch, seed=0)
    clf = ArtifactClassifier.from_pretrained(folder, max_new_tokens=4)
    images = [Image.new("RGB", (50, 40), (10, 200, 30)), np.zeros((30, 30, 3), dtype=np.uint8)]
    two = clf.predict(images, batch_size=2)
    assert [(r.width, r.height) for r in two] == [(50, 40), (30, 30)]
    assert [r.raw_text for r in two] == [r.raw_text for r in clf.predict(images, batch_size=1)]
