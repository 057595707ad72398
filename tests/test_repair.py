"""Repair: classify -> mask -> inpaint -> classify again -> keep the better image; the tiny inpainter; the command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, train_answering_classifier
from PIL import Image

from synartifact import cli
from synartifact.generator.inpaint import inpainting_unet
from synartifact.repair import ArtifactRepairer, artifact_mask, resolve_cli_options
from synartifact.report import Artifact, ArtifactReport
from synartifact.tiny import build_tiny_sd_inpaint

BOX = (0.25, 0.25, 0.5, 0.5)


@pytest.fixture(scope="module")
def inpainter_dir(tmp_path_factory, tiny_sd, tiny_dataset):
    """The tiny inpainter, widened from the tiny SD and pre-trained a few steps on the tiny dataset."""
    return build_tiny_sd_inpaint(
        tmp_path_factory.mktemp("inpaint") / "tiny-sd-inpaint", tiny_dataset, base=tiny_sd, steps=3, progress=False
    )


@pytest.fixture(scope="module")
def inpainter(inpainter_dir):
    from diffusers import StableDiffusionInpaintPipeline

    return StableDiffusionInpaintPipeline.from_pretrained(inpainter_dir)


class StubClassifier:
    """Answers the same artifacts for every image and counts its calls."""

    mode = "full"

    def __init__(self, artifacts):
        self.artifacts = list(artifacts)
        self.calls = 0

    def predict(self, images, batch_size=8, progress=False):
        self.calls += 1
        return [
            ArtifactReport(list(self.artifacts), raw_text="...", width=image.width, height=image.height)
            for image in images
        ]


class StubReward:
    """Hands out the given rewards in order, one per image scored."""

    def __init__(self, values):
        self.values = list(values)

    def score_images(self, images):
        return [self.values.pop(0) for _ in images]


class NoInpainter:
    """An inpainting pipeline that must not be called."""

    unet = vae = object()
    vae_scale_factor = 8

    def __call__(self, **kwargs):
        raise AssertionError("the inpainter ran although there was nothing to repair")


def _images(n=2, size=(48, 40)):
    return [
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        for i in range(n)
    ]


def _repairer(inpainter, artifacts, rewards, **kwargs):
    kwargs.setdefault("num_inference_steps", 2)
    return ArtifactRepairer(StubClassifier(artifacts), inpainter, StubReward(rewards), progress=False, **kwargs)


def test_the_mask_covers_the_boxes_with_the_margin_and_feathers_inside():
    hard, alpha = artifact_mask((100, 50), [(0.2, 0.2, 0.4, 0.6)], margin=0.1)
    expected = np.zeros((50, 100), bool)
    expected[5:35, 10:50] = True  # x 0.1..0.5 of 100 px, y 0.1..0.7 of 50 px
    assert np.array_equal(hard, expected)
    assert (alpha[~hard] == 0).all() and (alpha[hard] > 0).all()
    assert alpha[20, 30] == pytest.approx(1.0) and alpha[5, 30] < 0.5  # full inside, soft at the edge
    hard, _ = artifact_mask((100, 50), [(0.0, 0.9, 0.05, 1.0)], margin=0.2)
    assert hard[-1, 0] and hard.sum() == 25 * 15  # x 0..0.25, y 0.7..1 (clipped to the image)
    with pytest.raises(ValueError, match="margin"):
        artifact_mask((10, 10), [BOX], margin=2)
    with pytest.raises(ValueError, match="x0 < x1"):
        artifact_mask((10, 10), [(0.5, 0.1, 0.2, 0.3)])


def test_a_repair_that_raises_the_reward_is_kept_and_only_the_mask_changes(inpainter):
    images = _images()
    # before: 0.5 each; round 0 candidates: 0.9 (kept) and 0.1 (discarded); round 1: 0.95 (kept), 0.7 (kept)
    repairer = _repairer(
        inpainter, [Artifact("localized_blur", BOX, "The face is blurred.")], [0.5, 0.5, 0.9, 0.1, 0.95, 0.7]
    )
    results = repairer.repair(images, prompts=["a cat", None], rounds=2, seed=0)
    first, second = results
    assert [r.accepted for r in first.rounds] == [True, True] and [r.accepted for r in second.rounds] == [False, True]
    assert (first.reward_before, first.reward_after) == (0.5, 0.95)
    assert (second.reward_before, second.reward_after) == (0.5, 0.7)
    hard, _ = artifact_mask(images[0].size, [BOX], margin=0.05)
    for result, image in zip(results, images):
        assert result.original is image or np.array_equal(np.asarray(result.original), np.asarray(image))
        before, after = np.asarray(image), np.asarray(result.image)
        mask = np.asarray(result.mask) > 0
        assert np.array_equal(mask, hard)
        assert np.array_equal(before[~mask], after[~mask]), "pixels outside the mask are bit-identical"
        assert (before[mask] != after[mask]).any(), "the inpainter repainted inside the mask"
        assert result.mask_area == pytest.approx(hard.mean())
    assert first.rounds[0].negative_prompt == "The face is blurred."


def test_a_repair_that_lowers_the_reward_is_discarded(inpainter):
    image = _images(1)[0]
    repairer = _repairer(inpainter, [Artifact("localized_blur", BOX)], [0.6, 0.2, 0.6])
    result = repairer.repair([image], rounds=2)[0]
    assert [r.accepted for r in result.rounds] == [False, False]
    assert [r.reward_after for r in result.rounds] == [0.2, 0.6]  # equal is not better either
    assert np.array_equal(np.asarray(result.image), np.asarray(image))
    assert result.reward_after == result.reward_before == 0.6 and not result.changed and result.mask_area == 0.0


def test_nothing_found_means_nothing_changes():
    image = _images(1)[0]
    classifier = StubClassifier([])
    result = ArtifactRepairer(classifier, NoInpainter(), StubReward([1.0]), progress=False).repair([image])[0]
    assert result.rounds == [] and result.image is not None
    assert np.array_equal(np.asarray(result.image), np.asarray(image)) and result.mask_area == 0.0
    assert classifier.calls == 1


def test_artifacts_without_boxes_use_the_hints_or_are_skipped(inpainter):
    image = _images(1)[0]
    unboxed = [Artifact("localized_blur")]
    skipped = ArtifactRepairer(StubClassifier(unboxed), NoInpainter(), StubReward([0.5]), progress=False)
    result = skipped.repair([image], rounds=2)[0]
    assert result.rounds == [] and result.unboxed and result.mask_area == 0.0
    hinted = _repairer(inpainter, unboxed, [0.5, 0.9], unboxed="skip")
    result = hinted.repair([image], rounds=1, hints=[[BOX]])[0]
    assert result.changed and np.array_equal(np.asarray(result.mask) > 0, artifact_mask(image.size, [BOX])[0])
    whole = _repairer(inpainter, unboxed, [0.5, 0.9], unboxed="image")
    assert whole.repair([image], rounds=1)[0].mask_area == 1.0


def test_repair_is_seeded(inpainter):
    image = _images(1)[0]
    artifacts = [Artifact("localized_blur", BOX)]
    a = _repairer(inpainter, artifacts, [0.1, 0.9]).repair([image], seed=3, rounds=1)[0]
    b = _repairer(inpainter, artifacts, [0.1, 0.9]).repair([image], seed=3, rounds=1)[0]
    c = _repairer(inpainter, artifacts, [0.1, 0.9]).repair([image], seed=4, rounds=1)[0]
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert not np.array_equal(np.asarray(a.image), np.asarray(c.image))


def test_bad_inputs_give_clear_errors(inpainter, tmp_path):
    repairer = _repairer(inpainter, [], [1.0] * 10)
    image = _images(1)[0]
    with pytest.raises(ValueError, match="rounds"):
        repairer.repair([image], rounds=0)
    with pytest.raises(ValueError, match="1 images but 2 prompts"):
        repairer.repair([image], prompts=["a", "b"])
    with pytest.raises(ValueError, match="Image 1: .*too small"):
        repairer.repair([image, Image.new("RGB", (2, 2))])
    with pytest.raises(ValueError, match="No images"):
        repairer.repair([])
    with pytest.raises(ValueError, match=r"hints\[0\]"):
        repairer.repair([image], hints=[[(0.5, 0.5, 0.1)]])
    with pytest.raises(ValueError, match="margin"):
        ArtifactRepairer(StubClassifier([]), inpainter, StubReward([]), margin=-0.1)
    with pytest.raises(ValueError, match="unboxed"):
        ArtifactRepairer(StubClassifier([]), inpainter, StubReward([]), unboxed="guess")
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        ArtifactRepairer(StubClassifier([]), str(tmp_path / "missing"), StubReward([]))
    with pytest.raises(ValueError, match="inpainting pipeline"):
        ArtifactRepairer(StubClassifier([]), 42, StubReward([]))


def test_the_default_reward_reads_the_classifiers_reports(inpainter, tiny_vlm, monkeypatch):
    """Without a reward, the repairer scores with ArtifactReward(classifier, mode='generate'), read from the
    classifier's reports: 1 - (kinds found) / 13 with every kind weighing 1, 0 for an unparsable answer."""
    from synartifact.classifier import ArtifactClassifier
    from synartifact.reward import ArtifactReward

    classifier = ArtifactClassifier.from_pretrained(tiny_vlm, device="cpu", max_new_tokens=8)
    images = _images(4)
    answers = ["None", "H) Localized Blur", "B) Awkward Facial Expression\nH) Localized Blur", "a cat, maybe"]
    by_pixels = {image.tobytes(): answer for image, answer in zip(images, answers)}
    # the classifier's answer for each original image; any other image (a repaired one) is clean
    monkeypatch.setattr(classifier, "_generate", lambda batch: [by_pixels.get(im.tobytes(), "None") for im in batch])
    repairer = ArtifactRepairer(classifier, inpainter, progress=False)
    assert isinstance(repairer.reward, ArtifactReward) and repairer.reward.mode == "generate"
    results = repairer.repair(images, hints=[None, [BOX], [BOX], None], rounds=2)
    expected = [1.0, 12 / 13, 11 / 13, 0.0]
    assert [r.reward_before for r in results] == pytest.approx(expected)
    assert [d["reward"] for d in repairer.reward.details(images)] == pytest.approx(expected)  # a second pass
    # the two with a kind are repaired in one round (the repaired image answers "None": reward 1), the others not
    assert [len(r.rounds) for r in results] == [0, 1, 1, 0]
    assert [r.reward_after for r in results] == pytest.approx([1.0, 1.0, 1.0, 0.0])
    assert [r.rounds[0].reward_before for r in results[1:3]] == pytest.approx([12 / 13, 11 / 13])
    assert all(r.rounds[0].accepted for r in results[1:3])


# ------------------------------------------------------------------------------------------------------------
# The tiny inpainter
# ------------------------------------------------------------------------------------------------------------


def test_tiny_sd_inpaint_builds_a_9_channel_unet_that_starts_at_zero(tmp_path, tiny_sd, tiny_dataset, inpainter_dir):
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

    out = tmp_path / "untrained"
    assert cli.main(["tiny", "sd-inpaint", "--out", str(out), "--base", str(tiny_sd)]) == 0
    base = StableDiffusionPipeline.from_pretrained(tiny_sd).unet.conv_in.weight
    for folder, trained in ((out, False), (inpainter_dir, True)):
        unet = StableDiffusionInpaintPipeline.from_pretrained(folder).unet
        assert unet.config.in_channels == 9
        extra = unet.conv_in.weight[:, 4:]
        assert (extra.abs().sum() > 0) == trained, "untrained: the mask channels are zero; training moves them"
        if not trained:
            assert torch.equal(unet.conv_in.weight[:, :4], base)
    record = json.loads((inpainter_dir / "inpaint_pretrain.json").read_text())
    assert record["in_channels"] == 9 and record["steps"] == 3 and np.isfinite(record["final_loss"])
    assert cli.main(["tiny", "sd-inpaint", "--out", str(out), "--base", str(tiny_sd)]) == 2  # exists: --overwrite


def test_widening_keeps_the_text_to_image_prediction(tiny_sd):
    from diffusers import StableDiffusionPipeline

    unet = StableDiffusionPipeline.from_pretrained(tiny_sd).unet
    wide = inpainting_unet(unet)
    latents, text = torch.randn(1, 4, 16, 16), torch.randn(1, 77, 32)
    extra = torch.randn(1, 5, 16, 16)
    with torch.no_grad():
        expected = unet(latents, 10, text).sample
        got = wide(torch.cat([latents, extra], dim=1), 10, text).sample
    assert torch.allclose(expected, got, atol=1e-5)
    with pytest.raises(ValueError, match="already"):
        inpainting_unet(wide)


# ------------------------------------------------------------------------------------------------------------
# The command
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def answering_classifier(tmp_path_factory, tiny_vlm):
    return train_answering_classifier(tiny_vlm, tmp_path_factory.mktemp("clf") / "answering", steps=60)


def test_repair_command_writes_images_jsonl_and_grid(tmp_path, answering_classifier, inpainter_dir, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for i, image in enumerate(_images(2)):
        image.save(folder / f"img{i}.png")
    _images(1)[0].save(folder / "photo.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    # symbolic links: one inside --images is read; one leading outside is refused and reported, as the dataset
    # builder refuses it (the same confinement rule)
    (folder / "alias.png").symlink_to(folder / "img1.png")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _images(1)[0].save(elsewhere / "secret.png")
    (folder / "outside.png").symlink_to(elsewhere / "secret.png")
    out = tmp_path / "out"
    args = ["repair", "--classifier", str(answering_classifier), "--inpainter", str(inpainter_dir)]
    args += ["--images", str(folder), "--out", str(out), "--rounds", "1", "--num-inference-steps", "2"]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "skipped broken.png" in printed and "skipped outside.png" in printed
    rows = [json.loads(line) for line in (out / "repair.jsonl").read_text().splitlines()]
    assert [r["image"] for r in rows] == ["alias.png", "img0.png", "img1.png", "photo.jpg"]
    assert [r["output"] for r in rows] == ["alias.png", "img0.png", "img1.png", "photo.png"]  # lossless: exact
    for row in rows:
        for key in ("kinds_before", "kinds_after", "reward_before", "reward_after", "rounds", "mask_area"):
            assert key in row, key
        # the over-fitted classifier answers the same for any image: a repair never raises its reward
        assert row["kinds_before"] == ["chromatic_irregularity", "localized_blur"]
        assert row["rounds"] == 1 and row["mask_area"] == 0.0 and row["reward_after"] == row["reward_before"]
    assert np.array_equal(np.asarray(Image.open(out / "img0.png")), np.asarray(Image.open(folder / "img0.png")))
    assert (out / "before_after.png").stat().st_size > 5000
    skipped = {
        row["image"]: row["reason"] for row in map(json.loads, (out / "skipped.jsonl").read_text().splitlines())
    }
    assert sorted(skipped) == ["broken.png", "outside.png"] and "not a readable image" in skipped["broken.png"]
    assert f"leads outside --images {folder}, to {elsewhere / 'secret.png'}" in skipped["outside.png"]
    assert "--allow-outside-images" in skipped["outside.png"]
    assert json.loads((out / "summary.json").read_text())["skipped"] == 2
    from synartifact.repair.cli import _load_items

    items, bad = _load_items(str(folder), "test", None, None, False, allow_outside_images=True)
    assert "outside.png" in [item.name for item in items] and [row["image"] for row in bad] == ["broken.png"]
    assert cli.main(args) == 2  # the output exists: --overwrite
    assert "already exists" in capsys.readouterr().err


def test_repair_command_reads_a_dataset_split_and_a_config(tmp_path, tiny_vlm, tiny_dataset, inpainter_dir):
    config = tmp_path / "repair.yaml"
    config.write_text(
        f"classifier: {tiny_vlm}\ninpainter: {inpainter_dir}\nimages: {tiny_dataset}\noutput_dir: {tmp_path / 'o'}\n"
        "split: test\nmax_images: 2\nrounds: 1\nnum_inference_steps: 1\n"
    )
    assert cli.main(["repair", "--config", str(config)]) == 0
    rows = [json.loads(line) for line in (tmp_path / "o" / "repair.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["image"].startswith("synth-0-") and r["image"].endswith(".png") for r in rows)
    assert all((tmp_path / "o" / r["output"]).is_file() for r in rows)
    config.write_text("classifier: x\nmystery: 1\n")
    with pytest.raises(ValueError, match="unknown key.*mystery"):
        resolve_cli_options(cli_args(["--config", str(config)]))
    with pytest.raises(ValueError, match="--inpainter"):
        resolve_cli_options(cli_args(["--classifier", "x", "--images", "y", "--out", "z"]))


def cli_args(argv):
    import argparse

    from synartifact.repair import add_cli

    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers(dest="command"))
    return parser.parse_args(["repair", *argv])


def test_the_gpu_recipe_parses_and_names_its_models():
    recipe = ROOT / "recipes" / "sd-inpainting" / "repair.yaml"
    assert recipe.read_text().splitlines()[0].lower().startswith("# hardware")
    options = resolve_cli_options(cli_args(["--config", str(recipe)]))
    assert options["inpainter"] == "stable-diffusion-v1-5/stable-diffusion-inpainting"
    assert options["classifier"] == "outputs/llava-1.5-7b-synartifact-lora"
    assert Path(options["output_dir"]).parts[0] == "outputs"


# ---- occlusion boxes for kinds named without one ------------------------------------------------------------------


def _iou(a, b):
    """Intersection over union of two normalized boxes, computed here (not with the code under test)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


class BrightSpotScorer:
    """A classifier stand-in that sees 'impractical_luminosity' where a bright spot is: its probability is the share
    of the spot's pixels still brighter than the background. Records how many images it was shown."""

    def __init__(self, box, kind="impractical_luminosity"):
        self.box, self.kind, self.seen = box, kind, 0

    def presence(self, images):
        self.seen += len(images)
        rows = []
        for image in images:
            a = np.asarray(image, dtype=np.float32)[..., 0]
            h, w = a.shape
            x0, y0, x1, y1 = (round(v * s) for v, s in zip(self.box, (w, h, w, h)))
            rows.append({self.kind: float((a[y0:y1, x0:x1] > 200).mean())})
        return rows


def _spot_image(box, size=(64, 64)):
    w, h = size
    a = np.full((h, w, 3), 90, dtype=np.uint8)
    x0, y0, x1, y1 = (round(v * s) for v, s in zip(box, (w, h, w, h)))
    a[y0:y1, x0:x1] = 250
    return Image.fromarray(a)


@pytest.mark.parametrize(
    "truth, size",
    [((0.5, 0.125, 0.8125, 0.4375), (64, 64)), ((0.05, 0.55, 0.3, 0.95), (80, 48)), ((0.3, 0.3, 0.7, 0.7), (64, 64))],
)
def test_occlusion_finds_the_place_the_classifier_reads(truth, size):
    from synartifact.repair.locate import locate_artifacts

    scorer = BrightSpotScorer(truth)
    found = locate_artifacts(scorer, [_spot_image(truth, size)], [["impractical_luminosity"]])
    box = found[0]["impractical_luminosity"]
    assert box is not None
    # the box holds the whole spot (what a repair must paint) and not much more: square windows on a grid
    w = max(0.0, min(box[2], truth[2]) - max(box[0], truth[0]))
    h = max(0.0, min(box[3], truth[3]) - max(box[1], truth[1]))
    spot = (truth[2] - truth[0]) * (truth[3] - truth[1])
    assert w * h >= 0.95 * spot, (box, truth)
    assert (box[2] - box[0]) * (box[3] - box[1]) <= 2.6 * spot and _iou(box, truth) >= 0.35, (box, truth)


def test_occlusion_leaves_a_kind_no_window_lowers_unlocated():
    from synartifact.repair.locate import locate_artifacts

    class Flat:
        def presence(self, images):
            return [{"localized_blur": 0.9} for _ in images]

    images = _images(2)
    found = locate_artifacts(Flat(), images, [["localized_blur"], []])
    assert found == [{"localized_blur": None}, {}]
    with pytest.raises(ValueError, match="one list per image"):
        locate_artifacts(Flat(), images, [["localized_blur"]])


def test_occlusion_windows_tile_the_image_smallest_first():
    from synartifact.repair.locate import windows

    grid = windows((0.5, 0.25), stride=0.25)
    # by hand: side 0.25 starts at 0, .25, .5, .75 (16 windows); side 0.5 at 0, .25, .5 (9 windows)
    assert len(grid) == 16 + 9
    assert grid[0] == (0.0, 0.0, 0.25, 0.25) and grid[15] == (0.75, 0.75, 1.0, 1.0)
    assert grid[16] == (0.0, 0.0, 0.5, 0.5) and grid[-1] == (0.5, 0.5, 1.0, 1.0)
    # a stride that does not divide the rest still reaches the far edge
    assert max(b[2] for b in windows((0.4,), stride=0.25)) == 1.0
    with pytest.raises(ValueError, match="window sizes"):
        windows((0.0,))


def test_the_repairer_paints_where_occlusion_points_for_unboxed_kinds(inpainter):
    from synartifact.repair.locate import locate_artifacts

    truth = (0.5, 0.125, 0.8125, 0.4375)
    image = _spot_image(truth, (48, 40))
    unboxed = [Artifact("impractical_luminosity")]
    expected = locate_artifacts(BrightSpotScorer(truth), [image], [["impractical_luminosity"]])[0]
    scorer = BrightSpotScorer(truth)
    repairer = _repairer(inpainter, unboxed, [0.5, 0.9], unboxed="locate", locator=scorer)
    result = repairer.repair([image], rounds=1)[0]
    assert result.changed and result.unboxed
    # the report before repair shows the box it painted, marked as occlusion's (the grid and the Space draw it)
    assert result.report_before.artifacts[0].bbox == expected["impractical_luminosity"]
    assert result.report_before.located == (0,)
    assert np.array_equal(
        np.asarray(result.mask) > 0, artifact_mask(image.size, [expected["impractical_luminosity"]])[0]
    )
    # a round whose repair was not kept leaves the image as it was: the next round paints the same box, unasked
    looked = scorer.seen
    again = _repairer(inpainter, unboxed, [0.5, 0.4, 0.3], unboxed="locate", locator=scorer)
    result = again.repair([image], rounds=2)[0]
    assert not result.changed and [r.accepted for r in result.rounds] == [False, False]
    assert [r.boxes for r in result.rounds] == [[expected["impractical_luminosity"]]] * 2
    assert scorer.seen - looked == 1 + 110  # one look: the image and each window of the grid, once
    # a kept repair changed the image: the next round looks again, at the new image
    looked = scorer.seen
    kept = _repairer(inpainter, unboxed, [0.5, 0.9, 0.95], unboxed="locate", locator=scorer)
    result = kept.repair([image], rounds=2)[0]
    assert [r.accepted for r in result.rounds] == [True, True] and scorer.seen - looked == 2 * (1 + 110)
    # hints, when given, win: the locator is not asked
    scorer.seen = 0
    hinted = _repairer(inpainter, unboxed, [0.5, 0.9], unboxed="locate", locator=scorer)
    result = hinted.repair([image], rounds=1, hints=[[BOX]])[0]
    assert scorer.seen == 0 and np.array_equal(np.asarray(result.mask) > 0, artifact_mask(image.size, [BOX])[0])
    assert result.report_before.artifacts[0].bbox is None and result.report_before.located == ()
    # a box the classifier draws itself is used as it is
    boxed = _repairer(
        inpainter, [Artifact("impractical_luminosity", BOX)], [0.5, 0.9], unboxed="locate", locator=scorer
    )
    result = boxed.repair([image], rounds=1)[0]
    assert scorer.seen == 0 and np.array_equal(np.asarray(result.mask) > 0, artifact_mask(image.size, [BOX])[0])
