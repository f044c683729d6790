"""`posttrain redteam`: MART's rounds of an adversarial model against a target model (redteam/mart.py)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table


def register(app: typer.Typer) -> None:
    @app.command("redteam")
    def redteam(
        overrides: list[str] = typer.Argument(
            None, help="Dotted overrides, e.g. rounds=3 update.target=dpo."
        ),
        config: Path = typer.Option(None, "--config", help="YAML recipe (e.g. recipes/mart.yaml)."),
    ) -> None:
        """MART: each round the adversary rewrites seed prompts into attacks, the target answers, a safety judge and
        a helpfulness judge score, successful attacks train the adversary and safe, helpful answers train the target
        (SFT, or DPO against the unsafe answers). Per round: violation rate on held-out attacks, helpfulness and
        over-refusal on benign prompts. Resumable: rerun the same command after a crash.

        Example: posttrain redteam --config recipes/mart.yaml judges.safety.model=runs/guard/model rounds=3
        """
        from posttrain.config import load_config
        from posttrain.redteam.mart import MARTConfig, run_mart

        result = run_mart(load_config(MARTConfig, config, overrides or []))
        table = Table(title=f"MART, {result.output_dir}")
        for column in ("round", "violation rate (held-out)", "helpful rate", "over-refusal", "attacks",
                       "successful", "safe+helpful", "judge failures", "seconds"):  # fmt: skip
            table.add_column(column, justify="right")
        for r in result.rounds:
            e, s = r["eval"], r.get("selection", {})
            failures = e["safety_failures"] + e["helpfulness_failures"] + e["over_refusal_failures"]
            failures += s.get("safety_failures", 0) + s.get("helpfulness_failures", 0)
            table.add_row(str(r["round"]), _fmt(e["violation_rate"], e["heldout_attacks"]),
                          _fmt(e["helpful_rate"], e["benign_prompts"]), _fmt(e["over_refusal_rate"], e["benign_prompts"]),
                          str(s.get("attacks", "-")), str(s.get("successful_attacks", "-")),
                          str(s.get("safe_and_helpful", "-")), str(failures), str(r.get("seconds", "-")))  # fmt: skip
        Console().print(table)
        Console().print(f"adversary: {result.adversary}; target: {result.target}")


def _fmt(rate: float | None, n: int) -> str:
    return "-" if rate is None else f"{rate:.3f} (n={n})"
