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

__all__ = [
    "LOCAL_ROOTS",
    "TMP_MARK",
    "atomic_dir",
    "final_path",
    "is_local_path",
    "link_outside",
    "make_temp_dir",
    "remove_stale_temp_dirs",
    "scratch_dir",
    "settle_interrupted_swap",
    "temp_dir_target",
    "write_text_atomic",
]

# The git-ignored folders the recipes and the demo write to: ``outputs/x`` names a folder to build, never a Hub repo.
LOCAL_ROOTS = ("outputs", "data")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w-]*/[\w.-]+")
# Every temporary output folder is ``<out name>.tmp-<8 characters of tempfile.mkdtemp>``, next to ``out``; a stage
# that writes into another stage's temporary folder nests the suffix (``<out>.tmp-ab12cd34.tmp-ef56gh78``).
TMP_MARK = ".tmp-"
_TMP_NAME = re.compile(r"(?P<name>.+?)(?:" + re.escape(TMP_MARK) + r"[a-z0-9_]{8})+")


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


def link_outside(root: str | os.PathLike, path: str | os.PathLike) -> Path | None:
    """The confinement rule for input files: the real file when ``path`` is written inside ``root`` but a symbolic
    link (the file or a folder on its way) leads outside it; ``None`` otherwise (inside, or written outside: the
    caller's own rule covers that). The dataset builder and ``synartifact repair --images`` refuse such files."""
    try:
        Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
    except ValueError:
        return None
    real = Path(os.path.realpath(path))
    try:
        real.relative_to(os.path.realpath(root))
    except ValueError:
        return real
    return None


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


def make_temp_dir(out: str | os.PathLike) -> Path:
    """Create an empty temporary folder next to ``out`` for a run that writes ``out``, named so that
    :func:`temp_dir_target` recognizes it and :func:`remove_stale_temp_dirs` cleans it up after a kill."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{out.name}{TMP_MARK}", dir=out.parent))


@contextmanager
def scratch_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``out`` for a run's intermediate files (a scratch model, say); it is deleted
    when the block ends, and named like :func:`make_temp_dir`'s, so a killed run's one is cleaned up the same way."""
    tmp = make_temp_dir(out)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def temp_dir_target(path: str | os.PathLike) -> Path | None:
    """The output a temporary folder made by :func:`make_temp_dir` becomes when complete, or ``None`` when ``path``
    is not named as one."""
    path = Path(path)
    match = _TMP_NAME.fullmatch(path.name)
    return path.with_name(match["name"]) if match else None


def final_path(path: str | os.PathLike) -> Path:
    """The folder users will load: ``path`` itself, or the output its temporary folder becomes.

    A script run into a temporary folder (the demo runs each stage so) names its output by this in the files it
    writes (cards, run records, saved configs), never by the temporary name.
    """
    return temp_dir_target(path) or Path(path)


def remove_stale_temp_dirs(out: str | os.PathLike) -> list[Path]:
    """Delete the temporary folders of ``out`` that a killed run left, and settle an interrupted swap (see
    :func:`settle_interrupted_swap`); return the folders deleted. Call it before a run of ``out`` starts, never
    while another run writes ``out``."""
    out = Path(out)
    if not out.parent.is_dir():
        return []
    settle_interrupted_swap(out)
    removed = []
    for path in sorted(out.parent.iterdir()):
        if temp_dir_target(path) == out and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
            logging.getLogger(__name__).warning("Removed %s, left over by an interrupted build of %s", path, out)
            removed.append(path)
    return removed


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
    """Yield an empty temporary folder (:func:`make_temp_dir`) to write into; rename it to ``out`` only when the block completes.

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
    tmp = make_temp_dir(out)
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


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` whole: written to a temporary file beside it, then renamed over it, so a reader
    (or a killed run) never sees half a file. A replaced file keeps its mode (mkstemp's own is owner-only)."""
    path = Path(path)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
