"""Shared fixtures. Tests never download anything: the embedded model or tiny models built from a config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Workers share the cores: one torch thread each, or OpenMP oversubscription makes model tests several times
    # slower. Set before torch is imported, and inherited by the subprocesses tests start.
    os.environ["OMP_NUM_THREADS"] = "1"

REPO = Path(__file__).resolve().parents[1]
IFEVAL_INPUT = REPO.parent / "shared" / "data" / "ifeval" / "input_data.jsonl"


@pytest.fixture(scope="session")
def ifeval_input() -> Path:
    """IFEval's 540 prompts from ../shared (a test asset only, never a run-time dependency)."""
    if not IFEVAL_INPUT.exists():
        pytest.skip(f"IFEval input data not found at {IFEVAL_INPUT}")
    return IFEVAL_INPUT
