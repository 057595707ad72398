import numpy as np
import pytest

from synartifact.data.synth import SYNTH_KINDS, UNSYNTHESIZABLE_KINDS, synthesize_dataset, synthesize_example
from synartifact.taxonomy import SLUGS, get_kind


def _rows(ds):
    return [{k: v for k, v in r.items() if k != "image"} | {"pixels": np.asarray(r["image"]).tobytes()} for r in ds]


def test_kinds_partition_taxonomy():
    assert set(SYNTH_KINDS) | set(UNSYNTHESIZABLE_KINDS) == set(SLUGS) and len(SYNTH_KINDS) == 10


def test_example_deterministic_and_varies():
    a, b = synthesize_example(5, seed=1, size=64), synthesize_example(5, seed=1, size=64)
    assert a["artifacts"] == b["artifacts"] and np.array_equal(np.asarray(a["image"]), np.asarray(b["image"]))
    c = synthesize_example(5, seed=2, size=64)
    assert not np.array_equal(np.asarray(a["image"]), np.asarray(c["image"]))


@pytest.mark.parametrize("kind", SYNTH_KINDS)
def test_each_kind_changes_pixels_only_inside_its_box(kind):
    size = 64
    made = 0
    for i in range(12):
        row, clean, img = synthesize_example(
            i, seed=7, size=size, clean_fraction=0.0, kinds=(kind,), return_arrays=True
        )
        assert row["width"] == row["height"] == size and row["source"] == "synthetic" and row["prompt"]
        inside = np.zeros((size, size), bool)
        for art in row["artifacts"]:
            assert get_kind(art["label"]).slug == kind and art["caption"]
            x0, y0, x1, y1 = art["bbox"]
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
            inside[round(y0 * size) : round(y1 * size), round(x0 * size) : round(x1 * size)] = True
            made += 1
        changed = np.any(clean != img, axis=-1)
        assert not changed[~inside].any(), f"{kind}: pixels changed outside the boxes"
        if row["artifacts"]:
            assert changed[inside].mean() > 0.2, f"{kind}: the box barely changed"
    assert made >= 3


def test_dataset_deterministic_across_num_proc_and_covers_kinds():
    one = synthesize_dataset(24, size=32, seed=3, clean_fraction=0.1, num_proc=1)
    two = synthesize_dataset(24, size=32, seed=3, clean_fraction=0.1, num_proc=2)
    for split in ("train", "test"):
        assert _rows(one[split]) == _rows(two[split])
    assert len(one["train"]) + len(one["test"]) == 24
    big = synthesize_dataset(80, size=32, seed=0, clean_fraction=0.1)
    seen = {SLUGS[a["label"]] for s in big.values() for arts in s["artifacts"] for a in arts}
    assert seen == set(SYNTH_KINDS)
    test_kinds = {SLUGS[a["label"]] for arts in big["test"]["artifacts"] for a in arts}
    assert test_kinds == set(SYNTH_KINDS)  # stratified: every kind in the test split too


def test_bad_arguments():
    with pytest.raises(ValueError, match="n must be"):
        synthesize_dataset(0)
    with pytest.raises(ValueError, match="cannot synthesize"):
        synthesize_example(0, kinds=("awkward_facial_expression",))


def test_kinds_subset_and_max_artifacts(tmp_path, capsys):
    ds = synthesize_dataset(
        12, size=32, seed=4, clean_fraction=0.0, kinds=("localized_blur", "illegible_letters"), max_artifacts=1
    )
    arts = [a for split in ds.values() for row in split["artifacts"] for a in [row]]
    assert all(len(a) == 1 for a in arts)
    assert {SLUGS[x["label"]] for a in arts for x in a} == {"localized_blur", "illegible_letters"}
    from synartifact.cli import main
    from synartifact.data import load_artifact_dataset

    out = tmp_path / "s"
    argv = [
        "dataset",
        "synth",
        "--n",
        "6",
        "--size",
        "32",
        "--out",
        str(out),
        "--kinds",
        "Localized Blur, chromatic_irregularity",
    ]
    assert main(argv + ["--max-artifacts", "1", "--clean-fraction", "0"]) == 0
    loaded = load_artifact_dataset(out)
    got = {SLUGS[x["label"]] for split in loaded.values() for row in split["artifacts"] for x in row}
    assert got <= {"localized_blur", "chromatic_irregularity"} and got
    bad = ["dataset", "synth", "--n", "2", "--size", "32", "--out", str(tmp_path / "t"), "--kinds", "faces"]
    assert main(bad) == 2 and not (tmp_path / "t").exists()
    assert "Unknown artifact kind 'faces'" in capsys.readouterr().err


def test_select_split_takes_names_and_slices():
    import datasets
    import pytest

    from synartifact.data.splits import select_split

    splits = {
        "train": datasets.Dataset.from_dict({"i": list(range(10))}),
        "test": datasets.Dataset.from_dict({"i": [0]}),
    }
    assert select_split(splits, "train")["i"] == list(range(10))
    assert select_split(splits, "train[:4]")["i"] == [0, 1, 2, 3]
    assert select_split(splits, "train[50%:]")["i"] == [5, 6, 7, 8, 9]
    assert select_split(splits, "train[-2:]")["i"] == [8, 9]
    first, second = select_split(splits, "train[:60%]")["i"], select_split(splits, "train[60%:]")["i"]
    assert not set(first) & set(second) and len(first) + len(second) == 10
    with pytest.raises(ValueError, match="no split 'valid'"):
        select_split(splits, "valid[:3]")
    with pytest.raises(ValueError, match="NAME\\[start:stop\\]"):
        select_split(splits, "train[1]")
