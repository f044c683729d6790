"""The online loop with generation in process vs on Ray actors, on the embedded model, in one run: seconds per
step, whole-process wall time, and the rewards each run saw.

    python bench/ray_online.py                                  # 6 steps; hf, then Ray with each weight sync
    python bench/ray_online.py --steps 4 --syncs broadcast      # fewer runs
    nice -n 19 python bench/ray_online.py --smoke               # a tiny random model, 2 steps: the plumbing only

Every run is `posttrain train grpo --config recipes/grpo_ifeval.yaml` in a process of its own with the same
overrides (no evaluation, K 4 × 4 prompts, 64 new tokens, one update per rollout, bf16 sampling where the CPU has
it) and only `generation.engine` changed: `hf` samples in the training process on every core; `ray` samples on
`--actors` Ray actors of `--cpus-per-actor` cores each, on a local cluster the run starts, after every update
receiving the weights through Ray's object store or a gloo broadcast (`generation.ray.weight_sync`). The per-step
figure is the median `step_seconds` of the run's metrics after its first step (the first pays one-off costs);
whole-process wall time includes start-up (and, for Ray, the cluster and its actors). On one 2-core machine the
training process and the actors share the same cores, so this measures what Ray costs a loop that cannot yet gain
from it (the gain needs generation on machines or GPUs of its own); the rewards per step show whether the runs saw
the same samples.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(label: str, out: Path, overrides: list[str]) -> dict:
    command = [sys.executable, "-m", "posttrain", "train", "grpo", "--config", str(REPO / "recipes/grpo_ifeval.yaml"),
               f"train.output_dir={out}", *overrides]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{label} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    steps = [r["step_seconds"] for r in rows]
    return {
        "label": label,
        "wall": wall,
        "steps": len(rows),
        "step_seconds": steps,
        "median_step": statistics.median(steps[1:] or steps),
        "reward": [round(r["reward"], 4) for r in rows],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--cpus-per-actor", type=int, default=1)
    ap.add_argument("--syncs", nargs="+", choices=["object_store", "broadcast"], default=["object_store", "broadcast"])
    ap.add_argument("--smoke", action="store_true", help="a tiny random model and 2 steps (plumbing only)")
    args = ap.parse_args()
    common = ["evaluate=false", "heldout_k=0", f"train.max_steps={args.steps}", "train.updates_per_rollout=1",
              "train.save_every=0", "generation.max_new_tokens=64", "tasks.instruction_following.k=4",
              "tasks.instruction_following.batch_size=4", "tasks.instruction_following.drop_uniform_groups=false"]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="posttrain_ray_online_") as tmp:
        if args.smoke:
            sys.path.insert(0, str(REPO))
            from bench.ray_scaleout import tiny_model

            model_dir = tiny_model(Path(tmp) / "tiny")
            args.steps = 2
            common = [*common, f"model.name={model_dir}", "train.max_steps=2", "generation.max_new_tokens=8"]
        runs = [run("in process (hf)", Path(tmp) / "hf", [*common, "generation.engine=hf"])]
        for sync in args.syncs:
            ray = [*common, "generation.engine=ray", f"generation.ray.actors={args.actors}",
                   f"generation.ray.cpus_per_actor={args.cpus_per_actor}", f"generation.ray.weight_sync={sync}"]  # fmt: skip
            runs.append(run(f"Ray, {args.actors} actors, {sync}", Path(tmp) / sync, ray))
    base = runs[0]
    print(f"{args.steps} steps of K 4 x 4 prompts, 64 new tokens; step seconds = median after the first")
    print(f"{'run':<34}{'wall s':>9}{'step s':>9}{'vs hf':>8}  reward per step")
    for r in runs:
        print(f"{r['label']:<34}{r['wall']:>9.1f}{r['median_step']:>9.2f}{base['median_step'] / r['median_step']:>7.2f}x"
              f"  {r['reward']}")  # fmt: skip
    same = all(r["reward"] == base["reward"] for r in runs)
    print("rewards per step identical across runs" if same else "rewards per step differ between runs")


if __name__ == "__main__":
    main()
