"""`posttrain eval rubric`: input validation with file:line, correlations against hand-computed values, resumable
results, metrics consistent with the results file, and the CLI end to end on the embedded model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from posttrain.cli import main as cli_main
from posttrain.errors import InputError
from posttrain.evals.rubric import (
    METRICS_FILE,
    RESULTS_FILE,
    average_ranks,
    evaluate_rubric,
    pearson,
    read_rubric_rows,
    spearman,
)
from posttrain.judges.rubric import to_100
from tests.judges.test_rubric import ScriptedBackend, evaluated, evaluation

DATA = Path(__file__).parent / "data" / "rubric_small.jsonl"


# ---------------------------------------------------------------------------------------------- statistics


def test_pearson_and_spearman_against_hand_computed_values():
    x, y = [1, 2, 3, 4, 5], [2, 4, 5, 4, 5]
    # mean x 3, mean y 4; Σdxdy = 4+0+0+0+2 = 6, Σdx² = 10, Σdy² = 4+0+1+0+1 = 6
    assert pearson(x, y) == pytest.approx(6 / math.sqrt(60))
    # ranks of y with ties averaged: 2 -> 1, the two 4s -> 2.5, the two 5s -> 4.5
    assert average_ranks(y) == [1, 2.5, 4.5, 2.5, 4.5]
    # Σdxdy = 4+0.5+0-0.5+3 = 7, Σdx² = 10, Σdy² = 4+0.25+2.25+0.25+2.25 = 9
    assert spearman(x, y) == pytest.approx(7 / math.sqrt(90))
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(1.0)  # monotone, not linear
    assert pearson([1, 2, 3, 4], [1, 4, 9, 16]) < 1


def test_ranks_with_ties_and_undefined_correlations():
    assert average_ranks([10, 20, 20, 30]) == [1, 2.5, 2.5, 4]
    assert average_ranks([3, 1, 2]) == [3, 1, 2]
    assert average_ranks([5, 5, 5]) == [2, 2, 2]
    assert average_ranks([]) == []
    assert pearson([1, 2, 3], [4, 4, 4]) is None  # a constant side
    assert spearman([1], [2]) is None and pearson([], []) is None
    with pytest.raises(ValueError, match="2 x values but 1 y values"):
        pearson([1, 2], [1])


def test_correlations_match_scipy_when_it_is_installed():
    stats = pytest.importorskip("scipy.stats")
    x = [1, 2, 2, 3, 5, 4, 4, 1, 3.5, 5]
    y = [1.5, 2, 3, 3, 4.5, 4, 3, 1, 3, 5]
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0])
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0])


# ------------------------------------------------------------------------------------------------- input


def test_the_shipped_example_reads():
    rows = read_rubric_rows(DATA)
    assert len(rows) == 16 and len({r.prompt.text for r in rows}) == 8
    assert all(r.human_ratings for r in rows)
    bees = next(r for r in rows if r.id == "bees-good")
    assert bees.prompt.model_extra["attached"].startswith("Honeybees communicate")
    assert bees.prompt.model_extra["references"][0]["ratings"] == [2, 1]
    assert [r.id for r in read_rubric_rows(DATA, limit=3)] == ["boiling-good", "boiling-bad", "sum-good"]


BAD_ROWS = [
    ('["prompt", "response"]', "expected a JSON object, got list"),
    ('{"prompt": "q"}', "missing field 'response'"),
    ('{"prompt": "q", "response": 3}', "field 'response': expected a string, got int"),
    ('{"prompt": 5, "response": "r"}', "field 'prompt'"),
    ('{"prompt": [], "response": "r"}', "field 'prompt': no messages"),
    ('{"prompt": "q", "response": "r", "references": [{"response": "x", "ratings": [4, 7]}]}',
     r"field 'references'\[0\]\.ratings\[1\]: rating 7 is outside 1-5"),
    ('{"prompt": "q", "response": "r", "human_ratings": ["high"]}',
     r"field 'human_ratings'\[0\]: expected a number from 1 to 5, got 'high'"),
    ('{"prompt": "q", "response": "r", "human_ratings": [0]}', "rating 0 is outside 1-5"),
    ('{"prompt": "q", "response": "r", "attached": ["a"]}', "field 'attached': expected a string, got list"),
    ('{"prompt": "q", "response": "r", "reference": []}', "unknown field 'reference'"),
    ('{"prompt": "q", "response": "r"', "malformed JSON"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "message"), BAD_ROWS)
def test_bad_input_names_the_file_and_line(tmp_path, line, message):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"prompt": "fine", "response": "fine"}\n\n' + line + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=message) as err:
        read_rubric_rows(path)
    assert str(err.value).startswith(f"{path}:3: ")


def test_duplicate_rows_are_bad_input(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"prompt": "q", "response": "r"}\n{"prompt": "q", "response": "r"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=rf"{path}:2: duplicate row: the same prompt, response and references as line 1"):
        read_rubric_rows(path)
    path.write_text('{"id": "a", "prompt": "q", "response": "r"}\n{"id": "a", "prompt": "q2", "response": "r"}\n')
    with pytest.raises(InputError, match=rf"{path}:2: duplicate row: the same id 'a' as line 1"):
        read_rubric_rows(path)


# ------------------------------------------------------------------------------------------- evaluation

# good responses get 4 or 5, bad ones 1 or 2, one row gets an answer with no score
SCRIPT = {"boiling-good": "Score: 5/5", "boiling-bad": "Score: 1/5", "sum-good": "Score: 4/5", "sum-bad": "Score: 2/5",
          "bees-good": "Score: 4.5/5", "bees-bad": "Score: 2/5", "sleep-good": "Score: 4/5", "sleep-bad": "Score: 1/5",
          "spanish-good": "Score: 5/5", "spanish-bad": "Score: 2/5", "train-good": "Score: 5/5", "train-bad": "Score: 1/5",
          "prime-good": "Score: 4/5", "prime-bad": "Score: 3/5", "bleach-good": "Score: 5/5", "bleach-bad": "I refuse"}  # fmt: skip


def scripted() -> ScriptedBackend:
    by_response = {row.response.strip(): SCRIPT[row.id] for row in read_rubric_rows(DATA)}
    return ScriptedBackend(lambda user: evaluation(by_response[evaluated(user)]))


def read_results(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / RESULTS_FILE).read_text(encoding="utf-8").splitlines()]


def check_consistent(out: Path, rows: int) -> dict:
    """metrics.json agrees with rubric_results.jsonl, whatever the judge said."""
    results = read_results(out)
    metrics = json.loads((out / METRICS_FILE).read_text())
    scores = [r["score"] for r in results]
    scored = [s for s in scores if s is not None]
    assert len(results) == metrics["rows"] == rows and len({r["id"] for r in results}) == rows
    assert metrics["scored"] == len(scored) and metrics["failed"] == rows - len(scored)
    for r in results:
        assert (r["value"] == -1) == (r["score"] is None)
        assert r["score_100"] == (None if r["score"] is None else to_100(r["score"]))
        assert r["output"] is not None and r["attempts"] >= 0
    if scored:
        assert metrics["mean_score"] == pytest.approx(sum(scored) / len(scored))
        assert metrics["mean_score_100"] == pytest.approx(to_100(metrics["mean_score"]))
        assert sum(metrics["score_counts"].values()) == len(scored)
    else:
        assert metrics["mean_score"] is None and metrics["mean_score_100"] is None
    human = metrics["human"]
    pairs = [(r["score"], r["human_mean"]) for r in results if r["score"] is not None and r["human_mean"] is not None]
    if human is not None:
        assert human["rows"] == len(pairs)
        assert human["pearson"] == (pearson(*zip(*pairs, strict=True)) if len(pairs) > 1 else None)
        assert human["spearman"] == (spearman(*zip(*pairs, strict=True)) if len(pairs) > 1 else None)
    return metrics


def test_metrics_and_results(tmp_path):
    result = evaluate_rubric(DATA, tmp_path, scripted(), progress=False)
    metrics = check_consistent(tmp_path, 16)
    assert result.metrics == metrics and (result.new, result.resumed) == (16, 0)
    assert metrics["failed"] == 1 and metrics["scored"] == 15
    assert metrics["score_counts"] == {"1": 3, "2": 3, "3": 1, "4": 3, "4.5": 1, "5": 4}
    assert metrics["mean_score"] == pytest.approx(48.5 / 15)
    human = metrics["human"]
    assert human["rows"] == 15 and human["pearson"] > 0.8 and human["spearman"] > 0.8
    rows = {r["id"]: r for r in read_results(tmp_path)}
    assert rows["bleach-bad"]["value"] == -1 and rows["bleach-bad"]["attempts"] == 2
    assert rows["bleach-bad"]["problem"] == "no 'Score: X/5' line" and rows["bleach-bad"]["output"].endswith("I refuse")
    good = rows["bees-good"]
    assert (good["score"], good["score_100"], good["human_mean"], good["line"]) == (4.5, 87.625, 4.5, 5)
    assert good["rationale"] == "Accurate and complete; a minor style issue."
    assert good["judge"]["model"] == "scripted" and good["judge"]["retries"] == 1
    assert not (tmp_path / (RESULTS_FILE + ".partial")).exists()


def test_a_partial_results_file_is_continued_not_redone(tmp_path):
    first = scripted()
    evaluate_rubric(DATA, tmp_path, first, limit=5, batch_size=2, progress=False)
    assert sum(len(prompts) for prompts, _ in first.calls) == 5
    before = read_results(tmp_path)

    second = scripted()
    result = evaluate_rubric(DATA, tmp_path, second, batch_size=4, progress=False)
    judged = [evaluated(p[-1]["content"]) for prompts, _ in second.calls for p in prompts]
    assert len(judged) == 12 and (result.new, result.resumed) == (11, 5)  # 11 rows, plus the retry of bleach-bad
    assert read_results(tmp_path)[:5] == before
    check_consistent(tmp_path, 16)

    third = scripted()  # nothing left to do: the judge model is not even asked
    assert evaluate_rubric(DATA, tmp_path, third, progress=False).new == 0 and third.calls == []


class Interrupt(BaseException):
    """Stands for Ctrl-C / a killed job in the middle of judging."""


def test_an_interrupted_run_resumes_from_its_partial_file(tmp_path):
    script = scripted()
    calls = {"n": 0}

    def flaky(user: str) -> str:
        calls["n"] += 1
        if calls["n"] > 4:
            raise Interrupt
        return script.answer(user)

    with pytest.raises(Interrupt):
        evaluate_rubric(DATA, tmp_path, ScriptedBackend(flaky), batch_size=4, progress=False)
    partial = tmp_path / (RESULTS_FILE + ".partial")
    assert len(partial.read_text().splitlines()) == 4 and not (tmp_path / RESULTS_FILE).exists()

    rest = scripted()
    assert evaluate_rubric(DATA, tmp_path, rest, batch_size=4, progress=False).new == 12
    assert not partial.exists()
    check_consistent(tmp_path, 16)


def test_results_of_other_judge_settings_are_not_mixed_in(tmp_path):
    evaluate_rubric(DATA, tmp_path, scripted(), limit=2, progress=False)
    with pytest.raises(InputError, match=rf"{tmp_path / RESULTS_FILE}:1: holds results of a judge with other settings"):
        evaluate_rubric(DATA, tmp_path, scripted(), max_new_tokens=99, progress=False)


def test_a_row_the_judge_cannot_run_on_is_failed_now_and_tried_again_later(tmp_path):
    script = scripted()

    def broken_on_sleep(user: str) -> str:
        if "sleep" in user:
            raise RuntimeError("prompt too long for the judge")
        return script.answer(user)

    result = evaluate_rubric(DATA, tmp_path, ScriptedBackend(broken_on_sleep), progress=False)
    assert (result.new, result.errors) == (14, 2)
    metrics = result.metrics
    assert metrics["errors"] == 2 and metrics["failed"] == 3 and metrics["scored"] == 13
    assert metrics["first_error"] == "judge failed: RuntimeError: prompt too long for the judge"
    assert {r["id"] for r in read_results(tmp_path)} == {row.id for row in read_rubric_rows(DATA)} - {"sleep-good", "sleep-bad"}

    again = evaluate_rubric(DATA, tmp_path, scripted(), progress=False)
    assert (again.new, again.resumed, again.errors) == (2, 14, 0)
    assert check_consistent(tmp_path, 16)["errors"] == 0


def test_a_judge_that_runs_on_nothing_stops_the_run_and_leaves_no_file(tmp_path):
    def down(user: str) -> str:
        raise InputError("http://localhost:1/v1/chat/completions: connection refused")

    out = tmp_path / "out"
    with pytest.raises(InputError, match="could not run on any row of the first batch: judge failed: InputError: http"):
        evaluate_rubric(DATA, out, ScriptedBackend(down), progress=False)
    assert not out.exists()


def test_rows_without_human_ratings_have_no_correlation(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"prompt": "q", "response": "Paris is the capital."}\n', encoding="utf-8")
    backend = ScriptedBackend(lambda user: "Score: 4/5")
    metrics = evaluate_rubric(path, tmp_path / "out", backend, progress=False).metrics
    assert metrics["human"] is None and metrics["mean_score"] == 4 and metrics["mean_score_100"] == 75.25


# --------------------------------------------------------------------------------------------------- CLI


def test_cli_end_to_end_on_the_embedded_model(tmp_path, capsys):
    """Two rows, a few new tokens: the 135M judge rarely writes a valid score, so −1 rows are fine; the files
    must agree with each other whatever it wrote."""
    # the two shortest rows of the example (the judge's prompt is still ~340 tokens), no retry: a few seconds
    data = tmp_path / "rows.jsonl"
    lines = [line for line in DATA.read_text(encoding="utf-8").splitlines() if '"id": "spanish-' in line]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "rubric"
    args = ["eval", "rubric", "--data", str(data), "--judge-model", "embedded", "--out", str(out),
            "--max-new-tokens", "4", "--retries", "0", "--limit", "2"]  # fmt: skip
    assert cli_main.main(args) == 0
    metrics = check_consistent(out, 2)
    assert metrics["judge"]["model"] == "embedded" and metrics["judge"]["max_new_tokens"] == 4
    printed = capsys.readouterr().out
    assert "Rubric judge (embedded): 2 rows" in printed and "failed (-1: no valid score)" in printed
    assert "2 new, 0 resumed" in printed

    before = (out / RESULTS_FILE).read_text()
    assert cli_main.main(args) == 0  # resumed: nothing to judge, the model is not loaded
    assert (out / RESULTS_FILE).read_text() == before
    assert "0 new, 2 resumed" in capsys.readouterr().out


def test_cli_bad_input_exits_2_with_file_and_line(tmp_path, capsys):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"prompt": "q", "response": "r"}\n{"prompt": "q", "respons": "r"}\n', encoding="utf-8")
    out = tmp_path / "out"
    assert cli_main.main(["eval", "rubric", "--data", str(data), "--out", str(out)]) == 2
    assert f"{data}:2: unknown field 'respons'" in capsys.readouterr().err
    assert not out.exists()
