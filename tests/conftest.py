"""Test settings shared by the whole suite: offline, quiet, and the `slow` marker for GPU-only tests."""

import os
import socket

import pytest

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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a Space server or a torchrun rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
