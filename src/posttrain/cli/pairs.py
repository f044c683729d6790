"""`posttrain pairs`: judged samples -> preference pairs in TRL's format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from posttrain.cli.choices import CONTRASTS
from posttrain.errors import InputError

if TYPE_CHECKING:
    from posttrain.pairs.mcts import MCTSConfig

METHODS = ("rs", "mcts", "repair", "group")


def register(app: typer.Typer) -> None:
    @app.command("pairs")
    def pairs(
        out: Path = typer.Option(..., help="Output pairs file (prompt/chosen/rejected + provenance)."),
        samples: Path | None = typer.Option(None, help="rs, group, repair: sample records (JSONL/Parquet)."),
        verdicts: Path | None = typer.Option(None, help="rs, group: verdict records for those samples."),
        prompts: Path | None = typer.Option(
            None, help="Prompt records: rs takes each prompt's difficulty from them; mcts searches them; repair "
            "reads their constraints."
        ),
        method: str = typer.Option("rs", help=f"Pair construction: {', '.join(METHODS)}."),
        model: str = typer.Option("embedded", help="mcts: the policy to search with (any backend spec)."),
        simulations: int = typer.Option(8, help="mcts: select-expand-evaluate-backup rounds per prompt."),
        branching: int = typer.Option(3, help="mcts: segments sampled at each expansion."),
        max_depth: int = typer.Option(4, help="mcts: deepest prefix (in segments) that is expanded."),
        segment: str = typer.Option("sentence", help="mcts: a segment is a 'sentence' or a 'tokens' chunk."),
        rollouts: int = typer.Option(1, help="mcts: completions sampled per new node to value it."),
        rollout_max_tokens: int = typer.Option(256, help="mcts: token budget of a rollout."),
        root_pairs: bool = typer.Option(
            False, help="mcts: also pair the root's children, whose two responses share no prefix (as RS pairs)."
        ),
        judge_mode: str = typer.Option(
            "fixed", help="mcts: checker mode of the constraint scorer; repair: of 'already satisfied' (ifeval|fixed)."
        ),
        per_prompt: int = typer.Option(2, help="repair: at most this many repaired pairs per prompt."),
        group_size: int = typer.Option(
            0, help="group: K satisfied vs K violated samples per prompt (prompts with fewer on a side are skipped); "
            "0 = as many as the smaller side has."
        ),
        contrast: str = typer.Option("high", help=f"Contrast: {', '.join(CONTRASTS)}."),
        mixed_high_ratio: float = typer.Option(0.5, help="With --contrast mixed: share of high-contrast pairs."),
        reward_judge: list[str] = typer.Option(["reward"], help="Judges whose score is a reward, not a constraint."),
        seed: int = typer.Option(0, help="Seed for the random choices (cgpo, mixed, group)."),
        require_finished: bool = typer.Option(
            True, help="rs, group: a sample cut off by its token budget never counts as satisfied (it may be rejected)."
        ),
    ) -> None:
        """Build preference pairs from judged samples.

        Examples:
          posttrain pairs --samples samples.jsonl --verdicts verdicts.jsonl --contrast mixed --out pairs.jsonl
          posttrain pairs --method mcts --prompts prompts.jsonl --model embedded --simulations 8 --out pairs.jsonl
          posttrain pairs --method repair --prompts prompts.jsonl --samples samples.jsonl --out pairs.jsonl
          posttrain pairs --method group --samples samples.jsonl --verdicts verdicts.jsonl --group-size 2 --out groups.jsonl
        """
        if method not in METHODS:
            raise InputError(f"unknown pair method '{method}'; available: {', '.join(METHODS)}")
        if method == "mcts":
            if prompts is None:
                raise InputError("--method mcts needs --prompts (the prompts to search)")
            from posttrain.pairs.mcts import MCTSConfig

            config = MCTSConfig(
                simulations=simulations, branching=branching, max_depth=max_depth, segment=segment,
                rollouts=rollouts, rollout_max_tokens=rollout_max_tokens, root_pairs=root_pairs, seed=seed,
            )  # fmt: skip
            _mcts(prompts, out, model, config, judge_mode)
            return
        if method == "repair":
            if prompts is None or samples is None:
                raise InputError("--method repair needs --prompts (their constraints) and --samples")
            _repair(prompts, samples, out, per_prompt, judge_mode, seed)
            return
        if samples is None or verdicts is None:
            raise InputError(f"--method {method} needs --samples and --verdicts")
        if method == "group":
            _groups(samples, verdicts, prompts, out, group_size, reward_judge, seed, require_finished)
            return
        from posttrain.atomic import atomic_write_text
        from posttrain.pairs.rejection import rejection_sampling_pairs
        from posttrain.records import Prompt, Sample, Verdict, read_records, write_records

        sample_rows = read_records(samples, Sample)
        verdict_rows = read_records(verdicts, Verdict)
        prompt_rows = {p.id: p for p in read_records(prompts, Prompt)} if prompts else None
        result, stats = rejection_sampling_pairs(
            sample_rows, verdict_rows, prompt_rows, contrast, mixed_high_ratio, reward_judge, seed, require_finished
        )
        write_records(out, result)
        atomic_write_text(out.with_suffix(".stats.json"), json.dumps(stats.as_dict(), indent=2))
        table = Table(title=f"{len(result)} pairs from {stats.prompts} prompts")
        table.add_column("skipped because")
        table.add_column("count", justify="right")
        for reason, count in sorted(stats.skipped.items()):
            table.add_row(reason, str(count))
        Console().print(table)


def _groups(
    samples_path: Path, verdicts_path: Path, prompts_path: Path | None, out: Path, group_size: int,
    reward_judges: list[str], seed: int, require_finished: bool,
) -> None:  # fmt: skip
    from posttrain.atomic import atomic_write_text
    from posttrain.pairs.groups import satisfied_vs_violated_groups
    from posttrain.records import Prompt, Sample, Verdict, read_records, write_records

    if group_size < 0:
        raise InputError(f"--group-size must be 0 (the smaller side) or a positive K, got {group_size}")
    sample_rows = read_records(samples_path, Sample)
    verdict_rows = read_records(verdicts_path, Verdict)
    prompt_rows = {p.id: p for p in read_records(prompts_path, Prompt)} if prompts_path else None
    result, stats = satisfied_vs_violated_groups(
        sample_rows, verdict_rows, prompt_rows, group_size or None, reward_judges, seed, require_finished
    )
    write_records(out, result)
    atomic_write_text(out.with_suffix(".stats.json"), json.dumps(stats.as_dict(), indent=2))
    sizes = ", ".join(f"{n} of K={k}" for k, n in sorted(stats.group_sizes.items())) or "none"
    table = Table(title=f"{len(result)} groups from {stats.prompts} prompts ({sizes})")
    table.add_column("skipped because")
    table.add_column("count", justify="right")
    for reason, count in sorted(stats.skipped.items()):
        table.add_row(reason, str(count))
    Console().print(table)


def _repair(prompts_path: Path, samples_path: Path, out: Path, per_prompt: int, mode: str, seed: int) -> None:
    from posttrain.atomic import atomic_write_text
    from posttrain.constraints import MODES
    from posttrain.pairs.repair import repair_pairs
    from posttrain.records import Prompt, Sample, read_records, write_records

    if mode not in MODES:
        raise InputError(f"unknown judge mode '{mode}'; choose one of {', '.join(MODES)}")
    prompt_rows = {p.id: p for p in read_records(prompts_path, Prompt)}
    sample_rows = read_records(samples_path, Sample)
    missing = sorted({s.prompt_id for s in sample_rows} - set(prompt_rows))
    if missing:
        raise InputError(f"{len(missing)} samples' prompt_id not in --prompts (first: {missing[0]})", samples_path)
    result, stats = repair_pairs(sample_rows, prompt_rows, per_prompt, mode, seed)
    write_records(out, result)
    atomic_write_text(out.with_suffix(".stats.json"), json.dumps(stats.as_dict(), indent=2))
    table = Table(title=f"{len(result)} repair pairs from {stats.samples} samples "
                        f"({stats.already_satisfied} already satisfied, {stats.truncated} cut off)")  # fmt: skip
    table.add_column("repair failed on")
    table.add_column("samples", justify="right")
    for cid, count in stats.unrepairable.items():
        table.add_row(cid, str(count))
    Console().print(table)


def _mcts(prompts_path: Path, out: Path, model: str, config: MCTSConfig, judge_mode: str) -> None:
    """Search every prompt; pairs are written per prompt, so a rerun after a crash skips the prompts that gave
    pairs (the search is deterministic per prompt, so re-searching one that gave none gives none again)."""
    from posttrain.atomic import atomic_write_text
    from posttrain.constraints import MODES
    from posttrain.models import SamplingParams, load_backend
    from posttrain.pairs.mcts import constraint_scorer, mcts_pairs_to_file
    from posttrain.progress import generation_progress
    from posttrain.records import Prompt, read_records

    if judge_mode not in MODES:
        raise InputError(f"unknown judge mode '{judge_mode}'; choose one of {', '.join(MODES)}")
    config.validate()
    rows = read_records(prompts_path, Prompt)
    scorer = constraint_scorer(judge_mode)
    for p in rows:
        scorer(p)  # every prompt must be scorable before any search starts
    backend = load_backend(model)
    with generation_progress("mcts", len(rows)) as bar:
        _, stats = mcts_pairs_to_file(rows, out, backend, SamplingParams, scorer, config, lambda n: bar.advance(n, 0))
    atomic_write_text(out.with_suffix(".stats.json"), json.dumps(stats.as_dict(), indent=2))
    Console().print(
        f"{stats.pairs} pairs from {stats.prompts} searched prompts, {stats.generated_tokens} tokens generated "
        f"({stats.as_dict()['pairs_per_1k_tokens']} pairs per 1k tokens); skipped: {stats.skipped or 'none'}"
    )

