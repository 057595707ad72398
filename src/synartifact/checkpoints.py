"""Which training checkpoints are whole: the checks that let ``sft`` and ``ddpo`` skip one that a kill left half written.

A process killed while saving leaves a checkpoint folder with files missing or cut short. Resuming from it fails (or,
worse, silently starts from fresh weights), so both scripts look for the newest checkpoint whose files are all there
and complete, and warn about each one they pass over.
"""

from __future__ import annotations

import json
import logging
import re
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["file_problem", "numbered_folders", "newest_complete"]

logger = logging.getLogger(__name__)


def _safetensors_problem(path: Path, size: int) -> str | None:
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            return "shorter than a safetensors header"
        (header_size,) = struct.unpack("<Q", head)
        if 8 + header_size > size:
            return "truncated (its header runs past the end of the file)"
        try:
            header = json.loads(fh.read(header_size))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return "unreadable (its safetensors header is not JSON)"
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    if 8 + header_size + max(ends, default=0) > size:
        return "truncated (its tensors run past the end of the file)"
    return None


def file_problem(path: str | Path) -> str | None:
    """Why a checkpoint file cannot be loaded (missing, empty, cut short, unreadable), or ``None`` when it is whole.

    Reads headers only: safetensors files must hold every tensor their header lists, ``torch.save`` files (``.pt``,
    ``.pth``, ``.bin``, ``.pkl``) must end with their zip directory, JSON files must parse.
    """
    path = Path(path)
    if not path.is_file():
        return f"{path.name} is missing"
    size = path.stat().st_size
    if size == 0:
        return f"{path.name} is empty"
    problem = None
    if path.suffix == ".safetensors":
        problem = _safetensors_problem(path, size)
    elif path.suffix in (".pt", ".pth", ".bin", ".pkl"):
        if not zipfile.is_zipfile(path):
            problem = "truncated (no zip directory at its end)"
    elif path.suffix == ".json":
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            problem = "not valid JSON (cut short?)"
    return f"{path.name} is {problem}" if problem else None


def numbered_folders(parent: str | Path, pattern: str) -> list[tuple[int, Path]]:
    """The folders of ``parent`` whose name matches ``pattern`` (one group: the number), oldest number first."""
    parent = Path(parent)
    if not parent.is_dir():
        return []
    regex = re.compile(pattern)
    found = []
    for child in parent.iterdir():
        match = regex.fullmatch(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found)


def newest_complete(
    folders: list[tuple[int, Path]], problem: Callable[[Path], str | None]
) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest folder for which ``problem`` finds nothing, and the newer ones it skipped with their problem
    (each also logged as a warning)."""
    skipped = []
    for _, folder in reversed(folders):
        reason = problem(folder)
        if reason is None:
            return folder, skipped
        logger.warning("Skipping the incomplete checkpoint %s: %s.", folder, reason)
        skipped.append((folder, reason))
    return None, skipped
