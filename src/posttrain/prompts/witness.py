"""Witness responses: a text built to satisfy every constraint of a prompt at once, and one built to break one.

They prove the prompts are verifiable: if `satisfying_response(ids, kwargs)` passes every checker, the combination
and its kwargs can be met together (the conflict table and `fit.py` did their job); if `violating_response` fails
the checker it targets, the checker really tests something. Tests run both over many seeds; `posttrain prompts
synth --verify` runs the first on every generated prompt.

The text is plain English made of short, templated sentences (so language detection still says "en" after
upper- or lower-casing), with every structural element the constraints ask for: a title line, `***` or blank-line
paragraphs, "Section N" headers, `* ` bullets, inline *highlights* and [placeholders], keyword sentences, UPPERCASE
words, a P.S. line, the end phrase, wrapping quotes, two responses split by `******`, or the repeated request.
Extra elements are never the first line of a paragraph, so paragraph first words stay under control. Covers the
25 IFEval ids except `language:response_language` (it only writes English).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
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
    LESS_THAN,
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

_NOUNS = ("river garden window table letter market bridge mountain valley forest morning evening street "
          "teacher student neighbor kitchen library village harbor station candle blanket lantern meadow "
          "orchard pebble ribbon saddle timber velvet wagon zipper quilt jacket kettle oxygen puzzle").split()
_ADJECTIVES = ("quiet bright gentle simple honest narrow steady golden silver modest patient useful careful "
               "little rapid sudden tidy vivid lazy frozen jolly").split()  # fmt: skip
_LEADS = ("The {n} is {a}", "Our {n} is {a}", "This {n} is {a}", "That {n} is {a}")
_CLAUSE = "and the {n} is {a}"
# Function-word-rich sentences: langdetect needs them to call a short UPPERCASE or lowercase text English.
_ENGLISH = ("it is what it is and that is all there is to it", "we did all of this for the people who were there",
            "there is so much more to it than what we see", "this is one of the best things that we did")  # fmt: skip


class _Vocabulary:
    """Words that avoid every banned letter, word and substring; sentences of 4 + 5 * (clauses - 1) words."""

    def __init__(self, rng: random.Random, letters: str = "", words: Sequence[str] = (), substrings: Sequence[str] = ()):
        self.rng = rng

        def ok(text: str) -> bool:
            lowered = text.lower()
            return (
                not any(letter in lowered for letter in letters)
                and not any(re.search(rf"\b{re.escape(w.lower())}\b", lowered) for w in words)
                and not any(s.lower() in lowered for s in substrings)
            )

        self.nouns = [w for w in _NOUNS if ok(w)] or ["item"]
        self.adjectives = [w for w in _ADJECTIVES if ok(w)] or ["good"]
        self.leads = [t for t in _LEADS if ok(t.format(n="", a=""))] or ["{n} {a}"]
        self.clause = _CLAUSE if ok(_CLAUSE.format(n="", a="")) else "{n} {a}"
        self.clauses = 1
        self.english = [e for e in _ENGLISH if ok(e)]

    def noun(self) -> str:
        return self.rng.choice(self.nouns)

    def adjective(self) -> str:
        return self.rng.choice(self.adjectives)

    def sentence(self, lead: str | None = None) -> str:
        parts = [self.rng.choice(self.leads).format(n=self.noun(), a=self.adjective())]
        parts += [self.clause.format(n=self.noun(), a=self.adjective()) for _ in range(self.clauses - 1)]
        text = " ".join(parts) + "."
        if lead:  # the paragraph must start with this word
            text = f"{lead.capitalize()} {text[0].lower()}{text[1:]}"
        return text[0].upper() + text[1:]

    def without(self, letter: str, count: int = 3) -> str:
        words = [w for w in _NOUNS + _ADJECTIVES if letter not in w]
        return " ".join(self.rng.choice(words) for _ in range(count)).capitalize() + "."

    def rich_in(self, letter: str, salt: int) -> str:
        """An English sentence of words containing `letter` (for 'at least n of letter x')."""
        words = [w for w in _NOUNS + _ADJECTIVES if letter in w and w in self.nouns + self.adjectives] or [letter * 3]
        pick = random.Random(salt).choice
        return f"The {pick(words)} and the {pick(words)} are by the {pick(words)}."


def _words(text: str) -> int:
    return len(re.findall(r"\w+", text))


def satisfying_response(
    ids: Sequence[str], kwargs: Sequence[dict[str, Any]], rng: random.Random, ban: Sequence[str] = ()
) -> str:
    """A response meeting every (id, kwargs) at once; `ban` lists extra words the text must not contain."""
    kw = {cid: dict(k or {}) for cid, k in zip(ids, kwargs, strict=True)}
    if CONSTRAINED_RESPONSE in kw:
        return "My answer is yes."
    if REPEAT_PROMPT in kw:
        rest = [(c, k) for c, k in kw.items() if c != REPEAT_PROMPT]
        body = satisfying_response([c for c, _ in rest], [k for _, k in rest], rng, ban)
        return f"{kw[REPEAT_PROMPT]['prompt_to_repeat']}\n{body}"
    if TWO_RESPONSES in kw:
        rest = [(c, k) for c, k in kw.items() if c != TWO_RESPONSES]
        first = satisfying_response([c for c, _ in rest], [k for _, k in rest], random.Random(rng.random()), ban)
        second = first
        while second == first:
            second = satisfying_response([c for c, _ in rest], [k for _, k in rest], random.Random(rng.random()), ban)
        return f"{first}\n******\n{second}"

    letter_kw = kw.get(LETTER_FREQUENCY, {})
    freq_kw = kw.get(KEYWORD_FREQUENCY, {})
    vocab = _Vocabulary(
        rng,
        letters=letter_kw.get("letter", "") if letter_kw.get("let_relation") == LESS_THAN else "",
        words=list(kw.get(FORBIDDEN_WORDS, {}).get("forbidden_words", [])) + list(ban),
        substrings=[freq_kw["keyword"]] if freq_kw.get("relation") == LESS_THAN else [],
    )

    if JSON_FORMAT in kw:
        keywords = kw.get(KEYWORD_EXISTENCE, {}).get("keywords", [])
        return json.dumps({"answer": vocab.sentence(), "keywords": list(keywords)})

    # Inline content (keywords, highlights, placeholders, UPPERCASE words): phrases merged into one sentence
    # when the sentence count is capped, one sentence each otherwise.
    phrases: list[str] = []
    for keyword in kw.get(KEYWORD_EXISTENCE, {}).get("keywords", []):
        phrases.append(f"the word {keyword} is here")
    if freq_kw.get("relation") == AT_LEAST:
        phrases += [f"we say {freq_kw['keyword']} again"] * int(freq_kw["frequency"])
    if NUMBER_HIGHLIGHTED_SECTIONS in kw:
        n = int(kw[NUMBER_HIGHLIGHTED_SECTIONS]["num_highlights"])
        phrases += [f"this is *{vocab.noun()}*" for _ in range(n)]
    if NUMBER_PLACEHOLDERS in kw:
        n = int(kw[NUMBER_PLACEHOLDERS]["num_placeholders"])
        phrases += [f"send it to [{vocab.noun()}]" for _ in range(n)]
    if ENGLISH_CAPITAL in kw or ENGLISH_LOWERCASE in kw:
        phrases += vocab.english[:2]
    capital = kw.get(CAPITAL_WORD_FREQUENCY, {})
    if capital.get("capital_relation") == AT_LEAST:
        phrases.append("note " + " ".join(vocab.noun().upper() for _ in range(int(capital["capital_frequency"]))))
    sentences_kw = kw.get(NUMBER_SENTENCES, {})
    if sentences_kw.get("relation") == LESS_THAN and phrases:
        phrases = [" and ".join(phrases)]
    extra = [p[0].upper() + p[1:] + "." for p in phrases]
    if NUMBER_BULLET_LISTS in kw:
        n = int(kw[NUMBER_BULLET_LISTS]["num_bullets"])
        extra += [f"* {vocab.adjective().capitalize()} {vocab.noun()}." for _ in range(n)]
    if MULTIPLE_SECTIONS in kw:
        section = kw[MULTIPLE_SECTIONS]
        extra += [f"{section['section_spliter']} {i}" for i in range(1, int(section["num_sections"]) + 1)]

    # Paragraph layout: `***` separators for number_paragraphs, blank lines otherwise.
    nth = kw.get(NTH_PARAGRAPH_FIRST_WORD)
    if NUMBER_PARAGRAPHS in kw:
        paragraphs, separator = int(kw[NUMBER_PARAGRAPHS]["num_paragraphs"]), "\n***\n"
    elif nth:
        paragraphs, separator = int(nth["num_paragraphs"]), "\n\n"
    else:  # free layout: one paragraph when sentences are capped, else 1-3
        paragraphs = 1 if sentences_kw.get("relation") == LESS_THAN else rng.randint(1, 3)
        separator = "\n\n"

    words_kw = kw.get(NUMBER_WORDS, {})
    filler = paragraphs
    if sentences_kw.get("relation") == AT_LEAST:
        filler = max(filler, int(sentences_kw["num_sentences"]) + 1)
    if sentences_kw.get("relation") == LESS_THAN and words_kw.get("relation") == AT_LEAST:
        # Few sentences, many words: make each sentence long enough.
        room = max(1, int(sentences_kw["num_sentences"]) - 2 - len(extra) - 1)
        vocab.clauses = max(1, -(-(int(words_kw["num_words"]) + 5) // room) // 5 + 1)
        filler = max(filler, min(room, paragraphs + room // 2))

    def render(filler: int, top_up: list[str]) -> str:
        blocks: list[list[str]] = [[] for _ in range(paragraphs)]
        for p in range(paragraphs):
            lead = nth["first_word"] if nth and p + 1 == int(nth["nth_paragraph"]) else None
            blocks[p].append(vocab.sentence(lead))
        for i in range(filler - paragraphs):
            blocks[i % paragraphs].append(vocab.sentence())
        for i, line in enumerate(extra + top_up):
            blocks[i % paragraphs].append(line)
        if TITLE in kw:
            blocks[0].insert(1 if nth and int(nth["nth_paragraph"]) == 1 else 0, "<<a short title>>")
        if POSTSCRIPT in kw:
            blocks[-1].append(f"{kw[POSTSCRIPT]['postscript_marker']} {vocab.noun()}.")
        text = separator.join("\n".join(block) for block in blocks)
        if END_CHECKER in kw:
            text = f"{text} {kw[END_CHECKER]['end_phrase']}"
        return text

    state = rng.getstate()
    top_up: list[str] = []
    for _ in range(1000):  # grow until every "at least" count is met
        rng.setstate(state)
        text = render(filler, top_up)
        if words_kw.get("relation") == AT_LEAST and _words(text) < int(words_kw["num_words"]) + 5:
            filler += max(1, (int(words_kw["num_words"]) + 5 - _words(text)) // (5 * vocab.clauses + 4))
            continue
        letter = letter_kw.get("letter", "")
        if letter_kw.get("let_relation") == AT_LEAST and text.lower().count(letter) < int(letter_kw["let_frequency"]):
            top_up.append(vocab.rich_in(letter, len(top_up)))
            continue
        break

    if ENGLISH_CAPITAL in kw:
        text = text.upper()
    if ENGLISH_LOWERCASE in kw:
        text = text.lower()
    if QUOTATION in kw:
        text = f'"{text}"'
    return text


def violating_response(cid: str, kwargs: dict[str, Any], rng: random.Random) -> str:
    """A response that breaks constraint `cid` with these kwargs (and is otherwise ordinary text)."""
    kw = dict(kwargs or {})

    def build(ids: Sequence[str] = (), kws: Sequence[dict[str, Any]] = (), ban: Sequence[str] = ()) -> str:
        return satisfying_response(list(ids), list(kws), rng, ban)

    def flip(relation: str) -> str:
        return LESS_THAN if relation == AT_LEAST else AT_LEAST

    if cid == NUMBER_PARAGRAPHS:
        return build([cid], [{"num_paragraphs": int(kw["num_paragraphs"]) + 1}])
    if cid == NTH_PARAGRAPH_FIRST_WORD:
        return build([cid], [{**kw, "first_word": "different" if kw["first_word"] != "different" else "other"}])
    if cid == NUMBER_WORDS:
        return build([cid], [{**kw, "relation": flip(kw["relation"])}])
    if cid == NUMBER_SENTENCES:
        n = int(kw["num_sentences"])
        if kw["relation"] == AT_LEAST:  # fewer sentences than n: a single short sentence, or nothing at all
            return "The river is quiet." if n > 1 else ""
        return " ".join(_Vocabulary(rng).sentence() for _ in range(n + 2))
    if cid == NUMBER_PLACEHOLDERS:
        n = int(kw["num_placeholders"]) - 1
        return build([cid], [{"num_placeholders": n}]) if n > 0 else build()
    if cid == MULTIPLE_SECTIONS:
        n = int(kw["num_sections"]) - 1
        return build([cid], [{**kw, "num_sections": n}]) if n > 0 else build()
    if cid == NUMBER_HIGHLIGHTED_SECTIONS:
        n = int(kw["num_highlights"]) - 1
        return build([cid], [{"num_highlights": n}]) if n > 0 else build()
    if cid == NUMBER_BULLET_LISTS:
        return build([cid], [{"num_bullets": int(kw["num_bullets"]) + 1}])
    if cid == KEYWORD_EXISTENCE:
        return build(ban=kw["keywords"])
    if cid == FORBIDDEN_WORDS:
        return f"{build()} The {kw['forbidden_words'][0]} is here."
    if cid in (KEYWORD_FREQUENCY, LETTER_FREQUENCY, CAPITAL_WORD_FREQUENCY):
        key = {KEYWORD_FREQUENCY: "relation", LETTER_FREQUENCY: "let_relation"}.get(cid, "capital_relation")
        if kw[key] == LESS_THAN:  # reaching the cap breaks it
            return build([cid], [{**kw, key: AT_LEAST}])
        if cid == LETTER_FREQUENCY:  # none of the letter at all
            return _Vocabulary(rng).without(kw["letter"])
        return build([cid], [{**kw, key: LESS_THAN}])  # none of the keyword / no UPPERCASE word
    if cid == ENGLISH_LOWERCASE:
        return build()  # sentences start with a capital letter
    if cid == ENGLISH_CAPITAL:
        return build([ENGLISH_LOWERCASE], [{}])
    if cid == NO_COMMA:
        return f"{build()} Yes, it is."
    if cid == END_CHECKER:
        return build()
    if cid == QUOTATION:
        return build()
    if cid == REPEAT_PROMPT:
        return f"Sure. {kw['prompt_to_repeat']}"
    if cid == JSON_FORMAT:
        return build()  # plain text is not JSON
    if cid in (TITLE, POSTSCRIPT, TWO_RESPONSES, CONSTRAINED_RESPONSE):
        return build()
    raise ValueError(f"no violating response builder for {cid}")
