"""atomic_dir: outputs appear only when complete, and a failure loses nothing."""

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
