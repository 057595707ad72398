"""Ideas with one home: the reward of an answer (reward, repair, Spaces), the package version, the public objects."""

from __future__ import annotations

import math

import pytest

from synartifact.report import ArtifactReport
from synartifact.taxonomy import KINDS


def _report(text: str) -> ArtifactReport:
    return ArtifactReport(raw_text=text)


def test_reward_of_an_answer_by_hand():
    from synartifact.reward import reward_from_report, reward_value

    assert len(KINDS) == 13
    two = "A) " + KINDS[0].name + "\nC) " + KINDS[2].name
    assert reward_from_report(_report(two), "labels") == pytest.approx(1 - 2 / 13)
    assert reward_from_report(_report("None"), "labels") == 1.0
    assert reward_from_report(_report("purple monkey"), "labels") == 0.0  # names neither a kind nor None
    assert reward_from_report(_report("purple monkey"), "labels", unparsable_reward=-1.0) == -1.0
    weights = {k.slug: 0.0 for k in KINDS} | {KINDS[0].slug: 3.0, KINDS[1].slug: 1.0}
    assert reward_from_report(_report(two), "labels", weights) == pytest.approx(1 - 3 / 4)
    assert reward_value({KINDS[0].slug: 0.5}, {KINDS[0].slug: 2.0, KINDS[1].slug: 2.0}, False, 0.0) == (0.75, False)
    assert reward_value({KINDS[0].slug: math.nan}, {KINDS[0].slug: 1.0}, False, -2.0) == (-2.0, True)
    assert reward_value({KINDS[0].slug: 1.0}, {KINDS[0].slug: 1.0}, True, 0.25) == (0.25, False)


def test_space_repairer_and_reward_read_a_report_alike(monkeypatch):
    """The Space's number, the repairer's and ArtifactReward's generate mode are one rule: a report gives one value."""
    from synartifact import spaces_utils
    from synartifact.reward import ArtifactReward

    class Scripted:
        mode = "labels"

        def predict(self, images, batch_size=1):
            return [_report("B) " + KINDS[1].name) for _ in images]

    reward = ArtifactReward(Scripted(), mode="generate")
    report = _report("B) " + KINDS[1].name)
    assert spaces_utils.report_reward(report) == reward.report_reward(report) == pytest.approx(12 / 13)
    from PIL import Image

    assert reward.score_images([Image.new("RGB", (8, 8))]) == [pytest.approx(12 / 13)]


def test_version_is_the_installed_distribution_and_objects_are_exported():
    from importlib.metadata import version

    import synartifact

    assert synartifact.__version__ == version("synartifact")
    from synartifact import ArtifactRepairer
    from synartifact.repair import ArtifactRepairer as defined

    assert ArtifactRepairer is defined and "ArtifactRepairer" in synartifact.__all__


def test_reward_loads_its_classifier_in_the_dtype_asked(tiny_vlm):
    import torch

    from synartifact.reward import ArtifactReward

    reward = ArtifactReward(tiny_vlm, mode="generate", device="cpu", torch_dtype="bfloat16")
    assert {p.dtype for p in reward.classifier.model.parameters()} == {torch.bfloat16}
    with pytest.raises(ValueError, match="torch_dtype applies when ArtifactReward loads"):
        ArtifactReward(reward.classifier, mode="generate", torch_dtype=torch.float16)


def test_family_checks_by_type_name():
    from types import SimpleNamespace

    from synartifact.classifier.families import is_qwen_vl, model_computes_positions, processor_nests_images

    def named(name):
        return type(name, (), {})()

    assert processor_nests_images(named("Idefics3Processor")) and processor_nests_images(named("SmolVLMProcessor"))
    assert not processor_nests_images(named("LlavaProcessor")) and not processor_nests_images(
        named("Qwen2VLProcessor")
    )
    assert is_qwen_vl("qwen2_vl") and is_qwen_vl("qwen2_5_vl") and is_qwen_vl("Qwen2VLImageProcessor")
    assert not is_qwen_vl("llava") and not is_qwen_vl("idefics3")
    assert model_computes_positions(SimpleNamespace(config=SimpleNamespace(model_type="qwen2_5_vl")))
    assert not model_computes_positions(SimpleNamespace(config=SimpleNamespace(model_type="llava")))
    assert not model_computes_positions(SimpleNamespace())
