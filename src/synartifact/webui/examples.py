"""The classify Space's example images: synthesized on bundled photographs (one artifact each), picked to show the
kinds the configured classifier was trained on."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from synartifact.webui.models import ModelSource, classifier_source

__all__ = ["EXAMPLE_SPECS", "example_images", "kinds_notice", "trained_kinds", "write_examples"]

logger = logging.getLogger(__name__)

# (artifact kind, synthesis index) of the classify Space's examples: indices picked for clear, varied pictures.
# One per synthesizable kind (data.synth.SYNTH_KINDS), the demo classifier's kinds among them.
EXAMPLE_SPECS: tuple[tuple[str, int], ...] = (
    ("localized_blur", 7),
    ("chromatic_irregularity", 4),
    ("illegible_letters", 6),
    ("distorted_components", 0),
    ("duplicated_components", 4),
    ("omitted_components", 0),
    ("abnormal_texture", 4),
    ("impractical_luminosity", 2),
    ("luminance_discrepancy", 0),
    ("unrealistic_lighting", 2),
)


def write_examples(folder: str | os.PathLike, size: int = 176, overwrite: bool = False) -> list[Path]:
    """Write the classify Space's example images into ``folder`` as small PNGs and return their paths, in order.

    Each is a bundled scikit-image photograph with one artifact of :data:`EXAMPLE_SPECS` injected by
    :func:`synartifact.data.synth.synthesize_example` (the project's synthetic data). Existing files are kept
    unless ``overwrite``.
    """
    folder = Path(folder)
    paths = [folder / f"{index}_{kind}.png" for kind, index in EXAMPLE_SPECS]
    if all(p.is_file() for p in paths) and not overwrite:
        return paths
    from synartifact.data.synth import synthesize_example

    folder.mkdir(parents=True, exist_ok=True)
    for path, (kind, index) in zip(paths, EXAMPLE_SPECS):
        if path.is_file() and not overwrite:
            continue
        row = synthesize_example(index, seed=0, size=size, clean_fraction=0.0, kinds=(kind,))
        tmp = path.with_name(path.stem + ".tmp.png")
        row["image"].save(tmp, optimize=True)
        tmp.replace(path)
    return paths


def trained_kinds(source: ModelSource | None = None) -> list[str] | None:
    """The kinds (slugs, taxonomy order) the classifier was trained on, from its training record
    (``trained_kinds`` in ``synartifact_config.json`` or ``sft_run.json``); ``None`` when it does not say (an
    untrained tiny model, a record from before the field existed, a checkpoint not made by ``synartifact sft``)."""
    from synartifact.classifier.loading import read_classifier_config
    from synartifact.taxonomy import SLUGS, get_kind

    source = source or classifier_source()
    if source.tiny:
        return None
    try:
        record = read_classifier_config(source.path)
    except Exception as err:  # noqa: BLE001 - a page without the kinds line beats a page that does not load
        logger.warning("could not read the training record of %s: %r", source.path, err)
        return None
    kinds = record.get("trained_kinds")
    if not isinstance(kinds, list) or not kinds:
        return None
    slugs = set()
    for kind in kinds:
        try:
            slugs.add(get_kind(kind).slug)
        except (ValueError, KeyError, TypeError):
            logger.warning("unknown kind %r in the training record of %s", kind, source.path)
    return [slug for slug in SLUGS if slug in slugs] or None


def example_images(folder: str | os.PathLike, kinds: list[str] | None = None, size: int = 176) -> list[Path]:
    """The classify Space's examples from ``folder`` (one per synthesizable kind, :data:`EXAMPLE_SPECS`): those of
    the kinds in ``kinds``, in that order, so that the first click finds something the classifier knows; all of them
    when ``kinds`` is ``None`` or names no synthesizable kind."""
    bundled = dict(zip((kind for kind, _ in EXAMPLE_SPECS), write_examples(folder, size=size)))
    wanted = [bundled[kind] for kind in (kinds or []) if kind in bundled]
    return wanted or list(bundled.values())


def kinds_notice(kinds: list[str] | None) -> str:
    """One Markdown line for the page: which kinds this classifier was trained to find (or that it is not known)."""
    from synartifact.taxonomy import get_kind

    if not kinds:
        return (
            "This classifier's training record does not list the kinds it learned (`trained_kinds` in "
            "`sft_run.json`): it is asked about all 13."
        )
    names = ", ".join(get_kind(kind).name for kind in kinds)
    return f"**This classifier was trained on {len(kinds)} of the 13 kinds:** {names}. The examples show these kinds."
