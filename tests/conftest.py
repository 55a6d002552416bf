"""Shared test fixtures: offline Hugging Face, float64 defaults, the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch: pytest.MonkeyPatch):
    """Each test sees a registry built from its own environment."""
    from biocoreset.plugins import reset

    reset()
    yield
    reset()


@pytest.fixture
def shared_data() -> Path:
    """The real data folder beside the project (skips when absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


def pytest_configure(config):
    """One torch thread: on small shared machines 2 threads make tiny models 20-40x slower."""
    import torch

    torch.set_num_threads(1)
