"""The demo orchestrator: stages run in order, reruns skip what is up to date, failures keep earlier outputs."""

import json

import pytest

import synartifact
from synartifact import demo


@pytest.fixture
def fake_stages(monkeypatch):
    calls = []

    def make(name, fail=None):
        def run(settings, out):
            calls.append(name)
            if fail and fail():
                raise RuntimeError(f"{name} broke")
            out.mkdir(parents=True, exist_ok=True)
            (out / "result.txt").write_text(f"{name} with n={settings.n_images}")

        return run

    state = {"fail_b": False}
    stages = (
        demo.Stage("a", "a", "first", make("a"), lambda s: {"n": s.n_images}),
        demo.Stage("b", "b", "second", make("b", fail=lambda: state["fail_b"]), lambda s: {}, after=("a",)),
        demo.Stage("c", "c", "third", make("c"), lambda s: {}, after=("b",)),
    )
    monkeypatch.setattr(demo, "STAGES", stages)
    monkeypatch.setattr(demo, "write_report", lambda s, folder: None)
    return calls, state


def test_rerun_skips_up_to_date_stages_and_redoes_changed_ones(tmp_path, fake_stages):
    calls, _ = fake_stages
    demo.run_demo(demo.DemoSettings(out=tmp_path, n_images=10))
    assert calls == ["a", "b", "c"]
    assert (tmp_path / "c" / "result.txt").read_text() == "c with n=10"
    assert json.loads((tmp_path / "a" / demo.FINGERPRINT_FILE).read_text())["fingerprint"]

    calls.clear()
    demo.run_demo(demo.DemoSettings(out=tmp_path, n_images=10))
    assert calls == []

    # a changed setting of the first stage invalidates it and everything downstream
    demo.run_demo(demo.DemoSettings(out=tmp_path, n_images=20))
    assert calls == ["a", "b", "c"]
    assert (tmp_path / "a" / "result.txt").read_text() == "a with n=20"

    calls.clear()
    demo.run_demo(demo.DemoSettings(out=tmp_path, n_images=20, force_stage="b"))
    assert calls == ["b", "c"]
    calls.clear()
    demo.run_demo(demo.DemoSettings(out=tmp_path, n_images=20, force=True))
    assert calls == ["a", "b", "c"]


def test_failed_stage_is_named_and_earlier_outputs_stay(tmp_path, fake_stages):
    calls, state = fake_stages
    demo.run_demo(demo.DemoSettings(out=tmp_path, n_images=10))
    state["fail_b"] = True
    calls.clear()
    with pytest.raises(RuntimeError, match="demo stage 'b' failed"):
        demo.run_demo(demo.DemoSettings(out=tmp_path, n_images=20))
    assert calls == ["a", "b"], "nothing runs after the failed stage"
    assert (tmp_path / "a" / "result.txt").read_text() == "a with n=20"
    assert (tmp_path / "b" / "result.txt").is_file(), "the previous complete output of the failed stage is kept"
    assert not list(tmp_path.glob(".b.tmp-*")), "the failed stage's partial output is removed"

    state["fail_b"] = False
    calls.clear()
    demo.run_demo(demo.DemoSettings(out=tmp_path, n_images=20))
    assert calls == ["b", "c"], "the rerun continues from the failed stage"


def test_unknown_force_stage_is_a_user_error(tmp_path, fake_stages):
    with pytest.raises(ValueError, match="not a stage"):
        demo.run_demo(demo.DemoSettings(out=tmp_path, force_stage="nope"))


def test_stage_subprocesses_run_in_the_callers_directory(tmp_path, monkeypatch):
    """From any working directory, a stage's subprocess writes where the demo looks (its paths are relative to the
    caller's directory, and so is the subprocess's)."""

    def tiny_vlm_by_subprocess(settings, out):
        demo._python_module("synartifact", ["tiny", "vlm", "--out", str(out), "--seed", "0"])

    stage = demo.Stage("vlm", "vlm", "tiny VLM in a subprocess", tiny_vlm_by_subprocess, lambda s: {})
    monkeypatch.setattr(demo, "STAGES", (stage,))
    monkeypatch.setattr(demo, "write_report", lambda s, folder: None)
    monkeypatch.chdir(tmp_path)
    demo.run_demo(demo.DemoSettings(out=demo.Path("outputs/demo")))
    assert (tmp_path / "outputs/demo/vlm/config.json").is_file()
    assert not list((tmp_path / "outputs/demo").glob(".vlm.tmp-*"))


def test_default_recipes_ship_with_the_package():
    """The demo's recipes live inside the package (a wheel has them); the repository's recipes/tiny/ links to them."""
    settings = demo.DemoSettings(out=demo.Path("x"))
    for recipe in (settings.sft_recipe, settings.ddpo_recipe):
        assert recipe.is_file() and demo.Path(synartifact.__file__).parent in recipe.parents
    repo_recipe = demo.Path(__file__).resolve().parents[1] / "recipes/tiny/sft/config_cpu.yaml"
    assert repo_recipe.resolve() == settings.sft_recipe.resolve()


def test_the_repair_stages_on_tiny_inputs(tmp_path, tiny_sd, tiny_dataset, tiny_vlm):
    """The inpainter and repair stages, run as the demo runs them on tiny folders, and the report's section."""
    import shutil

    settings = demo.DemoSettings(
        out=tmp_path, inpaint_steps=2, repair_images=3, repair_rounds=1, repair_inference_steps=1
    )
    shutil.copytree(tiny_dataset, tmp_path / "dataset")
    shutil.copytree(tiny_sd, tmp_path / "tiny-sd")
    shutil.copytree(tiny_vlm, tmp_path / "classifier")
    (tmp_path / "classifier" / "synartifact_config.json").write_text('{"max_new_tokens": 4}')
    shutil.copytree(tmp_path / "classifier", tmp_path / "judge")
    stages = {stage.name: stage for stage in demo.STAGES}
    stages["tiny-sd-inpaint"].run(settings, tmp_path / "tiny-sd-inpaint")
    assert json.loads((tmp_path / "tiny-sd-inpaint" / "model_index.json").read_text())["_class_name"] == (
        "StableDiffusionInpaintPipeline"
    )
    stages["repair"].run(settings, tmp_path / "repair")
    metrics = json.loads((tmp_path / "repair" / "metrics.json").read_text())
    assert metrics["num_images"] >= 1 and metrics["worse"] == 0 and metrics["outside_mask_unchanged"] is True
    for key in ("artifact_rate_before", "artifact_rate_after", "mean_reward_before", "mean_reward_after", "improved"):
        assert key in metrics, key
    for when in ("before", "after"):
        assert 0.0 <= metrics[f"judge_artifact_rate_{when}"] <= 1.0
        assert 0.0 <= metrics[f"judge_mean_reward_{when}"] <= 1.0
    assert (tmp_path / "repair" / "before_after.png").is_file()
    lines = (tmp_path / "repair" / "repair.jsonl").read_text().splitlines()
    assert len(lines) == metrics["num_images"]
    report = demo.write_report(settings, tmp_path).read_text()
    assert "## Repair" in report and "made worse 0.000" in report and "**yes**" in report
    assert "artifact rate (independent judge)" in report
