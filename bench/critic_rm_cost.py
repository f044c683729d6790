"""What a Critic-RM verdict costs against a plain reward model's, on the same base model, in one run.

    python bench/critic_rm_cost.py                              # embedded model, 32 IFEval prompts, 4 critiques
    python bench/critic_rm_cost.py --responses 16 --critiques 2 --max-new-tokens 128

The issue asks for the Critic-RM judge's samples/s on the embedded model. A trained Critic-RM cannot be made here
(the 135M model writes no critique that ends in a score line, so stage 1 keeps nothing: docs/methods/critic_rm.md),
but what a verdict costs does not depend on what a reward head learned. So both judges here are the embedded model
with an untrained head, run through posttrain's own judge classes:

- plain RM: the `reward_model` judge (`AutoModelForSequenceClassification` over the embedded checkpoint, its score
  head freshly initialised): one forward pass over (prompt, response) per verdict;
- Critic-RM: the `critic_rm` judge with a zero head: m critiques sampled per response (temperature 0.7, at most
  `--max-new-tokens` each, the judge's defaults otherwise), then the head over each critique that ends in a score
  line. This model's critiques rarely do, and the judge skips the head for those, so the head pass over every
  critique written is timed too and added: the cost of a verdict whose critiques all parse.

Responses: the embedded model's own greedy answers (128 tokens) to IFEval's first prompts, made first and untimed.
Both judges use fp32 weights and `--threads` torch threads, 8 responses per batch (the judges' default).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
IFEVAL = REPO.parent / "shared" / "data" / "ifeval" / "input_data.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=32, help="responses judged (IFEval's first prompts)")
    parser.add_argument("--critiques", type=int, default=4, help="critiques per response (the judge's default)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="tokens per critique at most")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not IFEVAL.exists():
        raise SystemExit(f"{IFEVAL} is missing: this benchmark needs ../shared beside the checkout")

    from transformers import AutoModelForSequenceClassification, logging

    from posttrain.judges import get_judge
    from posttrain.judges.critic_rm import (
        CRITIQUE_TEMPLATE,
        conversation_ids,
        critique_messages,
        head_rewards,
    )
    from posttrain.models.backend import SamplingParams
    from posttrain.models.embedded import embedded_model_dir, load_model_and_tokenizer
    from posttrain.models.hf import HFBackend

    torch.set_num_threads(args.threads)
    logging.set_verbosity_error()  # the classifier's fresh score head is the point, not a warning
    prompts = [json.loads(line)["prompt"] for line in IFEVAL.read_text(encoding="utf-8").splitlines()]
    prompts = prompts[: args.responses]
    lm, tokenizer = load_model_and_tokenizer("embedded", dtype=torch.float32)
    answers = HFBackend(model_and_tokenizer=(lm, tokenizer), batch_size=16, threads=args.threads).generate(
        prompts, 1, SamplingParams(max_new_tokens=128, temperature=0.0)
    )
    responses = [row[0].text for row in answers]

    classifier = AutoModelForSequenceClassification.from_pretrained(embedded_model_dir(), num_labels=1).eval()
    rm = get_judge("reward_model", model=(classifier, tokenizer))
    start = time.perf_counter()
    rm.judge(prompts, responses)
    rm_seconds = time.perf_counter() - start

    head = torch.nn.Linear(lm.config.hidden_size, 1, bias=False)
    torch.nn.init.zeros_(head.weight)
    settings = {"scale": 10, "template": CRITIQUE_TEMPLATE, "max_new_tokens": args.max_new_tokens}
    critic = get_judge("critic_rm", model=(lm, head, tokenizer, settings), critiques=args.critiques)
    written: list[list[str]] = []
    generate = critic.backend.generate  # type: ignore[attr-defined]

    def keeping(requests, n, params):  # the judge's own call, its critiques kept for the head pass below
        rows = generate(requests, n, params)
        written.extend([c.text for c in row] for row in rows)
        return rows

    critic.backend.generate = keeping  # type: ignore[attr-defined]
    start = time.perf_counter()
    verdicts = critic.judge(prompts, responses)
    judge_seconds = time.perf_counter() - start
    counts = dict(critic.counts)  # type: ignore[attr-defined]
    rows = [
        conversation_ids(tokenizer, critique_messages(p, r, CRITIQUE_TEMPLATE, 10), text)
        for p, r, texts in zip(prompts, responses, written, strict=True)
        for text in texts
    ]
    start = time.perf_counter()
    for first in range(0, len(rows), 8 * args.critiques):  # the judge's head batch: 8 responses' critiques
        head_rewards(lm, head, rows[first : first + 8 * args.critiques], tokenizer.pad_token_id or 0)
    head_seconds = time.perf_counter() - start
    skipped = counts.get("unparseable", 0)
    full = judge_seconds + head_seconds * skipped / max(len(rows), 1)

    n = len(responses)
    print(f"{n} responses (IFEval's first prompts, the embedded model's greedy answers), {args.threads} threads, fp32")
    print(f"  plain RM (one pass each)          : {rm_seconds:8.2f} s = {n / rm_seconds:7.2f} samples/s")
    print(f"  Critic-RM judge as run            : {judge_seconds:8.2f} s = {n / judge_seconds:7.2f} samples/s "
          f"({args.critiques} critiques of <= {args.max_new_tokens} tokens each; {skipped} of "
          f"{counts.get('critiques', 0)} without a score line, {sum(v.value == -1 for v in verdicts)} verdicts -1)")
    print(f"  {f'head over all {len(rows)} critiques':<33}: {head_seconds:8.2f} s")
    print(f"  Critic-RM, every critique parsed  : {full:8.2f} s = {n / full:7.2f} samples/s")
    print(f"  ratio Critic-RM / plain RM throughput: {rm_seconds / full:.4f}x ({full / rm_seconds:.0f}x the time)")


if __name__ == "__main__":
    main()
