"""Statistics of a synthetic prompt set: what was generated, how often, how long, how hard; printed and saved."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from posttrain.atomic import atomic_write_text
from posttrain.records import Prompt


def _histogram(values: Sequence[float], bins: int = 10) -> list[dict[str, float]]:
    if not values:
        return []
    lo, hi = min(values), max(values)
    width = (hi - lo) / bins or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / width))] += 1
    return [{"from": round(lo + i * width, 4), "to": round(lo + (i + 1) * width, 4), "count": c}
            for i, c in enumerate(counts)]  # fmt: skip


def _summary(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "min": ordered[0],
        "mean": round(statistics.fmean(ordered), 2),
        "median": ordered[len(ordered) // 2],
        "p90": ordered[int(0.9 * (len(ordered) - 1))],
        "max": ordered[-1],
    }


def compute_stats(prompts: Sequence[Prompt], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    ids = Counter(cid for p in prompts for cid in p.instruction_id_list)
    per_prompt = Counter(len(p.instruction_id_list) for p in prompts)
    combos = Counter(" + ".join(sorted(p.instruction_id_list)) for p in prompts)
    pairs: Counter[str] = Counter()
    for p in prompts:
        chosen = sorted(p.instruction_id_list)
        pairs.update(f"{a} + {b}" for i, a in enumerate(chosen) for b in chosen[i + 1 :])
    chars = [len(p.text) for p in prompts]
    words = [len(p.text.split()) for p in prompts]
    difficulty = [p.difficulty for p in prompts if p.difficulty is not None]
    extras = [p.model_extra or {} for p in prompts]
    return {
        "prompts": len(prompts),
        "constraint_types": dict(ids.most_common()),
        "constraints_per_prompt": {str(k): per_prompt[k] for k in sorted(per_prompt)},
        "distinct_combinations": len(combos),
        "combinations": dict(combos.most_common()),
        "pair_counts": dict(pairs.most_common()),
        "task_types": dict(Counter(e.get("task_type", "?") for e in extras).most_common()),
        "topics": dict(Counter(e.get("topic", "?") for e in extras).most_common()),
        "length_chars": {**_summary(chars), "histogram": _histogram(chars)},
        "length_words": {**_summary(words), "histogram": _histogram(words)},
        "difficulty": {**_summary(difficulty), "histogram": _histogram(difficulty)},
        **(extra or {}),
    }


def save_stats(stats: dict[str, Any], path: str | Path) -> None:
    atomic_write_text(path, json.dumps(stats, indent=2, ensure_ascii=False) + "\n")


def print_stats(stats: dict[str, Any], console: Console | None = None, top: int = 10) -> None:
    console = console or Console()
    total = max(1, stats["prompts"])
    console.print(f"[bold]{stats['prompts']}[/bold] prompts, {stats['distinct_combinations']} distinct constraint "
                  f"combinations; constraints per prompt: {stats['constraints_per_prompt']}")  # fmt: skip
    table = Table(title="constraint types", show_edge=False)
    table.add_column("id")
    table.add_column("prompts", justify="right")
    table.add_column("share", justify="right")
    for cid, count in stats["constraint_types"].items():
        table.add_row(cid, str(count), f"{count / total:.1%}")
    console.print(table)
    combos = Table(title=f"top {top} combinations", show_edge=False)
    combos.add_column("combination")
    combos.add_column("prompts", justify="right")
    for combo, count in list(stats["combinations"].items())[:top]:
        combos.add_row(combo or "(none)", str(count))
    console.print(combos)
    for key, label in (("length_words", "length (words)"), ("length_chars", "length (chars)"),
                       ("difficulty", "difficulty")):  # fmt: skip
        summary = {k: v for k, v in stats[key].items() if k != "histogram"}
        console.print(f"{label}: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    rejected = stats.get("rejected")
    if rejected:
        console.print("rejected candidates: " + ", ".join(f"{k} {v}" for k, v in rejected.items()))
    if "rewrite" in stats:
        console.print("rewrite: " + ", ".join(f"{k} {v}" for k, v in stats["rewrite"].items()))
