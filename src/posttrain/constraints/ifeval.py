"""IFEval's 25 instruction types, written from the google-research checkers (`instruction_following_eval`).

Mode `"ifeval"` reproduces every reference verdict, bugs included; mode `"fixed"` repairs the bugs listed in
docs/methods/constraints.md (each repair is marked `# fixed:` below). Kwargs use IFEval's names unchanged, but where
the reference silently draws a random value for a missing or out-of-range kwarg we raise InputError instead.
"""

from __future__ import annotations

import functools
import json
import random
import re
from typing import Any

from posttrain.constraint_ids import (
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
    RELATIONS,
    REPEAT_PROMPT,
    RESPONSE_LANGUAGE,
    TITLE,
    TWO_RESPONSES,
)
from posttrain.constraints import text
from posttrain.constraints.base import (
    Constraint,
    compare,
    need_int,
    need_relation,
    need_str,
    need_str_list,
)
from posttrain.errors import InputError

LANGUAGES = {
    "en": "English", "es": "Spanish", "pt": "Portuguese", "ar": "Arabic", "hi": "Hindi", "fr": "French",
    "ru": "Russian", "de": "German", "ja": "Japanese", "it": "Italian", "bn": "Bengali", "uk": "Ukrainian",
    "th": "Thai", "ur": "Urdu", "ta": "Tamil", "te": "Telugu", "bg": "Bulgarian", "ko": "Korean", "pl": "Polish",
    "he": "Hebrew", "fa": "Persian", "vi": "Vietnamese", "ne": "Nepali", "sw": "Swahili", "kn": "Kannada",
    "mr": "Marathi", "gu": "Gujarati", "pa": "Punjabi", "ml": "Malayalam", "fi": "Finnish",
}  # fmt: skip  # IFEval's LANGUAGE_CODES

# Everyday nouns for sampled keywords: easy to use naturally, never regex metacharacters.
KEYWORDS = (
    "river", "garden", "window", "market", "signal", "journey", "harvest", "bridge", "engine", "lantern", "canvas",
    "ocean", "forest", "ticket", "pocket", "mirror", "thunder", "village", "compass", "library", "kitchen", "planet",
    "winter", "summer", "silver", "coffee", "letter", "camera", "pencil", "ladder", "island", "meadow", "castle",
    "rocket", "violin", "anchor", "puzzle", "blanket", "orchard", "harbor", "feather", "candle", "marble", "tunnel",
    "desert", "valley", "season", "battery", "network", "balance", "pattern", "promise", "history", "energy", "climate",
    "budget", "schedule", "project", "science", "student", "teacher", "story", "memory", "future", "method", "school",
)  # fmt: skip
CONSTRAINED_RESPONSES = ("My answer is yes.", "My answer is no.", "My answer is maybe.")
ENDINGS = ("Any other questions?", "Is there anything else I can help with?", "Let me know if you need more.")
POSTSCRIPT_MARKERS = ("P.S.", "P.P.S")
SECTION_SPLITTERS = ("Section", "SECTION", "Part", "PARAGRAPH")


@functools.lru_cache(maxsize=1024)
def _pattern(source: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(source, flags)


def _regex_or_input_error(cid: str, source: str, mode: str, flags: int = 0) -> None:
    # The reference feeds keywords to `re` unescaped; an invalid pattern would crash it, so reject it up front.
    # Fixed mode matches them literally, so anything goes there.
    if mode != "ifeval":
        return
    try:
        _pattern(source, flags)
    except re.error as err:
        raise InputError(
            f"{cid}: {source!r} is not a valid regular expression in ifeval mode ({err})"
        ) from None


def _whole_word(word: str) -> re.Pattern[str]:
    return _pattern(r"(?<!\w)" + re.escape(word) + r"(?!\w)", re.IGNORECASE)


def _relation_phrase(relation: str, n: int, unit: str) -> str:
    return f"{'fewer than' if relation == LESS_THAN else 'at least'} {n} {unit}"


def _language_ok(detected: str | None, expected: str, mode: str) -> bool:
    # The reference logs a langdetect failure and counts it as a PASS; fixed mode counts it as a failure.
    if detected is None:
        return mode == "ifeval"
    return detected == expected


_NON_SPACE = re.compile(r"\S")


def _ifeval_bullets(text: str, marker: str) -> int:
    """`len(re.findall(r"^\\s*\\*[^\\*].*$", text, re.M))` (marker "*") or `r"^\\s*-.*$"` (marker "-"), in linear time.

    The regex retries `^\\s*` at every line start inside a whitespace run, which is quadratic on 100 KB of newlines.
    A line start matches iff the first non-space character after it is the marker (for "*", followed by any
    character but "*", newline included); the match then runs to the end of the line after that character.
    """
    count, start, size = 0, 0, len(text)
    while start < size:
        found = _NON_SPACE.search(text, start)
        if found is None:
            break
        first = found.start()
        if text[first] == marker and (marker == "-" or (first + 1 < size and text[first + 1] != "*")):
            count += 1
            tail = first + (
                1 if marker == "-" else 2
            )  # `.*` starts after the marker (and after [^*] for "*")
            end = text.find("\n", tail)
            if end < 0:
                break
            # The next "^" is at `end` only when the [^*] character was itself a newline.
            start = end if text[end - 1] == "\n" else end + 1
        else:
            newline = text.find("\n", first)
            if newline < 0:
                break
            start = newline + 1
    return count


def _ifeval_placeholders(text: str) -> int:
    """`len(re.findall(r"\\[.*?\\]", text))` in linear time (the regex is quadratic on a line of many "[")."""
    count, position = 0, 0
    while True:
        opening = text.find("[", position)
        if opening < 0:
            return count
        newline = text.find("\n", opening)
        closing = text.find("]", opening + 1, newline if newline >= 0 else len(text))
        if closing >= 0:
            count += 1
            position = closing + 1
        elif newline >= 0:
            position = newline + 1  # no "[" left on this line can close before the newline
        else:
            return count


# --- keywords -----------------------------------------------------------------------------------------------------
class KeywordExistence(Constraint):
    id = KEYWORD_EXISTENCE
    required = ("keywords",)

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"keywords": rng.sample(KEYWORDS, k=rng.randint(1, 3))}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        keywords = need_str_list(self.id, kwargs, "keywords")
        for keyword in keywords:
            _regex_or_input_error(self.id, keyword, mode, re.IGNORECASE)
        return {"keywords": sorted(keywords)}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        words = ", ".join(repr(k) for k in kwargs["keywords"])
        return [
            f"Include the keywords {words} in the response.",
            f"Make sure your answer mentions {words}.",
            f"Your response must contain the following words: {words}.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        for keyword in kwargs["keywords"]:
            # fixed: whole words, literally ("cat" is not found in "category"; "c++" is not a regex)
            found = (
                _pattern(keyword, re.IGNORECASE).search(response)
                if mode == "ifeval"
                else _whole_word(keyword).search(response)
            )
            if not found:
                return False
        return True


class KeywordFrequency(Constraint):
    id = KEYWORD_FREQUENCY
    required = ("keyword", "frequency", "relation")

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {
            "keyword": rng.choice(KEYWORDS),
            "frequency": rng.randint(1, 3),
            "relation": rng.choice(RELATIONS),
        }

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        keyword = need_str(self.id, kwargs, "keyword").strip()
        _regex_or_input_error(self.id, keyword, mode, re.IGNORECASE)
        return {
            "keyword": keyword,
            "frequency": need_int(self.id, kwargs, "frequency"),
            "relation": need_relation(self.id, kwargs, "relation"),
        }

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        k, n, rel = kwargs["keyword"], kwargs["frequency"], kwargs["relation"]
        times = _relation_phrase(rel, n, "times")
        return [
            f"In your response, the word {k} should appear {rel} {n} times.",
            f"Use the word '{k}' {times}.",
            f'The word "{k}" must occur {times} in your answer.',
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        keyword = kwargs["keyword"]
        pattern = _pattern(keyword, re.IGNORECASE) if mode == "ifeval" else _whole_word(keyword)
        return compare(len(pattern.findall(response)), kwargs["relation"], kwargs["frequency"])


class ForbiddenWords(Constraint):
    id = FORBIDDEN_WORDS
    required = ("forbidden_words",)

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"forbidden_words": rng.sample(KEYWORDS, k=rng.randint(1, 3))}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        words = sorted(set(need_str_list(self.id, kwargs, "forbidden_words")))
        for word in words:
            _regex_or_input_error(self.id, r"\b" + word + r"\b", mode, re.IGNORECASE)
        return {"forbidden_words": words}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        words = ", ".join(repr(w) for w in kwargs["forbidden_words"])
        return [
            f"Do not include keywords {words} in the response.",
            f"Avoid using the words {words} anywhere in your answer.",
            f"Your response must not contain any of these words: {words}.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        for word in kwargs["forbidden_words"]:
            # fixed: the word is matched literally, not as a regex
            pattern = _pattern(r"\b" + word + r"\b", re.IGNORECASE) if mode == "ifeval" else _whole_word(word)
            if pattern.search(response):
                return False
        return True


class LetterFrequency(Constraint):
    id = LETTER_FREQUENCY
    required = ("letter", "let_frequency", "let_relation")

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {
            "letter": rng.choice("abcdefghijklmnopqrstuvwxyz"),
            "let_frequency": rng.randint(1, 10),
            "let_relation": rng.choice(RELATIONS),
        }

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        letter = kwargs["letter"]
        # IFEval's own data asks for "#" and "!" (keys 1122, 1129); the reference then silently counts a RANDOM
        # letter instead, so its verdict on those rows is a coin toss. We count the character that was asked for.
        if not isinstance(letter, str) or len(letter.strip()) != 1:
            raise InputError(f"{self.id}: letter must be a single character, got {letter!r}")
        letter = letter.strip()
        return {
            "letter": letter.lower(),
            "let_frequency": need_int(self.id, kwargs, "let_frequency"),
            "let_relation": need_relation(self.id, kwargs, "let_relation"),
        }

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        letter, n, rel = kwargs["letter"], kwargs["let_frequency"], kwargs["let_relation"]
        times = _relation_phrase(rel, n, "times")
        return [
            f"In your response, the letter {letter} should appear {rel} {n} times.",
            f"The letter '{letter}' must appear {times} in your answer.",
            f"Write your answer so that the letter {letter} occurs {times}.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        # str.count on the lowercased text equals the reference's Counter(value.lower())[letter]
        return compare(
            response.lower().count(kwargs["letter"]), kwargs["let_relation"], kwargs["let_frequency"]
        )


# --- language -----------------------------------------------------------------------------------------------------
class ResponseLanguage(Constraint):
    id = RESPONSE_LANGUAGE
    required = ("language",)

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"language": rng.choice(sorted(LANGUAGES))}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {"language": need_str(self.id, kwargs, "language")}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        name = LANGUAGES.get(kwargs["language"], kwargs["language"])
        return [
            f"Your ENTIRE response should be in {name} language, no other language is allowed.",
            f"Respond only in {name}; do not use any other language.",
            f"Write the whole answer in {name}.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        return _language_ok(text.detect_language(response), kwargs["language"], mode)


# --- length -------------------------------------------------------------------------------------------------------
class NumberSentences(Constraint):
    id = NUMBER_SENTENCES
    required = ("num_sentences", "relation")

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"num_sentences": rng.randint(1, 20), "relation": rng.choice(RELATIONS)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {
            "num_sentences": need_int(self.id, kwargs, "num_sentences"),
            "relation": need_relation(self.id, kwargs, "relation"),
        }

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        n, rel = kwargs["num_sentences"], kwargs["relation"]
        return [
            f"Your response should contain {rel} {n} sentences.",
            f"Answer in {_relation_phrase(rel, n, 'sentences')}.",
            f"Use {_relation_phrase(rel, n, 'sentences')} in your reply.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        return compare(text.count_sentences(response), kwargs["relation"], kwargs["num_sentences"])


class NumberParagraphs(Constraint):
    id = NUMBER_PARAGRAPHS
    required = ("num_paragraphs",)

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"num_paragraphs": rng.randint(1, 5)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {"num_paragraphs": need_int(self.id, kwargs, "num_paragraphs")}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        n = kwargs["num_paragraphs"]
        return [
            f"There should be {n} paragraphs. Paragraphs are separated with the markdown divider: ***",
            f"Write exactly {n} paragraphs, separated from each other by the markdown divider ***.",
            f"Your answer must have {n} paragraphs; put a line with *** between consecutive paragraphs.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        paragraphs = _pattern(r"\s?\*\*\*\s?").split(response)
        count = len(paragraphs)
        for index, paragraph in enumerate(paragraphs):
            if not paragraph.strip():
                if index == 0 or index == len(paragraphs) - 1:
                    count -= 1
                else:
                    return False
        return count == kwargs["num_paragraphs"]


class NumberWords(Constraint):
    id = NUMBER_WORDS
    required = ("num_words", "relation")

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"num_words": rng.randint(100, 500), "relation": rng.choice(RELATIONS)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {
            "num_words": need_int(self.id, kwargs, "num_words"),
            "relation": need_relation(self.id, kwargs, "relation"),
        }

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        n, rel = kwargs["num_words"], kwargs["relation"]
        return [
            f"Answer with {rel} {n} words.",
            f"Your response should be {_relation_phrase(rel, n, 'words')} long.",
            f"Keep the answer to {_relation_phrase(rel, n, 'words')}.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        return compare(text.count_words(response), kwargs["relation"], kwargs["num_words"])


class NthParagraphFirstWord(Constraint):
    id = NTH_PARAGRAPH_FIRST_WORD
    required = ("num_paragraphs", "nth_paragraph", "first_word")

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        n = rng.randint(2, 5)
        return {"num_paragraphs": n, "nth_paragraph": rng.randint(1, n), "first_word": rng.choice(KEYWORDS)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {
            "num_paragraphs": need_int(self.id, kwargs, "num_paragraphs", minimum=1),
            "nth_paragraph": need_int(self.id, kwargs, "nth_paragraph", minimum=1),
            "first_word": need_str(self.id, kwargs, "first_word").lower(),
        }

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        n, nth, word = kwargs["num_paragraphs"], kwargs["nth_paragraph"], kwargs["first_word"]
        return [
            f"There should be {n} paragraphs. Paragraphs and only paragraphs are separated with each other by two "
            f"new lines as if it was '\\n\\n' in python. Paragraph {nth} must start with word {word}.",
            f"Write {n} paragraphs separated by blank lines; paragraph number {nth} must begin with the word "
            f'"{word}".',
            f"Your answer needs exactly {n} paragraphs (separate them with an empty line), and the first word of "
            f"paragraph {nth} has to be {word}.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        paragraphs = response.split("\n\n")
        non_empty = [p for p in paragraphs if p.strip()]
        count, nth = len(non_empty), kwargs["nth_paragraph"]
        if nth > count:
            return False
        # The reference counts only non-empty paragraphs but then indexes the unfiltered list, so an empty
        # paragraph (e.g. a leading "\n\n") shifts which paragraph is checked. fixed: index the non-empty ones.
        paragraph = (paragraphs if mode == "ifeval" else non_empty)[nth - 1].strip()
        if not paragraph:
            return False
        word = paragraph.split()[0].strip().lstrip("'").lstrip('"')
        first_word = ""
        for letter in word:
            if letter in {".", ",", "?", "!", "'", '"'}:
                break
            first_word += letter.lower()
        return count == kwargs["num_paragraphs"] and first_word == kwargs["first_word"]


# --- detectable content -------------------------------------------------------------------------------------------
class NumberPlaceholders(Constraint):
    id = NUMBER_PLACEHOLDERS
    required = ("num_placeholders",)

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"num_placeholders": rng.randint(1, 4)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {"num_placeholders": need_int(self.id, kwargs, "num_placeholders")}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        n = kwargs["num_placeholders"]
        return [
            f"The response must contain at least {n} placeholders represented by square brackets, such as [address].",
            f"Include at least {n} placeholders in square brackets, like [name].",
            f"Use no fewer than {n} bracketed placeholders such as [date] in your answer.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        # fixed: an empty "[]" or a bracket pair spanning lines is not a placeholder
        if mode == "ifeval":
            return _ifeval_placeholders(response) >= kwargs["num_placeholders"]
        inner = _pattern(r"\[([^\[\]\n]*)\]").findall(response)
        return sum(1 for content in inner if content.strip()) >= kwargs["num_placeholders"]


class Postscript(Constraint):
    id = POSTSCRIPT
    required = ("postscript_marker",)

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"postscript_marker": rng.choice(POSTSCRIPT_MARKERS)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        marker = need_str(self.id, kwargs, "postscript_marker").strip()
        if marker not in POSTSCRIPT_MARKERS:
            _regex_or_input_error(self.id, r"\s*" + marker.lower() + r".*$", mode, re.MULTILINE)
        return {"postscript_marker": marker}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        m = kwargs["postscript_marker"]
        return [
            f"At the end of your response, please explicitly add a postscript starting with {m}",
            f"End your answer with a postscript that begins with {m}",
            f'Finish with a short postscript starting with "{m}".',
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        marker = kwargs["postscript_marker"]
        if marker == "P.P.S":
            body = r"p\.\s?p\.\s?s"
        elif marker == "P.S.":
            body = r"p\.\s?s\."
        else:
            body = marker.lower() if mode == "ifeval" else re.escape(marker.lower())
        # fixed: the marker must start a line ("maps.s." or "...up.s." mid-sentence is not a postscript)
        # The reference searches r"\s*" + body + r".*$"; the optional prefix and the always-matching tail cannot
        # change whether it matches, and dropping them avoids its quadratic scan of long whitespace runs.
        source = body if mode == "ifeval" else r"^[ \t>*_#]*" + body
        return bool(_pattern(source, re.MULTILINE).search(response.lower()))


# --- detectable format --------------------------------------------------------------------------------------------
class NumberBulletLists(Constraint):
    id = NUMBER_BULLET_LISTS
    required = ("num_bullets",)

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"num_bullets": rng.randint(1, 5)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {"num_bullets": need_int(self.id, kwargs, "num_bullets")}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        n = kwargs["num_bullets"]
        return [
            f"Your answer must contain exactly {n} bullet points. Use the markdown bullet points such as:\n"
            "* This is point 1. \n* This is point 2",
            f"Format your answer as exactly {n} markdown bullet points (lines starting with '* ').",
            f"Give exactly {n} bullet points using markdown, like:\n* point one\n* point two",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        if mode == "ifeval":
            return _ifeval_bullets(response, "*") + _ifeval_bullets(response, "-") == kwargs["num_bullets"]
        # fixed: a bullet is "* ", "- " or "+ " then text; "---" rules, "**bold**" lines and "-5" are not
        bullets = _pattern(r"^[ \t]*[*+-][ \t]+\S", re.MULTILINE).findall(response)
        return len(bullets) == kwargs["num_bullets"]


class ConstrainedResponse(Constraint):
    id = CONSTRAINED_RESPONSE

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        options = str(CONSTRAINED_RESPONSES)
        return [
            f"Answer with one of the following options: {options}",
            f"Your answer must contain one of these exact phrases: {', '.join(CONSTRAINED_RESPONSES)}",
            f"Reply with one of {options} and nothing that contradicts it.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        stripped = response.strip()
        return any(option in stripped for option in CONSTRAINED_RESPONSES)


class NumberHighlightedSections(Constraint):
    id = NUMBER_HIGHLIGHTED_SECTIONS
    required = ("num_highlights",)

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"num_highlights": rng.randint(1, 4)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {"num_highlights": need_int(self.id, kwargs, "num_highlights")}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        n = kwargs["num_highlights"]
        return [
            f"Highlight at least {n} sections in your answer with markdown, i.e. *highlighted section*.",
            f"Use markdown to highlight at least {n} parts of your answer, like *this part*.",
            f"Mark at least {n} key phrases with asterisks, e.g. *important phrase*.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        count = sum(1 for h in _pattern(r"\*[^\n\*]*\*").findall(response) if h.strip("*").strip())
        count += sum(
            1
            for h in _pattern(r"\*\*[^\n\*]*\*\*").findall(response)
            if h.removeprefix("**").removesuffix("**").strip()
        )
        return count >= kwargs["num_highlights"]


class MultipleSections(Constraint):
    id = MULTIPLE_SECTIONS
    required = ("section_spliter", "num_sections")

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"section_spliter": rng.choice(SECTION_SPLITTERS), "num_sections": rng.randint(2, 5)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        splitter = need_str(self.id, kwargs, "section_spliter").strip()
        _regex_or_input_error(self.id, r"\s?" + splitter + r"\s?\d+\s?", mode)
        return {"section_spliter": splitter, "num_sections": need_int(self.id, kwargs, "num_sections")}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        n, s = kwargs["num_sections"], kwargs["section_spliter"]
        return [
            f"Your response must have {n} sections. Mark the beginning of each section with {s} X, such as:\n"
            f"{s} 1\n[content of section 1]\n{s} 2\n[content of section 2]",
            f"Organize the answer into {n} sections, each starting with a line '{s} N' (N = 1, 2, ...).",
            f"Split your response into {n} parts and label them {s} 1, {s} 2, and so on.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        splitter = kwargs["section_spliter"]
        if mode == "ifeval":
            sections = _pattern(r"\s?" + splitter + r"\s?\d+\s?").split(response)
            return len(sections) - 1 >= kwargs["num_sections"]
        # fixed: a section header starts a line and the splitter is literal ("see Section 2 above" is no header)
        headers = _pattern(r"^[ \t#*_]*" + re.escape(splitter) + r"[ \t]*\d+", re.MULTILINE).findall(response)
        return len(headers) >= kwargs["num_sections"]


class JsonFormat(Constraint):
    id = JSON_FORMAT

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```.",
            "Format your entire answer as valid JSON (a markdown code fence around it is fine).",
            "Return only JSON: the whole response must parse as JSON.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        value = (
            response.strip()
            .removeprefix("```json")
            .removeprefix("```Json")
            .removeprefix("```JSON")
            .removeprefix("```")
            .removesuffix("```")
            .strip()
        )
        try:
            json.loads(value)
        except ValueError:
            return False
        except RecursionError:  # deeply nested input; the reference would crash here
            return False
        return True


class Title(Constraint):
    id = TITLE

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.",
            "Give your answer a title in double angle brackets, like <<my title>>.",
            "Start with a title wrapped in << and >>, for example <<a day at sea>>.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        # re.findall(r"<<[^\n]+>>") yields at most one match per line, from its first "<<" to its last ">>" (greedy),
        # and is quadratic on a long run of "<"; finding both ends directly gives the same titles in linear time.
        for line in response.split("\n"):
            start, end = line.find("<<"), line.rfind(">>")
            if start >= 0 and end >= start + 3 and line[start : end + 2].lstrip("<").rstrip(">").strip():
                return True
        return False


# --- combination --------------------------------------------------------------------------------------------------
class TwoResponses(Constraint):
    id = TWO_RESPONSES

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Give two different responses. Responses and only responses should be separated by 6 asterisk "
            "symbols: ******.",
            "Write two different answers, separated by a line of six asterisks (******).",
            "Provide two distinct responses and put ****** between them (and nowhere else).",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        parts = response.split("******")
        valid = []
        for index, part in enumerate(parts):
            if not part.strip():
                if index != 0 and index != len(parts) - 1:
                    return False
            else:
                valid.append(part)
        return len(valid) == 2 and valid[0].strip() != valid[1].strip()


class RepeatPrompt(Constraint):
    """The prompt text itself is a kwarg (`prompt_to_repeat`), as in IFEval's data; `sample_kwargs` cannot know it,
    so the prompt builder sets it once the request text is final."""

    id = REPEAT_PROMPT
    required = ("prompt_to_repeat",)

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {"prompt_to_repeat": need_str(self.id, kwargs, "prompt_to_repeat")}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "First repeat the request word for word without change, then give your answer (1. do not say any words "
            "or characters before repeating the request; 2. the request you need to repeat does not include this "
            "sentence)",
            "Begin by copying the request above exactly as written (not including this sentence), then answer it. "
            "Say nothing before the copied request.",
            "Repeat the request verbatim first (leave out this instruction), and only then respond.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        return response.strip().lower().startswith(kwargs["prompt_to_repeat"].strip().lower())


# --- start / end --------------------------------------------------------------------------------------------------
class EndChecker(Constraint):
    id = END_CHECKER
    required = ("end_phrase",)

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"end_phrase": rng.choice(ENDINGS)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {"end_phrase": need_str(self.id, kwargs, "end_phrase").strip()}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        e = kwargs["end_phrase"]
        return [
            f"Finish your response with this exact phrase {e}. No other words should follow this phrase.",
            f'End your answer with the exact words "{e}" and write nothing after them.',
            f"The last words of your response must be: {e}",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        return response.strip().strip('"').lower().endswith(kwargs["end_phrase"].strip().lower())


class Quotation(Constraint):
    id = QUOTATION

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Wrap your entire response with double quotation marks.",
            "Put your whole answer inside double quotes.",
            'Your entire reply must begin and end with a double quotation mark (").',
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        value = response.strip()
        return len(value) > 1 and value[0] == '"' and value[-1] == '"'


# --- change case --------------------------------------------------------------------------------------------------
class CapitalWordFrequency(Constraint):
    id = CAPITAL_WORD_FREQUENCY
    required = ("capital_frequency", "capital_relation")

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"capital_frequency": rng.randint(1, 20), "capital_relation": rng.choice(RELATIONS)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {
            "capital_frequency": need_int(self.id, kwargs, "capital_frequency"),
            "capital_relation": need_relation(self.id, kwargs, "capital_relation"),
        }

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        n, rel = kwargs["capital_frequency"], kwargs["capital_relation"]
        times = _relation_phrase(rel, n, "times")
        return [
            f"In your response, words with all capital letters should appear {rel} {n} times.",
            f"Use words written entirely in CAPITAL LETTERS {times}.",
            f"All-caps words (like THIS) must appear {times} in your answer.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        return compare(
            text.count_uppercase_words(response), kwargs["capital_relation"], kwargs["capital_frequency"]
        )


class EnglishCapital(Constraint):
    id = ENGLISH_CAPITAL

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Your entire response should be in English, and in all capital letters.",
            "Write your whole answer in English using only CAPITAL LETTERS.",
            "Respond in English, in uppercase letters only.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        # Short-circuit before langdetect exactly like the reference's `isupper() and detect(...)`.
        return response.isupper() and _language_ok(text.detect_language(response), "en", mode)


class EnglishLowercase(Constraint):
    id = ENGLISH_LOWERCASE

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Your entire response should be in English, and in all lowercase letters. No capital letters are allowed.",
            "Write your whole answer in English using only lowercase letters; no capitals at all.",
            "Respond in English, all in lowercase.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        return response.islower() and _language_ok(text.detect_language(response), "en", mode)


# --- punctuation --------------------------------------------------------------------------------------------------
class NoComma(Constraint):
    id = NO_COMMA

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "In your entire response, refrain from the use of any commas.",
            "Do not use any commas in your answer.",
            "Write the response without a single comma.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        return "," not in response
