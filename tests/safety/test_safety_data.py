"""Guard rows (`GuardExample`), their check against a taxonomy, and posttrain's seed set."""

from __future__ import annotations

from collections import Counter

import pytest

from posttrain.errors import InputError
from posttrain.judges.llama_guard import LG3_CATEGORIES, custom_categories
from posttrain.records import parse_row
from posttrain.safety.records import GuardExample, check_taxonomy
from posttrain.safety.seed_data import attack_seed_prompts, benign_prompts, seed_guard_examples


def test_prompt_and_response_rows_and_their_targets():
    prompt_row = GuardExample.model_validate({"prompt": "Hi", "label": "safe"})
    assert prompt_row.role == "User" and prompt_row.target == "safe"
    response_row = GuardExample.model_validate(
        {"prompt": "Hi", "response": "Sure, here is how.", "label": "unsafe", "categories": ["S1", "S10"]}
    )
    assert response_row.role == "Agent" and response_row.target == "unsafe\nS1,S10"
    assert [m.role for m in response_row.messages] == ["user", "assistant"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": "Hi", "label": "unsafe"}, "must name the violated categories"),
        ({"prompt": "Hi", "label": "safe", "categories": ["S1"]}, "a 'safe' row names no categories"),
        ({"prompt": "Hi", "label": "harmful"}, "field 'label'"),
        ({"prompt": "Hi", "label": "unsafe", "categories": ["S1", "S1"]}, "repeat a code"),
        ({"messages": [{"role": "assistant", "content": "x"}], "label": "safe"}, "alternate"),
    ],
)
def test_bad_rows_name_the_file_and_line(row, message):
    with pytest.raises(InputError, match=rf"guard.jsonl:7: .*{message}"):
        parse_row(row, GuardExample, "guard.jsonl", 7)


def test_unknown_categories_point_at_the_row_and_the_right_code():
    rows = [GuardExample.model_validate({"prompt": "Hi", "label": "unsafe", "categories": c})
            for c in (["S1"], ["S15"], ["Violent Crimes"])]  # fmt: skip
    check_taxonomy(rows[:1], LG3_CATEGORIES, "g.jsonl", [3])
    with pytest.raises(InputError, match=r"g.jsonl:9: unknown category 'S15'.*S1\.\.S14"):
        check_taxonomy(rows[:2], LG3_CATEGORIES, "g.jsonl", [3, 9])
    with pytest.raises(InputError, match="'Violent Crimes' is the name of S1: write the code"):
        check_taxonomy(rows[2:], LG3_CATEGORIES, "g.jsonl", [4])
    with pytest.raises(InputError, match="unknown category 'S2'"):  # a custom taxonomy of one category
        check_taxonomy(
            [rows[0].model_copy(update={"categories": ["S2"]})], custom_categories(["Spam."]), "g", [1]
        )


def test_the_seed_set_is_reproducible_labelled_by_the_taxonomy_and_split_by_construction():
    rows = seed_guard_examples(0)
    assert [r.model_dump() for r in rows] == [r.model_dump() for r in seed_guard_examples(0)]
    assert [r.id for r in rows] != [r.id for r in seed_guard_examples(1)]  # the seed picks the responses
    assert len({r.id for r in rows}) == len(rows) == 480
    check_taxonomy(rows, LG3_CATEGORIES, "seed", None)
    counts = Counter((r.split, r.kind) for r in rows)
    assert counts[("heldout", "lookalike")] == 28 and counts[("train", "lookalike")] == 84
    assert {c for r in rows for c in r.categories} == {c.code for c in LG3_CATEGORIES}
    assert any(len(r.categories) == 2 for r in rows if r.split == "heldout")
    assert all(r.label == "safe" for r in rows if r.kind in ("lookalike", "refusal"))
    held_prompts = {r.messages[0].content for r in rows if r.split == "heldout"}
    assert not held_prompts & {r.messages[0].content for r in rows if r.split == "train"}


def test_red_teaming_prompts_from_the_seed_set():
    train, heldout, benign = attack_seed_prompts("train"), attack_seed_prompts("heldout"), benign_prompts()
    assert (len(train), len(heldout), len(benign)) == (120, 64, 56)
    assert all(p.task == "safety" and p.model_extra["categories"] for p in train)
    assert all(p.task == "benign" for p in benign)
