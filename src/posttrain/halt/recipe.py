"""`posttrain halt run --config recipes/halt_math.yaml`: HALT against standard SFT, at several thresholds.

    problems   n_train + n_heldout generated math problems with step-by-step ground truth
    sample     the model's own answers to the training problems (sample.n each)
    build_<t>  HALT targets at each threshold t, from those answers
    standard   standard SFT targets on the same problems, one per answer (so the same number of rows): the
               ground-truth solution (`baseline: gold`) or the model's answer unedited (`baseline: samples`)
    train_<m>  SFT of the model on each set, with the same `sft` section (same epochs, lr, batches, seed)
    eval_<m>   greedy answers to the held-out problems, graded: the untrained model, standard SFT, each HALT
               model; completeness relative to standard SFT's
    report     results.json, tradeoff.svg and report.html (correctness against completeness, a point per model)

Stages are cached and resumable (`pipeline/runner.py`): a changed setting reruns what depends on it.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

from posttrain.halt.fragments import MARKER
from posttrain.pipeline.runner import Stage, run_stages
from posttrain.train.sft import SFTConfig


@dataclass
class ProblemsSection:
    n_train: int = 64
    n_heldout: int = 32
    difficulties: list[int] = field(default_factory=lambda: [1, 2])
    seed: int = 0


@dataclass
class SampleSection:
    n: int = 1
    max_new_tokens: int = 160
    temperature: float = 0.7
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 8
    dtype: str = "auto"


@dataclass
class EvalSection:
    max_new_tokens: int = 160
    batch_size: int = 8
    temperature: float = 0.0  # 0: one greedy answer per problem; above 0, n sampled answers (halt/evaluate.py)
    n: int = 1
    seed: int = 0


@dataclass
class HaltRecipeConfig:
    name: str = "halt_math"
    runs_dir: str = "runs"
    model: str = "embedded"  # sampled from, trained (sft.model.name is set to it) and evaluated untrained
    threads: int | None = None
    marker: str = MARKER
    thresholds: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0])
    baseline: Literal["gold", "samples"] = "gold"
    problems: ProblemsSection = field(default_factory=ProblemsSection)
    sample: SampleSection = field(default_factory=SampleSection)
    eval: EvalSection = field(default_factory=EvalSection)
    sft: SFTConfig = field(default_factory=SFTConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    def check(self) -> None:
        from posttrain.errors import InputError

        if not self.thresholds or any(not 0.0 <= t <= 1.0 for t in self.thresholds):
            raise InputError(
                f"thresholds must be a non-empty list of values in [0, 1], got {self.thresholds}"
            )
        if len(set(self.thresholds)) != len(self.thresholds):
            raise InputError(f"thresholds repeat a value: {self.thresholds}")
        if self.problems.n_train < 1 or self.problems.n_heldout < 1:
            raise InputError("problems.n_train and problems.n_heldout must be at least 1")
        from posttrain.halt.evaluate import check_sampling

        check_sampling(self.eval.n, self.eval.temperature, ("eval.n", "eval.temperature"))


def halt_name(threshold: float) -> str:
    return f"halt_{threshold:g}"


def _problems(cfg: HaltRecipeConfig, run_dir: Path, split: str) -> list[Any]:
    from posttrain.records import Prompt, read_records

    return read_records(run_dir / "problems" / f"{split}.jsonl", Prompt)


def make_problems(cfg: HaltRecipeConfig, out: Path) -> None:
    from posttrain.halt.problems import generate_problems
    from posttrain.records import write_records

    p = cfg.problems
    problems = generate_problems(p.n_train + p.n_heldout, p.difficulties, p.seed)
    write_records(out / "train.jsonl", problems[: p.n_train])
    write_records(out / "heldout.jsonl", problems[p.n_train :])


def sample_train(cfg: HaltRecipeConfig, run_dir: Path, out: Path) -> None:
    from posttrain.halt.sampling import sample_answers
    from posttrain.models.backend import SamplingParams

    s = cfg.sample
    params = SamplingParams(
        max_new_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p, seed=s.seed
    )
    sample_answers(_problems(cfg, run_dir, "train"), out / "samples.jsonl", cfg.model, params, n=s.n,
                   batch_size=s.batch_size, threads=cfg.threads, dtype=s.dtype)  # fmt: skip


def build_halt(cfg: HaltRecipeConfig, run_dir: Path, threshold: float, out: Path) -> None:
    from posttrain.halt.build import build_targets, read_samples
    from posttrain.halt.domains import get_domain, make_grader

    problems = _problems(cfg, run_dir, "train")
    samples = read_samples(run_dir / "sample" / "samples.jsonl", {p.id: p for p in problems})
    domain = get_domain("math")
    build_targets(
        problems, samples, out / "sft.jsonl", domain, make_grader(domain, None), threshold, cfg.marker
    )


def build_standard(cfg: HaltRecipeConfig, run_dir: Path, out: Path) -> None:
    from posttrain.atomic import atomic_write_text
    from posttrain.halt.build import read_samples
    from posttrain.records import content_id

    problems = {p.id: p for p in _problems(cfg, run_dir, "train")}
    rows = []
    for s in read_samples(run_dir / "sample" / "samples.jsonl", problems):
        problem = problems[s.prompt_id]
        target = str((problem.model_extra or {}).get("solution")) if cfg.baseline == "gold" else s.completion
        rows.append({"id": content_id(s.id, cfg.baseline), "prompt": problem.text, "completion": target,
                     "prompt_id": problem.id, "sample_id": s.id, "baseline": cfg.baseline})  # fmt: skip
    atomic_write_text(out / "sft.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def train_on(cfg: HaltRecipeConfig, data: Path, out: Path) -> None:
    from posttrain.train.data import read_rows_with_lines
    from posttrain.train.sft import SFTExample, train_sft

    sft = copy.deepcopy(cfg.sft)
    sft.model.name = cfg.model
    sft.train.output_dir = str(out / "train")
    rows, source = read_rows_with_lines(str(data), SFTExample)
    train_sft(sft, rows, source)


def evaluate(cfg: HaltRecipeConfig, run_dir: Path, model: str, reference: bool, out: Path) -> None:
    from posttrain.halt.domains import get_domain, make_grader
    from posttrain.halt.evaluate import evaluate_halt, read_results

    domain = get_domain("math")
    ref = read_results(run_dir / "eval_standard") if reference else None
    e = cfg.eval
    evaluate_halt(_problems(cfg, run_dir, "heldout"), domain, make_grader(domain, None), out, model=model,
                  max_new_tokens=e.max_new_tokens, batch_size=e.batch_size, threads=cfg.threads, reference=ref,
                  temperature=e.temperature, n=e.n, seed=e.seed)  # fmt: skip


def trained_model(run_dir: Path, name: str) -> str:
    return str(run_dir / f"train_{name}" / "train" / "model")


def collect_results(cfg: HaltRecipeConfig, run_dir: Path, timings: list[dict[str, Any]]) -> dict[str, Any]:
    def row(name: str, label: str, threshold: float | None) -> dict[str, Any]:
        """The metrics of one evaluation under a label (metrics.json's own `model` is the evaluated path)."""
        metrics = json.loads((run_dir / f"eval_{name}" / "metrics.json").read_text(encoding="utf-8"))
        return {**metrics, "evaluated": metrics.get("model"), "model": label, "threshold": threshold}

    rows = [row("base", "untrained", None), row("standard", "standard SFT", None)]
    builds = {}
    for t in cfg.thresholds:
        rows.append(row(halt_name(t), f"HALT t={t:g}", t))
        builds[f"{t:g}"] = json.loads(
            (run_dir / f"build_{t:g}" / "sft.jsonl.stats.json").read_text(encoding="utf-8")
        )
    return {
        "name": cfg.name, "model": cfg.model, "domain": "math", "baseline": cfg.baseline,
        "heldout_problems": cfg.problems.n_heldout, "train_problems": cfg.problems.n_train,
        "samples_per_problem": cfg.sample.n, "rows": rows, "builds": builds, "timings": timings,
    }  # fmt: skip


def write_outputs(cfg: HaltRecipeConfig, run_dir: Path, out: Path, timings: list[dict[str, Any]]) -> None:
    from posttrain.atomic import atomic_write_text
    from posttrain.report.halt import plot_tradeoff
    from posttrain.report.html import write_report

    results = collect_results(cfg, run_dir, timings)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(out / "tradeoff.svg", plot_tradeoff(results["rows"]))
    total = sum(t["seconds"] for t in timings)
    summary = {"name": cfg.name, "model": cfg.model, "total_seconds": total, "halt": results,
               "timings": timings, "config": asdict(cfg)}  # fmt: skip
    write_report(summary, run_dir / "report.html")


def build_stages(cfg: HaltRecipeConfig, timings: list[dict[str, Any]]) -> list[Stage]:
    run_dir = cfg.run_dir
    problems_cfg, sample_cfg = asdict(cfg.problems), {"sample": asdict(cfg.sample), "model": cfg.model}
    sft_cfg, eval_cfg = {"sft": asdict(cfg.sft), "model": cfg.model}, asdict(cfg.eval)
    stages = [
        Stage("problems", lambda out: make_problems(cfg, out), problems_cfg),
        Stage("sample", lambda out: sample_train(cfg, run_dir, out), sample_cfg, ["problems"]),
        Stage("build_standard", lambda out: build_standard(cfg, run_dir, out), {"baseline": cfg.baseline},
              ["sample"]),
    ]  # fmt: skip
    for t in cfg.thresholds:
        stages.append(Stage(f"build_{t:g}", partial(build_halt, cfg, run_dir, t),
                            {"threshold": t, "marker": cfg.marker}, ["sample"]))  # fmt: skip
    names = ["standard", *(halt_name(t) for t in cfg.thresholds)]
    data = {"standard": "build_standard", **{halt_name(t): f"build_{t:g}" for t in cfg.thresholds}}
    for name in names:
        stages.append(Stage(f"train_{name}", partial(train_on, cfg, run_dir / data[name] / "sft.jsonl"),
                            sft_cfg, [data[name]]))  # fmt: skip
    stages.append(Stage("eval_standard", partial(evaluate, cfg, run_dir, trained_model(run_dir, "standard"), False),
                        eval_cfg, ["train_standard", "problems"]))  # fmt: skip
    stages.append(Stage("eval_base", partial(evaluate, cfg, run_dir, cfg.model, True),
                        {**eval_cfg, "model": cfg.model}, ["eval_standard", "problems"]))  # fmt: skip
    for t in cfg.thresholds:
        name = halt_name(t)
        stages.append(Stage(f"eval_{name}", partial(evaluate, cfg, run_dir, trained_model(run_dir, name), True),
                            eval_cfg, [f"train_{name}", "eval_standard"]))  # fmt: skip
    stages.append(Stage("report", lambda out: write_outputs(cfg, run_dir, out, timings), {},
                        [s.name for s in stages]))  # fmt: skip
    return stages


def run_recipe(cfg: HaltRecipeConfig, from_stage: str | None = None) -> Path:
    """Run (or resume) the recipe; returns the report's path."""
    from rich.console import Console

    cfg.check()
    console = Console(stderr=True)
    timings: list[dict[str, Any]] = []
    started: dict[str, float] = {}

    def on_event(stage: str, event: str, seconds: float) -> None:
        if event == "start":
            started[stage] = time.perf_counter()
            console.print(f"[bold]{stage}[/bold] …")
        elif stage != "report":
            timings.append({"stage": stage, "seconds": round(seconds, 1), "cached": event == "cached"})
            console.print(f"{stage}: {'cached' if event == 'cached' else f'{seconds:.0f} s'}")

    run_stages(build_stages(cfg, timings), cfg.run_dir, from_stage, on_event)
    return cfg.run_dir / "report.html"
