"""Reward pair accuracy: artifact injection into held-out photos, pair building, scoring and the CLI."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from synartifact.data import load_artifact_dataset
from synartifact.data.synth import SYNTH_KINDS, inject_artifact, synthesize_example
from synartifact.reward_check import RewardPair, build_reward_pairs, pair_accuracy, parse_kinds
from synartifact.taxonomy import SLUGS


def _photo(index: int, width: int = 64, height: int = 48) -> Image.Image:
    """A clean photo crop that is not square (the injection must not assume a square image)."""
    row = synthesize_example(index, seed=3, size=max(width, height), clean_fraction=1.0)
    assert row["artifacts"] == []
    return row["image"].crop((0, 0, width, height))


def _outside(box, shape) -> np.ndarray:
    mask = np.ones(shape[:2], bool)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = False
    return mask


@pytest.mark.parametrize("kind", SYNTH_KINDS)
def test_inject_artifact_changes_pixels_only_inside_its_box(kind):
    made = 0
    for index in range(4):
        clean = _photo(index)
        before = np.array(clean)
        result = inject_artifact(clean, kind, np.random.default_rng(index))
        assert np.array_equal(np.asarray(clean), before), "the input image is left as it was"
        if result is None:  # a flat photo has nothing to omit or duplicate
            continue
        injected, box, caption = result
        after = np.asarray(injected)
        assert injected.size == clean.size and injected.mode == "RGB" and caption
        assert 0 <= box[0] < box[2] <= clean.width and 0 <= box[1] < box[3] <= clean.height
        outside = _outside(box, before.shape)
        assert np.array_equal(before[outside], after[outside]), f"{kind}: pixels changed outside the box"
        assert np.any(before[~outside] != after[~outside]), f"{kind}: nothing changed inside the box"
        made += 1
    assert made >= 2


def test_inject_artifact_with_a_given_box_and_bad_input():
    clean = _photo(1)
    injected, box, _ = inject_artifact(clean, "chromatic_irregularity", 0, box=(4, 6, 30, 20))
    assert box == (4, 6, 30, 20)
    changed = np.any(np.asarray(clean) != np.asarray(injected), axis=-1)
    assert changed[6:20, 4:30].mean() > 0.5 and not changed[_outside(box, changed.shape)].any()
    a, b = inject_artifact(clean, "localized_blur", 5), inject_artifact(clean, "localized_blur", 5)
    assert a[1] == b[1] and np.array_equal(np.asarray(a[0]), np.asarray(b[0]))  # the seed decides everything
    flat = Image.new("RGB", (40, 40), (120, 120, 120))
    assert inject_artifact(flat, "omitted_components", 0) is None
    with pytest.raises(ValueError, match="synthesizable kinds"):
        inject_artifact(clean, "awkward_facial_expression", 0)
    with pytest.raises(ValueError, match="not inside"):
        inject_artifact(clean, "localized_blur", 0, box=(0, 0, 65, 10))


def test_parse_kinds():
    assert parse_kinds(None) == parse_kinds("synth") == SYNTH_KINDS
    assert parse_kinds("localized_blur, Chromatic Irregularity,localized_blur") == (
        "localized_blur",
        "chromatic_irregularity",
    )
    with pytest.raises(ValueError, match="cannot be injected"):
        parse_kinds("awkward_facial_expression")


def test_pairs_are_the_same_image_with_one_artifact_per_kind():
    rows = [
        {"image": _photo(i), "image_id": f"clean-{i}", "artifacts": [], "other_artifacts_caption": ""}
        for i in range(3)
    ]
    rows.insert(
        1, {"image": _photo(7), "image_id": "dirty", "artifacts": [{"label": 7}], "other_artifacts_caption": ""}
    )
    rows.append({"image": _photo(8), "image_id": "noted", "artifacts": [], "other_artifacts_caption": "odd hands"})
    kinds = ("localized_blur", "chromatic_irregularity", "omitted_components")
    pairs, info = build_reward_pairs(rows, kinds=kinds, seed=0)
    assert info["n_rows"] == 5 and info["n_clean_images"] == 3
    assert {p.image_id for p in pairs} == {"clean-0", "clean-1", "clean-2"}
    for kind in kinds:
        assert info["per_kind_n"][kind] == sum(p.kind == kind for p in pairs)
        assert info["per_kind_n"][kind] + info["per_kind_skipped"][kind] == 3
    assert info["per_kind_n"]["localized_blur"] == info["per_kind_n"]["chromatic_irregularity"] == 3
    for pair in pairs:
        clean, injected = np.asarray(pair.clean), np.asarray(pair.injected)
        assert pair.clean.size == pair.injected.size == (64, 48)
        outside = _outside(pair.box, clean.shape)
        assert np.array_equal(clean[outside], injected[outside]) and not np.array_equal(clean, injected)
    again, _ = build_reward_pairs(rows, kinds=kinds, seed=0)
    assert [np.asarray(p.injected).tobytes() for p in again] == [np.asarray(p.injected).tobytes() for p in pairs]
    other, _ = build_reward_pairs(rows, kinds=kinds, seed=1)
    assert [p.box for p in other] != [p.box for p in pairs]
    limited, info = build_reward_pairs(rows, kinds=kinds[:1], max_images=2)
    assert info["n_clean_images"] == 2 and len(limited) == 2


class _StubReward:
    """Scores images by a table keyed on the image object; records how many images it was asked about."""

    def __init__(self, table, kinds=None):
        self.table, self.kinds, self.calls = table, kinds, []

    def score_images(self, images):
        self.calls.append(len(images))
        return [self.table[id(image)] for image in images]


class _StubDetails(_StubReward):
    def details(self, images):
        return [
            {"reward": v, "kinds": self.kinds.get(id(im), []), "unparsable": False}
            for im, v in zip(images, self.score_images(images))
        ]


def test_pair_accuracy_counts_ties_half():
    clean = Image.new("RGB", (8, 8))
    injected = [Image.new("RGB", (8, 8), (i, 0, 0)) for i in range(1, 5)]
    pairs = [
        RewardPair("a", "localized_blur", clean, injected[0], (0, 0, 4, 4), ""),  # clean higher: 1
        RewardPair("a", "localized_blur", clean, injected[1], (0, 0, 4, 4), ""),  # tie: 0.5
        RewardPair("a", "abnormal_texture", clean, injected[2], (0, 0, 4, 4), ""),  # injected higher: 0
        RewardPair("a", "abnormal_texture", clean, injected[3], (0, 0, 4, 4), ""),  # tie: 0.5
    ]
    table = {id(clean): 0.8, id(injected[0]): 0.5, id(injected[1]): 0.8, id(injected[2]): 0.9, id(injected[3]): 0.8}
    reward = _StubReward(table)
    metrics = pair_accuracy(reward, pairs)
    assert metrics["pair_accuracy"] == pytest.approx(2.0 / 4)
    assert metrics["per_kind"] == {"localized_blur": pytest.approx(0.75), "abnormal_texture": pytest.approx(0.25)}
    assert metrics["n_pairs"] == 4 and metrics["ties"] == 2
    assert metrics["per_kind_n"] == {"localized_blur": 2, "abnormal_texture": 2}
    assert metrics["per_kind_named"] is None
    assert sum(reward.calls) == 5, "the shared clean image is scored once"

    detailed = _StubDetails(table, kinds={id(injected[0]): ["localized_blur"], id(clean): ["abnormal_texture"]})
    metrics = pair_accuracy(detailed, pairs)
    assert metrics["per_kind_named"] == {"localized_blur": 0.5, "abnormal_texture": 0.0}
    assert metrics["clean_flagged_rate"] == 1.0
    with pytest.raises(ValueError, match="No pairs"):
        pair_accuracy(reward, [])


def test_reward_check_cli_on_the_tiny_classifier(tiny_vlm, tiny_dataset, tmp_path, capsys):
    from synartifact.cli import main

    out = tmp_path / "check"
    base = ["reward-check", "--reward", str(tiny_vlm), "--dataset", str(tiny_dataset)]
    kinds = ["--kinds", "localized_blur,chromatic_irregularity"]
    # the tiny dataset's test split holds no clean image: say so rather than score nothing
    assert main([*base, "--out", str(out), *kinds]) == 2
    assert "no clean image" in capsys.readouterr().err and not out.exists()
    assert main([*base, "--out", str(out), "--kinds", "awkward_facial_expression", "--split", "train"]) == 2

    assert main([*base, "--out", str(out), "--split", "train", *kinds, "--reward-constrained"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"pair_accuracy", "per_kind", "n_pairs"} <= set(metrics)
    assert set(metrics["per_kind"]) == {"localized_blur", "chromatic_irregularity"}
    n_clean = metrics["n_clean_images"]
    assert n_clean >= 1 and metrics["n_pairs"] == 2 * n_clean == sum(metrics["per_kind_n"].values())
    assert 0.0 <= metrics["pair_accuracy"] <= 1.0 and all(0.0 <= v <= 1.0 for v in metrics["per_kind"].values())
    assert metrics["reward"]["mode"] == "score" and metrics["reward"]["constrained"] is True
    assert metrics["reward"]["soft"] is False
    assert any("clean images" in w for w in metrics["warnings"]), "fewer than 20 clean images: a warning"
    for name in ("per_kind.png", "examples.png", "report.md"):
        assert (out / name).is_file(), name
    assert "Pair accuracy" in (out / "report.md").read_text()
    assert main([*base, "--out", str(out), "--split", "train", *kinds]) == 2  # exists, no --overwrite

    # a classifier fine-tuned on this dataset's train split: those images are not held out, and its kinds are known
    trained = tmp_path / "classifier"
    shutil.copytree(tiny_vlm, trained)
    (trained / "sft_run.json").write_text(json.dumps({"dataset": str(tiny_dataset), "train_split": "train"}))
    again = tmp_path / "check-trained"
    args = ["reward-check", "--reward", str(trained), "--dataset", str(tiny_dataset), "--out", str(again)]
    assert main([*args, "--split", "train", *kinds, "--max-images", "1", "--reward-mode", "generate"]) == 0
    metrics = json.loads((again / "metrics.json").read_text())
    assert metrics["n_pairs"] == 2 and metrics["reward"]["mode"] == "generate"
    assert any("not held out" in w for w in metrics["warnings"])
    train = load_artifact_dataset(str(tiny_dataset), split="train")
    assert metrics["kinds_trained"] == sorted(
        {SLUGS[a["label"]] for arts in train["artifacts"] for a in arts}, key=SLUGS.index
    )
