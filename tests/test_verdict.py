"""The verdict on a refined generator: content fidelity (images stay images), judge strength, and one computed
verdict from every target, with its reasons."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synartifact.generator.fidelity import content_fidelity
from synartifact.generator.verdict import (
    assess_judge,
    compute_verdict,
    judge_strength,
    load_judge_eval,
    verdict_markdown,
)

PROMPTS = ["a grey wall", "a red sunset", "a green field", "a blue sea"]


def _scene(prompt: int, seed: int, index: int) -> np.ndarray:
    """A 32 px scene per prompt, each prompt's layout and colours its own, with a little noise per sample; prompt 0
    is a low-contrast grey scene (the nearest to a flat grey blank)."""
    rng = np.random.default_rng(1000 * seed + 10 * prompt + index)
    ramp = np.linspace(0, 1, 32)
    layouts = [
        0.5 + 0.05 * np.outer(ramp, np.ones(32))[..., None] * np.ones(3),
        np.outer(ramp, np.ones(32))[..., None] * np.array([1.0, 0.3, 0.1]),
        np.outer(np.ones(32), ramp)[..., None] * np.array([0.1, 0.9, 0.2]),
        np.outer(1 - ramp, np.ones(32))[..., None] * np.array([0.1, 0.3, 1.0]),
    ]
    image = layouts[prompt] + rng.normal(0, 0.02, (32, 32, 3))
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def _sets(images_per_prompt: int = 2, seeds=(0, 1)):
    prompts = [p for p in PROMPTS for _ in range(images_per_prompt)]
    base = {s: [_scene(PROMPTS.index(p), s, i % images_per_prompt) for i, p in enumerate(prompts)] for s in seeds}
    return prompts, base


def test_flat_grey_blanks_lose_content_and_an_identical_set_keeps_it():
    prompts, base = _sets()
    same = content_fidelity(base, {s: list(ims) for s, ims in base.items()}, prompts)
    # four distinct scenes: every base sample is recognized, and an unchanged generator is recognized as often
    assert same["base_recognized"] == 1.0 and same["refined_recognized"] == 1.0
    assert same["fidelity"] == 1.0 and same["measurable"] is True and same["kept"] is True
    assert same["chance"] == 0.25

    grey = {s: [np.full((32, 32, 3), 128, dtype=np.uint8) for _ in prompts] for s in base}
    blank = content_fidelity(base, grey, prompts)
    # every blank looks like the grey-wall prompt and nothing else: recognized for that prompt's images only
    assert blank["refined_recognized"] == 0.25
    assert blank["per_prompt"]["a grey wall"]["refined"] == 1.0
    # 12 recognized scenes lost, none gained: far beyond noise (12 > 2 sqrt(12))
    assert blank["fidelity"] == 0.25 and (blank["lost"], blank["gained"]) == (12, 0)
    assert blank["loss_within_noise"] is False and blank["kept"] is False

    # and the verdict fails a generator that wins by turning scenes into blanks, whatever the classifiers say
    assert compute_verdict(_metrics(fidelity=blank))["verdict"] == "not confirmed"
    assert compute_verdict(_metrics(fidelity=same))["verdict"] == "confirmed"


def _flat(value: int) -> np.ndarray:
    return np.full((16, 16, 3), value, dtype=np.uint8)


def test_fidelity_by_hand_leaves_the_sample_of_the_same_noise_out():
    """Two prompts, two seeds, flat images (a thumbnail is its colour). Base: A = 0 and 76, B = 178 and 255.
    Refined A at seed 1 is 115: the prototype of A without the base sample of that noise is 0 (115 away), B's is
    216.5 (101.5 away), so it is taken for B; with its own base sample in, A's prototype (38) would win. Base 4/4,
    refined 3/4: fidelity 0.75, under 0.8, but one sample lost and none gained is within noise (1 <= 2 sqrt(1))."""
    prompts = ["A", "B"]
    base = {0: [_flat(0), _flat(178)], 1: [_flat(76), _flat(255)]}
    refined = {0: [_flat(0), _flat(178)], 1: [_flat(115), _flat(255)]}
    result = content_fidelity(base, refined, prompts)
    assert result["base_recognized"] == 1.0
    assert result["refined_recognized"] == 0.75
    assert result["refined_hits"] == [True, True, False, True]
    assert result["fidelity"] == 0.75 and result["measurable"] is True
    assert (result["lost"], result["gained"], result["loss_within_noise"], result["kept"]) == (1, 0, True, True)
    assert result["per_prompt"] == {"A": {"base": 1.0, "refined": 0.5}, "B": {"base": 1.0, "refined": 1.0}}


def test_fidelity_is_not_measurable_when_the_base_draws_no_prompt_distinctly():
    prompts = ["A", "B"]
    base = {0: [_flat(100), _flat(100)], 1: [_flat(100), _flat(100)]}
    result = content_fidelity(base, base, prompts)
    # every prototype is the same colour: the first prompt wins every time, chance level (0.5 of 0.75 needed)
    assert result["base_recognized"] == 0.5 and result["measurable"] is False and result["kept"] is None
    one_each = content_fidelity({0: [_flat(0), _flat(9)]}, {0: [_flat(0), _flat(9)]}, prompts)
    assert one_each["measurable"] is False and one_each["fidelity"] is None
    with pytest.raises(ValueError, match="one prompt per image"):
        content_fidelity(base, {0: [_flat(0)], 1: [_flat(0)]}, prompts)


# ---- judge strength ----------------------------------------------------------------------------------------------

EVAL = {
    "binary_f1": 0.9,
    "macro_f1_kinds": ["localized_blur", "abnormal_texture"],
    "per_kind": {
        "localized_blur": {"f1": 0.6, "support": 10},
        "abnormal_texture": {"f1": 0.4, "support": 5},
        "illegible_letters": {"f1": 0.0, "support": 0},
    },
}


def test_judge_strength_needs_binary_f1_and_every_judged_kind():
    weak = judge_strength(EVAL)  # judged kinds default to the kinds its test data holds
    assert weak["strong"] is False and weak["weak_kinds"] == ["abnormal_texture"]
    assert weak["kinds"]["localized_blur"] == {"f1": 0.6, "support": 10, "passed": True}
    assert judge_strength(EVAL, ["localized_blur"])["strong"] is True
    # a kind it was trained on but that its test data never shows is not covered
    absent = judge_strength(EVAL, ["localized_blur", "illegible_letters"])
    assert absent["strong"] is False and absent["weak_kinds"] == ["illegible_letters"]
    low = judge_strength({**EVAL, "binary_f1": 0.849}, ["localized_blur"])
    assert low["strong"] is False and "binary F1 0.849 < 0.85" in low["why"]
    assert judge_strength({**EVAL, "binary_f1": 0.85}, ["localized_blur"])["strong"] is True
    unknown = judge_strength(None)
    assert unknown["strong"] is False and "--judge-eval" in unknown["why"]


def test_judge_eval_is_read_from_a_file_a_folder_or_the_judge_card(tmp_path):
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "metrics.json").write_text(json.dumps({"model": EVAL, "baseline": {"binary_f1": 0.0}}))
    assert load_judge_eval(tmp_path / "eval")[0]["binary_f1"] == 0.9
    assert load_judge_eval(tmp_path / "eval" / "metrics.json")[1].endswith("metrics.json")
    with pytest.raises(FileNotFoundError, match="synartifact evaluate"):
        load_judge_eval(tmp_path / "missing.json")
    judge = tmp_path / "judge"
    judge.mkdir()
    assert load_judge_eval(None, judge) == (None, None)
    card = {"card_data": {"eval_results": [{"metric_type": "f1", "metric_config": "binary", "metric_value": 0.95}]}}
    (judge / "synartifact_card.json").write_text(json.dumps(card))
    (judge / "sft_run.json").write_text(json.dumps({"trained_kinds": ["localized_blur"]}))
    # the card gives the binary F1 only: per-kind figures unknown, so not strong enough to judge
    from_card = assess_judge(judge)
    assert from_card["binary_f1"] == 0.95 and from_card["strong"] is False and "per-kind" in from_card["why"]
    # with the evaluation file, the kinds come from the judge's own training record
    assert assess_judge(judge, tmp_path / "eval")["strong"] is True


# ---- the verdict -------------------------------------------------------------------------------------------------


def _metrics(
    reward_gain=3.0,
    judge_gain=3.0,
    rates=(0.5, 0.3),
    fine=1.0,
    fidelity=None,
    strong=True,
    independent=True,
    judge=True,
):
    metrics = {
        "delta": {"mean_reward": 0.01},
        "reward_gain_in_spread": reward_gain,
        "judge_gain_in_spread": judge_gain if judge else None,
        "drift": {"noise_ratio": fine},
        "fidelity": fidelity or {"fidelity": 0.95, "measurable": True, "kept": True},
    }
    if judge:
        metrics["judge"] = {
            "base": {"artifact_rate": rates[0]},
            "refined": {"artifact_rate": rates[1]},
            "config": {"independent": independent},
            "strength": {"strong": strong, "binary_f1": 0.9 if strong else 0.7, "why": "binary F1 0.700 < 0.85"},
        }
    return metrics


@pytest.mark.parametrize(
    ("changes", "verdict", "target", "outcome"),
    [
        ({}, "confirmed", None, "pass"),
        # a weak judge decides nothing, whichever way its figures point
        ({"strong": False}, "inconclusive", "judge_strength", "undecided"),
        ({"strong": False, "judge_gain": -3.0, "rates": (0.5, 0.6)}, "inconclusive", "judge_gain", "undecided"),
        ({"independent": False}, "inconclusive", "judge_strength", "undecided"),
        ({"judge": False}, "inconclusive", "judge_gain", "undecided"),
        # gains within twice the seed spread are noise; no spread at all cannot be weighed
        ({"reward_gain": 1.5}, "inconclusive", "reward_gain", "undecided"),
        ({"judge_gain": 1.99}, "inconclusive", "judge_gain", "undecided"),
        ({"reward_gain": None}, "inconclusive", "reward_gain", "undecided"),
        ({"rates": (0.5, 0.45)}, "inconclusive", "judge_artifact_rate", "undecided"),
        # figures that speak against the gain
        ({"reward_gain": -2.1}, "not confirmed", "reward_gain", "fail"),
        ({"judge_gain": 0.0}, "not confirmed", "judge_gain", "fail"),
        ({"rates": (0.5, 0.5)}, "not confirmed", "judge_artifact_rate", "fail"),
        ({"fine": 0.71}, "not confirmed", "fine_detail", "fail"),
        ({"fine": 1.27}, "not confirmed", "fine_detail", "fail"),
        # content lost refutes the gain even when the judge is too weak to say anything
        (
            {"strong": False, "fidelity": {"fidelity": 0.4, "measurable": True, "kept": False}},
            "not confirmed",
            "content_fidelity",
            "fail",
        ),
        ({"fidelity": {"fidelity": None, "measurable": False}}, "inconclusive", "content_fidelity", "undecided"),
    ],
)
def test_verdict_weighs_each_target(changes, verdict, target, outcome):
    result = compute_verdict(_metrics(**changes))
    assert result["verdict"] == verdict
    by_target = {r["target"]: r for r in result["reasons"]}
    assert list(by_target) == [
        "judge_strength",
        "reward_gain",
        "judge_gain",
        "judge_artifact_rate",
        "fine_detail",
        "content_fidelity",
    ]
    if target is None:
        assert all(r["passed"] and r["outcome"] == "pass" for r in result["reasons"])
    else:
        assert by_target[target]["outcome"] == outcome and by_target[target]["passed"] is False
    assert result["summary"].startswith(verdict.capitalize() + ":")


def test_verdict_thresholds_are_inclusive_where_the_issue_says_so():
    edges = _metrics(reward_gain=2.0, judge_gain=2.0, rates=(0.5, 0.4), fine=0.85)
    result = compute_verdict(edges)
    assert result["verdict"] == "confirmed"
    ratio = {r["target"]: r for r in result["reasons"]}["judge_artifact_rate"]["value"]
    assert ratio == pytest.approx(0.8)
    assert compute_verdict(_metrics(fine=1.15))["verdict"] == "confirmed"
    assert compute_verdict(_metrics(fine=1.151))["verdict"] == "not confirmed"


def test_verdict_markdown_shows_each_target_value_threshold_and_result():
    lines = verdict_markdown(compute_verdict(_metrics(fine=1.27)), heading="Verdict")
    assert lines[:2] == ["## Verdict", ""]
    assert lines[2].startswith("**Verdict: not confirmed.** Not confirmed: fine-detail ratio")
    assert "| fine-detail ratio, refined / base | 1.270 | within [0.85, 1.15] | FAIL (" in "\n".join(lines)
    assert "| training reward gain / seed spread | 3.000 | >= 2 | pass |" in lines
