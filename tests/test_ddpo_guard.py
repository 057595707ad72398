"""The content guard on DDPO's best epoch: an epoch whose held-out samples lost their content (a blank the judge
likes) is never picked as best, on the live path (BestByJudge per epoch) and on resume (hand-made rows)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from synartifact.generator import ddpo_tracking
from synartifact.generator.ddpo_tracking import BestByJudge, content_guard_allows

PROMPTS = ["a red car", "a green park", "a blue sea"]
COLOURS = [(200, 30, 30), (30, 180, 40), (20, 40, 210)]
PER_PROMPT = 3


def _scenes(seed: int = 0) -> list:
    """One distinct colour scene per prompt (with a little noise per image), in the order BestByJudge samples."""
    rng = np.random.default_rng(seed)
    images = []
    for colour in COLOURS:
        for _ in range(PER_PROMPT):
            array = np.clip(np.array(colour) + rng.normal(0, 12, (16, 16, 3)), 0, 255).astype(np.uint8)
            images.append(Image.fromarray(array))
    return images


def _blanks() -> list:
    return [Image.new("RGB", (16, 16), (120, 110, 100)) for _ in range(len(PROMPTS) * PER_PROMPT)]


class _BlankLovingJudge:
    """Rates an image higher the flatter it is: a blank beats any scene (what a weak judge does)."""

    def details(self, images):
        return [{"reward": float(1.0 - np.asarray(im, dtype=float).std() / 128), "unparsable": 0} for im in images]


def _guarded(tmp_path, monkeypatch, epochs: list) -> BestByJudge:
    """A BestByJudge whose sampler returns the base scenes first (the references), then ``epochs`` in turn."""
    queue = [_scenes(), *epochs]
    monkeypatch.setattr(ddpo_tracking, "_sample_held_out", lambda *a, **k: queue.pop(0))
    monkeypatch.setattr(ddpo_tracking, "_save_weights", lambda trainer, pipeline, out, use_lora: None)
    args = SimpleNamespace(judge_every=1, judge_images_per_prompt=PER_PROMPT, use_lora=True, judge="judge")
    config = SimpleNamespace(num_epochs=len(epochs))
    best = BestByJudge(_BlankLovingJudge(), PROMPTS, None, SimpleNamespace(sd_pipeline=None), tmp_path, args, config)
    best.sample_references()
    return best


def test_an_epoch_that_lost_its_content_is_never_the_best(tmp_path, monkeypatch):
    best = _guarded(tmp_path, monkeypatch, [_scenes(1), _blanks(), _scenes(2)])
    rows = [best(epoch) for epoch in range(3)]
    # the blank epoch has the judge's highest reward, and lost its content
    assert rows[1]["judge_reward"] > max(rows[0]["judge_reward"], rows[2]["judge_reward"])
    assert [row["content_kept"] for row in rows] == [True, False, True]
    assert rows[1]["content_fidelity"] < 0.8 <= rows[0]["content_fidelity"]
    expected = 0 if rows[0]["judge_reward"] >= rows[2]["judge_reward"] else 2
    summary = best.summary()
    assert summary["best_epoch"] == expected != 1
    assert json.loads((tmp_path / "best" / "best.json").read_text())["epoch"] == expected
    assert summary["content_guard"]["lost_epochs"] == [1]
    assert summary["content_guard"]["no_epoch_kept_content"] is False


def test_when_no_epoch_keeps_its_content_there_is_no_best(tmp_path, monkeypatch):
    best = _guarded(tmp_path, monkeypatch, [_blanks(), _blanks()])
    rows = [best(epoch) for epoch in range(2)]
    assert [row["content_kept"] for row in rows] == [False, False]
    summary = best.summary()
    assert summary["best_epoch"] is None and summary["best_judge_reward"] is None
    assert summary["content_guard"]["no_epoch_kept_content"] is True
    assert not (tmp_path / "best" / "best.json").exists()


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # the highest judge reward lost its content: the next best that kept it wins
        (
            [
                {"epoch": 0, "judge_reward": 0.5, "content_kept": True},
                {"epoch": 1, "judge_reward": 0.9, "content_kept": False},
                {"epoch": 2, "judge_reward": 0.6, "content_kept": True},
            ],
            2,
        ),
        # unmeasured fidelity (None or absent: an older log) decides nothing
        ([{"epoch": 0, "judge_reward": 0.5, "content_kept": None}, {"epoch": 1, "judge_reward": 0.7}], 1),
        ([{"epoch": 0, "judge_reward": 0.9, "content_kept": False}], None),
    ],
)
def test_resumed_best_epoch_skips_the_epochs_that_lost_their_content(tmp_path, rows, expected):
    if expected is not None:
        (tmp_path / "best").mkdir()
        (tmp_path / "best" / "best.json").write_text(json.dumps({"epoch": expected}))
    best = BestByJudge(None, ["p"], None, None, tmp_path, SimpleNamespace(judge="j", use_lora=True), None)
    best.resume(rows)
    assert best.tracker.best_epoch == expected
    assert best.lost_epochs == [r["epoch"] for r in rows if not content_guard_allows(r)]
    assert best.summary()["content_guard"]["no_epoch_kept_content"] is (expected is None)
