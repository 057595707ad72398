import json
import subprocess
import sys
from pathlib import Path

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
    dsdict, rejected = build_dataset("synartifact", tmp_path / "rel", progress=False)
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
    assert "corrupt image" in msg and "artifacts_class" not in msg.split("corrupt")[0][-5:]
    assert "Artifacts annotation[0].label" in msg and "99" in msg


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
    dsdict, _ = build_dataset("jsonl", ann2, imgs, progress=False)
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
            "ab12cd-one.png",
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
    assert "task 3 (gone.png), data.image: no file gone.png" in msg and "Bad Label" in msg


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
    dsdict, rejected = build_dataset("coco", ann, imgs, skip_invalid=True, progress=False)
    kept = [r["image_id"] for split in dsdict.values() for r in split]
    assert kept == ["p2"]  # only the unambiguous entry
    messages = [p["message"] for r in rejected for p in r["problems"]]
    assert sum("duplicate image id" in m for m in messages) == 2
