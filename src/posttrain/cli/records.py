"""`posttrain records validate|stats`: check a records file the way every stage reads it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer
from rich.console import Console

from posttrain import records

KINDS: dict[str, type[records.Record]] = {"prompt": records.Prompt, "sample": records.Sample, "verdict": records.Verdict, "pair": records.Pair}


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Inspect and validate records files (JSONL or Parquet).", no_args_is_help=True)
    app.add_typer(sub, name="records")

    @sub.command("validate")
    def validate(
        path: Path = typer.Argument(..., help="A .jsonl or .parquet records file."),
        kind: str = typer.Option("prompt", help=f"Record type: {', '.join(KINDS)}."),
    ) -> None:
        """Validate every row; report `file:line: what is wrong` and exit 2 on the first bad row.

        Example: posttrain records validate prompts.jsonl --kind prompt
        """
        if kind not in KINDS:
            raise records.InputError(f"unknown record kind '{kind}'; choose one of {', '.join(KINDS)}")
        rows: list[records.Record] = records.read_records(path, KINDS[kind])
        ids = Counter(r.id for r in rows)
        dupes = sum(c - 1 for c in ids.values() if c > 1)
        Console().print(f"{path}: {len(rows)} valid {kind} records, {dupes} duplicate ids")
