"""Constraint-repair pairs: chosen = the policy's own answer, edited by rules until every constraint holds;
rejected = the answer as the policy wrote it.

Why: rejection sampling needs the policy to satisfy a prompt's constraints by chance. A 135M model rarely does (of
352 SmolLM2-135M samples of 1-3-constraint prompts, 16 were finished and satisfied), and more than half of its
answers run into a repetition loop until the token budget cuts them off. Repair gives every prompt a pair whose two
sides differ only where the constraints are concerned, as MCTS pairs share a prefix: DPO's gradient then lands on
the tokens that matter (the lowercase letters, the missing P.S., the end of turn instead of the loop).

A repair, in order:
1. Cut the repetition: every line or sentence that repeats an earlier one (ignoring case, numbering and bullets)
   is dropped; an answer cut off by the token budget also loses its unfinished last sentence.
2. Edit the content: forbidden words and over-used keywords out, missing keywords and placeholders in, sentence and
   word caps by dropping trailing sentences, UPPERCASE words in or out.
3. Re-lay the structure: paragraphs, sections, bullets, highlights, JSON, a second response (another sample, or the
   answer's second half when there is none), the repeated request.
4. Wrap: title, P.S., end phrase, case, commas, quotation marks.
5. Verify with the checkers, strict, in both `ifeval` and `fixed` mode: a repair that does not pass everything is
   discarded. So a rule that cannot do its job (`language:response_language`; "at least" counts the text is too
   short for) costs a pair, never a wrong label.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from posttrain.constraint_ids import (
    AT_LEAST,
    CAPITAL_WORD_FREQUENCY,
    CONSTRAINED_RESPONSE,
    END_CHECKER,
    ENGLISH_CAPITAL,
    ENGLISH_LOWERCASE,
    FORBIDDEN_WORDS,
    JSON_FORMAT,
    KEYWORD_EXISTENCE,
    KEYWORD_FREQUENCY,
    LETTER_FREQUENCY,
    MULTIPLE_SECTIONS,
    NO_COMMA,
    NTH_PARAGRAPH_FIRST_WORD,
    NUMBER_BULLET_LISTS,
    NUMBER_HIGHLIGHTED_SECTIONS,
    NUMBER_PARAGRAPHS,
    NUMBER_PLACEHOLDERS,
    NUMBER_SENTENCES,
    NUMBER_WORDS,
    POSTSCRIPT,
    QUOTATION,
    REPEAT_PROMPT,
    TITLE,
    TWO_RESPONSES,
)
from posttrain.constraints import check_all, partial_credit
from posttrain.constraints import text as ctext
from posttrain.constraints.base import compare
from posttrain.records import Pair, Prompt, Sample

_LEADING_MARKS = re.compile(r"^[\s\W\d_]+")
_BULLET = re.compile(r"^\s*(?:[*\-+•]|\d+[.)])\s+")
_PLACEHOLDERS = ("name", "date", "address", "email", "phone number", "company", "city", "website", "title", "time")
_CLOSINGS = ("I hope this helps.", "Thank you for reading.", "Let me know what you think.")


def _keys(unit: str) -> list[str]:
    """What makes a line or sentence a repeat: its words, or (for a long one) its first or last six words, so
    loops that vary a few words ("I will take a bullet train, which is a high-speed train that ...") still count."""
    words = _LEADING_MARKS.sub("", unit.lower()).strip(" .!?:;*\"'").split()
    keys = [" ".join(words)] if words else []
    if len(words) >= 10:
        keys += ["^" + " ".join(words[:6]), "$" + " ".join(words[-6:])]
    return keys


def cut_repetition(response: str, truncated: bool) -> str:
    """The answer without repeated lines or sentences (and, when `truncated`, without its unfinished tail)."""
    if truncated:
        end = max(response.rfind(c) for c in ".!?\n")
        response = response[: end + 1] if end >= 0 else ""
    seen: set[str] = set()
    lines = []
    for line in response.split("\n"):
        if not line.strip():
            lines.append("")
            continue
        kept = []
        for sentence in re.split(r"(?<=[.!?])\s+", line.strip()):
            keys = _keys(sentence)
            if any(k in seen for k in keys):
                continue
            seen.update(keys)
            kept.append(sentence)
        if kept:
            lines.append((line[: len(line) - len(line.lstrip())] if _BULLET.match(line) else "") + " ".join(kept))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _sentences(response: str) -> list[str]:
    """Plain sentences of the answer: markdown bullets, headers and emphasis removed, lines joined."""
    plain = re.sub(r"[*#_`]+", "", "\n".join(_BULLET.sub("", line) for line in response.split("\n")))
    units = [s.strip() for line in plain.split("\n") if line.strip() for s in ctext.sentences(line.strip())]
    units = [s.rstrip(",;- ") for s in units]
    return [s if s[-1] in ".!?:" else s + "." for s in units if any(ch.isalpha() for ch in s)]


def _title(response: str) -> str:
    words = re.findall(r"[A-Za-z][A-Za-z'-]*", response.split("\n")[0]) or ["Answer"]
    return " ".join(words[:5]).title()


@dataclass
class _Context:
    kwargs: dict[str, dict[str, Any]]
    rng: random.Random
    others: list[str] = field(default_factory=list)  # the other answers to the prompt (for two_responses)
    add_keywords: bool = True  # False: a missing keyword is not appended ("This is about ..."), the repair fails


def _drop_words(response: str, words: Iterable[str]) -> str:
    for word in words:
        response = re.sub(rf"(?<!\w){re.escape(word)}(?!\w)\s?", "", response, flags=re.IGNORECASE)
    return response


def _edit_content(response: str, ctx: _Context) -> str:
    kw = ctx.kwargs
    if FORBIDDEN_WORDS in kw:
        response = _drop_words(response, kw[FORBIDDEN_WORDS]["forbidden_words"])
    freq = kw.get(KEYWORD_FREQUENCY)
    if freq and freq["relation"] != AT_LEAST:
        keyword, cap = freq["keyword"], int(freq["frequency"])
        while len(re.findall(rf"(?<!\w){re.escape(keyword)}(?!\w)", response, re.I)) >= cap:
            response = re.sub(rf"(?<!\w){re.escape(keyword)}(?!\w)\s?", "", response, count=1, flags=re.I)
    capital = kw.get(CAPITAL_WORD_FREQUENCY)
    if capital and capital["capital_relation"] != AT_LEAST:
        response = re.sub(r"\b[A-Z]{2,}\b", lambda m: m.group(0).capitalize(), response)

    additions = []
    for keyword in kw.get(KEYWORD_EXISTENCE, {}).get("keywords", []):
        if not re.search(re.escape(keyword), response, re.I):
            additions.append(keyword)
    if freq and freq["relation"] == AT_LEAST:
        have = len(re.findall(rf"(?<!\w){re.escape(freq['keyword'])}(?!\w)", response, re.I))
        additions += [freq["keyword"]] * max(0, int(freq["frequency"]) - have)
    if additions and ctx.add_keywords:
        response += "\n\n" + " ".join(f"This is about {word}." for word in additions)
    if NUMBER_PLACEHOLDERS in kw:
        need = int(kw[NUMBER_PLACEHOLDERS]["num_placeholders"]) - len(
            re.findall(r"\[[^\]\n]*\]", response)
        )
        if need > 0:
            slots = [_PLACEHOLDERS[i % len(_PLACEHOLDERS)] for i in range(need)]
            response += "\n\n" + " ".join(f"[{slot}]" for slot in slots)
    if capital and capital["capital_relation"] == AT_LEAST:
        need = int(capital["capital_frequency"]) - ctext.count_uppercase_words(response)
        if need > 0:
            words = list(dict.fromkeys(w for w in re.findall(r"\b[a-z]{4,}\b", response)))[: need + 2]
            for word in words:
                response = re.sub(rf"\b{word}\b", word.upper(), response, count=1)
    return response


def _counts(candidate: str, ctx: _Context) -> list[tuple[int, str, int]]:
    """(count, relation, threshold) of every length-like constraint of the prompt."""
    kw, out = ctx.kwargs, []
    if NUMBER_SENTENCES in kw:
        k = kw[NUMBER_SENTENCES]
        out.append((ctext.count_sentences(candidate), k["relation"], int(k["num_sentences"])))
    if NUMBER_WORDS in kw:
        k = kw[NUMBER_WORDS]
        out.append((ctext.count_words(candidate), k["relation"], int(k["num_words"])))
    if LETTER_FREQUENCY in kw:
        k = kw[LETTER_FREQUENCY]
        out.append((candidate.lower().count(k["letter"]), k["let_relation"], int(k["let_frequency"])))
    return out


def _fit_length(response: str, ctx: _Context) -> str:
    """Meet sentence, word and letter counts: drop trailing sentences for a cap ("less than"); for a floor ("at
    least"), append sentences of the other answers to the same prompt that this one lacks."""
    counts = _counts(response, ctx)
    if all(compare(c, rel, t) for c, rel, t in counts):
        return response
    units = _sentences(response)
    if any(rel == AT_LEAST and c < t for c, rel, t in counts):
        have = {u.lower() for u in units}
        for other in ctx.others:
            for unit in _sentences(other):
                if unit.lower() not in have:
                    units.append(unit)
                    have.add(unit.lower())
    for end in range(len(units), 0, -1):
        candidate = " ".join(units[:end])
        if all(compare(c, rel, t) for c, rel, t in _counts(candidate, ctx)):
            return candidate
    return response


def _groups(units: list[str], n: int) -> list[list[str]] | None:
    if len(units) < n:
        return None
    size, extra = divmod(len(units), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (i < extra)
        out.append(units[start:end])
        start = end
    return out


def _layout(response: str, ctx: _Context) -> str | None:
    kw = ctx.kwargs
    if CONSTRAINED_RESPONSE in kw:
        return f"{response}\n\n{ctx.rng.choice(('My answer is yes.', 'My answer is no.', 'My answer is maybe.'))}"
    if TWO_RESPONSES in kw:
        second = next((o for o in ctx.others if o.strip() and o.strip() != response.strip()), None)
        if second is None:
            # One sample only (greedy): its first half and its second half are the two answers, each in the
            # model's own words; an answer of one sentence cannot be split.
            halves = _groups(_sentences(response), 2)
            if halves is None:
                return None
            response, second = (" ".join(half) for half in halves)
        response = f"{response}\n******\n{second}"
    if any(cid in kw for cid in (NUMBER_PARAGRAPHS, NTH_PARAGRAPH_FIRST_WORD, MULTIPLE_SECTIONS, NUMBER_BULLET_LISTS)):
        units = _sentences(response)
        if NUMBER_PARAGRAPHS in kw:
            groups = _groups(units, int(kw[NUMBER_PARAGRAPHS]["num_paragraphs"]))
            if groups is None:
                return None
            response = "\n***\n".join(" ".join(g) for g in groups)
        elif NTH_PARAGRAPH_FIRST_WORD in kw:
            nth = kw[NTH_PARAGRAPH_FIRST_WORD]
            groups = _groups(units, int(nth["num_paragraphs"]))
            if groups is None:
                return None
            k = int(nth["nth_paragraph"]) - 1
            if 0 <= k < len(groups):
                first = groups[k][0]
                groups[k][0] = f"{nth['first_word'].capitalize()} {first[0].lower()}{first[1:]}"
            response = "\n\n".join(" ".join(g) for g in groups)
        elif MULTIPLE_SECTIONS in kw:
            section = kw[MULTIPLE_SECTIONS]
            groups = _groups(units, int(section["num_sections"]))
            if groups is None:
                return None
            response = "\n\n".join(f"{section['section_spliter']} {i}\n{' '.join(g)}" for i, g in enumerate(groups, 1))
        if NUMBER_BULLET_LISTS in kw:
            n = int(kw[NUMBER_BULLET_LISTS]["num_bullets"])
            units = _sentences(response) if NUMBER_PARAGRAPHS not in kw else units
            if len(units) < n:
                return None
            intro, items = units[: len(units) - n], units[len(units) - n :]
            response = (" ".join(intro) + "\n\n" if intro else "") + "\n".join(f"* {item}" for item in items)
    if NUMBER_HIGHLIGHTED_SECTIONS in kw:
        need = int(kw[NUMBER_HIGHLIGHTED_SECTIONS]["num_highlights"]) - len(
            re.findall(r"\*[^\n\*]+\*", response)
        )
        lines = response.split("\n")
        for i, line in enumerate(lines):
            if need <= 0:
                break
            if "*" in line or not line.strip():
                continue
            parts = re.split(r"(?<=[.!?])\s+", line)
            for j, part in enumerate(parts):
                core = part.rstrip(".!?:")
                if need > 0 and any(ch.isalpha() for ch in core):
                    parts[j] = f"*{core}*{part[len(core):]}"
                    need -= 1
            lines[i] = " ".join(parts)
        response = "\n".join(lines)
    if REPEAT_PROMPT in kw:
        response = f"{kw[REPEAT_PROMPT]['prompt_to_repeat']}\n{response}"
    if JSON_FORMAT in kw:
        response = json.dumps({"answer": response}, indent=2)
    return response


def _wrap(response: str, ctx: _Context) -> str:
    kw = ctx.kwargs
    if TITLE in kw and not re.search(r"<<[^\n]+>>", response):
        response = f"<<{_title(response)}>>\n\n{response}"
    if POSTSCRIPT in kw:
        marker = kw[POSTSCRIPT]["postscript_marker"]
        response = f"{response}\n\n{marker} {ctx.rng.choice(_CLOSINGS)}"
    if ENGLISH_LOWERCASE in kw:
        response = response.lower()
    if ENGLISH_CAPITAL in kw:
        response = response.upper()
    if END_CHECKER in kw:
        response = f"{response.rstrip()} {kw[END_CHECKER]['end_phrase']}"
    if NO_COMMA in kw:
        response = re.sub(r"\s*,\s*", " ", response)
    if QUOTATION in kw:
        response = f'"{response.strip(chr(34))}"'
    return response


def repair(
    response: str,
    ids: list[str],
    kwargs: list[dict[str, Any]],
    truncated: bool = False,
    others: Iterable[str] = (),
    seed: int = 0,
    add_keywords: bool = True,
) -> str | None:
    """The answer edited to satisfy every constraint (strict, `ifeval` and `fixed` mode), or None if it cannot be.
    `add_keywords=False`: missing keywords are not appended as template sentences (see `pairs.relabel`)."""
    ctx = _Context({cid: dict(k or {}) for cid, k in zip(ids, kwargs, strict=True)}, random.Random(seed),
                   [cut_repetition(o, True) for o in others], add_keywords)  # fmt: skip
    fixed = cut_repetition(response, truncated)
    if not fixed:
        return None
    fixed = _fit_length(_edit_content(fixed, ctx), ctx)
    laid_out = _layout(fixed, ctx)
    if laid_out is None:
        return None
    fixed = _wrap(laid_out, ctx).strip()
    if not fixed or fixed == response.strip():
        return None
    for mode in ("ifeval", "fixed"):
        if not all(check_all(fixed, ids, kwargs, mode=mode)):
            return None
    return fixed


@dataclass
class RepairStats:
    samples: int = 0
    pairs: int = 0
    already_satisfied: int = 0
    truncated: int = 0
    unrepairable: dict[str, int] = field(default_factory=dict)  # constraint id -> samples it blocked

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "unrepairable": dict(sorted(self.unrepairable.items()))}


def repair_pairs(
    samples: Iterable[Sample],
    prompts: dict[str, Prompt],
    max_per_prompt: int = 2,
    mode: str = "fixed",
    seed: int = 0,
) -> tuple[list[Pair], RepairStats]:
    """One pair per sample that misses a constraint or was cut off, up to `max_per_prompt` per prompt."""
    by_prompt: dict[str, list[Sample]] = {}
    for sample in samples:
        by_prompt.setdefault(sample.prompt_id, []).append(sample)
    stats, pairs = RepairStats(), []
    for prompt_id, group in by_prompt.items():
        prompt = prompts[prompt_id]
        made = 0
        for sample in sorted(group, key=lambda s: s.index):
            stats.samples += 1
            truncated = sample.finish_reason == "length"
            stats.truncated += truncated
            verdicts = check_all(sample.completion, prompt.instruction_id_list, prompt.kwargs, mode=mode)
            if not truncated and all(verdicts):
                stats.already_satisfied += 1
                continue
            if made >= max_per_prompt:
                continue
            others = [s.completion for s in group if s.id != sample.id]
            chosen = repair(sample.completion, prompt.instruction_id_list, prompt.kwargs, truncated, others,
                            seed=seed + sample.index)  # fmt: skip
            if chosen is None:
                for cid in _blocking(sample, prompt, truncated, others, seed):
                    stats.unrepairable[cid] = stats.unrepairable.get(cid, 0) + 1
                continue
            pairs.append(Pair(
                prompt=prompt.prompt, chosen=chosen, rejected=sample.completion, prompt_id=prompt_id, method="repair",
                chosen_score=1.0, rejected_score=partial_credit(verdicts), chosen_satisfied=True, rejected_satisfied=False,
                rejected_sample_id=sample.id, rejected_truncated=truncated,
            ))  # fmt: skip
            made += 1
    stats.pairs = len(pairs)
    return pairs, stats


def _blocking(sample: Sample, prompt: Prompt, truncated: bool, others: list[str], seed: int) -> list[str]:
    """The constraints that a repair of this sample fails on its own (for the stats)."""
    blocked = []
    for cid, kw in zip(prompt.instruction_id_list, prompt.kwargs, strict=True):
        if repair(sample.completion, [cid], [kw], truncated, others, seed) is None:
            blocked.append(cid)
    return blocked or ["combination"]

