"""Responses and kwargs for parity tests: hand-written edge cases per constraint type plus templated responses."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from posttrain.constraint_ids import IFEVAL_25
from posttrain.constraints import get_constraint

IFEVAL_INPUT = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ifeval" / "input_data.jsonl"
PROMPT = "Write a short poem about the sea, and explain its meaning."

EDGE_CASES = [
    "", " ", "\n\n", "hello", "Hello, world.", "HELLO WORLD", "hello world this is all lowercase english text",
    "THIS IS AN ALL CAPS ENGLISH SENTENCE ABOUT THE WEATHER TODAY.", "12345 67890", "!!! ??? ...", "***", "******",
    # languages (langdetect) and detection failures
    "Hola, ¿cómo estás? Espero que todo vaya bien en tu casa y con tu familia.",
    "Bonjour tout le monde, je suis très content de vous voir aujourd'hui.",
    "Das ist ein kurzer deutscher Satz über das Wetter in Berlin.",
    "Привет, как дела? Сегодня хорошая погода.", "こんにちは、元気ですか？今日はいい天気ですね。",
    "यह एक हिंदी वाक्य है जो मौसम के बारे में है।", "مرحبا كيف حالك اليوم", "1 2 3 4", "—", "😀😀😀",
    # sentences / punkt
    "Dr. Smith went to Washington. He arrived at 3 p.m. on Jan. 5. It was cold!",
    "The U.S.A. is big. Mr. Jones agrees... Does he? Yes. e.g. this one. i.e. that one.",
    "One. Two. Three. Four. Five. Six. Seven.", "No full stop here", "Wait... what?! Really?? OK.",
    # paragraphs
    "First paragraph.\n\nSecond paragraph.\n\nThird paragraph.", "\n\nLeading blank.\n\nSecond one.",
    "Para one.\n\n\n\nPara two after empty.", "Alpha starts here.\n\n\"Beta\" is quoted.\n\nGamma, yes.",
    "Intro\n***\nMiddle\n***\nEnd", "***\nOnly one\n***", "A\n***\n\n***\nB", "A *** B *** C", "A****B",
    "Summer is here.\n\nsummer again.\n\n'Summer' quoted.",
    # bullets
    "* one\n* two\n* three", "- a\n- b", "*bold* start\n* real bullet", "---\n- item", "  * indented\n\t- tabbed",
    "**not a bullet**\n* bullet", "*\n*\n", "\n\n\n* after blanks", "-5 degrees\n- item", "*", "* ", "*\n* x",
    # highlights / title / json / quotes
    "This has *one highlight* and **two bold** and *another*.", "** **", "*a*b*c*", "<<The Title>>\nBody text.",
    "<< >>", "<<<nested>>>", "<<a>> and <<b>>", "<<\n>>", json.dumps({"a": 1, "b": [1, 2]}),
    '```json\n{"key": "value"}\n```', "```\n[1, 2, 3]\n```", "```JSON\nnot json\n```", '"Quoted answer."',
    '"', '""', ' "padded" ', "'single'",
    # placeholders / postscript / sections / endings
    "Send to [name] at [address] on [date].", "[] empty and [ ] space", "[link](http://x.y) and [a\nb]",
    "Thanks!\nP.S. See you soon.", "p.s. lowercase", "P.P.S. Another note", "P. P. S extra", "maps.s. odd",
    "SECTION 1\nIntro\nSECTION 2\nBody", "Section 1 text Section 2 text Section 3", "Section1 Section2",
    "PARAGRAPH 1\nx\nPARAGRAPH 2\ny", "Day 1: rest. Day 2: walk.", "Is there anything else I can help with?",
    'Answer here. "Any other questions?"', "My answer is yes.", "My answer is no. My answer is maybe.",
    "First answer here.\n******\nSecond answer here.", "Same\n******\nSame", "A\n******\n\n******\nB",
    PROMPT + "\nHere is my poem.", PROMPT.upper() + " yes", "  " + PROMPT.lower(),
    # words / letters / capitals
    "The river runs by the garden; the RIVER is WIDE and the garden is GREEN.", "river river river",
    "category concatenate cat", "I AM SURE THAT NASA AND THE USA WILL DO IT.", "a" * 30, "e e e e e E E",
    "don't can't won't it's U.S. O'Neil", "word " * 120, "Wörds wïth ünïcödé, and — dashes – too…",
]  # fmt: skip

FRAGMENTS = [
    "The river flows quietly past the old mill.", "Dr. Brown arrived at 5 p.m. yesterday!",
    "* first point about the garden", "- second point, with a comma", "*highlighted idea*", "**bold claim**",
    "<<A Title For This>>", "[placeholder]", "P.S. Remember to write back.", "P.P.S one more thing",
    "SECTION 1", "Section 2", "My answer is yes.", "Is there anything else I can help with?", "***", "******",
    "ALL CAPS WORDS HERE", "lowercase words only here", "Hola amigo, ¿qué tal?", "Ceci est une phrase.",
    '{"answer": 42}', "```json", "```", '"', "Energy and climate matter for the future of the planet.",
    "Is this a question? Yes. It is.", "1. numbered item", "e.g. an example, i.e. a clarification.",
    "The journey to the harbor took three days", PROMPT,
]  # fmt: skip
SEPARATORS = ["\n", "\n\n", " ", "\n***\n", "\n******\n", "\n\n\n", "  \n"]


def templated(n: int, seed: int) -> list[str]:
    """`n` varied multi-block responses built from fragments, separators and whole-response wrappers."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        blocks = [rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 7))]
        body = blocks[0]
        for block in blocks[1:]:
            body += rng.choice(SEPARATORS) + block
        wrap = rng.random()
        if wrap < 0.1:
            body = body.upper()
        elif wrap < 0.2:
            body = body.lower()
        elif wrap < 0.3:
            body = f'"{body}"'
        elif wrap < 0.4:
            body = "Sure! Here is the answer:\n" + body + "\nHope this helps."
        out.append(body)
    return out


def responses(n_templated: int, seed: int = 0) -> list[str]:
    return EDGE_CASES + templated(n_templated, seed)


def ifeval_kwargs() -> dict[str, list[dict[str, Any]]]:
    """Kwargs per id from IFEval's own input_data.jsonl when it is present (a test asset only)."""
    found: dict[str, list[dict[str, Any]]] = {}
    if IFEVAL_INPUT.exists():
        for line in IFEVAL_INPUT.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            for cid, kwargs in zip(row["instruction_id_list"], row["kwargs"], strict=True):
                found.setdefault(cid, []).append({**kwargs} if cid != "combination:repeat_prompt" else kwargs)
    return found


def kwargs_sets(cid: str, count: int, seed: int = 0) -> list[dict[str, Any]]:
    """`count` kwargs dicts for `cid`: sampled ones plus IFEval's own (deduplicated, order stable)."""
    if cid == "combination:repeat_prompt":
        return [{"prompt_to_repeat": PROMPT}, {"prompt_to_repeat": "  write A POEM  "}]
    rng = random.Random(seed)
    constraint = get_constraint(cid)
    sampled = [constraint.sample_kwargs(rng) for _ in range(count)]
    if cid == "keywords:letter_frequency":
        sampled += [{"letter": "E", "let_frequency": 3, "let_relation": "at least"}]
    candidates = sampled + ifeval_kwargs().get(cid, [])[:count]
    unique = {json.dumps(k, sort_keys=True): k for k in candidates}
    return list(unique.values())[:count]


ALL_IDS = sorted(IFEVAL_25)  # the IFEval checkers (IFBench's have their own parity tests)


PROSE_WORDS = (
    "the river garden city people time year way day thing world school state family student group country problem "
    "hand part place case week company system program question work number night point home water room area money "
    "story fact month lot right study book eye job word business issue side kind head house service friend power "
    "hour game line end member law car name team minute idea body information back parent face level office door "
    "health person art war history party result change morning reason research moment air teacher force education"
).split()
PROSE_CAPITALS = ["I", "NASA", "U.S.", "AI", "UK", "CEO", "I'm", "I'll", "OK", "EU", "U.N.", "DNA", "TV", "B2B"]
PROSE_ABBREVIATIONS = ["Dr.", "Mr.", "Mrs.", "e.g.", "i.e.", "etc.", "vs.", "Jan.", "St.", "No.", "p.m.", "Inc."]
PROSE_NAMES = ["Smith", "London", "Paris", "Monday", "Alice", "Python", "Google", "Europe", "Sarah", "Tokyo"]


def varied_prose(size: int = 100_000, seed: int = 0) -> str:
    """`size` characters of random English-like prose dense in what slows sentence and word tokenizers down:
    acronyms, "I" and its contractions, abbreviations, names, numbers, quotes, brackets, bullets, all-caps lines."""
    rng = random.Random(seed)
    pieces: list[str] = []
    total = 0
    while total < size:
        words = []
        for _ in range(rng.randint(4, 22)):
            draw = rng.random()
            if draw < 0.06:
                word = rng.choice(PROSE_CAPITALS)
            elif draw < 0.10:
                word = rng.choice(PROSE_ABBREVIATIONS)
            elif draw < 0.16:
                word = rng.choice(PROSE_NAMES)
            elif draw < 0.19:
                word = str(rng.randint(1, 2030))
            elif draw < 0.21:
                word = rng.choice("(\"'") + rng.choice(PROSE_WORDS) + rng.choice(")\"'")
            elif draw < 0.22:
                word = rng.choice(PROSE_WORDS) + "n't"
            else:
                word = rng.choice(PROSE_WORDS)
            if rng.random() < 0.08:
                word += rng.choice([",", ";", ":", " -", " --"])
            words.append(word)
        sentence = " ".join(words)
        sentence = sentence[:1].upper() + sentence[1:] + rng.choice([".", ".", ".", "!", "?", "...", '."', ":"])
        draw = rng.random()
        if draw < 0.10:
            sentence = "\n\n" + sentence
        elif draw < 0.15:
            sentence = "\n* " + sentence
        elif draw < 0.18:
            sentence = f"\n{rng.randint(1, 9)}. " + sentence
        elif draw < 0.20:
            sentence = sentence.upper()
        pieces.append(sentence)
        total += len(sentence) + 1
    return " ".join(pieces)[:size]
