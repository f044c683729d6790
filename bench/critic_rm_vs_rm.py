"""Critic-RM vs the plain Bradley-Terry reward model: held-out preference accuracy and judge throughput.

    python bench/critic_rm_vs_rm.py --pairs runs/quickstart/pairs/pairs.jsonl --out runs/bench_critic_rm
    python bench/critic_rm_vs_rm.py --smoke   # tiny random models and a scripted critic: the plumbing, in seconds

Both reward models start from the same base model (`--model`) and train on the same training pairs with the same
budget: epochs, batch size, learning rate and schedule (`posttrain train rm` with recipes/rm.yaml's settings,
`posttrain train critic-rm` with recipes/critic_rm.yaml's). Critic-RM also spends its stage-1 critique sampling,
timed separately, and trains on up to `--keep` rows per pair (one per kept critique) where the RM has one:
`--keep 1` gives both the same number of optimizer steps. The pairs are split by prompt (a prompt's pairs are all on one side), `--heldout` of the
prompts held out. Accuracy = the fraction of held-out pairs whose chosen response gets the higher reward; for
Critic-RM (the mean over `--judge-critiques` sampled critiques) a −1 verdict on either side counts as wrong, and
how often that happened is reported. Throughput = responses judged per second over the held-out responses.
Results also go to `<out>/results.json`.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from posttrain.config import load_config
from posttrain.judges import get_judge
from posttrain.records import Pair, as_text, read_records
from posttrain.train.critic_rm import CriticRMConfig, train_critic_rm
from posttrain.train.reward import RMConfig, train_reward


def split_by_prompt(pairs: list[Pair], heldout: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    prompts = sorted({json.dumps(p.model_dump(mode="json")["prompt"]) for p in pairs})
    random.Random(seed).shuffle(prompts)
    held = set(prompts[: max(1, round(heldout * len(prompts)))])
    test = [p for p in pairs if json.dumps(p.model_dump(mode="json")["prompt"]) in held]
    return [p for p in pairs if p not in test], test


def held_out_accuracy(judge: Any, pairs: list[Pair]) -> dict[str, float]:
    prompts = [p.prompt for p in pairs for _ in range(2)]
    responses = [as_text(r) for p in pairs for r in (p.chosen, p.rejected)]
    start = time.perf_counter()
    verdicts = judge.judge(prompts, responses)
    seconds = time.perf_counter() - start
    correct = failed = 0
    for chosen, rejected in zip(verdicts[0::2], verdicts[1::2], strict=True):
        if chosen.value == -1 or rejected.value == -1:
            failed += 1
        elif chosen.score > rejected.score:
            correct += 1
    return {
        "accuracy": correct / len(pairs),
        "failed_pairs": failed,
        "judge_seconds": seconds,
        "samples_per_s": len(responses) / seconds,
    }


# ---------------------------------------------------------------------------------------------------- smoke mode


class ScriptedCritic:
    """Smoke mode's critic: a response with "fine" in it scores 8/10, another 3/10 (plumbing, not a critic)."""

    name = "scripted"

    def generate(self, prompts: list[Any], n: int, params: Any) -> list[list[Any]]:
        from posttrain.models.backend import Completion, as_messages

        out = []
        for prompt in prompts:
            text = as_messages(prompt)[-1]["content"]
            tail = text.rsplit("[Assistant response]\n", 1)[-1]
            score = 8 if "fine" in tail.split("[Critique]")[0] else 3
            out.append(
                [
                    Completion(f"Critique {j}: looks {score}. Score: {score}/10", 5, 5, "stop")
                    for j in range(n)
                ]
            )
        return out

    def logprobs(self, prompt: Any, completion: str) -> list[float]:
        raise NotImplementedError("a scripted generator: it only writes text, it scores nothing")


def smoke_setup(folder: Path) -> tuple[str, list[Pair]]:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from posttrain.models.embedded import embedded_model_dir

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder / "tiny")
    tokenizer.save_pretrained(folder / "tiny")
    pairs = [
        Pair(prompt=f"Rate item {i}.", chosen=f"item {i}: fine.", rejected=f"ITEM {i}: BAD!!")
        for i in range(16)
    ]
    return str(folder / "tiny"), pairs


# ---------------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pairs", default="runs/quickstart/pairs/pairs.jsonl", help="preference pairs (JSONL)"
    )
    parser.add_argument("--model", default="embedded", help="base model of both reward models")
    parser.add_argument("--heldout", type=float, default=0.25, help="fraction of prompts held out")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--critiques", type=int, default=4, help="stage 1: critiques sampled per response")
    parser.add_argument(
        "--keep", type=int, default=2, help="stage 1: critiques kept per response (rows per pair)"
    )
    parser.add_argument(
        "--judge-critiques", type=int, default=2, help="inference: critiques averaged per response"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bench_critic_rm")
    parser.add_argument("--smoke", action="store_true", help="tiny random models, scripted critic, 16 pairs")
    args = parser.parse_args()

    scratch = tempfile.TemporaryDirectory() if args.smoke else None
    out = Path(scratch.name if scratch else args.out)
    critic = None
    if args.smoke:
        model, pairs = smoke_setup(out)
        critic = ScriptedCritic()
        args.lr, args.epochs = 3e-3, 3
    else:
        model, pairs = args.model, read_records(args.pairs, Pair)
    train, test = split_by_prompt(pairs, args.heldout, args.seed)
    budget = [
        f"model.name={model}", f"train.epochs={args.epochs}", f"train.batch_size={args.batch_size}",
        f"train.lr={args.lr}", f"train.seed={args.seed}", "train.save_every=0", "train.progress=false",
    ]  # fmt: skip
    print(
        f"{len(train)} training pairs, {len(test)} held-out pairs ({args.heldout:.0%} of the prompts), base {model}"
    )

    rm_cfg = load_config(RMConfig, "recipes/rm.yaml", [*budget, f"train.output_dir={out / 'rm'}"])
    rm_result = train_reward(rm_cfg, train)
    rm = held_out_accuracy(get_judge("reward_model", model=str(rm_result.model_dir)), test)
    rm.update(train_seconds=rm_result.train_seconds, steps=rm_result.steps)

    critic_overrides = [
        *budget,
        f"train.output_dir={out / 'critic_rm'}",
        f"critiques.n={args.critiques}",
        f"critiques.keep={args.keep}",
    ]
    if args.smoke:
        critic_overrides += ["data.max_length=256", "critiques.refine=none", "data.path=null"]
    critic_cfg = load_config(CriticRMConfig, "recipes/critic_rm.yaml", critic_overrides)
    start = time.perf_counter()
    critic_result = train_critic_rm(critic_cfg, train, critic=critic)
    total = time.perf_counter() - start
    judge = get_judge("critic_rm", model=str(critic_result.model_dir), critiques=args.judge_critiques)
    if args.smoke:
        judge.backend = ScriptedCritic()  # type: ignore[attr-defined]
    crm = held_out_accuracy(judge, test)
    crm.update(
        train_seconds=critic_result.train_seconds, critique_seconds=total - critic_result.train_seconds,
        steps=critic_result.steps, **{f"stage1_{k}": v for k, v in critic_result.critiques.items()},
    )  # fmt: skip

    print(f"\n{'':<14}{'accuracy':>10}{'-1 pairs':>10}{'samples/s':>11}{'train s':>9}{'steps':>7}")
    for name, row in (("plain BT RM", rm), ("Critic-RM", crm)):
        print(
            f"{name:<14}{row['accuracy']:>10.3f}{row['failed_pairs']:>10}{row['samples_per_s']:>11.2f}"
            f"{row['train_seconds']:>9.0f}{row['steps']:>7}"
        )
    print(f"Critic-RM stage 1 (critiques): {crm['critique_seconds']:.0f} s; {critic_result.critiques}")
    print(f"ratio Critic-RM / RM: accuracy {crm['accuracy'] / max(rm['accuracy'], 1e-9):.2f}x, "
          f"throughput {crm['samples_per_s'] / rm['samples_per_s']:.3f}x")  # fmt: skip
    results = {"heldout_pairs": len(test), "train_pairs": len(train), "model": model, "rm": rm, "critic_rm": crm,
               "settings": vars(args)}  # fmt: skip
    if not args.smoke:
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"results: {out / 'results.json'}")
    if scratch:
        scratch.cleanup()


if __name__ == "__main__":
    main()
