"""Checking a response against a list of constraints: strict or loose (IFEval's 8 variants), partial credit, and
removal of reasoning text before checking."""

from __future__ import annotations

from typing import Any

from posttrain.constraints.base import MODES, get_constraint
from posttrain.constraints.text import loose_variants
from posttrain.errors import InputError

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def strip_thinking(text: str) -> str:
    """Remove `<think>...</think>` blocks; an unclosed leading `<think>` swallows the rest (the model never answered);
    a stray `</think>` (the chat template opened the block in the prompt) drops everything before it. Text without
    either tag is returned unchanged, so stripping never alters a verdict on a response that has no reasoning."""
    if THINK_OPEN not in text and THINK_CLOSE not in text:
        return text
    out, position = [], 0
    while True:
        start = text.find(THINK_OPEN, position)
        if start < 0:
            out.append(text[position:])
            break
        end = text.find(THINK_CLOSE, start + len(THINK_OPEN))
        if end < 0:  # unclosed: the rest is unfinished reasoning
            out.append(text[position:start])
            break
        out.append(text[position:start])
        position = end + len(THINK_CLOSE)
    result = "".join(out)
    stray = result.rfind(THINK_CLOSE)
    if stray >= 0:
        result = result[stray + len(THINK_CLOSE) :]
    return result.strip()


def check_all(
    response: str,
    ids: list[str],
    kwargs: list[dict[str, Any]],
    *,
    loose: bool = False,
    mode: str = "ifeval",
    strip_thinking: bool = False,
) -> list[bool]:
    """One verdict per constraint id. Strict as the reference: an all-whitespace response fails everything; loose:
    a constraint passes if any of the 8 loose variants passes it. All kwargs are validated before any check runs."""
    checks = _validated(ids, kwargs, mode)
    if strip_thinking:
        response = _strip(response)
    candidates = (
        [v for v in loose_variants(response) if v.strip()] if loose else [response] * bool(response.strip())
    )
    return [any(c._check(v, kw, mode) for v in candidates) for c, kw in checks]


def check_strict_and_loose(
    response: str,
    ids: list[str],
    kwargs: list[dict[str, Any]],
    *,
    mode: str = "ifeval",
    strip_thinking: bool = False,
) -> tuple[list[bool], list[bool]]:
    """`check_all` strict and loose at once. The first loose variant is the response itself, so a constraint met
    strictly is met loosely, and one that failed is re-checked only on the other variants."""
    checks = _validated(ids, kwargs, mode)
    if strip_thinking:
        response = _strip(response)
    if not response.strip():
        return [False] * len(checks), [False] * len(checks)
    others = [v for v in loose_variants(response)[1:] if v.strip()]
    strict = [c._check(response, kw, mode) for c, kw in checks]
    loose = [ok or any(c._check(v, kw, mode) for v in others) for ok, (c, kw) in zip(strict, checks, strict=True)]
    return strict, loose


def _validated(ids: list[str], kwargs: list[dict[str, Any]], mode: str) -> list[tuple[Any, dict[str, Any]]]:
    if mode not in MODES:
        raise InputError(f"unknown check mode {mode!r}; valid modes: {', '.join(MODES)}")
    if len(ids) != len(kwargs):
        raise InputError(
            f"{len(ids)} constraint ids but {len(kwargs)} kwargs dicts; they must pair up one to one"
        )
    checks = []
    for cid, raw in zip(ids, kwargs, strict=True):
        constraint = get_constraint(cid)
        checks.append((constraint, constraint.validate(raw, mode)))
    return checks


_strip = strip_thinking  # the keyword argument of check_all shadows the function's name


def partial_credit(verdicts: list[bool]) -> float:
    """Fraction of constraints met (open-instruct's IFEval reward); 1.0 for an empty list (nothing was asked)."""
    return sum(verdicts) / len(verdicts) if verdicts else 1.0
