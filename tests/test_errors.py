"""Errors a user can act on (issue 21, item 5): each tried as a new user would, with real folders, links and files."""

import http.server
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from synartifact.cli import main

HUB_ERROR = "cannot reach the Hub"


def _cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m synartifact ARGS`` in a subprocess (exit code and stderr as the user sees them)."""
    return subprocess.run(
        [sys.executable, "-m", "synartifact", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def _closed_port_endpoint() -> str:
    """An HF_ENDPOINT nobody listens on: connecting is refused at once (the machine is offline for the Hub)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def hub_unreachable(monkeypatch):
    """Online mode (no HF_HUB_OFFLINE, as a new user runs) with a Hub that cannot be reached."""
    from huggingface_hub import constants

    from synartifact import hub_access

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", _closed_port_endpoint())
    monkeypatch.setenv(hub_access.ENV_TIMEOUT, "1")
    monkeypatch.setattr(hub_access, "_REACHED", {})
    return {
        "HF_HUB_OFFLINE": "",
        "TRANSFORMERS_OFFLINE": "",
        "HF_ENDPOINT": os.environ["HF_ENDPOINT"],
        hub_access.ENV_TIMEOUT: "1",
    }


@pytest.fixture
def not_a_model(tmp_path) -> Path:
    """A real folder a user might pass by mistake: images and a README, no config.json."""
    folder = tmp_path / "my-photos"
    folder.mkdir()
    (folder / "README.md").write_text("holiday pictures\n")
    Image.new("RGB", (32, 32), "blue").save(folder / "beach.png")
    return folder


@pytest.fixture
def image_folder(tmp_path) -> Path:
    folder = tmp_path / "to-repair"
    folder.mkdir()
    Image.new("RGB", (32, 32), "red").save(folder / "a.png")
    return folder


# ---- not a model folder --------------------------------------------------------------------------------------


def test_repair_classifier_not_a_model_folder_one_line(not_a_model, image_folder, tmp_path):
    """Transformers 4.57 answered with a 5 KB "Unrecognized model ... one of the following strings" list."""
    done = _cli(
        "repair",
        "--classifier",
        str(not_a_model),
        "--inpainter",
        str(not_a_model),
        "--images",
        str(image_folder),
        "--out",
        str(tmp_path / "out"),
    )
    assert done.returncode == 2, done.stderr[-2000:]
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "no config.json" in error[0] and "not a model folder" in error[0], done.stderr[-2000:]
    assert str(not_a_model) in error[0] and len(error[0]) < 400
    assert "following strings" not in done.stderr and not (tmp_path / "out").exists()


def test_config_without_model_type_is_one_line(tmp_path):
    """A config.json that names no model type: transformers 4.57's message lists every model type (5 KB)."""
    from synartifact.classifier.loading import load_classifier_model

    folder = tmp_path / "half-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(ValueError) as info:
        load_classifier_model(str(folder), None)
    assert "model_type" in str(info.value) and "\n" not in str(info.value) and len(str(info.value)) < 400


def test_evaluate_model_not_a_model_folder(not_a_model, tmp_path, capsys):
    """It said that no baseline was given, as if the folder were a full model without a recorded base."""
    code = main(
        ["evaluate", "--model", str(not_a_model), "--dataset", str(tmp_path / "data"), "--out", str(tmp_path / "e")]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "not a model folder" in err and "no config.json" in err and "baseline" not in err


# ---- the Hub: fail fast, one helper ---------------------------------------------------------------------------


def test_repair_inpainter_hub_id_offline_fails_fast_like_the_classifier(
    tiny_vlm, image_folder, tmp_path, hub_unreachable
):
    """``--inpainter org/name`` without the Hub: exit 2 with the message (was: 1 and a raw OSError after retries)."""
    started = time.perf_counter()
    done = _cli(
        "repair",
        "--classifier",
        str(tiny_vlm),
        "--inpainter",
        "org/name",
        "--images",
        str(image_folder),
        "--out",
        str(tmp_path / "out"),
        env=hub_unreachable,
    )
    took = time.perf_counter() - started
    assert done.returncode == 2, done.stderr[-2000:]
    assert HUB_ERROR in done.stderr and "org/name" in done.stderr and "HF_HUB_OFFLINE=1" in done.stderr
    assert "OSError" not in done.stderr and "Traceback" not in done.stderr
    assert took < 60


def test_repair_inpainter_hub_id_not_cached_offline_is_exit_2(tiny_vlm, image_folder, tmp_path):
    """With HF_HUB_OFFLINE=1 and nothing cached, the inpainter's error is a clear exit 2 like the classifier's."""
    done = _cli(
        "repair",
        "--classifier",
        str(tiny_vlm),
        "--inpainter",
        "org/name",
        "--images",
        str(image_folder),
        "--out",
        str(tmp_path / "out"),
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")},
    )
    assert done.returncode == 2, done.stderr[-2000:]
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert error and "inpainter 'org/name'" in error[0] and "OSError" not in error[0], done.stderr[-2000:]


def _pretrain_sd(name, tmp_path):
    from synartifact.generator.pretrain import pretrain_sd

    return pretrain_sd(name, None, tmp_path / "out", progress=False)


def _pretrain_inpaint(name, tmp_path):
    from synartifact.generator.inpaint import pretrain_inpaint

    return pretrain_inpaint(name, None, tmp_path / "out", steps=0, progress=False)


def _classifier(name, tmp_path):
    from synartifact.classifier import ArtifactClassifier

    return ArtifactClassifier.from_pretrained(name)


def _reward(name, tmp_path):
    from synartifact.reward import ArtifactReward

    return ArtifactReward(name)


def _inpainter(name, tmp_path):
    from synartifact.repair import load_inpainter

    return load_inpainter(name)


def _space_generator(name, tmp_path):
    from synartifact.webui.models import GeneratorPair

    return GeneratorPair(name, None)


def _ddpo_pipeline(name, tmp_path):
    from synartifact.ddpo import _get_pipeline

    return _get_pipeline(SimpleNamespace(pretrained_model=name, pretrained_revision="main", use_lora=True))


@pytest.mark.parametrize(
    "load",
    [_classifier, _reward, _inpainter, _space_generator, _ddpo_pipeline, _pretrain_sd, _pretrain_inpaint],
    ids=lambda f: f.__name__.strip("_"),
)
def test_every_loader_of_hub_ids_fails_fast(load, tmp_path, hub_unreachable):
    from synartifact.hub_access import HubUnreachableError

    started = time.perf_counter()
    with pytest.raises(HubUnreachableError, match="cannot reach the Hub .* org/name; pass a local folder or set "):
        load("org/name", tmp_path)
    assert time.perf_counter() - started < 10


class _Silent:
    """A server that accepts connections and never answers (a Hub behind a black hole)."""

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def __exit__(self, *exc):
        self.sock.close()


def test_hub_check_times_out_quickly(monkeypatch, hub_unreachable):
    from synartifact.hub_access import ENV_TIMEOUT, HubUnreachableError, require_hub

    monkeypatch.setenv(ENV_TIMEOUT, "0.3")
    with _Silent() as endpoint:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        started = time.perf_counter()
        with pytest.raises(HubUnreachableError, match="HF_HUB_OFFLINE=1"):
            require_hub("org/name")
        assert time.perf_counter() - started < 3


def test_hub_check_passes_when_the_hub_answers_and_skips_folders_and_offline(monkeypatch, hub_unreachable, tmp_path):
    from huggingface_hub import constants

    from synartifact.hub_access import require_hub

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802 - the handler's name
            self.send_response(401)  # no token: the Hub still answered
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
        require_hub("org/name")
    finally:
        server.shutdown()
        server.server_close()
    monkeypatch.setenv("HF_ENDPOINT", _closed_port_endpoint())
    require_hub(tmp_path)  # a folder: never asks the Hub
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    require_hub("other/name")  # offline: the cache answers


def test_hub_error_reading_the_training_record_warns(monkeypatch, caplog):
    """It fell back to the labels answer mode in silence."""
    import huggingface_hub

    from synartifact.classifier.loading import read_classifier_config

    def fail(*args, **kwargs):
        raise OSError("503 Service Unavailable")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fail)
    with caplog.at_level(logging.WARNING, logger="synartifact.classifier.loading"):
        assert read_classifier_config("org/name") == {}
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("org/name" in m and "synartifact_config.json" in m and "'labels'" in m for m in warned), warned


def test_mixed_precision_change_is_logged(monkeypatch, caplog):
    import torch

    from synartifact.configs import ddpo_config_defaults

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = SimpleNamespace(mixed_precision="fp16")
    with caplog.at_level(logging.WARNING, logger="synartifact.configs"):
        ddpo_config_defaults(config)
    assert config.mixed_precision == "no"
    assert any("mixed_precision" in r.getMessage() and "fp16" in r.getMessage() for r in caplog.records)


# ---- the Spaces ----------------------------------------------------------------------------------------------


def test_space_missing_classifier_folder_hides_the_server_path(monkeypatch, tmp_path, caplog):
    import gradio as gr

    import synartifact.webui.events as ui_events
    import synartifact.webui.models as ui_models

    secret = tmp_path / "srv" / "models" / "my-classifier"
    monkeypatch.setenv(ui_models.ENV_CLASSIFIER, str(secret))
    ui_models.classifier_for.cache_clear()
    try:
        with caplog.at_level(logging.ERROR, logger="synartifact.webui.models"):
            with pytest.raises(gr.Error) as info:
                ui_events.user_errors(ui_models.get_classifier)()
    finally:
        ui_models.classifier_for.cache_clear()
    shown = info.value.message
    assert str(tmp_path) not in shown and "srv" not in shown, shown
    assert "my-classifier" in shown and ui_models.ENV_CLASSIFIER in shown and "does not exist" in shown
    assert any(str(secret) in r.getMessage() for r in caplog.records)  # the server's log keeps the path


def test_space_upload_error_is_not_an_image_only_when_decoding_fails(monkeypatch, tmp_path, caplog):
    import gradio as gr

    import synartifact.webui.inputs as ui_inputs

    component = ui_inputs.validated_image()
    upload = SimpleNamespace(path=str(tmp_path / "x.png"))

    def bug(*args, **kwargs):
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(ui_inputs, "load_image", bug)
    with caplog.at_level(logging.ERROR, logger="synartifact.webui.inputs"):
        with pytest.raises(gr.Error) as info:
            component.preprocess(upload)
    assert "not an image" not in info.value.message and "not a problem with your image" in info.value.message
    assert any(r.exc_info and "a bug of ours" in str(r.exc_info[1]) for r in caplog.records)

    def undecodable(*args, **kwargs):
        raise OSError("cannot identify image file")

    monkeypatch.setattr(ui_inputs, "load_image", undecodable)
    with pytest.raises(gr.Error) as info:
        component.preprocess(upload)
    assert "not an image" in info.value.message


def test_parser_bug_is_logged_with_its_traceback(monkeypatch, caplog):
    from synartifact import prompts

    def bug(*args, **kwargs):
        raise IndexError("a parser bug")

    monkeypatch.setattr(prompts, "_parse_into", bug)
    with caplog.at_level(logging.ERROR, logger="synartifact.prompts"):
        parsed = prompts.parse_answer("H) Localized Blur")
    assert not parsed.well_formed and any("parser error" in p for p in parsed.problems)
    assert any(r.exc_info and isinstance(r.exc_info[1], IndexError) for r in caplog.records)


# ---- dataset build: links, crowds, one image under two ids ----------------------------------------------------


def _png(path: Path, color="red", size=(48, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _clean_rows(n: int, images: Path) -> list[dict]:
    return [{"image": _png(images / f"clean{i}.png", "white").name, "artifacts": []} for i in range(n)]


@pytest.mark.parametrize("linked", ["file", "folder"])
def test_symlink_leading_outside_images_is_a_record_problem(tmp_path, linked):
    from synartifact.data.importers import build_dataset
    from synartifact.data.schema import DatasetValidationError

    images, outside = tmp_path / "images", tmp_path / "private"
    _png(outside / "secret.png", "green")
    rows = _clean_rows(4, images)
    if linked == "file":
        (images / "link.png").symlink_to(outside / "secret.png")
        rows.append({"image": "link.png", "artifacts": []})
    else:
        (images / "sub").symlink_to(outside, target_is_directory=True)
        rows.append({"image": "sub/secret.png", "artifacts": []})
    annotations = _jsonl(tmp_path / "ann.jsonl", rows)
    with pytest.raises(DatasetValidationError) as info:
        build_dataset("jsonl", annotations, images, progress=False)
    text = str(info.value)
    assert "symbolic link" in text and "outside --images" in text and "--allow-outside-images" in text
    data, rejected, _ = build_dataset("jsonl", annotations, images, progress=False, skip_invalid=True)
    assert len(rejected) == 1 and sum(len(d) for d in data.values()) == 4
    data, _, _ = build_dataset("jsonl", annotations, images, progress=False, allow_outside_images=True)
    assert sum(len(d) for d in data.values()) == 5


def test_coco_iscrowd_regions_are_counted(tmp_path, capsys):
    from synartifact.data.importers import build_dataset

    images = tmp_path / "images"
    coco = {
        "images": [
            {"id": i, "file_name": _png(images / f"{i}.png").name, "width": 48, "height": 40} for i in range(5)
        ],
        "annotations": [
            {"id": 1, "image_id": 0, "category_id": 7, "bbox": [2, 2, 10, 10], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 7, "bbox": [2, 2, 20, 20], "iscrowd": 1, "segmentation": {}},
            {"id": 3, "image_id": 2, "category_id": 7, "bbox": [4, 4, 20, 20], "iscrowd": 1},
        ],
        "categories": [{"id": 7, "name": "localized_blur"}],
    }
    annotations = tmp_path / "coco.json"
    annotations.write_text(json.dumps(coco))
    data, _, report = build_dataset("coco", annotations, images, progress=False)
    assert report.crowd_regions == 2 and report.to_dict()["crowd_regions"] == 2
    assert any("iscrowd" in line and ": 2" in line for line in report.lines())
    assert sum(len(r["artifacts"]) for d in data.values() for r in d) == 3
    with pytest.raises(SystemExit):
        main(["dataset", "build", "--help"])
    assert "iscrowd" in capsys.readouterr().out


def test_skip_crowd_leaves_coco_crowd_regions_out_and_counts_them(tmp_path, capsys):
    """--skip-crowd: crowd regions are not imported; an image that had only those is left out (it is not clean)."""

    images = tmp_path / "images"
    coco = {
        "images": [{"id": i, "file_name": _png(images / f"{i}.png").name} for i in range(5)],
        "annotations": [
            {"id": 1, "image_id": 0, "category_id": 7, "bbox": [2, 2, 10, 10], "iscrowd": 0},
            {"id": 2, "image_id": 0, "category_id": 7, "bbox": [20, 20, 10, 10], "iscrowd": 1},
            {"id": 3, "image_id": 1, "category_id": 7, "bbox": [2, 2, 20, 20], "iscrowd": 1},
            {"id": 4, "image_id": 2, "category_id": 7, "bbox": [4, 4, 20, 20], "iscrowd": 1},
        ],
        "categories": [{"id": 7, "name": "localized_blur"}],
    }
    annotations = tmp_path / "coco.json"
    annotations.write_text(json.dumps(coco))
    out = tmp_path / "out"
    argv = ["dataset", "build", "--format", "coco", "--annotations", str(annotations), "--images", str(images)]
    assert main([*argv, "--out", str(out), "--skip-crowd", "--test-size", "0.4"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "build_report.json").read_text())
    # by hand: images 0, 3, 4 kept; 0 keeps its one ordinary region; 1 and 2 had crowd regions only
    assert report["dropped"] == {
        "COCO iscrowd regions (--skip-crowd)": 3,
        "images whose regions were all iscrowd (--skip-crowd): not clean, so left out": 2,
    }
    assert report["crowd_regions"] == 0 and report["kept"] == 3
    assert "dropped COCO iscrowd regions (--skip-crowd): 3" in printed
    from synartifact.data import load_artifact_dataset

    data = load_artifact_dataset(str(out))
    rows = {row["image_id"]: row["artifacts"] for split in data.values() for row in split}
    assert sorted(rows) == ["0", "3", "4"]
    assert [a["bbox"] for a in rows["0"]] == [pytest.approx([2 / 48, 2 / 40, 12 / 48, 12 / 40])]
    assert rows["3"] == rows["4"] == []
    # without the flag the crowd regions are artifacts (counted), and the flag means nothing to other formats
    assert main([*argv, "--out", str(tmp_path / "all")]) == 0
    assert json.loads((tmp_path / "all" / "build_report.json").read_text())["crowd_regions"] == 3
    jsonl = ["dataset", "build", "--format", "jsonl", "--annotations", str(annotations), "--images", str(images)]
    assert main([*jsonl, "--out", str(tmp_path / "j"), "--skip-crowd"]) == 2
    assert "--skip-crowd" in capsys.readouterr().err


@pytest.mark.parametrize("alias", ["same path", "symlink"])
def test_one_image_file_under_two_ids_is_a_record_problem(tmp_path, alias):
    from synartifact.data.importers import build_dataset
    from synartifact.data.schema import DatasetValidationError

    images = tmp_path / "images"
    rows = _clean_rows(6, images)
    _png(images / "cat.png", "orange")
    second = "cat.png"
    if alias == "symlink":
        (images / "cat-again.png").symlink_to("cat.png")
        second = "cat-again.png"
    rows += [{"image": "cat.png", "image_id": "cat-1"}, {"image": second, "image_id": "cat-2"}]
    annotations = _jsonl(tmp_path / "ann.jsonl", rows)
    with pytest.raises(DatasetValidationError) as info:
        build_dataset("jsonl", annotations, images, progress=False)
    assert "also the image of" in str(info.value) and "both the train and the test split" in str(info.value)
    data, rejected, _ = build_dataset("jsonl", annotations, images, progress=False, skip_invalid=True)
    ids = [i for d in data.values() for i in d["image_id"]]
    assert "cat-1" in ids and "cat-2" not in ids and [r["image_id"] for r in rejected] == ["cat-2"]


# ---- a kill during the final folder swap ----------------------------------------------------------------------

_KILLED_IN_SWAP = textwrap.dedent(
    """
    import os, shutil, signal, sys
    from pathlib import Path
    from synartifact import utils

    def killed(path, *args, **kwargs):  # the kill lands between the rename and the old folder's removal
        os.kill(os.getpid(), signal.SIGKILL)

    shutil.rmtree = killed
    with utils.atomic_dir(Path(sys.argv[1]), overwrite=True) as tmp:
        (tmp / "result.txt").write_text("second run")
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_during_the_swap_leaves_no_old_folder_for_good(tmp_path):
    from synartifact.utils import atomic_dir

    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "result.txt").write_text("first run")
    done = subprocess.run([sys.executable, "-c", _KILLED_IN_SWAP, str(out)], capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert (out / "result.txt").read_text() == "second run"
    assert [p.name for p in tmp_path.glob("out.old-*")], "the kill should have left the old folder"
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "result.txt").write_text("third run")
    assert (out / "result.txt").read_text() == "third run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_kill_between_the_two_renames_restores_the_previous_output(tmp_path):
    from synartifact.utils import atomic_dir

    out = tmp_path / "out"
    old = tmp_path / "out.old-ab12cd34"  # what a kill after ``out.rename(old / out.name)`` leaves
    (old / "out").mkdir(parents=True)
    (old / "out" / "result.txt").write_text("previous")
    keep = tmp_path / "out.old-notours"  # not atomic_dir's name: never touched
    keep.mkdir()
    (keep / "mine.txt").write_text("user's")
    with pytest.raises(FileExistsError):
        with atomic_dir(out):
            pass
    assert (out / "result.txt").read_text() == "previous" and not old.exists()
    assert (keep / "mine.txt").read_text() == "user's"
