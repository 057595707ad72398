"""synartifact: find and fix artifacts in AI-generated images (SynArtifact, arXiv 2402.18068).

The public objects are exported lazily (PEP 562), so that ``import synartifact`` stays light: torch and
transformers load only when ``ArtifactClassifier`` (or another heavy object) is first used.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("synartifact")  # setup.cfg's, the one place the version is written
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"

# public name -> module that defines it; other stages add their objects here.
_LAZY: dict[str, str] = {
    "ArtifactClassifier": "synartifact.classifier.model",
    "ArtifactReport": "synartifact.report",
    "Artifact": "synartifact.report",
    "ArtifactReward": "synartifact.reward",
    "ArtifactRepairer": "synartifact.repair",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'synartifact' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
