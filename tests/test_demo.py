"""The demo orchestrator: stages run in order, reruns skip what is up to date, failures keep earlier outputs."""

import json

import pytest

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
        assert recipe.is_file() and demo.Path(demo.__file__).parent in recipe.parents
    repo_recipe = demo.Path(__file__).resolve().parents[1] / "recipes/tiny/sft/config_cpu.yaml"
    assert repo_recipe.resolve() == settings.sft_recipe.resolve()
