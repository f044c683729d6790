from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.cli.main import main
from posttrain.halt.evaluate import summarize
from posttrain.halt.problems import generate_problems
from posttrain.records import Sample, write_records

PARAMS = {"max_new_tokens": 256, "temperature": 0.0, "top_p": 1.0, "top_k": 0, "stop": [], "seed": 0}


def _write(tmp_path: Path, name: str, problems, answers) -> Path:
    path = tmp_path / name
    write_records(path, [Sample(prompt_id=p.id, prompt=p.prompt, completion=a, model="m", sampling=PARAMS)
                         for p, a in zip(problems, answers, strict=True)])  # fmt: skip
    return path


def _problems_file(tmp_path: Path, n: int, seed: int = 0):
    problems = generate_problems(n, [1], seed=seed)
    path = tmp_path / "problems.jsonl"
    write_records(path, problems)
    return problems, path


def _row(
    pid: str, fragments: int, correct: int, marker: bool = False, size: int = 4, failed: str = ""
) -> dict:
    return {"prompt_id": pid, "failed": failed, "fragments": fragments, "correct": correct, "unverifiable": 0,
            "marker": marker, "abstained": fragments == 0, "correctness": correct / fragments if fragments else None,
            "completeness": min(1.0, correct / size), "truncated": False}  # fmt: skip


def test_metrics_by_hand():
    rows = [
        _row("a", 4, 4),
        _row("b", 2, 1, marker=True),
        _row("c", 0, 0, marker=True),
        _row("d", 3, 0, failed="x"),
    ]
    reference = [_row("a", 4, 4), _row("b", 4, 2), _row("c", 4, 2)]
    m = summarize(rows, reference)
    assert (m["graded"], m["grader_failed"], m["first_failure"]) == (3, 1, "x")
    assert m["correctness"] == 0.75  # (1 + 0.5) / 2: the abstention states nothing
    assert m["abstention_rate"] == round(1 / 3, 4) and m["partial_abstention_rate"] == round(1 / 3, 4)
    assert m["completeness"] == round((1 + 0.25 + 0) / 3, 4)
    assert m["relative_completeness"] == round(5 / 8, 4) and m["f1_completeness"] == "relative"
    assert m["f1"] == round(2 * 0.75 * 0.625 / (0.75 + 0.625), 4)
    assert summarize(rows)["f1_completeness"] == "absolute"


def test_eval_halt_scores_a_responses_file_against_a_reference(tmp_path, capsys):
    problems, prompts = _problems_file(tmp_path, 2, seed=2)
    full = [p.model_extra["solution"] for p in problems]
    first_step_then_marker = [s.split("\n")[0] + "\nUnsure from here." for s in full]
    standard, halt = (
        _write(tmp_path, "standard.jsonl", problems, full),
        _write(tmp_path, "halt.jsonl", problems, first_step_then_marker),
    )
    assert (
        main(
            [
                "eval",
                "halt",
                "--prompts",
                str(prompts),
                "--responses",
                str(standard),
                "--out",
                str(tmp_path / "std"),
            ]
        )
        == 0
    )
    assert main(["eval", "halt", "--prompts", str(prompts), "--responses", str(halt), "--reference", str(tmp_path / "std"),
                 "--out", str(tmp_path / "halt")]) == 0  # fmt: skip
    std = json.loads((tmp_path / "std" / "metrics.json").read_text())
    m = json.loads((tmp_path / "halt" / "metrics.json").read_text())
    assert std["correctness"] == 1.0 and std["completeness"] == 1.0 and std["abstention_rate"] == 0.0
    assert m["correctness"] == 1.0 and m["partial_abstention_rate"] == 1.0 and m["reference_prompts"] == 2
    per_problem = [len(p.model_extra["solution_steps"]) + 1 for p in problems]
    assert m["relative_completeness"] == round(2 / sum(per_problem), 4)
    rows = [json.loads(line) for line in (tmp_path / "halt" / "halt_results.jsonl").read_text().splitlines()]
    assert [r["fragments"] for r in rows] == [1, 1] and all(r["marker"] for r in rows)
    assert "relative_completeness" in capsys.readouterr().out


def test_eval_halt_generates_greedy_answers_with_a_model(tmp_path, tiny_model_dir):
    problems, prompts = _problems_file(tmp_path, 2, seed=2)
    out = tmp_path / "eval"
    assert main(["eval", "halt", "--prompts", str(prompts), "--model", str(tiny_model_dir), "--max-new-tokens", "6",
                 "--out", str(out)]) == 0  # fmt: skip
    assert len((out / "responses.jsonl").read_text().splitlines()) == 2
    assert json.loads((out / "metrics.json").read_text())["responses"] == 2


@pytest.mark.parametrize("which", ["both", "neither"])
def test_exactly_one_source_of_responses(tmp_path, capsys, which):
    problems, prompts = _problems_file(tmp_path, 1)
    extra = (
        ["--responses", str(_write(tmp_path, "r.jsonl", problems, ["1"])), "--model", "embedded"]
        if which == "both"
        else []
    )
    assert main(["eval", "halt", "--prompts", str(prompts), "--out", str(tmp_path / "o"), *extra]) == 2
    assert "exactly one of --responses" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_eval_halt_samples_several_answers_per_problem(tmp_path, tiny_model_dir):
    problems, prompts = _problems_file(tmp_path, 2, seed=2)
    out = tmp_path / "eval"
    assert main(["eval", "halt", "--prompts", str(prompts), "--model", str(tiny_model_dir), "--max-new-tokens", "6",
                 "--temperature", "1.0", "--n", "3", "--seed", "4", "--out", str(out)]) == 0  # fmt: skip
    rows = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and sorted(r["index"] for r in rows) == [0, 0, 1, 1, 2, 2]
    assert {r["sampling"]["temperature"] for r in rows} == {1.0}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["responses"] == 6 and metrics["sampling"] == {"temperature": 1.0, "n": 3, "seed": 4}


@pytest.mark.parametrize(("flags", "message"), [(["--n", "2"], "--n > 1 only when sampling"),
                                                (["--n", "0", "--temperature", "1"], "--n must be at least 1")])  # fmt: skip
def test_several_greedy_answers_are_refused(tmp_path, capsys, flags, message):
    problems, prompts = _problems_file(tmp_path, 1)
    assert main(["eval", "halt", "--prompts", str(prompts), "--model", "embedded", "--out", str(tmp_path / "o"),
                 *flags]) == 2  # fmt: skip
    assert message in capsys.readouterr().err and not (tmp_path / "o").exists()
