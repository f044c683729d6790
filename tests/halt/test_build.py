"""`posttrain halt build` on answers given as a samples file (no model loads), and its bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.cli.main import main
from posttrain.halt.build import HaltExample
from posttrain.halt.problems import generate_problems
from posttrain.records import Prompt, Sample, read_records, write_records
from posttrain.train.sft import SFTExample


def _files(tmp_path: Path, answers: list[str], finish: str = "stop") -> tuple[Path, Path, list[Prompt]]:
    problems = generate_problems(len(answers), [1], seed=3)
    prompts, samples = tmp_path / "problems.jsonl", tmp_path / "samples.jsonl"
    write_records(prompts, problems)
    params = {"max_new_tokens": 256, "temperature": 0.7, "top_p": 1.0, "top_k": 0, "stop": [], "seed": 0}
    rows = [Sample(prompt_id=p.id, prompt=p.prompt, completion=a, model="embedded", seed=0, sampling=params,
                   finish_reason=finish) for p, a in zip(problems, answers, strict=True)]  # fmt: skip
    write_records(samples, rows)
    return prompts, samples, problems


def _answers(problems: list[Prompt], wrong_at: list[int | None]) -> list[str]:
    """Each problem's worked solution, with step k replaced by a wrong one (None: left right)."""
    out = []
    for p, k in zip(problems, wrong_at, strict=True):
        lines = p.model_extra["solution"].split("\n")
        if k is not None:
            lines[k] = "Then 7 * 7 = 50."
        out.append("\n".join(lines))
    return out


def _build(prompts: Path, samples: Path, out: Path, threshold: float = 0.0) -> int:
    return main(["halt", "build", "--prompts", str(prompts), "--samples", str(samples), "--threshold",
                 str(threshold), "--out", str(out)])  # fmt: skip


def test_build_writes_sft_records_with_provenance_that_train_sft_accepts(tmp_path, capsys):
    problems = generate_problems(3, [1], seed=3)
    prompts, samples, _ = _files(tmp_path, _answers(problems, [None, 1, 0]))
    out = tmp_path / "sft.jsonl"
    assert _build(prompts, samples, out) == 0
    rows = read_records(out, HaltExample)
    assert [(r.kept, r.cut_at, r.abstained) for r in rows] == [(3, None, False), (1, 1, False), (0, 0, True)]
    assert rows[0].completion == rows[0].original
    assert rows[1].completion.endswith("\nUnsure from here.") and rows[2].completion == "Unsure from here."
    assert [f["verdict"] for f in rows[1].fragments] == [1, 0, 1, 1]
    assert all(SFTExample.model_validate(r.model_dump()).prompt_and_response()[1] for r in rows)
    stats = json.loads((tmp_path / "sft.jsonl.stats.json").read_text())
    assert (stats["examples"], stats["kept_whole"], stats["cut"], stats["abstained"]) == (3, 1, 1, 1)
    assert "1 kept whole, 1 cut with the marker, 1 abstained" in capsys.readouterr().out
    # A rerun resumes: nothing is graded again, the same file comes out.
    before = out.read_bytes()
    assert _build(prompts, samples, out) == 0
    assert (
        out.read_bytes() == before
        and json.loads((tmp_path / "sft.jsonl.stats.json").read_text())["resumed"] == 3
    )


def test_the_threshold_turns_cut_answers_into_abstentions(tmp_path):
    problems = generate_problems(3, [1], seed=3)
    prompts, samples, _ = _files(tmp_path, _answers(problems, [None, 1, 0]))
    assert _build(prompts, samples, tmp_path / "sft.jsonl", threshold=0.9) == 0
    rows = read_records(tmp_path / "sft.jsonl", HaltExample)
    assert [r.abstained for r in rows] == [False, True, True]


def test_answers_cut_off_by_the_token_budget_end_with_the_marker(tmp_path):
    problems = generate_problems(1, [1], seed=3)
    prompts, samples, _ = _files(tmp_path, _answers(problems, [None]), finish="length")
    assert _build(prompts, samples, tmp_path / "sft.jsonl") == 0
    (row,) = read_records(tmp_path / "sft.jsonl", HaltExample)
    assert (
        row.truncated
        and row.completion.endswith("Unsure from here.")
        and "final answer" not in row.completion
    )


def _bad_problem_file(tmp_path: Path, broken: dict) -> Path:
    good = generate_problems(2, [1], seed=1)
    path = tmp_path / "problems.jsonl"
    rows = [json.dumps(good[0].model_dump()), json.dumps({**good[1].model_dump(), "id": "", **broken})]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ({"gold": None}, "problems.jsonl:2: no ground truth: the problem has no 'gold' answer"),
        ({"solution_steps": []}, "problems.jsonl:2: no ground truth: 'solution_steps'"),
        (
            {"solution_steps": ["3 * 4 = 12", "12 plus 1 = 13"]},
            "problems.jsonl:2: solution step 2 '12 plus 1 = 13' is not parseable",
        ),
    ],
)
def test_bad_problems_stop_with_file_and_line_and_write_nothing(tmp_path, capsys, broken, message):
    prompts = _bad_problem_file(tmp_path, broken)
    out = tmp_path / "sft.jsonl"
    code = main(["halt", "build", "--prompts", str(prompts), "--threshold", "0.5", "--out", str(out)])
    assert code == 2 and message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["problems.jsonl"]


def test_a_sample_of_an_unknown_problem_is_refused_before_anything_is_written(tmp_path, capsys):
    problems = generate_problems(2, [1], seed=3)
    prompts, samples, _ = _files(tmp_path, _answers(problems, [None, None]))
    lines = samples.read_text().splitlines()
    samples.write_text(lines[0] + "\n" + lines[1].replace(problems[1].id, "nope") + "\n")
    assert _build(prompts, samples, tmp_path / "sft.jsonl") == 2
    assert "samples.jsonl:2: sample of prompt_id 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "sft.jsonl").exists() and not (tmp_path / "sft.jsonl.partial").exists()


def test_a_threshold_outside_zero_one_is_bad_input(tmp_path, capsys):
    prompts, samples, _ = _files(tmp_path, ["1 + 1 = 2."])
    assert _build(prompts, samples, tmp_path / "sft.jsonl", threshold=1.5) == 2
    assert "--threshold must be in [0, 1]" in capsys.readouterr().err


def test_a_grader_failure_on_an_item_is_counted_and_nothing_is_written_for_it(tmp_path, capsys):
    problems = [Prompt.model_validate({"prompt": "Tell me about Ada.", "gold": "Ada Lovelace, 1815.",
                                       "facts": ["1815"]}),
                Prompt.model_validate({"prompt": "Tell me about Alan.", "gold": "Alan Turing, 1912."})]  # fmt: skip
    prompts, samples = tmp_path / "problems.jsonl", tmp_path / "samples.jsonl"
    write_records(prompts, problems)
    params = {"max_new_tokens": 256, "temperature": 0.7, "top_p": 1.0, "top_k": 0, "stop": [], "seed": 0}
    write_records(samples, [Sample(prompt_id=p.id, prompt=p.prompt, completion="Born in 1815. Liked maths.",
                                   model="embedded", seed=0, sampling=params) for p in problems])  # fmt: skip
    out = tmp_path / "sft.jsonl"
    code = main(["halt", "build", "--prompts", str(prompts), "--samples", str(samples), "--threshold", "0",
                 "--domain", "text", "--grader", "facts", "--out", str(out)])  # fmt: skip
    assert code == 0
    (row,) = read_records(out, HaltExample)
    assert row.completion == "Born in 1815." and row.ordered is False
    assert json.loads((tmp_path / "sft.jsonl.stats.json").read_text())["grader_failed"] == 1
    assert "grader failed on 1 samples" in capsys.readouterr().out
