"""Hindsight relabeling: when an answer misses a "say at least this much" constraint, ask for what it did say.

A rule can cut an answer down to a cap or re-lay its form, but it cannot make the answer *mention* something
naturally: repair's only way to add a missing keyword is a sentence appended at the end ("This is about whale."),
and SFT on hundreds of such endings taught the embedded model to append prompt words to its answers - including
words it was told never to use (IFEval `keywords:forbidden_words` fell 24 -> 20 of 49 after `recipes/ifeval_sft.yaml`).
Relabeling goes the other way, as hindsight instruction relabeling does (Zhang et al. 2023, "The Wisdom of
Hindsight Makes Language Models Better Instruction Followers"): the prompt is re-phrased with the same base task
and constraint types, but with the keywords, counts and thresholds the answer already meets. The pair (request,
answer) stays true, both halves stay natural, and the prompt stays one posttrain's synthesizer could have written.

Relabeled (only when the answer fails them, and only from its own text):
- `keywords:existence`: content words of the answer (not stopwords, not forbidden by the prompt);
- `keywords:frequency` "at least": a content word the answer repeats, at the count it reaches;
- `keywords:letter_frequency` "at least": the same letter, at the count the answer has;
- `length_constraints:number_words` / `number_sentences` "at least": the answer's own count (words: rounded down
  to a multiple of 5 or 10, as the synthesizer writes them).
"Less than" relations and every other type are left to repair: cutting and re-laying an answer keeps it natural.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from typing import Any

from posttrain.constraint_ids import (
    AT_LEAST,
    FORBIDDEN_WORDS,
    KEYWORD_EXISTENCE,
    KEYWORD_FREQUENCY,
    LETTER_FREQUENCY,
    NUMBER_SENTENCES,
    NUMBER_WORDS,
)
from posttrain.constraints import check_all
from posttrain.constraints import text as ctext
from posttrain.constraints.nltk_data import stopwords
from posttrain.prompts.synth import phrase
from posttrain.records import Prompt

RELABELED = (KEYWORD_EXISTENCE, KEYWORD_FREQUENCY, LETTER_FREQUENCY, NUMBER_WORDS, NUMBER_SENTENCES)
_WORD = re.compile(r"(?<![\w'-])[A-Za-z]{4,}(?![\w'-])")


def content_words(text: str, exclude: set[str]) -> Counter[str]:
    """Lower-cased alphabetic words of 4+ letters that are not stopwords or in `exclude`, with their counts."""
    stop = stopwords()
    return Counter(
        w for w in (m.group(0).lower() for m in _WORD.finditer(text)) if w not in stop and w not in exclude
    )


def _relabel_one(
    cid: str, kw: dict[str, Any], answer: str, words: Counter[str], rng: random.Random
) -> dict[str, Any] | None:
    """New kwargs for one failed constraint, or None when the answer has nothing to relabel it with."""
    if cid == KEYWORD_EXISTENCE:
        need = len(kw["keywords"])
        pool = sorted(words)
        if len(pool) < need:
            return None
        return {"keywords": rng.sample(pool, need)}
    if cid == KEYWORD_FREQUENCY and kw["relation"] == AT_LEAST:
        repeated = sorted(w for w, c in words.items() if c >= 2)
        if not repeated:
            return None
        keyword = rng.choice(repeated)
        return {"keyword": keyword, "frequency": words[keyword], "relation": AT_LEAST}
    if cid == LETTER_FREQUENCY and kw["let_relation"] == AT_LEAST:
        have = answer.lower().count(kw["letter"])
        return {**kw, "let_frequency": have} if have >= 1 else None
    if cid == NUMBER_WORDS and kw["relation"] == AT_LEAST:
        have = ctext.count_words(answer)
        step = 10 if have >= 50 else 5
        return {"num_words": have // step * step, "relation": AT_LEAST} if have >= step else None
    if cid == NUMBER_SENTENCES and kw["relation"] == AT_LEAST:
        have = ctext.count_sentences(answer)
        return {"num_sentences": have, "relation": AT_LEAST} if have >= 1 else None
    return None


def relabel(prompt: Prompt, answer: str, seed: int = 0) -> Prompt | None:
    """`prompt` re-phrased so that `answer` meets its relabelable constraints; None when there is nothing to
    relabel (every such constraint holds already, or the prompt has no base task to re-phrase) or the answer lacks
    the material. The other constraints keep their kwargs; they are re-phrased too (a new frame and wording)."""
    base = (prompt.model_extra or {}).get("base_task")
    ids, kwargs = list(prompt.instruction_id_list), [dict(k or {}) for k in prompt.kwargs]
    verdicts = check_all(answer, ids, kwargs, mode="ifeval")
    failed = [i for i, (cid, ok) in enumerate(zip(ids, verdicts, strict=True)) if cid in RELABELED and not ok]
    if not base or not failed:
        return None
    rng = random.Random(f"relabel:{seed}:{prompt.id}")
    forbidden = {
        w.lower() for i, cid in enumerate(ids) if cid == FORBIDDEN_WORDS for w in kwargs[i]["forbidden_words"]
    }
    words = content_words(answer, forbidden)
    for i in failed:
        new = _relabel_one(ids[i], kwargs[i], answer, words, rng)
        if new is None:
            return None
        kwargs[i] = new
    text, _ = phrase(rng, base, ids, kwargs)
    data = prompt.model_dump()
    data.update(prompt=text, kwargs=kwargs, relabeled_from=prompt.id)
    data.pop("id", None)
    return Prompt.model_validate(data)
