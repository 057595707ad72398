"""The recipes fit together: every folder one recipe reads is written by another recipe, by the demo or by a
documented command, or it is a Hub id. (Each stage's tests parse its recipes with the real parser.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from synartifact.utils import is_local_path

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted(p for p in (REPO / "recipes").rglob("*.yaml") if "accelerate_configs" not in p.parts)

# The fields through which a recipe reads a model, a dataset or prompts.
CONSUMED = (
    "model_name_or_path",
    "dataset_name",
    "pretrained_model",
    "classifier",
    "prompts",
    "eval_results",
    "inpainter",
    "images",
)

# What `synartifact demo` (`make demo`) writes with its default --out: one folder per stage.
DEMO_OUTPUTS = {
    "outputs/demo/dataset",
    "outputs/demo/tiny-vlm",
    "outputs/demo/classifier",
    "outputs/demo/classifier-eval",
    "outputs/demo/reward-check",
    "outputs/demo/judge-dataset",
    "outputs/demo/judge-vlm",
    "outputs/demo/judge",
    "outputs/demo/judge-eval",
    "outputs/demo/tiny-sd",
    "outputs/demo/generator",
    "outputs/demo/generator-eval",
    "outputs/demo/tiny-sd-inpaint",
    "outputs/demo/repair",
}

# Folders that a command writes, each named in recipes/README.md with that command.
COMMAND_OUTPUTS = {"outputs/synartifact-1k": "synartifact dataset build"}


def _load(recipe: Path) -> dict:
    return yaml.safe_load(recipe.read_text())


def _produced() -> dict[str, Path]:
    return {str(_load(r)["output_dir"]): r for r in RECIPES if _load(r).get("output_dir")}


def test_the_documented_demo_outputs_are_the_demo_stages_folders():
    from synartifact.demo import STAGES

    assert DEMO_OUTPUTS == {f"outputs/demo/{stage.folder}" for stage in STAGES if stage.folder != "."}


def test_the_documented_command_outputs_are_in_the_recipes_readme():
    readme = (REPO / "recipes" / "README.md").read_text()
    for folder, command in COMMAND_OUTPUTS.items():
        assert folder in readme and command in readme, folder


def test_every_recipe_writes_its_own_folder():
    assert RECIPES and len(_produced()) == len(RECIPES), "each recipe has an output_dir, and no two share one"


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: str(p.relative_to(REPO / "recipes")))
def test_every_path_a_recipe_reads_is_written_somewhere_or_a_hub_id(recipe):
    config = _load(recipe)
    produced = _produced()
    # a recipe that builds its tiny model when missing makes that folder itself
    builds_itself = config.get("build_tiny_model_if_missing") or config.get("build_tiny_models_if_missing")
    for key in CONSUMED:
        value = config.get(key)
        if value is None or not is_local_path(str(value)):
            continue
        if key in ("model_name_or_path", "pretrained_model") and builds_itself:
            continue
        assert value in produced or value in DEMO_OUTPUTS or value in COMMAND_OUTPUTS, (
            f"{recipe.relative_to(REPO)}: {key}: {value} is written by no recipe (output_dir: {sorted(produced)}), "
            f"not by the demo ({sorted(DEMO_OUTPUTS)}) and by no documented command ({sorted(COMMAND_OUTPUTS)})"
        )
        assert produced.get(value) != recipe, f"{recipe.relative_to(REPO)} reads its own output {value}"
