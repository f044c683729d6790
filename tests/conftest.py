"""Shared fixtures. Tests never download anything: the embedded model or tiny models built from a config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.assets import ifeval_input_path

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Workers share the cores: one torch thread each, or OpenMP oversubscription makes model tests several times
    # slower. Set before torch is imported, and inherited by the subprocesses tests start.
    os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(scope="session")
def ifeval_input() -> Path:
    """IFEval's 540 prompts from ../shared: skips without them, fails under CI=true (tests/assets.py)."""
    return ifeval_input_path()
