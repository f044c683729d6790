"""Speed of `posttrain prompts synth` (template path) against a peer generator, in the same run.

No peer system ships a synthetic-IF-prompt generator (peers.md §1). The closest is IFEval's own instruction
library, whose `build_description()` draws random kwargs and a phrasing per instruction: the peer here uses it
(lm-eval's copy, `lm_eval.tasks.ifeval`) with IFEval's conflict table, the same base tasks and the same k range,
and writes JSONL. It does no task fitting, no deduplication, no difficulty, no stats, so it is a lower bound on
the work, not an equal feature set.

    python bench/synth_speed.py --n 48000 --constraints 1-5
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path


def peer(n: int, k_min: int, k_max: int, seed: int, out: Path) -> float:
    import lm_eval

    # lm_eval.tasks/__init__ imports the whole harness (sacrebleu, ...); only the ifeval modules are needed.
    tasks = types.ModuleType("lm_eval.tasks")
    tasks.__path__ = [os.path.join(os.path.dirname(lm_eval.__file__), "tasks")]
    sys.modules.setdefault("lm_eval.tasks", tasks)
    registry = importlib.import_module("lm_eval.tasks.ifeval.instructions_registry")

    from posttrain.constraint_ids import CGPO_23
    from posttrain.prompts.inventory import TASK_TYPES, TOPICS

    started = time.perf_counter()
    random.seed(seed)  # IFEval's instructions draw from the global `random`
    conflicts = registry.conflict_make({k: set(v) for k, v in registry.INSTRUCTION_CONFLICTS.items()})
    with out.open("w", encoding="utf-8") as handle:
        for _ in range(n):
            task = random.choice(TASK_TYPES)
            topic = random.choice(TOPICS)
            base = random.choice(task.templates).format(subject=random.choice(topic.subjects))
            k = random.randint(k_min, k_max)
            chosen: list[str] = []
            for cid in random.sample(CGPO_23, len(CGPO_23)):
                if all(cid not in conflicts[c] for c in chosen):
                    chosen.append(cid)
                    if len(chosen) == k:
                        break
            descriptions, kwargs = [], []
            for cid in chosen:
                instruction = registry.INSTRUCTION_DICT[cid](cid)
                descriptions.append(instruction.build_description())
                kwargs.append(instruction.get_instruction_args() or {})
            row = {"prompt": " ".join([base, *descriptions]), "instruction_id_list": chosen, "kwargs": kwargs}
            handle.write(json.dumps(row) + "\n")
    return time.perf_counter() - started


def ours(n: int, constraints: str, seed: int, out: Path) -> tuple[float, float]:
    """(wall time of the CLI process, generation time it reports itself)."""
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "posttrain", "prompts", "synth", "--n", str(n), "--constraints", constraints,
           "--seed", str(seed), "--out", str(out)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    stats = json.loads(out.with_name(out.stem + ".stats.json").read_text())
    return wall, float(stats["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=48000)
    parser.add_argument("--constraints", default="1-5")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    k_min, k_max = (int(x) for x in (args.constraints.split("-") * 2)[:2])
    with tempfile.TemporaryDirectory() as tmp:
        ours_wall, ours_gen = ours(args.n, args.constraints, args.seed, Path(tmp) / "ours.jsonl")
        try:
            peer_time: float | None = peer(args.n, k_min, k_max, args.seed, Path(tmp) / "peer.jsonl")
        except ImportError as err:
            peer_time = None
            print(f"peer skipped: {err}")
    print(f"posttrain prompts synth: {args.n} prompts, k={args.constraints}: {ours_wall:.1f} s wall "
          f"(CLI process incl. imports, dedup, stats, write), {ours_gen:.1f} s generation "
          f"-> {args.n / ours_wall:,.0f} prompts/s")  # fmt: skip
    if peer_time is not None:
        print(f"peer (IFEval build_description loop, no fit/dedup/stats): {peer_time:.1f} s "
              f"-> {args.n / peer_time:,.0f} prompts/s")  # fmt: skip
        print(f"ratio posttrain wall / peer: {ours_wall / peer_time:.2f}x")


if __name__ == "__main__":
    main()
