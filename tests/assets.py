"""Test assets that live outside this package: the parity references (lm-eval's IFEval checkers, TRL) and IFEval's
prompts in ../shared.

Locally a test whose asset is missing skips, so the suite runs on a bare checkout. In CI (`CI=true`) it fails
instead: a green CI run must include the parity suites, never skip them silently.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[1]
IFEVAL_INPUT = REPO.parent / "shared" / "data" / "ifeval" / "input_data.jsonl"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


def missing(reason: str) -> NoReturn:
    """Skip the test for want of `reason`'s asset; under CI=true, fail it."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a parity asset must be present, the test may not skip)", pytrace=False)
    pytest.skip(reason)


def import_or_missing(module: str, install: str) -> ModuleType:
    """`pytest.importorskip`, except that it fails under CI=true."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        missing(f"{module} is not installed ({install}): {err}")


def ifeval_input_path(path: Path = IFEVAL_INPUT) -> Path:
    """IFEval's 540 prompts (a test asset only, never a run-time dependency)."""
    if not path.exists():
        missing(f"IFEval input data not found at {path}")
    return path
