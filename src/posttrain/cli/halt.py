"""`posttrain halt problems|build|run` and `posttrain eval halt`: HALT, capability-aligned SFT targets
(Franzmeyer et al. 2025; docs/methods/halt.md)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from posttrain.errors import InputError

DOMAIN = typer.Option(
    "math", "--domain", help="math (steps), code (functions + unit tests) or text (facts, needs --grader)."
)
GRADER = typer.Option(
    None, "--grader",
    help="Fragment grader: the domain's rules (default), 'facts', or a model for the LLM grader "
    "(embedded, a directory, openai:<url>#<model>).",
)  # fmt: skip


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="HALT: SFT targets cut to what the model gets right (capability-aligned).",
                      no_args_is_help=True)  # fmt: skip
    app.add_typer(sub, name="halt")

    @sub.command("problems")
    def problems(
        out: Path = typer.Option(..., "--out", help="Output Prompt records (JSONL/Parquet)."),
        n: int = typer.Option(100, "--n", help="Number of problems."),
        difficulty: str = typer.Option(
            "1,2", "--difficulty", help="Difficulty levels taken in turn: 1, 2, 3."
        ),
        seed: int = typer.Option(0, "--seed", help="Same seed, same problems."),
    ) -> None:
        """Multi-step arithmetic / algebra word problems with step-by-step ground truth.

        Example: posttrain halt problems --n 200 --difficulty 1,2,3 --out problems.jsonl
        """
        from posttrain.halt.problems import generate_problems
        from posttrain.records import write_records

        try:
            levels = [int(d) for d in difficulty.split(",") if d.strip()]
            rows = generate_problems(n, levels, seed)
        except ValueError as err:
            raise InputError(f"--n / --difficulty: {err}") from None
        Console().print(f"wrote {out}: {write_records(out, rows)} problems")

    @sub.command("build")
    def build(
        prompts: Path = typer.Option(
            ..., "--prompts", help="Problems: Prompt records with the domain's ground truth."
        ),
        out: Path = typer.Option(
            ..., "--out", help="SFT records (for `posttrain train sft`); resumes from <out>.partial."
        ),
        threshold: float = typer.Option(
            ..., "--threshold", help="Abstain entirely below this fraction of correct fragments."
        ),
        model: str = typer.Option(
            "embedded", "--model", help="Backend whose answers are cut: embedded, a directory, openai:..."
        ),
        samples: Path | None = typer.Option(
            None,
            "--samples",
            help="The model's answers (Sample records), sampled into it when missing (default <out>.samples.jsonl).",
        ),
        domain: str = DOMAIN,
        grader: str | None = GRADER,
        marker: str | None = typer.Option(
            None, "--marker", help='Abstention marker (default "Unsure from here.").'
        ),
        n: int = typer.Option(1, "--n", help="Answers per problem."),
        max_new_tokens: int = typer.Option(256, help="Tokens per answer at most."),
        temperature: float = typer.Option(0.7, help="Sampling temperature (0: greedy)."),
        seed: int = typer.Option(0, help="Sampling seed."),
        batch_size: int = typer.Option(8, help="Problems per backend call."),
        threads: int | None = typer.Option(None, help="torch threads for local models."),
    ) -> None:
        """Sample the model's answers, split them into fragments, verify each, write HALT's SFT targets.

        Example: posttrain halt build --prompts problems.jsonl --threshold 0.5 --out sft.jsonl
        """
        from posttrain.halt.build import build_targets, default_samples_path, load_problems, read_samples
        from posttrain.halt.domains import get_domain, make_grader
        from posttrain.halt.fragments import MARKER
        from posttrain.halt.sampling import sample_answers
        from posttrain.models.backend import SamplingParams
        from posttrain.sampling import check_resumable

        if not 0.0 <= threshold <= 1.0:
            raise InputError(f"--threshold must be in [0, 1], got {threshold}")
        if n < 1 or batch_size < 1:
            raise InputError("--n and --batch-size must be at least 1")
        marker = MARKER if marker is None else marker
        if not marker.strip():
            raise InputError("--marker is empty")
        kind = get_domain(domain)
        rows = load_problems(prompts, kind)
        samples_path = samples or default_samples_path(out)
        try:
            params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        except ValueError as err:
            raise InputError(f"bad sampling option: {err}") from None
        check_resumable(samples_path, model, params)
        if samples_path.exists():  # a given file is read (and checked) before the model loads
            read_samples(samples_path, {p.id: p for p in rows})
        fragment_grader = make_grader(kind, grader, threads)
        sample_answers(rows, samples_path, model, params, n=n, batch_size=batch_size, threads=threads)
        stats = build_targets(rows, read_samples(samples_path, {p.id: p for p in rows}), out, kind,
                              fragment_grader, threshold, marker)  # fmt: skip
        console = Console()
        console.print(
            f"wrote {out}: {stats.examples} examples ({stats.new} new, {stats.resumed} resumed): {stats.kept_whole} "
            f"kept whole, {stats.cut} cut with the marker, {stats.abstained} abstained; fragments correct "
            f"{stats.fragments_correct} of {stats.fragments} ({stats.fragments_unverifiable} unverifiable)",
            soft_wrap=True,
        )
        if stats.grader_failed:
            console.print(f"grader failed on {stats.grader_failed} samples (not written; a rerun retries them): "
                          f"{stats.first_failure}", soft_wrap=True)  # fmt: skip

    @sub.command("run")
    def run(
        overrides: list[str] = typer.Argument(
            None, help="Dotted overrides, e.g. thresholds=[0.5] sft.train.epochs=1."
        ),
        config: Path = typer.Option(None, "--config", help="YAML recipe (recipes/halt_math.yaml)."),
        from_stage: str | None = typer.Option(None, "--from", help="Rerun from this stage on."),
    ) -> None:
        """HALT vs standard SFT at several thresholds: build -> SFT -> eval, a trade-off plot in report.html.

        Example: posttrain halt run --config recipes/halt_math.yaml
        """
        from posttrain.config import load_config
        from posttrain.halt.recipe import HaltRecipeConfig, run_recipe

        cfg = load_config(HaltRecipeConfig, config, overrides or [])
        report = run_recipe(cfg, from_stage)
        Console().print(
            f"wrote {report} (figures: {cfg.run_dir / 'report' / 'results.json'})", soft_wrap=True
        )


def register_eval(sub: typer.Typer) -> None:
    """`posttrain eval halt`, registered on the `eval` group."""

    @sub.command("halt")
    def halt(
        prompts: Path = typer.Option(
            ..., "--prompts", help="Problems with the domain's ground truth (held out)."
        ),
        out: Path = typer.Option(..., "--out", help="Directory for halt_results.jsonl and metrics.json."),
        responses: Path | None = typer.Option(
            None, "--responses", help="Sample records to score (prompt_id, completion)."
        ),
        model: str | None = typer.Option(
            None, "--model", help="Instead of --responses: greedy answers of this backend."
        ),
        reference: Path | None = typer.Option(
            None,
            "--reference",
            help="Standard SFT's results (a directory or halt_results.jsonl): relative completeness.",
        ),
        domain: str = DOMAIN,
        grader: str | None = GRADER,
        max_new_tokens: int = typer.Option(256, help="With --model: tokens per answer."),
        batch_size: int = typer.Option(8, help="With --model: problems per backend call."),
        threads: int | None = typer.Option(None, help="torch threads for local models."),
        temperature: float = typer.Option(0.0, help="With --model: 0 greedy; above 0, sampled answers."),
        n: int = typer.Option(1, "--n", help="With --model and --temperature > 0: answers per problem."),
        seed: int = typer.Option(0, help="With --model: sampling seed."),
    ) -> None:
        """HALT's metrics: fragment correctness, completeness (relative to standard SFT's), F1, abstention.

        Example: posttrain eval halt --prompts heldout.jsonl --model runs/m --reference results/std --out results/m
        """
        from posttrain.halt.build import load_problems
        from posttrain.halt.domains import get_domain, make_grader
        from posttrain.halt.evaluate import check_sampling, evaluate_halt, load_responses, read_results

        kind = get_domain(domain)
        rows = load_problems(prompts, kind)
        ref = read_results(reference) if reference is not None else None
        check_sampling(n, temperature)
        if responses is not None:
            load_responses(responses, rows)  # checked before anything is written
        metrics = evaluate_halt(rows, kind, make_grader(kind, grader, threads), out, responses=responses, model=model,
                                max_new_tokens=max_new_tokens, batch_size=batch_size, threads=threads, reference=ref,
                                temperature=temperature, n=n, seed=seed)  # fmt: skip
        console = Console()
        for key in ("responses", "graded", "grader_failed", "correctness", "completeness", "relative_completeness",
                    "f1", "abstention_rate", "partial_abstention_rate", "unverifiable_fragments"):  # fmt: skip
            console.print(f"{key}: {metrics[key]}")
        if metrics["first_failure"]:
            console.print(f"first grader failure: {metrics['first_failure']}", soft_wrap=True)
        console.print(f"wrote {out / 'halt_results.jsonl'} and {out / 'metrics.json'}")
