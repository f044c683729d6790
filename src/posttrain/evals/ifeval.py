"""IFEval evaluation: the four metrics (prompt/instruction x strict/loose), per-instruction pass rates and per-row
verdicts, computed with `posttrain.constraints` in reference (`ifeval`) mode unless told otherwise.

Responses are matched to inputs by prompt text, as google-research's `evaluation_main.py` does. Output files follow
the reference: `eval_results_strict.jsonl` / `eval_results_loose.jsonl` (one row per prompt with
`follow_instruction_list`), plus `metrics.json` with everything the table shows.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.atomic import atomic_write_text
from posttrain.constraints import check_strict_and_loose, get_constraint
from posttrain.errors import InputError

PARALLEL_MIN_ROWS = 2000  # below this, starting worker processes costs more than it saves


@dataclass
class RowVerdicts:
    key: Any
    prompt: str
    response: str
    instruction_id_list: list[str]
    strict: list[bool]
    loose: list[bool]


@dataclass
class IFEvalResult:
    prompt_strict: float
    prompt_loose: float
    instruction_strict: float
    instruction_loose: float
    per_instruction: dict[str, dict[str, float]]  # id -> {"n", "strict", "loose"}
    rows: list[RowVerdicts] = field(repr=False)
    mode: str = "ifeval"

    def metrics(self) -> dict[str, Any]:
        return {
            "prompt_level_strict_acc": self.prompt_strict,
            "prompt_level_loose_acc": self.prompt_loose,
            "inst_level_strict_acc": self.instruction_strict,
            "inst_level_loose_acc": self.instruction_loose,
            "num_prompts": len(self.rows),
            "num_instructions": sum(len(r.strict) for r in self.rows),
            "mode": self.mode,
            "per_instruction": self.per_instruction,
        }

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write metrics.json and the reference's two per-row files; returns the paths written."""
        out = Path(out_dir)
        paths = [out / "metrics.json", out / "eval_results_strict.jsonl", out / "eval_results_loose.jsonl"]
        atomic_write_text(paths[0], json.dumps(self.metrics(), indent=2) + "\n")
        for path, attr in ((paths[1], "strict"), (paths[2], "loose")):
            lines = []
            for row in self.rows:
                verdicts = getattr(row, attr)
                lines.append(json.dumps({
                    "instruction_id_list": row.instruction_id_list,
                    "prompt": row.prompt,
                    "response": row.response,
                    "follow_all_instructions": all(verdicts),
                    "follow_instruction_list": verdicts,
                }, ensure_ascii=False))  # fmt: skip
            atomic_write_text(path, "".join(line + "\n" for line in lines))
        return paths


def _field(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, Mapping) else getattr(row, name)


def _response_map(responses: Mapping[str, str] | Iterable[Any]) -> dict[str, str]:
    if isinstance(responses, Mapping):
        return dict(responses)
    # Later rows win for a repeated prompt, as in the reference's dict comprehension.
    return {_field(r, "prompt"): _field(r, "response") for r in responses}


def _judge_row(task: tuple[list[str], list[dict[str, Any]], str, str, bool]) -> tuple[list[bool], list[bool]]:
    ids, kwargs, response, mode, strip = task
    return check_strict_and_loose(response, ids, kwargs, mode=mode, strip_thinking=strip)


def evaluate_ifeval(
    rows: Sequence[Any],
    responses: Mapping[str, str] | Iterable[Any],
    *,
    mode: str = "ifeval",
    strip_thinking: bool = True,
    workers: int | None = None,
) -> IFEvalResult:
    """Score `responses` on IFEval-format `rows` (dicts or objects with `prompt`, `instruction_id_list`, `kwargs`,
    optionally `key`). `responses` maps prompt -> response, or is an iterable of {prompt, response}.

    `workers`: processes to use (default: all cores when there are >= PARALLEL_MIN_ROWS rows, else 1).
    All rows are validated (ids, kwargs, a response for every prompt) before anything is checked.
    """
    by_prompt = _response_map(responses)
    tasks = []
    for index, row in enumerate(rows):
        prompt, ids, kwargs = _field(row, "prompt"), _field(row, "instruction_id_list"), _field(row, "kwargs")
        if prompt not in by_prompt:
            raise InputError(f"row {index + 1}: no response for prompt {prompt[:120]!r}")
        if len(ids) != len(kwargs):
            raise InputError(f"row {index + 1}: {len(ids)} instruction ids but {len(kwargs)} kwargs dicts")
        for cid, kw in zip(ids, kwargs, strict=True):
            try:
                get_constraint(cid).validate(kw, mode)
            except InputError as err:
                raise InputError(f"row {index + 1}: {err.what}") from None
        response = by_prompt[prompt]
        if not isinstance(response, str):
            raise InputError(f"row {index + 1}: response for prompt {prompt[:60]!r} is not a string")
        tasks.append((list(ids), list(kwargs), response, mode, strip_thinking))

    if workers is None:
        workers = (os.cpu_count() or 1) if len(tasks) >= PARALLEL_MIN_ROWS else 1
    if workers > 1 and len(tasks) > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            judged = pool.map(_judge_row, tasks, chunksize=max(1, len(tasks) // (workers * 8)))
    else:
        judged = [_judge_row(task) for task in tasks]

    verdict_rows = [
        RowVerdicts(
            key=row.get("key") if isinstance(row, Mapping) else getattr(row, "key", None),
            prompt=_field(row, "prompt"),
            response=task[2],
            instruction_id_list=task[0],
            strict=strict,
            loose=loose,
        )
        for row, task, (strict, loose) in zip(rows, tasks, judged, strict=True)
    ]
    return summarize(verdict_rows, mode)


def summarize(rows: list[RowVerdicts], mode: str = "ifeval") -> IFEvalResult:
    """The four metrics and per-instruction rates from per-row verdicts."""

    def rate(values: list[bool]) -> float:
        return sum(values) / len(values) if values else 0.0

    per: dict[str, dict[str, list[bool]]] = {}
    for row in rows:
        for cid, s, lo in zip(row.instruction_id_list, row.strict, row.loose, strict=True):
            entry = per.setdefault(cid, {"strict": [], "loose": []})
            entry["strict"].append(s)
            entry["loose"].append(lo)
    return IFEvalResult(
        prompt_strict=rate([all(r.strict) for r in rows]),
        prompt_loose=rate([all(r.loose) for r in rows]),
        instruction_strict=rate([v for r in rows for v in r.strict]),
        instruction_loose=rate([v for r in rows for v in r.loose]),
        per_instruction={
            cid: {"n": len(v["strict"]), "strict": rate(v["strict"]), "loose": rate(v["loose"])}
            for cid, v in sorted(per.items())
        },
        rows=rows,
        mode=mode,
    )


def read_jsonl(path: str | Path, required: Sequence[str]) -> list[dict[str, Any]]:
    """Plain JSONL rows with the `required` fields; InputError as `file:line: what` (IFEval files carry fields,
    such as `key`, that posttrain's record types do not, so they are read here rather than as records)."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"not valid JSON ({err.msg})", path, number) from None
            if not isinstance(row, dict):
                raise InputError("a row must be a JSON object", path, number)
            missing = [name for name in required if name not in row]
            if missing:
                raise InputError(f"missing field(s) {', '.join(missing)}", path, number)
            rows.append(row)
    return rows


def validate_rows(rows: list[dict[str, Any]], data: str | Path, mode: str = "ifeval") -> list[dict[str, Any]]:
    """Check every row's ids and kwargs; InputError as `data:row`."""
    for number, row in enumerate(rows, start=1):
        ids, kwargs = row["instruction_id_list"], row["kwargs"]
        if not isinstance(ids, list) or not isinstance(kwargs, list) or len(ids) != len(kwargs):
            raise InputError("instruction_id_list and kwargs must be lists of equal length", data, number)
        for cid, kw in zip(ids, kwargs, strict=True):
            try:
                get_constraint(cid).validate(kw if isinstance(kw, dict) else {"?": kw}, mode)
            except InputError as err:
                raise InputError(err.what, data, number) from None
    return rows


def load_and_validate(
    data: str | Path, responses: str | Path, mode: str = "ifeval"
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Read both files and validate every input row (with its file:line) before any checking."""
    rows = validate_rows(read_jsonl(data, ("prompt", "instruction_id_list", "kwargs")), data, mode)
    answers = read_jsonl(responses, ("prompt", "response"))
    by_prompt: dict[str, str] = {}
    for number, answer in enumerate(answers, start=1):
        if not isinstance(answer["response"], str):
            raise InputError("response must be a string", responses, number)
        by_prompt[answer["prompt"]] = answer["response"]
    for number, row in enumerate(rows, start=1):
        if row["prompt"] not in by_prompt:
            raise InputError(f"no response in {responses} for prompt {row['prompt'][:120]!r}", data, number)
    return rows, by_prompt
