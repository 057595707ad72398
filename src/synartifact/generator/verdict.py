"""One computed verdict on a refined generator: is its gain real?

:func:`compute_verdict` reads ``synartifact evaluate-generator``'s metrics and weighs each target of the study
(issue 20, item 1) against this run's figures:

=========================  ===================================================  ==============================
target                     threshold                                            a miss means
=========================  ===================================================  ==============================
judge strength             binary F1 >= 0.85 on its test data, each kind it      undecided (it cannot judge)
                           judges there with F1 >= 0.5
reward gain / seed spread  >= 2                                                 <= 0: refuted; else undecided
judge gain / seed spread   >= 2                                                 <= 0 (strong judge): refuted
judge artifact rate        refined <= 0.8 x base                                >= 1 x (strong judge): refuted
fine-detail ratio          within [0.85, 1.15]                                  refuted (blurred or noisy)
content fidelity           refined recognized >= 0.8 x base (``fidelity.py``)   refuted (images lost content)
=========================  ===================================================  ==============================

The verdict is **confirmed** when every target is met, **not confirmed** when a figure speaks against the gain (the
training reward did not rise, a strong judge sees no gain or no fewer artifacts, the images blurred, turned noisy or
lost their content), and **inconclusive** otherwise: the judge is too weak (or its strength unknown, or it is the
reward's own classifier), or a gain lies within twice the seed spread. A generator that wins by turning scenes
into blanks is never "confirmed": its content fidelity refutes the gain whatever the classifiers say.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from synartifact.generator.fidelity import FIDELITY_MIN

__all__ = [
    "FINE_DETAIL_RANGE",
    "JUDGE_BINARY_F1_MIN",
    "JUDGE_KIND_F1_MIN",
    "JUDGE_RATE_RATIO_MAX",
    "GAIN_IN_SPREAD_MIN",
    "VERDICTS",
    "assess_judge",
    "compute_verdict",
    "judge_strength",
    "load_judge_eval",
    "verdict_markdown",
]

GAIN_IN_SPREAD_MIN = 2.0
JUDGE_RATE_RATIO_MAX = 0.8
FINE_DETAIL_RANGE = (0.85, 1.15)
JUDGE_BINARY_F1_MIN = 0.85
JUDGE_KIND_F1_MIN = 0.5
VERDICTS = ("confirmed", "not confirmed", "inconclusive")


def load_judge_eval(judge_eval: Any = None, judge: Any = None) -> tuple[dict | None, str | None]:
    """The judge's own test metrics (``synartifact evaluate``'s ``metrics.json``, its ``model`` part) and where
    they came from. ``judge_eval``: that file, the folder holding it, or the dict. Without it, a judge folder's
    card record (``synartifact_card.json``, written by ``synartifact evaluate``) gives the binary F1 only (no
    per-kind figures). ``(None, None)`` when neither exists."""
    if isinstance(judge_eval, Mapping):
        data, source = dict(judge_eval), "given"
    elif judge_eval is not None:
        path = Path(judge_eval)
        path = path / "metrics.json" if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(
                f"Judge evaluation {judge_eval} not found: give the metrics.json that `synartifact evaluate` wrote "
                "for the judge (or its folder)."
            )
        data, source = json.loads(path.read_text(encoding="utf-8")), os.fspath(path)
    else:
        record = Path(os.fspath(judge)) / "synartifact_card.json" if isinstance(judge, (str, os.PathLike)) else None
        if record is None or not record.is_file():
            return None, None
        results = json.loads(record.read_text(encoding="utf-8")).get("card_data", {}).get("eval_results") or []
        binary = [r for r in results if r.get("metric_type") == "f1" and r.get("metric_config") == "binary"]
        if not binary:
            return None, None
        return {"binary_f1": float(binary[0]["metric_value"])}, os.fspath(record)
    model = data.get("model", data)
    if not isinstance(model, Mapping) or "binary_f1" not in model:
        raise ValueError(
            f"Judge evaluation {source} has no 'binary_f1': give the metrics.json of `synartifact evaluate`."
        )
    return dict(model), source


def _judged_kinds(judge: Any) -> list[str] | None:
    """The kinds a judge folder says it was trained on (``trained_kinds`` in ``sft_run.json``), else ``None``."""
    if not isinstance(judge, (str, os.PathLike)):
        return None
    for name in ("sft_run.json", "synartifact_config.json"):
        record = Path(os.fspath(judge)) / name
        if record.is_file():
            kinds = json.loads(record.read_text(encoding="utf-8")).get("trained_kinds")
            if kinds:
                return list(kinds)
    return None


def judge_strength(
    eval_metrics: Mapping[str, Any] | None, judged_kinds: Sequence[str] | None = None, source: str | None = None
) -> dict:
    """Whether a judge is strong enough to judge, from its own test metrics: binary (artifact / no artifact) F1 at
    least :data:`JUDGE_BINARY_F1_MIN`, and every kind it judges present in its test data with F1 at least
    :data:`JUDGE_KIND_F1_MIN`. ``judged_kinds``: the kinds it was trained on (default: the kinds its test data
    holds). Returns ``strong``, ``binary_f1``, ``kinds`` (each judged kind's F1, support and pass), ``weak_kinds``,
    the thresholds, ``source`` and, when not strong, ``why``."""
    result: dict = {
        "source": source,
        "binary_f1_min": JUDGE_BINARY_F1_MIN,
        "kind_f1_min": JUDGE_KIND_F1_MIN,
    }
    if not eval_metrics:
        return {
            **result,
            "strong": False,
            "binary_f1": None,
            "kinds": {},
            "weak_kinds": [],
            "why": "the judge's own test metrics are unknown: pass --judge-eval (the metrics.json of "
            "`synartifact evaluate` on the judge)",
        }
    binary = eval_metrics.get("binary_f1")
    per_kind = eval_metrics.get("per_kind")
    kinds: dict = {}
    if isinstance(per_kind, Mapping):
        judged = list(judged_kinds) if judged_kinds else list(eval_metrics.get("macro_f1_kinds") or [])
        for kind in judged:
            row = per_kind.get(kind) or {}
            f1, support = float(row.get("f1", 0.0)), int(row.get("support", 0))
            kinds[kind] = {"f1": f1, "support": support, "passed": support > 0 and f1 >= JUDGE_KIND_F1_MIN}
    weak = [k for k, v in kinds.items() if not v["passed"]]
    binary_ok = isinstance(binary, (int, float)) and binary >= JUDGE_BINARY_F1_MIN
    why = []
    if not binary_ok:
        why.append(
            f"binary F1 {binary:.3f} < {JUDGE_BINARY_F1_MIN}" if isinstance(binary, (int, float)) else "no binary F1"
        )
    if not isinstance(per_kind, Mapping) or not kinds:
        why.append("per-kind F1 not recorded (pass --judge-eval)")
    elif weak:
        why.append(
            "kinds below F1 "
            + f"{JUDGE_KIND_F1_MIN} or absent from its test data: "
            + ", ".join(f"{k} ({kinds[k]['f1']:.3f}, {kinds[k]['support']} images)" for k in weak)
        )
    strong = binary_ok and bool(kinds) and not weak
    return {
        **result,
        "strong": strong,
        "binary_f1": float(binary) if isinstance(binary, (int, float)) else None,
        "kinds": kinds,
        "weak_kinds": weak,
        **({} if strong else {"why": "; ".join(why)}),
    }


def assess_judge(judge: Any, judge_eval: Any = None) -> dict:
    """:func:`judge_strength` of ``judge`` (a folder, Hub id or loaded classifier) from ``judge_eval`` (see
    :func:`load_judge_eval`), with the kinds its folder says it was trained on."""
    model, source = load_judge_eval(judge_eval, judge)
    return judge_strength(model, _judged_kinds(judge), source)


def _reason(target: str, label: str, value: Any, threshold: str, outcome: str, detail: str = "") -> dict:
    return {
        "target": target,
        "label": label,
        "value": value,
        "threshold": threshold,
        "passed": outcome == "pass",
        "outcome": outcome,  # pass | fail (speaks against the gain) | undecided (cannot tell)
        "detail": detail,
    }


def _gain_outcome(value: float | None, can_refute: bool) -> tuple[str, str]:
    if value is None:
        return "undecided", "no seed spread (one seed, or the same mean on every seed): use more seeds"
    if value >= GAIN_IN_SPREAD_MIN:
        return "pass", ""
    if value <= 0 and can_refute:
        return "fail", "no gain at all"
    return "undecided", "within twice the seed spread (noise)" if value > 0 else "no gain, but the judge is too weak"


def compute_verdict(metrics: Mapping[str, Any]) -> dict:
    """The verdict (``confirmed`` | ``not confirmed`` | ``inconclusive``) on ``evaluate_generator``'s metrics, with
    one reason per target: ``target``, ``label``, ``value``, ``threshold``, ``passed``, ``outcome`` and ``detail``
    (see the module docstring); also ``summary``, one sentence."""
    judge = metrics.get("judge") if isinstance(metrics.get("judge"), Mapping) else None
    strength = (judge or {}).get("strength") or {}
    independent = bool(judge and (judge.get("config") or {}).get("independent", True))
    strong = bool(judge and independent and strength.get("strong"))
    reasons = []
    if judge is None:
        outcome, detail = "undecided", "no independent judge scored the images"
    elif not independent:
        outcome, detail = "undecided", "the judge is the training reward's own classifier"
    else:
        outcome, detail = ("pass", "") if strong else ("undecided", strength.get("why", "strength unknown"))
    kinds = strength.get("kinds") or {}
    reasons.append(
        _reason(
            "judge_strength",
            "judge strength (its binary F1 on its own test data)",
            strength.get("binary_f1"),
            f">= {JUDGE_BINARY_F1_MIN}, each judged kind F1 >= {JUDGE_KIND_F1_MIN}"
            + (f" ({len(kinds)} kinds)" if kinds else ""),
            outcome,
            detail,
        )
    )
    reward_gain = metrics.get("reward_gain_in_spread")
    outcome, detail = _gain_outcome(reward_gain, can_refute=True)
    reasons.append(
        _reason(
            "reward_gain",
            "training reward gain / seed spread",
            reward_gain,
            f">= {GAIN_IN_SPREAD_MIN:g}",
            outcome,
            detail,
        )
    )
    judge_gain = metrics.get("judge_gain_in_spread") if judge else None
    outcome, detail = _gain_outcome(judge_gain, can_refute=strong)
    if judge is None:
        detail = "no judge"
    reasons.append(
        _reason("judge_gain", "judge gain / seed spread", judge_gain, f">= {GAIN_IN_SPREAD_MIN:g}", outcome, detail)
    )
    ratio = None
    if judge and isinstance(judge.get("base"), Mapping) and isinstance(judge.get("refined"), Mapping):
        before, after = judge["base"].get("artifact_rate"), judge["refined"].get("artifact_rate")
        ratio = after / before if isinstance(before, (int, float)) and before > 0 else None
    if ratio is None:
        outcome, detail = "undecided", "no judge" if judge is None else "the judge finds no artifact in the base"
    elif ratio <= JUDGE_RATE_RATIO_MAX:
        outcome, detail = "pass", ""
    elif ratio >= 1 and strong:
        outcome, detail = "fail", "the judge finds no fewer artifacts"
    else:
        outcome, detail = "undecided", "too small a drop" if ratio < 1 else "no drop, but the judge is too weak"
    reasons.append(
        _reason(
            "judge_artifact_rate",
            "judge artifact rate, refined / base",
            ratio,
            f"<= {JUDGE_RATE_RATIO_MAX:g}",
            outcome,
            detail,
        )
    )
    drift = metrics.get("drift") if isinstance(metrics.get("drift"), Mapping) else {}
    fine = drift.get("noise_ratio")
    low, high = FINE_DETAIL_RANGE
    if fine is None:
        outcome, detail = "undecided", "not measured"
    elif low <= fine <= high:
        outcome, detail = "pass", ""
    else:
        outcome, detail = (
            "fail",
            "the samples lost fine detail (blurred or flattened)"
            if fine < low
            else "the samples gained fine detail the base does not have (noise)",
        )
    reasons.append(
        _reason("fine_detail", "fine-detail ratio, refined / base", fine, f"within [{low}, {high}]", outcome, detail)
    )
    fidelity = metrics.get("fidelity") if isinstance(metrics.get("fidelity"), Mapping) else {}
    value = fidelity.get("fidelity")
    if not fidelity:
        outcome, detail = "undecided", "not measured"
    elif not fidelity.get("measurable"):
        outcome, detail = "undecided", fidelity.get("why_not_measurable", "not measurable")
    elif fidelity.get("kept"):
        outcome, detail = "pass", ""
    else:
        outcome, detail = "fail", "the refined samples no longer show their prompts as the base samples do"
    reasons.append(
        _reason(
            "content_fidelity",
            "content fidelity (prompt recognized, refined / base)",
            value,
            f">= {FIDELITY_MIN:g}",
            outcome,
            detail,
        )
    )
    failed = [r for r in reasons if r["outcome"] == "fail"]
    undecided = [r for r in reasons if r["outcome"] == "undecided"]
    if failed:
        verdict = "not confirmed"
        summary = "Not confirmed: " + "; ".join(f"{r['label']}: {r['detail']}" for r in failed) + "."
    elif undecided:
        verdict = "inconclusive"
        summary = (
            "Inconclusive: these figures neither confirm nor refute a gain ("
            + "; ".join(f"{r['label']}: {r['detail']}" for r in undecided)
            + ")."
        )
    else:
        verdict = "confirmed"
        summary = (
            "Confirmed: the gain exceeds twice the seed spread under the training reward and under a judge strong "
            "enough to judge, the judge finds fewer artifacts, and the images kept their detail and content."
        )
    return {"verdict": verdict, "summary": summary, "reasons": reasons}


def _value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "n/a" if value is None else str(value)
    return f"{value:.3f}" if isinstance(value, (int, float)) else str(value)


def verdict_markdown(verdict: Mapping[str, Any], heading: str | None = None) -> list[str]:
    """The verdict as Markdown lines: the verdict and its summary, then one table row per target."""
    lines = [f"## {heading}", ""] if heading else []
    lines += [
        f"**Verdict: {verdict['verdict']}.** {verdict['summary']}",
        "",
        "| target | value | threshold | result |",
        "|---|---:|---|---|",
    ]
    for r in verdict["reasons"]:
        result = {"pass": "pass", "fail": "FAIL", "undecided": "undecided"}[r["outcome"]]
        detail = f" ({r['detail']})" if r.get("detail") else ""
        lines.append(f"| {r['label']} | {_value(r['value'])} | {r['threshold']} | {result}{detail} |")
    return lines
