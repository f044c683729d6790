"""Where a training step's time goes: SFT, DPO and online GRPO steps of the embedded model under torch.profiler.

    python bench/train_profile.py                        # SFT: fp32 and bf16, 1 and 8 examples per forward pass
    python bench/train_profile.py --dtype bfloat16 --examples-per-forward 8 --steps 4
    python bench/train_profile.py --dtype bfloat16 --examples-per-forward 8 --attention sdpa packed
    python bench/train_profile.py --step dpo grpo --dtype both   # the DPO and online trainers themselves
    python bench/train_profile.py --step dpo --dtype float32 --top 15   # and the 15 ops with most self time
    python bench/train_profile.py --step dpo grpo --dtype bf16-weights  # the weights in bf16 (model.dtype=bfloat16)
    nice -n 19 python bench/train_profile.py --smoke     # a tiny model, to check the script runs

`--step sft` (the default) is what `train/sft.py` runs, built from the same pieces (`collate`, `TokenLogps`,
`sft_loss`, AdamW from `make_optimizer`, gradient clipping): micro-batches of 8 examples drawn from the synthetic SFT
rows below (responses of ~60-140 tokens, the length of `recipes/ifeval_sft.yaml`'s targets). Each configuration
first runs --steps steps unprofiled (tokens/s is taken from these) and then the same number under the profiler.

`--step dpo` and `--step grpo` profile the trainers themselves, not a copy of their step: `train_dpo` on
bench/dpo_vs_trl.py's 64 pairs (its batch of 4, β, lr, max length), and `train_cgpo` with
`recipes/grpo_ifeval.yaml` (16 training prompts, K = 4, 4 prompts per rollout, μ = 2 updates per rollout, no
held-out evaluation). A global hook run before every optimizer step advances the profiler's schedule, so the
window is whole steps (each from one optimizer step to just before the next): DPO skips set-up, the reference pass
and step 1, warms up on step 2 and records --steps steps; GRPO skips the first rollout and records the second (its
generation, judging, π_old pass and both updates). The profiler slows what it records (the online step ~3x:
generation is many small ops), so speed is taken from steps run after the window: DPO's tokens/s over --steps more
steps, and the third rollout's wall time split into generation, judging and the rest (log-prob passes, updates) by
timing the same wrapped calls.

`--attention` (SFT only): `packed` is posttrain's packed-row attention (`train/packed_attention.py`, the default of
every training loop), `sdpa` transformers' SDPA with its block-diagonal mask over the packed row (the peer); with
both, each configuration runs with each, in this order, on the same model, and the ratio of their tokens/s is
printed.

The table splits self CPU time by phase (generation and judging, marked by wrapping the sampler's `generate` and
the Mixture of Judges in `record_function` here; forward; backward: ops under autograd's engine; optimizer: ops
under `Optimizer.step`) and by kind of op (matmul; the LM head and log-probs: matmuls with a vocabulary-sized
operand and the log-sum-exp/gather around them; attention; elementwise/norm/activation; copies and layout; the
rest), and prints the matmul GFLOP/s the profiler counts (its FLOP formulas cover mm/addmm/bmm) against the
machine's fp32 peak (2 cores x 2 AVX-512 FMA units x 16 lanes x 2 FLOP x clock; the clock is read from
/proc/cpuinfo when it says; native bf16 (`vdpbf16ps`) doubles it on paper).
"""

from __future__ import annotations

import argparse
import copy
import random
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

TOP_OPS = 0  # --top: also print the N ops with the most self time
PHASES = ("generation", "judging", "forward", "backward", "optimizer")
KINDS = ("matmul", "lm head", "attention", "elementwise", "copy/layout", "other")
_HEAD_AROUND = re.compile(r"^aten::(logsumexp|_log_softmax|log_softmax|gather|_log_softmax_backward_data|"
                          r"scatter_add_?|topk|sort|multinomial|_softmax|softmax|argmax)$")  # fmt: skip
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


def kind_of(event: Any, vocab: int) -> str:
    name = event.name
    if _ATTENTION.search(name):
        return "attention"
    if _MATMUL.match(name):
        shapes = getattr(event, "input_shapes", None) or []
        return "lm head" if any(vocab in (shape or []) for shape in shapes) else "matmul"
    if _HEAD_AROUND.match(name):
        return "lm head"
    if _COPY.match(name):
        return "copy/layout"
    if _ELEMENTWISE.match(name):
        return "elementwise"
    return "other"


def phase_of(event: Any) -> str:
    parent = event
    while parent is not None:
        if parent.name in ("posttrain.generate", "posttrain.judge"):
            return parent.name.split(".")[1].replace("generate", "generation").replace("judge", "judging")
        # The fused Adam kernel is the optimizer even where its `Optimizer.step` range began before the window did.
        if parent.name.startswith(("Optimizer.step", "Optimizer.zero_grad", "aten::_fused_adam")):
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
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU], with_flops=True, record_shapes=True
    ) as prof:
        for k in range(steps, 2 * steps):
            step(k)
    report(
        f"SFT, {config['dtype']}, {config['per_forward'] or batch} example(s) per forward pass, {config['attention']} "
        f"attention: {tokens / seconds:.1f} tokens/s unprofiled ({steps} steps of {batch}; {tokens} tokens, {targets} "
        "targets)",
        prof.events(), model,
    )  # fmt: skip
    return tokens / seconds


def report(title: str, events: Any, model: Any) -> None:
    """Self CPU time by phase and kind of op, and the matmuls' achieved GFLOP/s."""
    text_config = model.config.get_text_config()
    vocab = text_config.vocab_size
    table: dict[tuple[str, str], float] = defaultdict(float)
    by_op: dict[tuple[str, str], float] = defaultdict(float)
    flops = {"matmul": 0.0, "lm head": 0.0}
    seconds = {"matmul": 0.0, "lm head": 0.0}
    for event in events:
        seconds_self = event.self_cpu_time_total / 1e6
        if seconds_self <= 0:
            continue
        kind = kind_of(event, vocab)
        table[(phase_of(event), kind)] += seconds_self
        by_op[(phase_of(event), event.name)] += seconds_self
        if _MATMUL.match(event.name):
            flops[kind] += event.flops or 0
            seconds[kind] += seconds_self
    total = sum(table.values())
    print(f"\n== {title}; profiled self time {total:.2f} s")
    print(f"{'':12s}" + "".join(f"{k:>13s}" for k in KINDS) + f"{'total':>10s}")
    for phase in PHASES:
        row = [table[(phase, k)] for k in KINDS]
        if sum(row):
            cells = "".join(f"{100 * v / total:12.1f}%" for v in row)
            print(f"{phase:12s}{cells}{100 * sum(row) / total:9.1f}%")
    cols = [sum(table[(p, k)] for p in PHASES) for k in KINDS]
    print(f"{'all':12s}" + "".join(f"{100 * v / total:12.1f}%" for v in cols))
    for kind in ("matmul", "lm head"):
        if seconds[kind]:
            print(f"{kind}: {flops[kind] / 1e9:.1f} GFLOP in {seconds[kind]:.2f} s self time = "
                  f"{flops[kind] / 1e9 / seconds[kind]:.1f} GFLOP/s")  # fmt: skip
    print(f"all matmuls over all profiled time: {sum(flops.values()) / 1e9 / total:.1f} GFLOP/s")
    if TOP_OPS:
        ranked = sorted(by_op.items(), key=lambda item: -item[1])[:TOP_OPS]
        print(f"top {len(ranked)} ops by self time: " + "; ".join(
            f"{phase} {name} {100 * sec / total:.1f}%" for (phase, name), sec in ranked))  # fmt: skip


def profile_trainer(train: Any, schedule: dict[str, int]) -> tuple[Any, list[Any], dict[str, list[float]]]:
    """Run `train()` under the profiler, one schedule step per optimizer step (cut just before each, so an
    `Optimizer.step` range is never cut in two): its result, the events of the recorded window, and the wall
    seconds of every generation and judging call (profiled or not)."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    from posttrain.judges.mixture import MixtureOfJudges
    from posttrain.models.hf import HFBackend

    recorded: list[Any] = []
    walls: dict[str, list[float]] = defaultdict(list)
    prof = torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU], with_flops=True, record_shapes=True,
        schedule=torch.profiler.schedule(**schedule, repeat=1), on_trace_ready=lambda p: recorded.extend(p.events()),
    )  # fmt: skip

    def labelled(method: Any, label: str) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            with torch.profiler.record_function(label):
                out = method(*args, **kwargs)
            walls[label].append(time.perf_counter() - start)
            return out

        return wrapper

    wrapped = [(HFBackend, "generate", "posttrain.generate"), (MixtureOfJudges, "evaluate", "posttrain.judge"),
               (MixtureOfJudges, "evaluate_items", "posttrain.judge")]  # fmt: skip
    originals = [getattr(cls, name) for cls, name, _ in wrapped]
    for cls, name, label in wrapped:
        setattr(cls, name, labelled(getattr(cls, name), label))
    handle = register_optimizer_step_pre_hook(lambda *_: prof.step())
    try:
        with prof:
            result = train()
    finally:
        handle.remove()
        for (cls, name, _), original in zip(wrapped, originals, strict=True):
            setattr(cls, name, original)
    return result, recorded, walls


def start_model(model: Any, dtype: str) -> Any:
    """A fresh copy of the fp32 model for one run; for `bf16-weights`, cast to bf16 (as `model.dtype=bfloat16`)."""
    fresh = copy.deepcopy(model)
    return fresh.to(torch.bfloat16) if dtype == "bf16-weights" else fresh


def run_dpo(dtype: str, model_and_tokenizer: tuple[Any, Any], steps: int, out: Path) -> None:
    import dpo_vs_trl as job

    from posttrain.config import load_config
    from posttrain.records import Pair
    from posttrain.train.dpo import DPOConfig, train_dpo

    model, tokenizer = model_and_tokenizer
    pairs = [Pair.model_validate(p) for p in job.make_pairs()]
    cfg = load_config(DPOConfig, None, [
        f"train.output_dir={out / f'dpo_{dtype}'}", f"train.batch_size={job.BATCH}", f"train.lr={job.LR}",
        "train.progress=false", "train.resume=false", f"train.max_steps={2 * steps + 2}", f"loss.beta={job.BETA}",
        f"data.max_length={job.MAX_LENGTH}", "data.mask_format_tokens=false", "data.shuffle=false",
        "data.bucket_by_length=false", f"train.mixed_precision={'bf16' if dtype == 'bfloat16' else 'no'}",
    ])  # fmt: skip
    result, events, _ = profile_trainer(
        lambda: train_dpo(cfg, pairs, model=start_model(model, dtype), tokenizer=tokenizer),
        {"wait": 1, "warmup": 1, "active": steps},
    )
    # Speed from the `steps` steps after the recorded ones (the profiler slows what it records). DPO's `tokens` and
    # `tokens_per_s` are running totals (the reference pass included): differences of the two.
    first, last = result.metrics[-steps - 1], result.metrics[-1]
    tokens = last["tokens"] - first["tokens"]
    wall = last["tokens"] / last["tokens_per_s"] - first["tokens"] / first["tokens_per_s"]
    report(f"DPO ({job.BATCH} pairs per step), {dtype}: {tokens / wall:.1f} tokens/s over {steps} unprofiled steps "
           f"({tokens} tokens)", events, model)  # fmt: skip


def run_grpo(dtype: str, model_and_tokenizer: tuple[Any, Any], out: Path) -> None:
    from posttrain.config import load_config
    from posttrain.train.cgpo import CGPOConfig, train_cgpo

    model, tokenizer = model_and_tokenizer
    recipe = Path(__file__).resolve().parent.parent / "recipes" / "grpo_ifeval.yaml"
    cfg = load_config(CGPOConfig, recipe, [
        f"train.output_dir={out / f'grpo_{dtype}'}", "prompts.n_train=16", "prompts.n_heldout=1", "train.max_steps=3",
        "train.progress=false", "train.resume=false", "evaluate=false", "heldout_k=0",
        f"train.mixed_precision={'bf16' if dtype == 'bfloat16' else 'no'}",
    ])  # fmt: skip
    result, events, walls = profile_trainer(
        lambda: train_cgpo(cfg, model=start_model(model, dtype), tokenizer=tokenizer), {"wait": 1, "warmup": 1, "active": 2}
    )
    # Rollout 2 is recorded; rollout 3 runs unprofiled, and its wall time is split by the same wrappers.
    row, generation, judging = result.metrics[2], walls["posttrain.generate"][2], sum(walls["posttrain.judge"][2:])
    rest = row["step_seconds"] - generation - judging
    report(f"online GRPO (4 prompts x K 4, μ 2), {dtype}: unprofiled rollout 3 {row['step_seconds']:.1f} s for "
           f"{row['tokens']} tokens ({row['tokens'] / row['step_seconds']:.1f} tokens/s generated and trained): "
           f"generation {generation:.1f} s ({generation / row['step_seconds']:.0%}), judging {judging:.2f} s, "
           f"log-prob passes + updates {rest:.1f} s ({rest / row['step_seconds']:.0%})", events, model)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--step", nargs="*", choices=["sft", "dpo", "grpo"], default=["sft"])
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "both", "bf16-weights"], default="both",
                        help="bfloat16: autocast over fp32 weights; bf16-weights (DPO, GRPO): the weights in bf16")  # fmt: skip
    parser.add_argument("--examples-per-forward", type=int, nargs="*", default=[1, 8])
    parser.add_argument("--steps", type=int, default=3, help="SFT and DPO steps recorded")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--attention", nargs="*", choices=["sdpa", "packed"], default=["packed"])
    parser.add_argument("--smoke", action="store_true", help="a tiny model built from a config; 1 step")
    parser.add_argument("--top", type=int, default=0, help="also print the N ops with the most self time")
    args = parser.parse_args()
    if args.dtype == "bf16-weights" and "sft" in args.step:
        parser.error("--dtype bf16-weights profiles the DPO and online trainers: use --step dpo grpo")
    global TOP_OPS
    TOP_OPS = args.top
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
    for dtype in dtypes if "sft" in args.step else []:
        for per_forward in args.examples_per_forward:
            speed = {}
            for attention in args.attention:
                config = {"dtype": dtype, "per_forward": per_forward, "attention": attention}
                speed[attention] = run(config, model_and_tokenizer, args.steps, args.batch)
            if len(speed) == 2:
                print(f"\n{dtype}, {per_forward} per pass: packed {speed['packed']:.1f} vs sdpa {speed['sdpa']:.1f} "
                      f"tokens/s = {speed['packed'] / speed['sdpa']:.2f}x")  # fmt: skip
    with tempfile.TemporaryDirectory() as out:
        for dtype in dtypes:
            if "dpo" in args.step:
                run_dpo(dtype, model_and_tokenizer, args.steps, Path(out))
            if "grpo" in args.step:
                run_grpo(dtype, model_and_tokenizer, Path(out))

if __name__ == "__main__":
    main()
