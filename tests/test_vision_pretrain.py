"""The tiny VLMs' vision pre-training (synartifact.tiny.vision_pretrain): targets by hand, every family's image
tokens, what the written folder holds, and that only the vision side moves."""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_cell_targets_match_a_hand_computation():
    from synartifact.tiny.vision_pretrain import cell_targets

    # a 4x4 grid (cells of 0.25); box [0.3, 0.0, 0.8, 0.2] of kind 2 covers, per cell of row 0:
    # col 0 [0, .25]: none; col 1 [.25, .5]: x .2/.25 * y .2/.25 = 0.64; col 2: 1 * 0.8 = 0.8;
    # col 3 [.75, 1]: x .05/.25 = 0.2 * 0.8 = 0.16 (< 0.25: not covered). Row 1 (y from .25): none.
    # A kind-less box (label -1) [0.0, 0.5, 0.5, 1.0] covers cells (2,0), (2,1), (3,0), (3,1) fully.
    artifacts = [
        {"label": 2, "bbox": [0.3, 0.0, 0.8, 0.2]},
        {"label": -1, "bbox": [0.0, 0.5, 0.5, 1.0]},
    ]
    kinds, boxes, covered, image_kinds = cell_targets(artifacts, grid=4, num_kinds=5)
    assert kinds.shape == (16, 5) and boxes.shape == (16, 4)
    assert sorted(np.flatnonzero(kinds[:, 2]).tolist()) == [1, 2]
    assert kinds[:, [0, 1, 3, 4]].sum() == 0
    assert sorted(np.flatnonzero(covered).tolist()) == [1, 2, 8, 9, 12, 13]
    np.testing.assert_allclose(boxes[1], [0.3, 0.0, 0.8, 0.2])
    np.testing.assert_allclose(boxes[12], [0.0, 0.5, 0.5, 1.0])
    assert boxes[0].tolist() == [0, 0, 0, 0]
    assert image_kinds.tolist() == [0, 0, 1, 0, 0]


def test_a_cell_takes_the_box_covering_it_most():
    from synartifact.tiny.vision_pretrain import cell_targets

    # two boxes over cell 0 of a 2x2 grid (cell [0, .5]^2): the second covers all of it, the first 0.4 x 1 of it
    artifacts = [{"label": 0, "bbox": [0.0, 0.0, 0.2, 0.5]}, {"label": 1, "bbox": [0.0, 0.0, 0.5, 0.5]}]
    kinds, boxes, covered, _ = cell_targets(artifacts, grid=2, num_kinds=2)
    assert kinds[0].tolist() == [1, 1]
    np.testing.assert_allclose(boxes[0], [0.0, 0.0, 0.5, 0.5])
    assert covered.tolist() == [1, 0, 0, 0]


@pytest.mark.parametrize(
    "arch, sizes, tokens",
    [
        ("llava", dict(image_size=32, patch_size=8), 16),  # 4x4 patches
        ("idefics3", dict(image_size=64, patch_size=16), 4),  # 4x4 patches, pixel shuffle by 2: 2x2
        ("qwen2vl", dict(image_size=56, patch_size=14), 4),  # 4x4 patches merged 2x2: 2x2
    ],
)
def test_image_token_features_are_per_image_grids(tmp_path, arch, sizes, tokens):
    """Every family's image tokens, as the language model reads them, come out as [images, tokens, hidden] on both
    stacks (4.57 and 5.x return them in different containers)."""
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText

    from synartifact.classifier.loading import load_vlm_processor
    from synartifact.compat import image_token_features
    from synartifact.tiny import build_tiny_vlm
    from synartifact.tiny.vision_pretrain import _collate, _image_inputs

    folder = build_tiny_vlm(tmp_path / arch, arch=arch, **sizes)
    model = AutoModelForImageTextToText.from_pretrained(folder)
    processor = load_vlm_processor(folder)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)) for _ in range(3)]
    per_image = _image_inputs(processor, images)
    assert len(per_image) == 3
    with torch.no_grad():
        batch = image_token_features(model, _collate(per_image), 3)
        single = image_token_features(model, _collate(per_image[1:2]), 1)
    assert batch.shape[:2] == (3, tokens)
    # the second image's tokens do not depend on what else is in the batch
    torch.testing.assert_close(batch[1], single[0], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(batch[0], batch[1])


def test_pretraining_moves_the_vision_side_only_and_writes_its_card(tmp_path, tiny_dataset):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    from synartifact.tiny import build_tiny_vlm

    base = build_tiny_vlm(tmp_path / "base", arch="llava", image_size=32, patch_size=8)
    out = build_tiny_vlm(
        tmp_path / "pre",
        arch="llava",
        image_size=32,
        patch_size=8,
        pretrain=dict(dataset=str(tiny_dataset), epochs=2, batch_size=4, test_split="test"),
    )
    before, after = load_file(base / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    vision = {k for k in before if "vision_tower" in k or "multi_modal_projector" in k}
    language = {k for k in before if "language_model" in k or "lm_head" in k}
    assert vision and language
    assert moved & vision, "the vision side did not train"
    assert not moved & language, f"the language model changed: {sorted(moved & language)[:3]}"
    summary = json.loads((out / "vision_pretrain.json").read_text())
    assert (
        summary["grid"] == 4 and summary["num_images"] > 0 and summary["steps"] == 2 * -(-summary["num_images"] // 4)
    )
    assert summary["held_out"]["num_images"] > 0
    assert ".tmp" not in summary["base"] and "synartifact-tiny-vlm-" not in summary["base"]
    card = (out / "README.md").read_text()
    assert "vision tower and projector were pre-trained" in card and f"{summary['seconds']} s" in card
    assert (out / "vision_pretrain_loss.png").is_file()
    AutoModelForImageTextToText.from_pretrained(out)  # loads as a model


def test_pretraining_refuses_bad_settings_and_datasets(tmp_path, tiny_dataset):
    from synartifact.tiny import build_tiny_vlm
    from synartifact.tiny.vision_pretrain import pretrain_vision

    base = build_tiny_vlm(tmp_path / "base", arch="llava", image_size=32, patch_size=8)
    with pytest.raises(ValueError, match="batch_size"):
        pretrain_vision(base, tiny_dataset, tmp_path / "x", batch_size=0)
    with pytest.raises(ValueError, match="no split 'dev'"):
        pretrain_vision(base, tiny_dataset, tmp_path / "x", split="dev")
    with pytest.raises(FileExistsError):
        pretrain_vision(base, tiny_dataset, base)
    assert not (tmp_path / "x").exists()


def test_cell_descriptors_match_a_hand_computation():
    from PIL import Image

    from synartifact.tiny.vision_pretrain import cell_descriptors

    # 4x4 image: left half pure red, right half black; 2x2 cells. Grey = mean of RGB: 1/3 left, 0 right.
    pixels = np.zeros((4, 4, 3), np.uint8)
    pixels[:, :2, 0] = 255
    d = cell_descriptors(Image.fromarray(pixels), grid=2)
    assert d.shape == (4, 14)
    top_left, top_right = d[0], d[1]
    np.testing.assert_allclose(top_left[0:3], [1, 0, 0], atol=1e-6)  # colour mean
    np.testing.assert_allclose(top_left[3:6], [0, 0, 0], atol=1e-3)  # colour std
    np.testing.assert_allclose(top_left[6:9], [0.5, 0, 0], atol=1e-6)  # mean - image mean (0.5, 0, 0)
    # Laplacian |4g - up - down - left - right| on interior pixels only: (1,1) has grey 1/3 and a black right
    # neighbour: |4/3 - 3 * 1/3 - 0| = 1/3; the other three pixels of the cell are on the border (0): mean 1/12
    np.testing.assert_allclose(top_left[9], 1 / 12, atol=1e-6)
    # |grey(x+1) - grey(x)|: 1/3 at column 1 (the edge), 0 at column 0: mean 1/6; no vertical change
    np.testing.assert_allclose(top_left[10:12], [1 / 6, 0], atol=1e-6)
    np.testing.assert_allclose(top_left[12:14], [1 / 3, 1 / 3 - 1 / 6], atol=1e-6)
    np.testing.assert_allclose(top_right[0:3], [0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(top_right[6:9], [-0.5, 0, 0], atol=1e-6)
    np.testing.assert_allclose(top_right[10], 0, atol=1e-6)  # column 3 appends itself: no change


def test_tiny_vlm_command_pretrains_from_the_cli(tmp_path, tiny_dataset):
    from synartifact.cli import main

    out = tmp_path / "vlm"
    args = ["tiny", "vlm", "--out", str(out), "--image-size", "32", "--patch-size", "8"]
    args += ["--pretrain-dataset", str(tiny_dataset), "--pretrain-epochs", "1", "--pretrain-batch-size", "4"]
    main(args)
    summary = json.loads((out / "vision_pretrain.json").read_text())
    assert summary["epochs"] == 1 and summary["batch_size"] == 4 and summary["descriptor_weight"] == 1.0
    assert summary["final_losses"]["cells"] is not None
