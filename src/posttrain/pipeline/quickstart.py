"""The end-to-end recipe behind `posttrain run`: synthetic verifiable prompts -> samples -> judges -> pairs -> DPO
-> held-out evaluation before and after -> HTML report.

Each stage is a function of its directory and the run config, registered with its config sections and inputs in
`build_stages`; `posttrain.pipeline.runner` caches, resumes and reruns them.

    runs/<name>/prompts/{train,heldout}.jsonl      synthetic prompts (held-out ones never trained on)
    runs/<name>/eval_before/                       greedy responses + IFEval metrics of the starting model
    runs/<name>/sample/samples.jsonl               n sampled completions per training prompt
    runs/<name>/judge/verdicts.jsonl               instruction-following verdicts (strict, partial credit)
    runs/<name>/pairs/pairs.jsonl                  preference pairs (RS, MCTS and/or repair) + stats
    runs/<name>/train/model/                       the trained policy (HF format) + metrics.jsonl
    runs/<name>/eval_after/                        the same evaluation for the trained policy
    runs/<name>/report.html                        the report (plots inline; opens offline)
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from posttrain.errors import InputError
from posttrain.models.hf import DTYPES
from posttrain.pairs.mcts import MCTSConfig
from posttrain.pipeline.runner import Stage
from posttrain.progress import generation_progress
from posttrain.records import Pair, Prompt, RecordWriter, Sample, Verdict, atomic_write_text, read_records
from posttrain.sampling import sample_prompts
from posttrain.train.dpo import DPOConfig


@dataclass
class PromptsSection:
    n_train: int = 48
    n_heldout: int = 32
    constraints: str = "1-3"  # constraints per prompt, "k" or "lo-hi"
    ids: list[str] | None = None  # constraint ids to draw from (default: CGPO's 23 types)
    seed_tasks: str | None = None  # optional file of user tasks (see `posttrain prompts synth --help`)


@dataclass
class SampleSection:
    n: int = 4
    max_new_tokens: int = 128
    temperature: float = 0.8
    top_p: float = 0.95
    dtype: str = "auto"  # bf16 where the CPU computes it natively (faster sampling); evaluation always runs fp32
    batch_prompts: int = 8  # prompts per generation batch (each sampled n times: n * batch_prompts rows)


@dataclass
class JudgeSection:
    mode: str = "fixed"  # constraint checking for training rewards: "fixed" (bugs fixed) or "ifeval" (reference)


@dataclass
class PairsSection:
    method: str = "rs"  # rs | mcts | repair, or several joined by "+" (e.g. rs+repair); "both" = rs+mcts
    contrast: str = "high"  # rs: high | low | mixed | cgpo
    mixed_high_ratio: float = 0.5
    require_finished: bool = True  # rs: a sample cut off by sample.max_new_tokens is never chosen as satisfied
    repair_per_prompt: int = 2  # repair: at most this many repaired pairs per prompt
    mcts_prompts: int | None = None  # MCTS is costly: search only the first k training prompts (None = all)
    mcts: MCTSConfig = field(default_factory=MCTSConfig)

    @property
    def methods(self) -> set[str]:
        return {"rs", "mcts"} if self.method == "both" else set(self.method.split("+"))


@dataclass
class EvalSection:
    max_new_tokens: int = 256
    ifeval_data: str | None = None  # an IFEval-format file (key, prompt, instruction_id_list, kwargs) you supply
    ifeval_limit: int | None = None  # evaluate only its first k prompts
    examples: int = 6  # held-out prompts shown with before/after completions in the report


@dataclass
class RunConfig:
    name: str = "quickstart"
    runs_dir: str = "runs"
    model: str = "embedded"  # "embedded" or a local HF model directory
    seed: int = 0
    threads: int | None = None  # torch threads (default: all available cores)
    prompts: PromptsSection = field(default_factory=PromptsSection)
    sample: SampleSection = field(default_factory=SampleSection)
    judge: JudgeSection = field(default_factory=JudgeSection)
    pairs: PairsSection = field(default_factory=PairsSection)
    train: DPOConfig = field(default_factory=DPOConfig)
    eval: EvalSection = field(default_factory=EvalSection)

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    def check(self) -> None:
        if not self.pairs.methods or not self.pairs.methods <= {"rs", "mcts", "repair"}:
            raise InputError(f"pairs.method must be rs, mcts, repair (or several joined by '+'), or both; "
                             f"got '{self.pairs.method}'")  # fmt: skip
        if self.sample.dtype not in DTYPES:
            raise InputError(f"sample.dtype must be one of {', '.join(DTYPES)}, got '{self.sample.dtype}'")
        if self.judge.mode not in ("ifeval", "fixed"):
            raise InputError(f"judge.mode must be ifeval or fixed, got '{self.judge.mode}'")
        if self.prompts.n_train < 1 or self.prompts.n_heldout < 1:
            raise InputError("prompts.n_train and prompts.n_heldout must be at least 1")
        if self.eval.ifeval_data and not Path(self.eval.ifeval_data).exists():
            raise InputError("eval.ifeval_data: file not found", self.eval.ifeval_data)


# ------------------------------------------------------------------------------------------------- stages


def make_prompts(cfg: RunConfig, out: Path) -> None:
    from posttrain.prompts.stats import compute_stats, save_stats
    from posttrain.prompts.synth import SynthConfig, synthesize

    total = cfg.prompts.n_train + cfg.prompts.n_heldout
    synth = SynthConfig(
        n=total, constraints=cfg.prompts.constraints, seed=cfg.seed, ids=cfg.prompts.ids,
        seed_tasks=cfg.prompts.seed_tasks,
    )  # fmt: skip
    prompts, counters = synthesize(synth)
    order = list(range(len(prompts)))
    random.Random(cfg.seed).shuffle(order)
    heldout = [prompts[i] for i in order[: cfg.prompts.n_heldout]]
    train = [prompts[i] for i in order[cfg.prompts.n_heldout :]]
    with RecordWriter(out / "heldout.jsonl", fresh=True) as writer:
        for p in heldout:
            writer.write(p.model_copy(update={"source": "synth-heldout"}))
    with RecordWriter(out / "train.jsonl", fresh=True) as writer:
        for p in train:
            writer.write(p)
    save_stats(compute_stats(train, {"generation": counters}), out / "stats.json")


def _backend(cfg: RunConfig, model: str, dtype: str = "float32") -> Any:
    from posttrain.models import load_backend

    return load_backend(model, threads=cfg.threads, dtype=dtype)


def _greedy_eval(cfg: RunConfig, model: str, run_dir: Path, out: Path) -> None:
    """Greedy responses to the held-out prompts (and the user's IFEval file) and their IFEval metrics."""
    from posttrain.evals.ifeval import evaluate_ifeval
    from posttrain.models import SamplingParams

    heldout = read_records(run_dir / "prompts" / "heldout.jsonl", Prompt)
    sets: dict[str, list[Prompt]] = {"heldout": heldout}
    if cfg.eval.ifeval_data:
        rows = read_records(cfg.eval.ifeval_data, Prompt)
        sets["ifeval"] = rows[: cfg.eval.ifeval_limit] if cfg.eval.ifeval_limit else rows
    backend = _backend(cfg, model)
    params = SamplingParams(max_new_tokens=cfg.eval.max_new_tokens, temperature=0.0, seed=cfg.seed)
    for name, prompts in sets.items():
        path = out / f"{name}_responses.jsonl"
        with generation_progress(f"{out.name}: {name}", len(prompts)) as bar:
            sample_prompts(backend, prompts, path, 1, params, model, 16, bar.advance)
        responses = {s.prompt_id: s.completion for s in read_records(path, Sample)}
        result = evaluate_ifeval(
            [{"key": p.id, "prompt": p.text, "instruction_id_list": p.instruction_id_list, "kwargs": p.kwargs}
             for p in prompts],
            {p.text: responses[p.id] for p in prompts},
            mode="ifeval",
        )  # fmt: skip
        result.write(out / name)


def sample_train(cfg: RunConfig, run_dir: Path, out: Path) -> None:
    from posttrain.models import SamplingParams

    prompts = read_records(run_dir / "prompts" / "train.jsonl", Prompt)
    backend = _backend(cfg, cfg.model, cfg.sample.dtype)
    s = cfg.sample
    params = SamplingParams(max_new_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p, seed=cfg.seed)
    with generation_progress("sample", len(prompts)) as bar:
        sample_prompts(backend, prompts, out / "samples.jsonl", s.n, params, cfg.model, s.batch_prompts, bar.advance)


def judge_samples(cfg: RunConfig, run_dir: Path, out: Path) -> None:
    from posttrain.judges import get_judge
    from posttrain.judges import judge_samples as judge_records

    prompts = {p.id: p for p in read_records(run_dir / "prompts" / "train.jsonl", Prompt)}
    samples = read_records(run_dir / "sample" / "samples.jsonl", Sample)
    with RecordWriter(out / "verdicts.jsonl", fresh=True) as writer:
        for verdict in judge_records(get_judge("ifeval", mode=cfg.judge.mode), samples, prompts):
            writer.write(verdict)


def build_pairs(cfg: RunConfig, run_dir: Path, out: Path) -> None:
    from posttrain.pairs.rejection import rejection_sampling_pairs

    prompts = {p.id: p for p in read_records(run_dir / "prompts" / "train.jsonl", Prompt)}
    stats: dict[str, Any] = {}
    pairs: list[Pair] = []
    samples = read_records(run_dir / "sample" / "samples.jsonl", Sample)
    if "rs" in cfg.pairs.methods:
        verdicts = read_records(run_dir / "judge" / "verdicts.jsonl", Verdict)
        rs, rs_stats = rejection_sampling_pairs(
            samples, verdicts, prompts, cfg.pairs.contrast, cfg.pairs.mixed_high_ratio, seed=cfg.seed,
            require_finished=cfg.pairs.require_finished,
        )
        pairs += rs
        stats["rs"] = rs_stats.as_dict()
        stats["rs"]["generated_tokens"] = sum(s.completion_tokens or 0 for s in samples)
    if "repair" in cfg.pairs.methods:
        from posttrain.pairs.repair import repair_pairs

        repaired, repair_stats = repair_pairs(samples, prompts, cfg.pairs.repair_per_prompt, cfg.judge.mode, cfg.seed)
        pairs += repaired
        stats["repair"] = repair_stats.as_dict()
    if "mcts" in cfg.pairs.methods:
        mcts, mcts_stats = _mcts(cfg, list(prompts.values()))
        pairs += mcts
        stats["mcts"] = mcts_stats
    with RecordWriter(out / "pairs.jsonl", fresh=True) as writer:
        for pair in pairs:
            writer.write(pair)
    atomic_write_text(out / "stats.json", json.dumps(stats, indent=2))


def _mcts(cfg: RunConfig, prompts: list[Prompt]) -> tuple[list[Pair], dict[str, Any]]:
    from posttrain.models import SamplingParams
    from posttrain.pairs.mcts import constraint_scorer, mcts_pairs

    search = prompts[: cfg.pairs.mcts_prompts] if cfg.pairs.mcts_prompts else prompts
    scorer = constraint_scorer(cfg.judge.mode)
    pairs, stats = mcts_pairs(search, _backend(cfg, cfg.model, cfg.sample.dtype), SamplingParams, scorer, cfg.pairs.mcts)
    return pairs, stats.as_dict()


def train_policy(cfg: RunConfig, run_dir: Path, out: Path) -> None:
    from dataclasses import replace

    from posttrain.train.dpo import train_dpo

    pairs = read_records(run_dir / "pairs" / "pairs.jsonl", Pair) if _has_rows(run_dir / "pairs" / "pairs.jsonl") else []
    if not pairs:
        raise InputError("no preference pairs were built: every prompt lacked contrast; raise sample.n or "
                         "sample.temperature, or use more prompts")  # fmt: skip
    train_cfg = replace(
        cfg.train,
        model=replace(cfg.train.model, name=cfg.model),
        train=replace(cfg.train.train, output_dir=str(out / "run"), seed=cfg.seed),
    )
    train_dpo(train_cfg, pairs)


def _has_rows(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def trained_model_dir(run_dir: Path) -> Path:
    return run_dir / "train" / "run" / "model"


def write_run_report(cfg: RunConfig, run_dir: Path, out: Path, timings: list[dict[str, Any]]) -> None:
    from posttrain.pipeline.summary import collect_summary
    from posttrain.report.html import write_report

    summary = collect_summary(cfg, run_dir, timings)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    write_report(summary, run_dir / "report.html")


def build_stages(cfg: RunConfig, timings: list[dict[str, Any]]) -> list[Stage]:
    run_dir = cfg.run_dir
    common = {"model": cfg.model, "seed": cfg.seed}
    return [
        Stage("prompts", lambda out: make_prompts(cfg, out), {"seed": cfg.seed, "prompts": asdict(cfg.prompts)}),
        Stage("eval_before", lambda out: _greedy_eval(cfg, cfg.model, run_dir, out),
              {**common, "eval": asdict(cfg.eval)}, after=["prompts"]),  # fmt: skip
        Stage("sample", lambda out: sample_train(cfg, run_dir, out), {**common, "sample": asdict(cfg.sample)},
              after=["prompts"]),  # fmt: skip
        Stage("judge", lambda out: judge_samples(cfg, run_dir, out), asdict(cfg.judge), after=["sample"]),
        Stage("pairs", lambda out: build_pairs(cfg, run_dir, out), {**common, "pairs": asdict(cfg.pairs)},
              after=["judge"]),  # fmt: skip
        Stage("train", lambda out: train_policy(cfg, run_dir, out), {**common, "train": asdict(cfg.train)},
              after=["pairs"]),  # fmt: skip
        Stage("eval_after", lambda out: _greedy_eval(cfg, str(trained_model_dir(run_dir)), run_dir, out),
              {"eval": asdict(cfg.eval)}, after=["train", "prompts"]),  # fmt: skip
        Stage("report", lambda out: write_run_report(cfg, run_dir, out, timings), {"v": 1},
              after=["eval_before", "pairs", "train", "eval_after"]),  # fmt: skip
    ]


def count_values(verdicts: list[Verdict]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = {}
    for v in verdicts:
        counts.setdefault(v.judge, Counter())[str(v.value)] += 1
    return {judge: dict(c) for judge, c in counts.items()}
