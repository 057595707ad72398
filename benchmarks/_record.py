"""One JSON result file per benchmark run: what ran, when, where, on which commit, and the figures it measured.

Every script in ``benchmarks/`` takes ``--json PATH`` (default: a new ``benchmarks/results/<name>-<UTC time>.json``)
and calls :func:`write_result` at the end of a run. ``python benchmarks/report.py`` renders the tables of
``benchmarks/README.md`` from these files only: a figure that no result file holds is not in the tables.

A result file::

    {"benchmark": "dataset_throughput", "command": "python benchmarks/dataset_throughput.py --n 200",
     "argv": [...], "date": "2026-12-03T08:00:00+00:00",
     "machine": {"platform": ..., "machine": ..., "processor": ..., "cpu_count": 2, "load_average": [...]},
     "commit": "9b30511...", "dirty": true, "versions": {"torch": ..., ...},
     "rows": [{...figures...}, ...]}

``rows`` holds one dict of figures per table row (one for most benchmarks; one per stage or per classifier for
others); ``report.py`` knows which of their keys each table shows.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
SCHEMA = 1
PACKAGES = ("synartifact", "torch", "transformers", "trl", "diffusers", "datasets", "peft", "accelerate")


def add_json_flag(parser: Any) -> None:
    """Add ``--json PATH`` to a benchmark's argument parser."""
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="where to write this run's result (default: a new benchmarks/results/<benchmark>-<UTC time>.json; "
        "python benchmarks/report.py renders benchmarks/README.md's tables from that folder)",
    )


def git_commit(repo: Path = REPO) -> tuple[str | None, bool | None]:
    """The checked-out commit and whether the working tree differs from it (``None`` outside a git checkout)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, bool(status.strip())


def machine() -> dict[str, Any]:
    """Where the run ran: OS and architecture, CPU model, logical CPU count and the load average at the end."""
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": load,
        "python": platform.python_version(),
    }


def versions() -> dict[str, str | None]:
    """Installed versions of the packages a figure depends on (``None`` when not installed)."""
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def write_result(
    benchmark: str, rows: list[dict[str, Any]], path: Path | None = None, argv: list[str] | None = None
) -> Path:
    """Write this run's result file (``path``, else a new file under ``benchmarks/results/``); return its path."""
    argv = list(sys.argv[1:] if argv is None else argv)
    now = datetime.now(timezone.utc)
    commit, dirty = git_commit()
    record = {
        "schema": SCHEMA,
        "benchmark": benchmark,
        "command": shlex.join(["python", f"benchmarks/{benchmark}.py", *argv]),
        "argv": argv,
        "date": now.isoformat(timespec="seconds"),
        "machine": machine(),
        "commit": commit,
        "dirty": dirty,
        "versions": versions(),
        "rows": rows,
    }
    if path is None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{benchmark}-{now.strftime('%Y%m%dT%H%M%SZ')}-{os.getpid()}.json"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"result: {path}", flush=True)
    return path
