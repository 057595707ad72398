import pytest

from synartifact.data.schema import (
    DatasetValidationError,
    Problem,
    get_features,
    normalize_bbox,
    resolve_label,
    validate_row,
)
from synartifact.data.splits import stratified_split
from synartifact.taxonomy import SLUGS


def test_features_match_contract():
    f = get_features()
    assert list(f) == [
        "image",
        "image_id",
        "prompt",
        "generator",
        "source",
        "width",
        "height",
        "other_artifacts_caption",
        "artifacts",
    ]
    label = f["artifacts"].feature["label"]
    assert label.names == list(SLUGS) and label.str2int("localized_blur") == 7


def test_normalize_bbox_pixels_corners_any_order():
    assert normalize_bbox([100, 50, 20, 10], 200, 100) == pytest.approx([0.1, 0.1, 0.5, 0.5])
    assert normalize_bbox([20, 10, 80, 40], 200, 100, fmt="xywh") == pytest.approx([0.1, 0.1, 0.5, 0.5])
    assert normalize_bbox([0.5, 0.5, 0.1, 0.1], 200, 100, units="normalized") == pytest.approx([0.1, 0.1, 0.5, 0.5])
    assert normalize_bbox([10, 10, 50, 50], 200, 100, fmt="xywh", units="percent") == pytest.approx(
        [0.1, 0.1, 0.6, 0.6]
    )
    # a rounding overshoot of one pixel is clipped
    assert normalize_bbox([0, 0, 201, 100], 200, 100)[2] == 1.0


@pytest.mark.parametrize(
    "box, match",
    [
        ([10, 10, 10, 50], "degenerate"),
        ([10, 10, 400, 50], "outside"),
        ([-30, 0, 20, 20], "outside"),
        ([1, 2, 3], "4 numbers"),
        (["a", 1, 2, 3], "finite numbers"),
    ],
)
def test_normalize_bbox_rejects(box, match):
    with pytest.raises(ValueError, match=match):
        normalize_bbox(box, 200, 100)


def test_resolve_label():
    assert resolve_label("2") == 2 and resolve_label(2.0) == 2 and resolve_label("Omitted Components") == 4
    with pytest.raises(ValueError, match="Valid kinds"):
        resolve_label("sparkles")


def test_validate_row_and_error_lists_all():
    row = {
        "image": None,
        "image_id": "a",
        "prompt": "",
        "generator": "",
        "source": "made-up",
        "width": 0,
        "height": 5,
        "other_artifacts_caption": "",
        "artifacts": [{"label": 40, "bbox": [0.5, 0, 0.2, 1], "caption": "x"}],
    }
    problems = validate_row(row)
    assert len(problems) == 4
    err = DatasetValidationError([Problem("f.json", "3", "bbox", "bad"), Problem("f.json", "4", "label", "worse")])
    assert "f.json, record 3, bbox: bad" in str(err) and "record 4" in str(err) and "2 problem(s)" in str(err)


def test_stratified_split_deterministic_and_covers_kinds():
    labels = [[i % 5] for i in range(40)] + [[7], [7], [9]] + [[] for _ in range(10)]
    a = stratified_split(labels, test_size=0.25, seed=3)
    assert a == stratified_split(labels, test_size=0.25, seed=3)
    assert a != stratified_split(labels, test_size=0.25, seed=4)
    train, test = a
    assert sorted(train + test) == list(range(len(labels))) and abs(len(test) - 13) <= 2
    for kind in (0, 1, 2, 3, 4, 7):
        assert any(kind in labels[i] for i in train) and any(kind in labels[i] for i in test)
    ids = [f"id{i}" for i in range(len(labels))]
    train, test = stratified_split(labels, ids=ids, test_ids={"id0", "id5"})
    assert test == [0, 5] and len(train) == len(labels) - 2
