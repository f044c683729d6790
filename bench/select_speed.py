"""Speed of SAE-GreedSelect (lazy greedy, posttrain.select.greedy) against the straightforward greedy, in the same run.

Feature sets are synthetic but shaped like SAE features of SFT data (Yang et al.: active features grow with text
length, r = 0.92; a few latents fire on almost everything, most are rare): per-example feature counts are
lognormal (median ~200), latents are drawn with Zipf-like popularity p(rank) ∝ (rank + 10)^-1.1 over 65,536
latents, repeats within an example removed. Both selectors get the same CSR sets and must return the same picks.

The peer is the textbook greedy: at every pick recompute every remaining example's gain (vectorised numpy, one
bincount over all features per pick), so its cost is picks × total features. Lazy greedy re-evaluates only
examples whose stale upper bound reaches the top of a heap.

    python bench/select_speed.py                    # n = 100,000, budget 1,000, scaling at 25k / 50k / 100k
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from posttrain.select.features import FeatureSets
from posttrain.select.greedy import coverage, lazy_greedy, naive_greedy


def synthetic_features(n: int, n_latents: int = 65536, median: float = 200, seed: int = 0) -> FeatureSets:
    rng = np.random.default_rng(seed)
    sizes = np.clip(rng.lognormal(np.log(median), 0.6, n).astype(np.int64), 5, n_latents // 4)
    p = (np.arange(n_latents) + 10.0) ** -1.1
    cdf = np.cumsum(p / p.sum())
    latents = np.searchsorted(cdf, rng.random(int(sizes.sum())), side="right").clip(0, n_latents - 1)
    latents = rng.permutation(n_latents)[latents]  # popular latents are not the low ids
    rows = np.repeat(np.arange(n), sizes)
    keys = np.unique(rows.astype(np.int64) * n_latents + latents)
    row, lat = np.divmod(keys, n_latents)
    indptr = np.zeros(n + 1, dtype=np.int64)
    indptr[1:] = np.cumsum(np.bincount(row, minlength=n))
    return FeatureSets(indptr, lat.astype(np.int32), n_latents)


def timed(fn, *args):
    started = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--scaling", default="25000,50000,100000")
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()

    fs, gen_s = timed(synthetic_features, args.n)
    sizes = fs.sizes()
    print(f"pool: {fs.n:,} examples, {fs.indices.size:,} features in total (median {np.median(sizes):.0f} per "
          f"example, {np.unique(fs.indices).size:,} distinct latents); generated in {gen_s:.1f} s")  # fmt: skip
    lazy, lazy_s = timed(lazy_greedy, fs, args.budget)
    print(f"posttrain lazy greedy : {lazy_s:8.2f} s  ({args.budget} picks, coverage {coverage(fs, lazy):,})")
    if not args.skip_naive:
        naive, naive_s = timed(naive_greedy, fs, args.budget)
        print(f"naive greedy (peer)   : {naive_s:8.2f} s  (coverage {coverage(fs, naive):,}, "
              f"same picks: {naive == lazy})")  # fmt: skip
        print(f"speed-up              : {naive_s / lazy_s:8.1f}x")
    print("scaling (lazy greedy, same budget):")
    for n in [int(x) for x in args.scaling.split(",") if x]:
        sub = synthetic_features(n)
        _, s = timed(lazy_greedy, sub, args.budget)
        print(f"  n = {n:>7,}: {s:6.2f} s   ({s / n * 1e6:.1f} µs per example)")


if __name__ == "__main__":
    main()
