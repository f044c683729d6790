"""`posttrain records validate|stats`: check a records file the way every stage reads it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from posttrain.cli.choices import RECORD_KINDS
from posttrain.errors import InputError

if TYPE_CHECKING:
    from posttrain.records import Record


def record_class(kind: str) -> type[Record]:
    """The record type of a --kind name, imported on use: assembling the CLI need not build the record models."""
    from posttrain import records

    classes: dict[str, type[Record]] = {
        "prompt": records.Prompt, "sample": records.Sample, "verdict": records.Verdict, "pair": records.Pair,
        "group": records.GroupPair,
    }  # fmt: skip
    if kind not in classes:
        raise InputError(f"unknown record kind '{kind}'; choose one of {', '.join(classes)}")
    return classes[kind]


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Inspect and validate records files (JSONL or Parquet).", no_args_is_help=True)
    app.add_typer(sub, name="records")

    @sub.command("validate")
    def validate(
        path: Path = typer.Argument(..., help="A .jsonl or .parquet records file."),
        kind: str = typer.Option("prompt", help=f"Record type: {', '.join(RECORD_KINDS)}."),
    ) -> None:
        """Validate every row; report `file:line: what is wrong` and exit 2 on the first bad row.

        Example: posttrain records validate prompts.jsonl --kind prompt
        """
        from posttrain.records import read_records

        rows = read_records(path, record_class(kind))
        ids = Counter(r.id for r in rows)
        dupes = sum(c - 1 for c in ids.values() if c > 1)
        Console().print(f"{path}: {len(rows)} valid {kind} records, {dupes} duplicate ids")
