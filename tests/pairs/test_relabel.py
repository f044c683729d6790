"""Hindsight relabeling: a prompt whose "at least" content constraints the answer misses is re-phrased with what
the answer does say; the answer then meets the new prompt, the other constraints keep their kwargs, and nothing is
relabeled from material the answer lacks."""

from __future__ import annotations

import random

from posttrain.constraints import check_all
from posttrain.pairs.relabel import content_words, relabel
from posttrain.pairs.targets import sft_targets
from posttrain.prompts.synth import phrase
from posttrain.records import Prompt, Sample

ANSWER = (
    "Lighthouses guide ships along rocky coasts. Each lighthouse has a lamp and a lens. "
    "Keepers once trimmed the lamp every night, and ships trusted the beam."
)


def _prompt(ids: list[str], kwargs: list[dict], base: str = "Write a short guide to lighthouses.") -> Prompt:
    text, _ = phrase(random.Random(0), base, ids, kwargs)
    return Prompt.model_validate(
        {"prompt": text, "instruction_id_list": ids, "kwargs": kwargs, "base_task": base}
    )


def test_missing_keywords_become_words_of_the_answer_and_the_answer_meets_the_new_prompt():
    p = _prompt(["keywords:existence", "punctuation:no_comma"], [{"keywords": ["whale", "ocean"]}, {}])
    q = relabel(p, ANSWER)
    assert q is not None and q.id != p.id and q.model_extra["relabeled_from"] == p.id
    keywords = q.kwargs[0]["keywords"]
    assert len(keywords) == 2 and all(k in ANSWER.lower() for k in keywords)
    assert all(k in content_words(ANSWER, set()) for k in keywords)  # no stopwords, no short words
    assert all(f"'{k}'" in q.prompt or f'"{k}"' in q.prompt or k in q.prompt for k in keywords)
    assert q.kwargs[1] == {} and q.instruction_id_list == p.instruction_id_list
    assert check_all(ANSWER, q.instruction_id_list[:1], q.kwargs[:1]) == [True]
    assert "whale" not in q.prompt and "Write a short guide to lighthouses." in q.prompt


def test_counts_are_relabeled_to_what_the_answer_reaches():
    ids = ["keywords:frequency", "keywords:letter_frequency", "length_constraints:number_words",
           "length_constraints:number_sentences"]  # fmt: skip
    kwargs = [{"keyword": "beacon", "frequency": 4, "relation": "at least"},
              {"letter": "z", "let_frequency": 3, "let_relation": "at least"},
              {"num_words": 200, "relation": "at least"}, {"num_sentences": 9, "relation": "at least"}]  # fmt: skip
    p = _prompt(ids, kwargs)
    q = relabel(p, ANSWER + " Zeal kept them awake.")
    assert q is not None
    frequency, letter, words, sentences = q.kwargs
    assert frequency["relation"] == "at least" and frequency["frequency"] >= 2
    assert letter == {"letter": "z", "let_frequency": 1, "let_relation": "at least"}
    assert words == {"num_words": 30, "relation": "at least"}  # 34 words, rounded down to a multiple of 5
    assert sentences == {"num_sentences": 4, "relation": "at least"}
    assert all(check_all(ANSWER + " Zeal kept them awake.", q.instruction_id_list, q.kwargs))


def test_nothing_is_relabeled_when_the_answer_already_complies_or_lacks_the_material():
    met = _prompt(["keywords:existence"], [{"keywords": ["lamp"]}])
    assert relabel(met, ANSWER) is None
    cap = _prompt(["length_constraints:number_words"], [{"num_words": 10, "relation": "less than"}])
    assert relabel(cap, ANSWER) is None  # caps are repair's job: cutting keeps the answer natural
    no_letter = _prompt(
        ["keywords:letter_frequency"], [{"letter": "q", "let_frequency": 2, "let_relation": "at least"}]
    )
    assert relabel(no_letter, ANSWER) is None
    no_base = Prompt(
        prompt="Mention whales.", instruction_id_list=["keywords:existence"], kwargs=[{"keywords": ["whale"]}]
    )
    assert relabel(no_base, ANSWER) is None


def test_relabeled_keywords_avoid_the_prompts_forbidden_words():
    p = _prompt(["keywords:existence", "keywords:forbidden_words"],
                [{"keywords": ["whale", "ocean", "storm"]}, {"forbidden_words": ["lamp", "ships", "lighthouses"]}])  # fmt: skip
    for seed in range(20):
        q = relabel(p, ANSWER, seed)
        assert q is not None and not set(q.kwargs[0]["keywords"]) & {"lamp", "ships", "lighthouses"}


def test_a_repeat_constraint_quotes_the_relabeled_request():
    p = _prompt(["keywords:existence", "combination:repeat_prompt"], [{"keywords": ["whale"]}, {}])
    q = relabel(p, ANSWER)
    assert q is not None and q.prompt.startswith(q.kwargs[1]["prompt_to_repeat"])
    assert "whale" not in q.kwargs[1]["prompt_to_repeat"]


def test_targets_with_relabel_carry_the_new_prompt_and_never_a_template_keyword_sentence():
    p = _prompt(["keywords:existence", "startend:quotation"], [{"keywords": ["whale"]}, {}])
    sample = Sample(prompt_id=p.id, prompt=p.prompt, completion=ANSWER, index=0, finish_reason="stop")
    rows, stats = sft_targets([sample], {p.id: p})
    assert "This is about whale." in rows[0]["completion"]  # repair alone appends the missing keyword
    rows, stats = sft_targets([sample], {p.id: p}, relabel=True)
    row = rows[0]
    assert row["origin"] == "repaired" and "This is about" not in row["completion"]
    assert row["relabeled_from"] == p.prompt and row["prompt"] != p.prompt and stats.relabeled == 1
    assert all(check_all(row["completion"], row["instruction_id_list"], row["kwargs"], mode="fixed"))
