"""Where a training step's time goes: SFT steps of the embedded model under torch.profiler, fp32 and bf16 autocast.

    python bench/train_profile.py                        # fp32 and bf16, 1 and 8 examples per forward pass
    python bench/train_profile.py --dtype bfloat16 --examples-per-forward 8 --steps 4
    python bench/train_profile.py --dtype bfloat16 --examples-per-forward 8 --attention sdpa packed
    nice -n 19 python bench/train_profile.py --smoke     # a tiny model, to check the script runs

A step is what `train/sft.py` runs, built from the same pieces (`collate`, `TokenLogps`, `sft_loss`, AdamW from
`make_optimizer`, gradient clipping): micro-batches of 8 examples drawn from the synthetic SFT rows below (responses
of ~60-140 tokens, the length of `recipes/ifeval_sft.yaml`'s targets). Each configuration first runs --steps
steps unprofiled (tokens/s is taken from these) and then the same number under the profiler.

`--attention`: `packed` is posttrain's packed-row attention (`train/packed_attention.py`, the default of every
training loop), `sdpa` transformers' SDPA with its block-diagonal mask over the packed row (the peer); with both,
each configuration runs with each, in this order, on the same model, and the ratio of their tokens/s is printed.

The table splits self CPU time by phase (forward, backward: ops under autograd's engine, optimizer: ops under
`Optimizer.step`) and by kind of op (matmul, attention, elementwise/norm/activation, copies and layout, the rest),
and prints the matmul GFLOP/s the profiler counts (its FLOP formulas cover mm/addmm/bmm) against the machine's fp32
peak (2 cores x 2 AVX-512 FMA units x 16 lanes x 2 FLOP x clock; the clock is read from /proc/cpuinfo when it says).
The LM head's share is not separable by op name (it is a matmul like the others): the FLOP-based estimate is printed
instead (hidden x vocab per target token: the forward and the two backward matmuls; a pass with more than
`train.logprob_chunk` targets also recomputes its chunks, not counted).
"""

from __future__ import annotations

import argparse
import random
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

PHASES = ("forward", "backward", "optimizer")
KINDS = ("matmul", "attention", "elementwise", "copy/layout", "other")
_MATMUL = re.compile(r"^aten::(mm|addmm|bmm|matmul|linear|_addmm_activation|baddbmm)$")
_ATTENTION = re.compile(r"scaled_dot_product|flash_attention|_efficient_attention|attention")
_COPY = re.compile(r"^aten::(copy_|to|_to_copy|contiguous|clone|cat|index_select|index_add_?|gather|scatter.*|"
                   r"t|transpose|view|reshape|permute|expand|slice|select|empty.*|zeros.*|fill_|zero_|as_strided|"
                   r"unsqueeze|squeeze|_unsafe_view|embedding.*)$")  # fmt: skip
_ELEMENTWISE = re.compile(r"^aten::(add|add_|mul|mul_|div|div_|sub|rsub|pow|rsqrt|mean|sum|silu|silu_backward|neg|"
                          r"exp|log|logsumexp|softmax|_softmax|_log_softmax|sigmoid|where|masked_fill|_foreach.*|"
                          r"addcmul_|addcdiv_|sqrt|lerp_|clamp.*|norm|linalg_vector_norm|rms_norm|_fused_rms_norm|"
                          r"_fused_adamw_?|_fused_adam_?|threshold_backward|.*_backward)$")  # fmt: skip

WORDS = (
    "river stone light garden morning window paper quiet market bridge winter coffee music letter forest table "
    "school story doctor travel kitchen city ocean mountain friend summer voice simple careful bright slowly often "
    "people little important different small large young early late open close write read build carry follow"
).split()


def examples(n: int, seed: int = 0) -> list[Any]:
    from posttrain.train.sft import SFTExample

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(45, 110))]
        text = " ".join(" ".join(words[s : s + 9]).capitalize() + "." for s in range(0, len(words), 9))
        rows.append(SFTExample(prompt=f"Write a short note about {rng.choice(WORDS)}. Use no commas. ({i})",
                               completion=text))  # fmt: skip
    return rows


def kind_of(name: str) -> str:
    if _ATTENTION.search(name):
        return "attention"
    if _MATMUL.match(name):
        return "matmul"
    if _COPY.match(name):
        return "copy/layout"
    if _ELEMENTWISE.match(name):
        return "elementwise"
    return "other"


def phase_of(event: Any) -> str:
    parent = event
    while parent is not None:
        if parent.name.startswith("Optimizer.step"):
            return "optimizer"
        if parent.name.startswith("autograd::engine::evaluate_function"):
            return "backward"
        parent = parent.cpu_parent
    return "forward"


def peak_fp32_gflops(threads: int) -> float | None:
    text = Path("/proc/cpuinfo").read_text(errors="replace") if Path("/proc/cpuinfo").exists() else ""
    mhz = re.findall(r"cpu MHz\s*:\s*([\d.]+)", text)
    if not mhz or "avx512f" not in text:
        return None
    return threads * 2 * 16 * 2 * max(float(m) for m in mhz) / 1000


def run(config: dict[str, Any], model_and_tokenizer: tuple[Any, Any], steps: int, batch: int) -> float:
    from posttrain.train import losses
    from posttrain.train.data import collate, forward_passes, pad_token_id, render
    from posttrain.train.logprobs import TokenLogps
    from posttrain.train.packed_attention import use_packed_attention
    from posttrain.train.runtime import LoopConfig, make_optimizer

    model, tokenizer = model_and_tokenizer
    model.train()
    if config["attention"] == "packed":
        use_packed_attention(model)
    else:
        model.set_attn_implementation("sdpa")
    seqs = [render(tokenizer, e.prompt, e.completion, 640, False) for e in examples(batch * steps * 2)]
    seqs = [s for s in seqs if s is not None]
    loop = LoopConfig(lr=1e-5, batch_size=batch, examples_per_forward=config["per_forward"])
    optimizer, _ = make_optimizer(model, loop, 2 * steps)
    policy = TokenLogps(model)
    pad = pad_token_id(tokenizer)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=config["dtype"] == "bfloat16")

    def step(k: int) -> int:
        mine = list(range(k * batch, (k + 1) * batch))
        n_targets = sum(seqs[i].n_targets for i in mine)
        tokens = 0
        for _, part in forward_passes([mine], loop.examples_per_forward):
            b = collate([seqs[i] for i in part], pad, packing=True)
            with autocast:
                per_token = policy(b)
            loss = losses.sft_loss(per_token, torch.ones_like(per_token), normalizer=n_targets)
            loss.backward()
            tokens += b.n_tokens
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return tokens

    start, tokens = time.perf_counter(), 0
    for k in range(steps):
        tokens += step(k)
    seconds = time.perf_counter() - start
    targets = sum(s.n_targets for s in seqs[: batch * steps])
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], with_flops=True) as prof:
        for k in range(steps, 2 * steps):
            step(k)
    table: dict[tuple[str, str], float] = defaultdict(float)
    flops = 0.0
    matmul_seconds = 0.0
    for event in prof.events():
        seconds_self = event.self_cpu_time_total / 1e6
        if seconds_self <= 0:
            continue
        kind = kind_of(event.name)
        table[(phase_of(event), kind)] += seconds_self
        if kind == "matmul":
            flops += event.flops or 0
            matmul_seconds += seconds_self
    total = sum(table.values())
    print(f"\n== {config['dtype']}, {config['per_forward'] or batch} example(s) per forward pass, "
          f"{config['attention']} attention: "
          f"{tokens / seconds:.1f} tokens/s unprofiled ({steps} steps of {batch}; {tokens} tokens, {targets} "
          f"targets); profiled self time {total:.2f} s")  # fmt: skip
    print(f"{'':12s}" + "".join(f"{k:>13s}" for k in KINDS) + f"{'total':>10s}")
    for phase in PHASES:
        row = [table[(phase, k)] for k in KINDS]
        print(f"{phase:12s}" + "".join(f"{100 * v / total:12.1f}%" for v in row) + f"{100 * sum(row) / total:9.1f}%")
    cols = [sum(table[(p, k)] for p in PHASES) for k in KINDS]
    print(f"{'all':12s}" + "".join(f"{100 * v / total:12.1f}%" for v in cols))
    if matmul_seconds:
        config_text = model.config.get_text_config()
        head = 2 * config_text.hidden_size * config_text.vocab_size * targets * 3  # forward, 2 x backward
        print(f"matmul: {flops / 1e9:.1f} GFLOP in {matmul_seconds:.2f} s self time = "
              f"{flops / 1e9 / matmul_seconds:.1f} GFLOP/s; LM head ~{head / max(flops, 1):.0%} of matmul FLOPs "
              f"(estimate)")  # fmt: skip
    return tokens / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "both"], default="both")
    parser.add_argument("--examples-per-forward", type=int, nargs="*", default=[1, 8])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--attention", nargs="*", choices=["sdpa", "packed"], default=["packed"])
    parser.add_argument("--smoke", action="store_true", help="a tiny model built from a config; 1 step")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.smoke:
        from transformers import LlamaConfig, LlamaForCausalLM

        from posttrain.models.embedded import load_model_and_tokenizer

        _, tokenizer = load_model_and_tokenizer("embedded", dtype=torch.float32)
        tiny = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
        model_and_tokenizer = (LlamaForCausalLM(tiny), tokenizer)
        args.steps = 1
    else:
        from posttrain.models.embedded import load_model_and_tokenizer

        model_and_tokenizer = load_model_and_tokenizer("embedded", dtype=torch.float32)
    peak = peak_fp32_gflops(args.threads)
    print(f"threads {args.threads}; fp32 FMA peak ~{peak:.0f} GFLOP/s" if peak else f"threads {args.threads}")
    dtypes = ["float32", "bfloat16"] if args.dtype == "both" else [args.dtype]
    for dtype in dtypes:
        for per_forward in args.examples_per_forward:
            speed = {}
            for attention in args.attention:
                config = {"dtype": dtype, "per_forward": per_forward, "attention": attention}
                speed[attention] = run(config, model_and_tokenizer, args.steps, args.batch)
            if len(speed) == 2:
                print(f"\n{dtype}, {per_forward} per pass: packed {speed['packed']:.1f} vs sdpa {speed['sdpa']:.1f} "
                      f"tokens/s = {speed['packed'] / speed['sdpa']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
