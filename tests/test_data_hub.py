import os
from collections import Counter

import numpy as np
import pytest

from synartifact.cli import main
from synartifact.data import load_artifact_dataset, save_hub_folder, synthesize_dataset
from synartifact.data.hub import push_to_hub
from synartifact.taxonomy import KINDS


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    ds = synthesize_dataset(20, size=32, seed=5)
    out = tmp_path_factory.mktemp("hub") / "ds"
    save_hub_folder(ds, out)
    return ds, out


def test_round_trip_keeps_features_and_rows(synth):
    ds, out = synth
    loaded = load_artifact_dataset(out)
    assert set(loaded) == {"train", "test"}
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
    ]
    for split in ds:
        assert loaded[split].features == ds[split].features
        assert len(loaded[split]) == len(ds[split])
        for a, b in zip(ds[split], loaded[split]):
            assert np.array_equal(np.asarray(a.pop("image")), np.asarray(b.pop("image")))
            assert a == b
    assert len(load_artifact_dataset(out, split="test")) == len(ds["test"])


def test_card_has_real_counts(synth):
    ds, out = synth
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "configs:" in card and "data/train-*" in card and "2402.18068" in card
    assert (out / "artifacts_per_kind.png").stat().st_size > 1000
    # the counts, straight from the rows (not from the helper that renders the card)
    rows = {split: ds[split]["artifacts"] for split in ("train", "test")}
    per_kind = {split: Counter(a["label"] for arts in rows[split] for a in arts) for split in rows}
    for split, arts in rows.items():
        images, clean, artifacts = len(arts), sum(not a for a in arts), sum(len(a) for a in arts)
        assert f"| {split} | {images} | {clean} | {artifacts} |" in card
    totals = [sum(len(r) for r in rows.values()), sum(not a for r in rows.values() for a in r)]
    totals.append(sum(len(a) for r in rows.values() for a in r))
    assert "| **total** | {} | {} | {} |".format(*totals) in card
    assert sum(per_kind["train"].values()) + sum(per_kind["test"].values()) == totals[2] > 0
    for k in KINDS:
        train, test = per_kind["train"][k.index], per_kind["test"][k.index]
        assert f"| {k.index} | {k.name} | {train} | {test} | {train + test} |" in card
    assert "`awkward_facial_expression`" in card.split("cannot")[1]  # which kinds synthesis cannot make


def test_refuses_overwrite_and_stats_cli(synth, capsys):
    ds, out = synth
    with pytest.raises(FileExistsError, match="overwrite"):
        save_hub_folder(ds, out)
    assert main(["dataset", "stats", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "localized_blur" in printed and "images without artifacts" in printed
    assert not list(out.parent.glob("*.tmp-*"))


def test_push_without_token_says_how_to_log_in(synth, tmp_path, monkeypatch, capsys):
    _, out = synth
    monkeypatch.setenv("HF_TOKEN", "")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    monkeypatch.setattr(c, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf" / "stored_tokens"))
    with pytest.raises(ValueError, match="huggingface-cli login"):
        push_to_hub(out, "org/name")
    assert main(["dataset", "push", str(out), "--repo-id", "org/name"]) == 2
    assert "HF_TOKEN" in capsys.readouterr().err
    assert os.environ["HF_TOKEN"] == ""


def test_overwrite_then_load_serves_new_rows(tmp_path):
    out = tmp_path / "ds"
    save_hub_folder(synthesize_dataset(6, size=32, seed=1, progress=False), out)
    first = load_artifact_dataset(out, split="train")["image_id"]
    save_hub_folder(synthesize_dataset(6, size=32, seed=2, progress=False), out, overwrite=True)
    second = load_artifact_dataset(out, split="train")["image_id"]
    assert all(i.startswith("synth-1-") for i in first) and all(i.startswith("synth-2-") for i in second)
