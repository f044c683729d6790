"""HALT's finetuning target: the model's own answer, cut down to what it got right (Franzmeyer et al. 2025).

Given an answer, its fragments and one verdict per fragment (1 correct, 0 wrong, -1 could not be verified):

1. correct fraction = fragments verified correct / fragments. Below `threshold` (or no fragment at all),
   the target abstains entirely: it is the marker alone.
2. ordered fragments (math steps, code functions), where everything after a mistake builds on it: the
   target is the answer up to the first fragment not verified correct, then the marker. An answer right
   throughout is kept whole. An answer the token budget cut off (`truncated`) never reached its end, so its
   last fragment counts as not verified.
3. unordered fragments (facts of a biography): the wrong ones are dropped, the correct ones kept in order.

A -1 counts as not correct: HALT keeps only what is known to be right. Steps 1 and 3 and the threshold's
direction are reconstructions (docs/methods/halt.md lists what the paper confirms).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from posttrain.halt.fragments import Fragment


@dataclass(frozen=True)
class HaltTarget:
    text: str
    kept: int  # fragments of the answer the target keeps
    cut_at: int | None  # ordered: index of the first fragment not kept (None: kept whole, or unordered)
    abstained: bool  # the target is the marker alone
    correct_fraction: float | None  # None when the answer has no fragment


def build_target(
    answer: str,
    fragments: Sequence[Fragment],
    verdicts: Sequence[int],
    *,
    threshold: float,
    ordered: bool,
    marker: str,
    truncated: bool = False,
) -> HaltTarget:
    if len(fragments) != len(verdicts):
        raise ValueError(f"{len(fragments)} fragments but {len(verdicts)} verdicts")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    fraction = sum(v == 1 for v in verdicts) / len(fragments) if fragments else None
    if fraction is None or fraction < threshold:
        return HaltTarget(marker, 0, 0 if ordered else None, True, fraction)

    if not ordered:
        last = len(fragments) - 1 if truncated else len(fragments)
        kept = [
            f.text.strip()
            for i, (f, v) in enumerate(zip(fragments, verdicts, strict=True))
            if v == 1 and i < last
        ]
        if not kept:
            return HaltTarget(marker, 0, None, True, fraction)
        return HaltTarget(" ".join(kept), len(kept), None, False, fraction)

    cut = next((i for i, v in enumerate(verdicts) if v != 1), None)
    if cut is None and truncated:
        cut = len(fragments) - 1
    if cut is None:
        return HaltTarget(answer, len(fragments), None, False, fraction)
    if cut == 0:
        return HaltTarget(marker, 0, 0, True, fraction)
    prefix = close_code_fence(answer[: fragments[cut].start].rstrip())
    return HaltTarget(f"{prefix}\n{marker}", cut, cut, False, fraction)


def close_code_fence(text: str) -> str:
    """A prefix cut inside a ``` block gets its closing fence, so the kept code stays a well-formed block."""
    return f"{text}\n```" if text.count("```") % 2 else text
