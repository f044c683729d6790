"""The IFEval reference checkers (from the lm-eval wheel) as a session fixture; tests needing them skip without it,
or fail under CI=true (tests/assets.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.assets import missing
from tests.constraints import ifeval_reference


@pytest.fixture(scope="session")
def reference() -> Any:
    try:
        return ifeval_reference.load()
    except ImportError as err:
        missing(f"IFEval reference unavailable: {err}")


@pytest.fixture(scope="session")
def ifbench_reference() -> Any:
    from tests.constraints import ifbench_reference as loader

    try:
        return loader.load()
    except ImportError as err:
        missing(f"IFBench reference unavailable: {err}")
