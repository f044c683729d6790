"""CGPO's bf16 sampler vs sampling from the fp32 policy: same weights, same prompts, same settings, one process.

    python bench/sampler_dtype.py            # 8 IFEval prompts x 4 samples, 128 new tokens, T 0.9 / top-p 0.95, 2 rounds

The fp32 side is what `train cgpo` samples from with generation.dtype=float32 (the policy itself); the bf16 side is
the copy that generation.dtype=bfloat16|auto samples from. Prints tokens/s of each and the ratio per round.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import torch

from posttrain.models.backend import SamplingParams
from posttrain.models.embedded import load_model_and_tokenizer
from posttrain.models.hf import HFBackend

INPUT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ifeval" / "input_data.jsonl"


def main() -> None:
    torch.set_num_threads(2)
    model, tokenizer = load_model_and_tokenizer("embedded", dtype=torch.float32)
    sampler = copy.deepcopy(model).to(torch.bfloat16).eval()
    prompts = [json.loads(line)["prompt"] for line in INPUT.read_text(encoding="utf-8").splitlines()[:8]]
    params = SamplingParams(128, 0.9, 0.95, seed=1)
    for round_ in range(2):
        rates = {}
        for name, weights in (("fp32 policy", model), ("bf16 copy", sampler)):
            backend = HFBackend("embedded", 2, 16, model_and_tokenizer=(weights, tokenizer))
            start = time.perf_counter()
            rows = backend.generate(prompts, 4, params)
            seconds = time.perf_counter() - start
            tokens = sum(c.completion_tokens for row in rows for c in row)
            rates[name] = tokens / seconds
            print(f"round {round_ + 1} {name:<12} {seconds:6.1f} s {tokens:5d} tokens {rates[name]:6.1f} tok/s")
        print(f"round {round_ + 1} bf16 / fp32: {rates['bf16 copy'] / rates['fp32 policy']:.2f}x")


if __name__ == "__main__":
    main()
