"""The IFEval reference checkers, shared with the constraint parity tests."""

from tests.constraints.conftest import reference  # noqa: F401  # the session fixture
