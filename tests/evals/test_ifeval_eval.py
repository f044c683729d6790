"""`evaluate_ifeval` and `posttrain eval ifeval`: metrics equal to the reference's, files, errors, processes."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from posttrain.cli.main import main
from posttrain.errors import InputError
from posttrain.evals.ifeval import evaluate_ifeval

ANSWERS = [
    "* one\n* two\n\nP.S. done",
    '"<<Title>>\nmy answer is yes. MY ANSWER IS NO"',
    "SECTION 1\nThe river.\nSECTION 2\nThe garden, the energy.",
    '```json\n{"a": 1}\n```',
    "first\n\nsecond paragraph here\n\nthird one\n******\nother answer",
    "all lowercase english words about the weather and the sea and nothing else",
    "Hola, esto es una respuesta en español sin comas ni nada más",
    "<think>let me think, carefully</think>A short answer without commas.",
]


def _rows(ifeval_input: Path, n: int) -> list[dict[str, Any]]:
    lines = ifeval_input.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    return [r for r in rows if r["key"] not in (1122, 1129)][
        :n
    ]  # rows where the reference draws a random letter


def _responses(rows: list[dict[str, Any]], seed: int = 0) -> dict[str, str]:
    rng = random.Random(seed)
    out = {}
    for row in rows:
        answer = rng.choice(ANSWERS)
        out[row["prompt"]] = (row["prompt"] + "\n" + answer) if rng.random() < 0.3 else answer
    return out


def test_metrics_equal_the_references(reference: Any, ifeval_input: Path) -> None:
    rows = _rows(ifeval_input, 540)
    responses = _responses(rows)
    # strip_thinking off: the reference never strips, so verdicts must then be identical.
    result = evaluate_ifeval(rows, responses, strip_thinking=False, workers=1)
    strict = [reference.strict(row, responses[row["prompt"]]) for row in rows]
    loose = [reference.loose(row, responses[row["prompt"]]) for row in rows]
    assert [r.strict for r in result.rows] == strict
    assert [r.loose for r in result.rows] == loose
    flat = [v for s in strict for v in s]
    assert result.prompt_strict == pytest.approx(sum(all(s) for s in strict) / len(rows))
    assert result.prompt_loose == pytest.approx(sum(all(s) for s in loose) / len(rows))
    assert result.instruction_strict == pytest.approx(sum(flat) / len(flat))
    assert result.per_instruction["punctuation:no_comma"]["n"] == sum(
        r["instruction_id_list"].count("punctuation:no_comma") for r in rows
    )


def test_thinking_is_stripped_by_default(ifeval_input: Path) -> None:
    row = {"key": 1, "prompt": "p", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    answer = {"p": "<think>hmm, well</think>No commas"}
    assert evaluate_ifeval([row], answer).prompt_strict == 1.0
    assert evaluate_ifeval([row], answer, strip_thinking=False).prompt_strict == 0.0


def test_processes_give_the_same_verdicts(ifeval_input: Path) -> None:
    rows = _rows(ifeval_input, 120)
    responses = _responses(rows, seed=1)
    one = evaluate_ifeval(rows, responses, workers=1)
    two = evaluate_ifeval(rows, responses, workers=2)
    assert [(r.strict, r.loose) for r in one.rows] == [(r.strict, r.loose) for r in two.rows]
    assert one.metrics() == two.metrics()


def test_missing_response_names_the_prompt() -> None:
    row = {"prompt": "Write a haiku about rain.", "instruction_id_list": [], "kwargs": []}
    with pytest.raises(InputError, match="no response for prompt 'Write a haiku about rain.'"):
        evaluate_ifeval([row], {"other": "x"})


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_cli_writes_metrics_and_reference_style_rows(tmp_path: Path, ifeval_input: Path, capsys: Any) -> None:
    rows = _rows(ifeval_input, 40)
    responses = _responses(rows, seed=2)
    data = _write_jsonl(tmp_path / "input.jsonl", rows)
    answers = _write_jsonl(
        tmp_path / "responses.jsonl", [{"prompt": p, "response": r} for p, r in responses.items()]
    )
    out = tmp_path / "out"
    assert main(["eval", "ifeval", "--data", str(data), "--responses", str(answers), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "prompt" in printed and "instruction" in printed and "punctuation:no_comma" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    expected = evaluate_ifeval(rows, responses)
    assert metrics["prompt_level_strict_acc"] == pytest.approx(expected.prompt_strict)
    assert metrics["inst_level_loose_acc"] == pytest.approx(expected.instruction_loose)
    strict_rows = [json.loads(line) for line in (out / "eval_results_strict.jsonl").read_text().splitlines()]
    assert len(strict_rows) == 40
    assert set(strict_rows[0]) == {
        "instruction_id_list", "prompt", "response", "follow_all_instructions", "follow_instruction_list",
    }  # fmt: skip
    assert [r["follow_instruction_list"] for r in strict_rows] == [r.strict for r in expected.rows]


def test_cli_bad_input_exits_2_with_file_line_and_writes_nothing(tmp_path: Path, capsys: Any) -> None:
    good = {"key": 1, "prompt": "p", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    bad = {"key": 2, "prompt": "q", "instruction_id_list": ["punctuation:no_coma"], "kwargs": [{}]}
    data = _write_jsonl(tmp_path / "input.jsonl", [good, bad])
    answers = _write_jsonl(tmp_path / "responses.jsonl", [{"prompt": "p", "response": "x"}])
    out = tmp_path / "out"
    assert main(["eval", "ifeval", "--data", str(data), "--responses", str(answers), "--out", str(out)]) == 2
    assert f"{data}:2: unknown constraint id 'punctuation:no_coma'" in capsys.readouterr().err
    data = _write_jsonl(
        tmp_path / "input.jsonl", [good, {**bad, "instruction_id_list": ["punctuation:no_comma"]}]
    )
    assert main(["eval", "ifeval", "--data", str(data), "--responses", str(answers), "--out", str(out)]) == 2
    assert "no response" in capsys.readouterr().err and not out.exists()
