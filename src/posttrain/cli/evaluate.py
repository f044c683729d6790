"""`posttrain eval ifeval`: IFEval's four metrics, per-instruction pass rates and per-row verdicts."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from posttrain.cli.choices import CHECKER_MODES
from posttrain.errors import InputError


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Evaluate responses on benchmarks (IFEval).", no_args_is_help=True)
    app.add_typer(sub, name="eval")

    @sub.command("ifeval")
    def ifeval(
        data: Path = typer.Option(
            ..., "--data", help="IFEval input rows: key, prompt, instruction_id_list, kwargs."
        ),
        responses: Path = typer.Option(..., "--responses", help="JSONL rows with prompt and response."),
        out: Path | None = typer.Option(
            None, "--out", help="Directory for metrics.json and eval_results_*.jsonl."
        ),
        mode: str = typer.Option(
            "ifeval", help=f"Checker mode: {' or '.join(CHECKER_MODES)} (reference bugs repaired)."
        ),
        strip_thinking: bool = typer.Option(
            True, "--strip-thinking/--keep-thinking", help="Remove <think>...</think> before checking."
        ),
        workers: int | None = typer.Option(None, help="Processes (default: all cores for large files)."),
    ) -> None:
        """Score responses with IFEval's checkers: prompt/instruction x strict/loose accuracy, per-instruction rates.

        Example: posttrain eval ifeval --data input_data.jsonl --responses responses.jsonl --out results/ifeval
        """
        from posttrain.constraints import MODES
        from posttrain.evals.ifeval import evaluate_ifeval, load_and_validate

        if mode not in MODES:
            raise InputError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        rows, by_prompt = load_and_validate(data, responses, mode)
        result = evaluate_ifeval(rows, by_prompt, mode=mode, strip_thinking=strip_thinking, workers=workers)

        console = Console()
        per = Table(title=f"IFEval per instruction ({mode} mode)")
        for column in ("instruction", "n", "strict", "loose"):
            per.add_column(column, justify="left" if column == "instruction" else "right")
        for cid, stats in result.per_instruction.items():
            per.add_row(cid, str(int(stats["n"])), f"{stats['strict']:.3f}", f"{stats['loose']:.3f}")
        console.print(per)
        summary = Table(title=f"IFEval: {len(result.rows)} prompts")
        for column in ("level", "strict", "loose"):
            summary.add_column(column, justify="left" if column == "level" else "right")
        summary.add_row("prompt", f"{result.prompt_strict:.4f}", f"{result.prompt_loose:.4f}")
        summary.add_row("instruction", f"{result.instruction_strict:.4f}", f"{result.instruction_loose:.4f}")
        console.print(summary)
        if out is not None:
            for path in result.write(out):
                console.print(f"wrote {path}")
