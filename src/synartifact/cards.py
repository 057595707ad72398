"""Render the dataset and model cards in ``hub_cards/`` with measured numbers.

The templates follow huggingface_hub's card templates: a ``{{ card_data }}`` YAML front matter and Jinja
placeholders in the body. Numbers always come from the data or the evaluation files, never by hand.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData, ModelCard, ModelCardData

__all__ = ["cards_dir", "render_dataset_card", "render_model_card"]


def cards_dir() -> Path:
    """The folder holding the card templates (``$SYNARTIFACT_CARDS_DIR`` or the repository's ``hub_cards/``)."""
    env = os.environ.get("SYNARTIFACT_CARDS_DIR")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[2] / "hub_cards", Path(__file__).resolve().parent / "hub_cards"]
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise FileNotFoundError(
        f"Card templates not found in {', '.join(map(str, candidates))}: set SYNARTIFACT_CARDS_DIR to the hub_cards/ folder."
    )


def _template(name: str) -> Path:
    path = cards_dir() / name
    if not path.is_file():
        raise FileNotFoundError(
            f"Card template {path} does not exist; templates here: {sorted(p.name for p in cards_dir().glob('*.md'))}."
        )
    return path


def render_dataset_card(template: str, card_data: dict[str, Any], **context: Any) -> str:
    """Render ``hub_cards/<template>`` as a dataset card; ``card_data`` becomes the YAML front matter."""
    data = DatasetCardData(**card_data)
    return str(DatasetCard.from_template(data, template_path=str(_template(template)), **context))


def render_model_card(template: str, card_data: dict[str, Any], **context: Any) -> str:
    """Render ``hub_cards/<template>`` as a model card; ``card_data`` becomes the YAML front matter."""
    data = ModelCardData(**card_data)
    return str(ModelCard.from_template(data, template_path=str(_template(template)), **context))
