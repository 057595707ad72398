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
    import synartifact.webui.display as ui_display
    from synartifact.reward import ArtifactReward

    class Scripted:
        mode = "labels"

        def predict(self, images, batch_size=1):
            return [_report("B) " + KINDS[1].name) for _ in images]

    reward = ArtifactReward(Scripted(), mode="generate")
    report = _report("B) " + KINDS[1].name)
    assert ui_display.report_reward(report) == reward.report_reward(report) == pytest.approx(12 / 13)
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


def test_reward_settings_have_one_home():
    """The reward settings' names, defaults, help and choices live in the DDPO script's fields; every command that
    builds a reward offers exactly those as flags, and the functions take them by those names only."""
    import argparse
    from dataclasses import fields

    import pytest

    from synartifact.configs import DDPOScriptArguments
    from synartifact.generator.evaluation import add_cli as add_evaluate_generator
    from synartifact.reward import REWARD_SETTINGS, ArtifactReward, reward_config
    from synartifact.reward_check import add_cli as add_reward_check
    from synartifact.reward_check import run_reward_check

    script_fields = {f.name: f for f in fields(DDPOScriptArguments)}
    assert set(REWARD_SETTINGS) <= set(script_fields)
    for add in (add_evaluate_generator, add_reward_check):
        root = argparse.ArgumentParser()
        parser = add(root.add_subparsers())
        flags = {a.dest: a for a in parser._actions if a.dest.startswith(("reward_", "unparsable"))}
        assert set(flags) == set(REWARD_SETTINGS), add.__module__
        for name, action in flags.items():
            assert action.default is None  # unset: the DDPO run's or ArtifactReward's value applies
            assert script_fields[name].metadata["help"][:40] in action.help.replace("%%", "%")
        assert flags["reward_mode"].choices == ["score", "generate"]
        assert flags["reward_temperature"].type is float and flags["reward_batch_size"].type is int
    with pytest.raises(TypeError, match="reward_sotf.*reward_soft"):
        run_reward_check("x", "y", "z", reward_sotf=True)

    class Stub:
        mode, weights, soft, constrained, temperature, follow_lines = "score", {}, True, False, 2.0, False
        unparsable_reward, batch_size = 0.0, 4

    assert reward_config(Stub()) == {
        "reward_mode": "score",
        "reward_weights": {},
        "reward_soft": True,
        "reward_constrained": False,
        "reward_temperature": 2.0,
        "reward_follow_lines": False,
        "unparsable_reward": 0.0,
        "reward_batch_size": 4,
    }
    assert set(REWARD_SETTINGS.values()) <= set(ArtifactReward.__init__.__code__.co_varnames)
