from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from posttrain.cli.main import main


def test_help_lists_the_stages(capsys):
    assert main(["--help"]) == 0
    assert "records" in capsys.readouterr().out


def test_bad_input_exits_2_with_file_and_line(tmp_path: Path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": }\n')
    proc = subprocess.run(
        [sys.executable, "-m", "posttrain", "records", "validate", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert f"{bad}:2: malformed JSON" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_usage_error_exits_2(capsys):
    assert main(["records", "validate"]) == 2
