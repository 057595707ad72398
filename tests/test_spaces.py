"""The two Gradio Spaces, served for real on 127.0.0.1 and driven with gradio_client; input checks; the launcher.

One server per app for the whole session (the ``classify_url`` / ``generate_url`` fixtures of ``conftest.py``).
The classifier behind them is a tiny LLaVA built from configs and over-fitted for a few seconds to always answer
with two boxed artifacts, so that boxes, table rows and a reward below 1 flow through the real pipeline.
The generator is the tiny untrained Stable Diffusion (and a random LoRA) that the apps build offline themselves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import ANSWER_NAMES, EXAMPLE, ROOT, free_port, stack_pins
from PIL import Image

import synartifact.webui.display as ui_display
import synartifact.webui.examples as ui_examples
import synartifact.webui.inputs as ui_inputs
import synartifact.webui.models as ui_models
import synartifact.webui.repair as ui_repair
import synartifact.webui.tiny_models as ui_tiny
from synartifact.report import Artifact, ArtifactReport

# Starlette's own deprecation inside gradio's routes, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:.*HTTP_422")


@pytest.fixture(scope="session")
def classify_client(classify_url):
    from gradio_client import Client

    return Client(classify_url, verbose=False)


@pytest.fixture(scope="session")
def generate_client(generate_url):
    from gradio_client import Client

    return Client(generate_url, verbose=False)


def _path(value) -> str:
    """A file output as gradio_client gives it: a local path, or a dict with one."""
    return value if isinstance(value, str) else value["path"]


def _check_report_outputs(annotated, table, reward, summary) -> None:
    """The outputs of one classified image, as the client sees them, for the over-fitted classifier."""
    assert Path(_path(annotated["image"])).is_file()
    labels = [a["label"] for a in annotated["annotations"]]
    assert sorted(labels) == sorted(ANSWER_NAMES)
    for mask in annotated["annotations"]:
        assert Path(_path(mask["image"])).is_file()
    assert table["headers"] == ui_display.TABLE_HEADERS
    assert {row[0] for row in table["data"]} == ANSWER_NAMES
    assert {row[1] for row in table["data"]} == {"object-agnostic"}
    assert "(0.25, 0.10, 0.75, 0.55)" in {row[3] for row in table["data"]}
    assert reward == pytest.approx(1 - 2 / 13, abs=1e-3)
    assert "2 artifacts found" in summary


# ------------------------------------------------------------------------------------------------------------
# classify
# ------------------------------------------------------------------------------------------------------------


def test_classify_api_returns_boxes_table_reward_and_raw_answer(classify_client):
    annotated, table, reward, summary, raw = classify_client.predict(_handle(EXAMPLE), api_name="/classify")
    _check_report_outputs(annotated, table, reward, summary)
    assert raw.startswith("H) Localized Blur | [0.25, 0.10, 0.75, 0.55]")
    # The boxes are drawn on the uploaded image, at its size.
    with Image.open(_path(annotated["image"])) as shown:
        assert shown.size == Image.open(EXAMPLE).size


def test_classify_loads_the_model_once_per_process(classify_client):
    classify_client.predict(_handle(EXAMPLE), api_name="/classify")
    classify_client.predict(_handle(EXAMPLE), api_name="/classify")
    assert ui_models.classifier_for.cache_info().misses == 1


def test_classify_converts_non_rgb_images(classify_client, tmp_path):
    grey16 = tmp_path / "grey16.png"
    Image.fromarray(np.arange(48 * 40, dtype=np.uint16).reshape(40, 48) * 20).save(grey16)
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (40, 30), (10, 20, 30, 0)).save(rgba)
    for path in (grey16, rgba):
        annotated, table, reward, summary, _ = classify_client.predict(_handle(path), api_name="/classify")
        _check_report_outputs(annotated, table, reward, summary)
        with Image.open(_path(annotated["image"])) as shown:
            assert shown.mode == "RGB"


def _handle(path):
    from gradio_client import handle_file

    return handle_file(str(path))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 64), "not an image"),
        (lambda p: p.write_bytes(b""), "not an image|empty"),
        (lambda p: Image.new("L", (9000, 16)).save(p), "too large"),
        (lambda p: Image.open(EXAMPLE).save(p) or p.write_bytes(p.read_bytes()[:-2000]), "corrupt|truncated|not an"),
        (lambda p: p.write_bytes(os.urandom(ui_inputs.MAX_FILE_BYTES + 1)), "too large"),
    ],
    ids=["corrupt", "empty", "huge", "truncated", "file-too-large"],
)
def test_classify_rejects_bad_files_with_a_message_and_stays_up(classify_client, tmp_path, make, message):
    import re

    from gradio_client.exceptions import AppError

    bad = tmp_path / "bad.png"
    make(bad)
    with pytest.raises(AppError) as caught:
        classify_client.predict(_handle(bad), api_name="/classify")
    assert re.search(message, str(caught.value), re.IGNORECASE), str(caught.value)
    assert "Traceback" not in str(caught.value)
    # The server still answers.
    annotated, *_ = classify_client.predict(_handle(EXAMPLE), api_name="/classify")
    assert len(annotated["annotations"]) == 2


def test_classify_serves_no_local_files(classify_url):
    for target in ("/etc/passwd", str(ROOT / "setup.cfg"), str(EXAMPLE)):
        url = f"{classify_url}gradio_api/file={target}"
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(url, timeout=30)
        assert caught.value.code in (403, 404)


def test_repair_api_shows_before_after_and_keeps_the_original_when_the_reward_does_not_rise(classify_client):
    """The over-fitted classifier answers the same two boxed artifacts for any picture, so no inpainting can raise
    the reward: both sides show the uploaded image, with the boxes, and the same reward."""
    before, after, reward_before, reward_after, summary = classify_client.predict(_handle(EXAMPLE), api_name="/repair")
    for side in (before, after):
        assert sorted(a["label"] for a in side["annotations"]) == sorted(ANSWER_NAMES)
    assert reward_before == pytest.approx(1 - 2 / 13, abs=1e-3) and reward_after == reward_before
    assert "No repair kept" in summary and "2 attempts" in summary
    with Image.open(_path(before["image"])) as shown_before, Image.open(_path(after["image"])) as shown_after:
        assert shown_before.size == Image.open(EXAMPLE).size
        assert np.array_equal(np.asarray(shown_before.convert("RGB")), np.asarray(shown_after.convert("RGB")))
    assert ui_repair.inpainter_source().tiny  # no SYNARTIFACT_INPAINTER: the tiny one, built offline
    assert (Path(ui_repair.inpainter_source().path) / "model_index.json").is_file()


def test_repair_rejects_a_bad_file_with_a_message(classify_client, tmp_path):
    from gradio_client.exceptions import AppError

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 64)
    with pytest.raises(AppError, match="(?i)not an image"):
        classify_client.predict(_handle(bad), api_name="/repair")


def test_examples_follow_the_kinds_the_classifier_was_trained_on(monkeypatch, tmp_path):
    folder = tmp_path / "classifier"
    folder.mkdir()
    record = {"trained_kinds": ["unrealistic_lighting", "abnormal_texture", "illegible_letters"]}
    (folder / "sft_run.json").write_text(json.dumps(record))
    monkeypatch.setenv(ui_models.ENV_CLASSIFIER, str(folder))
    monkeypatch.setenv(ui_tiny.ENV_CACHE, str(tmp_path / "cache"))
    kinds = ui_examples.trained_kinds()
    assert kinds == ["illegible_letters", "unrealistic_lighting", "abnormal_texture"]  # taxonomy order
    bundled = ROOT / "spaces" / "classify" / "examples"
    paths = ui_examples.example_images(bundled, kinds)
    assert [p.stem.split("_", 1)[1] for p in paths] == kinds
    assert all(p.parent == bundled for p in paths)
    notice = ui_examples.kinds_notice(kinds)
    assert "3 of the 13 kinds" in notice and "Unrealistic Lighting" in notice
    # no record of the kinds: every bundled example, and the page says the kinds are not known
    (folder / "sft_run.json").write_text("{}")
    assert ui_examples.trained_kinds() is None
    assert len(ui_examples.example_images(bundled, None)) == len(ui_examples.EXAMPLE_SPECS)
    assert "does not list" in ui_examples.kinds_notice(None)


def test_the_bundled_examples_cover_every_synthesizable_kind(tmp_path):
    from synartifact.data.synth import SYNTH_KINDS
    from synartifact.demo import DemoSettings

    bundled = [kind for kind, _ in ui_examples.EXAMPLE_SPECS]
    assert sorted(bundled) == sorted(SYNTH_KINDS) and set(DemoSettings(out=Path("x")).kinds) <= set(bundled)
    # written into an empty folder (write_examples keeps existing files): the bundled examples are exactly what it
    # writes (after a change to the synthesis: ui_examples.write_examples(<the examples folder>, overwrite=True))
    folder = tmp_path / "examples"
    written = ui_examples.write_examples(folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{i}_{kind}.png" for kind, i in ui_examples.EXAMPLE_SPECS
    )
    for path in written:
        shipped = ROOT / "spaces" / "classify" / "examples" / path.name
        assert Image.open(path).size == (176, 176)
        np.testing.assert_array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(shipped)), err_msg=path.name)
    # an existing file is kept, unless overwrite
    Image.new("RGB", (8, 8)).save(written[0])
    assert ui_examples.write_examples(folder) == written and Image.open(written[0]).size == (8, 8)
    ui_examples.write_examples(folder, overwrite=True)
    assert Image.open(written[0]).size == (176, 176)


def test_inpainter_source_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(ui_tiny.ENV_CACHE, str(tmp_path))
    monkeypatch.delenv(ui_repair.ENV_INPAINTER, raising=False)
    source = ui_repair.inpainter_source()
    assert source.tiny and Path(source.path).parent == tmp_path
    assert "untrained tiny inpainter" in ui_repair.inpainter_notice(source)
    monkeypatch.setenv(ui_repair.ENV_INPAINTER, "org/inpainting")
    assert ui_repair.inpainter_source() == ui_models.ModelSource("org/inpainting", tiny=False)
    assert "org/inpainting" in ui_repair.inpainter_notice(ui_repair.inpainter_source())


# ------------------------------------------------------------------------------------------------------------
# generate
# ------------------------------------------------------------------------------------------------------------


def test_generate_api_gives_both_sides_from_one_seed(generate_client):
    out = generate_client.predict("a red apple on a table", 3, 2, 5.0, api_name="/generate")
    assert len(out) == 10
    base, refined, (raw_base, raw_refined) = out[0:4], out[4:8], out[8:10]
    _check_report_outputs(*base)
    _check_report_outputs(*refined)
    assert raw_base.startswith("H) Localized Blur") and raw_refined.startswith("H) Localized Blur")
    base_pixels = np.asarray(Image.open(_path(base[0]["image"])).convert("RGB"), dtype=float)
    refined_pixels = np.asarray(Image.open(_path(refined[0]["image"])).convert("RGB"), dtype=float)
    assert base_pixels.shape == refined_pixels.shape
    assert np.abs(base_pixels - refined_pixels).mean() > 0.5  # the LoRA changes the picture
    # Same seed, same settings: the same base image again.
    again = generate_client.predict("a red apple on a table", 3, 2, 5.0, api_name="/generate")
    again_pixels = np.asarray(Image.open(_path(again[0]["image"])).convert("RGB"), dtype=float)
    assert np.array_equal(base_pixels, again_pixels)


@pytest.mark.parametrize(
    "prompt, seed, steps, guidance, message",
    [
        ("", 0, 2, 5.0, "empty"),
        ("   \n ", 0, 2, 5.0, "empty"),
        ("x" * (ui_inputs.MAX_PROMPT_CHARS + 1), 0, 2, 5.0, "too long"),
        ("a cat", -1, 2, 5.0, "seed"),
        # The sliders' own bounds check answers first (gradio's message names the bound).
        ("a cat", 0, 0, 5.0, "steps|less than minimum"),
        ("a cat", 0, 2, 99.0, "guidance|greater than maximum"),
    ],
    ids=["empty", "blank", "too-long", "negative-seed", "zero-steps", "guidance"],
)
def test_generate_rejects_bad_settings_and_stays_up(generate_client, prompt, seed, steps, guidance, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=f"(?i){message}"):
        generate_client.predict(prompt, seed, steps, guidance, api_name="/generate")
    out = generate_client.predict("a cat", 0, 1, 0.0, api_name="/generate")
    assert len(out[0]["annotations"]) == 2


# ------------------------------------------------------------------------------------------------------------
# Pieces without a server
# ------------------------------------------------------------------------------------------------------------


def test_load_image_checks(tmp_path):
    path = tmp_path / "palette.png"
    Image.new("P", (20, 10)).save(path)
    assert ui_inputs.load_image(path).mode == "RGB"
    with pytest.raises(ValueError, match="too large"):
        ui_inputs.load_image(Image.new("RGB", (100, 100)), max_pixels=5000)
    with pytest.raises(ValueError, match="upload an image"):
        ui_inputs.load_image(None)
    assert ui_inputs.validate_prompt("  a   cat \n") == "a cat"
    assert ui_inputs.validate_generation_settings("4", 20.0, 7) == (4, 20, 7.0)
    with pytest.raises(ValueError, match="numbers"):
        ui_inputs.validate_generation_settings(None, 20, 7)


def test_annotations_and_table_from_a_report():
    image = Image.new("RGB", (200, 100))
    report = ArtifactReport(
        artifacts=[
            Artifact("localized_blur", (0.1, 0.2, 0.5, 1.2), "blurred"),
            Artifact("unrealistic_lighting", None, None),
            Artifact("localized_blur", (0.9, 0.9, 0.9, 0.9), None),
        ],
        raw_text="...",
    )
    shown, boxes = ui_display.annotations(report, image)
    assert shown is image
    assert boxes == [((20, 20, 100, 100), "Localized Blur"), ((180, 90, 181, 91), "Localized Blur")]
    rows = ui_display.report_table(report)
    assert rows[0] == ["Localized Blur", "object-agnostic", "blurred", "(0.10, 0.20, 0.50, 1.20)"]
    assert rows[1] == ["Unrealistic Lighting", "lighting", "", ""]
    assert ui_display.report_reward(ArtifactReport(raw_text="None")) == 1.0
    assert ui_display.report_reward(ArtifactReport(raw_text="gibberish")) == 0.0
    assert ui_display.report_reward(report) == pytest.approx(1 - 2 / 13)


def test_a_kind_named_without_a_box_is_shown_where_occlusion_finds_it(monkeypatch):
    """A labels-mode classifier names a kind only: the page asks it where (occlusion) and draws that box, marked."""
    import numpy as np

    from synartifact.repair import locate

    spot = (0.5, 0.125, 0.75, 0.375)
    pixels = np.full((64, 64, 3), 90, dtype=np.uint8)
    pixels[8:24, 32:48] = 250  # the spot, in pixels
    image = Image.fromarray(pixels)

    class LabelsClassifier:
        mode = "labels"

        def predict(self, images, batch_size=8, progress=False):
            return [ArtifactReport([Artifact("impractical_luminosity")], raw_text="M) Impractical Luminosity")]

    class SpotScorer:  # sees the kind while the spot is bright
        def presence(self, images):
            return [{"impractical_luminosity": float((np.asarray(im)[8:24, 32:48, 0] > 200).mean())} for im in images]

    monkeypatch.setattr(ui_display, "get_classifier", lambda: LabelsClassifier())
    monkeypatch.setattr(locate, "occlusion_scorer", lambda classifier: SpotScorer())
    plain, reward = ui_display.analyse(image)
    assert plain.artifacts[0].bbox is None and plain.located == () and ui_display.annotations(plain, image)[1] == []
    report, located_reward = ui_display.analyse(image, locate=True)
    box = report.artifacts[0].bbox
    assert box[0] <= spot[0] and box[1] <= spot[1] and box[2] >= spot[2] and box[3] >= spot[3]
    assert (box[2] - box[0]) * (box[3] - box[1]) <= 2.6 * 0.25 * 0.25
    assert report.located == (0,) and located_reward == reward  # the reward reads the answer, not the box
    (drawn,) = ui_display.annotations(report, image)[1]
    assert drawn == (tuple(round(v * 64) for v in box), "Impractical Luminosity")
    assert ui_display.report_table(report)[0][3].endswith(" by occlusion")
    assert report.to_dict()["artifacts"][0]["located"] is True


def test_notice_says_when_models_are_untrained():
    tiny = ui_models.ModelSource("/cache/tiny", tiny=True)
    real = ui_models.ModelSource("org/classifier", tiny=False)
    assert "Untrained demo models" in ui_models.demo_notice(real, tiny)
    assert "Untrained" not in ui_models.demo_notice(real)


def test_notice_names_local_models_by_folder_name_only(tmp_path):
    folder = tmp_path / "outputs" / "demo" / "classifier"
    folder.mkdir(parents=True)
    for source, shown in [
        (ui_models.ModelSource(str(folder), tiny=False), "`classifier`"),
        (ui_models.ModelSource(str(folder) + "/", tiny=False), "`classifier`"),
        (ui_models.ModelSource("outputs/demo/lora", tiny=False), "`lora`"),
        (ui_models.ModelSource("org/classifier", tiny=False), "`org/classifier`"),
    ]:
        notice = ui_models.demo_notice(source)
        assert shown in notice, notice
        assert str(tmp_path) not in notice and "outputs/demo" not in notice


def test_classify_page_and_api_show_no_server_path_of_the_model(classify_url, classify_client):
    folder = os.environ[ui_models.ENV_CLASSIFIER]
    assert os.path.isabs(folder) and Path(folder).is_dir()
    config = urllib.request.urlopen(f"{classify_url}config", timeout=30).read().decode()
    page = urllib.request.urlopen(classify_url, timeout=30).read().decode()
    assert f"`{Path(folder).name}`" in config  # the notice is on the page, naming the folder
    outputs = classify_client.predict(_handle(EXAMPLE), api_name="/classify")
    for text in (
        config,
        page,
        json.dumps(outputs, default=str),
        json.dumps(classify_client.view_api(print_info=False, return_format="dict")),
    ):
        for form in (folder, json.dumps(folder)[1:-1], str(Path(folder).parent)):
            assert form not in text


def test_generator_sources_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(ui_tiny.ENV_CACHE, str(tmp_path))
    monkeypatch.delenv(ui_models.ENV_GENERATOR_BASE, raising=False)
    monkeypatch.delenv(ui_models.ENV_GENERATOR_LORA, raising=False)
    base, lora = ui_models.generator_sources()
    assert base.tiny and lora.tiny and Path(base.path).parent == tmp_path
    monkeypatch.setenv(ui_models.ENV_GENERATOR_BASE, "org/sd")
    assert ui_models.generator_sources() == (ui_models.ModelSource("org/sd", tiny=False), None)
    monkeypatch.setenv(ui_models.ENV_GENERATOR_LORA, "org/lora")
    assert ui_models.generator_sources()[1] == ui_models.ModelSource("org/lora", tiny=False)
    monkeypatch.delenv(ui_models.ENV_GENERATOR_BASE)
    with pytest.raises(ValueError, match=ui_models.ENV_GENERATOR_BASE):
        ui_models.generator_sources()


def test_importing_an_app_loads_no_model(tmp_path):
    code = (
        "import sys, importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('app', {str(ROOT / 'spaces/generate/app.py')!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "assert m.build_demo() is not None\n"
        "print(sorted(k for k in ('torch', 'diffusers', 'synartifact.classifier') if k in sys.modules))\n"
    )
    env = {**os.environ, ui_tiny.ENV_CACHE: str(tmp_path / "empty-cache")}
    env.pop(ui_models.ENV_CLASSIFIER, None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "diffusers" not in out.stdout and "synartifact.classifier" not in out.stdout
    assert not (tmp_path / "empty-cache").exists()


# ------------------------------------------------------------------------------------------------------------
# The launcher: python spaces/classify/app.py
# ------------------------------------------------------------------------------------------------------------


def test_python_app_py_honours_gradio_server_port(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        ui_tiny.ENV_CACHE: str(tmp_path / "cache"),
    }
    env.pop(ui_models.ENV_CLASSIFIER, None)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "spaces" / "classify" / "app.py")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        config = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5) as response:
                    config = json.loads(response.read())
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        assert config is not None, f"the app did not come up on port {port}: {process.stdout.read()[-3000:]}"
        text = json.dumps(config)
        assert "Untrained demo models" in text  # no SYNARTIFACT_CLASSIFIER: the page says so
        assert '"api_name": "classify"' in text
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize("name", ["classify", "generate"])
def test_space_folders_have_a_spaces_header_and_pinned_requirements(name):
    """The Space runs on the newest tested stack: its header's gradio and its pins are constraints/latest.txt's."""
    import yaml
    from packaging.utils import canonicalize_name

    latest = stack_pins("latest")
    folder = ROOT / "spaces" / name
    header = yaml.safe_load((folder / "README.md").read_text(encoding="utf-8").split("---")[1])
    assert header["sdk"] == "gradio" and header["app_file"] == "app.py"
    assert header["sdk_version"] == latest["gradio"]
    assert len(header["short_description"]) <= 60
    for key in ("title", "emoji", "colorFrom", "colorTo", "license", "models", "datasets", "suggested_hardware"):
        assert key in header, key
    requirements = (folder / "requirements.txt").read_text(encoding="utf-8").splitlines()
    pinned = {canonicalize_name(line.split("==")[0]): line.split("==")[1] for line in requirements if "==" in line}
    assert pinned["gradio"] == latest["gradio"] and pinned["trl"] == latest["trl"] == "0.23.1"
    assert {k: v for k, v in pinned.items() if k in latest} == {k: v for k, v in latest.items() if k in pinned}
    assert len(set(pinned) & set(latest)) >= 8, "the Space pins the stack it was tested on"


def test_the_shared_space_code_lives_in_one_module_per_purpose():
    """What `spaces/*/app.py` import exists where each module says it does, and the old catch-all module is gone."""
    import importlib
    import importlib.util

    for part in ("inputs", "events", "models", "tiny_models", "display", "examples", "repair"):
        module = importlib.import_module(f"synartifact.webui.{part}")
        missing = [name for name in module.__all__ if not hasattr(module, name)]
        assert module.__all__ and not missing, (part, missing)
    assert importlib.util.find_spec("synartifact.spaces_utils") is None
    for app in ("classify", "generate"):
        text = (ROOT / "spaces" / app / "app.py").read_text(encoding="utf-8")
        assert "spaces_utils" not in text and "from synartifact.webui." in text, app
