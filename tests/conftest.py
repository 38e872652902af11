"""Shared test helpers: markers that skip cleanly, and the shared text8 excerpt."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def text8_excerpt() -> Path | None:
    """The real text8 excerpt beside the checkout (../shared/data), or $MINIRNN_TEXT8_EXCERPT."""
    env = os.environ.get("MINIRNN_TEXT8_EXCERPT")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data" / "text8-excerpt.txt")
    for c in candidates:
        if c.is_file():
            return c
    return None


def pytest_collection_modifyitems(config, items):
    from minirnn.backend import gpu_available

    has_gpu = None
    for item in items:
        if "gpu" in item.keywords:
            if has_gpu is None:
                has_gpu = gpu_available()
            if not has_gpu:
                item.add_marker(pytest.mark.skip(reason="needs cupy and a CUDA GPU"))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Never touch the user's ~/.minirnn from tests."""
    monkeypatch.setenv("MINIRNN_HOME", str(tmp_path_factory.getbasetemp() / "minirnn-home"))


@pytest.fixture
def console():
    """The command line's reporter installed for one test, so the library's messages reach capsys
    (the library itself never prints: minirnn/messages.py)."""
    from minirnn import messages
    from minirnn.cli.console import Console

    previous = messages.use(Console())
    yield
    messages.use(previous)
