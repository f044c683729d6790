"""Which constraints may share a prompt: the conflict table and combination sampling (the CGPO default set of ids
is `constraint_ids.CGPO_23`).

The conflict table is IFEval's `INSTRUCTION_CONFLICTS` (carried by each constraint class as `conflicts`) plus the
pairs below, which IFEval allows but which a response cannot satisfy together, or only by an accident of how the
checker parses text:

- change_case:english_lowercase + detectable_format:multiple_sections: the section splitter ("Section 1" /
  "SECTION 1") is matched case-sensitively, so an all-lowercase answer cannot contain it.
- startend:quotation + startend:end_checker: the answer must end with `"` and with the end phrase.
- startend:end_checker + detectable_content:postscript: both claim the very end of the answer; only a P.S. line
  that itself ends in the phrase satisfies both, which is a checker accident rather than an instruction.
- startend:quotation + combination:repeat_prompt: the repeated request must come first, before any quote.
- combination:repeat_prompt + punctuation:no_comma: the request to repeat word for word nearly always has a
  comma of its own (IFEval allows the pair).
- detectable_format:constrained_response + everything (as IFEval): the answer is one fixed sentence.

Length constraints that are compatible by id (words vs sentences vs bullets vs sections) are made compatible by
value in `fit.py`, which derives all their kwargs from one target length per prompt.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

from posttrain.constraint_ids import (
    CONSTRAINED_RESPONSE,
    END_CHECKER,
    ENGLISH_LOWERCASE,
    MULTIPLE_SECTIONS,
    NO_COMMA,
    POSTSCRIPT,
    QUOTATION,
    REPEAT_PROMPT,
)
from posttrain.errors import InputError

EXTRA_CONFLICTS: tuple[tuple[str, str], ...] = (
    (ENGLISH_LOWERCASE, MULTIPLE_SECTIONS),
    (QUOTATION, END_CHECKER),
    (END_CHECKER, POSTSCRIPT),
    (QUOTATION, REPEAT_PROMPT),
    (REPEAT_PROMPT, NO_COMMA),
)

# Constraints that only make sense for some task types (a fixed yes/no/maybe answer needs a question).
ONLY_FOR: dict[str, frozenset[str]] = {
    CONSTRAINED_RESPONSE: frozenset({"question"}),
}


def conflict_table(own: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    """Symmetric conflicts over the ids in `own` (each id's declared conflicts), plus EXTRA_CONFLICTS."""
    table: dict[str, set[str]] = {cid: set() for cid in own}
    for cid, others in own.items():
        for other in others:
            if other in table and other != cid:
                table[cid].add(other)
                table[other].add(cid)
    for a, b in EXTRA_CONFLICTS:
        if a in table and b in table:
            table[a].add(b)
            table[b].add(a)
    return {cid: frozenset(others) for cid, others in table.items()}


def compatible(ids: Iterable[str], table: Mapping[str, frozenset[str]]) -> bool:
    chosen = list(ids)
    return len(set(chosen)) == len(chosen) and all(
        b not in table[a] for i, a in enumerate(chosen) for b in chosen[i + 1 :]
    )


def largest_compatible_set(ids: Iterable[str], table: Mapping[str, frozenset[str]]) -> int:
    """Size of the largest conflict-free subset (exact branch and bound; at most a few dozen ids)."""
    nodes = sorted(set(ids), key=lambda c: len(table[c] & set(ids)))
    best = 0

    def grow(size: int, candidates: list[str]) -> None:
        nonlocal best
        best = max(best, size)
        for i, cid in enumerate(candidates):
            if size + len(candidates) - i <= best:
                return
            grow(size + 1, [c for c in candidates[i + 1 :] if c not in table[cid]])

    grow(0, nodes)
    return best


def parse_range(text: str) -> tuple[int, int]:
    """`"3"` -> (3, 3), `"1-5"` -> (1, 5); InputError for anything else or an empty range."""
    parts = text.strip().split("-")
    try:
        lo, hi = (int(parts[0]), int(parts[-1])) if len(parts) in (1, 2) else (None, None)
    except ValueError:
        lo = hi = None
    if lo is None or hi is None:
        raise InputError(f"constraint count '{text}' is not a number or a range like 1-5")
    if lo < 1 or hi < lo:
        raise InputError(f"constraint count range '{text}' is empty or below 1; use e.g. 1-5")
    return lo, hi


def check_feasible(ids: Iterable[str], table: Mapping[str, frozenset[str]], most: int) -> None:
    """InputError unless `most` constraints from `ids` can share one prompt."""
    pool = sorted(set(ids))
    if not pool:
        raise InputError("no constraint ids left to sample from (check --ids / --exclude)")
    size = largest_compatible_set(pool, table)
    if size < most:
        raise InputError(
            f"at most {size} of the chosen constraint ids can be combined without conflicts, "
            f"but up to {most} per prompt were asked for; lower --constraints or allow more ids"
        )


def sample_combination(
    rng: random.Random,
    pool: list[str],
    k: int,
    table: Mapping[str, frozenset[str]],
    tries: int = 20,
    weights: Mapping[str, float] | None = None,
) -> list[str] | None:
    """k mutually compatible ids, drawn in random order (None if `tries` greedy passes all fall short).

    `weights` (id -> relative weight, 1 for ids not named) makes the order a weighted draw without replacement
    (Efraimidis & Spirakis: sort by u ** (1 / w)), so an id of weight 2 comes early about twice as often."""
    for _ in range(tries):
        if weights:
            keys = {cid: rng.random() ** (1.0 / weights.get(cid, 1.0)) for cid in pool}
            order = sorted(pool, key=keys.__getitem__, reverse=True)
        else:
            order = rng.sample(pool, len(pool))
        chosen: list[str] = []
        for cid in order:
            if all(cid not in table[c] for c in chosen):
                chosen.append(cid)
                if len(chosen) == k:
                    return chosen
    return None
