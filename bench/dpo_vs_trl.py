"""The same offline DPO job with TRL's DPOTrainer and with posttrain, each in a fresh process.

    python bench/dpo_vs_trl.py            # both, then the comparison
    python bench/dpo_vs_trl.py --only posttrain
    python bench/dpo_vs_trl.py --bf16 posttrain   # also posttrain in bf16 two ways (TRL as it defaults: fp32)
    python bench/dpo_vs_trl.py --bf16 both        # ... and TRL under bf16 autocast (bf16=True)

Job: the embedded SmolLM2-135M-Instruct (fp32), 64 synthetic pairs with 45-115-token responses, max length 256,
batch 4, beta 0.1, lr 1e-6 (linear decay, no warmup, grad-norm clip 1.0, AdamW as TRL's defaults), one epoch =
16 steps, 2 CPU threads, gradient checkpointing off. Both trainers see the pairs in file order (TRL's sampler is
made sequential) and train on the same tokens (posttrain with `data.mask_format_tokens=false`, since TRL trains on
the end-of-turn tokens too), so their loss curves are comparable step by step.

Throughput = non-padding chosen + rejected tokens (prompt included) of the epoch, divided by the wall time of the
training call, which includes the reference pass (TRL: a reference copy run every step; posttrain: one cached
pass before training). Model loading and the final save are excluded for both. Peak RSS is the child's ru_maxrss.
`--bf16` adds posttrain in bf16 two ways: "posttrain amp", matmuls under bf16 autocast with fp32 weights and
optimizer state (`train.mixed_precision=bf16`), and "posttrain bf16", the weights themselves in bf16 with the
compensated AdamW (`model.dtype=bfloat16`, train/compensated_adamw.py); with `both`, TRL with `bf16=True`
(autocast) too. Every run's loss curve is compared with TRL's fp32 one (posttrain's with `--only posttrain`), which
for the bf16 runs measures bf16's fidelity to fp32 too.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from posttrain.cli.launch import jemalloc_env

THREADS = 2
N_PAIRS, MAX_LENGTH, BATCH, BETA, LR = 64, 256, 4, 0.1, 1e-6
EXTRA: list[str] = [a for a in os.environ.get("BENCH_POSTTRAIN_OVERRIDES", "").split() if a]
LOSS_TOLERANCE = 0.02  # max |loss_posttrain - loss_trl| over the 16 steps (both start at log 2 exactly)

WORDS = (
    "river stone light garden morning window paper quiet market bridge winter coffee music letter forest "
    "table school story doctor travel kitchen city ocean mountain friend summer voice simple careful bright "
    "slowly often always never because before after during people little important different small large "
    "young old early late open close write read build carry follow listen watch learn teach answer"
).split()
TOPICS = "a lighthouse|a city park|the first day of school|a rainy afternoon|an old bicycle|a small bakery|a train ride|a winter market".split(
    "|"
)


def make_pairs(seed: int = 0) -> list[dict[str, str]]:
    """Pairs whose chosen is all lowercase and rejected title-cased, responses of roughly 45-115 tokens."""
    rng = random.Random(seed)
    pairs = []
    for i in range(N_PAIRS):
        topic = TOPICS[i % len(TOPICS)]
        prompt = f"Write a short note about {topic}. Use only lowercase letters. (note {i})"

        def text(n_words: int) -> str:
            sentences, words = [], [rng.choice(WORDS) for _ in range(n_words)]
            for start in range(0, n_words, 9):
                sentences.append(" ".join(words[start : start + 9]) + ".")
            return " ".join(sentences)

        chosen = text(rng.randint(40, 95))
        rejected = text(rng.randint(40, 95)).title()
        pairs.append(
            {
                "prompt": [{"role": "user", "content": prompt}],
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
            }
        )
    return pairs


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_trl(data: Path, out: Path, bf16: bool) -> dict:
    import torch
    from datasets import Dataset
    from torch.utils.data import SequentialSampler
    from trl import DPOConfig, DPOTrainer

    from posttrain.models.embedded import load_model_and_tokenizer

    torch.manual_seed(0)
    model, tokenizer = load_model_and_tokenizer("embedded")
    dataset = Dataset.from_list(json.loads(data.read_text()))

    class InOrderDPOTrainer(DPOTrainer):
        def _get_train_sampler(self, *args, **kwargs):  # same batches as posttrain, step by step
            return SequentialSampler(self.train_dataset)

    args = DPOConfig(
        output_dir=str(out / "trl"),
        per_device_train_batch_size=BATCH,
        learning_rate=LR,
        beta=BETA,
        max_length=MAX_LENGTH,
        num_train_epochs=1,
        gradient_checkpointing=False,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=bf16,
        seed=0,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = InOrderDPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    ds = trainer.train_dataset
    columns = zip(ds["prompt_ids"], ds["chosen_ids"], ds["rejected_ids"], strict=True)
    tokens = sum(2 * len(p) + len(c) + len(r) for p, c, r in columns)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"tokens": tokens, "seconds": seconds, "losses": losses}


def run_posttrain(data: Path, out: Path, precision: str) -> dict:
    from posttrain.config import load_config
    from posttrain.records import Pair
    from posttrain.train.dpo import DPOConfig, train_dpo

    pairs = [Pair.model_validate(p) for p in json.loads(data.read_text())]
    cfg = load_config(
        DPOConfig,
        None,
        [
            f"train.output_dir={out / 'posttrain'}",
            f"train.batch_size={BATCH}",
            f"train.lr={LR}",
            "train.scheduler=linear",
            "train.warmup_steps=0",
            "train.max_grad_norm=1.0",
            f"train.threads={THREADS}",
            "train.progress=false",
            "train.resume=false",
            f"loss.beta={BETA}",
            f"data.max_length={MAX_LENGTH}",
            "data.mask_format_tokens=false",
            "data.shuffle=false",
            "data.bucket_by_length=false",
            f"train.mixed_precision={'bf16' if precision == 'amp' else 'no'}",
            f"model.dtype={'bfloat16' if precision == 'bf16' else 'float32'}",
            *EXTRA,
        ],
    )
    result = train_dpo(cfg, pairs)
    return {"tokens": result.tokens, "seconds": result.train_seconds, "losses": [m["loss"] for m in result.metrics]}


def child(which: str, data: Path, out: Path, result_path: Path, precision: str) -> None:
    import torch

    torch.set_num_threads(THREADS)
    begin = time.perf_counter()
    stats = run_trl(data, out, precision == "amp") if which == "trl" else run_posttrain(data, out, precision)
    stats["process_seconds"] = time.perf_counter() - begin
    stats["peak_rss_mb"] = peak_rss_mb()
    stats["tokens_per_s"] = stats["tokens"] / stats["seconds"]
    result_path.write_text(json.dumps(stats))


def _median_run(runs: list[dict]) -> dict:
    """The run with the median throughput, its peak RSS replaced by the median peak RSS."""
    ordered = sorted(runs, key=lambda r: r["tokens_per_s"])
    median = dict(ordered[(len(ordered) - 1) // 2])
    median["peak_rss_mb"] = sorted(r["peak_rss_mb"] for r in runs)[(len(runs) - 1) // 2]
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["trl", "posttrain"])
    parser.add_argument("--trl-jemalloc", action="store_true", help="TRL under jemalloc too (posttrain: as its CLI)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="rounds in alternating order (TRL first, then posttrain first, ...): "
        "the machine's speed drifts, so 2 rounds cancel a linear drift; medians are reported"
    )  # fmt: skip
    parser.add_argument(
        "--bf16", choices=["none", "posttrain", "both"], default="none",
        help="also run posttrain in bf16 (autocast, and bf16 weights) and with 'both' TRL under bf16 autocast, "
        "beside the fp32 runs; bf16 pays only where the CPU computes it natively (avx512_bf16 or amx_bf16 in "
        "/proc/cpuinfo)",
    )  # fmt: skip
    parser.add_argument("--child", choices=["trl", "posttrain"], help=argparse.SUPPRESS)
    parser.add_argument("--child-precision", choices=["fp32", "amp", "bf16"], default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data, args.out, args.result, args.child_precision)
        return

    # (label, trainer, precision) of every run of a round
    entries = [("trl", "trl", "fp32"), ("posttrain", "posttrain", "fp32")]
    if args.bf16 in ("posttrain", "both"):
        entries += [("posttrain amp", "posttrain", "amp"), ("posttrain bf16", "posttrain", "bf16")]
    if args.bf16 == "both":
        entries.append(("trl amp", "trl", "amp"))
    if args.only:
        entries = [e for e in entries if e[1] == args.only]
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS), "TQDM_DISABLE": "1"}
    runs: dict[str, list[dict]] = {label: [] for label, _, _ in entries}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "pairs.json"
        data.write_text(json.dumps(make_pairs()))
        for round_ in range(args.rounds):
            for label, which, precision in entries[:: 1 if round_ % 2 == 0 else -1]:
                result = Path(tmp) / "result.json"
                cmd = [sys.executable, __file__, "--child", which, "--data", str(data), "--out", tmp,
                       "--result", str(result), "--child-precision", precision]  # fmt: skip
                # posttrain's child gets the environment its command gives itself (jemalloc when installed, see
                # posttrain/cli/launch.py); TRL's runs with the system malloc unless --trl-jemalloc.
                child_env = env if which == "trl" and not args.trl_jemalloc else (jemalloc_env(env) or env)
                subprocess.run(cmd, env=child_env, check=True, stdout=subprocess.DEVNULL)
                run = json.loads(result.read_text())
                run["malloc"] = "jemalloc" if "jemalloc" in child_env.get("LD_PRELOAD", "") else "system"
                runs[label].append(run)
                print(f"round {round_ + 1} {label}: {run['tokens_per_s']:.1f} tok/s, {run['peak_rss_mb']:.0f} MB",
                      flush=True)  # fmt: skip
    results = {label: _median_run(r) for label, r in runs.items()}
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (other jobs share the {os.cpu_count()} cores)")
    print(f"{'':>15} {'tokens':>7} {'train s':>8} {'tokens/s':>9} {'peak RSS MB':>12} {'process s':>10} malloc")
    for label, r in results.items():
        print(
            f"{label:>15} {r['tokens']:>7} {r['seconds']:>8.1f} {r['tokens_per_s']:>9.1f} "
            f"{r['peak_rss_mb']:>12.0f} {r['process_seconds']:>10.1f} {r['malloc']}"
        )
    for ours in (label for label in results if label.startswith("posttrain")):
        for peer in (label for label in results if label.startswith("trl")):
            a, b = results[peer], results[ours]
            speed = ", ".join(
                f"{y['tokens_per_s'] / x['tokens_per_s']:.2f}x" for x, y in zip(runs[peer], runs[ours], strict=True)
            )  # fmt: skip
            print(f"{ours} / {peer}: throughput {b['tokens_per_s'] / a['tokens_per_s']:.2f}x (rounds: {speed}), "
                  f"peak RSS {b['peak_rss_mb'] / a['peak_rss_mb']:.2f}")  # fmt: skip
    # Every other run's loss curve step by step against the fp32 baseline: TRL's, else posttrain's (--only posttrain).
    base = "trl" if "trl" in results else "posttrain" if "posttrain" in results else None
    if base is not None:
        others = [label for label in results if label != base]
        curves = [results[label]["losses"] for label in [base, *others]]
        print("step " + "".join(f"{label:>16}" for label in [base, *others]))
        for step, values in enumerate(zip(*curves, strict=False), start=1):
            print(f"{step:>4} " + "".join(f"{v:>16.4f}" for v in values))
        for label in others:
            ref, got = results[base]["losses"], results[label]["losses"]
            worst = max(abs(a - b) for a, b in zip(ref, got, strict=False))
            verdict = "within" if worst <= LOSS_TOLERANCE and len(ref) == len(got) else "OUTSIDE"
            print(f"{label}: max |loss - {base} loss| = {worst:.4f}: {verdict} the tolerance {LOSS_TOLERANCE}")


if __name__ == "__main__":
    main()
