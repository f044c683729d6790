"""The table `posttrain train guard` prints: held-out figures before and after training."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def print_guard_result(result: Any) -> None:
    console = Console()
    if result.after is None:
        console.print(f"trained on {result.n_train} rows; no held-out rows, so no evaluation")
        return
    table = Table(title=f"guard on {result.n_heldout} held-out rows (threshold {result.after['threshold']})")
    table.add_column("figure")
    for name in ("before", "after"):
        if getattr(result, name) is not None:
            table.add_column(name, justify="right")
    figures = [("F1 (unsafe)", ("binary", "f1")), ("precision", ("binary", "precision")),
               ("recall", ("binary", "recall")), ("AUPRC", ("binary", "auprc")),
               ("FPR, benign prompts", ("fpr_benign_prompts",)), ("macro F1, categories", ("macro_f1",)),
               ("unparsable answers", ("unparsable",))]  # fmt: skip
    for label, keys in figures:
        cells = []
        for metrics in (result.before, result.after):
            if metrics is None:
                continue
            value: Any = metrics
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            cells.append(_fmt(value))
        table.add_row(label, *cells)
    console.print(table)
