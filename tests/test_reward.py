"""ArtifactReward: the reward formula, weights, unparsable answers, both modes, and the image formats DDPO hands over."""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from synartifact.prompts import render_answer
from synartifact.report import ArtifactReport
from synartifact.reward import ArtifactReward, images_to_pil, parse_weights
from synartifact.taxonomy import SLUGS


@pytest.fixture(scope="session")
def tiny_classifier(tiny_vlm):
    from synartifact.classifier import ArtifactClassifier

    return ArtifactClassifier.from_pretrained(tiny_vlm, device="cpu")


# ---- a scripted classifier: fixed answers, and a language model that "knows" them ------------------------------


class OracleLM(torch.nn.Module):
    """Predicts, at every position, the next token of a scripted answer per row (teacher forcing over a cache)."""

    def __init__(self, answers: list[list[int]], vocab_size: int, eos: int) -> None:
        super().__init__()
        self.answers, self.vocab_size, self.eos = answers, vocab_size, eos
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.generated: list[list[int]] = []
        self.calls = 0

    def forward(self, input_ids, attention_mask, past_key_values=None, **kwargs):
        self.calls += 1
        batch, width = input_ids.shape
        if past_key_values is None:
            self.generated = [[] for _ in range(batch)]
            chunk_mask = torch.zeros_like(input_ids)
            chunk_mask[:, -1] = 0  # the prompt: nothing generated yet
        else:
            chunk_mask = attention_mask[:, -width:]
        logits = torch.zeros(batch, width, self.vocab_size)
        for row in range(batch):
            for pos in range(width):
                if chunk_mask[row, pos]:
                    self.generated[row].append(int(input_ids[row, pos]))
                target = self.answers[row]
                done = self.generated[row]
                if done == target[: len(done)] and len(done) < len(target):
                    logits[row, pos, target[len(done)]] = 10.0
                else:
                    logits[row, pos, 5] = 10.0  # off the script: a token that is no decision
        return SimpleNamespace(logits=logits, past_key_values="cache")


class ScriptedClassifier:
    """The surface of ArtifactClassifier that ArtifactReward uses, answering from a script."""

    def __init__(self, texts: list[str], tokenizer) -> None:
        self.texts, self.mode, self.device = texts, "labels", torch.device("cpu")
        self.processor = SimpleNamespace(tokenizer=tokenizer)
        answers = [tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for t in texts]
        self.model = OracleLM(answers, len(tokenizer), tokenizer.eos_token_id)
        self.model.generation_config = SimpleNamespace(eos_token_id=tokenizer.eos_token_id)

    def predict(self, images, batch_size=8):
        return [ArtifactReport(raw_text=t) for t in self.texts[: len(images)]]

    def prepare_inputs(self, images):
        n = len(images)
        return {"input_ids": torch.full((n, 4), 7), "attention_mask": torch.ones(n, 4, dtype=torch.long)}


@pytest.fixture(scope="session")
def tokenizer(tiny_vlm):
    from synartifact.classifier.loading import load_vlm_processor

    return load_vlm_processor(tiny_vlm).tokenizer


KIND_SETS = [[], [1], [1, 7], [0, 4, 12], [12], [2, 3, 5, 6, 8, 9, 10, 11]]


def _texts():
    return [render_answer([{"label": k} for k in kinds]) for kinds in KIND_SETS]


def _images(n):
    return [Image.new("RGB", (32, 32), (i * 20, 100, 50)) for i in range(n)]


# ---- tests ---------------------------------------------------------------------------------------------------------


def test_parse_weights_string_dict_and_errors():
    table = parse_weights("awkward_facial_expression=2, Localized Blur=0")
    assert table["awkward_facial_expression"] == 2.0 and table["localized_blur"] == 0.0
    assert table["illegible_letters"] == 1.0 and len(table) == 13
    assert parse_weights({7: 3})["localized_blur"] == 3.0
    with pytest.raises(ValueError, match="Unknown artifact kind"):
        parse_weights("not_a_kind=1")
    with pytest.raises(ValueError, match=">= 0"):
        parse_weights("localized_blur=-1")
    with pytest.raises(ValueError, match="sum to 0"):
        parse_weights({slug: 0 for slug in SLUGS})


def test_generate_mode_exact_values_weights_and_unparsable(tokenizer):
    texts = ["B) Awkward Facial Expression\nH) Localized Blur", "None", "qwerty zxcv", "H) Localized Blur"]
    clf = ScriptedClassifier(texts, tokenizer)
    reward = ArtifactReward(clf, mode="generate", unparsable_reward=-1.0)
    rewards, info = reward(_images(4), ["p"] * 4, [{}] * 4)
    assert rewards.dtype == torch.float32 and rewards.shape == (4,)
    assert rewards.tolist() == pytest.approx([1 - 2 / 13, 1.0, -1.0, 1 - 1 / 13])
    assert info["unparsable"] == 1 and info["kinds_found"] == {"awkward_facial_expression": 1, "localized_blur": 2}

    weighted = ArtifactReward(clf, mode="generate", weights={"localized_blur": 0, "awkward_facial_expression": 2})
    values = weighted.score_images(_images(4))
    # total weight 13 - 1 + 1 = 13; blur ignored, face counts 2
    assert values == pytest.approx([1 - 2 / 13, 1.0, 0.0, 1.0])


def test_score_mode_follow_lines_reads_every_answer_head_like_greedy_decoding(tokenizer):
    texts = _texts()
    clf = ScriptedClassifier(texts, tokenizer)
    score = ArtifactReward(clf, mode="score", batch_size=len(texts), follow_lines=True)
    expected = [{SLUGS[k] for k in kinds} for kinds in KIND_SETS]
    assert score.label_sets(_images(len(texts))) == expected
    # 1 pass for the prompt + one per line of the longest answer, far fewer than one per answer token
    assert clf.model.calls == 1 + max(len(k) for k in KIND_SETS)
    generate = ArtifactReward(clf, mode="generate")
    assert score.score_images(_images(len(texts))) == pytest.approx(generate.score_images(_images(len(texts))))
    soft = ArtifactReward(clf, mode="score", soft=True, follow_lines=True).score_images(_images(len(texts)))
    assert soft == pytest.approx([1 - len(k) / 13 for k in KIND_SETS], abs=1e-3)


def test_score_mode_is_one_forward_pass_reading_the_first_answer_head(tokenizer):
    texts = _texts()
    clf = ScriptedClassifier(texts, tokenizer)
    score = ArtifactReward(clf, mode="score", batch_size=len(texts))
    # the first line's kind (taxonomy order), or nothing for "None"
    expected = [{SLUGS[kinds[0]]} if kinds else set() for kinds in KIND_SETS]
    assert score.label_sets(_images(len(texts))) == expected
    assert clf.model.calls == 1  # one forward for the batch (no logits_to_keep in this forward: full logits)
    single = [i for i, kinds in enumerate(KIND_SETS) if len(kinds) <= 1]
    generate = ArtifactReward(clf, mode="generate").label_sets(_images(len(texts)))
    assert [expected[i] for i in single] == [generate[i] for i in single]  # the modes agree on single-kind answers
    soft = ArtifactReward(clf, mode="score", soft=True).score_images(_images(len(texts)))
    assert soft == pytest.approx([1 - min(len(k), 1) / 13 for k in KIND_SETS], abs=1e-3)


def test_score_mode_single_pass_on_the_tiny_classifier(tiny_classifier, monkeypatch):
    model, calls = tiny_classifier.model, []
    forward = model.forward

    @functools.wraps(forward)
    def counted(*args, **kwargs):
        calls.append(kwargs)
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", counted)
    images = _images(5)
    reward = ArtifactReward(tiny_classifier, mode="score", batch_size=2, constrained=True, soft=True)
    single = reward._found(images)
    assert len(calls) == 3  # 5 images in batches of 2: one forward per batch
    assert all(c.get("logits_to_keep") == 1 and c.get("use_cache") is False for c in calls)
    # the same first decision as the multi-pass readout (full logits, KV cache)
    lines = ArtifactReward(tiny_classifier, mode="score", batch_size=2, constrained=True, soft=True, follow_lines=True)
    found_lines = lines._found(images)
    for one, many in zip(single[1], found_lines[1]):
        assert one <= many and bool(one) == bool(many)
    for one, many in zip(single[0], found_lines[0]):
        first = {k: v for k, v in one.items() if v > 0}
        assert all(many[k] >= v - 1e-4 for k, v in first.items())
    assert single[2] == [False] * 5


def test_temperature_softens_the_soft_reward_and_keeps_labels(tokenizer):
    texts = _texts()
    clf = ScriptedClassifier(texts, tokenizer)
    images = _images(len(texts))

    def soft(temperature):
        return ArtifactReward(clf, mode="score", soft=True, temperature=temperature).score_images(images)

    sharp, mild, flat = soft(1.0), soft(4.0), soft(50.0)
    assert max(sharp) - min(sharp) > max(mild) - min(mild) > max(flat) - min(flat) > 0
    assert mild[0] < 1.0 and mild[1] > 1 - 1 / 13  # "None" no longer certain, a found kind no longer certain
    labels = ArtifactReward(clf, mode="score", temperature=50.0).label_sets(images)
    assert labels == ArtifactReward(clf, mode="score").label_sets(images)
    assert "temperature=50.0" in repr(ArtifactReward(clf, mode="score", temperature=50.0))


def test_presence_is_each_kinds_probability_as_the_reward_reads_it(tokenizer):
    texts = _texts()
    clf = ScriptedClassifier(texts, tokenizer)
    images = _images(len(texts))
    soft = ArtifactReward(clf, mode="score", soft=True).presence(images)
    hard = ArtifactReward(clf, mode="score").presence(images)
    every = ArtifactReward(clf, mode="generate").presence(images)
    for kinds, p, h, g in zip(KIND_SETS, soft, hard, every):
        first = {SLUGS[kinds[0]]} if kinds else set()  # the scripted answer's first line: what one pass reads
        assert set(h) == first and all(v == 1.0 for v in h.values())
        assert set(g) == {SLUGS[k] for k in kinds} and all(v == 1.0 for v in g.values())
        assert set(p) == set(SLUGS) and all(0.0 <= v <= 1.0 for v in p.values()) and sum(p.values()) <= 1 + 1e-6
        if kinds:
            assert max(p, key=p.get) == SLUGS[kinds[0]] and p[SLUGS[kinds[0]]] > 0.5
        else:
            assert max(p.values()) < 0.5  # "None" holds the mass


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "warm", None])
def test_bad_temperature_raises(tokenizer, value):
    clf = ScriptedClassifier(["None"], tokenizer)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        ArtifactReward(clf, mode="score", temperature=value)


def test_score_mode_counts_off_format_answers_as_unparsable(tokenizer):
    clf = ScriptedClassifier(["hello there", "None"], tokenizer)
    rewards, info = ArtifactReward(clf, mode="score", unparsable_reward=0.25)(_images(2), None, None)
    assert rewards.tolist() == pytest.approx([0.25, 1.0]) and info["unparsable"] == 1


def test_images_to_pil_accepts_ddpo_tensors_pil_and_cleans_nan():
    batch = torch.rand(3, 3, 32, 32)
    batch[1, 0, 0, 0] = float("nan")
    pil, nonfinite = images_to_pil(batch)
    assert nonfinite == 1 and [im.size for im in pil] == [(32, 32)] * 3 and all(im.mode == "RGB" for im in pil)
    assert pil[0].getpixel((0, 0)) == tuple(round(float(v) * 255) for v in batch[0, :, 0, 0])
    hwc, _ = images_to_pil([torch.rand(32, 32, 3), Image.new("L", (16, 16))])
    assert hwc[0].size == (32, 32) and hwc[1].mode == "RGB"


@pytest.mark.parametrize("mode", ["score", "generate"])
def test_tiny_classifier_both_modes_finite_for_tensors_and_pil(tiny_classifier, mode):
    reward = ArtifactReward(tiny_classifier, mode=mode, batch_size=2)
    batch = torch.rand(3, 3, 32, 32)
    batch[2] = float("nan")
    rewards, info = reward(batch, ["a cat"] * 3, [{}] * 3)
    assert rewards.shape == (3,) and torch.isfinite(rewards).all()
    assert ((rewards >= 0) & (rewards <= 1)).all()
    assert info["nonfinite_images"] == 1 and info["num_images"] == 3 and info["mode"] == mode
    values = reward.score_images(images_to_pil(batch[:2])[0])
    assert len(values) == 2 and all(math.isfinite(v) for v in values)
    assert values == pytest.approx(rewards[:2].tolist())


def test_score_mode_reads_full_mode_classifiers_in_one_pass(tokenizer):
    records = [[], [{"label": 7, "bbox": [0.1, 0.2, 0.5, 0.6], "caption": "The background is blurred."}]]
    records.append([{"label": 1, "bbox": [0.0, 0.0, 1.0, 1.0], "caption": "An odd smile."}])
    texts = [render_answer(r, mode="full") for r in records]
    clf = ScriptedClassifier(texts, tokenizer)
    clf.mode = "full"
    score = ArtifactReward(clf, mode="score")
    expected = [set(), {"localized_blur"}, {"awkward_facial_expression"}]
    assert score.label_sets(_images(3)) == expected and clf.model.calls == 1
    assert ArtifactReward(clf, mode="generate").label_sets(_images(3)) == expected
    assert score.score_images(_images(3)) == pytest.approx([1.0, 1 - 1 / 13, 1 - 1 / 13])
    with pytest.raises(ValueError, match="follow_lines"):
        ArtifactReward(clf, mode="score", follow_lines=True)


def test_score_mode_on_a_tiny_full_mode_classifier(tiny_vlm):
    from synartifact.classifier import ArtifactClassifier

    full = ArtifactClassifier.from_pretrained(tiny_vlm, device="cpu", mode="full")
    rewards, info = ArtifactReward(full, mode="score", batch_size=2)(torch.rand(3, 3, 32, 32), None, None)
    assert rewards.shape == (3,) and torch.isfinite(rewards).all() and info["num_images"] == 3


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="reward mode"):
        ArtifactReward(object(), mode="vote")
    with pytest.raises(ValueError, match="batch_size"):
        ArtifactReward(object(), batch_size=0)
    with pytest.raises(ValueError, match="mode 'score' only"):
        ArtifactReward(object(), mode="generate", follow_lines=True)


def test_batch_group_probs_by_hand(tokenizer):
    """The score mode's batched readout on logits chosen so that the numbers work out by hand: groups of different
    sizes, a NaN logit, and an off-format row. A group's probability is its tokens' summed probability, raised to
    1 / temperature and renormalized over the groups."""
    reward = ArtifactReward(ScriptedClassifier(["None"], tokenizer), mode="score", temperature=2.0)
    groups = [[0], [1, 2], [3]]  # tokens 4 and 5 are in no group
    # exp(logits): the groups' sums are 1, 9, 16 | 9, 1, 16 | 4, 25, 1; at temperature 2 their square roots count
    weights = [[1, 4, 5, 16, 2, 2], [9, 0.5, 0.5, 16, 1, 1], [4, 12, 13, 1, 100, 1]]
    logits = torch.tensor(weights, dtype=torch.float32).log()
    logits[1, 5] = float("nan")  # an undefined top logit: no probability, and off format
    probs, choices, on_format = reward._batch_group_probs(logits, groups)
    assert probs[0] == pytest.approx([1 / 8, 3 / 8, 4 / 8], abs=1e-6)
    assert probs[1] == pytest.approx([3 / 8, 1 / 8, 4 / 8], abs=1e-6)
    assert probs[2] == pytest.approx([2 / 8, 5 / 8, 1 / 8], abs=1e-6)
    assert choices == [2, 2, 1]  # the largest summed probability, whatever the temperature
    # on format only when the vocabulary's top token is in a group: row 1's is NaN, row 2's is token 4 (weight 100)
    assert on_format == [True, False, False]
    assert reward._group_probs(logits[0], groups) == (pytest.approx([1 / 8, 3 / 8, 4 / 8], abs=1e-6), 2, True)
    plain = ArtifactReward(ScriptedClassifier(["None"], tokenizer), mode="score", temperature=1.0)
    assert plain._group_probs(logits[0], groups)[0] == pytest.approx([1 / 26, 9 / 26, 16 / 26], abs=1e-6)
