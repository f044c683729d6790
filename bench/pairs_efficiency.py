"""Pairs per 1,000 generated tokens: rejection sampling (RS) vs MCTS, same prompts, same model, one run.

    python bench/pairs_efficiency.py                       # 16 synthetic prompts, embedded SmolLM2, 2 threads
    python bench/pairs_efficiency.py --prompts 32 --rs-n 6 --simulations 6

RS samples `--rs-n` full responses per prompt and pairs a constraint-satisfying one with a violating one (high
contrast; prompts where all pass or all fail give no pair). MCTS searches each prompt (PUCT over sentence segments,
rollouts scored by the fraction of constraints met) and pairs sibling continuations of a shared prefix. Both use the
same sampling temperature and response budget; generated tokens are counted by the backend (prompt tokens of the
continuation calls excluded). The two methods make different pairs (MCTS: partial credit contrast, shared prefix),
so this measures cost per pair, not pair quality.
"""

from __future__ import annotations

import argparse
import time

from posttrain.judges import get_judge, judge_samples
from posttrain.models import SamplingParams
from posttrain.models.hf import HFBackend
from posttrain.pairs.mcts import MCTSConfig, constraint_scorer, mcts_pairs
from posttrain.pairs.rejection import rejection_sampling_pairs
from posttrain.prompts.synth import SynthConfig, synthesize
from posttrain.sampling import to_sample


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--constraints", default="1-3")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=0.9)
    ap.add_argument("--rs-n", type=int, default=4)
    ap.add_argument("--simulations", type=int, default=4)
    ap.add_argument("--branching", type=int, default=2)
    ap.add_argument("--max-depth", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    prompts, _ = synthesize(SynthConfig(n=args.prompts, constraints=args.constraints, seed=0))
    backend = HFBackend("embedded", threads=args.threads)
    by_id = {p.id: p for p in prompts}

    t0 = time.perf_counter()
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=0)
    samples = []
    for start in range(0, len(prompts), 8):
        batch = prompts[start : start + 8]
        for p, row in zip(batch, backend.generate([p.prompt for p in batch], args.rs_n, params), strict=True):
            samples += [to_sample(p, c, "embedded", params, i) for i, c in enumerate(row)]
    verdicts = judge_samples(get_judge("ifeval", mode="fixed"), samples, by_id)
    rs, rs_stats = rejection_sampling_pairs(samples, verdicts, by_id, "high")
    rs_tokens, rs_s = sum(s.completion_tokens or 0 for s in samples), time.perf_counter() - t0

    t0 = time.perf_counter()
    config = MCTSConfig(
        simulations=args.simulations, branching=args.branching, max_depth=args.max_depth,
        rollout_max_tokens=args.max_new_tokens, temperature=args.temperature,
    )  # fmt: skip
    mcts, mcts_stats = mcts_pairs(prompts, backend, SamplingParams, constraint_scorer("fixed"), config)
    mcts_s = time.perf_counter() - t0

    print(f"prompts={len(prompts)} constraints={args.constraints} max_new_tokens={args.max_new_tokens} "
          f"temperature={args.temperature} threads={args.threads}")  # fmt: skip
    rows = [
        (f"RS (n={args.rs_n}, high contrast)", len(rs), rs_tokens, rs_s, dict(rs_stats.skipped)),
        (f"MCTS (sims={args.simulations}, branching={args.branching}, depth={args.max_depth})", len(mcts),
         mcts_stats.generated_tokens, mcts_s, mcts_stats.skipped),
    ]  # fmt: skip
    for name, pairs, tokens, seconds, skipped in rows:
        rate = 1000 * pairs / max(tokens, 1)
        print(f"{name:45s} pairs={pairs:4d} tokens={tokens:7d} wall={seconds:7.1f}s "
              f"pairs/1k tokens={rate:6.3f} skipped={skipped}")  # fmt: skip
    rs_rate, mcts_rate = (1000 * r[1] / max(r[2], 1) for r in rows)
    print(f"ratio MCTS / RS pairs per 1k tokens: {mcts_rate / rs_rate:.2f}x" if rs_rate else "RS made no pairs")


if __name__ == "__main__":
    main()
