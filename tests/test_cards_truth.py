"""The model cards tell the whole truth: the judge's figures next to the training reward's, the reward terms, the
installed TRL version, and where an SFT card's evaluation figures came from."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import ModelCard

import synartifact.cards as cards

REPO = Path(__file__).resolve().parents[1]
KEYS = (
    "num_epochs sample_num_steps sample_batch_size sample_num_batches_per_epoch train_batch_size train_learning_rate "
    "train_gradient_accumulation_steps train_num_inner_epochs train_clip_range sample_guidance_scale sample_eta "
    "per_prompt_stat_tracking mixed_precision seed"
).split()


def _ddpo_card(out: Path, *, judge: bool, reward_funcs=("artifact",), weights=None) -> Path:
    from synartifact.ddpo import _write_card

    args = SimpleNamespace(
        hub_model_id=None,
        pretrained_model="runwayml/stable-diffusion-v1-5",
        use_lora=True,
        prompts="synartifact/synartifact-1k",
        classifier="outputs/demo/classifier",
        reward_funcs=list(reward_funcs),
        reward_funcs_weights=weights,
        judge="outputs/demo/judge" if judge else None,
        judge_every=10,
        judge_num_prompts=4,
        judge_images_per_prompt=4,
    )
    reward = SimpleNamespace(mode="score", soft=True, weights={}, unparsable_reward=0.0)
    rows = [
        {"epoch": 0, "reward_mean": 0.5, "reward_std": 0.1, "sampling_s": 1, "reward_s": 1, "training_s": 1},
        {"epoch": 9, "reward_mean": 0.6, "reward_std": 0.1, "sampling_s": 1, "reward_s": 1, "training_s": 1},
    ]
    summary = None
    if judge:
        rows[1]["judge_reward"] = 0.8125
        summary = {"best_epoch": 9, "best_judge_reward": 0.8125, "judge": args.judge, "judge_prompts": ["a", "b"]}
    _write_card(
        out,
        args,
        SimpleNamespace(**dict.fromkeys(KEYS, 1)),
        reward,
        {"mean_reward": 0.5, "num_images": 2, "unparsable": 0},
        {"mean_reward": 0.75, "num_images": 2, "unparsable": 0},
        rows,
        {"sampling_s": 1.0, "reward_s": 1.0, "training_s": 1.0},
        judge_summary=summary,
    )
    return out / "README.md"


def _side(base: float, refined: float, base_rate: float, refined_rate: float, spread: float) -> dict:
    return {
        "base": {"mean_reward": base, "std": spread, "per_seed_mean": [base] * 3, "artifact_rate": base_rate},
        "refined": {"mean_reward": refined, "std": spread, "per_seed_mean": [refined] * 3, "artifact_rate": refined_rate},
        "delta": {
            "mean_reward": refined - base,
            "std": spread,
            "per_seed_mean": [refined - base] * 3,
            "artifact_rate": refined_rate - base_rate,
            "gain_over_spread": (refined - base) / spread,
        },
    }  # fmt: skip


def _metrics_file(tmp_path: Path, judge_gain: float | None, independent: bool = True) -> Path:
    """An evaluate-generator metrics.json: the training reward gains 0.007 (2.44x its spread); the judge, if any,
    ``judge_gain`` over a spread of 0.00375."""
    metrics = _side(0.939, 0.946, 0.5, 0.4375, 0.00286885)
    metrics["reward_gain_in_spread"] = metrics["delta"]["gain_over_spread"]
    metrics["judge_gain_in_spread"] = None
    metrics["config"] = {"num_prompts": 8, "images_per_prompt": 4, "seeds": [0, 1, 2], "classifier": "clf"}
    # the samples kept their detail and content: what decides the verdict is the judge
    metrics["drift"] = {"noise_ratio": 1.02}
    metrics["fidelity"] = {"fidelity": 0.97, "measurable": True, "kept": True}
    if judge_gain is not None:
        judge = _side(0.955, 0.955 + judge_gain, 0.583, 0.354, 0.00375)
        judge["config"] = {"classifier": "outputs/demo/judge", "mode": "generate", "independent": independent}
        judge["strength"] = {"strong": True, "binary_f1": 0.91}
        metrics["judge"] = judge
        metrics["judge_gain_in_spread"] = judge["delta"]["gain_over_spread"]
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(metrics))
    return path


def _evaluated_card(tmp_path: Path, judge_gain: float | None, independent: bool = True) -> tuple[str, dict]:
    out = tmp_path / "generator"
    out.mkdir()
    readme = _ddpo_card(out, judge=judge_gain is not None)
    metrics = json.loads(_metrics_file(tmp_path, judge_gain, independent).read_text())
    assert cards.record_generator_evaluation(out, metrics, "synartifact/synartifact-1k") == readme
    data = ModelCard.load(readme).data
    return readme.read_text(), {r.metric_type: r.metric_value for r in data.eval_results}


def test_generator_card_shows_the_judge_gain_and_artifact_rates(tmp_path):
    text, results = _evaluated_card(tmp_path, judge_gain=0.018)
    assert "The same images scored by the independent judge `outputs/demo/judge` (mode `generate`" in text
    assert "| base mean reward | 0.9390 | 0.9550 |" in text
    assert "| this model mean reward | 0.9460 | 0.9730 |" in text
    assert "| gain (this model - base) | +0.0070 | +0.0180 |" in text
    assert "| gain / seed spread | +2.44 | +4.80 |" in text
    assert "| base artifact rate | 0.500 | 0.583 |" in text
    assert "| this model artifact rate | 0.438 | 0.354 |" in text
    assert (
        "| this model artifact rate | 0.438 | 0.354 |\n\n**Verdict: confirmed.** Confirmed: the gain exceeds" in text
    )
    assert "| judge gain / seed spread | 4.800 | >= 2 | pass |" in text
    assert "No independent judge scored these images" not in text
    assert "and by the independent judge `outputs/demo/judge`" in text
    assert results["judge_reward_gain"] == pytest.approx(0.018)
    assert results["judge_artifact_rate"] == pytest.approx(0.354)
    assert results["judge_reward"] == pytest.approx(0.973)
    assert results["artifact_reward_gain"] == pytest.approx(0.007)


def test_generator_card_says_when_the_judge_does_not_confirm(tmp_path):
    text, _ = _evaluated_card(tmp_path, judge_gain=-0.003)
    assert "| gain / seed spread | +2.44 | -0.80 |" in text
    assert "**Verdict: not confirmed.** Not confirmed: judge gain / seed spread: no gain at all." in text
    assert "| judge gain / seed spread | -0.800 | >= 2 | FAIL (no gain at all) |" in text
    assert "Verdict: confirmed" not in text


def test_generator_card_judge_gain_without_a_reward_gain(tmp_path):
    out = tmp_path / "generator"
    out.mkdir()
    _ddpo_card(out, judge=True)
    metrics = json.loads(_metrics_file(tmp_path, judge_gain=0.018).read_text())
    metrics["reward_gain_in_spread"] = 1.0
    cards.record_generator_evaluation(out, metrics, "synartifact/synartifact-1k")
    text = (out / "README.md").read_text()
    assert "**Verdict: inconclusive.**" in text
    assert "| training reward gain / seed spread | 1.000 | >= 2 | undecided (within twice the seed spread" in text
    assert "Verdict: confirmed" not in text


def test_generator_card_carries_the_verdict_the_evaluation_stored(tmp_path):
    """The card shows metrics.json's verdict as it is (the one REPORT.md shows), not a second opinion."""
    out = tmp_path / "generator"
    out.mkdir()
    _ddpo_card(out, judge=True)
    metrics = json.loads(_metrics_file(tmp_path, judge_gain=0.018).read_text())  # figures that would confirm
    reason = {"label": "content fidelity", "value": 0.25, "threshold": ">= 0.8", "outcome": "fail", "detail": "blank"}
    metrics["verdict"] = {"verdict": "not confirmed", "summary": "Not confirmed: blanks.", "reasons": [reason]}
    cards.record_generator_evaluation(out, metrics, "synartifact/synartifact-1k")
    text = (out / "README.md").read_text()
    assert "**Verdict: not confirmed.** Not confirmed: blanks." in text
    assert "| content fidelity | 0.250 | >= 0.8 | FAIL (blank) |" in text and "Verdict: confirmed" not in text


def test_generator_card_says_a_judge_that_is_the_reward_is_not_independent(tmp_path):
    text, _ = _evaluated_card(tmp_path, judge_gain=0.018, independent=False)
    assert "it is not independent and confirms nothing" in text and "**Verdict: inconclusive.**" in text
    assert "undecided (the judge is the training reward's own classifier)" in text


def test_generator_card_without_a_judge_says_so(tmp_path):
    text, results = _evaluated_card(tmp_path, judge_gain=None)
    # the training reward's gain exceeds twice its spread, yet the card does not call it a confirmed gain
    assert "The reward gain +0.0070 exceeds twice the larger seed spread (0.0057)." in text
    assert "**No independent judge scored these images**" in text and "this gain is not confirmed" in text
    assert "**Verdict: inconclusive.**" in text and "no independent judge scored the images" in text
    assert "Verdict: confirmed" not in text and "| gain / seed spread |" not in text
    assert "only (no independent judge)" in text
    assert "- **Independent judge:** none was used during training" in text
    assert not {k for k in results if k.startswith("judge")}


def test_generator_card_reward_terms_judge_and_installed_trl(tmp_path):
    readme = _ddpo_card(tmp_path, judge=True, reward_funcs=("artifact", "drift"), weights=[1.0, 0.2])
    text = readme.read_text()
    assert (
        "- **Reward terms** (`reward_funcs`; the training reward is `sum(weight * term)`): `artifact` x 1.0, " in text
    )
    assert "`drift` x 0.2 (`drift` is minus the pixel distance" in text
    assert "- **Independent judge:** `outputs/demo/judge` scored 4 image(s) of each of 2 held-out prompts" in text
    assert "best epoch 9 (judge reward 0.8125)" in text
    assert (
        "| epoch | mean reward | std | judge reward | sampling s |" in text
        and "| 9 | 0.6000 | 0.1000 | 0.8125 |" in text
    )
    assert f"`DDPOConfig` (TRL {version('trl')}; diffusers {version('diffusers')}, torch {version('torch')}" in text
    assert "## Reward before and after (the training reward)" in text and "reward hacking" in text
    # one term, no judge: the plain artifact reward, and the judge's column is left out
    text = _ddpo_card(tmp_path, judge=False).read_text()
    assert "`artifact` x 1.0." in text and "`drift`" not in text
    assert "| epoch | mean reward | std | sampling s |" in text
    # the contrast guard is named and explained, the drift penalty is not mentioned when it was not used
    text = _ddpo_card(tmp_path, judge=False, reward_funcs=("artifact", "contrast"), weights=[1.0, 0.05]).read_text()
    assert "`artifact` x 1.0, `contrast` x 0.05 (`contrast` is minus the share of its prompt's" in text
    assert "`drift`" not in text


def test_generator_card_trl_version_is_read_not_written(tmp_path, monkeypatch):
    template = (REPO / "src/synartifact/templates/generator_card.md").read_text()
    assert not re.search(r"TRL \d", template), "the TRL version is written into the template"
    monkeypatch.setattr(cards, "installed_version", lambda name: {"trl": "9.8.7"}.get(name, "0.0"))
    assert "`DDPOConfig` (TRL 9.8.7;" in _ddpo_card(tmp_path, judge=False).read_text()


def test_installed_version_reads_the_metadata():
    assert cards.installed_version("trl") == version("trl")
    assert cards.installed_version("no-such-package-synartifact") == "not installed"


def test_sft_card_says_where_eval_results_came_from(tmp_path):
    import synartifact.sft as sft

    run = {
        "base_model": "llava-hf/llava-1.5-7b-hf",
        "dataset": "synartifact/synartifact-1k",
        "train_split": "train",
        "answer_mode": "labels",
        "use_peft": True,
        "world_size": 1,
        "global_step": 2,
        "num_train_samples": 8,
        "train_loss": 1.25,
        "config": {"lora_r": 4, "lora_alpha": 8},
    }
    results = tmp_path / "evals" / "eval_results.json"
    results.parent.mkdir()
    results.write_text(json.dumps({"model": {"macro_f1": 0.5}, "baseline": {"macro_f1": 0.125}}))
    stamp = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc).timestamp()
    os.utime(results, (stamp, stamp))
    out = tmp_path / "clf"
    out.mkdir()
    text = sft.write_model_card(out, run, results).read_text()
    assert "| macro_f1 | 0.1250 | 0.5000 |" in text
    assert f"Read from `{results}` (given with `--eval_results`), last modified 2026-11-30 12:00 UTC" in text
    assert "not measured by this training run" in text
    # found next to the model: named as such
    (out / "eval_results.json").write_text(results.read_text())
    os.utime(out / "eval_results.json", (stamp, stamp))
    text = sft.write_model_card(out, run).read_text()
    assert "Read from `eval_results.json` found in the output folder, last modified 2026-11-30 12:00 UTC" in text
    # no results: no note
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "Read from" not in sft.write_model_card(empty, run).read_text()
