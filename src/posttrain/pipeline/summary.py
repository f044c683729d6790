"""Gather a finished run's artifacts into the plain dict the HTML report renders (also saved as summary.json)."""

from __future__ import annotations

import json
from dataclasses import asdict
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

from posttrain.evals.paired import compare_dirs
from posttrain.records import Pair, Prompt, Sample, Verdict, read_records

if TYPE_CHECKING:
    from posttrain.pipeline.quickstart import RunConfig

METRIC_KEYS = {
    "prompt_level_strict": "prompt_level_strict_acc",
    "prompt_level_loose": "prompt_level_loose_acc",
    "inst_level_strict": "inst_level_strict_acc",
    "inst_level_loose": "inst_level_loose_acc",
}


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _evaluation(metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "metrics": {short: metrics[long] for short, long in METRIC_KEYS.items()},
        "per_instruction": {cid: v["strict"] for cid, v in metrics.get("per_instruction", {}).items()},
        "n": metrics.get("num_prompts"),
    }


def _before_after(run_dir: Path, name: str) -> dict[str, Any] | None:
    before = _json(run_dir / "eval_before" / name / "metrics.json")
    after = _json(run_dir / "eval_after" / name / "metrics.json")
    if before is None or after is None:
        return None
    splits_before = _json(run_dir / "eval_before" / name / "split_metrics.json") or {}
    splits_after = _json(run_dir / "eval_after" / name / "split_metrics.json") or {}
    splits = {
        split: {"before": splits_before[split], "after": splits_after[split]}
        for split in splits_before
        if split in splits_after
    }
    return {"before": _evaluation(before), "after": _evaluation(after), "n": before.get("num_prompts"),
            "splits": splits}  # fmt: skip


def _benchmarks(run_dir: Path, train_prompts: dict[str, Prompt]) -> dict[str, dict[str, Any]]:
    """Before/after of every benchmark evaluated (IFEval, IFBench), each with a note on whether the training prompts
    drew on its constraint types: a benchmark reported as held out must not share them."""
    from posttrain.constraint_ids import IFBENCH_58, IFEVAL_25
    from posttrain.evals.greedy import BENCHMARKS

    trained = {cid for p in train_prompts.values() for cid in p.instruction_id_list}
    out = {}
    for name in BENCHMARKS:
        evaluation = _before_after(run_dir, name)
        if evaluation is None:
            continue
        types = set(IFEVAL_25 if name == "ifeval" else IFBENCH_58)
        shared = sorted(trained & types)
        if not shared:
            evaluation["note"] = f"Out of distribution: the training prompts used none of {name}'s {len(types)} constraint types."
        else:
            unused = sorted(types - trained)
            which = f"all but {', '.join(unused)}" if len(unused) < len(shared) else ", ".join(shared)
            evaluation["note"] = (
                f"In distribution: the training prompts used {len(shared)} of {name}'s {len(types)} constraint types "
                f"({which or 'all'})."
            )
        out[name] = evaluation
    return out


def _per_round(cfg: RunConfig, run_dir: Path) -> list[dict[str, Any]]:
    """Held-out metrics of the starting model, of every round's model (`eval.each_round`), and of the last."""
    from posttrain.pipeline.quickstart import round_dirs

    rounds = round_dirs(cfg)
    paths = [("start", run_dir / "eval_before")]
    paths += [(rd.rstrip("/"), run_dir / rd / "eval") for rd in rounds[:-1]]
    paths.append((rounds[-1].rstrip("/") or "trained", run_dir / "eval_after"))
    rows = []
    for name, path in paths:
        metrics = _json(path / "heldout" / "metrics.json")
        if metrics is not None:
            rows.append({"model": name, **_evaluation(metrics)["metrics"]})
    return rows if len(rows) > 2 else []


def _training_curves(cfg: RunConfig, run_dir: Path) -> list[dict[str, Any]]:
    """Every optimizer step of every round's SFT and DPO, in order, with its phase (e.g. "round2/sft")."""
    from posttrain.pipeline.quickstart import round_dirs

    rows, step = [], 0
    for rd in round_dirs(cfg):
        for phase in cfg.steps:
            for r in _jsonl(run_dir / rd / "train" / phase / "metrics.jsonl"):
                step += 1
                rows.append({"step": step, "phase": f"{rd}{phase}", "loss": r.get("loss"),
                             "reward_margin": r.get("rewards/margin")})  # fmt: skip
    return rows


def cohen_kappa(a: list[int], b: list[int]) -> float | None:
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    labels = set(a) | set(b)
    expected = sum((a.count(k) / n) * (b.count(k) / n) for k in labels)
    return None if expected == 1 else (observed - expected) / (1 - expected)


def judge_agreement(prompts: dict[str, Prompt], samples: list[Sample]) -> list[dict[str, Any]]:
    """How the instruction-following verdict moves between the reference (`ifeval`) and `fixed` checking, strict
    and loose: the same samples judged four ways, pairwise agreement and Cohen's kappa."""
    from posttrain.constraints import check_all

    variants = {f"{mode} {kind}": (mode, kind == "loose") for mode in ("ifeval", "fixed") for kind in ("strict", "loose")}
    labels: dict[str, list[int]] = {name: [] for name in variants}
    for s in samples:
        p = prompts[s.prompt_id]
        for name, (mode, loose) in variants.items():
            labels[name].append(int(all(check_all(s.completion, p.instruction_id_list, p.kwargs, loose=loose, mode=mode))))
    rows = []
    for a, b in combinations(variants, 2):
        agree = sum(x == y for x, y in zip(labels[a], labels[b], strict=True)) / max(len(samples), 1)
        rows.append({"a": a, "b": b, "agreement": agree, "kappa": cohen_kappa(labels[a], labels[b]), "n": len(samples)})
    return rows


def _examples(run_dir: Path, k: int) -> list[dict[str, Any]]:
    before = _jsonl(run_dir / "eval_before" / "heldout" / "eval_results_strict.jsonl")
    after = {r["prompt"]: r for r in _jsonl(run_dir / "eval_after" / "heldout" / "eval_results_strict.jsonl")}
    # Show the prompts whose outcome changed first: they are what a reader wants to see.
    rows = [(b, after[b["prompt"]]) for b in before if b["prompt"] in after]
    rows.sort(key=lambda ba: ba[0]["follow_all_instructions"] == ba[1]["follow_all_instructions"])
    return [
        {
            "prompt": b["prompt"],
            "instructions": b["instruction_id_list"],
            "before": b["response"],
            "before_ok": b["follow_instruction_list"],
            "after": a["response"],
            "after_ok": a["follow_instruction_list"],
        }
        for b, a in rows[:k]
    ]


def collect_summary(cfg: RunConfig, run_dir: Path, timings: list[dict[str, Any]]) -> dict[str, Any]:
    from posttrain.pipeline.quickstart import round_dirs

    rounds = round_dirs(cfg)
    prompts = {p.id: p for p in read_records(run_dir / "prompts" / "train.jsonl", Prompt)}
    samples = [s for rd in rounds for s in read_records(run_dir / rd / "sample" / "samples.jsonl", Sample)]
    verdicts = [v for rd in rounds for v in read_records(run_dir / rd / "judge" / "verdicts.jsonl", Verdict)]
    pairs_paths = [run_dir / rd / "pairs" / "pairs.jsonl" for rd in rounds]
    pairs = [p for path in pairs_paths if path.exists() and path.stat().st_size for p in read_records(path, Pair)]
    pair_stats = _json(run_dir / rounds[-1] / "pairs" / "stats.json") or {}
    target_stats = {rd.rstrip("/") or "all": _json(run_dir / rd / "targets" / "stats.json") for rd in rounds}

    counts: dict[str, dict[str, int]] = {}
    for v in verdicts:
        judge = counts.setdefault(v.judge, {})
        judge[str(v.value)] = judge.get(str(v.value), 0) + 1

    heldout = _before_after(run_dir, "heldout")
    headline = ""
    if heldout:
        b, a = heldout["before"]["metrics"]["prompt_level_strict"], heldout["after"]["metrics"]["prompt_level_strict"]
        headline = (
            f"Held-out synthetic prompts (n={heldout['n']}), prompt-level strict accuracy: "
            f"{100 * b:.1f}% before → {100 * a:.1f}% after training ({100 * (a - b):+.1f} pts)."
        )
        paired = compare_dirs(run_dir / "eval_before" / "heldout", run_dir / "eval_after" / "heldout")
        if paired is not None:
            headline += f" Paired: {paired.describe()}."
    rs_stats = pair_stats.get("rs") or pair_stats.get("mcts") or pair_stats.get("repair") or {}
    return {
        "name": cfg.name,
        "model": cfg.model,
        "config": asdict(cfg),
        "headline": headline,
        "total_seconds": sum(t["seconds"] for t in timings),
        "timings": timings,
        "heldout_eval": heldout,
        "benchmarks": _benchmarks(run_dir, prompts),
        "targets": {name: stats for name, stats in target_stats.items() if stats},
        "pairs": None if not pairs else {
            "method": cfg.pairs.method,
            "contrast": cfg.pairs.contrast,
            "stats": rs_stats,
            "all_stats": pair_stats,
            "chosen_scores": [p.chosen_score for p in pairs if p.chosen_score is not None],
            "rejected_scores": [p.rejected_score for p in pairs if p.rejected_score is not None],
        },
        "training": _training_curves(cfg, run_dir),
        "rounds": _per_round(cfg, run_dir),
        "judges": {"counts": counts, "agreement": judge_agreement(prompts, samples)},
        "examples": _examples(run_dir, cfg.eval.examples),
    }
