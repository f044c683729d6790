"""`posttrain models list`: the embedded model's files, local models in the cache, the spec syntax."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from posttrain.cli import main as cli_main
from posttrain.models.embedded import EMBEDDED_ID, cache_dir, embedded_model_dir


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli_main.app, ["models", "list", *args], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def test_an_empty_cache_lists_what_the_first_use_will_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path))
    mine = tmp_path / "models" / "my-sft"
    mine.mkdir(parents=True)
    (mine / "config.json").write_text("{}")
    (mine / "model.safetensors").write_bytes(b"\0" * 2048)
    staging = tmp_path / "models" / ".half-converted.tmp"
    staging.mkdir()
    (staging / "config.json").write_text("{}")
    (staging / "model.safetensors").write_bytes(b"\0")
    out = invoke()
    assert f"converted: not yet; the first use writes {tmp_path / 'models' / EMBEDDED_ID}" in out
    assert f"{mine} (2.0 KB)" in out and "half-converted" not in out
    assert "openai:<url>[#<model>]" in out and "vllm:<model>" in out


@pytest.mark.model
def test_the_converted_embedded_model_is_shown_with_its_size() -> None:
    converted = embedded_model_dir()  # converts it on first use
    assert converted == cache_dir() / "models" / EMBEDDED_ID
    out = invoke()
    assert f"converted: {converted} (" in out and "MB)" in out
    assert "gguf:" in out and ".gguf" in out
