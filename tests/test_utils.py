"""atomic_dir: outputs appear only when complete, and a failure loses nothing."""

from pathlib import Path

import pytest

from synartifact.utils import atomic_dir


def test_atomic_dir_renames_when_complete_and_keeps_old_output_on_failure(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("one")
        assert not out.exists(), "nothing at the final path until the block completes"
    assert (out / "a.txt").read_text() == "one"

    with pytest.raises(FileExistsError, match="--overwrite"):
        with atomic_dir(out):
            pass

    with pytest.raises(RuntimeError):
        with atomic_dir(out, overwrite=True) as tmp:
            (tmp / "a.txt").write_text("two")
            raise RuntimeError("interrupted")
    assert (out / "a.txt").read_text() == "one", "the previous output survives a failed overwrite"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "no temporary folder is left behind"

    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("three")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_temporary_folders_are_named_recognized_and_cleaned_in_one_place(tmp_path, caplog):
    from synartifact.utils import TMP_MARK, final_path, make_temp_dir, remove_stale_temp_dirs, temp_dir_target

    out = tmp_path / "model"
    tmp = make_temp_dir(out)
    assert tmp.is_dir() and tmp.parent == tmp_path and tmp.name.startswith("model" + TMP_MARK)
    assert temp_dir_target(tmp) == out and final_path(tmp) == out
    # a stage run inside another stage's temporary folder (the demo's) nests the suffix
    nested = make_temp_dir(tmp)
    assert final_path(nested) == out
    # names a user might choose are not temporary folders
    for name in ("model", "model.tmp", "model.tmp-mine", "model.tmp-abcdefghi", "model.tmp-ABCDEFGH"):
        assert temp_dir_target(tmp_path / name) is None and final_path(tmp_path / name) == tmp_path / name
    assert final_path("outputs/demo/classifier") == Path("outputs/demo/classifier")

    other = make_temp_dir(tmp_path / "other")
    mine = tmp_path / "model.tmp-mine"
    mine.mkdir()
    with atomic_dir(tmp_path / "kept") as kept:
        (kept / "a.txt").write_text("x")
    removed = remove_stale_temp_dirs(out)
    assert sorted(removed) == sorted([tmp, nested])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["kept", "model.tmp-mine", other.name])
    assert f"Removed {tmp}" in caplog.text
