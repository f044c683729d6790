"""`posttrain sample`: prompts -> n sampled completions each, from any backend spec (resumable, deterministic:
see `posttrain.sampling`)."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console

from posttrain.errors import InputError


def register(app: typer.Typer) -> None:
    @app.command("sample")
    def sample(
        prompts: Path = typer.Option(..., help="Prompt records (JSONL/Parquet)."),
        out: Path = typer.Option(
            ..., help="Output Sample records; an interrupted run resumes from <out>.partial."
        ),
        model: str = typer.Option(
            "embedded",
            help="Backend spec: embedded, a local HF directory, openai:<url> or openai:<url>#<model>, vllm:<model>.",
        ),
        n: int = typer.Option(4, "--n", help="Samples per prompt."),
        max_new_tokens: int = typer.Option(256, help="Tokens per sample at most."),
        temperature: float = typer.Option(1.0, help="0 is greedy."),
        top_p: float = typer.Option(1.0, help="Nucleus sampling mass."),
        top_k: int = typer.Option(0, help="Top-k filter (0: off)."),
        stop: list[str] = typer.Option(
            [], help="Stop string (repeatable); it is not included in the output."
        ),
        seed: int = typer.Option(0, help="Seed: every (prompt, sample index) derives its own from it."),
        batch_size: int = typer.Option(
            8, help="Prompts per backend call (fixed, so resumes are exact); local models decode its n samples each together."
        ),
        threads: int | None = typer.Option(None, help="torch threads for local models (default: all cores)."),
        dtype: str = typer.Option(
            "auto", help="Local models' weights: auto (bf16 where the CPU computes it natively), float32, bfloat16."
        ),
        concurrency: int = typer.Option(
            8,
            help="openai: specs: requests in flight (at most --batch-size x --n per batch); key from OPENAI_API_KEY.",
        ),
    ) -> None:
        """Sample n completions per prompt.

        Example: posttrain sample --prompts prompts.jsonl --model embedded --n 4 --max-new-tokens 256 --out samples.jsonl
        """
        from posttrain.models import SamplingParams, load_backend
        from posttrain.progress import generation_progress
        from posttrain.records import Prompt, read_records
        from posttrain.sampling import check_resumable, sample_prompts

        if n < 1 or batch_size < 1 or concurrency < 1:
            raise InputError("--n, --batch-size and --concurrency must be at least 1")
        try:
            params = SamplingParams(
                max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                stop=tuple(stop), seed=seed,
            )  # fmt: skip
        except ValueError as err:
            raise InputError(f"bad sampling option: {err}") from None
        # inputs first: a bad file or a mismatched resume fails in a second, not after the model loads
        rows = read_records(prompts, Prompt)
        check_resumable(out, model, params)
        options = {"concurrency": concurrency} if model.startswith("openai:") else {}
        backend = load_backend(model, threads=threads, dtype=dtype, rows=batch_size * n, **options)

        console = Console(stderr=True)
        started, tokens = time.perf_counter(), 0
        with generation_progress("sample", len(rows)) as bar:

            def advance(done: int, new_tokens: int) -> None:
                nonlocal tokens
                tokens += new_tokens
                bar.advance(done, new_tokens)

            written, total = sample_prompts(backend, rows, out, n, params, model, batch_size, advance)
        elapsed = time.perf_counter() - started
        console.print(
            f"wrote {out}: {total} samples ({written} new, {total - written} resumed), "
            f"{tokens} tokens in {elapsed:.1f} s ({tokens / max(elapsed, 1e-9):.1f} tok/s)"
        )
