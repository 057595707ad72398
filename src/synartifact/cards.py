"""Render the dataset and model cards in ``templates/`` (the repository's ``hub_cards/``) with measured numbers.

The templates follow huggingface_hub's card templates: a ``{{ card_data }}`` YAML front matter and Jinja
placeholders in the body. Numbers always come from the data or the evaluation files, never by hand. A model card
written with :func:`save_model_card` keeps its template and context in ``synartifact_card.json`` next to it, so
that ``synartifact evaluate`` / ``evaluate-generator`` can re-render it with their results
(:func:`update_card_results`): the ``model-index`` metadata the Hub shows as evaluation results, and a table.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData, EvalResult, ModelCard, ModelCardData

from synartifact.utils import is_local_path, write_text_atomic

__all__ = [
    "CARD_RECORD",
    "cards_dir",
    "classifier_results_table",
    "hub_card_data",
    "installed_version",
    "record_classifier_evaluation",
    "record_generator_evaluation",
    "render_dataset_card",
    "render_model_card",
    "save_model_card",
    "update_card_results",
]

logger = logging.getLogger(__name__)

CARD_RECORD = "synartifact_card.json"


def cards_dir() -> Path:
    """The folder holding the card templates: ``$SYNARTIFACT_CARDS_DIR``, else the package's ``templates/``."""
    env = os.environ.get("SYNARTIFACT_CARDS_DIR")
    folder = Path(env) if env else Path(str(resources.files("synartifact") / "templates"))
    if not folder.is_dir():
        where = "$SYNARTIFACT_CARDS_DIR" if env else "the installed package"
        raise FileNotFoundError(
            f"Card templates folder {folder} (from {where}) does not exist: set SYNARTIFACT_CARDS_DIR to a folder "
            "holding dataset_card.md, classifier_card.md and generator_card.md, or reinstall synartifact."
        )
    return folder


def _template(name: str) -> Path:
    path = cards_dir() / name
    if not path.is_file():
        raise FileNotFoundError(
            f"Card template {path} does not exist; templates here: {sorted(p.name for p in cards_dir().glob('*.md'))}."
        )
    return path


def render_dataset_card(template: str, card_data: dict[str, Any], **context: Any) -> str:
    """Render ``templates/<template>`` as a dataset card; ``card_data`` becomes the YAML front matter."""
    data = DatasetCardData(**card_data)
    return str(DatasetCard.from_template(data, template_path=str(_template(template)), **context))


def render_model_card(template: str, card_data: dict[str, Any], **context: Any) -> str:
    """Render ``templates/<template>`` as a model card; ``card_data`` becomes the YAML front matter.

    ``card_data["eval_results"]`` may hold ``EvalResult`` objects or their keyword arguments as dicts.
    """
    card_data = dict(card_data)
    if card_data.get("eval_results"):
        card_data["eval_results"] = [
            r if isinstance(r, EvalResult) else EvalResult(**r) for r in card_data["eval_results"]
        ]
    data = ModelCardData(**card_data)
    return str(ModelCard.from_template(data, template_path=str(_template(template)), **context))


def hub_card_data(
    *,
    model_name: str,
    library_name: str,
    pipeline_tag: str,
    tags: Iterable[str],
    base_model: str | None = None,
    datasets: Iterable[str | None] = (),
    license: str | None = None,
) -> dict[str, Any]:
    """A model card's Hub metadata, as TRL's cards carry it.

    ``base_model`` and ``datasets`` are kept only when they are Hub ids: the Hub rejects local paths there, so the
    card's body names local ones instead.
    """
    data: dict[str, Any] = {
        "model_name": model_name,
        "library_name": library_name,
        "pipeline_tag": pipeline_tag,
        "tags": list(dict.fromkeys(tags)),
    }
    if license:
        data["license"] = license
    if base_model and not is_local_path(base_model):
        data["base_model"] = base_model
    on_hub = [str(d) for d in datasets if d and not is_local_path(str(d))]
    if on_hub:
        data["datasets"] = list(dict.fromkeys(on_hub))
    return data


def installed_version(package: str) -> str:
    """The installed version of ``package`` (its distribution metadata, else its ``__version__``), never written by
    hand into a card."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        import importlib

        try:
            return str(importlib.import_module(package).__version__)
        except (ImportError, AttributeError):
            return "not installed"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_model_card(folder: str | os.PathLike, template: str, card_data: dict[str, Any], **context: Any) -> Path:
    """Render ``templates/<template>`` into ``folder/README.md`` and keep what it was rendered from.

    The template, card data and context go to ``folder/synartifact_card.json`` so that :func:`update_card_results`
    can render the card again with evaluation results. Both files are written atomically. Returns the README path.
    """
    folder = Path(folder)
    # a JSON round trip first, so that a card rendered again from the record is identical to this one
    record = json.loads(json.dumps({"template": template, "card_data": card_data, "context": context}, default=str))
    text = render_model_card(record["template"], record["card_data"], **record["context"])
    readme = folder / "README.md"
    write_text_atomic(readme, text)
    record["readme_sha256"] = _sha256(text.encode("utf-8"))
    write_text_atomic(folder / CARD_RECORD, json.dumps(record, indent=2) + "\n")
    return readme


def update_card_results(
    folder: str | os.PathLike,
    results: Sequence[Mapping[str, Any]],
    table: str,
    note: str = "",
) -> Path | None:
    """Render the model card in ``folder`` again with evaluation results; return its path, or ``None`` if untouched.

    ``results`` are ``huggingface_hub.EvalResult`` keyword arguments (they become the ``model-index`` metadata and
    replace earlier ones); ``table`` (Markdown) and ``note`` go to the card's evaluation section. Only a card
    written by :func:`save_model_card` and not edited since is rendered again: a Hub id, a folder without such a
    card or a hand-edited card is left alone.
    """
    if not isinstance(folder, (str, os.PathLike)) or not Path(folder).is_dir():
        return None
    folder = Path(folder)
    readme, record_file = folder / "README.md", folder / CARD_RECORD
    if not readme.is_file() or not record_file.is_file():
        logger.info("%s has no card written by synartifact: its evaluation results are not added to a card.", folder)
        return None
    try:
        record = json.loads(record_file.read_text(encoding="utf-8"))
        template, card_data, context = record["template"], dict(record["card_data"]), dict(record["context"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        logger.warning("%s is not a card record (%s): the card in %s is left as it is.", record_file, err, folder)
        return None
    if _sha256(readme.read_bytes()) != record.get("readme_sha256"):
        logger.warning("%s was edited after synartifact wrote it: it is left as it is.", readme)
        return None
    card_data.setdefault("model_name", folder.name)
    card_data["eval_results"] = [dict(r) for r in results]
    context.update(evaluation_table=table, evaluation_note=note)
    return save_model_card(folder, template, card_data, **context)


# ------------------------------------------------------------------------------------------------------------
# Evaluation results of the two kinds of models
# ------------------------------------------------------------------------------------------------------------

# (card row, keys in the metrics (flat or dotted; the first found counts), model-index type, name, config)
_CLASSIFIER_METRICS = (
    ("accuracy", ("accuracy",), "accuracy", "Accuracy (sample-based)", None),
    ("macro_f1", ("macro_f1",), "f1", "Macro F1", "macro"),
    ("micro_f1", ("micro_f1",), "f1", "Micro F1", "micro"),
    ("exact_match", ("exact_match",), "exact_match", "Exact match", None),
    (
        "binary_accuracy",
        ("binary_accuracy", "binary.accuracy"),
        "accuracy",
        "Artifact / no-artifact accuracy",
        "binary",
    ),
    ("binary_f1", ("binary_f1", "binary.f1"), "f1", "Artifact / no-artifact F1", "binary"),
    ("well_formed", ("well_formed", "well_formed_rate"), "well_formed_rate", "Well-formed answers", None),
)


def _number(metrics: Any, keys: Sequence[str]) -> float | None:
    for key in keys:
        value = metrics
        for part in key.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def classifier_results_table(metrics: Mapping[str, Any]) -> str:
    """A Markdown table of a classifier's metrics (``synartifact evaluate``'s ``metrics.json`` or one model's dict).

    With ``{"model": {...}, "baseline": {...}}`` the zero-shot base and the fine-tuned model stand side by side with
    their difference.
    """
    columns = [c for c in ("baseline", "model") if isinstance(metrics.get(c), Mapping)]
    if not columns:
        columns, metrics = ["model"], {"model": metrics}
    rows = [
        (label, keys)
        for label, keys, *_ in _CLASSIFIER_METRICS
        if any(_number(metrics[c], keys) is not None for c in columns)
    ]
    if not rows:
        numeric = {k for c in columns for k, v in metrics[c].items() if _number(metrics[c], (k,)) is not None}
        rows = [(k, (k,)) for k in sorted(numeric)]
    names = {"baseline": "base model (zero-shot)", "model": "fine-tuned"}
    both = len(columns) == 2
    header = [names[c] for c in columns] + (["difference"] if both else [])
    lines = ["| metric | " + " | ".join(header) + " |", "|---" + "|---:" * len(header) + "|"]
    for label, keys in rows:
        values = [_number(metrics[c], keys) for c in columns]
        cells = [f"{v:.4f}" if v is not None else "-" for v in values]
        if both:
            cells.append(f"{values[1] - values[0]:+.4f}" if None not in values else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _dataset_fields(dataset: str) -> dict[str, str]:
    """``model-index`` dataset fields: a Hub id as both; a local folder or file by its name (type) and path."""
    if not is_local_path(dataset):
        return {"dataset_type": dataset, "dataset_name": dataset}
    return {"dataset_type": Path(dataset).name or dataset, "dataset_name": dataset}


def record_classifier_evaluation(
    model: Any, metrics: Mapping[str, Any], dataset: Any, split: str | None = None
) -> Path | None:
    """Add ``synartifact evaluate``'s results for ``model`` to its card when ``model`` is a folder with our card.

    ``metrics`` is ``{"model": {...}, "baseline": {...}}``; the fine-tuned model's figures become ``model-index``
    entries on ``dataset`` (a folder or Hub id), the table shows both. Returns the card's path, or ``None``.
    """
    if not isinstance(model, (str, os.PathLike)) or not isinstance(dataset, (str, os.PathLike)):
        return None
    own = metrics.get("model", metrics)
    common = {
        "task_type": "image-classification",
        "task_name": "Artifact classification (SynArtifact kinds)",
        **_dataset_fields(os.fspath(dataset)),
        **({"dataset_split": split} if split else {}),
    }
    results = []
    for _, keys, metric_type, metric_name, config in _CLASSIFIER_METRICS:
        value = _number(own, keys)
        if value is not None:
            entry = {**common, "metric_type": metric_type, "metric_name": metric_name, "metric_value": value}
            results.append({**entry, "metric_config": config} if config else entry)
    where = f"`{os.fspath(dataset)}`" + (f", split `{split}`" if split else "")
    n = own.get("n_images") if isinstance(own, Mapping) else None
    note = f"Measured with `synartifact evaluate` on {where}" + (f" ({n} images)" if n else "") + "."
    table = classifier_results_table(metrics)
    protocol = own.get("protocol") if isinstance(own, Mapping) else None
    if isinstance(protocol, Mapping) and protocol.get("name") not in (None, "synartifact"):
        name = protocol["name"]
        figures = _protocol_figures(protocol, name)
        for path, value in figures.items():
            results.append(
                {**common, "metric_type": path.rsplit(".", 1)[-1], "metric_name": f"{path} ({name} protocol)",
                 "metric_value": value, "metric_config": name}
            )  # fmt: skip
        if figures:
            base = _protocol_figures((metrics.get("baseline") or {}).get("protocol") or {}, name)
            lines = [f"| metric (protocol `{name}`) | base model (zero-shot) | fine-tuned |", "|---|---:|---:|"]
            lines += [
                f"| {path} | {base[path]:.4f} | {value:.4f} |" if path in base else f"| {path} | - | {value:.4f} |"
                for path, value in figures.items()
            ]
            table += "\n\n" + "\n".join(lines)
        note += f" The second table is the `{name}` protocol's: {protocol.get('definition', '')}."
        if protocol.get("reason"):
            note += f" Not scored: {protocol['reason']}."
    return update_card_results(model, results, table, note)


def _protocol_figures(protocol: Mapping[str, Any], name: str) -> dict[str, float]:
    """The numbers a peer protocol reports (``PROTOCOL_FIGURES``, the evaluation report's rows) that ``protocol``
    (``protocol_metrics``'s dict) holds, as ``{dotted path: value}``."""
    from synartifact.classifier.metrics import PROTOCOL_FIGURES

    figures = {path: _number(protocol, (path,)) for path, _ in PROTOCOL_FIGURES.get(name, ())}
    return {path: value for path, value in figures.items() if value is not None}


def _rate(part: Any) -> str:
    value = _number(part, ("artifact_rate",))
    return f"{value:.3f}" if value is not None else "-"


def _judge_lines(metrics: Mapping[str, Any]) -> list[str]:
    """The training reward and the judge side by side (gains, gains over the seed spread, artifact rates), and what
    they say; without a judge, that the gain is the training reward's own and unconfirmed."""
    judge = metrics.get("judge")
    if not isinstance(judge, Mapping) or not isinstance(judge.get("delta"), Mapping):
        return [
            "",
            "**No independent judge scored these images**: the figures above are the training reward's own, measured "
            "by the classifier the generator was optimized against. A generator can raise that reward without having "
            "fewer artifacts (reward hacking), so this gain is not confirmed. Run `synartifact evaluate-generator` "
            "again with `--judge <another classifier>` to check it.",
        ]
    config = judge.get("config", {}) if isinstance(judge.get("config"), Mapping) else {}
    gains = (metrics.get("reward_gain_in_spread"), metrics.get("judge_gain_in_spread"))
    sides = (metrics, judge)
    lines = [
        "",
        f"The same images scored by the independent judge `{config.get('classifier', '?')}` (mode "
        f"`{config.get('mode', '?')}`, hard labels):",
        "",
        "| | training reward | judge |",
        "|---|---:|---:|",
        "| base mean reward | " + " | ".join(f"{s['base']['mean_reward']:.4f}" for s in sides) + " |",
        "| this model mean reward | " + " | ".join(f"{s['refined']['mean_reward']:.4f}" for s in sides) + " |",
        "| gain (this model - base) | " + " | ".join(f"{s['delta']['mean_reward']:+.4f}" for s in sides) + " |",
        "| gain / seed spread | " + " | ".join(f"{g:+.2f}" if g is not None else "n/a" for g in gains) + " |",
        "| base artifact rate | " + " | ".join(_rate(s["base"]) for s in sides) + " |",
        "| this model artifact rate | " + " | ".join(_rate(s["refined"]) for s in sides) + " |",
        "",
    ]
    if config.get("independent") is False:
        lines.append("The judge is the training reward's own classifier: it is not independent and confirms nothing.")
    return lines


def _verdict_lines(metrics: Mapping[str, Any]) -> list[str]:
    """The run's computed verdict (``metrics["verdict"]``, else computed from ``metrics``), as the reports show it."""
    from synartifact.generator.verdict import compute_verdict, verdict_markdown

    verdict = metrics.get("verdict") if isinstance(metrics.get("verdict"), Mapping) else compute_verdict(metrics)
    return verdict_markdown(verdict)


def _generator_table(metrics: Mapping[str, Any]) -> str:
    lines = ["| generator | mean reward | std over seeds | per-seed means |", "|---|---:|---:|---|"]
    for key, label in (("base", "base model"), ("refined", "this model"), ("delta", "gain (this model - base)")):
        part = metrics.get(key)
        if isinstance(part, Mapping):
            seeds = ", ".join(f"{v:.4f}" for v in part.get("per_seed_mean", []))
            sign = "+" if key == "delta" else ""
            lines.append(f"| {label} | {part['mean_reward']:{sign}.4f} | {part['std']:.4f} | {seeds} |")
    if isinstance(metrics.get("delta"), Mapping):
        gain = metrics["delta"]["mean_reward"]
        spread = max(metrics["base"]["std"], metrics["refined"]["std"])
        verdict = "exceeds" if gain > 2 * spread else "does not exceed"
        lines += ["", f"The reward gain {gain:+.4f} {verdict} twice the larger seed spread ({2 * spread:.4f})."]
        lines += _judge_lines(metrics)
        lines += ([] if lines[-1] == "" else [""]) + _verdict_lines(metrics)
    return "\n".join(lines)


def record_generator_evaluation(lora: Any, metrics: Mapping[str, Any], prompts: Any = None) -> Path | None:
    """Add ``synartifact evaluate-generator``'s results to the card of the LoRA folder ``lora`` when it has ours.

    ``metrics`` is ``evaluate_generator``'s dict; the refined mean reward, the gain over the base and the gain's
    spread over seeds become ``model-index`` entries. ``prompts`` names where the prompts came from (a dataset
    folder, Hub id or text file). Returns the card's path, or ``None``.
    """
    if not isinstance(metrics.get("refined"), Mapping) or not isinstance(metrics.get("delta"), Mapping):
        return None
    config = metrics.get("config", {})
    source = os.fspath(prompts) if isinstance(prompts, (str, os.PathLike)) else "prompts"
    common = {"task_type": "text-to-image", "task_name": "Artifact-free generation", **_dataset_fields(source)}
    entries = [
        ("artifact_reward", "Mean artifact reward", metrics, "refined", "mean_reward"),
        ("artifact_reward_gain", "Reward gain over the base model", metrics, "delta", "mean_reward"),
        ("artifact_reward_gain_std", "Spread of the gain over seeds (std)", metrics, "delta", "std"),
    ]
    judge = metrics.get("judge")
    judged = isinstance(judge, Mapping) and isinstance(judge.get("delta"), Mapping)
    if judged:
        entries += [
            ("judge_reward", "Mean reward under an independent judge", judge, "refined", "mean_reward"),
            ("judge_reward_gain", "Judge reward gain over the base model", judge, "delta", "mean_reward"),
            ("judge_artifact_rate", "Artifact rate under the judge", judge, "refined", "artifact_rate"),
        ]
    results = [
        {**common, "metric_type": metric, "metric_name": name, "metric_value": float(side[part][key])}
        for metric, name, side, part, key in entries
        if _number(side[part], (key,)) is not None
    ]
    judge_name = (judge.get("config") or {}).get("classifier", "?") if judged else None
    note = (
        f"Measured with `synartifact evaluate-generator`: {config.get('num_prompts', '?')} prompts from `{source}`"
        f" x {config.get('images_per_prompt', 1)} image(s) x seeds {config.get('seeds', '?')}, scored by the "
        f"training reward `{config.get('classifier', '?')}` (reward mode `{config.get('reward_mode', '?')}`)"
        + (f" and by the independent judge `{judge_name}`" if judged else " only (no independent judge)")
        + f", {config.get('num_inference_steps', '?')} sampler steps. Spread: sample standard deviation over seeds."
    )
    return update_card_results(lora, results, _generator_table(metrics), note)
