"""Model and dataset cards: templates shipped in the wheel, the final folder named, Hub metadata, evaluation results."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import ModelCard

import synartifact.cards as cards
from synartifact.utils import make_temp_dir

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = ("classifier_card.md", "dataset_card.md", "generator_card.md")


def _front_matter(readme: Path):
    return ModelCard.load(readme).data


# ------------------------------------------------------------------------------------------------------------
# Templates: in the package, in the wheel, at the top of the repository
# ------------------------------------------------------------------------------------------------------------


def test_hub_cards_is_the_package_templates_folder(monkeypatch):
    monkeypatch.delenv("SYNARTIFACT_CARDS_DIR", raising=False)
    assert (REPO / "hub_cards").is_symlink()
    assert (REPO / "hub_cards").resolve() == (REPO / "src/synartifact/templates").resolve()
    assert cards.cards_dir().resolve() == (REPO / "src/synartifact/templates").resolve()
    assert sorted(p.name for p in cards.cards_dir().glob("*.md")) == sorted(TEMPLATES)


def test_cards_dir_override(monkeypatch, tmp_path):
    (tmp_path / "dataset_card.md").write_text("---\n{{ card_data }}\n---\n\n# Override {{ title }}\n")
    monkeypatch.setenv("SYNARTIFACT_CARDS_DIR", str(tmp_path))
    text = cards.render_dataset_card("dataset_card.md", {"license": "mit"}, title="works")
    assert "# Override works" in text and "license: mit" in text
    with pytest.raises(FileNotFoundError, match="templates here: \\['dataset_card.md'\\]"):
        cards.render_dataset_card("missing.md", {})
    monkeypatch.setenv("SYNARTIFACT_CARDS_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="SYNARTIFACT_CARDS_DIR"):
        cards.cards_dir()


RENDER_FROM_WHEEL = """
import json, synartifact.cards as c
text = c.render_dataset_card(
    "dataset_card.md",
    {"license": "apache-2.0", "pretty_name": "Wheel check"},
    title="Wheel check",
    splits={"train": {"images": 3, "clean": 1, "artifacts": 2, "per_kind": {}}},
    total_images=3,
    total_artifacts=2,
    sources={"synthetic": 3},
    kinds=[],
    kind_totals={},
    synth_kinds=["localized_blur"],
    unsynth_kinds=[],
    plot="kinds.png",
)
print(json.dumps({"module": c.__file__, "templates": str(c.cards_dir()), "text": text}))
"""


def test_wheel_ships_the_templates(tmp_path):
    # build from a copy: an in-tree build would leave build/ and *.egg-info in the checkout
    source = tmp_path / "source"
    source.mkdir()
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
        + ["-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("synartifact-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert {f"synartifact/templates/{t}" for t in TEMPLATES} <= set(names)
        site = tmp_path / "site"
        archive.extractall(site)

    env = {k: v for k, v in os.environ.items() if k not in ("SYNARTIFACT_CARDS_DIR", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)
    work = tmp_path / "elsewhere"
    work.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", RENDER_FROM_WHEEL], cwd=work, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(out["module"]).resolve().is_relative_to(site.resolve()), out["module"]
    assert Path(out["templates"]).resolve() == (site / "synartifact" / "templates").resolve()
    text = out["text"]
    assert text.startswith("---\n") and "license: apache-2.0" in text and "pretty_name: Wheel check" in text
    assert "# Wheel check" in text and "| train | 3 | 1 | 2 |" in text and "`localized_blur`" in text
    assert "{{" not in text and "{%" not in text


# ------------------------------------------------------------------------------------------------------------
# Final folder names and Hub metadata
# ------------------------------------------------------------------------------------------------------------


def test_hub_card_data_keeps_hub_ids_only(tmp_path):
    local = tmp_path / "tiny-vlm"
    local.mkdir()
    on_hub = cards.hub_card_data(
        model_name="m",
        library_name="peft",
        pipeline_tag="image-text-to-text",
        tags=["trl", "sft", "trl"],
        base_model="llava-hf/llava-1.5-7b-hf",
        datasets=["synartifact/synartifact-1k", None],
    )
    assert on_hub["base_model"] == "llava-hf/llava-1.5-7b-hf"
    assert on_hub["datasets"] == ["synartifact/synartifact-1k"] and on_hub["tags"] == ["trl", "sft"]
    for base in (str(local), "outputs/tiny-vlm", "./model", "tiny-vlm"):
        data = cards.hub_card_data(
            model_name="m",
            library_name="peft",
            pipeline_tag="x",
            tags=[],
            base_model=base,
            datasets=["outputs/demo/dataset"],
        )
        assert "base_model" not in data and "datasets" not in data, base


def _sft_run(base: str, dataset: str, **extra) -> dict:
    return {
        "base_model": base,
        "dataset": dataset,
        "train_split": "train",
        "answer_mode": "labels",
        "use_peft": True,
        "world_size": 1,
        "global_step": 2,
        "num_train_samples": 8,
        "train_loss": 1.25,
        "config": {"lora_r": 4, "lora_alpha": 8, "learning_rate": 0.001},
        **extra,
    }


def test_classifier_card_metadata_hub_id_and_local_path(tmp_path):
    import synartifact.sft as sft

    hub = tmp_path / "hub"
    hub.mkdir()
    sft.write_model_card(hub, _sft_run("llava-hf/llava-1.5-7b-hf", "synartifact/synartifact-1k"))
    data = _front_matter(hub / "README.md")
    assert data.base_model == "llava-hf/llava-1.5-7b-hf" and data.datasets == ["synartifact/synartifact-1k"]
    assert data.library_name == "peft" and data.pipeline_tag == "image-text-to-text"
    assert {"trl", "sft", "synartifact", "lora"} <= set(data.tags)

    base, dataset = tmp_path / "tiny-vlm", tmp_path / "dataset"
    base.mkdir()
    dataset.mkdir()
    local = tmp_path / "local"
    local.mkdir()
    sft.write_model_card(local, _sft_run(str(base), str(dataset)))
    text = (local / "README.md").read_text()
    data = _front_matter(local / "README.md")
    assert data.base_model is None and data.datasets is None and data.library_name == "peft"
    assert f"`{base}` (a local folder)" in text and f"`{dataset}` (a local folder)" in text


def test_classifier_card_names_the_final_folder_or_the_hub_repo(tmp_path):
    import synartifact.sft as sft

    tmp = make_temp_dir(tmp_path / "classifier")  # how the demo runs a stage
    sft.write_model_card(tmp, _sft_run("llava-hf/llava-1.5-7b-hf", "synartifact/synartifact-1k"))
    text = (tmp / "README.md").read_text()
    assert ".tmp-" not in text
    assert "# classifier\n" in text and f'from_pretrained("{tmp_path / "classifier"}")' in text
    # the repo id is only text in the card: nothing is downloaded or pushed
    repo_id = "me/artifact-clf"
    sft.write_model_card(tmp, _sft_run("llava-hf/llava-1.5-7b-hf", "org/data", hub_model_id=repo_id))
    text = (tmp / "README.md").read_text()
    assert "# artifact-clf\n" in text and f'from_pretrained("{repo_id}")' in text and ".tmp-" not in text


def _ddpo_card(out: Path, pretrained: str, hub_model_id: str | None = None) -> Path:
    from synartifact.ddpo import _write_card

    args = SimpleNamespace(
        hub_model_id=hub_model_id,
        pretrained_model=pretrained,
        use_lora=True,
        prompts="synartifact/synartifact-1k",
        classifier="outputs/demo/classifier",
    )
    keys = (
        "num_epochs sample_num_steps sample_batch_size sample_num_batches_per_epoch train_batch_size "
        "train_learning_rate train_gradient_accumulation_steps train_num_inner_epochs train_clip_range "
        "sample_guidance_scale sample_eta per_prompt_stat_tracking mixed_precision seed"
    ).split()
    config = SimpleNamespace(**dict.fromkeys(keys, 1))
    reward = SimpleNamespace(mode="score", soft=True, weights={"localized_blur": 2.0}, unparsable_reward=0.0)
    before = {"mean_reward": 0.5, "num_images": 2, "unparsable": 0}
    after = {"mean_reward": 0.75, "num_images": 2, "unparsable": 0}
    timing = {"sampling_s": 1.0, "reward_s": 1.0, "training_s": 1.0}
    epochs = [{"epoch": 0, "reward_mean": 0.5, "reward_std": 0.1, "sampling_s": 1, "reward_s": 1, "training_s": 1}]
    _write_card(out, args, config, reward, before, after, epochs, timing)
    return out / "README.md"


def test_generator_card_names_the_final_folder_and_hub_metadata(tmp_path):
    tmp = make_temp_dir(tmp_path / "generator")
    readme = _ddpo_card(tmp, "runwayml/stable-diffusion-v1-5")
    text = readme.read_text()
    assert ".tmp-" not in text and "# generator\n" in text
    assert f'pipe.load_lora_weights("{tmp_path / "generator"}"' in text
    data = _front_matter(readme)
    assert data.base_model == "runwayml/stable-diffusion-v1-5" and data.datasets == ["synartifact/synartifact-1k"]
    assert data.library_name == "diffusers" and data.pipeline_tag == "text-to-image"
    assert {"trl", "ddpo", "synartifact", "lora"} <= set(data.tags)

    local_sd = tmp_path / "tiny-sd"
    local_sd.mkdir()
    readme = _ddpo_card(tmp, str(local_sd), hub_model_id="me/sd-fewer-artifacts")
    data = _front_matter(readme)
    assert data.base_model is None and "# sd-fewer-artifacts\n" in readme.read_text()
    assert f"`{local_sd}` (a local folder)" in readme.read_text()


# ------------------------------------------------------------------------------------------------------------
# Evaluation results on the card
# ------------------------------------------------------------------------------------------------------------


def _generator_metrics() -> dict:
    return {
        "base": {"mean_reward": 0.5, "std": 0.02, "per_seed_mean": [0.48, 0.52]},
        "refined": {"mean_reward": 0.625, "std": 0.03, "per_seed_mean": [0.6, 0.65]},
        "delta": {"mean_reward": 0.125, "std": 0.0354, "per_seed_mean": [0.12, 0.13]},
        "config": {"num_prompts": 2, "images_per_prompt": 1, "seeds": [0, 1], "classifier": "clf"},
    }


def test_generator_evaluation_goes_on_the_card(tmp_path):
    out = tmp_path / "generator"
    out.mkdir()
    readme = _ddpo_card(out, "runwayml/stable-diffusion-v1-5")
    assert "No comparison with a spread over seeds was recorded" in readme.read_text()
    assert cards.record_generator_evaluation(out, _generator_metrics(), "synartifact/synartifact-1k") == readme
    assert readme.stat().st_mode & 0o777 == 0o644  # not the owner-only mode of a temporary file
    text = readme.read_text()
    assert "No comparison with a spread over seeds" not in text
    assert "| gain (this model - base) | +0.1250 | 0.0354 | 0.1200, 0.1300 |" in text
    assert "The reward gain +0.1250 exceeds twice the larger seed spread (0.0600)." in text
    data = _front_matter(readme)
    values = {r.metric_type: r.metric_value for r in data.eval_results}
    assert values == {"artifact_reward": 0.625, "artifact_reward_gain": 0.125, "artifact_reward_gain_std": 0.0354}
    assert {r.dataset_type for r in data.eval_results} == {"synartifact/synartifact-1k"}
    assert data.eval_results[0].task_type == "text-to-image" and data.model_name == "generator"
    # the training part of the card is still there
    assert "| after (this model) | 0.7500 |" in text and data.base_model == "runwayml/stable-diffusion-v1-5"


def test_classifier_evaluation_goes_on_the_card(tmp_path):
    import synartifact.sft as sft

    folder = tmp_path / "classifier"
    folder.mkdir()
    readme = sft.write_model_card(folder, _sft_run("llava-hf/llava-1.5-7b-hf", "synartifact/synartifact-1k"))
    model = {
        "accuracy": 0.61,
        "macro_f1": 0.52,
        "micro_f1": 0.58,
        "exact_match": 0.43,
        "binary": {"accuracy": 0.87, "f1": 0.91},
        "well_formed_rate": 0.99,
        "n_images": 100,
    }
    baseline = {"accuracy": 0.1, "macro_f1": 0.05, "binary": {"f1": 0.5}}
    metrics = {"model": model, "baseline": baseline}
    assert cards.record_classifier_evaluation(str(folder), metrics, "org/eval-set", "test") == readme
    results = {(r.metric_type, r.metric_config): r.metric_value for r in _front_matter(readme).eval_results}
    assert results == {
        ("accuracy", None): 0.61,
        ("f1", "macro"): 0.52,
        ("f1", "micro"): 0.58,
        ("exact_match", None): 0.43,
        ("accuracy", "binary"): 0.87,
        ("f1", "binary"): 0.91,
        ("well_formed_rate", None): 0.99,
    }
    text = readme.read_text()
    assert "| macro_f1 | 0.0500 | 0.5200 | +0.4700 |" in text and "| binary_f1 | 0.5000 | 0.9100 | +0.4100 |" in text
    assert "`org/eval-set`, split `test` (100 images)" in text
    data = _front_matter(readme)
    assert data.base_model == "llava-hf/llava-1.5-7b-hf" and {r.dataset_type for r in data.eval_results} == {
        "org/eval-set"
    }
    # a later evaluation replaces the earlier figures instead of piling up next to them
    cards.record_classifier_evaluation(folder, {"model": {"accuracy": 0.7}}, "org/other-set", "validation")
    data = _front_matter(readme)
    assert [(r.metric_type, r.metric_value, r.dataset_type) for r in data.eval_results] == [
        ("accuracy", 0.7, "org/other-set")
    ]
    assert "0.5200" not in readme.read_text()


def test_cards_not_written_by_us_are_left_alone(tmp_path):
    metrics = _generator_metrics()
    assert cards.record_generator_evaluation("org/some-lora", metrics) is None
    assert cards.record_generator_evaluation(None, metrics) is None
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "README.md").write_text("# someone's card\n")
    assert cards.update_card_results(foreign, [], "| table |") is None
    assert (foreign / "README.md").read_text() == "# someone's card\n"
    assert not (foreign / cards.CARD_RECORD).exists()

    edited = tmp_path / "edited"
    edited.mkdir()
    readme = _ddpo_card(edited, "runwayml/stable-diffusion-v1-5")
    readme.write_text(readme.read_text() + "\nA note by hand.\n")
    before = readme.read_text()
    assert cards.record_generator_evaluation(edited, metrics) is None
    assert readme.read_text() == before


# ------------------------------------------------------------------------------------------------------------
# End to end: a tiny SFT run in a temporary folder, renamed, then `synartifact evaluate` on it
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sft_classifier(tmp_path_factory, tiny_dataset, tiny_vlm_small):
    import synartifact.sft as sft

    root = tmp_path_factory.mktemp("card-run")
    dataset, base = tiny_dataset, tiny_vlm_small
    tmp = make_temp_dir(root / "classifier")  # how the demo runs a stage: a temporary folder renamed when complete
    tmp.rmdir()
    argv = ["--config", str(REPO / "recipes/tiny/sft/config_cpu.yaml"), "--dataset_name", str(dataset)]
    argv += ["--model_name_or_path", str(base), "--output_dir", str(tmp), "--max_steps", "1"]
    argv += ["--per_device_train_batch_size", "2", "--report_to", "none", "--logging_steps", "1"]
    sft.main(*sft.make_parser().parse_args_and_config(args=argv))
    final = root / "classifier"
    os.replace(tmp, final)
    return final, base, dataset


def test_card_after_sft_names_the_final_folder(sft_classifier):
    final, base, _ = sft_classifier
    text = (final / "README.md").read_text()
    assert ".tmp-" not in text
    assert "# classifier\n" in text and f'ArtifactClassifier.from_pretrained("{final}")' in text
    assert json.loads((final / "sft_run.json").read_text())["output_dir"] == str(final)
    assert _front_matter(final / "README.md").base_model is None  # a local base model is no Hub id
    assert f"`{base}` (a local folder)" in text
    assert "No evaluation results were recorded" in text


def test_run_evaluation_puts_model_index_on_the_card(sft_classifier, tmp_path):
    from synartifact.classifier.evaluation import run_evaluation

    final, base, dataset = sft_classifier
    run_evaluation(
        str(final),
        str(base),
        str(dataset),
        split="test",
        out=tmp_path / "eval",
        batch_size=4,
        max_samples=4,
        css=False,
        max_new_tokens=6,
        progress=False,
    )
    saved_all = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    saved, saved_baseline = saved_all["model"], saved_all["baseline"]
    readme = final / "README.md"
    text = readme.read_text()
    assert "No evaluation results were recorded" not in text
    assert "model-index:" in text and f"`{dataset}`, split `test`" in text
    data = _front_matter(readme)
    results = {(r.metric_type, r.metric_config): r.metric_value for r in data.eval_results}
    assert results[("accuracy", None)] == pytest.approx(saved["accuracy"])
    assert results[("f1", "macro")] == pytest.approx(saved["macro_f1"])
    assert results[("f1", "binary")] == pytest.approx(saved["binary"]["f1"])
    assert results[("exact_match", None)] == pytest.approx(saved["exact_match"])
    assert {r.dataset_split for r in data.eval_results} == {"test"} and data.model_name == "classifier"
    assert f"| macro_f1 | {saved_baseline['macro_f1']:.4f} | {saved['macro_f1']:.4f} |" in text
    assert f"| binary_f1 | {saved_baseline['binary']['f1']:.4f} | {saved['binary']['f1']:.4f} |" in text
    assert not (base / "README.md").exists()  # the baseline folder has no card of ours: never touched
