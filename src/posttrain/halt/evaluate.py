"""`posttrain eval halt`: how much of what a model says is right, and how much it says.

Each response is split and graded as `halt build` does (text after the abstention marker is not graded).
Per response: fragments, correct fragments, correctness = correct / fragments, and completeness = correct /
the fragments of a complete answer where the domain knows that size (math: solution steps + the final
answer; code: tested functions; text: listed facts). Over the responses a grader could judge:

- correctness: mean per-response correctness over responses that state at least one fragment;
- abstention rate: responses with no fragment at all; partial abstention rate: the marker after >= 1
  fragment;
- completeness: mean per-response completeness (absolute, where the size is known);
- relative completeness: correct fragments per response, divided by a reference's on the same prompts (the
  standard-SFT model's `halt_results.jsonl`, `--reference`): the paper's "completeness relative to standard
  SFT";
- F1: harmonic mean of correctness and relative completeness (absolute completeness without a reference).

A grader failure on a response is counted (`grader_failed`) and leaves it out of every mean; it never stops
the run.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from posttrain.atomic import atomic_write_text
from posttrain.errors import InputError
from posttrain.halt.build import grade_answer
from posttrain.halt.domains import Domain
from posttrain.halt.fragments import before_marker
from posttrain.halt.graders import FragmentGrader
from posttrain.records import Prompt, Sample

RESULTS = "halt_results.jsonl"
METRICS = "metrics.json"


def score_responses(
    problems: list[Prompt], samples: list[Sample], domain: Domain, grader: FragmentGrader
) -> list[dict[str, Any]]:
    by_id = {p.id: p for p in problems}
    rows = []
    for sample in samples:
        problem = by_id[sample.prompt_id]
        graded = grade_answer(domain, grader, problem, sample.completion)
        counts = Counter(graded.verdicts)
        n, correct = len(graded.verdicts), counts[1]
        size = domain.full_size(problem)
        rows.append({
            "prompt_id": problem.id, "sample_id": sample.id, "response": sample.completion,
            "failed": graded.failed, "fragments": n, "correct": correct, "unverifiable": counts[-1],
            "marker": before_marker(sample.completion)[1], "abstained": n == 0,
            "correctness": correct / n if n else None,
            "completeness": min(1.0, correct / size) if size else None,
            "truncated": sample.finish_reason == "length",
            "graded": [{"text": f.text, "verdict": v, "why": w}
                       for f, v, w in zip(graded.fragments, graded.verdicts, graded.why, strict=True)],
        })  # fmt: skip
    return rows


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def correct_per_prompt(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mean correct fragments per response, per prompt (responses the grader failed on left out)."""
    per: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        if not row["failed"]:
            per[row["prompt_id"]].append(int(row["correct"]))
    return {pid: sum(v) / len(v) for pid, v in per.items()}


def summarize(rows: list[dict[str, Any]], reference: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    ok = [r for r in rows if not r["failed"]]
    failures = [r for r in rows if r["failed"]]
    stated = [r for r in ok if r["fragments"]]
    sizes_known = bool(ok) and all(r["completeness"] is not None for r in ok)
    metrics: dict[str, Any] = {
        "responses": len(rows), "graded": len(ok), "grader_failed": len(failures),
        "first_failure": failures[0]["failed"] if failures else "",
        "correctness": _mean([r["correctness"] for r in stated]),
        "abstention_rate": _mean([float(r["abstained"]) for r in ok]),
        "partial_abstention_rate": _mean([float(r["marker"] and r["fragments"] > 0) for r in ok]),
        "fragments_per_response": _mean([float(r["fragments"]) for r in ok]),
        "correct_per_response": _mean([float(r["correct"]) for r in ok]),
        "unverifiable_fragments": sum(int(r["unverifiable"]) for r in ok),
        "truncated": sum(bool(r["truncated"]) for r in rows),
        "completeness": _mean([r["completeness"] for r in ok]) if sizes_known else None,
        "relative_completeness": None, "reference_prompts": 0,
    }  # fmt: skip
    if reference is not None:
        mine, theirs = correct_per_prompt(rows), correct_per_prompt(reference)
        common = sorted(set(mine) & set(theirs))
        denominator = sum(theirs[p] for p in common)
        metrics["reference_prompts"] = len(common)
        if common and denominator > 0:
            metrics["relative_completeness"] = round(sum(mine[p] for p in common) / denominator, 4)
    completeness = metrics["relative_completeness"]
    metrics["f1_completeness"] = "relative" if completeness is not None else "absolute"
    if completeness is None:
        completeness = metrics["completeness"]
    correctness = metrics["correctness"]
    if correctness is None or completeness is None or correctness + completeness == 0:
        metrics["f1"] = None
    else:
        metrics["f1"] = round(2 * correctness * completeness / (correctness + completeness), 4)
    return metrics


def read_results(path: Path) -> list[dict[str, Any]]:
    """A `halt_results.jsonl` (or the directory holding one), as a reference."""
    from posttrain.records import iter_jsonl_rows

    path = path / RESULTS if path.is_dir() else path
    rows = []
    for line, row in iter_jsonl_rows(path):
        if not isinstance(row, dict) or not {"prompt_id", "correct", "failed"} <= set(row):
            raise InputError(f"not a row of {RESULTS} (needs prompt_id, correct, failed)", path, line)
        rows.append(row)
    return rows


def write_results(out_dir: Path, rows: list[dict[str, Any]], metrics: dict[str, Any]) -> tuple[Path, Path]:
    results, metrics_path = out_dir / RESULTS, out_dir / METRICS
    atomic_write_text(results, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    atomic_write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
    return results, metrics_path


def load_responses(path: Path, problems: list[Prompt]) -> list[Sample]:
    from posttrain.halt.build import read_samples

    return read_samples(path, {p.id: p for p in problems})


def check_sampling(n: int, temperature: float, names: tuple[str, str] = ("--n", "--temperature")) -> None:
    """Answers per problem and temperature of a model's evaluation: several answers only when sampling."""
    if n < 1 or temperature < 0 or (n > 1 and temperature == 0):
        raise InputError(
            f"{names[0]} must be at least 1 and {names[1]} at least 0, with {names[0]} > 1 only when sampling "
            f"({names[1]} > 0); got {n} and {temperature}"
        )


def evaluate_halt(
    problems: list[Prompt],
    domain: Domain,
    grader: FragmentGrader,
    out_dir: Path,
    *,
    responses: Path | None = None,
    model: str | None = None,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    threads: int | None = None,
    reference: list[dict[str, Any]] | None = None,
    temperature: float = 0.0,
    n: int = 1,
    seed: int = 0,
) -> dict[str, Any]:
    """Score a responses file, or `n` responses per problem of `model` (greedy at temperature 0; written to
    `<out_dir>/responses.jsonl`, resumable); writes `halt_results.jsonl` and `metrics.json` to `out_dir`. Returns
    the metrics.

    Sampled evaluation (temperature > 0, n > 1) matters for HALT: a model trained to abstain on part of its
    problems puts that part's probability on one string (the marker), while its answers spread theirs over many
    openings, so greedy decoding can pick the marker on every problem although the model answers most of them
    when sampled."""
    from posttrain.halt.sampling import sample_answers
    from posttrain.models.backend import SamplingParams

    if (responses is None) == (model is None):
        raise InputError(
            "give exactly one of --responses (a file to score) or --model (generate, then score)"
        )
    if model is not None:
        responses = out_dir / "responses.jsonl"
        params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        sample_answers(
            problems, responses, model, params, n=n, batch_size=batch_size, threads=threads, dtype="float32"
        )
    assert responses is not None
    rows = score_responses(problems, load_responses(responses, problems), domain, grader)
    metrics = summarize(rows, reference)
    metrics["model"] = model or str(responses)
    if model is not None:
        metrics["sampling"] = {"temperature": temperature, "n": n, "seed": seed}
    write_results(out_dir, rows, metrics)
    return metrics
