"""SynArtifact datasets: the schema, importers of real annotations, offline synthesis and the Hub folder layout.

Imports are lazy so that ``synartifact.data.synth`` workers start quickly; the public names are::

    get_features, load_artifact_dataset, synthesize_dataset, save_hub_folder, build_dataset, merge_datasets,
    DatasetValidationError
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "DatasetValidationError",
    "build_dataset",
    "get_features",
    "load_artifact_dataset",
    "merge_datasets",
    "push_to_hub",
    "save_hub_folder",
    "stats",
    "synthesize_dataset",
]

_WHERE = {
    "DatasetValidationError": "synartifact.data.schema",
    "get_features": "synartifact.data.schema",
    "build_dataset": "synartifact.data.importers",
    "load_artifact_dataset": "synartifact.data.hub",
    "merge_datasets": "synartifact.data.merge",
    "push_to_hub": "synartifact.data.hub",
    "save_hub_folder": "synartifact.data.hub",
    "stats": "synartifact.data.hub",
    "synthesize_dataset": "synartifact.data.synth",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'synartifact.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
