"""The named constraint ids agree with the checker registry, so a constraint added without its name fails here."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from typing import Any

import pytest

from posttrain import constraint_ids
from posttrain.constraint_ids import (
    AT_LEAST,
    CGPO_23,
    IFBENCH_58,
    IFEVAL_25,
    LESS_THAN,
    NUMBER_WORDS,
    RELATIONS,
    REPEAT_PROMPT,
    RESPONSE_LANGUAGE,
)
from posttrain.constraints import REGISTRY, ifbench_format, ifbench_words, ifeval
from posttrain.constraints.base import compare
from posttrain.errors import InputError


def named_ids() -> dict[str, str]:
    """Every id constant of the module (an upper-case name whose value is a `group:name` id), name -> id."""
    return {
        name: value
        for name, value in vars(constraint_ids).items()
        if name.isupper() and isinstance(value, str) and ":" in value
    }


def test_every_registered_constraint_id_has_a_name() -> None:
    unnamed = sorted(set(REGISTRY) - set(named_ids().values()))
    assert not unnamed, f"add these ids to posttrain/constraint_ids.py: {unnamed}"


def test_every_named_id_is_registered_under_one_name() -> None:
    names = named_ids()
    assert len(set(names.values())) == len(names), "two names for one id"
    assert set(names.values()) <= set(REGISTRY)


def test_the_ifeval_group_is_exactly_the_ifeval_checkers() -> None:
    registered_from_ifeval = {cid for cid, cls in REGISTRY.items() if cls.__module__ == ifeval.__name__}
    assert len(IFEVAL_25) == len(set(IFEVAL_25)) == 25
    assert set(IFEVAL_25) == registered_from_ifeval


def test_the_ifeval_group_is_the_references_registry(reference: Any) -> None:
    assert IFEVAL_25 == tuple(reference.registry.INSTRUCTION_DICT)


def test_the_ifbench_group_is_exactly_the_ifbench_checkers() -> None:
    modules = {ifbench_words.__name__, ifbench_format.__name__}
    registered = {cid for cid, cls in REGISTRY.items() if cls.__module__ in modules}
    assert len(IFBENCH_58) == len(set(IFBENCH_58)) == 58
    assert set(IFBENCH_58) == registered
    assert not set(IFBENCH_58) & set(IFEVAL_25)


def test_the_ifbench_group_is_the_references_registry(ifbench_reference: Any) -> None:
    assert IFBENCH_58 == tuple(ifbench_reference.registry.INSTRUCTION_DICT)


def test_cgpo_23_is_ifeval_without_response_language_and_repeat_prompt() -> None:
    assert len(CGPO_23) == len(set(CGPO_23)) == 23
    assert set(CGPO_23) == set(IFEVAL_25) - {RESPONSE_LANGUAGE, REPEAT_PROMPT}


def test_the_checkers_sample_and_accept_exactly_the_named_relations() -> None:
    constraint = REGISTRY[NUMBER_WORDS]()
    sampled = {constraint.sample_kwargs(random.Random(seed))["relation"] for seed in range(50)}
    assert sampled == set(RELATIONS) == {LESS_THAN, AT_LEAST}
    for relation in RELATIONS:
        constraint.validate({"num_words": 10, "relation": relation})
    with pytest.raises(InputError, match="relation"):
        constraint.validate({"num_words": 10, "relation": "more than"})
    # "less than" is a strict cap, "at least" an inclusive floor
    assert [compare(n, LESS_THAN, 3) for n in (2, 3)] == [True, False]
    assert [compare(n, AT_LEAST, 3) for n in (2, 3)] == [False, True]


# In a fresh interpreter: this test process has imported the checkers already.
PROBE = """
import json, sys
import posttrain.constraint_ids, posttrain.prompts.difficulty
print(json.dumps(sorted(name for name in ("posttrain.constraints", "nltk") if name in sys.modules)))
"""


def test_the_names_load_without_the_checkers() -> None:
    # `posttrain prompts stats` scores difficulty by id; loading every checker (and NLTK) for that would cost it
    # most of a second of start-up.
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout) == []
