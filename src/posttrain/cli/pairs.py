"""`posttrain pairs`: judged samples -> preference pairs in TRL's format."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from posttrain.errors import InputError
from posttrain.pairs.rejection import CONTRASTS, rejection_sampling_pairs
from posttrain.records import Prompt, Sample, Verdict, atomic_write_text, read_records, write_records

METHODS = ("rs",)


def register(app: typer.Typer) -> None:
    @app.command("pairs")
    def pairs(
        samples: Path = typer.Option(..., help="Sample records (JSONL/Parquet)."),
        verdicts: Path = typer.Option(..., help="Verdict records for those samples."),
        out: Path = typer.Option(..., help="Output pairs file (prompt/chosen/rejected + provenance)."),
        prompts: Path | None = typer.Option(None, help="Prompt records, to carry each prompt's difficulty."),
        method: str = typer.Option("rs", help=f"Pair construction: {', '.join(METHODS)}."),
        contrast: str = typer.Option("high", help=f"Contrast: {', '.join(CONTRASTS)}."),
        mixed_high_ratio: float = typer.Option(0.5, help="With --contrast mixed: share of high-contrast pairs."),
        reward_judge: list[str] = typer.Option(["reward"], help="Judges whose score is a reward, not a constraint."),
        seed: int = typer.Option(0, help="Seed for the random choices (cgpo, mixed)."),
    ) -> None:
        """Build preference pairs from judged samples.

        Example: posttrain pairs --samples samples.jsonl --verdicts verdicts.jsonl --contrast mixed --out pairs.jsonl
        """
        if method not in METHODS:
            raise InputError(f"unknown pair method '{method}'; available: {', '.join(METHODS)}")
        sample_rows = read_records(samples, Sample)
        verdict_rows = read_records(verdicts, Verdict)
        prompt_rows = {p.id: p for p in read_records(prompts, Prompt)} if prompts else None
        result, stats = rejection_sampling_pairs(
            sample_rows, verdict_rows, prompt_rows, contrast, mixed_high_ratio, reward_judge, seed
        )
        write_records(out, result)
        atomic_write_text(out.with_suffix(".stats.json"), json.dumps(stats.as_dict(), indent=2))
        table = Table(title=f"{len(result)} pairs from {stats.prompts} prompts")
        table.add_column("skipped because")
        table.add_column("count", justify="right")
        for reason, count in sorted(stats.skipped.items()):
            table.add_row(reason, str(count))
        Console().print(table)
