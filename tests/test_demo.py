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
    assert not list(tmp_path.glob("*.tmp-*")), "the failed stage's partial output is removed"

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
    assert not list((tmp_path / "outputs/demo").glob("*.tmp-*"))


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

    from synartifact.repair.masks import DEFAULT_MARGIN

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
    assert not (tmp_path / "repair" / "metrics.json").exists(), "the demo writes what `synartifact repair` writes"
    metrics = json.loads((tmp_path / "repair" / "summary.json").read_text())
    assert metrics["num_images"] >= 1 and metrics["worse"] == 0 and metrics["outside_mask_unchanged"] is True
    for key in ("artifact_rate_before", "artifact_rate_after", "mean_reward_before", "mean_reward_after", "improved"):
        assert key in metrics, key
    for when in ("before", "after"):
        assert 0.0 <= metrics[f"judge_artifact_rate_{when}"] <= 1.0
        assert 0.0 <= metrics[f"judge_mean_reward_{when}"] <= 1.0
    assert (tmp_path / "repair" / "before_after.png").is_file()
    lines = [json.loads(line) for line in (tmp_path / "repair" / "repair.jsonl").read_text().splitlines()]
    assert len(lines) == metrics["num_images"]
    # only test images with injected artifacts are repaired, each written under its id like the command writes them
    from synartifact.data import load_artifact_dataset

    test = load_artifact_dataset(str(tmp_path / "dataset"), split="test")
    flagged = [f"{row['image_id']}.png" for row in test if row["artifacts"]][: settings.repair_images]
    assert [line["image"] for line in lines] == flagged
    assert all((tmp_path / "repair" / line["output"]).is_file() for line in lines)
    # the demo's repair never reads the dataset's boxes: the classifier is asked where by occlusion
    assert metrics["margin"] == DEFAULT_MARGIN and metrics["hint_boxes"] is False and metrics["unboxed"] == "locate"
    report = demo.write_report(settings, tmp_path).read_text()
    assert "## Repair" in report and "made worse 0.000" in report and "**yes**" in report
    assert f"padded by {DEFAULT_MARGIN:.3f} of the side" in report
    assert "artifact rate (independent judge)" in report


def test_report_says_whether_the_gain_is_real(tmp_path):
    """REPORT.md's "Is the gain real?" from the stages' JSON: pair accuracy, both gains, drift, the reward curve."""
    settings = demo.DemoSettings(out=tmp_path)

    def write(path, payload):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(json.dumps(payload))

    write(
        "reward-check/metrics.json", {"pair_accuracy": 0.9125, "per_kind": {"illegible_letters": 0.97}, "n_pairs": 80}
    )
    write("judge-eval/metrics.json", {"model": {"macro_f1": 0.3371, "binary_f1": 0.7056}, "baseline": {"macro_f1": 0}})
    side = {"mean_reward": 0.9, "artifact_rate": 0.5833, "std": 0.01}
    write(
        "generator-eval/metrics.json",
        {
            "base": side,
            "refined": {**side, "artifact_rate": 0.3542},
            "delta": {"mean_reward": 0.02},
            "reward_gain_in_spread": 2.4437,
            "judge_gain_in_spread": 4.8008,
            "judge": {"base": side, "refined": {**side, "artifact_rate": 0.3542}, "delta": {"mean_reward": 0.018}},
            "drift": {
                "mean_mse": 0.0255,
                "relative_drift": 0.4440,
                "seed_to_seed_mse": 0.0574,
                "noise_ratio": 1.3418,
                "high_frequency": {"base": {"mean": 0.045}, "refined": {"mean": 0.06}},
            },
            "fidelity": {
                "base_recognized": 0.4271,
                "refined_recognized": 0.1771,
                "chance": 0.125,
                "fidelity": 0.4146,
                "threshold": 0.8,
                "measurable": True,
                "kept": False,
            },
        },
    )
    (tmp_path / "generator-eval" / "fidelity.png").write_bytes(b"png")
    write("generator/ddpo_summary.json", {"best_epoch": 79})
    (tmp_path / "generator" / "reward_curve.png").write_bytes(b"png")
    report = demo.write_report(settings, tmp_path).read_text()
    trust = report[report.index("## Is the gain real?") :]
    assert "**0.912**" in trust and "| illegible_letters | 0.970 |" in trust
    assert "macro-F1 0.337" in trust and "F1 0.706" in trust
    assert "| independent judge |" in trust and "| 4.801 | 0.583 -> 0.354 |" in trust
    assert "0.444 x the distance of an independent base sample" in trust and "(ratio 1.342;" in trust
    assert "![drift](generator-eval/drift.png)" in trust and "epoch 79 best" in trust
    assert "![reward curve](generator/reward_curve.png)" in trust
    assert "of 0.427 of the base samples and 0.177 of the refined ones (chance 0.125): fidelity 0.415" in trust
    assert "![content fidelity](generator-eval/fidelity.png)" in trust
    # the section ends with one computed verdict: noisier samples that lost their prompts refute the gain, whatever
    # the judge (its strength unknown here) says
    section = trust[: trust.index("\n## ", 1)] if "\n## " in trust[1:] else trust
    verdict = section[section.index("**Verdict: ") :]
    assert section.index("![reward curve]") < section.index("**Verdict: ")
    assert verdict.startswith("**Verdict: not confirmed.**")
    assert "| fine-detail ratio, refined / base | 1.342 | within [0.85, 1.15] | FAIL (" in verdict
    assert "| content fidelity (prompt recognized, refined / base) | 0.415 | >= 0.8 | FAIL (" in verdict
    assert verdict.rstrip().endswith("|")  # the table of reasons is the last thing in the section

    # the verdict evaluate-generator stored (the one on the generator's card) is the one REPORT.md shows
    stored = {"verdict": "inconclusive", "summary": "Inconclusive: stored.", "reasons": []}
    gen = json.loads((tmp_path / "generator-eval" / "metrics.json").read_text())
    write("generator-eval/metrics.json", {**gen, "verdict": stored})
    assert "**Verdict: inconclusive.** Inconclusive: stored." in demo.write_report(settings, tmp_path).read_text()

    # the content guard: epochs it passed over are named; when no judged epoch kept its content, none is called best
    write("generator/ddpo_summary.json", {"best_epoch": 40, "content_guard": {"lost_epochs": [50, 60]}})
    report = demo.write_report(settings, tmp_path).read_text()
    assert "The judge rated epoch 40 best (`generator/best/`), passing over 2 epoch(s) whose samples lost" in report
    assert "([50, 60])" in report
    write("generator/ddpo_summary.json", {"best_epoch": None, "content_guard": {"no_epoch_kept_content": True}})
    report = demo.write_report(settings, tmp_path).read_text()
    assert "No judged epoch kept its content (content fidelity), so no epoch is called best." in report
    assert "best (`generator/best/`)" not in report


def test_the_judge_gets_data_and_a_model_of_its_own(tmp_path):
    """The judge's dataset is synthesized with another seed (other images than the reward's), and its tiny model is
    another family that sees the whole 64 px image."""
    from datasets import load_dataset

    settings = demo.DemoSettings(out=tmp_path, n_images=12, judge_n_images=12, num_proc=1)
    stages = {stage.name: stage for stage in demo.STAGES}
    stages["dataset"].run(settings, tmp_path / "dataset")
    stages["judge-dataset"].run(settings, tmp_path / "judge-dataset")
    ours = load_dataset(str(tmp_path / "dataset"), split="train")
    theirs = load_dataset(str(tmp_path / "judge-dataset"), split="train")
    assert len(theirs) > 0
    pixels = {bytes(row["image"].tobytes()) for row in ours}
    assert not any(bytes(row["image"].tobytes()) in pixels for row in theirs), "the judge sees other images"
    stages["judge-vlm"].run(settings, tmp_path / "judge-vlm")
    config = json.loads((tmp_path / "judge-vlm" / "config.json").read_text())
    assert config["model_type"] == "idefics3"
    vision = config["vision_config"]
    assert vision["image_size"] == 64 and vision["patch_size"] == 8 and vision["hidden_size"] == 128
    # 8 x 8 patches, pixel-shuffled 2 x 2: 16 image tokens per image in the prompt
    from synartifact.classifier.loading import load_vlm_processor

    processor = load_vlm_processor(str(tmp_path / "judge-vlm"))
    assert processor.image_seq_len == 16
    assert "judge-dataset" in dict((st.name, st.after) for st in demo.STAGES)["judge"]


def test_saved_files_name_final_folders_not_temporary_ones(tmp_path, monkeypatch, tiny_dataset):
    """The demo runs each stage into a temporary folder; what the stages save (configs, cards, summaries) must name
    the folders users load: `tiny-sd/model_index.json` once said `outputs/demo/.tiny-sd.tmp-<pid>.random-.../random`."""
    import shutil

    from synartifact.utils import TMP_MARK

    real = {stage.name: stage for stage in demo.STAGES}
    copy = demo.Stage(
        "dataset", "dataset", "copy the dataset", lambda s, out: shutil.copytree(tiny_dataset, out), lambda s: {}
    )
    stages = (copy, real["tiny-sd"], real["tiny-sd-inpaint"])
    monkeypatch.setattr(demo, "STAGES", stages)
    monkeypatch.setattr("synartifact.generator.pretrain._sample_grid", lambda *args, **kwargs: None)  # minutes
    monkeypatch.setattr(demo, "write_report", lambda s, folder: None)
    monkeypatch.chdir(tmp_path)
    out = demo.Path("outputs/demo")
    demo.run_demo(demo.DemoSettings(out=out, sd_vae_steps=1, sd_unet_steps=1, inpaint_steps=1))

    assert sorted(p.name for p in out.iterdir()) == ["dataset", "tiny-sd", "tiny-sd-inpaint"]
    texts = {}
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".md", ".txt", ".yaml", ".jinja"):
            texts[path] = path.read_text(encoding="utf-8")
    assert out / "tiny-sd" / "model_index.json" in texts and out / "tiny-sd-inpaint" / "unet" / "config.json" in texts
    for path, text in texts.items():
        assert TMP_MARK not in text and ".random-" not in text, path
    assert json.loads((out / "tiny-sd" / "model_index.json").read_text())["_name_or_path"] == "outputs/demo/tiny-sd"
    unet = json.loads((out / "tiny-sd-inpaint" / "unet" / "config.json").read_text())
    assert unet["_name_or_path"] == "outputs/demo/tiny-sd-inpaint/unet"


def test_vlm_stages_pretrain_the_vision_side_when_asked(tmp_path, tiny_dataset):
    """`--vlm-pretrain-epochs N`: the classifier's tiny VLM is pre-trained on the demo's dataset (its training split)
    and the stage's fingerprint says so; 0 (the default) builds it with a random vision tower, as before."""
    import shutil

    shutil.copytree(tiny_dataset, tmp_path / "dataset")
    stages = {stage.name: stage for stage in demo.STAGES}
    off = demo.DemoSettings(out=tmp_path, num_proc=1)
    on = demo.DemoSettings(out=tmp_path, num_proc=1, vlm_pretrain_epochs=1)
    stages["tiny-vlm"].run(on, tmp_path / "tiny-vlm")
    summary = json.loads((tmp_path / "tiny-vlm" / "vision_pretrain.json").read_text())
    assert summary["epochs"] == 1 and summary["split"] == "train"
    assert summary["dataset"] == str(tmp_path / "dataset")
    stages["tiny-vlm"].run(off, tmp_path / "tiny-vlm-off")
    assert not (tmp_path / "tiny-vlm-off" / "vision_pretrain.json").exists()
    assert "dataset" in stages["tiny-vlm"].after and "judge-dataset" in stages["judge-vlm"].after
    prints_off, prints_on = demo._stage_fingerprints(off), demo._stage_fingerprints(on)
    assert prints_off["tiny-vlm"] != prints_on["tiny-vlm"] and prints_off["judge-vlm"] != prints_on["judge-vlm"]
    assert prints_off["sft"] != prints_on["sft"]  # what is trained on the pre-trained model reruns too
    assert prints_off["dataset"] == prints_on["dataset"]


# --- the side lane: top-level stage functions, since the side lane's process imports them by reference ---


def _record(settings, out, name):
    import os

    import torch

    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(
        json.dumps({"stage": name, "pid": os.getpid(), "threads": torch.get_num_threads(), "n": settings.n_images})
    )


def lane_main_a(settings, out):
    _record(settings, out, "a")


def lane_main_b(settings, out):
    _record(settings, out, "b")


def lane_side_one(settings, out):
    import time

    # it runs beside b: it finishes only once b's output exists (run one after the other, this would time out)
    deadline = time.monotonic() + 60
    while not (settings.out / "b" / "result.json").is_file():
        if time.monotonic() > deadline:
            raise RuntimeError("b never ran beside the side lane")
        time.sleep(0.05)
    _record(settings, out, "s1")


def lane_side_two(settings, out):
    if settings.n_images == 13:
        raise ValueError("s2 broke")
    _record(settings, out, "s2")


def lane_main_c(settings, out):
    _record(settings, out, "c")


def lane_alone_d(settings, out):
    # an "alone" stage waits for the side lane: the side lane's outputs are complete when it starts
    assert (settings.out / "s2" / "result.json").is_file(), "d ran before the side lane finished"
    _record(settings, out, "d")


def lane_report(settings, out):
    pass


@pytest.fixture
def laned_stages(monkeypatch):
    import os

    stages = (
        demo.Stage("a", "a", "first", lane_main_a, lambda s: {"n": s.n_images}),
        demo.Stage("s1", "s1", "side one", lane_side_one, lambda s: {}, after=("a",), lane="side"),
        demo.Stage("s2", "s2", "side two", lane_side_two, lambda s: {}, after=("s1",), lane="side"),
        demo.Stage("b", "b", "beside", lane_main_b, lambda s: {}, after=("a",)),
        demo.Stage("d", "d", "alone", lane_alone_d, lambda s: {}, after=("a",), lane="alone"),
        demo.Stage("c", "c", "joins", lane_main_c, lambda s: {}, after=("b", "s2")),
        demo.Stage("report", ".", "report", lane_report, lambda s: {}, after=("c",)),
    )
    monkeypatch.setattr(demo, "STAGES", stages)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)


def test_the_side_lane_runs_beside_the_main_lane_with_one_thread_each(tmp_path, laned_stages):
    import os

    import torch

    threads_before = torch.get_num_threads()
    demo.run_demo(demo.DemoSettings(out=tmp_path, n_images=10))
    result = {
        name: json.loads((tmp_path / name / "result.json").read_text()) for name in ("a", "s1", "s2", "b", "c", "d")
    }
    assert result["s1"]["pid"] == result["s2"]["pid"] != os.getpid()  # the side lane: one other process
    assert {result[n]["pid"] for n in ("a", "b", "c", "d")} == {os.getpid()}
    assert result["s1"]["threads"] == result["s2"]["threads"] == result["b"]["threads"] == 1
    assert result["a"]["threads"] == result["c"]["threads"] == result["d"]["threads"] == threads_before
    assert torch.get_num_threads() == threads_before
    lanes = json.loads((tmp_path / ".stages" / "lanes.json").read_text())
    assert lanes["side"] == ["s1", "s2"] and lanes["beside"] == ["b"] and lanes["threads"] == 1
    assert json.loads((tmp_path / "s2" / demo.FINGERPRINT_FILE).read_text())["fingerprint"]

    # up to date: nothing runs again, in either lane
    stamps = {n: (tmp_path / n / "result.json").stat().st_mtime_ns for n in result}
    demo.run_demo(demo.DemoSettings(out=tmp_path, n_images=10))
    assert stamps == {n: (tmp_path / n / "result.json").stat().st_mtime_ns for n in result}

    # --sequential: every stage in order, in this process
    demo.run_demo(demo.DemoSettings(out=tmp_path, n_images=11, parallel=False))
    assert json.loads((tmp_path / "s2" / "result.json").read_text())["pid"] == os.getpid()
    assert not (tmp_path / ".stages" / "lanes.json").exists()


def test_a_failed_side_stage_is_named_and_stops_the_demo_where_it_reads_it(tmp_path, laned_stages):
    with pytest.raises(RuntimeError, match="demo stage 's2' failed") as failure:
        demo.run_demo(demo.DemoSettings(out=tmp_path, n_images=13))
    assert "s2 broke" in str(failure.value) and "side-lane.log" in str(failure.value)
    assert "[side lane] s2: side two" in (tmp_path / ".stages" / "side-lane.log").read_text()
    assert (tmp_path / "b" / "result.json").is_file() and (tmp_path / "s1" / "result.json").is_file()
    assert not (tmp_path / "c").exists() and not (tmp_path / "s2").exists() and not (tmp_path / "d").exists()


def test_stage_table_says_what_ran_beside_what_and_the_wall_clock(tmp_path):
    from synartifact.demo.report import _stage_times

    (tmp_path / ".stages").mkdir()
    lanes = {"side": ["judge", "judge-eval"], "beside": ["sft"], "threads": 1, "wait_seconds": 4.5}
    (tmp_path / ".stages" / "lanes.json").write_text(json.dumps(lanes))
    text = "\n".join(
        _stage_times(tmp_path, {"dataset": 2.0, "judge": 100.0, "judge-eval": 10.0, "sft": 90.0, "ddpo": 50.0})
    )
    assert "| judge | 100.000 | second process, 1 thread(s) |" in text
    assert "| sft | 90.000 | beside it, 1 thread(s) |" in text and "| ddpo | 50.000 | alone |" in text
    assert "Wall clock of the stages: 146.500 s" in text  # 2 + 90 + 50 + the 4.5 s wait; the side lane overlapped
    (tmp_path / ".stages" / "lanes.json").unlink()
    assert "| judge | 100.000 |" in "\n".join(_stage_times(tmp_path, {"judge": 100.0}))
