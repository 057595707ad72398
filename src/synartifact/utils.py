"""Small helpers shared by every stage."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_dir"]


@contextmanager
def atomic_dir(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty ``<out>.tmp-*`` folder to write into; rename it to ``out`` only when the block completes.

    An existing ``out`` is replaced only with ``overwrite`` (and only once the new folder is complete), so a failed
    or interrupted run never leaves a half-written output nor loses the previous one.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists: choose another output folder or pass --overwrite.")
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a folder.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f"{out.name}.old-", dir=out.parent))
            out.rename(old / out.name)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
