"""The IFEval reference checkers (from the lm-eval wheel) as a session fixture; tests needing them skip without it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.constraints import ifeval_reference


@pytest.fixture(scope="session")
def reference() -> Any:
    try:
        return ifeval_reference.load()
    except ImportError as err:
        pytest.skip(f"IFEval reference unavailable: {err}")
