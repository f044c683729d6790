"""The end-to-end recipe behind `posttrain run`: synthetic verifiable prompts -> samples -> judges -> preference
pairs and/or verified SFT targets -> SFT and/or DPO, for one or more on-policy rounds -> held-out evaluation before
and after -> HTML report.

Each stage is a function of its directory and the run config, registered with its config sections and inputs in
`build_stages`; `posttrain.pipeline.runner` caches, resumes and reruns them.

    runs/<name>/prompts/{train,heldout}.jsonl      synthetic prompts (held-out ones never trained on)
    runs/<name>/eval_before/                       greedy responses + IFEval metrics of the starting model
    runs/<name>/sample/samples.jsonl               n sampled completions per training prompt
    runs/<name>/judge/verdicts.jsonl               instruction-following verdicts (strict, partial credit)
    runs/<name>/pairs/pairs.jsonl                  preference pairs (RS, MCTS and/or repair) + stats   (DPO)
    runs/<name>/targets/targets.jsonl              verified SFT targets (sampled or repaired) + stats   (SFT)
    runs/<name>/train/{sft,dpo}/model/             the trained policy (HF format) + metrics.jsonl
    runs/<name>/eval_after/                        the same evaluation for the trained policy
    runs/<name>/report.html                        the report (plots inline; opens offline)

With `rounds: R > 1` (Llama 3's recipe: each round samples from the previous round's model), the training prompts
are cut into R slices and the sample .. train stages live in `runs/<name>/round<k>/` for k = 1..R.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

from posttrain.atomic import atomic_write_text
from posttrain.distributed.cluster import RaySection
from posttrain.errors import InputError
from posttrain.evals.greedy import EvalSection
from posttrain.pairs.mcts import MCTSConfig
from posttrain.pipeline.runner import Stage
from posttrain.progress import generation_progress
from posttrain.prompts.split import PromptsSection, make_prompts
from posttrain.records import Pair, Prompt, RecordWriter, Sample, Verdict, read_records
from posttrain.sampling import sample_prompts
from posttrain.train.dpo import DPOConfig
from posttrain.train.sft import SFTConfig


@dataclass
class SampleSection:
    n: int = 4
    max_new_tokens: int = 128
    temperature: float = 0.8
    top_p: float = 0.95
    # auto: bf16 where the CPU computes it natively (faster sampling); evaluation always runs fp32
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    batch_prompts: int = 8  # prompts per generation batch (each sampled n times: n * batch_prompts rows)


@dataclass
class JudgeSection:
    # constraint checking for training rewards: "fixed" (bugs fixed) or "ifeval" (reference)
    mode: Literal["fixed", "ifeval"] = "fixed"


@dataclass
class PairsSection:
    method: str = "rs"  # rs | mcts | repair, or several joined by "+" (e.g. rs+repair); "both" = rs+mcts
    contrast: Literal["high", "low", "mixed", "cgpo"] = "high"  # rs only
    mixed_high_ratio: float = 0.5
    require_finished: bool = True  # rs: a sample cut off by sample.max_new_tokens is never chosen as satisfied
    repair_per_prompt: int = 2  # repair: at most this many repaired pairs per prompt
    mcts_prompts: int | None = None  # MCTS is costly: search only the first k training prompts (None = all)
    mcts: MCTSConfig = field(default_factory=MCTSConfig)

    @property
    def methods(self) -> set[str]:
        return {"rs", "mcts"} if self.method == "both" else set(self.method.split("+"))


@dataclass
class TargetsSection:
    repair: bool = True  # a prompt with no satisfying sample gets a repaired, re-verified one as its SFT target
    # A sample that misses an "at least" keyword/count constraint: re-phrase the prompt with what the answer says
    # (pairs/relabel.py) instead of appending template sentences to the answer.
    relabel: bool = False
    # Drop targets that meet the constraints but not the request (persona talk, restated instructions, a few
    # words where nothing asks for brevity): pairs/quality.py. Off: on the IFEval recipe it scored lower (E5).
    drop_flawed: bool = False


@dataclass
class RunConfig:
    name: str = "quickstart"
    runs_dir: str = "runs"
    model: str = "embedded"  # "embedded" or a local HF model directory
    seed: int = 0
    threads: int | None = None  # torch threads (default: all available cores)
    # dpo (on pairs) | sft (on verified targets) | sft+dpo (SFT, then DPO from the SFT model)
    optimize: Literal["dpo", "sft", "sft+dpo"] = "dpo"
    rounds: int = 1  # on-policy rounds: each samples its slice of the training prompts from the latest model
    prompts: PromptsSection = field(default_factory=PromptsSection)
    sample: SampleSection = field(default_factory=SampleSection)
    judge: JudgeSection = field(default_factory=JudgeSection)
    pairs: PairsSection = field(default_factory=PairsSection)
    targets: TargetsSection = field(default_factory=TargetsSection)
    sft: SFTConfig = field(default_factory=SFTConfig)
    train: DPOConfig = field(default_factory=DPOConfig)  # the DPO config (recipes/dpo.yaml documents every key)
    eval: EvalSection = field(default_factory=EvalSection)
    # local: every stage in this process | ray: the sample and judge stages on a Ray cluster (same records)
    executor: Literal["local", "ray"] = "local"
    ray: RaySection = field(default_factory=RaySection)

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    @property
    def steps(self) -> list[str]:
        return self.optimize.split("+")

    def check(self) -> None:
        if not 1 <= self.rounds <= self.prompts.n_train:
            raise InputError(f"rounds must be between 1 and prompts.n_train ({self.prompts.n_train}), got {self.rounds}")
        if not self.pairs.methods or not self.pairs.methods <= {"rs", "mcts", "repair"}:
            raise InputError(f"pairs.method must be rs, mcts, repair (or several joined by '+'), or both; "
                             f"got '{self.pairs.method}'")  # fmt: skip
        if self.prompts.n_train < 1 or self.prompts.n_heldout < 1:
            raise InputError("prompts.n_train and prompts.n_heldout must be at least 1")
        self.eval.check()
        self.ray.check()


# ------------------------------------------------------------------------------------------------- stages


def round_dirs(cfg: RunConfig) -> list[str]:
    """Where each round's sample .. train stages live, relative to the run directory ("" for a single round)."""
    return [""] if cfg.rounds == 1 else [f"round{k}/" for k in range(1, cfg.rounds + 1)]


def round_prompts(cfg: RunConfig, run_dir: Path, round_index: int) -> list[Prompt]:
    """The round's contiguous slice of the training prompts (all of them for a single round)."""
    prompts = read_records(run_dir / "prompts" / "train.jsonl", Prompt)
    size, extra = divmod(len(prompts), cfg.rounds)
    start = round_index * size + min(round_index, extra)
    return prompts[start : start + size + (round_index < extra)]


def round_model(cfg: RunConfig, run_dir: Path, round_index: int) -> str:
    """The model a round samples from and starts training at: the previous round's result, else cfg.model."""
    return cfg.model if round_index == 0 else str(trained_model_dir(cfg, run_dir, round_index - 1))


def evaluate_model(cfg: RunConfig, model: str, run_dir: Path, out: Path, heldout_only: bool = False) -> None:
    """Greedy responses to the held-out prompts (and the user's IFEval file) and their IFEval metrics."""
    from posttrain.evals.greedy import benchmark_prompts, evaluate_greedy

    sets = {"heldout": read_records(run_dir / "prompts" / "heldout.jsonl", Prompt)}
    if not heldout_only:
        sets |= benchmark_prompts(cfg.eval)
    evaluate_greedy(model, sets, out, cfg.eval, seed=cfg.seed, threads=cfg.threads)


def sample_train(cfg: RunConfig, run_dir: Path, round_index: int, out: Path) -> None:
    from posttrain.models import SamplingParams, load_backend

    prompts = round_prompts(cfg, run_dir, round_index)
    model = round_model(cfg, run_dir, round_index)
    s = cfg.sample
    params = SamplingParams(max_new_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p, seed=cfg.seed)
    label = out.as_posix().removeprefix(run_dir.as_posix() + "/")
    if cfg.executor == "ray":  # the model loads in each actor, not here
        from posttrain.distributed.sampling import sample_prompts_on_ray

        with generation_progress(label, len(prompts)) as bar:
            sample_prompts_on_ray(model, prompts, out / "samples.jsonl", s.n, params, s.batch_prompts, cfg.ray,
                                  s.dtype, bar.advance)  # fmt: skip
        return
    backend = load_backend(model, threads=cfg.threads, dtype=s.dtype, rows=s.batch_prompts * s.n)
    with generation_progress(label, len(prompts)) as bar:
        sample_prompts(backend, prompts, out / "samples.jsonl", s.n, params, model, s.batch_prompts, bar.advance)


def judge_samples(cfg: RunConfig, run_dir: Path, round_dir: str, out: Path) -> None:
    """The same stage as `posttrain judge --judges ifeval` (checked inputs, resumable, worker processes or Ray)."""
    from posttrain.judges.runner import JudgeRunConfig, judge_files

    judges = JudgeRunConfig(judges={"ifeval": {"mode": cfg.judge.mode}})
    samples, prompts = run_dir / round_dir / "sample" / "samples.jsonl", run_dir / "prompts" / "train.jsonl"
    files = (samples, prompts, out / "verdicts.jsonl")
    if cfg.executor == "ray":
        from posttrain.distributed.judging import judge_files_on_ray

        judge_files_on_ray(*files, judges, cfg.ray)
    else:
        judge_files(*files, judges)


def build_pairs(cfg: RunConfig, run_dir: Path, round_dir: str, round_index: int, out: Path) -> None:
    from posttrain.pairs.rejection import rejection_sampling_pairs

    prompts = {p.id: p for p in read_records(run_dir / "prompts" / "train.jsonl", Prompt)}
    stats: dict[str, Any] = {}
    pairs: list[Pair] = []
    samples = read_records(run_dir / round_dir / "sample" / "samples.jsonl", Sample)
    if "rs" in cfg.pairs.methods:
        verdicts = read_records(run_dir / round_dir / "judge" / "verdicts.jsonl", Verdict)
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
        mcts, mcts_stats = _mcts(cfg, round_prompts(cfg, run_dir, round_index), round_model(cfg, run_dir, round_index),
                                 out)
        pairs += mcts
        stats["mcts"] = mcts_stats
    with RecordWriter(out / "pairs.jsonl", fresh=True) as writer:
        for pair in pairs:
            writer.write(pair)
    atomic_write_text(out / "stats.json", json.dumps(stats, indent=2))


def build_targets(cfg: RunConfig, run_dir: Path, round_dir: str, out: Path) -> None:
    from posttrain.pairs.targets import sft_targets

    prompts = {p.id: p for p in read_records(run_dir / "prompts" / "train.jsonl", Prompt)}
    samples = read_records(run_dir / round_dir / "sample" / "samples.jsonl", Sample)
    rows, stats = sft_targets(
        samples, prompts, cfg.targets.repair, cfg.seed, cfg.targets.relabel, cfg.targets.drop_flawed
    )
    atomic_write_text(out / "targets.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    atomic_write_text(out / "stats.json", json.dumps(stats.as_dict(), indent=2))


def _mcts(cfg: RunConfig, prompts: list[Prompt], model: str, out: Path) -> tuple[list[Pair], dict[str, Any]]:
    """MCTS pairs through the stage `posttrain pairs --method mcts` runs: resumable per prompt (`mcts.jsonl`)."""
    from posttrain.models import SamplingParams, load_backend
    from posttrain.pairs.mcts import constraint_scorer, mcts_pairs_to_file

    search = prompts[: cfg.pairs.mcts_prompts] if cfg.pairs.mcts_prompts else prompts
    scorer = constraint_scorer(cfg.judge.mode)
    backend = load_backend(model, threads=cfg.threads, dtype=cfg.sample.dtype)
    with generation_progress("mcts", len(search)) as bar:
        skipped, stats = mcts_pairs_to_file(search, out / "mcts.jsonl", backend, SamplingParams, scorer,
                                            cfg.pairs.mcts, lambda n: bar.advance(n, 0))  # fmt: skip
    return read_records(out / "mcts.jsonl", Pair), {**stats.as_dict(), "resumed_prompts": skipped}


def train_policy(cfg: RunConfig, run_dir: Path, round_dir: str, round_index: int, out: Path) -> None:
    """SFT on the round's verified targets and/or DPO on its pairs, starting from the round's model."""
    from posttrain.train.dpo import train_dpo
    from posttrain.train.sft import SFTExample, train_sft

    model = round_model(cfg, run_dir, round_index)
    if "sft" in cfg.steps:
        rows = [json.loads(line) for line in (run_dir / round_dir / "targets" / "targets.jsonl").read_text().splitlines()]
        if not rows:
            raise InputError("no verified SFT targets were found: no sample met its constraints and none could be "
                             "repaired; raise sample.n or sample.max_new_tokens, or use more prompts")  # fmt: skip
        sft_cfg = replace(cfg.sft, model=replace(cfg.sft.model, name=model),
                          train=replace(cfg.sft.train, output_dir=str(out / "sft"), seed=cfg.seed))  # fmt: skip
        examples = [SFTExample(prompt=r["prompt"], completion=r["completion"]) for r in rows]
        model = str(train_sft(sft_cfg, examples).model_dir)
    if "dpo" in cfg.steps:
        path = run_dir / round_dir / "pairs" / "pairs.jsonl"
        pairs = read_records(path, Pair) if _has_rows(path) else []
        if not pairs:
            raise InputError("no preference pairs were built: every prompt lacked contrast; raise sample.n or "
                             "sample.temperature, or use more prompts")  # fmt: skip
        dpo_cfg = replace(cfg.train, model=replace(cfg.train.model, name=model),
                          train=replace(cfg.train.train, output_dir=str(out / "dpo"), seed=cfg.seed))  # fmt: skip
        train_dpo(dpo_cfg, pairs)


def _has_rows(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def trained_model_dir(cfg: RunConfig, run_dir: Path, round_index: int | None = None) -> Path:
    """The model a round ends with (the last round's by default): its last training step's output."""
    round_dir = round_dirs(cfg)[-1 if round_index is None else round_index]
    return run_dir / round_dir / "train" / cfg.steps[-1] / "model"


def write_run_report(cfg: RunConfig, run_dir: Path, out: Path, timings: list[dict[str, Any]]) -> None:
    from posttrain.pipeline.summary import collect_summary
    from posttrain.report.html import write_report

    summary = collect_summary(cfg, run_dir, timings)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    write_report(summary, run_dir / "report.html")


def build_stages(cfg: RunConfig, timings: list[dict[str, Any]]) -> list[Stage]:
    run_dir = cfg.run_dir
    common = {"model": cfg.model, "seed": cfg.seed}
    stages = [
        Stage("prompts", partial(make_prompts, cfg.prompts, cfg.seed), {"seed": cfg.seed, "prompts": asdict(cfg.prompts)})
    ]
    rounds = round_dirs(cfg)
    for k, rd in enumerate(rounds):
        previous = [f"{rounds[k - 1]}train"] if k else []  # a round starts from the model the previous one trained
        sample_cfg = {**common, "sample": asdict(cfg.sample), "rounds": cfg.rounds, "round": k}
        stages += [
            Stage(f"{rd}sample", partial(sample_train, cfg, run_dir, k), sample_cfg, after=["prompts", *previous]),
            Stage(f"{rd}judge", partial(judge_samples, cfg, run_dir, rd), asdict(cfg.judge), after=[f"{rd}sample"]),
        ]
        inputs = []
        if "dpo" in cfg.steps:
            stages.append(Stage(f"{rd}pairs", partial(build_pairs, cfg, run_dir, rd, k),
                                {**common, "pairs": asdict(cfg.pairs)}, after=[f"{rd}judge", *previous]))  # fmt: skip
            inputs.append(f"{rd}pairs")
        if "sft" in cfg.steps:
            stages.append(Stage(f"{rd}targets", partial(build_targets, cfg, run_dir, rd),
                                {"seed": cfg.seed, "targets": asdict(cfg.targets)}, after=[f"{rd}judge"]))  # fmt: skip
            inputs.append(f"{rd}targets")
        train_cfg: dict[str, Any] = {**common, "optimize": cfg.optimize}
        train_cfg |= {"sft": asdict(cfg.sft)} if "sft" in cfg.steps else {}
        train_cfg |= {"train": asdict(cfg.train)} if "dpo" in cfg.steps else {}
        stages.append(Stage(f"{rd}train", partial(train_policy, cfg, run_dir, rd, k), train_cfg,
                            after=[*inputs, *previous]))  # fmt: skip
        if cfg.eval.each_round and k < len(rounds) - 1:  # the last round's model is eval_after's
            model = str(trained_model_dir(cfg, run_dir, k))
            stages.append(Stage(f"{rd}eval", partial(evaluate_model, cfg, model, run_dir, heldout_only=True),
                                {"eval": asdict(cfg.eval)}, after=[f"{rd}train", "prompts"]))  # fmt: skip
    trained = f"{rounds[-1]}train"
    # Evaluations come after training, so the training stages' wall time is the recipe's own; the trained model
    # first (what is new), then the starting model (usually a hit in eval.cache_dir).
    stages += [
        Stage("eval_after", partial(evaluate_model, cfg, str(trained_model_dir(cfg, run_dir)), run_dir),
              {"eval": asdict(cfg.eval)}, after=[trained, "prompts"]),  # fmt: skip
        Stage("eval_before", partial(evaluate_model, cfg, cfg.model, run_dir), {**common, "eval": asdict(cfg.eval)},
              after=["prompts"]),  # fmt: skip
        Stage("report", partial(write_run_report, cfg, run_dir, timings=timings), {"v": 2},
              after=["eval_before", trained, "eval_after"]),  # fmt: skip
    ]
    return stages
