"""posttrain.atomic: a whole-file write replaces the file in one step, and a failed one leaves the old file and no temp file."""

from __future__ import annotations

from pathlib import Path

import pytest

from posttrain.atomic import atomic_write_text


def test_writes_then_replaces_the_whole_file_creating_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "new" / "metrics.json"
    atomic_write_text(path, "first\n")
    atomic_write_text(path, "second, ünïcode\n")
    assert path.read_text(encoding="utf-8") == "second, ünïcode\n"
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_a_failed_write_leaves_the_old_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    atomic_write_text(path, "kept\n")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(path, "\ud800")  # a lone surrogate cannot be encoded: the write fails midway
    assert path.read_text(encoding="utf-8") == "kept\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
