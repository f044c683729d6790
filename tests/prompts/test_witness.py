"""Self-check: every synthetic prompt is verifiable.

For every constraint type, a response built to satisfy its (task-fitted) kwargs passes `check` and one built to
violate them fails, over many seeds; and for generated prompts with 1-5 constraints, one response satisfies all
of them at once (so no combination the generator emits is contradictory)."""

from __future__ import annotations

import random

import pytest

from posttrain.constraint_ids import CGPO_23
from posttrain.constraints import REGISTRY, check_all, get_constraint
from posttrain.prompts.fit import fit_kwargs, make_plan
from posttrain.prompts.inventory import TASK_TYPES, TOPICS
from posttrain.prompts.synth import SynthConfig, Synthesizer
from posttrain.prompts.witness import satisfying_response, violating_response

IDS = sorted(cid for cid in REGISTRY if cid != "language:response_language" and cid in CGPO_23 + (
    "combination:repeat_prompt",))  # fmt: skip
SEEDS = 100


def fitted(cid: str, seed: int) -> dict:
    rng = random.Random(seed)
    task, topic = rng.choice(TASK_TYPES), rng.choice(TOPICS)
    kwargs = fit_kwargs(rng, [cid], [get_constraint(cid).sample_kwargs(rng)], make_plan(rng, task, topic.words))[0]
    if cid == "combination:repeat_prompt":
        kwargs = {"prompt_to_repeat": "Write a short poem about the sea, and keep it gentle."}
    return kwargs


def test_every_cgpo_type_and_repeat_prompt_is_covered():
    assert len(IDS) == 24


@pytest.mark.parametrize("cid", IDS)
def test_satisfying_response_passes_and_violating_fails(cid):
    constraint = get_constraint(cid)
    for seed in range(SEEDS):
        kwargs = fitted(cid, seed)
        good = satisfying_response([cid], [kwargs], random.Random(seed))
        bad = violating_response(cid, kwargs, random.Random(seed))
        assert constraint.check(good, **kwargs), (seed, kwargs, good)
        assert not constraint.check(bad, **kwargs), (seed, kwargs, bad)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_one_response_satisfies_every_constraint_of_a_generated_prompt(k):
    pool = list(CGPO_23) + ["combination:repeat_prompt"]
    synth = Synthesizer(SynthConfig(n=300, constraints=str(k), seed=k, ids=pool))
    for candidate in synth.run():
        response = satisfying_response(candidate.ids, candidate.kwargs, random.Random(0))
        verdicts = check_all(response, candidate.ids, candidate.kwargs)
        assert all(verdicts), (candidate.text, candidate.ids, candidate.kwargs, verdicts, response)


def test_prompts_on_seed_tasks_are_satisfiable(tmp_path):
    from posttrain.prompts.synth import read_seed_tasks, unverifiable

    seeds = tmp_path / "seeds.txt"
    seeds.write_text("Write a haiku about a quiet zoo at night.\nDraft an email to a jazz quartet asking for a quote.\n"
                     "Explain why the sky is blue.\nIs it worth learning Latin today?\n")  # fmt: skip
    synth = Synthesizer(SynthConfig(n=300, constraints="1-5", seed=9, seed_tasks=str(seeds)), read_seed_tasks(seeds))
    assert unverifiable(synth.run()) == []
