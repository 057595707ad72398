"""Importers of the field's datasets (issue 22, first part): SynthScars, HAD, LOKI, ArtiAgent, RichHF-18K, PAL4VST.

Fixtures are written here in each source's own format, with its known quirks; every expected box is a literal,
computed by hand in the comments (pixels / image side), never with the importers' helpers.
"""

import io
import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synartifact.cli import main
from synartifact.data import DatasetValidationError, build_dataset
from synartifact.data.importers import read_records
from synartifact.data.importers.field import format_label_map, kind_from_caption, label_map_spec, mask_regions
from synartifact.data.tfrecord import (
    TFRecordError,
    crc32c,
    encode_example,
    frame_record,
    iter_records,
    masked_crc32c,
    parse_example,
)
from synartifact.taxonomy import get_kind

REAL_ARTIAGENT = Path(__file__).resolve().parents[2] / "shared" / "real-formats" / "artiagent"


def _img(path: Path, size, color=(120, 60, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def _rows(dsdict):
    return {r["image_id"]: r for split in dsdict.values() for r in split}


def _arts(row):
    """[(slug or None for a kind-less artifact, [x0, y0, x1, y1] rounded to 6 places, caption)] of a row."""
    return [
        (None if a["label"] == -1 else get_kind(a["label"]).slug, [round(v, 6) for v in a["bbox"]], a["caption"])
        for a in row["artifacts"]
    ]


def _kindless_note(source):
    return (
        f"{source} regions kept without a kind (label -1): --kinds-from-captions or --label-map {source}_region=KIND "
        "gives them one"
    )


# --------------------------------------------------------------------------- TFRecord + tf.train.Example, by hand
def _ld(number, payload: bytes) -> bytes:
    """A length-delimited protobuf field (payloads here are < 128 bytes: one-byte lengths)."""
    assert len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_crc32c_check_values():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value (RFC 3720)
    assert crc32c(b"") == 0
    assert masked_crc32c(b"") == 0xA282EAD8  # rotate(0) + the mask delta


def test_parse_example_from_hand_built_bytes():
    # Example{features{feature{key "a" value{bytes_list{value "xy"}}}}}
    literal = bytes.fromhex("0a0d" + "0a0b" + "0a0161" + "1206" + "0a04" + "0a027879")
    assert parse_example(literal) == {"a": [b"xy"]}
    packed_float = _ld(2, _ld(1, bytes.fromhex("0000c03f")))  # FloatList packed [1.5]
    unpacked_float = _ld(2, bytes.fromhex("0d0000c03f" + "0d00002040"))  # FloatList [1.5, 2.5], wire type 5
    # Int64List packed [1, 300, -1]: varints 01, ac02, ffffffffffffffffff01
    packed_int = _ld(3, _ld(1, bytes.fromhex("01" + "ac02" + "ff" * 9 + "01")))
    unpacked_int = _ld(3, bytes.fromhex("0805" + "0807"))  # Int64List [5, 7], wire type 0
    unknown = bytes.fromhex("2001")  # field 4 varint: skipped as protobuf does
    entries = b"".join(
        _ld(1, _ld(1, name) + _ld(2, feature))
        for name, feature in [
            (b"pf", packed_float),
            (b"uf", unpacked_float),
            (b"pi", packed_int),
            (b"ui", unpacked_int + unknown),
        ]
    )
    assert parse_example(_ld(1, entries)) == {"pf": [1.5], "uf": [1.5, 2.5], "pi": [1, 300, -1], "ui": [5, 7]}
    # what encode_example writes decodes back
    assert parse_example(encode_example({"f": "x.png", "s": 0.25, "n": [3, -2]})) == {
        "f": [b"x.png"],
        "s": [0.25],
        "n": [3, -2],
    }
    with pytest.raises(TFRecordError, match="truncated"):
        parse_example(literal[:-1])


def test_tfrecord_framing_and_corrupt_records(tmp_path):
    data = [b"first", b"second", b"third"]
    framed = [frame_record(d) for d in data]
    assert framed[0][:8] == struct.pack("<Q", 5) and framed[0][12:17] == b"first"
    assert struct.unpack("<I", framed[0][-4:])[0] == masked_crc32c(b"first")
    path = tmp_path / "a.tfrecord"
    bad = bytearray(framed[1])
    bad[14] ^= 0xFF  # one data byte of the second record
    path.write_bytes(framed[0] + bytes(bad) + framed[2])
    out = list(iter_records(path))
    assert out[0] == (0, b"first") and out[2] == (21 + 22, b"third")  # each record: 12 + data + 4 bytes
    assert isinstance(out[1][1], TFRecordError) and "CRC of its data" in str(out[1][1])
    # a bad length CRC ends the file (the lengths after it cannot be trusted); so does a truncated record
    bad_len = bytearray(framed[0])
    bad_len[8] ^= 0xFF
    path.write_bytes(bytes(bad_len) + framed[1])
    out = list(iter_records(path))
    assert len(out) == 1 and "CRC of its length" in str(out[0][1])
    path.write_bytes(framed[0] + framed[1][:-3])
    out = list(iter_records(path))
    assert out[0][1] == b"first" and "truncated" in str(out[1][1])


# --------------------------------------------------------------------------- label presets, keywords, masks
def test_presets_user_override_and_keywords():
    had = format_label_map("had", None)
    assert had["hand"] == get_kind("distorted_components").index
    assert had["human missing arm"] == get_kind("omitted_components").index
    assert had["human with extra leg"] == get_kind("duplicated_components").index
    over = format_label_map("had", "Hand=ignore")  # the user's map wins, also over a loose spelling
    assert over["Hand"] is None and "hand" not in over and over["face"] == get_kind("awkward_facial_expression").index
    assert label_map_spec("artiagent")["fusion"] == get_kind("abnormal_spatial_relationship").index
    assert format_label_map("jsonl", None) == {}
    assert kind_from_caption("Extra finger on the foreground arm") == "duplicated_components"
    assert kind_from_caption("Dog's face severely warped") == "awkward_facial_expression"
    assert kind_from_caption("Car is missing its front right wheel") == "omitted_components"
    assert kind_from_caption("rear legs unnaturally bent") == "distorted_components"
    assert kind_from_caption("a strange thing") is None
    assert kind_from_caption("the context") is None  # whole words only ("text")


def _pal_mask():
    mask = np.zeros((30, 40), dtype=np.uint8)
    mask[2:6, 3:8] = 1  # A: 4 x 5 = 20 px, x 3..7, y 2..5 -> box [3, 2, 8, 6]
    mask[10:15, 20:24] = 1  # B: 20 px, x 20..23, y 10..14
    mask[15, 24] = 1  # ... and one pixel touching B's corner diagonally: B is x 20..24, y 10..15 -> [20, 10, 25, 16]
    mask[28, 38:40] = 1  # C: a 2-pixel speck, under 16 pixels
    return mask


def test_mask_regions_scipy_and_bfs_agree(monkeypatch):
    expected = ([(3, 2, 8, 6), (20, 10, 25, 16)], 1)
    assert mask_regions(_pal_mask(), 16) == expected
    assert mask_regions(_pal_mask(), 1) == ([(3, 2, 8, 6), (20, 10, 25, 16), (38, 28, 40, 29)], 0)
    monkeypatch.setitem(sys.modules, "scipy", None)  # no scipy: the breadth-first search
    assert mask_regions(_pal_mask(), 16) == expected


# --------------------------------------------------------------------------- SynthScars
def _synthscars(root: Path):
    imgs = root / "train" / "images"
    _img(imgs / "a.png", (100, 80))
    _img(imgs / "a.jpg", (100, 80), (0, 0, 200))  # the same image as .png and .jpg
    _img(imgs / "b.jpg", (100, 80))
    _img(imgs / "c.png", (100, 80))  # annotated as c.jpg
    _img(root / "test" / "images" / "d.png", (50, 40))
    train = [
        {
            "0": {
                "caption": "a cat on a sofa",
                "img_file_name": "a.png",
                "refs": [
                    {
                        "sentence": "the left hand",
                        "explanation": "it has extra fingers",
                        "bbox": None,
                        "segmentation": [[10, 20, 30, 20, 30, 50, 10, 50]],
                    },
                    {  # a degenerate three-point polygon (collinear): its bounding box still has an area
                        "sentence": "the tail",
                        "explanation": "twisted",
                        "bbox": None,
                        "segmentation": [[40, 10, 50, 20, 60, 30]],
                    },
                    {  # a hair outside the 100 x 80 image: 100.5 and 80.4 (0.5 %)
                        "sentence": "the sky",
                        "explanation": "blurry patch",
                        "bbox": None,
                        "segmentation": [[90, 70, 100.5, 70, 100.5, 80.4, 90, 80.4]],
                    },
                    {"sentence": "the grass", "explanation": "", "bbox": None, "segmentation": [[0, 0, 5, 0, 5, 5]]},
                ],
            }
        },
        {
            "1": {
                "caption": "",
                "img_file_name": "/home/author/SynthScars/train/images/b.jpg",  # an absolute path
                "refs": [
                    {"sentence": "a bent chair", "category": "structure", "segmentation": [[0, 0, 50, 0, 50, 40]]}
                ],
            }
        },
        {"2": {"caption": "", "img_file_name": "c.jpg", "refs": []}},
    ]
    ann = root / "train" / "annotations" / "train.json"
    ann.parent.mkdir(parents=True)
    ann.write_text(json.dumps(train))
    test = root / "test" / "annotations" / "test.json"
    test.parent.mkdir(parents=True)
    test.write_text(json.dumps([{"3": {"caption": "x", "img_file_name": "d.png", "refs": []}}]))
    return root


def test_synthscars_every_record_and_box(tmp_path):
    root = _synthscars(tmp_path / "ss")
    ds, rejected, report = build_dataset("synthscars", root, root, progress=False)
    assert rejected == []
    rows = _rows(ds)
    assert sorted(rows) == ["test/images/d", "train/images/a", "train/images/b", "train/images/c"]
    assert ds["test"]["image_id"] == ["test/images/d"]
    a = rows["train/images/a"]
    assert a["prompt"] == "a cat on a sofa"
    assert _arts(a) == [  # no kind in the source: none invented, the region kept (label -1)
        (None, [0.1, 0.25, 0.3, 0.625], "the left hand: it has extra fingers"),  # see the kinds-from-captions build
        (None, [0.4, 0.125, 0.6, 0.375], "the tail: twisted"),
        (None, [0.9, 0.875, 1.0, 1.0], "the sky: blurry patch"),
        (None, [0.0, 0.0, 0.05, 0.0625], "the grass"),  # (0,0) (5,0) (5,5): [0, 0, 5/100, 5/80]
    ]
    assert a["other_artifacts_caption"] == ""
    # b: the absolute path resolved by its name inside --images; its ref has a category: the preset maps it
    # polygon (0,0) (50,0) (50,40) on 100 x 80 -> [0/100, 0/80, 50/100, 40/80]
    assert _arts(rows["train/images/b"]) == [("distorted_components", [0.0, 0.0, 0.5, 0.5], "a bent chair")]
    assert rows["train/images/c"]["artifacts"] == []
    assert report.notes[_kindless_note("synthscars")] == 4 and not report.dropped
    assert report.notes["synthscars absolute img_file_name resolved by its file name inside --images"] == 1
    assert report.notes["images found under another extension than the annotation's (.png / .jpg)"] == 1
    assert report.notes["synthscars refs with an empty explanation (caption: the sentence alone)"] == 2
    assert report.polygon_boxes == 5 and report.clipped_boxes == 1

    ds, _, report = build_dataset("synthscars", root, root, progress=False, kinds_from_captions=True)
    a = _rows(ds)["train/images/a"]
    assert _arts(a) == [
        # (10,20)-(30,50): [10/100, 20/80, 30/100, 50/80]; "extra" before "hand"
        ("duplicated_components", [0.1, 0.25, 0.3, 0.625], "the left hand: it has extra fingers"),
        # collinear (40,10) (50,20) (60,30): [40/100, 10/80, 60/100, 30/80]
        ("distorted_components", [0.4, 0.125, 0.6, 0.375], "the tail: twisted"),
        # (90,70)-(100.5,80.4): [0.9, 0.875, 1.005 -> 1, 1.005 -> 1], clipped
        ("localized_blur", [0.9, 0.875, 1.0, 1.0], "the sky: blurry patch"),
        (None, [0.0, 0.0, 0.05, 0.0625], "the grass"),  # no keyword: kept without a kind
    ]
    assert a["other_artifacts_caption"] == ""
    assert report.clipped_boxes == 1 and report.polygon_boxes == 5
    assert report.notes[_kindless_note("synthscars")] == 1
    assert report.notes["synthscars regions given a kind by keywords in their caption (--kinds-from-captions)"] == 3


def test_synthscars_bad_records_name_file_record_field(tmp_path):
    root = _synthscars(tmp_path / "ss")
    ann = root / "train" / "annotations" / "train.json"
    data = json.loads(ann.read_text())
    data[0]["0"]["refs"][0]["segmentation"] = None  # no polygon, bbox null
    data[0]["0"]["refs"][1]["segmentation"] = [[40, 10, 50, 10]]  # two points
    data[1]["1"]["img_file_name"] = "/elsewhere/zz.jpg"  # absolute, and no such name inside --images
    data.append({"4": {"caption": "", "img_file_name": "a.jpg", "refs": []}})  # a.png's id again (a/.jpg)
    data.append(["not", "a", "dict"])
    ann.write_text(json.dumps(data))
    with pytest.raises(DatasetValidationError) as info:
        build_dataset("synthscars", root, root, progress=False)
    shown = [str(p) for p in info.value.problems]
    f = "train/annotations/train.json"
    assert any(s.startswith(f"{f}, record [0] (0), refs[0].segmentation: required: a polygon") for s in shown)
    assert any(
        s == f"{f}, record [0] (0), refs[1].segmentation: a polygon needs 3 points or more, got 2" for s in shown
    )
    assert any(s.startswith(f"{f}, record [1] (1), img_file_name: no image 'zz.jpg' under --images") for s in shown)
    assert any(s.startswith(f"{f}, record [3] (4), image_id: duplicate id 'train/images/a'") for s in shown)
    assert any(s.startswith(f"{f}, record [4]: must be a one-key object") for s in shown)


# --------------------------------------------------------------------------- HAD
def _had(tmp_path):
    ann, imgs = tmp_path / "annotations", tmp_path / "images"
    _img(imgs / "train" / "x1.jpg", (200, 100))
    _img(imgs / "val" / "x2.png", (50, 50))
    for split, stem, image, anns, humans in [
        (
            "train",
            "x1",
            {"file_name": "x1.jpg", "height": 100, "width": 200},
            [
                {"body_parts": "hand", "level": "severe", "bbox": [150, 60, 50, 20]},  # corners swapped
                {"body_parts": ["human missing arm"], "level": "mild", "bbox": [0, 0, 20, 10]},
            ],
            [{"tag": "person", "bbox": [0, 0, 199, 99]}],
        ),
        ("val", "x2", {"file_name": "x2.png", "height": 50, "width": 50}, [
            {"body_parts": "face", "level": "mild", "bbox": [10, 10, 40, 30]}
        ], []),
    ]:  # fmt: skip
        path = ann / split / f"{stem}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"image": image, "annotation": anns, "human": humans}))
    return ann, imgs


def test_had_every_record_and_box(tmp_path):
    ann, imgs = _had(tmp_path)
    ds, rejected, report = build_dataset("had", ann, imgs, progress=False)
    assert rejected == []
    rows = _rows(ds)
    assert ds["test"]["image_id"] == ["val/x2"] and ds["train"]["image_id"] == ["train/x1"]
    assert _arts(rows["train/x1"]) == [
        # (150,60)-(50,20) swapped -> [50/200, 20/100, 150/200, 60/100]
        ("distorted_components", [0.25, 0.2, 0.75, 0.6], "severe hand"),
        # [0/200, 0/100, 20/200, 10/100]
        ("omitted_components", [0.0, 0.0, 0.1, 0.1], "mild human missing arm"),
    ]
    # [10/50, 10/50, 40/50, 30/50]
    assert _arts(rows["val/x2"]) == [("awkward_facial_expression", [0.2, 0.2, 0.8, 0.6], "mild face")]
    assert report.notes["had boxes with swapped corners (normalized)"] == 1
    assert report.dropped["had human boxes (where the people are, not artifacts)"] == 1


def test_had_bad_records(tmp_path):
    ann, imgs = _had(tmp_path)
    path = ann / "train" / "x1.json"
    data = json.loads(path.read_text())
    data["image"]["width"] = 210  # the image is 200 wide
    data["annotation"] = [
        {"body_parts": "tail", "level": "severe", "bbox": [0, 0, 10, 10]},
        {"body_parts": "hand", "level": "extreme", "bbox": [0, 0, 300, 50]},
        {"level": "mild", "bbox": [0, 0, 1, 1]},
    ]
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetValidationError) as info:
        build_dataset("had", ann, imgs, progress=False)
    shown = [str(p) for p in info.value.problems]
    assert "train/x1.json, record x1, annotation[1].level: 'extreme' must be 'mild' or 'severe'" in shown
    assert "train/x1.json, record x1, annotation[2].body_parts: required: a label or a list of labels" in shown
    assert any(
        s.startswith("train/x1.json, record x1, annotation[0].body_parts: label 'tail' is not a kind") for s in shown
    )
    assert any(s.startswith("train/x1.json, record x1, annotation[1].bbox: bbox [0, 0, 300, 50]") for s in shown)
    assert "train/x1.json, record x1, width/height: declared 210x100 but the image is 200x100" in shown


# --------------------------------------------------------------------------- LOKI
def _loki(tmp_path):
    imgs = tmp_path / "imgs"
    _img(imgs / "fake" / "l1.png", (100, 100))
    _img(imgs / "real" / "l2.png", (64, 64))
    records = [
        {
            "image_path": "fake/l1.png",
            "problems": {
                "regional": [
                    {"region": [10, 20, 30, 40], "desc": "distorted hand, déformée"},
                    {"region": [50, 50, 10, 10], "desc": "a strange thing"},
                ],
                "global": [{"desc": "odd colours overall"}],
            },
        },
        {"image_path": "real/l2.png", "problems": {"regional": [], "global": []}},
    ]
    ann = tmp_path / "loki.json"
    ann.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-16")  # Python writes the BOM
    assert ann.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")
    return ann, imgs


def test_loki_utf16_every_record_and_box(tmp_path):
    ann, imgs = _loki(tmp_path)
    ds, rejected, report = build_dataset("loki", ann, imgs, progress=False)
    rows = _rows(ds)
    assert rejected == [] and sorted(rows) == ["fake/l1", "real/l2"]
    assert _arts(rows["fake/l1"]) == [
        (None, [0.1, 0.2, 0.4, 0.6], "distorted hand, déformée"),  # [x, y, w, h] = [10, 20, 30, 40] on 100 x 100
        (None, [0.5, 0.5, 0.6, 0.6], "a strange thing"),  # [50, 50, 10, 10]
    ]
    assert rows["fake/l1"]["other_artifacts_caption"] == "odd colours overall"
    assert rows["real/l2"]["artifacts"] == [] and rows["real/l2"]["other_artifacts_caption"] == ""
    assert report.notes[_kindless_note("loki")] == 2
    ds, _, report = build_dataset("loki", ann, imgs, progress=False, kinds_from_captions=True)
    l1 = _rows(ds)["fake/l1"]
    # [x, y, w, h] = [10, 20, 30, 40] -> [10/100, 20/100, 40/100, 60/100]
    assert _arts(l1) == [
        ("distorted_components", [0.1, 0.2, 0.4, 0.6], "distorted hand, déformée"),
        (None, [0.5, 0.5, 0.6, 0.6], "a strange thing"),
    ]
    assert l1["other_artifacts_caption"] == "odd colours overall"
    # a label map for the kind-less label takes the rest: [50/100, 50/100, 60/100, 60/100]
    ds, _, _ = build_dataset(
        "loki", ann, imgs, progress=False, kinds_from_captions=True, label_map="loki_region=abnormal_texture"
    )
    assert _arts(_rows(ds)["fake/l1"])[1] == ("abnormal_texture", [0.5, 0.5, 0.6, 0.6], "a strange thing")


def test_loki_bad_records(tmp_path):
    ann, imgs = _loki(tmp_path)
    records = json.loads(ann.read_text(encoding="utf-16"))
    records[0]["problems"]["regional"][0]["region"] = [1, 2, 3]
    records[1]["image_path"] = "../outside.png"
    records.append({"problems": {}})
    ann.write_text(json.dumps(records), encoding="utf-16")
    with pytest.raises(DatasetValidationError) as info:
        build_dataset("loki", ann, imgs, progress=False)
    shown = [str(p) for p in info.value.problems]
    assert (
        "loki.json, record [0] (fake/l1.png), problems.regional[0].region: must be [x, y, w, h] pixels, got [1, 2, 3]"
        in shown
    )
    assert any(
        s.startswith("loki.json, record [1] (../outside.png), image_path: '../outside.png' lies outside")
        for s in shown
    )
    assert "loki.json, record [2], image_path: required: the image path relative to --images" in shown
    ann.write_bytes(b"\xff\xfe" + "[{".encode("utf-16-le") + b"\x00\xd8")  # a lone surrogate
    with pytest.raises(DatasetValidationError, match="not valid utf-16"):
        build_dataset("loki", ann, imgs, progress=False)


# --------------------------------------------------------------------------- ArtiAgent
def _artiagent(tmp_path):
    imgs, ann = tmp_path / "imgs", tmp_path / "ann"
    _img(imgs / "px.png", (400, 200))
    _img(imgs / "norm.jpg", (300, 300))
    _img(imgs / "mix1.png", (100, 100))
    _img(imgs / "mix2.png", (100, 100))
    ann.mkdir()
    # as the authors' artifact_example*.json: pixels, no global_explanation
    (ann / "px.json").write_text(json.dumps({
        "image_name": "px.png", "artifact_type": "addition", "description": "extra finger",
        "bboxes": [{"bbox": [100.0, 50.0, 300.0, 150.0], "category": "addition", "caption": "Extra finger"}],
    }))  # fmt: skip
    # as distortion_example.json: normalized 0-1
    (ann / "norm.json").write_text(json.dumps({
        "image_name": "norm.jpg", "description": "dog", "global_explanation": "",
        "bboxes": [
            {"bbox": [0.2, 0.1, 0.8, 0.4], "category": "distortion", "caption": "face warped"},
            {"bbox": [0.3, 0.5, 0.7, 0.9], "category": "removal", "caption": "missing leg"},
        ],
        "artifact_type": "distortion", "explanation": "Distortion artifacts occur when ...",
    }))  # fmt: skip
    # the tool's results file: a list, one record normalized and one in pixels
    (ann / "results.json").write_text(json.dumps([
        {"image_name": "mix1.png", "global_explanation": "looks melted", "user_id": "u1", "task_type": "t",
         "bboxes": [{"bbox": [0.0, 0.0, 0.5, 0.5], "category": "fusion", "caption": "cup fused with hand"}]},
        {"image_name": "mix2.png", "global_explanation": "",
         "bboxes": [{"bbox": [10, 10, 60, 60], "category": "removal", "caption": "no handle"}]},
    ]))  # fmt: skip
    return ann, imgs


def test_artiagent_units_detected_per_record_and_every_box(tmp_path):
    ann, imgs = _artiagent(tmp_path)
    ds, rejected, report = build_dataset("artiagent", ann, imgs, progress=False)
    rows = _rows(ds)
    assert rejected == [] and sorted(rows) == ["mix1", "mix2", "norm", "px"]
    # pixels: [100/400, 50/200, 300/400, 150/200]
    assert _arts(rows["px"]) == [("duplicated_components", [0.25, 0.25, 0.75, 0.75], "Extra finger")]
    assert _arts(rows["norm"]) == [
        ("distorted_components", [0.2, 0.1, 0.8, 0.4], "face warped"),
        ("omitted_components", [0.3, 0.5, 0.7, 0.9], "missing leg"),
    ]
    assert _arts(rows["mix1"]) == [("abnormal_spatial_relationship", [0.0, 0.0, 0.5, 0.5], "cup fused with hand")]
    assert rows["mix1"]["other_artifacts_caption"] == "looks melted"
    # pixels in the same file: [10/100, 10/100, 60/100, 60/100]
    assert _arts(rows["mix2"]) == [("omitted_components", [0.1, 0.1, 0.6, 0.6], "no handle")]
    assert report.notes == {
        "artiagent records with boxes in pixels (detected) in px.json": 1,
        "artiagent records with boxes in normalized 0-1 (detected) in norm.json": 1,
        "artiagent records with boxes in normalized 0-1 (detected) in results.json": 1,
        "artiagent records with boxes in pixels (detected) in results.json": 1,
    }


def test_artiagent_bad_records(tmp_path):
    ann, imgs = _artiagent(tmp_path)
    (ann / "bad.json").write_text(
        json.dumps([{"image_name": "px.png", "bboxes": [{"bbox": [0.1, 0.1, 0.2, 0.2]}, "x"]}, {"bboxes": []}])
    )
    with pytest.raises(DatasetValidationError) as info:
        build_dataset("artiagent", ann, imgs, progress=False)
    shown = [str(p) for p in info.value.problems]
    assert (
        "bad.json, record [0] (px.png), bboxes[0].category: required: addition, removal, distortion or fusion" in shown
    )
    assert any(s.startswith("bad.json, record [0] (px.png), bboxes[1]: must be an object") for s in shown)
    assert "bad.json, record [1], image_name: required: the image's file name" in shown
    assert any(s.startswith("px.json, record (px.png), image_id: duplicate id 'px'") for s in shown)


@pytest.mark.skipif(not REAL_ARTIAGENT.is_dir(), reason="the real ArtiAgent files are not in ../shared")
def test_artiagent_real_files_units(tmp_path):
    records, problems, _ = read_records("artiagent", REAL_ARTIAGENT, tmp_path)
    assert problems == []
    units = {r.key.strip("() "): {a["units"] for a in r.artifacts} for r in records}
    assert units == {
        "artifact_example1.png": {"pixels"},
        "artifact_example2.png": {"pixels"},
        "distortion_example.jpg": {"normalized"},
        "removal_example.jpg": {"normalized"},
    }
    assert [a["label"] for r in records for a in r.artifacts] == [
        "addition", "distortion", "distortion", "distortion", "removal", "removal",
    ]  # fmt: skip


# --------------------------------------------------------------------------- RichHF-18K
def _png(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _richhf(tmp_path, corrupt=True):
    imgs = tmp_path / "imgs"
    _img(imgs / "pick" / "rh1.png", (1024, 768))
    _img(imgs / "rh2.png", (256, 256))
    heat = np.zeros((512, 512), dtype=np.uint8)
    heat[0:64, 0:128] = 200  # x 0..127, y 0..63 -> [0/512, 0/512, 128/512, 64/512]
    heat[256:512, 256:512] = 100  # under the default threshold 128 -> [0.5, 0.5, 1, 1] at threshold 100
    heat[300, 10] = heat[301, 11] = 255  # 2 diagonal pixels: x 10..11, y 300..301
    records = [
        encode_example(
            {"filename": "rh1.png", "artifact_score": 0.75, "aesthetics_score": 0.5, "artifact_map": _png(heat)}
        ),
        encode_example(
            {"filename": "rh2.png", "artifact_score": 1.0, "artifact_map": _png(np.zeros((512, 512), np.uint8))}
        ),
        encode_example({"filename": "rh3.png", "artifact_map": _png(heat)}),
        encode_example({"filename": "missing.png", "artifact_map": _png(heat)}),
    ]
    framed = [bytearray(frame_record(r)) for r in records]
    if corrupt:
        framed[2][40] ^= 0xFF  # a data byte of record 2: its CRC no longer matches
    ann = tmp_path / "test.tfrecord"
    ann.write_bytes(b"".join(framed))
    return ann, imgs


def test_richhf_heatmap_boxes_scores_and_bad_records(tmp_path):
    ann, imgs = _richhf(tmp_path)
    ds, rejected, report = build_dataset(
        "richhf", ann, imgs, progress=False, skip_invalid=True, label_map="richhf_region=distorted_components"
    )
    rows = _rows(ds)
    assert sorted(rows) == ["pick/rh1", "rh2"]
    assert _arts(rows["pick/rh1"]) == [("distorted_components", [0.0, 0.0, 0.25, 0.125], "")]
    assert rows["rh2"]["artifacts"] == []
    assert report.dropped["richhf heatmap regions under --min-region-pixels"] == 1  # the 2-pixel pair
    assert report.mask_boxes == 1
    assert report.image_fields == {
        "pick/rh1": {"artifact_score": 0.75, "aesthetics_score": 0.5},
        "rh2": {"artifact_score": 1.0},
    }
    by_record = {r["record"]: r["problems"][0] for r in rejected}
    corrupt = [k for k in by_record if k.startswith("record 2 ")]
    assert (
        len(corrupt) == 1 and by_record[corrupt[0]]["message"] == "corrupt record: the CRC of its data does not match"
    )
    assert by_record["record 3 (missing.png)"]["field"] == "image"
    assert by_record["record 3 (missing.png)"]["message"].startswith("missing image file")

    # threshold and minimum region size are settable: 3 regions, in raster order of their first pixel
    ds, _, _ = build_dataset(
        "richhf",
        ann,
        imgs,
        progress=False,
        skip_invalid=True,
        label_map="richhf_region=distorted_components",
        heatmap_threshold=100,
        min_region_pixels=1,
    )
    assert [b for _, b, _ in _arts(_rows(ds)["pick/rh1"])] == [
        [0.0, 0.0, 0.25, 0.125],
        [0.5, 0.5, 1.0, 1.0],  # [256/512, 256/512, 512/512, 512/512]
        [0.019531, 0.585938, 0.023438, 0.589844],  # [10/512, 300/512, 12/512, 302/512], 8-connected
    ]
    # without a map the regions have no kind: kept as kind-less artifacts, counted
    ds, _, report = build_dataset("richhf", ann, imgs, progress=False, skip_invalid=True)
    rh1 = _rows(ds)["pick/rh1"]
    assert _arts(rh1) == [(None, [0.0, 0.0, 0.25, 0.125], "")] and rh1["other_artifacts_caption"] == ""
    assert report.notes[_kindless_note("richhf")] == 1


# --------------------------------------------------------------------------- PAL4VST
def _pal4vst(tmp_path):
    root = tmp_path / "pal"
    for split, stem, mask in [("train", "p1", _pal_mask()), ("test", "p2", np.zeros((30, 40), np.uint8))]:
        path = root / "labels" / split / f"{stem}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(path)
        _img(root / "images" / split / f"{stem}.jpg", (40, 30))
    return root


def test_pal4vst_one_box_per_component(tmp_path):
    root = _pal4vst(tmp_path)
    ds, rejected, report = build_dataset(
        "pal4vst", root / "labels", root / "images", progress=False, label_map="pal4vst_region=distorted_components"
    )
    rows = _rows(ds)
    assert rejected == [] and ds["test"]["image_id"] == ["test/p2"] and ds["train"]["image_id"] == ["train/p1"]
    assert _arts(rows["train/p1"]) == [
        ("distorted_components", [0.075, 0.066667, 0.2, 0.2], ""),  # [3/40, 2/30, 8/40, 6/30]
        ("distorted_components", [0.5, 0.333333, 0.625, 0.533333], ""),  # [20/40, 10/30, 25/40, 16/30]
    ]
    assert rows["test/p2"]["artifacts"] == []
    assert report.dropped["pal4vst mask regions under --min-region-pixels"] == 1 and report.mask_boxes == 2


def test_pal4vst_bad_records(tmp_path):
    root = _pal4vst(tmp_path)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "labels" / "train" / "small.png")
    _img(root / "images" / "train" / "small.jpg", (40, 30))
    Image.new("RGB", (40, 30)).save(root / "labels" / "train" / "rgb.png")
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(root / "labels" / "train" / "noimage.png")
    with pytest.raises(DatasetValidationError) as info:
        build_dataset("pal4vst", root, root / "images", progress=False)
    shown = [str(p) for p in info.value.problems]
    assert "train/small.png, record train/small.png, mask: the mask is 10x10 but the image is 40x30" in shown
    assert (
        "train/rgb.png, record train/rgb.png, mask: must be a single-channel index mask, got shape (30, 40, 3)"
        in shown
    )
    assert any(s.startswith("train/noimage.png, record train/noimage.png, image: missing image file") for s in shown)


# --------------------------------------------------------------------------- the CLI, end to end
@pytest.mark.parametrize("fmt", ["synthscars", "had", "loki", "artiagent", "richhf", "pal4vst"])
def test_cli_builds_each_format_into_a_loadable_folder(tmp_path, fmt, capsys):
    from datasets import load_dataset

    extra = []
    if fmt == "synthscars":
        ann = imgs = _synthscars(tmp_path / "ss")
        extra, n = ["--kinds-from-captions", "--label-map", "synthscars"], 4
    elif fmt == "had":
        (ann, imgs), n = _had(tmp_path), 2
    elif fmt == "loki":
        (ann, imgs), n = _loki(tmp_path), 2
    elif fmt == "artiagent":
        (ann, imgs), n = _artiagent(tmp_path), 4
    elif fmt == "richhf":
        (ann, imgs), n = _richhf(tmp_path), 2
        extra = ["--skip-invalid", "--heatmap-threshold", "100", "--min-region-pixels", "1"]
        extra += ["--label-map", "richhf_region=abnormal_texture"]
    else:
        root = _pal4vst(tmp_path)
        ann, imgs, n = root / "labels", root / "images", 2
    out = tmp_path / "out"
    argv = ["dataset", "build", "--format", fmt, "--annotations", str(ann), "--images", str(imgs), "--out", str(out)]
    assert main(argv + extra) == 0
    ds = load_dataset(str(out))
    assert sum(len(split) for split in ds.values()) == n
    report = json.loads((out / "build_report.json").read_text())
    assert report["kept"] == n
    if fmt == "richhf":
        assert report["rejected"] == 2 and (out / "rejected.jsonl").is_file()
        assert report["image_columns"] == ["aesthetics_score", "artifact_score"]
        rows = {r["image_id"]: r for split in ds.values() for r in split}
        assert len(rows["pick/rh1"]["artifacts"]) == 3
        assert (rows["pick/rh1"]["artifact_score"], rows["pick/rh1"]["aesthetics_score"]) == (0.75, 0.5)
        assert (rows["rh2"]["artifact_score"], rows["rh2"]["aesthetics_score"]) == (1.0, None)
    if fmt == "synthscars":
        card = (out / "README.md").read_text()
        assert "synthscars absolute img_file_name resolved by its file name inside --images | 1 |" in card
        rows = {r["image_id"]: r for split in ds.values() for r in split}
        # --kinds-from-captions reached the importer: 3 refs given a kind, "the grass" kept without one
        assert [a["label"] for a in rows["train/images/a"]["artifacts"]].count(-1) == 1
    printed = capsys.readouterr().out
    assert "Build report" in printed
