"""`posttrain prompts synth|stats`: synthetic verifiable instruction-following prompts, and their statistics."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from posttrain.errors import InputError


def _split_ids(text: str | None) -> list[str] | None:
    if text is None:
        return None
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids:
        raise InputError(f"expected comma-separated constraint ids, got '{text}'")
    return ids


def _default_stats_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(out.suffix) + ".stats.json")


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Synthetic verifiable instruction-following prompts.", no_args_is_help=True)
    app.add_typer(sub, name="prompts")

    @sub.command("synth")
    def synth(
        out: Path = typer.Option(..., "--out", help="Output prompts file (.jsonl or .parquet)."),
        n: int | None = typer.Option(None, "--n", help="Number of prompts (default 1000)."),
        constraints: str | None = typer.Option(
            None, "--constraints", help="Constraints per prompt: a number or a range like 1-5 (default 1-3)."
        ),
        seed: int | None = typer.Option(None, "--seed", help="Random seed (default 0); same seed, same prompts."),
        ids: str | None = typer.Option(
            None, "--ids", help="Comma-separated constraint ids to draw from (default: CGPO's 23 IFEval types)."
        ),
        exclude: str | None = typer.Option(None, "--exclude", help="Comma-separated constraint ids to leave out."),
        seed_tasks: Path | None = typer.Option(
            None, "--seed-tasks", help="Base tasks: .txt (one per line) or .jsonl with 'prompt' (+ 'task_type')."
        ),
        seed_fraction: float | None = typer.Option(
            None, "--seed-fraction", help="Share of prompts built on seed tasks (default 1.0 with --seed-tasks)."
        ),
        near_dup: float | None = typer.Option(
            None, "--near-dup", help="MinHash Jaccard threshold for near duplicates (default 0.9; 0 disables)."
        ),
        stats: Path | None = typer.Option(None, "--stats", help="Where to save statistics (default <out>.stats.json)."),
        rewrite: str | None = typer.Option(
            None, "--rewrite", help="Rewrite prompts with a model backend spec, e.g. 'embedded' (default: templates)."
        ),
        rewrite_max_new_tokens: int = typer.Option(160, help="Token budget of one rewritten prompt."),
        rewrite_temperature: float = typer.Option(0.7, help="Sampling temperature of the rewrite."),
        verify: bool = typer.Option(
            False, "--verify", help="Build a response meeting all constraints of each prompt; drop any that fail."
        ),
        config: Path | None = typer.Option(None, "--config", help="YAML file with SynthConfig keys."),
        overrides: list[str] = typer.Option([], "--set", help="Config override key=value (repeatable)."),
    ) -> None:
        """Write N prompts = base task (topic x task type, or a seed task) + k compatible constraints, with stats.

        Each record carries `instruction_id_list` + `kwargs` in IFEval format, a `difficulty` score and
        `source="synth"`; exact and near duplicates are removed; the template path needs no model.

        Example: posttrain prompts synth --n 48000 --constraints 1-5 --seed 0 --out prompts.jsonl
        """
        from posttrain import config as config_lib
        from posttrain.prompts.stats import compute_stats, print_stats, save_stats
        from posttrain.prompts.synth import SynthConfig, Synthesizer, read_seed_tasks, to_record, unverifiable
        from posttrain.records import write_records

        data: dict[str, Any] = config_lib.read_yaml(config) if config else {}
        for text in overrides:
            config_lib.apply_override(data, *config_lib.parse_override(text))
        flags = {"n": n, "constraints": constraints, "seed": seed, "ids": _split_ids(ids),
                 "exclude": _split_ids(exclude), "seed_fraction": seed_fraction,
                 "seed_tasks": str(seed_tasks) if seed_tasks else None, "near_dup": near_dup}  # fmt: skip
        data.update({k: v for k, v in flags.items() if v is not None})
        cfg = config_lib.build(SynthConfig, data, config)

        # Everything that can be wrong with the input fails here, before any output file is opened.
        started = time.perf_counter()
        tasks = read_seed_tasks(cfg.seed_tasks) if cfg.seed_tasks else None
        synthesizer = Synthesizer(cfg, tasks)
        backend = None
        if rewrite:
            from posttrain.models import load_backend

            backend = load_backend(rewrite)  # InputError for an unknown spec or a missing model
        candidates = synthesizer.run()
        extra: dict[str, Any] = {"attempts": synthesizer.attempts, "rejected": dict(synthesizer.rejected)}
        if verify:
            bad = set(unverifiable(candidates))
            candidates = [c for i, c in enumerate(candidates) if i not in bad]
            extra["rejected"]["unverifiable"] = len(bad)
        if backend is None:
            records = [to_record(c) for c in candidates]
        else:
            records, extra["rewrite"] = _rewrite(backend, candidates, rewrite_max_new_tokens, rewrite_temperature)
        extra["seconds"] = round(time.perf_counter() - started, 2)
        extra["config"] = config_lib.to_dict(cfg)
        write_records(out, records)
        summary = compute_stats(records, extra)
        stats_path = stats or _default_stats_path(out)
        save_stats(summary, stats_path)
        console = Console()
        print_stats(summary, console)
        console.print(f"wrote {len(records)} prompts to {out} and statistics to {stats_path} "
                      f"in {extra['seconds']} s")  # fmt: skip

    @sub.command("stats")
    def stats_command(
        path: Path = typer.Argument(..., help="A prompts file (.jsonl or .parquet), e.g. IFEval's input_data.jsonl."),
        out: Path | None = typer.Option(None, "--out", help="Also save the statistics as JSON here."),
    ) -> None:
        """Print constraint histogram, combination counts, lengths and difficulty of any prompts file.

        Example: posttrain prompts stats prompts.jsonl --out prompts.stats.json
        """
        from posttrain.prompts.difficulty import difficulty
        from posttrain.prompts.stats import compute_stats, print_stats, save_stats
        from posttrain.records import Prompt, read_records

        prompts = read_records(path, Prompt)
        for p in prompts:
            if p.difficulty is None:
                p.difficulty = difficulty(p.instruction_id_list, p.kwargs)
        summary = compute_stats(prompts)
        print_stats(summary)
        if out:
            save_stats(summary, out)


def _rewrite(backend: Any, candidates: list[Any], max_new_tokens: int, temperature: float) -> tuple[list[Any], dict]:
    from posttrain.models import SamplingParams
    from posttrain.prompts.rewrite import rewrite_prompts
    from posttrain.prompts.synth import to_record

    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature)
    items = [(c.text, c.base_task, c.descriptions, c.ids, c.kwargs) for c in candidates]
    results = rewrite_prompts(backend, items, params)
    records, seen = [], set()
    for candidate, result in zip(candidates, results, strict=True):
        template = candidate.text
        candidate.text = result.text
        extra = {"rewritten": result.rewritten, "template_prompt": template if result.rewritten else None}
        record = to_record(candidate, **extra)
        if record.id not in seen:  # two rewrites can land on the same text
            seen.add(record.id)
            records.append(record)
    kept = sum(r.rewritten for r in results)
    return records, {"rewritten": kept, "fallback_to_template": len(results) - kept}
