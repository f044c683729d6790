"""The synthetic prompts of a run, split into the ones trained on and the ones held out for evaluation: made the
same way by `posttrain run` and `posttrain train cgpo`, so the same seed gives the same split."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from posttrain.records import RecordWriter


@dataclass
class PromptsSection:
    n_train: int = 48
    n_heldout: int = 32
    constraints: str = "1-3"  # constraints per prompt, "k" or "lo-hi"
    ids: list[str] | None = None  # constraint ids to draw from (default: CGPO's 23 types)
    weights: dict[str, float] | None = None  # id -> relative weight of drawing it (others weigh 1)
    seed_tasks: str | None = None  # optional file of user tasks (see `posttrain prompts synth --help`)


def make_prompts(section: PromptsSection, seed: int, out: Path) -> None:
    """`out/train.jsonl`, `out/heldout.jsonl` and the training prompts' `out/stats.json`."""
    from posttrain.prompts.stats import compute_stats, save_stats
    from posttrain.prompts.synth import SynthConfig, synthesize

    total = section.n_train + section.n_heldout
    synth = SynthConfig(n=total, constraints=section.constraints, seed=seed, ids=section.ids,
                        weights=section.weights, seed_tasks=section.seed_tasks)  # fmt: skip
    prompts, counters = synthesize(synth)
    order = list(range(len(prompts)))
    random.Random(seed).shuffle(order)
    heldout = [prompts[i] for i in order[: section.n_heldout]]
    train = [prompts[i] for i in order[section.n_heldout :]]
    with RecordWriter(out / "heldout.jsonl", fresh=True) as writer:
        for p in heldout:
            writer.write(p.model_copy(update={"source": "synth-heldout"}))
    with RecordWriter(out / "train.jsonl", fresh=True) as writer:
        for p in train:
            writer.write(p)
    save_stats(compute_stats(train, {"generation": counters}), out / "stats.json")
