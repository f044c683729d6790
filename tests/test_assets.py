"""A missing parity asset skips the test locally and fails it under CI=true (tests/assets.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.assets import ifeval_input_path, import_or_missing

ABSENT_MODULE = "posttrain_test_no_such_module"


@pytest.mark.parametrize("ci", ["true", "TRUE", "1"])
def test_a_missing_asset_fails_under_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="IFEval input data not found.*CI=true"):
        ifeval_input_path(tmp_path / "absent.jsonl")
    with pytest.raises(pytest.fail.Exception, match=f"{ABSENT_MODULE} is not installed.*CI=true"):
        import_or_missing(ABSENT_MODULE, "pip install it")


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_a_missing_asset_skips_outside_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ci: str | None) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="IFEval input data not found"):
        ifeval_input_path(tmp_path / "absent.jsonl")
    with pytest.raises(pytest.skip.Exception, match=f"{ABSENT_MODULE} is not installed"):
        import_or_missing(ABSENT_MODULE, "pip install it")


def test_a_present_asset_is_returned_under_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CI", "true")
    present = tmp_path / "input_data.jsonl"
    present.write_text("{}\n")
    assert ifeval_input_path(present) == present
    assert import_or_missing("json", "part of Python") is json
