"""Small helpers shared by every stage."""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["LOCAL_ROOTS", "atomic_dir", "is_local_path", "settle_interrupted_swap"]

# The git-ignored folders the recipes and the demo write to: ``outputs/x`` names a folder to build, never a Hub repo.
LOCAL_ROOTS = ("outputs", "data")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w-]*/[\w.-]+")


def is_local_path(name: str | os.PathLike) -> bool:
    """Whether a model or dataset name means a local folder rather than a Hub id ``org/name``.

    Local: it exists; or it starts with ``.``, ``/`` or ``~``; or it is not shaped ``org/name`` (no slash, or
    several); or its first part is an existing folder or one of :data:`LOCAL_ROOTS`. The one rule every stage uses.
    """
    text = os.fspath(name)
    if not text:
        return False
    if Path(text).expanduser().exists() or text.startswith((".", "/", "~")) or "\\" in text:
        return True
    if not _HUB_ID.fullmatch(text):
        return True
    first = text.split("/", 1)[0]
    return first in LOCAL_ROOTS or Path(first).is_dir()


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask alone must set it to read it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def settle_interrupted_swap(out: Path) -> None:
    """Finish what a run killed during :func:`atomic_dir`'s final swap left: ``<out>.old-*`` folders.

    Killed after the new folder took ``out``'s name, the ``.old-*`` folder holds the replaced output: it is deleted
    (the swap would have). Killed between the two renames, ``out`` is missing and the ``.old-*`` folder holds the
    previous output: it is renamed back to ``out`` (the new one never took its place). Only folders of that exact
    name holding nothing but ``out``'s name are touched.
    """
    if not out.parent.is_dir():
        return
    pattern = re.compile(re.escape(out.name) + r"\.old-[a-z0-9_]{8}")
    for old in sorted(out.parent.iterdir()):
        if not pattern.fullmatch(old.name) or old.is_symlink() or not old.is_dir():
            continue
        inside = list(old.iterdir())
        if any(p.name != out.name for p in inside):
            continue  # not what atomic_dir leaves: not ours to touch
        if inside and not out.exists() and not out.is_symlink():
            inside[0].rename(out)
            logging.getLogger(__name__).warning(
                "Restored %s from %s, left by a run killed while replacing it", out, old
            )
        else:
            logging.getLogger(__name__).warning("Removed %s, left by a run killed while replacing %s", old, out)
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty ``<out>.tmp-*`` folder to write into; rename it to ``out`` only when the block completes.

    An existing ``out`` is replaced only with ``overwrite`` (and only once the new folder is complete), so a failed
    or interrupted run never leaves a half-written output nor loses the previous one; what a run killed during the
    final swap left (``<out>.old-*``) is settled first (see :func:`settle_interrupted_swap`).
    """
    out = Path(out)
    settle_interrupted_swap(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists: choose another output folder or pass --overwrite.")
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a folder.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private (0o700); an output folder follows the umask
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
