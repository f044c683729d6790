"""Label noise: pairwise DPO vs mDPO on the same judged samples, with a fraction of the labels flipped on purpose.

    python bench/mdpo_label_noise.py --smoke                     # tiny random model, made-up data, ~1 min
    python bench/mdpo_label_noise.py --out runs/mdpo_noise       # embedded SmolLM2, see docs/methods/training.md

Data: synthetic verifiable prompts, `--n` samples each from the model, judged by the IFEval checkers (fixed mode);
each training prompt gives one group of K satisfied vs K violated samples (`pairs --method group`). The prompts are
split before anything is trained: `--heldout` of them only serve the evaluation, with clean labels.

Noise: each of a training group's K (chosen k, rejected k) pairs is flipped with probability `--noise` (one seeded
draw per noise level, shared by both methods). Pairwise DPO trains on the K pairs of every group as they are after
the flips; mDPO on the groups they form (chosen side = the K responses labelled chosen). Same responses, same flips,
same steps (a DPO micro-batch holds the K pairs of the groups in an mDPO micro-batch), same β and learning rate.

Metric: held-out preference accuracy, the fraction of held-out (satisfied, violated) response pairs of a prompt,
all K_s x K_v of them, whose implicit reward β·log(π/π_ref) ranks the satisfied one higher. A tie (as at the start,
where π = π_ref) counts as half.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path
from typing import Any

import torch

from posttrain.atomic import atomic_write_text
from posttrain.config import load_config
from posttrain.pairs.groups import satisfied_vs_violated_groups
from posttrain.records import GroupPair, Pair, Sample, Verdict
from posttrain.train.data import collate, pad_token_id, render
from posttrain.train.dpo import DPOConfig, train_dpo
from posttrain.train.logprobs import sequence_logps, token_logps


def judged_samples(args: argparse.Namespace) -> tuple[list[Sample], list[Verdict]]:
    """K samples of each synthetic prompt from the model, judged by the IFEval checkers."""
    from posttrain.judges import get_judge, judge_samples
    from posttrain.models import SamplingParams
    from posttrain.models.hf import HFBackend
    from posttrain.prompts.synth import SynthConfig, synthesize
    from posttrain.sampling import to_sample

    prompts, _ = synthesize(SynthConfig(n=args.prompts, constraints=args.constraints, seed=args.seed))
    backend = HFBackend(args.model, threads=args.threads, dtype=args.sample_dtype)
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed)
    samples = []
    for start in range(0, len(prompts), 8):
        batch = prompts[start : start + 8]
        for p, row in zip(batch, backend.generate([p.prompt for p in batch], args.n, params), strict=True):
            samples += [to_sample(p, c, args.model, params, i) for i, c in enumerate(row)]
    return samples, judge_samples(get_judge("ifeval", mode="fixed"), samples, {p.id: p for p in prompts})


def cached_judged_samples(args: argparse.Namespace, out: Path) -> tuple[list[Sample], list[Verdict]]:
    """`judged_samples`, kept in `<out>/samples.jsonl` and `verdicts.jsonl` for a rerun with the same sampling
    settings (sampling is most of the run; a rerun that changes only the training settings reuses them)."""
    from posttrain.records import read_records, write_records

    keys = ("model", "prompts", "constraints", "n", "max_new_tokens", "temperature", "seed", "sample_dtype")
    settings = json.dumps({k: getattr(args, k) for k in keys}, sort_keys=True)
    marker = out / "samples.settings.json"
    out.mkdir(parents=True, exist_ok=True)
    if marker.exists() and marker.read_text(encoding="utf-8") == settings:
        return read_records(out / "samples.jsonl", Sample), read_records(out / "verdicts.jsonl", Verdict)
    samples, verdicts = judged_samples(args)
    write_records(out / "samples.jsonl", samples)
    write_records(out / "verdicts.jsonl", verdicts)
    atomic_write_text(marker, settings)
    return samples, verdicts


def made_up_samples(n_prompts: int, per_side: int) -> tuple[list[Sample], list[Verdict]]:
    """--smoke: all-lowercase answers satisfy, capitalised ones violate (one constraint judge)."""
    samples, verdicts = [], []
    endings = ["small and round.", "very useful.", "made of wood.", "easy to carry.", "quite old.", "bright red."]
    for i in range(n_prompts):
        for j, ending in enumerate(endings[:per_side]):
            for ok, text in ((1, f"thing {i} is {ending}"), (0, f"Thing {i} Is {ending.title()}")):
                s = Sample(prompt_id=f"p{i}", prompt=f"Describe thing {i} in lowercase.", completion=text,
                           index=2 * j + (1 - ok))  # fmt: skip
                samples.append(s)
                verdicts.append(Verdict(sample_id=s.id, judge="ifeval", value=ok, score=float(ok)))
    return samples, verdicts


def flipped(groups: list[GroupPair], noise: float, seed: int) -> tuple[list[GroupPair], list[Pair], int]:
    """The groups with each (chosen k, rejected k) swapped with probability `noise`, the same as pairs; flips."""
    rng = random.Random(seed)
    noisy_groups, pairs, flips = [], [], 0
    for g in groups:
        chosen, rejected = [], []
        for c, r in zip(g.chosen, g.rejected, strict=True):
            if rng.random() < noise:
                c, r = r, c
                flips += 1
            chosen.append(c)
            rejected.append(r)
            pairs.append(Pair(prompt=g.prompt, chosen=c, rejected=r))
        noisy_groups.append(GroupPair(prompt=g.prompt, chosen=chosen, rejected=rejected, prompt_id=g.prompt_id))
    return noisy_groups, pairs, flips


@torch.no_grad()
def response_logps(model: Any, tokenizer: Any, prompt: Any, responses: list[Any], max_length: int) -> list[float]:
    seqs = [render(tokenizer, prompt, r, max_length, mask_format_tokens=True) for r in responses]
    kept = [s for s in seqs if s is not None]
    if len(kept) != len(seqs):
        raise SystemExit(f"a held-out prompt leaves no room for a response within max_length={max_length}")
    batch = collate(kept, pad_token_id(tokenizer), packing=True)
    return sequence_logps(token_logps(model, batch, 1024), batch).double().tolist()


def heldout_accuracy(model_dir: str, reference: dict[str, list[float]], heldout: list[GroupPair],
                     max_length: int) -> float:  # fmt: skip
    """Fraction of held-out (satisfied, violated) pairs ranked right by log(π/π_ref) (β > 0 does not change it)."""
    from posttrain.models.embedded import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(model_dir)
    model.eval()
    right = total = 0.0
    for g in heldout:
        logps = response_logps(model, tokenizer, g.prompt, g.chosen + g.rejected, max_length)
        ratio = [p - q for p, q in zip(logps, reference[g.id], strict=True)]
        chosen, rejected = ratio[: len(g.chosen)], ratio[len(g.chosen) :]
        for c in chosen:
            for r in rejected:
                right += 1.0 if c > r else 0.5 if c == r else 0.0
                total += 1
    return right / max(total, 1)


def tiny_model_dir(path: Path) -> str:
    """--smoke: a tiny random Llama with the embedded tokenizer (nothing is downloaded)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from posttrain.models.embedded import embedded_model_dir

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/mdpo_noise", help="Output directory (one training run per method x noise).")
    ap.add_argument("--model", default="embedded", help="Policy to sample from and train (HF directory or embedded).")
    ap.add_argument("--prompts", type=int, default=240, help="Synthetic prompts (training + held out).")
    ap.add_argument("--heldout", type=float, default=0.25, help="Share of the prompts held out for evaluation.")
    ap.add_argument("--constraints", default="1-2")
    ap.add_argument("--n", type=int, default=8, help="Samples per prompt.")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--sample-dtype", default="auto", help="Sampling dtype (auto: bf16 where the CPU computes it).")
    ap.add_argument("--group-size", type=int, default=2, help="K satisfied vs K violated per group (0: smaller side).")
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.2, 0.4], help="Label flip probabilities.")
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=5e-6)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4, help="Groups per optimizer step (DPO: their K pairs each).")
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="Tiny random model and made-up data: checks the script runs.")
    args = ap.parse_args()

    out = Path(args.out)
    if args.smoke:
        out = Path(tempfile.mkdtemp(prefix="mdpo_noise_smoke_"))
        args.model = tiny_model_dir(out / "tiny-model")
        args.noise, args.epochs, args.lr, args.batch_size, args.max_length = [0.0, 0.5], 2, 1e-3, 2, 128
        samples, verdicts = made_up_samples(n_prompts=8, per_side=2)
    else:
        torch.set_num_threads(args.threads)
        samples, verdicts = cached_judged_samples(args, out)
    groups, stats = satisfied_vs_violated_groups(samples, verdicts, group_size=args.group_size or None, seed=args.seed)
    order = sorted(groups, key=lambda g: random.Random(f"{args.seed}:{g.prompt_id}").random())
    n_heldout = max(1, round(args.heldout * len(order)))
    heldout, train = order[:n_heldout], order[n_heldout:]
    if not train:
        raise SystemExit(f"no training groups ({len(groups)} groups; skipped: {dict(stats.skipped)})")
    k = len(train[0].chosen)
    print(f"{len(groups)} groups from {stats.prompts} prompts (skipped: {dict(stats.skipped)}); "
          f"train {len(train)}, held out {len(heldout)} ({sum(len(g.chosen) * len(g.rejected) for g in heldout)} "
          f"pairs); K={args.group_size or 'smaller side'}")  # fmt: skip

    from posttrain.models.embedded import load_model_and_tokenizer

    base, tokenizer = load_model_and_tokenizer(args.model)
    reference = {g.id: response_logps(base, tokenizer, g.prompt, g.chosen + g.rejected, args.max_length)
                 for g in heldout}  # fmt: skip
    del base

    results = []
    for noise in args.noise:
        noisy_groups, noisy_pairs, flips = flipped(train, noise, args.seed)
        for method, rows, batch in (("dpo", noisy_pairs, args.batch_size * k), ("mdpo", noisy_groups, args.batch_size)):
            run = out / f"{method}-noise{noise:g}"
            cfg = load_config(DPOConfig, None, [
                f"model.name={args.model}", f"train.output_dir={run}", f"train.batch_size={batch}",
                f"train.epochs={args.epochs}", f"train.lr={args.lr}", f"train.seed={args.seed}",
                f"loss.type={'mdpo' if method == 'mdpo' else 'sigmoid'}", f"loss.beta={args.beta}",
                f"data.max_length={args.max_length}", "data.long_prompt=skip", "train.progress=false",
                "train.save_every=100000", "train.resume=false",
            ])  # fmt: skip
            result = train_dpo(cfg, rows)
            accuracy = heldout_accuracy(str(result.model_dir), reference, heldout, args.max_length)
            results.append({"method": method, "noise": noise, "flipped_pairs": flips, "steps": result.steps,
                            "train_seconds": round(result.train_seconds, 1), "heldout_accuracy": accuracy})  # fmt: skip
            print(f"noise {noise:4.2f}  {method:5s} flipped {flips:4d} pairs, {result.steps:3d} steps, "
                  f"held-out preference accuracy {accuracy:.3f}")  # fmt: skip

    print("\nheld-out preference accuracy (pairs ranked right by the implicit reward)")
    print(f"{'noise':>6} {'DPO':>7} {'mDPO':>7}")
    for noise in args.noise:
        by = {r["method"]: r["heldout_accuracy"] for r in results if r["noise"] == noise}
        print(f"{noise:6.2f} {by['dpo']:7.3f} {by['mdpo']:7.3f}")
    summary = {"args": vars(args), "groups": stats.as_dict(), "train_groups": len(train), "heldout_groups": len(heldout),
               "results": results}  # fmt: skip
    atomic_write_text(out / "results.json", json.dumps(summary, indent=2))
    print(f"results: {out / 'results.json'}")


if __name__ == "__main__":
    main()
