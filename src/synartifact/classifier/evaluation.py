"""``synartifact evaluate``: a classifier against its zero-shot base on a dataset split, with a report and plots.

``synartifact evaluate --model DIR_OR_ID [--baseline DIR_OR_ID] --dataset DIR_OR_ID [--split test] --out DIR``
writes ``DIR/metrics.json`` (``{"model": {...}, "baseline": {...}}``), ``DIR/report.md`` (the paper's Table 1
shape: zero-shot baseline, fine-tuned model and the difference), ``DIR/predictions.jsonl`` and PNG plots, and adds
the results to the model's card when the model is a folder that ``synartifact sft`` wrote. The metrics and their
definitions are in :mod:`synartifact.classifier.metrics`.

``--protocol synthscars|loki`` adds a peer's own metrics (:data:`~synartifact.classifier.metrics.PROTOCOLS`) under
``protocol`` in each model's metrics, and ``metrics.json`` / ``report.md`` name the protocol that produced each
number. On a dataset with an ``origin`` column (a merge), a peer's protocol is computed on the rows of that origin
only (all metrics are then of those rows, and ``info`` says how many).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synartifact.cards import record_classifier_evaluation
from synartifact.classifier.metrics import (
    ACCURACY_DEFINITION,
    PROTOCOL_FIGURES,
    PROTOCOLS,
    compute_metrics,
    cooccurrence_matrix,
    kind_sets,
    protocol_metrics,
    reference_artifacts,
    reference_regions,
)
from synartifact.report import Artifact, ArtifactReport
from synartifact.taxonomy import KINDS, get_kind
from synartifact.utils import atomic_dir

__all__ = ["add_cli", "evaluate_model", "format_metrics_table", "predict_dataset", "run_evaluation"]

logger = logging.getLogger(__name__)


def _select_split(dataset: Any, split: str | None) -> Any:
    if isinstance(dataset, (str, Path)):
        from synartifact.data import load_artifact_dataset

        return load_artifact_dataset(str(dataset), split=split)
    if isinstance(dataset, Mapping) or hasattr(dataset, "keys") and not hasattr(dataset, "column_names"):
        if split not in dataset:
            raise ValueError(f"The dataset has no split {split!r}: valid splits are {', '.join(map(str, dataset))}.")
        dataset = dataset[split]
    return dataset


def _limit(dataset: Any, max_samples: int | None) -> Any:
    if max_samples is None or max_samples >= len(dataset):
        return dataset
    if max_samples < 1:
        raise ValueError(f"max_samples must be at least 1, got {max_samples}.")
    return dataset.select(range(max_samples)) if hasattr(dataset, "select") else dataset[:max_samples]


def _as_classifier(model: Any, **kwargs: Any) -> Any:
    if isinstance(model, (str, Path)):
        from synartifact.classifier import ArtifactClassifier

        return ArtifactClassifier.from_pretrained(str(model), **kwargs)
    return model


def predict_dataset(
    classifier: Any, dataset: Any, batch_size: int = 8, progress: bool = True, desc: str = "predict"
) -> list[ArtifactReport]:
    """The classifier's report for every row of a split (rows in order), with a progress bar."""
    from tqdm.auto import tqdm

    reports: list[ArtifactReport] = []
    chunk = max(1, batch_size) * 8  # decode a few batches of images at a time, not the whole split
    with tqdm(total=len(dataset), desc=desc, disable=not progress, unit="img") as bar:
        for start in range(0, len(dataset), chunk):
            rows = dataset[start : start + chunk] if hasattr(dataset, "column_names") else None
            images = rows["image"] if rows is not None else [r["image"] for r in dataset[start : start + chunk]]
            reports.extend(classifier.predict(images, batch_size=batch_size))
            bar.update(len(images))
    return reports


def _rows_artifacts(dataset: Any) -> list[list[Artifact]]:
    return [reference_artifacts(row) for row in _rows(dataset)]


def _rows(dataset: Any) -> Any:
    if hasattr(dataset, "column_names"):
        return dataset.select_columns([c for c in dataset.column_names if c != "image"])
    return dataset


def _for_protocol(data: Any, protocol: str) -> tuple[Any, dict[str, Any]]:
    """The rows a peer's protocol is computed on (those of its origin when the dataset says), and what was chosen."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {protocol!r}: valid protocols are {', '.join(PROTOCOLS)}.")
    info: dict[str, Any] = {"protocol": protocol, "protocol_definition": PROTOCOLS[protocol]}
    if protocol == "synartifact" or not hasattr(data, "column_names") or "origin" not in data.column_names:
        return data, info
    origins = data["origin"]
    keep = [i for i, o in enumerate(origins) if o == protocol]
    if not keep:
        raise ValueError(
            f"--protocol {protocol}: the dataset has an 'origin' column but no row of origin {protocol!r} (its "
            f"origins: {', '.join(sorted(set(origins)))}); evaluate a dataset of that origin, or name it so when merging "
            f"({protocol}=FOLDER)"
        )
    info.update(origin=protocol, rows_of_origin=len(keep), rows_in_split=len(origins))
    return data.select(keep), info


def evaluate_model(
    model_or_classifier: Any,
    dataset: Any,
    split: str = "test",
    batch_size: int = 8,
    max_samples: int | None = None,
    subset_kinds: Sequence[str] | None = None,
    css: bool = True,
    progress: bool = True,
    protocol: str = "synartifact",
    **from_pretrained_kwargs: Any,
) -> dict:
    """Metrics of one classifier (an ``ArtifactClassifier`` or a folder / Hub id) on a dataset split.

    ``dataset`` is a folder / Hub id (read with ``synartifact.data.load_artifact_dataset``), a ``DatasetDict`` or a
    ``Dataset``. Returns :func:`compute_metrics`'s dict, with ``protocol`` (:func:`protocol_metrics`) added.
    """
    data, _ = _for_protocol(_select_split(dataset, split), protocol)
    classifier = _as_classifier(model_or_classifier, **from_pretrained_kwargs)
    data = _limit(data, max_samples)
    reports = predict_dataset(classifier, data, batch_size=batch_size, progress=progress)
    metrics = compute_metrics(
        _rows_artifacts(data), reports, mode=getattr(classifier, "mode", "labels"), subset_kinds=subset_kinds, css=css
    )
    metrics["protocol"] = protocol_metrics(protocol, [reference_regions(r) for r in _rows(data)], reports, metrics)
    return metrics


# ------------------------------------------------------------------------------------------------------------
# Report: Markdown table, plots, files
# ------------------------------------------------------------------------------------------------------------

_TABLE_ROWS = (
    ("accuracy", "Accuracy (paper's metric, sample-based)"),
    ("exact_match", "Exact match (subset accuracy)"),
    ("hamming_accuracy", "Hamming accuracy (per-kind binary)"),
    ("micro_f1", "Micro F1"),
    ("macro_f1", "Macro F1 (kinds with support)"),
    ("macro_f1_subset", "Macro F1 (chosen kinds)"),
    ("binary.accuracy", "Artifact / no-artifact accuracy"),
    ("binary.precision", "Artifact / no-artifact precision"),
    ("binary.recall", "Artifact / no-artifact recall"),
    ("binary.f1", "Artifact / no-artifact F1"),
    ("localization.iou.all", "Mean IoU (all)"),
    ("localization.iou.tp", "Mean IoU (true positives)"),
    ("localization.rouge_l.all", "ROUGE-L (all)"),
    ("localization.rouge_l.tp", "ROUGE-L (true positives)"),
    ("localization.css.all", "CSS (all)"),
    ("localization.css.tp", "CSS (true positives)"),
    ("well_formed_rate", "Well-formed answers"),
)


def _get(metrics: Mapping | None, dotted: str) -> float | None:
    value: Any = metrics
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _pct(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{100 * value:.2f}"


def _delta(new: float | None, old: float | None) -> str:
    if new is None or old is None:
        return "–"
    return f"{100 * (new - old):+.2f}"


def format_metrics_table(metrics: Mapping) -> str:
    """A Markdown table of the headline metrics, in percent.

    Given ``{"model": {...}, "baseline": {...}}`` (``metrics.json``) it shows baseline (zero-shot), fine-tuned and
    the difference in points, like the paper's Table 1; given one model's metrics, a single column.
    """
    if "model" in metrics and isinstance(metrics["model"], Mapping):
        model, baseline = metrics["model"], metrics.get("baseline")
    else:
        model, baseline = metrics, None
    rows = [
        (key, label) for key, label in _TABLE_ROWS if _get(model, key) is not None or _get(baseline, key) is not None
    ]
    if baseline is not None:
        lines = ["| Metric (%) | Baseline (zero-shot) | Fine-tuned | Δ (points) |", "|---|---:|---:|---:|"]
        for key, label in rows:
            new, old = _get(model, key), _get(baseline, key)
            lines.append(f"| {label} | {_pct(old)} | {_pct(new)} | {_delta(new, old)} |")
    else:
        lines = ["| Metric (%) | Value |", "|---|---:|"]
        lines += [f"| {label} | {_pct(_get(model, key))} |" for key, label in rows]
    return "\n".join(lines)


def _per_kind_table(model: Mapping, baseline: Mapping | None) -> str:
    lines = [
        "| Kind | Support | Baseline F1 | Fine-tuned F1 | Δ | Fine-tuned P / R |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind in KINDS:
        m = model["per_kind"][kind.slug]
        b = baseline["per_kind"][kind.slug] if baseline else None
        if m["support"] == 0 and m["predicted"] == 0 and (b is None or b["predicted"] == 0):
            continue
        lines.append(
            f"| {kind.name} | {m['support']} | {_pct(b['f1'] if b else None)} | {_pct(m['f1'])} | "
            f"{_delta(m['f1'], b['f1'] if b else None)} | {_pct(m['precision'])} / {_pct(m['recall'])} |"
        )
    return "\n".join(lines)


def _plot_per_kind_f1(metrics: Mapping[str, Mapping], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k.name for k in KINDS]
    x = np.arange(len(KINDS))
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / max(1, len(metrics))
    for i, (label, m) in enumerate(metrics.items()):
        values = [m["per_kind"][k.slug]["f1"] for k in KINDS]
        ax.bar(x + (i - (len(metrics) - 1) / 2) * width, values, width, label=label)
    support = next(iter(metrics.values()))["per_kind"]
    ax.set_xticks(
        x,
        [f"{n}\n(n={support[k.slug]['support']})" for n, k in zip(names, KINDS)],
        rotation=60,
        ha="right",
        fontsize=7,
    )
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1")
    ax.set_title("Per-kind F1 on the evaluation split")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_cooccurrence(matrices: Mapping[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [k.name for k in KINDS] + ["(none)"]
    fig, axes = plt.subplots(1, len(matrices), figsize=(7.5 * len(matrices), 7), squeeze=False)
    for ax, (title, matrix) in zip(axes[0], matrices.items()):
        rows = matrix.sum(axis=1, keepdims=True)
        share = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for (r, c), count in np.ndenumerate(matrix):
            if count:
                ax.text(
                    c,
                    r,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if share[r, c] > 0.5 else "black",
                )
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlabel("predicted kind")
        ax.set_ylabel("annotated kind")
        ax.set_title(f"{title}: annotated vs predicted (row share, counts)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _report_markdown(metrics: Mapping, info: Mapping) -> str:
    model, baseline = metrics["model"], metrics.get("baseline")
    loc = model.get("localization") or {}
    lines = [
        "# Artifact classifier evaluation",
        "",
        f"- Fine-tuned model: `{info['model']}`",
        f"- Baseline (zero-shot): `{info['baseline']}`",
        f"- Dataset: `{info['dataset']}`, split `{info['split']}`, {model['n_images']} images, "
        f"answer mode `{model['mode']}`",
        f"- Macro F1 over the chosen kinds: {', '.join(model['subset_kinds']) or '(none)'}",
        "",
        format_metrics_table(metrics),
        "",
        f"Accuracy is the {ACCURACY_DEFINITION} (see `synartifact.classifier.metrics`). Δ is fine-tuned minus baseline, "
        "in percentage points.",
    ]
    counts = ", ".join(
        f"{label}: TP {m['binary']['tp']}, FP {m['binary']['fp']}, FN {m['binary']['fn']}, TN {m['binary']['tn']}"
        for label, m in (("baseline", baseline), ("fine-tuned", model))
        if m is not None
    )
    lines += ["", f"Image level (artifact present or not, the peers' protocol): {counts}."]
    if model.get("n_images_kindless"):
        lines += [
            "",
            f"Kind-set metrics (accuracy, exact match, Hamming, F1 per kind) are over the {model['n_images_kinds']} "
            f"images whose artifacts all have a kind; {model['n_images_kindless']} image(s) with a kind-less "
            "artifact count only in the artifact / no-artifact and localization figures.",
        ]
    lines += _protocol_lines(metrics, info)
    if loc.get("css_reason"):
        lines += ["", f"CSS not computed: {loc['css_reason']}."]
    lines += [
        "",
        "## Per kind",
        "",
        _per_kind_table(model, baseline),
        "",
        "![Per-kind F1](per_kind_f1.png)",
        "",
        "![Annotated vs predicted kinds](cooccurrence.png)",
        "",
    ]
    return "\n".join(lines)


def _protocol_lines(metrics: Mapping, info: Mapping) -> list[str]:
    """The report's section for a peer's protocol: its numbers for both models, and what produced them."""
    name = info.get("protocol", "synartifact")
    if name not in PROTOCOL_FIGURES:
        return []
    model, baseline = metrics["model"].get("protocol") or {}, (metrics.get("baseline") or {}).get("protocol") or {}
    rows = [
        (k, label)
        for k, label in PROTOCOL_FIGURES[name]
        if _get(model, k) is not None or _get(baseline, k) is not None
    ]
    lines = ["", f"## Protocol `{name}`", "", PROTOCOLS[name] + "."]
    if info.get("origin"):
        lines += [
            "",
            f"Computed on the {info['rows_of_origin']} rows of origin `{info['origin']}` (of {info['rows_in_split']}).",
        ]
    if model.get("reason"):
        lines += ["", f"Not scored: {model['reason']}."]
    if rows:
        lines += [
            "",
            f"| Metric (%, protocol `{name}`) | Baseline (zero-shot) | Fine-tuned | Δ (points) |",
            "|---|---:|---:|---:|",
        ]
        for key, label in rows:
            new, old = _get(model, key), _get(baseline, key)
            lines.append(f"| {label} | {_pct(old)} | {_pct(new)} | {_delta(new, old)} |")
    return lines


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def run_evaluation(
    model: Any,
    baseline: Any | None,
    dataset: Any,
    split: str = "test",
    out: str | Path = "eval",
    batch_size: int = 8,
    max_samples: int | None = None,
    subset_kinds: Sequence[str] | None = None,
    css: bool = True,
    overwrite: bool = False,
    device: str | None = None,
    dtype: Any = None,
    max_new_tokens: int | None = None,
    progress: bool = True,
    protocol: str = "synartifact",
) -> dict:
    """Evaluate the fine-tuned ``model`` and its zero-shot ``baseline`` side by side and write the report to ``out``.

    ``model`` / ``baseline`` are folders, Hub ids or ``ArtifactClassifier`` objects. When ``baseline`` is ``None`` it
    is the model's base (the base of a LoRA adapter, or ``base_model`` in ``synartifact_config.json``); the baseline
    is asked in the model's answer mode. Writes ``metrics.json``, ``report.md``, ``predictions.jsonl``,
    ``per_kind_f1.png`` and ``cooccurrence.png`` to a temporary folder renamed to ``out`` when complete (an existing
    ``out`` is replaced only with ``overwrite=True``). When ``model`` is a local folder whose card synartifact wrote
    (``synartifact sft``), that card is rendered again with these results (a table and ``model-index`` metadata).
    ``protocol`` (a key of :data:`~synartifact.classifier.metrics.PROTOCOLS`) adds a peer's metrics under each
    model's ``protocol``, on the rows of that origin when the dataset has an ``origin`` column.
    Returns ``{"model": {...}, "baseline": {...}}``.
    """
    from synartifact.classifier import resolve_base_model

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"Output folder {out} already exists: choose another --out or pass --overwrite.")
    if isinstance(model, (str, Path)):  # a folder that is no model: say so, not that its baseline is missing
        from synartifact.classifier.loading import check_model_folder

        check_model_folder(model)
    if baseline is None:
        if not isinstance(model, (str, Path)):
            raise ValueError("No baseline given: pass --baseline (the zero-shot base model's folder or Hub id).")
        baseline = resolve_base_model(str(model))
        if baseline is None:
            raise ValueError(
                f"No baseline given and {model} is a full model without a recorded base (no adapter_config.json, no "
                "'base_model' in synartifact_config.json): pass --baseline with the zero-shot base model."
            )
    load_kwargs: dict[str, Any] = {"device": device, "dtype": dtype}
    if max_new_tokens is not None:
        load_kwargs["max_new_tokens"] = max_new_tokens
    data, protocol_info = _for_protocol(_select_split(dataset, split), protocol)
    data = _limit(data, max_samples)
    annotated = _rows_artifacts(data)
    regions = [reference_regions(r) for r in _rows(data)]

    classifiers = {"model": _as_classifier(model, **load_kwargs)}
    mode = classifiers["model"].mode
    classifiers["baseline"] = _as_classifier(baseline, mode=mode, **load_kwargs)
    results, reports = {}, {}
    for role, clf in classifiers.items():
        reports[role] = predict_dataset(clf, data, batch_size=batch_size, progress=progress, desc=f"predict ({role})")
        results[role] = compute_metrics(annotated, reports[role], mode=mode, subset_kinds=subset_kinds, css=css)
        results[role]["protocol"] = protocol_metrics(protocol, regions, reports[role], results[role])
    metrics = _jsonable({"model": results["model"], "baseline": results["baseline"]})

    info = {
        "model": str(model if isinstance(model, (str, Path)) else type(model).__name__),
        "baseline": str(baseline if isinstance(baseline, (str, Path)) else type(baseline).__name__),
        "dataset": str(dataset if isinstance(dataset, (str, Path)) else type(dataset).__name__),
        "split": split,
        **protocol_info,
    }
    with atomic_dir(out, overwrite) as tmp:
        (tmp / "metrics.json").write_text(json.dumps({**metrics, "info": info}, indent=2) + "\n", encoding="utf-8")
        (tmp / "report.md").write_text(_report_markdown(metrics, info), encoding="utf-8")
        ids = data["image_id"] if hasattr(data, "column_names") and "image_id" in data.column_names else None
        with (tmp / "predictions.jsonl").open("w", encoding="utf-8") as f:
            for i, gt in enumerate(annotated):
                record = {
                    "index": i,
                    "image_id": ids[i] if ids is not None else str(i),
                    "annotated": [
                        {"kind": a.kind, "bbox": list(a.bbox) if a.bbox else None, "caption": a.caption} for a in gt
                    ],
                    "model": reports["model"][i].to_dict(),
                    "baseline": reports["baseline"][i].to_dict(),
                }
                f.write(json.dumps(_jsonable(record)) + "\n")
        _plot_per_kind_f1(
            {"baseline (zero-shot)": metrics["baseline"], "fine-tuned": metrics["model"]}, tmp / "per_kind_f1.png"
        )
        keep, y_true = kind_sets(annotated)  # images with a kind-less artifact have no kind set
        _plot_cooccurrence(
            {
                label: cooccurrence_matrix(y_true, [reports[role][i].kinds for i in keep])
                for role, label in (("baseline", "baseline (zero-shot)"), ("model", "fine-tuned"))
            },
            tmp / "cooccurrence.png",
        )
    # the evaluated model's own card (a local folder with a card synartifact wrote) shows these figures from now on
    card = record_classifier_evaluation(model, metrics, dataset, split)
    if card is not None:
        logger.info("Added the evaluation results to the model card %s", card)
    return metrics


# ------------------------------------------------------------------------------------------------------------
# Command line: `synartifact evaluate`
# ------------------------------------------------------------------------------------------------------------


def _parse_kinds(text: str | None) -> list[str] | None:
    if text is None:
        return None
    if text.strip().lower() == "synth":
        from synartifact.data.synth import SYNTH_KINDS

        return list(SYNTH_KINDS)
    return [get_kind(part.strip()).slug for part in text.split(",") if part.strip()]


def _cli(args: argparse.Namespace) -> int:
    metrics = run_evaluation(
        args.model,
        args.baseline,
        args.dataset,
        split=args.split,
        out=args.out,
        batch_size=args.batch_size,
        max_samples=args.max_samples,
        subset_kinds=_parse_kinds(args.kinds),
        css=not args.no_css,
        overwrite=args.overwrite,
        device=args.device,
        dtype=args.dtype,
        max_new_tokens=args.max_new_tokens,
        protocol=args.protocol,
    )
    print(format_metrics_table(metrics))
    if args.protocol != "synartifact":
        print(f"\nProtocol {args.protocol}: its figures are in report.md and under 'protocol' in metrics.json.")
    print(f"\nWrote {Path(args.out) / 'metrics.json'}, report.md, predictions.jsonl and PNGs.")
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``synartifact evaluate``."""
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate a classifier against its baseline on a dataset split",
        description="Evaluate a fine-tuned artifact classifier and its zero-shot baseline side by side on a dataset "
        "split; write metrics.json, report.md, predictions.jsonl and PNG plots to --out.",
    )
    p.add_argument(
        "--model", required=True, help="fine-tuned classifier: folder (full model or LoRA adapter) or Hub id"
    )
    p.add_argument(
        "--baseline",
        default=None,
        help="zero-shot baseline: folder or Hub id (default: the adapter's base model, or 'base_model' in "
        "the model's synartifact_config.json)",
    )
    p.add_argument("--dataset", required=True, help="dataset: a local Hub-layout folder or a Hub id")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--batch-size", type=int, default=8, help="images per generation batch (default: 8)")
    p.add_argument("--max-samples", type=int, default=None, help="evaluate only the first N rows")
    p.add_argument("--max-new-tokens", type=int, default=None, help="answer length bound (default: the classifier's)")
    p.add_argument(
        "--kinds",
        default=None,
        help="comma-separated kinds for macro_f1_subset, or 'synth' for the kinds the synthesis makes",
    )
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--dtype", default=None, help="model dtype, e.g. float32, bfloat16 (default: the checkpoint's)")
    p.add_argument("--no-css", action="store_true", help="skip caption semantic similarity (full mode)")
    p.add_argument(
        "--protocol",
        choices=list(PROTOCOLS),
        default="synartifact",
        help="add a peer's own metrics for a dataset of that origin: synthscars (LEGION: mask mIoU and F1, "
        "explanation ROUGE-L / CSS), loki (judgement accuracy, region IoU); on a merged dataset only the rows of that "
        "origin are evaluated (default: synartifact, this project's metrics only)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.set_defaults(func=_cli)
    return p
