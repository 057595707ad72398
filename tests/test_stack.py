"""The two Hugging Face stacks synartifact supports: setup.cfg's ranges, the constraints files that pin their two
ends, the environment the suite runs in, and the places where the stacks differ (synartifact.compat)."""

import configparser
import os
from importlib.metadata import version

import pytest
from conftest import ROOT, STACKS, stack_pins
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version


def setup_requirements() -> dict[str, Requirement]:
    """install_requires and every extra of setup.cfg, by normalized name."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    lines = config["options"]["install_requires"].splitlines()
    for extra in config["options.extras_require"].values():
        lines += extra.splitlines()
    requirements = [Requirement(line.split("#")[0].strip()) for line in lines if line.split("#")[0].strip()]
    return {canonicalize_name(r.name): r for r in requirements}


@pytest.mark.parametrize("stack", STACKS)
def test_each_pin_of_a_tested_stack_lies_in_setup_cfg_ranges(stack):
    requirements = setup_requirements()
    pins = stack_pins(stack)
    assert {"transformers", "diffusers", "huggingface-hub", "tokenizers", "datasets", "gradio", "trl"} <= set(pins)
    for name, pinned in pins.items():
        assert name in requirements, f"constraints/{stack}.txt pins {name}, which setup.cfg does not require"
        assert requirements[name].specifier.contains(pinned, prereleases=True), (
            f"constraints/{stack}.txt: {name}=={pinned} is outside setup.cfg's {requirements[name].specifier}"
        )


def test_the_oldest_stack_is_setup_cfg_floors_and_the_ranges_are_open_to_new_releases():
    """Every floor in setup.cfg is what `make test-oldest` installs, so the lower end of each range is proven; and
    nothing but trl is exact (an exact pin would downgrade a user's environment)."""
    requirements = setup_requirements()
    oldest, latest = stack_pins("oldest"), stack_pins("latest")
    for name, pinned in oldest.items():
        floors = [Version(s.version) for s in requirements[name].specifier if s.operator in (">=", "==")]
        assert floors == [Version(pinned)], (
            f"{name}: setup.cfg's floor {floors} is not constraints/oldest.txt's {pinned}"
        )
    exact = sorted(n for n, r in requirements.items() if any(s.operator == "==" for s in r.specifier))
    assert exact == ["trl"]
    assert Version(latest["transformers"]).major == 5 and Version(oldest["transformers"]).major == 4
    assert Version(latest["huggingface-hub"]).major == 2 and Version(oldest["huggingface-hub"]).major == 0


def test_the_suite_runs_on_the_stack_the_makefile_names():
    """`make test` / `make test-oldest` say which stack they installed (SYNARTIFACT_STACK): the versions in this
    environment must be that stack's pins, so a green run of one really proves that end of the ranges."""
    stack = os.environ.get("SYNARTIFACT_STACK")
    if stack is None:
        pytest.skip("run outside make: no stack declared (make test and make test-oldest set SYNARTIFACT_STACK)")
    assert stack in STACKS
    pins = stack_pins(stack)
    installed = {name: Version(version(name)).release for name in pins}  # torch's "+cpu" local part aside
    assert installed == {name: Version(pinned).release for name, pinned in pins.items()}, (
        f"this environment is not constraints/{stack}.txt"
    )


def test_compat_knows_which_transformers_is_installed():
    import transformers

    from synartifact.compat import TRANSFORMERS_5

    assert TRANSFORMERS_5 is (Version(transformers.__version__).major >= 5)


def test_warmup_ratio_means_the_same_on_both_stacks(tmp_path):
    """transformers 5 dropped warmup_ratio (and reads a ratio from warmup_steps); the SFT config keeps the field."""
    from synartifact.configs import SFTTrainingArguments

    def make(**kwargs):
        return SFTTrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, bf16=False, **kwargs)

    args = make(warmup_ratio=0.1)
    assert args.get_warmup_steps(200) == 20
    assert args.get_warmup_steps(7) == 1  # ceil(0.7), as both versions round
    assert make().get_warmup_steps(200) == 0
    assert make(warmup_steps=5).get_warmup_steps(200) == 5
    with pytest.raises(ValueError, match="warmup_ratio .* or warmup_steps .*not both"):
        make(warmup_ratio=0.1, warmup_steps=5)
    with pytest.raises(ValueError, match=r"warmup_ratio must be in \[0, 1\)"):
        make(warmup_ratio=1.5)


def test_tiny_clip_tokenizer_gives_the_same_ids_on_both_stacks(tiny_sd):
    """The tiny SD's tokenizer folder loads on both stacks with the ids transformers 4.57's Python CLIP tokenizer
    gave (recorded from it), so a demo on either stack sees the same prompts."""
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(tiny_sd, subfolder="tokenizer")
    ids = tokenizer("A photo of the cat, reading: Hello World!  éclair 42").input_ids
    assert ids == [
        533, 320, 79, 71, 78, 83, 334, 532, 513, 66, 64, 339, 267, 518, 64, 67, 530, 281, 71, 68, 75, 75, 334, 86,
        521, 75, 323, 256, 127, 102, 66, 75, 64, 72, 337, 275, 273, 534,
    ]  # fmt: skip
    assert (tiny_sd / "tokenizer" / "vocab.json").is_file() and (tiny_sd / "tokenizer" / "merges.txt").is_file()


def test_readme_version_table_is_the_constraints_files():
    """The README's table of tested versions restates constraints/*.txt: it must not drift from them."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    header = next(line for line in lines if line.startswith("| stack | how it is tested |"))
    names = [canonicalize_name(cell.strip()) for cell in header.strip("|").split("|")[2:]]
    for stack in STACKS:
        row = next(line for line in lines if line.startswith(f"| {stack}"))
        cells = [cell.strip() for cell in row.strip("|").split("|")[2:]]
        assert dict(zip(names, cells)) == {name: stack_pins(stack)[name] for name in names}, stack


def _other_stack_python():
    """The Python of the other tested stack's virtual environment (make test: .venv, make test-oldest:
    .venv-oldest), or None when it is not installed here (a clean clone's first `make test`)."""
    stack = os.environ.get("SYNARTIFACT_STACK") or ("latest" if version("transformers") >= "5" else "oldest")
    other = ROOT / (".venv-oldest" if stack == "latest" else ".venv") / "bin" / "python"
    return other if other.is_file() else None


def _stack_run(python, *args) -> dict:
    import json
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [str(python or sys.executable), str(ROOT / "tests" / "stack_probe.py"), *map(str, args)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("PROBE ")]
    return json.loads(lines[-1][len("PROBE ") :]) if lines else {}


def test_model_folders_written_on_one_stack_load_whole_on_the_other(tmp_path):
    """A tiny VLM folder written on either stack loads on the other with the same token ids, the same pixel values
    and every parameter tensor it was saved with (compared by value: transformers 5 saves a LLaVA's vision tower
    under names that 4.57 does not read, and 4.57 then starts it from random weights with only a warning).

    Each side runs in its own stack's virtual environment; runs where the other one is installed (`make test-oldest`
    after `make test`, as .ci/run does)."""
    other = _other_stack_python()
    if other is None:
        pytest.skip("the other stack's virtual environment is not installed here (make test-oldest installs it)")
    for writer, reader in ((None, other), (other, None)):
        folder = tmp_path / ("here" if writer is None else "other")
        _stack_run(writer, "build", folder)
        written, read = _stack_run(writer, "probe", folder), _stack_run(reader, "probe", folder)
        assert set(written) == set(read) == {"llava", "idefics3", "qwen2vl", "qwen2_5vl"}
        for arch in written:
            where = f"{arch} written by {writer or 'this stack'}, read by {reader or 'this stack'}"
            for key in ("input_ids", "pixel_sum", "tokenizer_bytes"):
                assert read[arch][key] == written[arch][key], (where, key)
            assert read[arch]["parameters"] == written[arch]["parameters"], where
