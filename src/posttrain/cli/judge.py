"""`posttrain judge`: samples -> verdicts (one per sample and judge), resumable, rule judges on every core."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from posttrain.errors import InputError


def register(app: typer.Typer) -> None:
    @app.command("judge")
    def judge(
        overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. judges.ifeval.mode=ifeval workers=2."),
        samples: Path = typer.Option(..., "--samples", help="Sample records (JSONL/Parquet)."),
        out: Path = typer.Option(..., "--out", help="Verdicts file; an existing one is resumed (done ids skipped)."),
        prompts: Path | None = typer.Option(
            None, "--prompts", help="Prompt records: constraints (ifeval), gold answers (math, code), task."
        ),
        judges: str | None = typer.Option(
            None, "--judges", help="Comma-separated judges: ifeval, math, code, refusal, reward_model, llm_prob, llama_guard, rubric."
        ),
        config: Path | None = typer.Option(None, "--config", help="YAML: judge options and per-task judge sets."),
        workers: int | None = typer.Option(None, "--workers", help="Processes for rule judges (default: all cores)."),
    ) -> None:
        """Judge samples with rule and model judges; write one verdict (1 / 0 / -1, score, detail) per judge.

        Example: posttrain judge --samples samples.jsonl --prompts prompts.jsonl --judges ifeval,math,refusal --out verdicts.jsonl
        """
        from posttrain.config import load_config
        from posttrain.judges.runner import JudgeRunConfig, Plan, judge_files, summarize
        from posttrain.records import Verdict, read_records

        cfg = load_config(JudgeRunConfig, config, overrides or [])
        if judges:
            chosen = [name.strip() for name in judges.split(",") if name.strip()]
            cfg.judges = {name: cfg.judges.get(name, {}) for name in chosen}
            if cfg.tasks:
                cfg.tasks = {task: [n for n in names if n in cfg.judges] for task, names in cfg.tasks.items()}
        if workers is not None:
            if workers < 1:
                raise InputError("--workers must be at least 1")
            cfg.workers = workers

        console = Console(stderr=True)

        @contextlib.contextmanager
        def progress(todo: Plan) -> Iterator[Callable[[str, int], None]]:
            # auto_refresh=False: no refresh thread, so the rule judges' workers can be forked safely
            with Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=console, transient=False, auto_refresh=False,
            ) as bar:  # fmt: skip
                tasks = {name: bar.add_task(name, total=len(rows)) for name, rows in todo.work.items() if rows}

                def advance(name: str, n: int) -> None:
                    bar.advance(tasks[name], n)
                    bar.refresh()

                yield advance

        # every check runs before the output is opened: bad input leaves no file behind
        full_plan, todo, skipped = judge_files(samples, prompts, out, cfg, progress)
        verdicts = read_records(out, Verdict) if out.stat().st_size else []
        from posttrain.judges import judge_class

        # Reward judges (a reward model, the rubric judge) score; they are not part of the AND of constraints.
        reward_names = {name for name, (kind, _) in full_plan.judges.items() if judge_class(kind).kind == "reward"}
        console.print(f"wrote {out}: {len(verdicts)} verdicts ({todo.total} new, {skipped} resumed)", soft_wrap=True)
        table = Table(title="verdicts per judge")
        for column in ("judge", "n", "1", "0", "-1", "mean score"):
            table.add_column(column, justify="left" if column == "judge" else "right")
        for row in summarize(verdicts, reward_names):
            mean = "" if row.mean_score is None else f"{row.mean_score:.4f}"
            table.add_row(row.judge, str(row.total), *(str(row.counts.get(v, 0)) for v in (1, 0, -1)), mean)
        Console().print(table)
