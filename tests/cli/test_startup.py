"""Start-up without timing: printing help imports none of the heavy libraries, whose imports are most of what a slow
start costs (torch, transformers, NLTK with SciPy, numba). Checked in a fresh interpreter, since this test process
has imported everything already. The timings themselves are measured by bench/startup.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from posttrain.cli import choices
from posttrain.cli.records import record_class
from posttrain.errors import InputError

# Heavy imports that no help text needs. numpy, pyarrow and langdetect are smaller, but each is reached only through a
# module that has no business loading for help (records, constraints, models). Not pydantic: typer itself imports it
# to convert option values, once a command's help is built.
HEAVY = ("torch", "transformers", "numba", "nltk", "scipy", "numpy", "pyarrow", "langdetect")

PROBE = """
import json, sys
from posttrain.cli.main import main
code = main(json.loads(sys.argv[1]))
print(json.dumps({"code": code, "imported": sorted(name for name in json.loads(sys.argv[2]) if name in sys.modules)}))
"""


def _imports_while(args: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["eval", "ifeval", "--help"],
        ["sample", "--help"],
        ["pairs", "--help"],
        ["records", "validate", "--help"],
        ["train", "dpo", "--help"],
        ["run", "--help"],
        ["halt", "--help"],
        ["redteam", "--help"],
        ["train", "guard", "--help"],
        ["train", "critic-rm", "--help"],
    ],
)
def test_help_imports_no_heavy_library(args: list[str]) -> None:
    assert _imports_while(args) == {"code": 0, "imported": []}


def test_the_probe_sees_a_commands_imports() -> None:
    # Scoring IFEval loads the checkers (NLTK's punkt) before it reads its files: the probe must see that import.
    result = _imports_while(["eval", "ifeval", "--data", "/nonexistent.jsonl", "--responses", "/nonexistent.jsonl"])
    assert result["code"] == 2 and "nltk" in result["imported"]


def test_the_help_texts_choices_are_the_implementations() -> None:
    from posttrain.constraints import MODES
    from posttrain.pairs.rejection import CONTRASTS

    assert choices.CHECKER_MODES == MODES
    assert choices.CONTRASTS == CONTRASTS


def test_every_record_kind_has_its_class_and_others_are_refused() -> None:
    from posttrain import records

    assert [record_class(kind) for kind in choices.RECORD_KINDS] == [
        records.Prompt, records.Sample, records.Verdict, records.Pair, records.GroupPair,
    ]  # fmt: skip
    with pytest.raises(InputError, match="unknown record kind 'row'"):
        record_class("row")
