"""Sampling throughput: plain `model.generate` vs posttrain's `hf` backend, same prompts, same budget, one run.

    python bench/sample_speed.py                     # 64 IFEval prompts, 64 new tokens, batch 32, 2 threads
    python bench/sample_speed.py --prompts 32 --max-new-tokens 128 --temperature 0
    python bench/sample_speed.py --dtype bfloat16    # posttrain in bf16 against the fp32 plain-generate baseline

Tokens/s counts real completion tokens (up to and including EOS), not the padding plain generate keeps emitting
for rows that already finished.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from posttrain.models import SamplingParams
from posttrain.models.hf import HFBackend

IFEVAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "ifeval" / "input_data.jsonl"


def load_prompts(n: int) -> list[str]:
    if IFEVAL.exists():
        rows = [json.loads(line)["prompt"] for line in IFEVAL.read_text(encoding="utf-8").splitlines()]
        return rows[:n]
    return [f"Write a short paragraph about topic number {i}." for i in range(n)]


def plain_generate(backend: HFBackend, prompts: list[str], batch: int, new: int, temperature: float) -> int:
    tok, model = backend.tokenizer, backend.model
    tok.padding_side = "left"
    tokens = 0
    torch.manual_seed(0)
    for start in range(0, len(prompts), batch):
        texts = [tok.decode(backend.encode(p)) for p in prompts[start : start + batch]]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        sampling = (
            {"do_sample": True, "temperature": temperature, "top_p": 1.0}
            if temperature
            else {"do_sample": False}
        )
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=new, pad_token_id=backend.pad_id, **sampling)
        for row in out[:, enc.input_ids.shape[1] :].tolist():
            ends = [i for i, t in enumerate(row) if t in backend.eos_ids]
            tokens += ends[0] + 1 if ends else len(row)
    return tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32, help="plain generate's batch")
    ap.add_argument("--our-batch", type=int, default=None, help="posttrain's batch (default: --batch)")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                    help="posttrain's weights (plain generate always runs the fp32 baseline)")  # fmt: skip
    args = ap.parse_args()
    plain = HFBackend("embedded", threads=args.threads, dtype=torch.float32)
    backend = HFBackend("embedded", threads=args.threads, batch_size=args.our_batch or args.batch,
                        dtype=getattr(torch, args.dtype))  # fmt: skip
    prompts = load_prompts(args.prompts)
    for warm in (plain, backend):  # allocator, kernels
        warm.generate(prompts[:2], 1, SamplingParams(max_new_tokens=4))

    t0 = time.perf_counter()
    plain_tokens = plain_generate(plain, prompts, args.batch, args.max_new_tokens, args.temperature)
    plain_s = time.perf_counter() - t0

    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=0)
    t0 = time.perf_counter()
    rows = backend.generate(prompts, 1, params)
    ours_s = time.perf_counter() - t0
    # EOS is generated but not counted in completion_tokens: count it, as for plain generate
    ours_tokens = sum(c.completion_tokens + (c.finish_reason == "stop") for row in rows for c in row)

    plain_rate, ours_rate = plain_tokens / plain_s, ours_tokens / ours_s
    print(f"prompts={len(prompts)} max_new_tokens={args.max_new_tokens} batch={args.batch} (posttrain {backend.batch_size}) "
          f"temperature={args.temperature} threads={args.threads} posttrain dtype={args.dtype}")  # fmt: skip
    print(f"plain HF generate : {plain_tokens:6d} tokens in {plain_s:7.1f} s = {plain_rate:7.1f} tok/s")
    print(f"posttrain hf      : {ours_tokens:6d} tokens in {ours_s:7.1f} s = {ours_rate:7.1f} tok/s")
    print(f"ratio (posttrain / plain): {ours_rate / plain_rate:.2f}x")


if __name__ == "__main__":
    main()
