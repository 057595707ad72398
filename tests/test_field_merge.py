"""Issue 22, second part: kind-less artifacts, masks, image-level scores, merging, the peers' protocols, and a merged
dataset through SFT and evaluation.

Fixtures are the field formats' own (written by tests/test_field_datasets.py's helpers, with their quirks); every
expected number is computed by hand in the comments, never with the code under test.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_field_datasets import _artiagent, _had, _pal4vst, _richhf, _synthscars

import synartifact.sft as sft
from synartifact.classifier.metrics import compute_metrics, mask_metrics, protocol_metrics
from synartifact.cli import main
from synartifact.data import build_dataset, load_artifact_dataset
from synartifact.data.masks import check_rle, decode_rle, encode_rle
from synartifact.data.schema import validate_row
from synartifact.prompts import has_kindless, render_answer
from synartifact.report import Artifact, ArtifactReport

REPO = Path(__file__).resolve().parents[1]
BLUR, TEXTURE = "localized_blur", "abnormal_texture"


def _noise(path: Path, size, seed):
    """Overwrite an image with seeded noise of the same size and format (the fixtures' flat colours repeat)."""
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def _build(fmt, ann, imgs, out, *flags):
    argv = ["dataset", "build", "--format", fmt, "--annotations", str(ann), "--images", str(imgs), "--out", str(out)]
    assert main(argv + list(flags)) == 0
    return out


def _rows(folder):
    return {r["image_id"]: r for split in load_artifact_dataset(folder).values() for r in split}


# --------------------------------------------------------------------------- run-length encoding
def test_rle_by_hand():
    mask = np.array([[0, 1], [1, 1], [0, 0]], dtype=bool)  # column-major: 0 1 0 | 1 1 0
    assert encode_rle(mask) == {"size": [3, 2], "counts": [1, 1, 1, 2, 1]}
    assert encode_rle(np.array([[1, 0], [0, 0]])) == {"size": [2, 2], "counts": [0, 1, 3]}  # starts with a 1
    assert (decode_rle({"size": [3, 2], "counts": [1, 1, 1, 2, 1]}) == mask).all()
    assert check_rle({"size": [3, 2], "counts": [1, 1, 1]}) == (
        "mask.counts add up to 3 pixels, not height x width = 6"
    )
    assert check_rle({"size": [0, 2], "counts": []}).startswith("mask.size must be [height, width]")


def test_validate_row_accepts_kindless_and_masks_rejects_bad_ones():
    row = {
        "image": None, "image_id": "a", "prompt": "", "generator": "", "source": "annotated", "width": 2,
        "height": 2, "other_artifacts_caption": "",
        "artifacts": [{"label": -1, "bbox": [0, 0, 1, 1], "caption": "", "mask": {"size": [2, 2], "counts": [4]}}],
    }  # fmt: skip
    assert validate_row(row) == []
    row["artifacts"][0]["label"] = -2
    row["artifacts"][0]["mask"] = {"size": [2, 2], "counts": [3]}
    assert validate_row(row) == [
        "artifacts[0].label must be an index 0-12 or -1 (no kind), got -2",
        "artifacts[0].mask.counts add up to 3 pixels, not height x width = 4",
    ]


# --------------------------------------------------------------------------- kind-less artifacts and masks, built
def test_synthscars_keeps_kindless_artifacts_and_polygon_masks(tmp_path):
    root = _synthscars(tmp_path / "ss")
    rows = _rows(_build("synthscars", root, root, tmp_path / "out"))
    a = rows["train/images/a"]
    assert [x["label"] for x in a["artifacts"]] == [-1, -1, -1, -1]
    # ref 0: the rectangle (10,20)-(30,50) on 100 x 80, outline included: columns 10..30, rows 20..50 (31 rows).
    # Column-major: 10 * 80 + 20 zeros, then per column 31 ones and 80 - 31 zeros, 21 columns, then the rest:
    # the last one ends at 30 * 80 + 50 = 2450, so 8000 - 2451 zeros follow.
    assert a["artifacts"][0]["mask"] == {"size": [80, 100], "counts": [820] + [31, 49] * 20 + [31, 5549]}
    # ref 3: the triangle (0,0) (5,0) (5,5): column x holds rows 0..x (x = 0..5), 21 pixels
    grass = decode_rle(a["artifacts"][3]["mask"])
    assert grass.sum() == 1 + 2 + 3 + 4 + 5 + 6 and grass[5, 5] and grass[0, 5] and not grass[1, 0]
    assert all(validate_row(r) == [] for r in rows.values())
    # --no-masks: no mask feature at all (the old schema)
    ds = load_artifact_dataset(_build("synthscars", root, root, tmp_path / "nomask", "--no-masks"))
    assert set(ds["train"].features["artifacts"].feature) == {"label", "bbox", "caption"}


def test_a_dataset_without_masks_still_loads_and_validates(tmp_path):
    ann, imgs = _had(tmp_path)
    rows = _rows(_build("had", ann, imgs, tmp_path / "out"))
    assert all(validate_row(r) == [] for r in rows.values())
    assert all(set(a) == {"label", "bbox", "caption"} for r in rows.values() for a in r["artifacts"])


def test_pal4vst_component_masks_and_images_without_a_mask(tmp_path):
    root = _pal4vst(tmp_path)
    Image.new("RGB", (40, 30)).save(root / "images" / "train" / "unlabelled.jpg")  # no labels/train/unlabelled.png
    ds, _, report = build_dataset("pal4vst", root / "labels", root / "images", progress=False)
    p1 = next(r for r in ds["train"] if r["image_id"] == "train/p1")
    assert [a["label"] for a in p1["artifacts"]] == [-1, -1]
    first, second = (decode_rle(a["mask"]) for a in p1["artifacts"])
    want = np.zeros((30, 40), bool)
    want[2:6, 3:8] = True  # component A of the fixture's mask
    assert (first == want).all()
    want = np.zeros((30, 40), bool)
    want[10:15, 20:24] = True
    want[15, 24] = True  # component B and its diagonal neighbour
    assert (second == want).all()
    assert report.dropped == {
        "pal4vst mask regions under --min-region-pixels": 1,
        "pal4vst images without a label mask (not imported: no mask does not mean clean)": 1,
    }


def test_richhf_masks_at_the_heatmap_size_and_score_columns(tmp_path):
    ann, imgs = _richhf(tmp_path, corrupt=False)
    ds, _, _ = build_dataset("richhf", ann, imgs, progress=False, skip_invalid=True)
    rows = {r["image_id"]: r for split in ds.values() for r in split}
    (art,) = rows["pick/rh1"]["artifacts"]
    want = np.zeros((512, 512), bool)
    want[0:64, 0:128] = True  # the heatmap's block over 128, on the 512 x 512 heatmap (the image is 1024 x 768)
    assert art["label"] == -1 and (decode_rle(art["mask"]) == want).all()
    assert ds["train"].features["artifact_score"].dtype == "float32"
    assert (rows["pick/rh1"]["artifact_score"], rows["rh2"]["artifact_score"]) == (0.75, 1.0)
    assert rows["rh2"]["aesthetics_score"] is None  # rh2's record has no aesthetics_score


# --------------------------------------------------------------------------- merging
def _two_inputs(tmp_path):
    """An ArtiAgent build (all train) and a SynthScars build whose test image d has ArtiAgent's mix2 pixels."""
    ann, imgs = _artiagent(tmp_path / "aa")
    for i, (name, size) in enumerate([("px.png", (400, 200)), ("norm.jpg", (300, 300)), ("mix1.png", (100, 100))]):
        _noise(imgs / name, size, i)
    _noise(imgs / "mix2.png", (100, 100), 3)
    root = _synthscars(tmp_path / "ss")
    for i, name in enumerate(["a.png", "b.jpg", "c.png"]):
        _noise(root / "train" / "images" / name, (100, 80), 10 + i)
    (root / "test" / "images" / "d.png").write_bytes((imgs / "mix2.png").read_bytes())  # the same image
    aa = _build("artiagent", ann, imgs, tmp_path / "aa-ds", "--test-size", "0")
    ss = _build("synthscars", root, root, tmp_path / "ss-ds")
    return aa, ss


def test_merge_origin_dedup_splits_card_and_report(tmp_path, capsys):
    aa, ss = _two_inputs(tmp_path)
    out = tmp_path / "merged"
    assert main(["dataset", "merge", str(aa), str(ss), "--out", str(out)]) == 0
    ds = load_artifact_dataset(out)
    # 4 + 4 rows read; synthscars' d has mix2's pixels: dropped, and mix2 (train in artiagent) moves to test
    assert sorted(ds["train"]["image_id"]) == [
        "artiagent/mix1", "artiagent/norm", "artiagent/px",
        "synthscars/train/images/a", "synthscars/train/images/b", "synthscars/train/images/c",
    ]  # fmt: skip
    assert ds["test"]["image_id"] == ["artiagent/mix2"]
    assert ds["test"][0]["origin"] == "artiagent" and ds["test"][0]["source"] == "annotated"
    assert [a["caption"] for a in ds["test"][0]["artifacts"]] == ["no handle"]  # the first input's annotation
    rows = {r["image_id"]: r for split in ds.values() for r in split}
    assert {r["origin"] for r in rows.values()} == {"artiagent", "synthscars"}
    assert rows["artiagent/px"]["artifacts"][0]["mask"] is None  # a box source merged with a mask source
    assert rows["synthscars/train/images/a"]["artifacts"][0]["mask"]["size"] == [80, 100]
    assert all(validate_row(r) == [] for r in rows.values())
    report = json.loads((out / "merge_report.json").read_text())
    assert (report["rows_read"], report["rows_kept"], report["duplicates"], report["moved_to_test"]) == (8, 7, 1, 1)
    assert report["duplicate_rows"] == [
        {
            "dropped": {"image_id": "synthscars/test/images/d", "origin": "synthscars", "split": "test"},
            "kept": {"image_id": "artiagent/mix2", "origin": "artiagent", "split": "train"},
        }
    ]
    card = (out / "README.md").read_text()
    # artiagent train: mix1 (1), norm (2), px (1) = 4 artifacts; test: mix2 (1)
    assert "| artiagent | train | 3 | 0 | 4 | 0 |" in card and "| artiagent | test | 1 | 0 | 1 | 0 |" in card
    # synthscars train: a (4 kind-less), b (1), c (clean)
    assert "| synthscars | train | 3 | 1 | 5 | 4 |" in card
    assert "8 rows read,\n1 duplicate image(s) dropped" in card
    assert not list(tmp_path.glob("merged.tmp-*"))
    assert "1 duplicate image(s) dropped" in capsys.readouterr().out


def test_merge_bad_inputs_are_clear_errors(tmp_path, capsys):
    aa, ss = _two_inputs(tmp_path)
    (tmp_path / "empty").mkdir()
    assert main(["dataset", "merge", str(aa), str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"merge input '{tmp_path / 'empty'}'" in err and "has no data/ folder" in err
    assert main(["dataset", "merge", f"x={aa}", f"x={ss}", "--out", str(tmp_path / "o")]) == 2
    assert "both be named 'x'" in capsys.readouterr().err
    assert main(["dataset", "merge", str(aa), str(ss), "--out", str(aa / "sub")]) == 2
    assert "must lie outside the input" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- metrics with kind-less artifacts
def test_kindless_counts_for_presence_and_iou_not_for_kinds():
    annotated = [[Artifact(None, (0.0, 0.0, 0.5, 0.5))], [Artifact(BLUR, (0.5, 0.5, 1.0, 1.0))], []]
    predicted = [
        ArtifactReport([Artifact(TEXTURE, (0.0, 0.0, 0.5, 0.25))]),
        ArtifactReport([Artifact(BLUR, (0.5, 0.5, 1.0, 1.0))]),
        ArtifactReport([]),
    ]
    m = compute_metrics(annotated, predicted, mode="full", css=False)
    assert (m["n_images"], m["n_images_kinds"], m["n_images_kindless"]) == (3, 2, 1)
    assert m["accuracy"] == 1.0  # images 1 and 2 only: {blur} = {blur}, {} = {}
    assert m["per_kind"][TEXTURE]["predicted"] == 0  # image 0's texture is not a false positive
    assert (m["binary"]["tp"], m["binary"]["fn"], m["binary"]["tn"]) == (2, 0, 1)
    # image 0: the kind-less box and the texture box pair by IoU alone: 0.125 / 0.25; image 1: 1
    assert m["localization"]["iou"]["all"] == pytest.approx((0.5 + 1.0) / 2)


def test_mask_metrics_by_hand():
    refs = [
        {"height": 10, "width": 10, "regions": [((0, 0, 0.5, 0.5), None)], "other": ""},  # rows/cols 0..4: 25 px
        {"height": 4, "width": 4, "regions": [((0, 0, 0.25, 0.5), {"size": [4, 4], "counts": [0, 2, 14]})], "other": ""},
        {"height": 2, "width": 2, "regions": [], "other": ""},  # clean
        {"height": 8, "width": 8, "regions": [((0, 0, 1, 1), {"size": [4, 4], "counts": [0, 2, 2, 2, 10]})], "other": ""},
    ]  # fmt: skip
    predicted = [
        [Artifact(BLUR, (0.2, 0.2, 0.7, 0.7))],  # rows/cols 2..6: 25 px, 3 x 3 = 9 shared, union 41
        [],  # misses the 2 pixels
        [Artifact(BLUR, (0.0, 0.0, 1.0, 1.0))],  # 4 false positive pixels on a clean image
        [Artifact(BLUR, (0.0, 0.0, 0.5, 0.5))],  # the 4 x 4 mask's top-left 2 x 2, doubled on 8 x 8: 16 px, IoU 1
    ]
    m = mask_metrics(refs, predicted)
    assert m["miou"] == pytest.approx((9 / 41 + 0 + 1) / 3)
    assert m["f1"] == pytest.approx((18 / 50 + 0 + 1) / 3)
    assert m["pixel_iou"] == pytest.approx((9 + 16) / (41 + 2 + 4 + 16))
    assert m["pixel_f1"] == pytest.approx(2 * (9 + 16) / ((25 + 25) + 2 + 4 + (16 + 16)))
    assert (m["n_images"], m["n_images_with_regions"]) == (4, 3)


def test_loki_judgement_and_labels_mode_has_no_localization():
    refs = [
        {"height": 4, "width": 4, "regions": [((0, 0, 1, 1), None)], "other": ""},  # synthetic, judged so
        {"height": 4, "width": 4, "regions": [], "other": "odd colours"},  # synthetic (global problem), missed
        {"height": 4, "width": 4, "regions": [], "other": ""},  # real, judged synthetic
        {"height": 4, "width": 4, "regions": [], "other": ""},  # real, judged real
    ]
    reports = [
        ArtifactReport([Artifact(BLUR)]),
        ArtifactReport([]),
        ArtifactReport([Artifact(BLUR)]),
        ArtifactReport(),
    ]
    out = protocol_metrics("loki", refs, reports, {"mode": "labels"})
    assert out["judgement"] == {
        "accuracy": 0.5, "accuracy_synthetic": 0.5, "accuracy_real": 0.5, "n_synthetic": 2, "n_real": 2,
    }  # fmt: skip
    assert out["region"] is None and "labels mode" in out["reason"]
    assert protocol_metrics("synthscars", refs, reports, {"mode": "labels"})["mask"] is None
    with pytest.raises(ValueError, match="valid protocols are synartifact, synthscars, loki"):
        protocol_metrics("legion", refs, reports, {})


# --------------------------------------------------------------------------- training and the reward check
def test_sft_answers_never_name_a_kindless_artifact():
    assert has_kindless([{"label": 3}, {"label": -1}]) and not has_kindless([{"label": 3}])
    assert has_kindless({"label": [-1], "bbox": [[0, 0, 1, 1]]})  # the dict of lists a Sequence feature gives
    with pytest.raises(ValueError, match="an artifact has no kind"):
        render_answer([{"label": -1, "bbox": [0, 0, 1, 1], "caption": ""}])


def test_reward_check_kinds_ignore_kindless():
    from datasets import Dataset

    from synartifact.data.schema import get_features
    from synartifact.reward_check import _kinds_in

    row = {
        "image": Image.new("RGB", (4, 4)), "image_id": "a", "prompt": "", "generator": "", "source": "annotated",
        "width": 4, "height": 4, "other_artifacts_caption": "",
        "artifacts": [{"label": -1, "bbox": [0, 0, 1, 1], "caption": ""}, {"label": 7, "bbox": [0, 0, 1, 1], "caption": ""}],
    }  # fmt: skip
    ds = Dataset.from_list([row], features=get_features())
    assert _kinds_in({"train": ds}, "train") == [BLUR]  # index 7; -1 would have read as the last kind


# --------------------------------------------------------------------------- done when: merged -> sft -> evaluate
def test_merged_dataset_trains_and_evaluates_with_the_synthscars_protocol(tmp_path, tiny_vlm_small):
    aa, ss = _two_inputs(tmp_path)
    merged = tmp_path / "merged"
    assert main(["dataset", "merge", str(aa), str(ss), "--out", str(merged)]) == 0
    out = tmp_path / "clf"
    argv = [
        "--config", str(REPO / "recipes/tiny/sft/config_cpu.yaml"),
        "--dataset_name", str(merged), "--model_name_or_path", str(tiny_vlm_small), "--output_dir", str(out),
        "--answer_mode", "full", "--max_steps", "2", "--per_device_train_batch_size", "2", "--logging_steps", "1",
        "--warmup_ratio", "0", "--report_to", "none",
    ]  # fmt: skip
    trainer = sft.main(*sft.make_parser().parse_args_and_config(args=argv))
    assert trainer.state.global_step == 2
    run = json.loads((out / "sft_run.json").read_text())
    assert run["num_train_samples"] == 5  # 6 train rows; synthscars' a has kind-less artifacts: left out

    ev = tmp_path / "eval"
    argv = ["evaluate", "--model", str(out), "--baseline", str(tiny_vlm_small), "--dataset", str(merged)]
    argv += ["--split", "train", "--out", str(ev), "--protocol", "synthscars", "--max-new-tokens", "8", "--no-css"]
    assert main(argv) == 0
    saved = json.loads((ev / "metrics.json").read_text())
    assert saved["info"]["protocol"] == "synthscars"
    assert (saved["info"]["rows_of_origin"], saved["info"]["rows_in_split"]) == (3, 6)  # a, b, c of 6 train rows
    for role in ("model", "baseline"):
        proto = saved[role]["protocol"]
        assert proto["name"] == "synthscars" and proto["definition"].startswith("SynthScars as LEGION")
        assert proto["mask"]["n_images"] == 3 and proto["mask"]["n_images_with_regions"] == 2  # a and b
        assert 0.0 <= proto["mask"]["miou"] <= 1.0 and "rouge_l" in proto["explanation"]
        assert saved[role]["n_images"] == 3 and saved[role]["n_images_kindless"] == 1  # a
    report = (ev / "report.md").read_text()
    assert "## Protocol `synthscars`" in report and "Computed on the 3 rows of origin `synthscars` (of 6)" in report
    assert "| Mask mIoU (per image, images with artifact pixels) |" in report
    # the classifier's card says which protocol produced which number, with the model's own values
    card = (out / "README.md").read_text()
    miou = saved["model"]["protocol"]["mask"]["miou"]
    assert f"| mask.miou | {saved['baseline']['protocol']['mask']['miou']:.4f} | {miou:.4f} |" in card
    assert "| metric (protocol `synthscars`) |" in card and "second table is the `synthscars` protocol's" in card
    assert "name: mask.miou (synthscars protocol)" in card and "config: synthscars" in card
