"""The Hub layout: a folder that *is* the Hub dataset repository (card + parquet shards), loading, stats and push.

``save_hub_folder`` writes ``README.md`` (the dataset card from ``hub_cards/dataset_card.md`` with the real
counts), ``artifacts_per_kind.png`` (the paper's Figure 4 for this data) and
``data/<split>-XXXXX-of-YYYYY.parquet`` with the image bytes embedded. ``datasets.load_dataset(folder)`` and,
once uploaded, ``load_dataset("ORG/NAME")`` return the same ``DatasetDict``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

from synartifact.data.schema import _BASE_COLUMNS, KINDLESS
from synartifact.taxonomy import KINDS
from synartifact.utils import atomic_dir

__all__ = ["save_hub_folder", "load_artifact_dataset", "push_to_hub", "stats", "format_stats", "write_rejected"]

logger = logging.getLogger(__name__)

CARD_TEMPLATE = "dataset_card.md"
PLOT_NAME = "artifacts_per_kind.png"
REJECTED_NAME = "rejected.jsonl"
MAX_SHARD_BYTES = 500 * 1024 * 1024


def _counts(ds) -> dict[str, Any]:
    per_kind: Counter = Counter()
    images_with: Counter = Counter()
    clean = masks = 0
    origins: dict[str, Counter] = {}
    origin_col = ds.select_columns(["origin"])["origin"] if "origin" in ds.column_names else [None] * len(ds)
    for arts, origin in zip(ds.select_columns(["artifacts"])["artifacts"], origin_col):
        labels = [a["label"] for a in arts]
        per_kind.update(labels)
        images_with.update(set(labels))
        clean += not labels
        masks += sum(a.get("mask") is not None for a in arts)
        if origin is not None:
            o = origins.setdefault(origin, Counter())
            o["images"] += 1
            o["clean"] += not labels
            o["artifacts"] += len(labels)
            o["kindless"] += sum(label == KINDLESS for label in labels)
    sources = Counter(ds.select_columns(["source"])["source"])
    return {
        "images": len(ds),
        "clean": clean,
        "artifacts": sum(per_kind.values()),
        "kindless": per_kind.get(KINDLESS, 0),
        "masks": masks,
        "per_kind": per_kind,
        "images_with": images_with,
        "sources": sources,
        "origins": {name: dict(c) for name, c in sorted(origins.items())},
    }


def stats(data) -> dict[str, dict[str, Any]]:
    """Per split: image count, clean images, artifact count and per-kind counts (for a DatasetDict or a folder)."""
    if isinstance(data, (str, Path)):
        data = load_artifact_dataset(data)
    return {split: _counts(ds) for split, ds in data.items()}


def format_stats(table: dict[str, dict[str, Any]]) -> str:
    """The per-kind table as aligned text (what ``synartifact dataset stats`` prints)."""
    splits = list(table)
    head = f"{'#':>2}  {'kind':<36}" + "".join(f"{s:>10}" for s in splits) + f"{'total':>10}"
    lines = [head, "-" * len(head)]
    for k in KINDS:
        counts = [table[s]["per_kind"].get(k.index, 0) for s in splits]
        lines.append(f"{k.index:>2}  {k.slug:<36}" + "".join(f"{c:>10}" for c in counts) + f"{sum(counts):>10}")
    lines.append("-" * len(head))
    for label, key in (
        ("artifacts without a kind (label -1)", "kindless"),
        ("artifacts", "artifacts"),
        ("images", "images"),
        ("images without artifacts", "clean"),
    ):
        counts = [table[s][key] for s in splits]
        lines.append(f"{'':>2}  {label:<36}" + "".join(f"{c:>10}" for c in counts) + f"{sum(counts):>10}")
    return "\n".join(lines)


def _plot(table: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    bottom = [0] * len(KINDS)
    for split, t in table.items():
        vals = [t["per_kind"].get(k.index, 0) for k in KINDS]
        ax.bar(range(len(KINDS)), vals, bottom=bottom, label=split)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(range(len(KINDS)), [k.name for k in KINDS], rotation=40, ha="right", fontsize=8)
    ax.set_ylabel("artifacts")
    ax.set_title("Artifacts per kind")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _parquet_bytes(path: Path) -> tuple[int, int]:
    """(uncompressed, on-disk) bytes of one parquet shard."""
    import pyarrow.parquet as pq

    meta = pq.read_metadata(path)
    return sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)), path.stat().st_size


def _card_data(dsdict, shards: dict[str, list[Path]]) -> dict[str, Any]:
    from datasets import DatasetInfo

    n = sum(len(ds) for ds in dsdict.values())
    size = (
        next(
            s for limit, s in ((1e3, "n<1K"), (1e4, "1K<n<10K"), (1e5, "10K<n<100K"), (1e6, "100K<n<1M")) if n < limit
        )
        if n < 1e6
        else "1M<n<10M"
    )
    features = next(iter(dsdict.values())).features
    info = DatasetInfo(features=features)._to_yaml_dict()
    # Sizes from the written shards: besides informing the Hub viewer they make datasets' cache key (which hashes
    # the card's dataset_info) differ when a folder is rebuilt in place with the same split sizes.
    split_bytes = {}
    for split, paths in shards.items():
        sizes = [_parquet_bytes(p) for p in paths]
        split_bytes[split] = (sum(a for a, _ in sizes), sum(b for _, b in sizes))
    info["splits"] = [{"name": s, "num_bytes": split_bytes[s][0], "num_examples": len(ds)} for s, ds in dsdict.items()]
    info["download_size"] = sum(v[1] for v in split_bytes.values())
    info["dataset_size"] = sum(v[0] for v in split_bytes.values())
    return {
        "license": "cc-by-4.0",
        "pretty_name": "SynArtifact",
        "task_categories": ["image-classification", "object-detection", "image-to-text"],
        "tags": ["synthetic-images", "artifacts", "ai-generated", "image-quality", "synartifact"],
        "size_categories": [size],
        "configs": [{"config_name": "default", "data_files": [{"split": s, "path": f"data/{s}-*"} for s in shards]}],
        "dataset_info": info,
    }


def save_hub_folder(
    dsdict,
    out: str | Path,
    overwrite: bool = False,
    card_context: dict[str, Any] | None = None,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write ``dsdict`` as a Hub dataset repository folder (card, plot, parquet shards); returns the folder.

    Written to ``<out>.tmp-*`` and renamed when complete; an existing ``out`` is replaced only with ``overwrite``.
    ``card_context`` adds Jinja variables to the card (``title``, ``description``, ``rejected``, ``build_report``: a
    :meth:`~synartifact.data.importers.BuildReport.to_dict`, shown as the card's import report ...).
    ``extra_files`` (name -> text) are written into the folder before it is renamed (a merge's report).
    """
    from synartifact.cards import render_dataset_card
    from synartifact.data.synth import SYNTH_KINDS, UNSYNTHESIZABLE_KINDS

    out = Path(out)
    empty = [split for split, ds in dsdict.items() if len(ds) == 0]
    if empty:  # a parquet split with no rows cannot be listed in the card's configs; drop it
        logger.warning("Dropping empty split(s) %s from %s", ", ".join(empty), out)
        dsdict = type(dsdict)({split: ds for split, ds in dsdict.items() if len(ds)})
    if not dsdict:
        raise ValueError(f"Nothing to write to {out}: every split is empty")
    with atomic_dir(out, overwrite=overwrite) as tmp:
        (tmp / "data").mkdir(parents=True)
        shards: dict[str, list[Path]] = {}
        for split, ds in dsdict.items():
            nbytes = ds.data.nbytes if ds._indices is None else ds.data.nbytes * len(ds) / max(1, len(ds.data))
            num = max(1, math.ceil(nbytes / MAX_SHARD_BYTES))
            shards[split] = []
            for i in range(num):
                name = f"{split}-{i:05d}-of-{num:05d}.parquet"
                ds.shard(num, i, contiguous=True).to_parquet(str(tmp / "data" / name))
                shards[split].append(tmp / "data" / name)
        table = stats(dsdict)
        _plot(table, tmp / PLOT_NAME)
        sources = Counter()
        origins: dict[str, dict[str, dict[str, int]]] = {}  # origin -> split -> counts
        for split, t in table.items():
            sources.update(t["sources"])
            for name, counts in t["origins"].items():
                origins.setdefault(name, {})[split] = counts
        context = {
            "title": "SynArtifact dataset",
            "splits": table,
            "kinds": KINDS,
            "total_images": sum(t["images"] for t in table.values()),
            "total_artifacts": sum(t["artifacts"] for t in table.values()),
            "total_kindless": sum(t["kindless"] for t in table.values()),
            "total_masks": sum(t["masks"] for t in table.values()),
            "origins": origins,
            "image_columns": [
                c for c in next(iter(dsdict.values())).column_names if c not in _BASE_COLUMNS and c != "origin"
            ],
            "kind_totals": {k.index: sum(t["per_kind"].get(k.index, 0) for t in table.values()) for k in KINDS},
            "sources": dict(sources),
            "synth_kinds": SYNTH_KINDS,
            "unsynth_kinds": UNSYNTHESIZABLE_KINDS,
            "plot": PLOT_NAME,
            "rejected": 0,
        }
        context.update(card_context or {})
        card = render_dataset_card(CARD_TEMPLATE, _card_data(dsdict, shards), **context)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
    return out


def write_rejected(folder: str | Path, rejected: list[dict[str, Any]]) -> Path:
    """Write the rejected records, one JSON object a line, to ``<folder>/rejected.jsonl``."""
    path = Path(folder) / REJECTED_NAME
    with path.open("w", encoding="utf-8") as fh:
        for row in rejected:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def load_artifact_dataset(path_or_id: str | Path, split: str | None = None):
    """Load a SynArtifact dataset from a local Hub-layout folder or a Hub id (``DatasetDict``, or one split)."""
    from datasets import load_dataset

    path = str(path_or_id)
    if not os.path.isdir(path):
        return load_dataset(path, split=split)
    folder = Path(path).resolve()
    if not (folder / "data").is_dir():
        raise FileNotFoundError(
            f"{path} is not a SynArtifact dataset folder: it has no data/ folder of parquet shards"
        )
    # A folder rewritten in place (--overwrite, rm + rebuild) must never be served from a stale Arrow cache:
    # key the cache on the files' names, sizes and modification times.
    from datasets import config

    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".parquet", ".md"))
    sig = hashlib.sha1(repr([(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]).encode()).hexdigest()[
        :16
    ]
    cache_dir = Path(config.HF_DATASETS_CACHE) / "synartifact-local" / f"{folder.name}-{sig}"
    return load_dataset(str(folder), split=split, cache_dir=str(cache_dir))


def push_to_hub(folder: str | Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Upload a folder written by :func:`save_hub_folder` as the dataset repo ``repo_id``; returns its URL.

    The token comes from ``token``, ``HF_TOKEN`` or ``huggingface-cli login``; it is never printed.
    """
    from huggingface_hub import HfApi, get_token

    folder = Path(folder)
    if not (folder / "README.md").is_file() or not (folder / "data").is_dir():
        raise FileNotFoundError(
            f"{folder} is not a dataset folder: expected README.md and data/ (write it with `synartifact dataset build` or `synth`)"
        )
    if "/" not in repo_id or repo_id.count("/") != 1:
        raise ValueError(f"--repo-id {repo_id!r} must look like ORG/NAME")
    token = token or get_token()
    if not token:
        raise ValueError(
            "No Hugging Face token found: run `huggingface-cli login` (or `hf auth login`) or set HF_TOKEN to a token with write access."
        )
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="dataset",
        ignore_patterns=[REJECTED_NAME],
        commit_message="Upload SynArtifact dataset",
    )
    return f"https://huggingface.co/datasets/{repo_id}"
