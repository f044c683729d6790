"""The same online GRPO job with TRL's GRPOTrainer and with posttrain's online loop, each in a fresh process.

    python bench/grpo_vs_trl.py                  # both, then the comparison
    python bench/grpo_vs_trl.py --only posttrain
    python bench/grpo_vs_trl.py --rounds 2       # alternate the order to cancel the machine's drift
    BENCH_POSTTRAIN_OVERRIDES="model.dtype=bfloat16" python bench/grpo_vs_trl.py   # extra posttrain overrides

Job: the embedded SmolLM2-135M-Instruct, 16 synthetic instruction-following prompts (posttrain's generator, seed
0, 1-3 constraints), K = 4 responses per prompt, 4 prompts per step, 4 steps (64 responses), at most 64 new tokens,
temperature 1.0, top-p 1.0; reward = posttrain's IF judge (share of the prompt's constraints met, bug-fixed
checkers) through its TRL adapter for TRL and as the task's reward for posttrain; GRPO advantages with the group
std, token-level loss (TRL `loss_type="dapo"`), ε 0.2, no KL term (β = 0: neither trainer keeps a reference model
busy), one update per rollout, lr 1e-6, AdamW, grad-norm clip 1.0, 2 CPU threads, fp32 weights. Prompts are
taken in file order by both. Generation: TRL samples from the training model with `generate` (fp32); posttrain
from its bf16 copy where the CPU computes bf16 natively (`generation.dtype=auto`, its recipe default; pass
`--posttrain-dtype float32` for the same precision as TRL).

Throughput = completion tokens generated and trained (all 64 responses), divided by the wall time of the training
call (generation, judging, log-prob passes and updates; model loading and the final save excluded for both).
Peak RSS is the child's ru_maxrss. The reward per step is printed for both: the curves should have the same shape
(the samples differ: the two trainers draw from different random streams).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from posttrain.cli.launch import jemalloc_env

THREADS = 2
N_PROMPTS, K, PROMPTS_PER_STEP, STEPS, MAX_NEW, LR = 16, 4, 4, 4, 64, 1e-6
EXTRA: list[str] = [a for a in os.environ.get("BENCH_POSTTRAIN_OVERRIDES", "").split() if a]


def make_prompts(path: Path) -> None:
    from posttrain.prompts.synth import SynthConfig, synthesize

    prompts, _ = synthesize(SynthConfig(n=N_PROMPTS, constraints="1-3", seed=0))
    path.write_text("".join(p.model_dump_json() + "\n" for p in prompts))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_trl(data: Path, out: Path, _dtype: str) -> dict:
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from posttrain.judges.adapters import trl_reward_func
    from posttrain.judges.base import get_judge
    from posttrain.models.embedded import load_model_and_tokenizer

    torch.manual_seed(0)
    model, tokenizer = load_model_and_tokenizer("embedded")
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    # kwargs as JSON text: Arrow would merge the constraints' different kwargs into one struct padded with nulls.
    dataset = Dataset.from_list(
        [{"prompt": [{"role": "user", "content": r["prompt"]}], "instruction_id_list": r["instruction_id_list"],
          "kwargs_json": json.dumps(r["kwargs"])} for r in rows]
    )  # fmt: skip
    judge_reward = trl_reward_func(get_judge("ifeval", mode="fixed"), use_score=True)

    def ifeval_reward(prompts, completions, instruction_id_list, kwargs_json, **_):
        return judge_reward(prompts, completions, instruction_id_list=instruction_id_list,
                            kwargs=[json.loads(k) for k in kwargs_json])  # fmt: skip

    args = GRPOConfig(
        output_dir=str(out / "trl"),
        per_device_train_batch_size=PROMPTS_PER_STEP * K,
        num_generations=K,
        max_completion_length=MAX_NEW,
        temperature=1.0,
        top_p=1.0,
        learning_rate=LR,
        lr_scheduler_type="constant",
        max_grad_norm=1.0,
        beta=0.0,
        loss_type="dapo",
        epsilon=0.2,
        num_iterations=1,
        max_steps=STEPS,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,
        seed=0,
        shuffle_dataset=False,  # prompts in file order, as posttrain takes them
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                                 reward_funcs=[ifeval_reward])  # fmt: skip
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    logs = [h for h in trainer.state.log_history if "reward" in h]
    tokens = sum(h["completions/mean_length"] * PROMPTS_PER_STEP * K for h in logs)
    return {"tokens": tokens, "seconds": seconds, "rewards": [h["reward"] for h in logs]}


def run_posttrain(data: Path, out: Path, dtype: str) -> dict:
    from posttrain.config import load_config
    from posttrain.records import Prompt, read_records
    from posttrain.train.cgpo import CGPOConfig, train_cgpo

    prompts = read_records(data, Prompt)
    task = "tasks.instruction_following."
    cfg = load_config(
        CGPOConfig,
        None,
        [
            f"train.output_dir={out / 'posttrain'}", f"train.lr={LR}", "train.scheduler=constant",
            "train.max_grad_norm=1.0", f"train.threads={THREADS}", "train.progress=false", "train.resume=false",
            f"train.max_steps={STEPS}", "train.examples_per_forward=4", "data.shuffle=false", "data.max_length=512",
            f"generation.max_new_tokens={MAX_NEW}", "generation.temperature=1.0", "generation.top_p=1.0",
            f"generation.batch_size={PROMPTS_PER_STEP * K}", f"generation.dtype={dtype}",
            "generation.require_finished=false", "evaluate=false",
            f"{task}optimizer=grpo", f"{task}k={K}", f"{task}batch_size={PROMPTS_PER_STEP}",
            f"{task}reward={{type: ifeval, mode: fixed}}", f"{task}loss_aggregation=token", f"{task}kl_coef=0.0",
            *EXTRA,
        ],
    )  # fmt: skip
    result = train_cgpo(cfg, prompts)
    tokens = sum(m["response_length"] * PROMPTS_PER_STEP * K for m in result.metrics)
    return {"tokens": tokens, "seconds": result.train_seconds, "rewards": [m["reward"] for m in result.metrics]}


def child(which: str, data: Path, out: Path, result_path: Path, dtype: str) -> None:
    import torch

    torch.set_num_threads(THREADS)
    begin = time.perf_counter()
    stats = run_trl(data, out, dtype) if which == "trl" else run_posttrain(data, out, dtype)
    stats["process_seconds"] = time.perf_counter() - begin
    stats["peak_rss_mb"] = peak_rss_mb()
    stats["tokens_per_s"] = stats["tokens"] / stats["seconds"]
    result_path.write_text(json.dumps(stats))


def _median_run(runs: list[dict]) -> dict:
    ordered = sorted(runs, key=lambda r: r["tokens_per_s"])
    median = dict(ordered[(len(ordered) - 1) // 2])
    median["peak_rss_mb"] = sorted(r["peak_rss_mb"] for r in runs)[(len(runs) - 1) // 2]
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["trl", "posttrain"])
    parser.add_argument("--rounds", type=int, default=1, help="rounds in alternating order; medians are reported")
    parser.add_argument("--posttrain-dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                        help="posttrain's generation.dtype (TRL samples in fp32)")  # fmt: skip
    parser.add_argument("--child", choices=["trl", "posttrain"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data, args.out, args.result, args.posttrain_dtype)
        return

    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS), "TQDM_DISABLE": "1"}
    runs: dict[str, list[dict]] = {"trl": [], "posttrain": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "prompts.jsonl"
        make_prompts(data)
        for round_ in range(args.rounds):
            order = [args.only] if args.only else ["trl", "posttrain"][:: 1 if round_ % 2 == 0 else -1]
            for which in order:
                result = Path(tmp) / f"{which}.json"
                cmd = [sys.executable, __file__, "--child", which, "--data", str(data), "--out", tmp,
                       "--result", str(result), "--posttrain-dtype", args.posttrain_dtype]  # fmt: skip
                # posttrain's child gets the environment its command gives itself (jemalloc when installed).
                child_env = env if which == "trl" else (jemalloc_env(env) or env)
                subprocess.run(cmd, env=child_env, check=True, stdout=subprocess.DEVNULL)
                run = json.loads(result.read_text())
                runs[which].append(run)
                print(f"round {round_ + 1} {which}: {run['tokens_per_s']:.1f} tok/s, {run['peak_rss_mb']:.0f} MB",
                      flush=True)  # fmt: skip
    results = {name: _median_run(r) for name, r in runs.items() if r}
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (other jobs share the {os.cpu_count()} cores)")
    print(f"{'':>10} {'tokens':>7} {'train s':>8} {'tokens/s':>9} {'peak RSS MB':>12} {'process s':>10}")
    for name, r in results.items():
        print(f"{name:>10} {r['tokens']:>7.0f} {r['seconds']:>8.1f} {r['tokens_per_s']:>9.1f} "
              f"{r['peak_rss_mb']:>12.0f} {r['process_seconds']:>10.1f}")  # fmt: skip
    if len(results) == 2:
        trl, ours = results["trl"], results["posttrain"]
        print(f"throughput ratio posttrain/TRL: {ours['tokens_per_s'] / trl['tokens_per_s']:.2f}x")
        print(f"peak RSS ratio posttrain/TRL:   {ours['peak_rss_mb'] / trl['peak_rss_mb']:.2f}")
        print("step   TRL reward   posttrain reward")
        for step, (a, b) in enumerate(zip(trl["rewards"], ours["rewards"], strict=False), start=1):
            print(f"{step:>4} {a:>12.3f} {b:>18.3f}")


if __name__ == "__main__":
    main()
