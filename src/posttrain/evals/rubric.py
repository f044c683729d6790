"""`posttrain eval rubric`: rate responses with the CrossEval-style rubric judge (`posttrain.judges.rubric`) and,
when rows carry human ratings, measure how well the judge agrees with them.

Input: a JSONL file, one row per response to rate:

    {"prompt": "…", "response": "…",                    # required; prompt may be chat messages
     "references": [{"response": "…", "ratings": [4, 5], "explanations": ["…", "…"]}],   # optional
     "human_ratings": [2, 3],                          # optional: 1-5 ratings of THIS response (or one number)
     "attached": "…",                                  # optional: the [Attached] text (long-context tasks)
     "id": "…"}                                        # optional: the row's id (default: a hash of its content)

Output in `<out>/`:

- `rubric_results.jsonl`: one row per input row — `id`, `line`, `prompt`, `response`, `score` (1–5 or null),
  `score_100` (CrossEval's `(s−1)·24.75+1`), `value` (1, or −1 when the judge gave no valid score), `attempts`,
  `problem`, `rationale`, `output` (the judge's raw answer), `human_ratings`, `human_mean`, `judge` (the settings).
  Written to `.partial` and renamed at the end; a rerun skips the ids already there (a judged row, −1 included, is
  not judged again) and refuses to mix in rows judged with other settings. A row the judge could not run on at all
  (an exception: a prompt longer than its context, a server error) is not written, so the next run tries it again;
  when every row of the first batch fails so, the run stops with that error (exit code 2).
- `metrics.json`: `rows`, `scored`, `failed` (−1 rows), `mean_score` (1–5, over scored rows), `mean_score_100`,
  `score_counts`, `errors` (rows the judge could not run on, counted in `failed`) with `first_error`, and `human`
  (rows with both a judge score and human ratings: their count, mean human rating, mean judge score, Pearson and
  Spearman correlation between the judge's score and the mean human rating, as CrossEval's
  `correlation/calculate_correlations.py` computes them; null when undefined).

Metrics cover the rows of the input (its first `limit`); rows of other inputs left in the results file are ignored.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from posttrain.atomic import atomic_write_text
from posttrain.errors import InputError
from posttrain.judges.base import Item
from posttrain.judges.rubric import (
    SYSTEM_PROMPT,
    RubricJudge,
    RubricResult,
    fmt,
    parse_references,
    rationale,
    to_100,
)
from posttrain.records import (
    Prompt,
    Record,
    RecordWriter,
    _describe_validation_error,
    content_id,
    iter_jsonl_rows,
)

RESULTS_FILE = "rubric_results.jsonl"
METRICS_FILE = "metrics.json"
FIELDS = ("id", "prompt", "response", "references", "human_ratings", "attached")


# ------------------------------------------------------------------------------------------- statistics


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson's r; None when it is undefined (fewer than 2 pairs, or a constant side)."""
    if len(x) != len(y):
        raise ValueError(f"{len(x)} x values but {len(y)} y values")
    if len(x) < 2:
        return None
    mx, my = sum(x) / len(x), sum(y) / len(y)
    dx, dy = [v - mx for v in x], [v - my for v in y]
    sxx, syy = sum(d * d for d in dx), sum(d * d for d in dy)
    if sxx == 0 or syy == 0:
        return None
    r = sum(a * b for a, b in zip(dx, dy, strict=True)) / math.sqrt(sxx * syy)
    return max(-1.0, min(1.0, r))


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks; tied values share the mean of the ranks they span ([10, 20, 20, 30] → [1, 2.5, 2.5, 4])."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho: Pearson's r of the average ranks (the definition scipy and pandas use with ties)."""
    return pearson(average_ranks(x), average_ranks(y))


# ----------------------------------------------------------------------------------------------- input


@dataclass(frozen=True)
class RubricRow:
    line: int
    id: str
    prompt: Prompt  # with `references` / `attached` as extra fields, as the judge reads them
    response: str
    human_ratings: tuple[float, ...]

    @property
    def human_mean(self) -> float | None:
        return mean(self.human_ratings)


def parse_rubric_row(row: Any, path: str | Path, line: int) -> RubricRow:
    if not isinstance(row, dict):
        raise InputError(f"expected a JSON object, got {type(row).__name__}", path, line)
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        raise InputError(f"unknown field '{unknown[0]}'; a row has {', '.join(FIELDS)}", path, line)
    for name in ("prompt", "response"):
        if name not in row:
            raise InputError(f"missing field '{name}'", path, line)
    response = row["response"]
    if not isinstance(response, str):
        raise InputError(f"field 'response': expected a string, got {type(response).__name__}", path, line)
    try:
        references = parse_references(row.get("references"), "field 'references'")
        human = row.get("human_ratings")
        human = [] if human is None else human if isinstance(human, list) else [human]
        ratings = tuple(_human_rating(h, k) for k, h in enumerate(human))
    except InputError as err:
        raise InputError(err.what, path, line) from None
    attached = row.get("attached")
    if attached is not None and not isinstance(attached, str):
        raise InputError(f"field 'attached': expected a string, got {type(attached).__name__}", path, line)
    try:
        prompt = Prompt.model_validate(
            {"prompt": row["prompt"], "references": row.get("references"), "attached": attached}
        )
    except ValidationError as err:
        raise InputError(_describe_validation_error(err), path, line) from None
    if isinstance(row["prompt"], list) and not row["prompt"]:
        raise InputError("field 'prompt': no messages", path, line)
    given = row.get("id")
    if given is not None and (
        not isinstance(given, str | int) or isinstance(given, bool) or str(given) == ""
    ):
        raise InputError(f"field 'id': expected a non-empty string, got {given!r}", path, line)
    row_id = (
        str(given)
        if given is not None
        else content_id(row["prompt"], response, [dataclasses.asdict(ref) for ref in references], attached)
    )
    return RubricRow(line, row_id, prompt, response, ratings)


def _human_rating(value: Any, k: int) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"field 'human_ratings'[{k}]: expected a number from 1 to 5, got {value!r}")
    if not 1 <= value <= 5:
        raise InputError(f"field 'human_ratings'[{k}]: rating {fmt(value)} is outside 1-5")
    return float(value)


def read_rubric_rows(path: str | Path, limit: int | None = None) -> list[RubricRow]:
    """Every row validated (`file:line: what is wrong`); ids must be unique."""
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    rows: list[RubricRow] = []
    seen: dict[str, int] = {}
    for line, raw in iter_jsonl_rows(path):
        row = parse_rubric_row(raw, path, line)
        if row.id in seen:
            what = (
                "the same prompt, response and references" if "id" not in raw else f"the same id {row.id!r}"
            )
            raise InputError(f"duplicate row: {what} as line {seen[row.id]}", path, line)
        seen[row.id] = line
        rows.append(row)
        if limit is not None and len(rows) == limit:
            break
    return rows


# -------------------------------------------------------------------------------------------- results


class RubricRecord(Record):
    """One judged row of `rubric_results.jsonl`."""

    line: int  # of the input file
    prompt: Any
    response: str
    score: float | None  # 1-5, a whole or half point; None: no valid score
    score_100: float | None  # CrossEval's scale, (score - 1) * 24.75 + 1
    value: int  # 1 scored, -1 the judge gave no valid score
    attempts: int
    problem: str = ""
    rationale: str = ""
    output: str = ""  # the judge's raw answer (its last attempt)
    human_ratings: list[float] = Field(default_factory=list)
    human_mean: float | None = None
    judge: dict[str, Any] = Field(default_factory=dict)


def settings(
    model: Any, max_new_tokens: int, retries: int, retry_temperature: float, system_prompt: str | None
) -> dict[str, Any]:
    """What a judged row depends on besides its input: rows judged with other settings are not resumed into."""
    name = model if isinstance(model, str) else str(getattr(model, "name", type(model).__name__))
    system = SYSTEM_PROMPT if system_prompt is None else system_prompt
    return {"model": name, "max_new_tokens": max_new_tokens, "retries": retries,
            "retry_temperature": retry_temperature, "system_prompt": content_id(system)}  # fmt: skip


def to_record(row: RubricRow, result: RubricResult, judge_settings: dict[str, Any]) -> RubricRecord:
    return RubricRecord(
        id=row.id, line=row.line, prompt=row.prompt.model_dump(mode="json")["prompt"], response=row.response, score=result.score,
        score_100=None if result.score is None else to_100(result.score), value=1 if result.score is not None else -1,
        attempts=result.attempts, problem=result.problem, rationale="" if result.score is None else rationale(result.output),
        output=result.output, human_ratings=list(row.human_ratings), human_mean=row.human_mean, judge=judge_settings,
    )  # fmt: skip


def written(path: Path) -> list[tuple[Path, int, dict[str, Any]]]:
    """(file, line, row) of the results a previous run left: `<path>.partial`, else the finished file."""
    partial = path.with_name(path.name + ".partial")
    source = partial if partial.exists() else path
    if not source.exists():
        return []
    out = []
    for line, raw in enumerate(source.read_bytes().splitlines(), start=1):
        try:
            row = json.loads(raw)
        except ValueError:
            continue  # a torn last line: the writer drops it
        if isinstance(row, dict) and row.get("id"):
            out.append((source, line, row))
    return out


def check_resumable(path: Path, judge_settings: dict[str, Any]) -> None:
    for source, line, row in written(path):
        if row.get("judge") != judge_settings:
            raise InputError(
                f"holds results of a judge with other settings ({row.get('judge')}, now {judge_settings}): "
                "remove it or choose another --out",
                source,
                line,
            )


@dataclass
class RubricEval:
    metrics: dict[str, Any]
    results: Path
    metrics_path: Path
    new: int  # rows judged by this run
    resumed: int  # rows already judged by an earlier run
    errors: int = 0  # rows the judge could not run on (not written: the next run tries them again)


def evaluate_rubric(
    data: str | Path,
    out: str | Path,
    model: Any = "embedded",
    *,
    max_new_tokens: int = 1024,
    retries: int = 1,
    retry_temperature: float = 0.0,
    batch_size: int = 8,
    system_prompt: str | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> RubricEval:
    """Judge every row of `data` not judged yet into `<out>/rubric_results.jsonl`, then write `<out>/metrics.json`.
    `model`: a backend spec (embedded, a directory, `openai:<url>#<model>`) or a backend. Every input check runs
    before the judge model loads and before the results file is opened."""
    from posttrain.progress import generation_progress

    rows = read_rubric_rows(data, limit)
    out = Path(out)
    results_path = out / RESULTS_FILE
    judge_settings = settings(model, max_new_tokens, retries, retry_temperature, system_prompt)
    check_resumable(results_path, judge_settings)
    done = {row["id"] for _, _, row in written(results_path)}
    todo = [row for row in rows if row.id not in done]
    judge = None
    if todo:  # the model loads only when there is something to judge
        judge = RubricJudge(model, max_new_tokens=max_new_tokens, retries=retries, retry_temperature=retry_temperature,
                            batch_size=batch_size, system_prompt=system_prompt)  # fmt: skip
    # id -> why the judge could not run on it: not written, so a rerun tries again
    errors: dict[str, str] = {}
    created = not out.exists()
    show = progress and judge is not None
    try:
        with (
            RecordWriter(results_path) as writer,
            (
                generation_progress("rubric judge", len(rows), len(rows) - len(todo))
                if show
                else nullcontext()
            ) as bar,
        ):
            for start in range(0, len(todo), batch_size):
                assert judge is not None
                chunk = todo[start : start + batch_size]
                results = judge.assess([Item(row.prompt, row.response) for row in chunk])
                if start == 0 and all(r.error for r in results):
                    # a judge that runs on nothing (server down, bad key or URL, prompts too long): stop here
                    raise InputError(
                        f"the judge could not run on any row of the first batch: {results[0].problem}"
                    )
                for row, result in zip(chunk, results, strict=True):
                    if result.error:
                        errors[row.id] = result.problem
                    else:
                        writer.write(to_record(row, result, judge_settings))
                if bar is not None:
                    bar.advance(len(chunk), sum(r.tokens for r in results))
    except InputError:
        partial = results_path.with_name(results_path.name + ".partial")
        if partial.exists() and partial.stat().st_size == 0:  # leave no empty file behind
            partial.unlink()
            if created and not any(out.iterdir()):
                out.rmdir()
        raise
    by_id = {row["id"]: row for _, _, row in written(results_path)}
    metrics = compute_metrics(rows, by_id, judge_settings, str(data), errors)
    metrics_path = out / METRICS_FILE
    atomic_write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
    return RubricEval(
        metrics, results_path, metrics_path, len(todo) - len(errors), len(rows) - len(todo), len(errors)
    )


def compute_metrics(
    rows: Sequence[RubricRow],
    results: dict[str, dict[str, Any]],
    judge_settings: dict[str, Any],
    data: str = "",
    errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    """metrics.json from the input rows and their judged results (by id). A row the judge could not run on
    (`errors`, id -> why) counts as failed."""
    errors = errors or {}
    missing = [row for row in rows if row.id not in results and row.id not in errors]
    if missing:
        raise InputError(f"row at line {missing[0].line} has no result", data or None)
    scores = [results[row.id].get("score") if row.id in results else None for row in rows]
    scored = [float(s) for s in scores if s is not None]
    average = mean(scored)
    counts: dict[str, int] = {}
    for value in sorted(scored):
        counts[fmt(value)] = counts.get(fmt(value), 0) + 1
    judge_side: list[float] = []
    human_side: list[float] = []
    for row, score in zip(rows, scores, strict=True):
        if score is not None and row.human_mean is not None:
            judge_side.append(float(score))
            human_side.append(row.human_mean)
    human = None
    if any(row.human_ratings for row in rows):
        human = {
            "rows": len(judge_side),
            "mean_human": mean(human_side),
            "mean_judge": mean(judge_side),
            "pearson": pearson(judge_side, human_side),
            "spearman": spearman(judge_side, human_side),
        }
    return {
        "data": data,
        "rows": len(rows),
        "scored": len(scored),
        "failed": len(rows) - len(scored),
        "mean_score": average,
        "mean_score_100": None if average is None else to_100(average),
        "score_counts": counts,
        "errors": len([row for row in rows if row.id in errors]),
        "first_error": next((errors[row.id] for row in rows if row.id in errors), None),
        "human": human,
        "judge": judge_settings,
    }


def metrics_table(metrics: dict[str, Any]) -> Any:
    """The metrics as a Rich table (what `posttrain eval rubric` prints)."""
    from rich.table import Table

    def number(value: Any, digits: int = 3) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    table = Table(title=f"Rubric judge ({metrics['judge']['model']}): {metrics['rows']} rows")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("scored", str(metrics["scored"]))
    table.add_row("failed (-1: no valid score)", str(metrics["failed"]))
    if metrics["errors"]:
        table.add_row("of which the judge could not run", f"{metrics['errors']} ({metrics['first_error']})")
    table.add_row("mean score (1-5)", number(metrics["mean_score"]))
    table.add_row("mean score (1-100)", number(metrics["mean_score_100"], 2))
    table.add_row("score counts", ", ".join(f"{k}: {v}" for k, v in metrics["score_counts"].items()) or "–")
    human = metrics["human"]
    if human is not None:
        table.add_row("rows with human ratings and a score", str(human["rows"]))
        table.add_row("mean human rating", number(human["mean_human"]))
        table.add_row("Pearson (judge vs human mean)", number(human["pearson"]))
        table.add_row("Spearman (judge vs human mean)", number(human["spearman"]))
    return table
