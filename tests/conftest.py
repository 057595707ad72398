"""Test settings shared by the whole suite: offline, quiet, and the `slow` marker for GPU-only tests."""

import atexit
import importlib.util
import json
import os
import shutil
import socket
import threading
from pathlib import Path

import pytest
from PIL import Image

from synartifact.report import Artifact

# No test may reach the network: the Hub and Gradio's analytics are off for every test.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow (GPU-only, long)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow") or os.environ.get("RUN_SLOW") == "1":
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow or RUN_SLOW=1 (needs a GPU or a long time)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


def missing(what: str, why: str):
    """A dependency that `make test` installs (``EXTRAS``, ``browser-deps``) is not here: under `make test`, which
    sets SYNARTIFACT_STACK, the test fails; an ad-hoc run (no SYNARTIFACT_STACK) skips it."""
    stack = os.environ.get("SYNARTIFACT_STACK")
    if stack:
        pytest.fail(
            f"{what} is missing, but `make test` installs it (SYNARTIFACT_STACK={stack}): {why}", pytrace=False
        )
    pytest.skip(f"{what} is missing ({why}); `make test` installs it", allow_module_level=True)


def require_module(name: str, install: str):
    """``import name``; when it is missing, :func:`missing` (fail under `make test`, skip an ad-hoc run)."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        missing(name, f"{err}; {install}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a Space server or a torchrun rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- tiny models, built once per test session (random weights from configs, as diffusers' get_dummy_components) ---
# Tests must not modify these folders: copy one first when a test writes into it.

SMALL_VLM = {
    "image_size": 32,
    "patch_size": 8,
    "hidden_size": 32,
    "intermediate_size": 64,
    "layers": 1,
    "heads": 2,
    "vision_layers": 1,
    "vision_hidden_size": 32,
    "vision_intermediate_size": 64,
    "vision_heads": 2,
}


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory):
    """The tiny LLaVA folder (seed 0, the default sizes): the classifier, reward, evaluation and Spaces tests' model."""
    from synartifact.tiny import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny") / "tiny-vlm", arch="llava", seed=0)


@pytest.fixture(scope="session")
def tiny_vlm_small(tmp_path_factory):
    """A smaller tiny LLaVA (32 px images, width 32): the SFT tests' model, fast to train."""
    from synartifact.tiny import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny") / "tiny-vlm-small", seed=0, **SMALL_VLM)


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory):
    """The tiny Stable Diffusion folder (seed 0, random weights)."""
    from synartifact.tiny import build_tiny_sd

    return build_tiny_sd(tmp_path_factory.mktemp("tiny") / "tiny-sd", seed=0)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A synthesized Hub dataset folder of 10 images at 32 px (train and test splits)."""
    from synartifact.data import save_hub_folder, synthesize_dataset

    return save_hub_folder(synthesize_dataset(10, size=32, seed=0), tmp_path_factory.mktemp("tiny") / "dataset")


ROOT = Path(__file__).resolve().parents[1]
STACKS = ("latest", "oldest")


def stack_pins(stack: str) -> dict[str, str]:
    """``constraints/<stack>.txt`` as {normalized distribution name: pinned version}: the stacks the suite runs on."""
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (ROOT / "constraints" / f"{stack}.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


EXAMPLE = ROOT / "spaces" / "classify" / "examples" / "7_localized_blur.png"

# What the over-fitted classifier always answers (full mode: kind | box | caption).
ANSWER = [
    Artifact("localized_blur", (0.25, 0.10, 0.75, 0.55), "The face is blurred."),
    Artifact("chromatic_irregularity", (0.55, 0.60, 0.95, 0.95), "The corner has a blue cast."),
]
ANSWER_NAMES = {"Localized Blur", "Chromatic Irregularity"}


# ------------------------------------------------------------------------------------------------------------
# The Spaces: one server per app for the session (test_spaces.py and test_spaces_browser.py)
# ------------------------------------------------------------------------------------------------------------


def train_answering_classifier(base: Path, out: Path, steps: int = 80) -> Path:
    """A tiny LLaVA classifier folder that answers :data:`ANSWER` for any image (teacher-forced on 3 images)."""
    import torch

    from synartifact.classifier import ArtifactClassifier
    from synartifact.prompts import render_answer

    shutil.copytree(base, out)
    (out / "synartifact_config.json").write_text(json.dumps({"answer_mode": "full", "max_new_tokens": 64}))
    classifier = ArtifactClassifier.from_pretrained(out, device="cpu")
    images = [Image.new("RGB", (32, 32), colour) for colour in ((0, 0, 0), (255, 255, 255), (200, 30, 30))]
    prompt_length = classifier.prepare_inputs(images[:1])["input_ids"].shape[1]
    text = classifier.prompt + render_answer(ANSWER, "full") + classifier.tokenizer.eos_token
    batch = classifier.prepare_inputs(images, texts=[text] * len(images))
    labels = batch["input_ids"].clone()
    labels[:, :prompt_length] = -100
    torch.manual_seed(0)
    model = classifier.model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval().save_pretrained(out)
    return out


def load_app(name: str):
    """Import ``spaces/<name>/app.py`` as a module of its own name (both files are called app.py)."""
    spec = importlib.util.spec_from_file_location(f"synartifact_space_{name}", ROOT / "spaces" / name / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_LOCK = threading.Lock()
_STATE: dict = {}


def shared_environment(tmp_root: Path, base: Path) -> dict:
    """Once per session: a model cache, the answering classifier, and the environment variables the apps read."""
    import synartifact.webui.models as ui_models
    import synartifact.webui.tiny_models as ui_tiny

    with _LOCK:
        if "env" not in _STATE:
            cache = tmp_root / "spaces-cache"
            cache.mkdir(parents=True, exist_ok=True)
            classifier = train_answering_classifier(base, cache / "answering-classifier")
            os.environ[ui_tiny.ENV_CACHE] = str(cache)
            os.environ[ui_models.ENV_CLASSIFIER] = str(classifier)
            os.environ.pop(ui_models.ENV_GENERATOR_BASE, None)
            os.environ.pop(ui_models.ENV_GENERATOR_LORA, None)
            os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
            _STATE["env"] = {"cache": cache, "classifier": classifier}
        return _STATE["env"]


def shared_server(name: str, tmp_root: Path, base: Path) -> str:
    """Once per session and app: ``build_demo()`` launched on 127.0.0.1 at a free port; returns its URL."""
    shared_environment(tmp_root, base)
    with _LOCK:
        if name not in _STATE:
            demo = load_app(name).build_demo()
            demo.queue(default_concurrency_limit=2)
            port = free_port()
            demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
            atexit.register(demo.close)
            _STATE[name] = f"http://127.0.0.1:{port}/"
        return _STATE[name]


@pytest.fixture(scope="session")
def classify_url(tmp_path_factory, tiny_vlm) -> str:
    """The classify Space served on 127.0.0.1 (its classifier over-fitted to answer :data:`ANSWER`)."""
    return shared_server("classify", tmp_path_factory.getbasetemp(), tiny_vlm)


@pytest.fixture(scope="session")
def generate_url(tmp_path_factory, tiny_vlm) -> str:
    """The generate Space served on 127.0.0.1 (the tiny untrained generator the app builds offline)."""
    return shared_server("generate", tmp_path_factory.getbasetemp(), tiny_vlm)
