from __future__ import annotations

import random

import pytest

from posttrain.constraint_ids import CGPO_23
from posttrain.constraints import REGISTRY, get_constraint
from posttrain.errors import InputError
from posttrain.prompts import combos


@pytest.fixture(scope="module")
def table():
    return combos.conflict_table({cid: get_constraint(cid).conflicts for cid in REGISTRY})


def test_conflicts_are_symmetric_and_extend_ifeval(table):
    for a, others in table.items():
        assert a not in others
        for b in others:
            assert a in table[b]
    assert "detectable_format:multiple_sections" in table["change_case:english_lowercase"]  # ours
    assert "change_case:english_lowercase" in table["change_case:capital_word_frequency"]  # IFEval's
    assert "length_constraints:number_paragraphs" in table["length_constraints:nth_paragraph_first_word"]


def test_parse_range():
    assert combos.parse_range("3") == (3, 3)
    assert combos.parse_range("1-5") == (1, 5)
    for bad in ("0-2", "5-3", "a", "1-2-3", ""):
        with pytest.raises(InputError):
            combos.parse_range(bad)


def test_largest_compatible_set(table):
    assert combos.largest_compatible_set(["detectable_format:json_format", "detectable_format:title"], table) == 1
    assert combos.largest_compatible_set(CGPO_23, table) >= 10
    with pytest.raises(InputError, match="at most 1"):
        combos.check_feasible(["detectable_format:json_format", "startend:quotation"], table, 2)


def test_sampled_combinations_are_compatible(table):
    rng = random.Random(0)
    for _ in range(300):
        k = rng.randint(1, 6)
        ids = combos.sample_combination(rng, list(CGPO_23), k, table)
        assert ids is not None and len(ids) == k
        assert combos.compatible(ids, table)
