import json
import logging
import os
import stat
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synartifact.cli import main
from synartifact.data import DatasetValidationError, build_dataset, load_artifact_dataset
from synartifact.taxonomy import get_kind


def _img(path: Path, size=(40, 30), color=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def _all_rows(dsdict):
    return {r["image_id"]: r for split in dsdict.values() for r in split}


# --------------------------------------------------------------------------- the SynArtifact-1K release
def _release(root: Path):
    for folder, stem, arts in [
        (
            "sd15",
            "0001",
            [
                {
                    "rect_start": [30, 20],
                    "rect_end": [10, 5],
                    "artifacts_caption": "The man's hand is distorted.",
                    "artifacts_class": "2",
                }
            ],
        ),
        ("sd15", "0002", []),
        (
            "dalle3",
            "0001",
            [{"rect_start": [0, 0], "rect_end": [20, 15], "artifacts_caption": "blurry", "artifacts_class": "7"}],
        ),
        (
            "dalle3",
            "0003",
            [
                {
                    "rect_start": [0, 0],
                    "rect_end": [20, 15],
                    "artifacts_caption": "repeated hand",
                    "artifacts_class": "3",
                }
            ],
        ),
    ]:
        ann = root / folder / "annotation_json_artifacts_class" / f"{stem}.json"
        ann.parent.mkdir(parents=True, exist_ok=True)
        ann.write_text(
            json.dumps({"Artifacts annotation": arts, "Other artifacts caption": "odd shadow" if arts else ""})
        )
    _img(root / "sd15" / "0001.png")
    _img(root / "sd15" / "images" / "0002.jpg")
    _img(root / "dalle3" / "0001.png", size=(80, 60))
    _img(root / "data" / "dalle3" / "0003.png")
    (root / "eval.txt").write_text("sd15/0002.jpg\ndalle3/0003.png\n")


def test_synartifact_release(tmp_path):
    _release(tmp_path / "rel")
    dsdict, rejected, _ = build_dataset("synartifact", tmp_path / "rel", progress=False)
    assert rejected == []
    assert sorted(dsdict["test"]["image_id"]) == ["dalle3/0003", "sd15/0002"]
    rows = _all_rows(dsdict)
    art = rows["sd15/0001"]["artifacts"][0]
    assert art["label"] == 2 and art["caption"] == "The man's hand is distorted."
    assert art["bbox"] == pytest.approx([10 / 40, 5 / 30, 30 / 40, 20 / 30])
    assert rows["sd15/0001"]["generator"] == "sd15" and rows["sd15/0001"]["other_artifacts_caption"] == "odd shadow"
    assert rows["dalle3/0001"]["width"] == 80 and rows["sd15/0002"]["artifacts"] == []
    assert rows["sd15/0001"]["image"].mode == "RGB"
    out = tmp_path / "out"
    assert (
        main(
            ["dataset", "build", "--format", "synartifact", "--annotations", str(tmp_path / "rel"), "--out", str(out)]
        )
        == 0
    )
    loaded = load_artifact_dataset(out)
    assert (
        sorted(loaded["test"]["image_id"]) == ["dalle3/0003", "sd15/0002"]
        and loaded["train"].features == dsdict["train"].features
    )
    assert loaded["train"].features["artifacts"].feature["label"].int2str(2) == "distorted_components"


def test_synartifact_release_reports_all_problems(tmp_path):
    root = tmp_path / "rel"
    _release(root)
    (root / "sd15" / "0001.png").unlink()  # missing image
    (root / "dalle3" / "0001.png").write_bytes(b"not a png")  # corrupt image
    bad = root / "dalle3" / "annotation_json_artifacts_class" / "0003.json"
    bad.write_text(
        json.dumps({"Artifacts annotation": [{"rect_start": [0, 0], "rect_end": [20, 15], "artifacts_class": "99"}]})
    )
    with pytest.raises(DatasetValidationError) as err:
        build_dataset("synartifact", root, progress=False)
    msg = str(err.value)
    assert "3 problem(s)" in msg
    assert "sd15/annotation_json_artifacts_class/0001.json" in msg and "no image 0001" in msg
    # one line per problem, each naming its file, record and field
    problems = sorted(line.strip() for line in msg.splitlines() if line.strip().startswith("- "))
    assert len(problems) == 3
    assert problems[0].startswith(
        "- dalle3/annotation_json_artifacts_class/0001.json, record 0001, image: corrupt image: 0001.png is not a "
        "readable image"
    )
    assert problems[1].startswith(
        "- dalle3/annotation_json_artifacts_class/0003.json, record 0003, Artifacts annotation[0].label: label '99' "
        "is not a kind"
    )
    assert problems[2].startswith(
        "- sd15/annotation_json_artifacts_class/0001.json, record 0001, image: no image 0001."
    )


# --------------------------------------------------------------------------- JSONL
def _jsonl(tmp_path, records):
    ann = tmp_path / "ann.jsonl"
    ann.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return ann


def test_jsonl_good_pixels_and_normalized(tmp_path):
    imgs = tmp_path / "imgs"
    _img(imgs / "a.png", (100, 50))
    _img(imgs / "b.png", (100, 50))
    ann = _jsonl(
        tmp_path,
        [
            {
                "image": "a.png",
                "prompt": "a cat",
                "artifacts": [{"label": "Localized Blur", "bbox": [50, 40, 10, 10], "caption": "blur"}],
            },
            {
                "image": "b.png",
                "image_id": "bee",
                "artifacts": [{"label": 8, "bbox": [0, 0, 20, 25], "caption": "pink"}],
                "bbox_format": "xywh",
            },
        ],
    )
    rows = _all_rows(build_dataset("jsonl", ann, imgs, progress=False)[0])
    assert rows["a"]["artifacts"][0]["bbox"] == pytest.approx([0.1, 0.2, 0.5, 0.8]) and rows["a"]["prompt"] == "a cat"
    assert rows["a"]["artifacts"][0]["label"] == get_kind("localized_blur").index
    assert rows["bee"]["artifacts"][0]["bbox"] == pytest.approx([0.0, 0.0, 0.2, 0.5])
    ann2 = _jsonl(
        tmp_path,
        [
            {
                "image": "a.png",
                "split": "test",
                "artifacts": [{"label": "blur", "bbox": [0.1, 0.2, 0.5, 0.8], "caption": ""}],
            },
            {"image": "b.png", "split": "train"},
        ],
    )
    dsdict, _, _ = build_dataset("jsonl", ann2, imgs, progress=False)
    assert dsdict["test"]["image_id"] == ["a"] and dsdict["test"][0]["artifacts"][0]["bbox"] == pytest.approx(
        [0.1, 0.2, 0.5, 0.8]
    )


BAD_JSONL = [
    {"image": "a.png", "artifacts": [{"label": "sparkles", "bbox": [1, 1, 10, 10], "caption": ""}]},  # unknown label
    {"image": "b.png", "artifacts": [{"label": 7, "bbox": [5, 5, 5, 20], "caption": ""}]},  # degenerate
    {"image": "c.png", "artifacts": [{"label": 7, "bbox": [5, 5, 500, 20], "caption": ""}]},  # outside
    {"image": "missing.png"},  # missing image
    "{not json",  # malformed
    {"image": "a.png"},  # duplicate id
    {"image": "good.png", "artifacts": [{"label": 7, "bbox": [1, 1, 10, 10], "caption": "ok"}]},
]


def test_jsonl_bad_collects_every_problem_and_writes_nothing(tmp_path):
    imgs = tmp_path / "imgs"
    for name in ("a", "b", "c", "good"):
        _img(imgs / f"{name}.png")
    ann = _jsonl(tmp_path, BAD_JSONL)
    out = tmp_path / "out"
    with pytest.raises(DatasetValidationError) as err:
        build_dataset("jsonl", ann, imgs, progress=False)
    msg = str(err.value)
    assert "6 problem(s)" in msg
    for needle in (
        "line 1 (a), artifacts[0].label",
        "line 2 (b), artifacts[0].bbox: bbox [5, 5, 5, 20] is degenerate",
        "line 3 (c), artifacts[0].bbox",
        "outside",
        "line 4 (missing), image: missing image file",
        "ann.jsonl, record line 5: not valid JSON",
        "line 6 (a), image_id: duplicate id",
    ):
        assert needle in msg
    assert (
        main(
            [
                "dataset",
                "build",
                "--format",
                "jsonl",
                "--annotations",
                str(ann),
                "--images",
                str(imgs),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert not out.exists() and not list(tmp_path.glob("out.tmp-*"))


def test_skip_invalid_writes_rejected_jsonl(tmp_path):
    imgs = tmp_path / "imgs"
    for name in ("a", "b", "c", "good"):
        _img(imgs / f"{name}.png")
    ann = _jsonl(tmp_path, BAD_JSONL)
    out = tmp_path / "out"
    rc = main(
        [
            "dataset",
            "build",
            "--format",
            "jsonl",
            "--annotations",
            str(ann),
            "--images",
            str(imgs),
            "--out",
            str(out),
            "--skip-invalid",
        ]
    )
    assert rc == 0
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert len(rejected) == 6
    assert {r["record"] for r in rejected} >= {"line 1 (a)", "line 2 (b)", "line 5"}
    assert all(r["problems"] and r["problems"][0]["message"] for r in rejected)
    ds = load_artifact_dataset(out)
    assert list(ds) == ["train"] and ds["train"]["image_id"] == ["good"]  # one row: the empty test split is dropped
    assert "skipped: 6 of them" in (out / "README.md").read_text()


# --------------------------------------------------------------------------- COCO
def _coco(tmp_path, annotations, categories=None, images=None):
    imgs = tmp_path / "imgs"
    _img(imgs / "p1.png", (100, 80))
    _img(imgs / "p2.png", (100, 80))
    data = {
        "images": images
        or [
            {"id": 1, "file_name": "p1.png", "width": 100, "height": 80, "prompt": "a dog"},
            {"id": 2, "file_name": "p2.png", "width": 100, "height": 80},
        ],
        "annotations": annotations,
        "categories": categories
        or [{"id": 1, "name": "Duplicated Components"}, {"id": 2, "name": "Distorted and Deformated Components"}],
    }
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(data))
    return path, imgs


def test_coco_good(tmp_path):
    ann, imgs = _coco(
        tmp_path,
        [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [10, 8, 50, 40], "caption": "two tails"},
            {
                "id": 11,
                "image_id": 1,
                "category_id": 2,
                "bbox": [0, 0, 100, 80],
                "attributes": {"caption": "warped body"},
            },
        ],
    )
    rows = _all_rows(build_dataset("coco", ann, imgs, progress=False)[0])
    arts = rows["p1"]["artifacts"]
    assert [a["label"] for a in arts] == [3, 2] and [a["caption"] for a in arts] == ["two tails", "warped body"]
    assert arts[0]["bbox"] == pytest.approx([0.1, 0.1, 0.6, 0.6]) and rows["p1"]["prompt"] == "a dog"
    assert rows["p2"]["artifacts"] == []


def test_coco_malformed_cli_names_every_bad_record(tmp_path, capsys):
    ann, imgs = _coco(
        tmp_path,
        [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [10, 8, 0, 40]},  # degenerate
            {"id": 11, "image_id": 1, "category_id": 3, "bbox": [10, 8, 5, 5]},  # unknown category name
            {"id": 12, "image_id": 99, "category_id": 1, "bbox": [1, 1, 5, 5]},  # no such image
            {"id": 12, "image_id": 2, "category_id": 1, "bbox": [90, 70, 50, 50]},  # duplicate id + outside
            {"id": 14, "image_id": 2, "category_id": 1},  # no bbox
        ],
        categories=[{"id": 1, "name": "duplicated components"}, {"id": 3, "name": "sparkly unicorns"}],
    )
    out = tmp_path / "out"
    rc = main(
        ["dataset", "build", "--format", "coco", "--annotations", str(ann), "--images", str(imgs), "--out", str(out)]
    )
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    assert "6 problem(s)" in err
    for needle in (
        "record image 1 (p1.png), annotations[0] (id 10).bbox: bbox [10, 8, 0, 40]",
        "record image 1 (p1.png), annotations[1] (id 11).category_id: category 3",
        "sparkly unicorns",
        "record annotations[2] (id 12), image_id: 99",
        "record image 2 (p2.png), annotations[3] (id 12).id: duplicate annotation id",
        "record image 2 (p2.png), annotations[3] (id 12).bbox",
        "outside",
        "record image 2 (p2.png), annotations[4] (id 14).bbox: required",
    ):
        assert needle in err


# --------------------------------------------------------------------------- Label Studio
def _ls_task(tid, image, regions, texts):
    result = [
        {
            "id": rid,
            "type": "rectanglelabels",
            "from_name": "label",
            "to_name": "image",
            "original_width": 200,
            "original_height": 100,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [lab]},
        }
        for rid, (x, y, w, h, lab) in regions.items()
    ]
    result += [
        {"id": rid, "type": "textarea", "from_name": "caption", "to_name": "image", "value": {"text": [t]}}
        for rid, t in texts.items()
    ]
    return {
        "id": tid,
        "data": {"image": f"/data/upload/1/{image}", "prompt": "p"},
        "annotations": [{"result": result}],
    }


def test_labelstudio_good_and_bad(tmp_path):
    imgs = tmp_path / "imgs"
    _img(imgs / "one.png", (200, 100))
    _img(imgs / "two.png", (200, 100))
    tasks = [
        _ls_task(
            1,
            "ab12cd34-one.png",
            {"r1": (10, 20, 50, 50, "Abnormal Texture"), "r2": (0, 0, 10, 10, "blur")},
            {"r1": "noisy fur", "other": "strange colours overall"},
        ),
        _ls_task(2, "two.png", {}, {}),
    ]
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(tasks))
    rows = _all_rows(build_dataset("labelstudio", path, imgs, progress=False)[0])
    arts = rows["one"]["artifacts"]
    assert arts[0] == {"label": 9, "bbox": pytest.approx([0.1, 0.2, 0.6, 0.7]), "caption": "noisy fur"}
    assert arts[1]["label"] == 7 and arts[1]["caption"] == ""
    assert rows["one"]["other_artifacts_caption"] == "strange colours overall" and rows["two"]["artifacts"] == []

    tasks.append(_ls_task(3, "gone.png", {"r9": (90, 90, 30, 30, "Bad Label")}, {}))
    path.write_text(json.dumps(tasks))
    with pytest.raises(DatasetValidationError) as err:
        build_dataset("labelstudio", path, imgs, progress=False)
    msg = str(err.value)
    assert "task 3 (gone.png), data.image: no image for '/data/upload/1/gone.png'" in msg and "Bad Label" in msg


def test_cli_subprocess_help_and_synth(tmp_path):
    exe = Path(sys.executable).parent / "synartifact"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "synartifact"]
    out = subprocess.run(cmd + ["dataset", "build", "--help"], capture_output=True, text=True, check=True).stdout
    for flag in (
        "--format",
        "--annotations",
        "--images",
        "--out",
        "--skip-invalid",
        "--seed",
        "--test-size",
        "--overwrite",
        "labelstudio",
    ):
        assert flag in out
    res = subprocess.run(
        cmd + ["dataset", "synth", "--n", "6", "--size", "32", "--out", str(tmp_path / "s")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    again = subprocess.run(
        cmd + ["dataset", "synth", "--n", "6", "--size", "32", "--out", str(tmp_path / "s")],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_coco_duplicate_image_id_rejects_both_with_skip_invalid(tmp_path):
    images = [
        {"id": 1, "file_name": "p1.png", "width": 100, "height": 80},
        {"id": 1, "file_name": "p2.png", "width": 100, "height": 80},
        {"id": 3, "file_name": "p2.png", "width": 100, "height": 80},
    ]
    ann, imgs = _coco(tmp_path, [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}], images=images)
    dsdict, rejected, _ = build_dataset("coco", ann, imgs, skip_invalid=True, progress=False)
    kept = [r["image_id"] for split in dsdict.values() for r in split]
    assert kept == ["p2"]  # only the unambiguous entry
    messages = [p["message"] for r in rejected for p in r["problems"]]
    assert sum("duplicate image id" in m for m in messages) == 2


# --------------------------------------------------------------------------- real exports: Label Studio
def _ls_region(rid, rtype, value, ow=200, oh=100):
    """One result item as Label Studio exports it (percent coordinates, the image's original size)."""
    return {
        "id": rid,
        "type": rtype,
        "from_name": "label",
        "to_name": "image",
        "original_width": ow,
        "original_height": oh,
        "image_rotation": 0,
        "origin": "manual",
        "value": value,
    }


def _ls_rect(rid, x, y, w, h, label, rotation=0):
    return _ls_region(
        rid,
        "rectanglelabels",
        {"x": x, "y": y, "width": w, "height": h, "rotation": rotation, "rectanglelabels": [label]},
    )


def _ls_export(path, tasks):
    """A Label Studio JSON export: a list of tasks with data.image and annotations[].result[]."""
    out = []
    for tid, (image, annotations) in enumerate(tasks, 1):
        anns = []
        for aid, ann in enumerate(annotations, 1):
            ann = ann if isinstance(ann, dict) else {"result": ann}
            anns.append({"id": aid, "completed_by": aid, "was_cancelled": False, "ground_truth": False, **ann})
        out.append({"id": tid, "data": {"image": image}, "annotations": anns, "predictions": [], "project": 1})
    path.write_text(json.dumps(out))
    return path


def _ls_rle(values):
    """Encode like Label Studio's brush (thi-ng rle-pack: 8-bit words, run-length sizes 3, 4, 8, 16 bits)."""
    sizes, bits = [3, 4, 8, 16], []

    def write(v, n):
        bits.extend(int(b) for b in format(int(v), f"0{n}b"))

    write(len(values), 32)
    write(7, 5)
    for s in sizes:
        write(s - 1, 4)
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i] and j + 1 - i < (1 << 16):
            j += 1
        n = j - i
        t = next(k for k, s in enumerate(sizes) if n < (1 << s))
        write(1 if n else 0, 1)  # a single value goes as a literal chunk, longer runs as repeats
        write(t, 2)
        write(n, sizes[t])
        write(values[i], 8)
        i = j + 1
    bits += [0] * (-len(bits) % 8)
    return [int("".join(map(str, bits[k : k + 8])), 2) for k in range(0, len(bits), 8)]


def test_labelstudio_every_image_reference_form(tmp_path):
    imgs = tmp_path / "imgs"
    for rel in ("deep/sub/local.png", "my pic.png", "up.png", "dogs/d1.png", "gsimg.png", "az.png", "web.png"):
        _img(imgs / rel)
    _img(imgs / "bare.jpg")
    _img(imgs / "noext.png")
    refs = {
        "/data/local-files/?d=home/user/deep/sub/local.png": "deep/sub/local",  # crashed the whole build before
        "/data/local-files/?d=my%20pic.png": "my pic",
        "/data/upload/3/0a1b2c3d-up.png": "up",
        "s3://bucket/dogs/d1.png": "dogs/d1",
        "gs://bucket/x/gsimg.png": "gsimg",
        "azure-blob://container/az.png": "az",
        "https://example.com/static/web.png?X-Amz-Signature=abc&X-Amz-Expires=60": "web",
        "bare.jpg": "bare",
        "noext": "noext",
    }
    ann = _ls_export(tmp_path / "export.json", [(ref, [[]]) for ref in refs])
    dsdict, rejected, report = build_dataset("labelstudio", ann, imgs, progress=False)
    assert sorted(_all_rows(dsdict)) == sorted(refs.values()) and rejected == []
    assert report.kept == len(refs)

    _ls_export(ann, [("s3://bucket/dogs/none.png", [[]])])
    with pytest.raises(DatasetValidationError) as err:
        build_dataset("labelstudio", ann, imgs, progress=False)
    msg = str(err.value)
    assert "no image for 's3://bucket/dogs/none.png'" in msg
    assert "bucket/dogs/none.png, dogs/none.png, none.png" in msg and "file name(s) none.png" in msg


def test_labelstudio_upload_hash_needs_eight_hex_and_ambiguous_names_are_problems(tmp_path):
    imgs = tmp_path / "imgs"
    _img(imgs / "one.png")
    _img(imgs / "a" / "same.png")
    _img(imgs / "b" / "same.png")
    ann = _ls_export(
        tmp_path / "export.json",
        [("/data/upload/1/ab12-one.png", [[]]), ("/data/upload/1/0a1b2c3d-same.png", [[]]), ("a/same.png", [[]])],
    )
    _, rejected, _ = build_dataset("labelstudio", ann, imgs, skip_invalid=True, progress=False)
    messages = {r["record"]: r["problems"][0]["message"] for r in rejected}
    assert "file name(s) ab12-one.png" in messages["task 1 (ab12-one.png)"]  # not a Label Studio hash
    assert "several files named same.png" in messages["task 2 (0a1b2c3d-same.png)"]


def test_labelstudio_shapes_annotators_and_report(tmp_path, capsys):
    imgs = tmp_path / "imgs"
    _img(imgs / "one.png", (200, 100))
    mask = np.zeros((100, 200), dtype=np.uint8)
    mask[20:30, 50:90] = 255
    values = np.repeat(mask.ravel(), 4)
    values[0] = 7  # a lone colour value: the encoder writes it as a literal chunk
    brush = {"format": "rle", "rle": _ls_rle(values.tolist()), "brushlabels": ["Chromatic Irregularity"]}
    first = [
        _ls_rect("over", 10, 80, 20, 21.6, "blur"),  # Label Studio writes y + height = 101.6 %
        _ls_rect("rot", 10, 10, 20, 10, "Abnormal Texture", rotation=90),
        _ls_region("poly", "polygonlabels", {"points": [[10, 10], [30, 5], [20, 40]], "polygonlabels": ["blur"]}),
        _ls_region("mask", "brushlabels", brush),
        _ls_region("kp", "keypointlabels", {"x": 5, "y": 5, "width": 0.5, "keypointlabels": ["blur"]}),
        _ls_region("empty", "brushlabels", {"format": "rle", "rle": _ls_rle([0] * 80000), "brushlabels": ["blur"]}),
        {"type": "relation", "from_id": "over", "to_id": "rot", "direction": "right"},
        {"id": "over", "type": "textarea", "from_name": "caption", "to_name": "image", "value": {"text": ["edge"]}},
    ]
    second = [_ls_rect("r2", 50, 50, 10, 10, "Luminance Discrepancy")]
    ann = _ls_export(
        tmp_path / "export.json",
        [
            (
                "/data/upload/1/0a1b2c3d-one.png",
                [{"result": [_ls_rect("x", 1, 1, 5, 5, "blur")], "was_cancelled": True}, first, second],
            ),
            ("missing-task.png", []),
        ],
    )
    dsdict, rejected, report = build_dataset("labelstudio", ann, imgs, progress=False)
    arts = _all_rows(dsdict)["one"]["artifacts"]
    by_label = {get_kind(a["label"]).slug: a["bbox"] for a in arts}
    assert len(arts) == 4 and rejected == []
    assert by_label["abnormal_texture"] == pytest.approx([0.05, 0.1, 0.1, 0.5])  # rotated 90 deg about (x, y)
    assert by_label["chromatic_irregularity"] == pytest.approx([0.25, 0.2, 0.45, 0.3])  # from the RLE mask
    blur = sorted(a["bbox"] for a in arts if a["label"] == get_kind("localized_blur").index)
    assert blur[0] == pytest.approx([0.1, 0.05, 0.3, 0.4])  # the polygon's box
    assert blur[1] == pytest.approx([0.1, 0.8, 0.3, 1.0])  # clipped
    assert [a["caption"] for a in arts if a["bbox"] == blur[1]] == ["edge"]
    assert (report.clipped_boxes, report.rotated_boxes, report.polygon_boxes, report.mask_boxes) == (1, 1, 1, 1)
    assert report.unused_annotations == 1 and report.cancelled_annotations == 1
    assert sum(n for reason, n in report.dropped.items() if "keypointlabels" in reason) == 1
    assert sum(n for reason, n in report.dropped.items() if "empty" in reason) == 1
    assert sum(n for reason, n in report.dropped.items() if "relation" in reason) == 1
    assert sum(n for reason, n in report.dropped.items() if "unannotated" in reason) == 1

    merged, _, report_all = build_dataset("labelstudio", ann, imgs, annotator="all", progress=False)
    labels = [a["label"] for a in _all_rows(merged)["one"]["artifacts"]]
    assert len(labels) == 5 and get_kind("luminance_discrepancy").index in labels  # cancelled one still skipped
    assert report_all.unused_annotations == 0

    out = tmp_path / "out"
    argv = ["dataset", "build", "--format", "labelstudio", "--annotations", str(ann), "--images", str(imgs)]
    assert main(argv + ["--out", str(out), "--annotator", "all"]) == 0
    printed = capsys.readouterr().out
    assert "rotated boxes replaced by their axis-aligned bounding box: 1" in printed and "boxes clipped" in printed
    stored = json.loads((out / "build_report.json").read_text())
    assert stored["mask_boxes"] == 1 and stored["kept"] == 1


def test_labelstudio_every_problem_of_a_region_is_reported(tmp_path):
    imgs = tmp_path / "imgs"
    _img(imgs / "one.png", (200, 100))
    regions = [
        _ls_rect("a", 10, 10, 20, 10, "Sparkles", rotation=30),  # rotated and unknown label: both reported
        _ls_rect("b", 90, 90, 30, 30, "blur"),  # far outside
        _ls_region("c", "rectanglelabels", {"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": []}),
    ]
    ann = _ls_export(tmp_path / "export.json", [("one.png", [regions])])
    with pytest.raises(DatasetValidationError) as err:
        build_dataset("labelstudio", ann, imgs, progress=False)
    fields = [p.field for p in err.value.problems]
    assert "annotations[0].result[0] (id a).label" in fields
    assert "annotations[0].result[1] (id b).bbox" in fields
    assert "annotations[0].result[2].value.rectanglelabels" in fields
    assert len(fields) == 3


# --------------------------------------------------------------------------- label maps and unknown labels
def _coco_real(tmp_path, n_images=3, per_image=(("person", 10), ("Car", 2), ("Class_1", 1))):
    """A COCO file like val2017's: its own categories, iscrowd, polygon segmentations."""
    imgs = tmp_path / "imgs"
    names = [c for c, _ in per_image]
    data = {
        "images": [],
        "annotations": [],
        "categories": [{"id": i + 1, "name": n, "supercategory": "x"} for i, n in enumerate(names)],
    }
    aid = 0
    for i in range(n_images):
        _img(imgs / f"{i:012d}.jpg", (100, 80))
        data["images"].append({"id": i + 1, "file_name": f"{i:012d}.jpg", "width": 100, "height": 80, "license": 1})
        for c, count in per_image:
            for _ in range(count):
                aid += 1
                data["annotations"].append(
                    {
                        "id": aid,
                        "image_id": i + 1,
                        "category_id": names.index(c) + 1,
                        "bbox": [10, 10, 20, 20],
                        "area": 400.0,
                        "iscrowd": 0,
                        "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]],
                    }
                )
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path, imgs


def test_unknown_labels_reported_once_per_label(tmp_path):
    ann, imgs = _coco_real(tmp_path)
    with pytest.raises(DatasetValidationError) as err:
        build_dataset("coco", ann, imgs, progress=False)
    msg = str(err.value)
    assert len(err.value.problems) == 3  # person, Car, Class_1: not one line per annotation
    assert "category 1 'person' is not a kind (30 time(s) in these records: image 1" in msg
    assert msg.count("illegible_letters") == 1  # the kinds are listed once, in the hint
    assert "--label-map" in msg
    assert err.value.report.unknown_labels["person"]["count"] == 30
    assert err.value.report.unknown_labels["person"]["records"][:2] == [
        "image 1 (000000000000.jpg)",
        "image 2 (000000000001.jpg)",
    ]


def test_label_map_file_inline_and_python(tmp_path, capsys):
    ann, imgs = _coco_real(tmp_path, n_images=2, per_image=(("person", 2), ("Car", 1), ("Class_1", 1)))
    mapping = {"person": "distorted_components", "car": "ignore", "Class_1": "Localized Blur"}  # 'car' matches 'Car'
    dsdict, _, report = build_dataset("coco", ann, imgs, label_map=mapping, progress=False)
    labels = sorted(a["label"] for a in _all_rows(dsdict)["000000000000"]["artifacts"])
    assert labels == [2, 2, 7] and report.ignored_labels == {"Car": 2}

    yaml_map = tmp_path / "map.yaml"
    yaml_map.write_text("person: distorted_components\nCar: ignore\nClass_1: localized_blur\n")
    json_map = tmp_path / "map.json"
    json_map.write_text(json.dumps(mapping))
    for spec in (str(yaml_map), str(json_map), "person=distorted_components,Car=ignore,Class_1=7"):
        out = tmp_path / f"out-{len(list(tmp_path.glob('out-*')))}"
        argv = ["dataset", "build", "--format", "coco", "--annotations", str(ann), "--images", str(imgs)]
        assert main(argv + ["--out", str(out), "--label-map", spec]) == 0, capsys.readouterr().err
        assert "'Car' 2" in capsys.readouterr().out
        assert sorted(a["label"] for a in _all_rows(load_artifact_dataset(out))["000000000000"]["artifacts"]) == [
            2,
            2,
            7,
        ]

    with pytest.raises(ValueError, match="person=sparkles"):
        build_dataset("coco", ann, imgs, label_map="person=sparkles", progress=False)
    jsonl = _jsonl(tmp_path, [{"image": "000000000000.jpg", "artifacts": [{"label": "Car", "bbox": [1, 1, 9, 9]}]}])
    rows = _all_rows(build_dataset("jsonl", jsonl, imgs, label_map={"Car": "blur"}, progress=False)[0])
    assert rows["000000000000"]["artifacts"][0]["label"] == 7


# --------------------------------------------------------------------------- images as record problems
def _png_header(width, height):
    """A PNG whose header claims width x height (1-bit): Pillow reads the size without decoding pixels."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 8)) + chunk(b"IEND", b"")


def test_oversized_images_and_bombs_are_skippable_record_problems(tmp_path, capsys):
    imgs = tmp_path / "imgs"
    _img(imgs / "ok.png", (20, 20))
    _img(imgs / "big.png", (50, 50))
    Image.new("P", (20, 20), 3).save(imgs / "palette.png")  # converted to RGB on the way
    (imgs / "bomb.png").write_bytes(_png_header(30000, 30000))
    ann = _jsonl(tmp_path, [{"image": n} for n in ("ok.png", "big.png", "bomb.png", "palette.png")])
    with pytest.raises(DatasetValidationError) as err:
        build_dataset("jsonl", ann, imgs, max_pixels=1000, progress=False)
    msg = str(err.value)
    assert "line 2 (big), image: image too large: big.png is 50x50 = 2,500 pixels, over --max-pixels 1,000" in msg
    assert "line 3 (bomb), image: image too large: bomb.png" in msg
    out = tmp_path / "out"
    argv = ["dataset", "build", "--format", "jsonl", "--annotations", str(ann), "--images", str(imgs)]
    assert main(argv + ["--out", str(out), "--skip-invalid"]) == 0  # default limit: only the bomb is refused
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert [r["image_id"] for r in rejected] == ["bomb"] and "bomb.png" in rejected[0]["problems"][0]["message"]
    rows = _all_rows(load_artifact_dataset(out))
    assert rows["palette"]["image"].mode == "RGB" and rows["big"]["width"] == 50


def test_jsonl_bad_utf8_names_the_line_and_u2028_stays_in_its_line(tmp_path):
    imgs = tmp_path / "imgs"
    _img(imgs / "a.png")
    _img(imgs / "b.png")
    ann = tmp_path / "ann.jsonl"
    good = json.dumps({"image": "a.png", "prompt": "two\u2028lines"}, ensure_ascii=False).encode()
    ann.write_bytes(good + b'\n{"image": "b.png", "prompt": "caf\xe9"}\n')
    with pytest.raises(DatasetValidationError) as err:
        build_dataset("jsonl", ann, imgs, progress=False)
    assert len(err.value.problems) == 1
    assert "ann.jsonl, record line 2: not valid UTF-8 (byte 0xe9 at column 34)" in str(err.value)
    dsdict, rejected, _ = build_dataset("jsonl", ann, imgs, skip_invalid=True, progress=False)
    assert _all_rows(dsdict)["a"]["prompt"] == "two\u2028lines" and rejected[0]["record"] == "line 2"


def test_skip_invalid_with_nothing_valid_says_so_and_writes_rejected(tmp_path, capsys):
    imgs = tmp_path / "imgs"
    _img(imgs / "a.png")
    ann = _jsonl(
        tmp_path, [{"image": "gone.png"}, {"image": "a.png", "artifacts": [{"label": "x", "bbox": [1, 1, 5, 5]}]}]
    )
    out = tmp_path / "out"
    argv = [
        "dataset",
        "build",
        "--format",
        "jsonl",
        "--annotations",
        str(ann),
        "--images",
        str(imgs),
        "--out",
        str(out),
    ]
    assert main(argv + ["--skip-invalid"]) == 2
    err = capsys.readouterr().err
    assert "Nothing is valid: --skip-invalid rejected every record" in err and "rejected.jsonl" in err
    assert len((out / "rejected.jsonl").read_text().splitlines()) == 2 and not (out / "data").exists()
    ann.write_text(json.dumps({"image": "a.png"}) + "\n")  # fixed: the failed build's folder is replaced
    assert main(argv + ["--skip-invalid"]) == 0
    assert _all_rows(load_artifact_dataset(out)).keys() == {"a"}


# --------------------------------------------------------------------------- confinement and data safety
def test_image_paths_stay_inside_images_and_ids_are_relative(tmp_path):
    imgs = tmp_path / "imgs"
    _img(imgs / "in" / "a.png")
    _img(tmp_path / "outside.png")
    _img(tmp_path / "elsewhere" / "abs.png")
    records = [
        {"image": str(imgs / "in" / "a.png")},  # absolute but inside: fine, id relative
        {"image": "../outside.png"},
        {"image": str(tmp_path / "elsewhere" / "abs.png")},
    ]
    ann = _jsonl(tmp_path, records)
    dsdict, rejected, _ = build_dataset("jsonl", ann, imgs, skip_invalid=True, progress=False)
    assert list(_all_rows(dsdict)) == ["in/a"]
    assert [r["image_id"] for r in rejected] == ["outside", "abs"]
    assert all("outside --images" in r["problems"][0]["message"] for r in rejected)
    dsdict, rejected, _ = build_dataset("jsonl", ann, imgs, allow_outside_images=True, progress=False)
    assert sorted(_all_rows(dsdict)) == ["abs", "in/a", "outside"] and rejected == []

    coco = tmp_path / "coco.json"
    coco.write_text(
        json.dumps(
            {
                "images": [
                    {"id": 1, "file_name": str(imgs / "in" / "a.png")},
                    {"id": 2, "file_name": "../outside.png"},
                ],
                "annotations": [],
                "categories": [],
            }
        )
    )
    dsdict, rejected, _ = build_dataset("coco", coco, imgs, skip_invalid=True, progress=False)
    assert list(_all_rows(dsdict)) == ["in/a"] and rejected[0]["problems"][0]["field"] == "file_name"
    ls = _ls_export(tmp_path / "ls.json", [("/data/local-files/?d=../outside.png", [[]])])
    with pytest.raises(DatasetValidationError, match="outside --images"):
        build_dataset("labelstudio", ls, imgs, progress=False)


def test_out_may_not_replace_or_nest_with_the_inputs(tmp_path, capsys):
    imgs = tmp_path / "work" / "imgs"
    _img(imgs / "a.png")
    ann = _jsonl(tmp_path / "work", [{"image": "a.png"}])
    base = ["dataset", "build", "--format", "jsonl", "--annotations", str(ann), "--images", str(imgs), "--overwrite"]
    for out in (imgs, tmp_path / "work", imgs / "sub", ann, tmp_path):
        assert main(base + ["--out", str(out)]) == 2
        assert "--out" in capsys.readouterr().err
    assert (imgs / "a.png").is_file() and ann.is_file()
    assert main(base + ["--out", str(tmp_path / "work" / "out")]) == 0  # a sibling of the inputs is fine


def test_leftover_tmp_folders_removed_and_output_follows_umask(tmp_path, caplog):
    imgs = tmp_path / "imgs"
    _img(imgs / "a.png")
    ann = _jsonl(tmp_path, [{"image": "a.png"}])
    for name in ("out.tmp-ab_c1234", "out.tmp-mine", "other.tmp-abcd1234"):
        (tmp_path / name).mkdir()
    argv = ["dataset", "build", "--format", "jsonl", "--annotations", str(ann), "--images", str(imgs)]
    old = os.umask(0o022)
    try:
        with caplog.at_level(logging.WARNING, logger="synartifact.data.cli"):
            assert main(argv + ["--out", str(tmp_path / "out")]) == 0
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir() if ".tmp-" in p.name) == ["other.tmp-abcd1234", "out.tmp-mine"]
    assert "out.tmp-ab_c1234, left over by an interrupted build" in caplog.text
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755


def test_dataset_card_shows_the_import_report(tmp_path):
    imgs = tmp_path / "imgs"
    _img(imgs / "one.png", (200, 100))
    regions = [
        _ls_rect("over", 10, 80, 20, 21.6, "blur"),  # clipped
        _ls_rect("rot", 10, 10, 20, 10, "Abnormal Texture", rotation=90),
        _ls_region("poly", "polygonlabels", {"points": [[10, 10], [30, 5], [20, 40]], "polygonlabels": ["blur"]}),
        _ls_rect("car", 50, 50, 10, 10, "Car"),  # dropped by the label map
        _ls_region("kp", "keypointlabels", {"x": 5, "y": 5, "width": 0.5, "keypointlabels": ["blur"]}),
    ]
    second = [_ls_rect("r2", 50, 50, 10, 10, "blur")]
    ann = _ls_export(tmp_path / "export.json", [("one.png", [regions, second]), ("missing.png", [[]])])
    out = tmp_path / "out"
    argv = ["dataset", "build", "--format", "labelstudio", "--annotations", str(ann), "--images", str(imgs)]
    assert main(argv + ["--out", str(out), "--skip-invalid", "--label-map", "Car=ignore"]) == 0
    card = (out / "README.md").read_text()
    section = card.split("## Import report", 1)[1].split("## Citation", 1)[0]
    for row in (
        "| records read | 2 |",
        "| records kept | 1 |",
        "| records rejected (listed in `rejected.jsonl`, kept out of the upload) | 1 |",
        "| boxes clipped to the image | 1 |",
        "| rotated boxes replaced by their axis-aligned bounding box | 1 |",
        "| polygons replaced by their bounding box | 1 |",
        "| annotations skipped (one annotation per task was used) | 1 |",
        "| dropped: keypointlabels results (not a box, polygon or mask) | 1 |",
        "| artifacts labelled `Car` dropped by the label map (`ignore`) | 1 |",
    ):
        assert row in section.splitlines(), f"{row!r} not in the card's import report:\n{section}"
    assert "brush masks" not in section and "cancelled" not in section  # zero counts are left out

    from synartifact.data.hub import save_hub_folder

    plain = save_hub_folder(load_artifact_dataset(out), tmp_path / "plain")
    assert "## Import report" not in (plain / "README.md").read_text()  # only builds from annotations have one
