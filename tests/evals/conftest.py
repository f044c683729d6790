"""The IFEval and IFBench reference checkers, shared with the constraint parity tests."""

from tests.constraints.conftest import ifbench_reference, reference  # noqa: F401  # the session fixtures
