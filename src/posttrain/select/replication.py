"""Does the selector matter? SFT the embedded model on equal-size subsets chosen by each selector and compare
held-out instruction following (a small, offline stand-in for Yang et al.'s Alpaca/WizardLM experiments).

    pool      synthetic verifiable prompts -> samples of the embedded model -> the IFEval judge; the pool is the
              samples that meet at least `pool_min_quality` of their constraints (quality = the judge's partial credit, difficulty = the prompt's)
    select    `budget` examples with each method, from the same pool, with the same SAE and embeddings
    train     SFT of the embedded model on each subset (same recipe, same seed)
    evaluate  greedy responses to held-out synthetic prompts (never in the pool), IFEval's four accuracies,
              plus the untrained model as the reference

Every step is cached under `out_dir` (prompts, samples, verdicts, pool, subsets, models, metrics) and skipped when
its output exists, so an interrupted replication resumes. `results.json` holds the table.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from posttrain.errors import InputError
from posttrain.select.run import SelectConfig
from posttrain.select.selectors import METHODS
from posttrain.train.sft import SFTConfig


@dataclass
class ReplicationConfig:
    out_dir: str = "runs/select_replication"
    n_pool_prompts: int = 160
    n_heldout: int = 32
    constraints: str = "1-3"
    samples_per_prompt: int = 2
    sample_max_new_tokens: int = 96
    eval_max_new_tokens: int = 128
    budget: int = 32
    # Pool entry: a sample meeting at least this share of its prompt's constraints (1.0 = all of them). The
    # embedded 135M model meets every constraint of a 1-3-constraint prompt in ~13% of 96-token samples.
    pool_min_quality: float = 1.0
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    seed: int = 0
    threads: int | None = None
    select: SelectConfig = field(default_factory=SelectConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)


def _run_config(cfg: ReplicationConfig) -> Any:
    from posttrain.evals.greedy import EvalSection
    from posttrain.pipeline.quickstart import RunConfig, SampleSection
    from posttrain.prompts.split import PromptsSection

    out = Path(cfg.out_dir)
    return RunConfig(
        name=out.name, runs_dir=str(out.parent), seed=cfg.seed, threads=cfg.threads,
        prompts=PromptsSection(n_train=cfg.n_pool_prompts, n_heldout=cfg.n_heldout, constraints=cfg.constraints),
        sample=SampleSection(n=cfg.samples_per_prompt, max_new_tokens=cfg.sample_max_new_tokens, dtype="float32"),
        eval=EvalSection(max_new_tokens=cfg.eval_max_new_tokens),
    )  # fmt: skip


def build_pool(cfg: ReplicationConfig, run: Any, out: Path) -> Path:
    """prompts -> samples -> verdicts -> pool.jsonl of the satisfied samples (SFT rows: prompt + completion)."""
    from posttrain.atomic import atomic_write_text
    from posttrain.pipeline import quickstart as qs
    from posttrain.prompts.split import make_prompts
    from posttrain.records import Prompt, Sample, Verdict, read_records

    if not (out / "prompts" / "heldout.jsonl").exists():
        make_prompts(run.prompts, run.seed, out / "prompts")
    if not (out / "sample" / "samples.jsonl").exists():
        qs.sample_train(run, out, 0, out / "sample")
    if not (out / "judge" / "verdicts.jsonl").exists():
        qs.judge_samples(run, out, "", out / "judge")
    pool_path = out / "pool.jsonl"
    if pool_path.exists():
        return pool_path
    prompts = {p.id: p for p in read_records(out / "prompts" / "train.jsonl", Prompt)}
    verdicts = {v.sample_id: v for v in read_records(out / "judge" / "verdicts.jsonl", Verdict)}
    rows = []
    for s in read_records(out / "sample" / "samples.jsonl", Sample):
        v = verdicts.get(s.id)
        if v is None or v.value == -1 or not s.completion.strip():
            continue
        quality = v.score if v.score is not None else float(v.value == 1)
        if quality < cfg.pool_min_quality:
            continue
        p = prompts[s.prompt_id]
        rows.append({"prompt": p.text, "completion": s.completion, "prompt_id": p.id, "sample_id": s.id,
                     "quality": quality,
                     "difficulty": p.difficulty if p.difficulty is not None else 1.0})  # fmt: skip
    if len(rows) < cfg.budget:
        raise InputError(
            f"only {len(rows)} samples reach pool_min_quality={cfg.pool_min_quality} for a budget of {cfg.budget}: "
            "raise n_pool_prompts or samples_per_prompt, or lower pool_min_quality"
        )
    atomic_write_text(pool_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return pool_path


def replicate(cfg: ReplicationConfig) -> dict[str, Any]:
    from posttrain.atomic import atomic_write_text
    from posttrain.pipeline import quickstart as qs
    from posttrain.select.data import read_pool, write_subset
    from posttrain.select.report import print_reports
    from posttrain.select.run import run_selection
    from posttrain.train.sft import SFTExample, train_sft

    started = time.perf_counter()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = _run_config(cfg)
    timings: dict[str, float] = {}

    t = time.perf_counter()
    pool = read_pool(build_pool(cfg, run, out))
    timings["pool_s"] = round(time.perf_counter() - t, 1)

    t = time.perf_counter()
    if cfg.select.cache_dir is None:
        cfg.select.cache_dir = str(out / "select_cache")
    selections, reports, ws = run_selection(pool, cfg.methods, cfg.budget, cfg.select, report="all")
    for method, selection in selections.items():
        write_subset(out / "subsets" / f"{method}.jsonl", pool, selection.picks)
    atomic_write_text(out / "subsets" / "report.json", json.dumps(reports, indent=2) + "\n")
    print_reports(reports)
    timings["select_s"] = round(time.perf_counter() - t, 1)
    timings.update({f"select_{k}": v for k, v in ws.timings.items()})

    results: dict[str, Any] = {}
    base_dir = out / "eval" / "base"
    if not (base_dir / "heldout" / "metrics.json").exists():
        qs.evaluate_model(run, "embedded", out, base_dir)
    results["base (no SFT)"] = json.loads((base_dir / "heldout" / "metrics.json").read_text())
    for method in cfg.methods:
        t = time.perf_counter()
        eval_dir = out / "eval" / method
        if not (eval_dir / "heldout" / "metrics.json").exists():
            sft_cfg = SFTConfig(**{k: getattr(cfg.sft, k) for k in ("model", "lora", "data")},
                                train=type(cfg.sft.train)(**{**asdict(cfg.sft.train),
                                                            "output_dir": str(out / "sft" / method)}))  # fmt: skip
            examples = [SFTExample.model_validate(pool.rows[i]) for i in selections[method].picks]
            result = train_sft(sft_cfg, examples)
            qs.evaluate_model(run, str(result.model_dir), out, eval_dir)
        results[method] = json.loads((eval_dir / "heldout" / "metrics.json").read_text())
        timings[f"sft_eval_{method}_s"] = round(time.perf_counter() - t, 1)
    timings["total_s"] = round(time.perf_counter() - started, 1)

    table = {
        name: {k: round(m[k], 4) for k in ("prompt_level_strict_acc", "prompt_level_loose_acc",
                                           "inst_level_strict_acc", "inst_level_loose_acc")} | {"n": m["num_prompts"]}
        for name, m in results.items()
    }  # fmt: skip
    summary = {"pool_size": len(pool), "budget": cfg.budget, "heldout": cfg.n_heldout, "ifeval": table,
               "selection": reports, "timings": timings, "config": asdict(cfg)}  # fmt: skip
    atomic_write_text(out / "results.json", json.dumps(summary, indent=2, default=str) + "\n")
    from rich.console import Console
    from rich.table import Table

    view = Table(title=f"held-out IFEval after SFT on {cfg.budget} of {len(pool)} examples")
    for column in ("model", "prompt strict", "prompt loose", "inst strict", "inst loose"):
        view.add_column(column)
    for name, row in table.items():
        view.add_row(name, *(f"{row[k]:.3f}" for k in ("prompt_level_strict_acc", "prompt_level_loose_acc",
                                                        "inst_level_strict_acc", "inst_level_loose_acc")))  # fmt: skip
    Console().print(view)
    return summary
