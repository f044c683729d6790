"""IFEval checking speed: google-research's reference checkers (vendored in lm-eval) vs posttrain, same responses.

    python bench/ifeval_speed.py                 # 540 IFEval prompts x 4 responses each
    python bench/ifeval_speed.py --per-prompt 1

Job: every IFEval row (../shared/data/ifeval/input_data.jsonl, 540 prompts, 834 instructions) with `--per-prompt`
synthetic responses each, built from varied fragments (bullets, sections, titles, JSON, other languages, all caps,
P.S., repeated prompts...) and made unique per row. posttrain's per-text and per-sentence caches are cleared
before each row (the templated bodies share sentences, real responses rarely do); only its per-word langdetect
n-gram table carries over, as it would across any English responses. Both sides compute the
strict and the loose verdicts of every row in one process (the reference's `test_instruction_following_strict` and
`_loose`; posttrain's `check_strict_and_loose`, what `posttrain eval ifeval` runs, in ifeval mode with thinking
left in, as the reference does). The verdicts are
asserted identical, then both times and the ratio are printed. Rows 1122 and 1129 are left out: their letter kwarg
("#", "!") makes the reference count a random letter. Needs: pip install --no-deps lm-eval immutabledict
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "constraints"))

import ifeval_reference  # noqa: E402
from corpus import templated  # noqa: E402

from posttrain.constraints import check_all, check_strict_and_loose  # noqa: E402
from posttrain.constraints import text as measures  # noqa: E402

LANGDETECT = {"language:response_language", "change_case:english_capital", "change_case:english_lowercase"}
INPUT = REPO.parent / "shared" / "data" / "ifeval" / "input_data.jsonl"


def build_jobs(per_prompt: int, seed: int) -> list[tuple[dict, str]]:
    rows = [json.loads(line) for line in INPUT.read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if r["key"] not in (1122, 1129)]
    rng = random.Random(seed)
    jobs = []
    for row in rows:
        for index, body in enumerate(templated(per_prompt, seed=row["key"] * 31 + seed)):
            unique = f"Answer {index} to request {row['key']}. "
            text = row["prompt"] + "\n" + body if rng.random() < 0.2 else unique + body
            jobs.append((row, text))
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-prompt", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    reference = ifeval_reference.load()
    logging.disable(logging.ERROR)  # the reference logs every failed language detection
    jobs = build_jobs(args.per_prompt, args.seed)
    warm_row, warm_text = jobs[0]
    reference.strict(warm_row, warm_text)  # load punkt and langdetect profiles outside the timed part
    check_all(warm_text, warm_row["instruction_id_list"], warm_row["kwargs"])
    reference.util.count_sentences("Warm up. Both sides.")
    __import__("langdetect").detect("warm up langdetect profiles")
    measures.detect_language("warm up langdetect profiles")

    print(f"{'rows':<34}{'responses':>10}{'checks':>8}{'reference s':>13}{'posttrain s':>13}{'speed-up':>10}")
    for label, subset in (
        ("all IFEval rows", jobs),
        (
            "rows without langdetect checks",
            [(r, t) for r, t in jobs if not LANGDETECT & set(r["instruction_id_list"])],
        ),
        (
            "rows with langdetect checks",
            [(r, t) for r, t in jobs if LANGDETECT & set(r["instruction_id_list"])],
        ),
    ):
        ref_seconds, our_seconds = compare(reference, subset)
        checks = sum(len(row["instruction_id_list"]) for row, _ in subset)
        print(
            f"{label:<34}{len(subset):>10}{checks:>8}{ref_seconds:>13.3f}{our_seconds:>13.3f}"
            f"{ref_seconds / our_seconds:>9.1f}x"
        )
    print("verdicts identical (strict and loose) on every response")


def compare(reference: Any, jobs: list[tuple[dict, str]]) -> tuple[float, float]:
    """Time the reference and posttrain on the same jobs; assert identical verdicts. posttrain's per-text caches
    are cleared before every row: only its word-level tables (langdetect n-grams per word) carry over."""
    start = time.perf_counter()
    ref = [(reference.strict(row, text), reference.loose(row, text)) for row, text in jobs]
    ref_seconds = time.perf_counter() - start
    start = time.perf_counter()
    ours = []
    for row, text in jobs:
        measures.clear_caches()  # nothing learnt from earlier rows (templated bodies share sentences) but words
        ours.append(check_strict_and_loose(text, row["instruction_id_list"], row["kwargs"]))
    our_seconds = time.perf_counter() - start
    mismatches = [(row["key"], text) for (row, text), a, b in zip(jobs, ref, ours, strict=True) if a != b]
    assert not mismatches, f"{len(mismatches)} rows differ, first: {mismatches[0]}"
    return ref_seconds, our_seconds


if __name__ == "__main__":
    main()
