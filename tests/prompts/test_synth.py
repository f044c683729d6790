from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from posttrain.constraint_ids import CGPO_23
from posttrain.constraints import REGISTRY, get_constraint
from posttrain.errors import InputError
from posttrain.prompts import combos
from posttrain.prompts.dedup import text_hash
from posttrain.prompts.difficulty import difficulty
from posttrain.prompts.inventory import TASK_TYPES, TASKS_BY_NAME, TOPICS, infer_task_type
from posttrain.prompts.synth import SynthConfig, Synthesizer, read_seed_tasks, synthesize
from posttrain.records import Prompt


@pytest.fixture(scope="module")
def generated() -> list[Prompt]:
    records, _ = synthesize(SynthConfig(n=1500, constraints="1-5", seed=3))
    return records


def test_inventory_size():
    assert len(TOPICS) >= 39 and len({t.name for t in TOPICS}) == len(TOPICS)
    names = {t.name for t in TASK_TYPES}
    assert {"email", "story", "essay", "list", "dialogue", "explanation", "poem"} <= names
    for task in TASK_TYPES:
        assert all("{subject}" in template for template in task.templates)
        assert task.words[0] < task.words[1]


def test_records_are_ifeval_format_and_compatible(generated):
    table = combos.conflict_table({cid: get_constraint(cid).conflicts for cid in REGISTRY})
    for p in generated:
        assert p.source == "synth" and 1 <= len(p.instruction_id_list) <= 5
        assert len(p.kwargs) == len(p.instruction_id_list)
        assert set(p.instruction_id_list) <= set(CGPO_23)
        assert combos.compatible(p.instruction_id_list, table)
        for cid, kw in zip(p.instruction_id_list, p.kwargs, strict=True):
            get_constraint(cid).validate(kw)  # the library accepts every kwargs dict
        assert 0 < p.difficulty < 1
        Prompt.model_validate_json(p.model_dump_json())  # survives a round trip


def test_all_types_and_counts_appear(generated):
    counts = Counter(cid for p in generated for cid in p.instruction_id_list)
    assert set(counts) == set(CGPO_23)
    assert set(Counter(len(p.instruction_id_list) for p in generated)) == {1, 2, 3, 4, 5}
    assert len({p.model_extra["task_type"] for p in generated}) == len(TASK_TYPES)


def test_no_duplicates(generated):
    assert len({text_hash(p.text) for p in generated}) == len(generated)
    assert len({p.id for p in generated}) == len(generated)


def test_kwargs_fit_the_task(generated):
    for p in generated:
        task = TASKS_BY_NAME[p.model_extra["task_type"]]
        for cid, kw in zip(p.instruction_id_list, p.kwargs, strict=True):
            if cid == "length_constraints:number_words" and kw["relation"] == "at least":
                assert kw["num_words"] <= task.words[1]
            if cid == "length_constraints:number_words" and kw["relation"] == "less than":
                assert kw["num_words"] >= task.words[0]
            if cid == "detectable_format:number_bullet_lists":
                assert kw["num_bullets"] <= task.bullets[1]
            if cid == "detectable_format:constrained_response":
                assert task.name == "question"


def test_same_seed_same_prompts_and_prefix_property():
    a = Synthesizer(SynthConfig(n=50, seed=7)).run()
    b = Synthesizer(SynthConfig(n=200, seed=7)).run()
    c = Synthesizer(SynthConfig(n=50, seed=8)).run()
    assert [x.text for x in a] == [x.text for x in b[:50]]
    assert [x.text for x in a] != [x.text for x in c]


def test_difficulty_grows_with_constraints():
    easy, _ = synthesize(SynthConfig(n=200, constraints="1", seed=1))
    hard, _ = synthesize(SynthConfig(n=200, constraints="4-5", seed=1))
    mean = lambda ps: sum(p.difficulty for p in ps) / len(ps)  # noqa: E731
    assert mean(hard) > mean(easy) + 0.2
    assert difficulty([], []) == 0.0
    one = difficulty(["punctuation:no_comma"], [{}])
    assert difficulty(["punctuation:no_comma", "detectable_format:title"], [{}, {}]) > one


def test_seed_tasks_txt_and_jsonl(tmp_path: Path):
    txt = tmp_path / "tasks.txt"
    txt.write_text("# my tasks\nWrite a haiku about autumn leaves.\n\nDraft an email asking for a deadline extension.\n")
    tasks = read_seed_tasks(txt)
    assert [t.task.name for t in tasks] == ["poem", "email"]
    jsonl = tmp_path / "tasks.jsonl"
    jsonl.write_text('{"prompt": "Describe your favourite city park.", "task_type": "explanation"}\n')
    assert read_seed_tasks(jsonl)[0].task.name == "explanation"
    records, _ = synthesize(SynthConfig(n=40, constraints="1-2", seed=0, seed_tasks=str(txt)))
    assert all(p.model_extra["base_task"] in {t.text for t in tasks} for p in records)
    assert all(p.text.count("haiku") + p.text.count("email") >= 1 for p in records)


def test_seed_fraction_mixes_inventory(tmp_path: Path):
    txt = tmp_path / "tasks.txt"
    txt.write_text("Write a haiku about autumn leaves.\n")
    records, _ = synthesize(SynthConfig(n=100, seed=0, seed_tasks=str(txt), seed_fraction=0.3))
    seeded = sum(p.model_extra["topic"] == "seed" for p in records)
    assert 10 < seeded < 60


def test_weights_draw_the_named_types_more_often_and_none_changes_nothing():
    plain, _ = synthesize(SynthConfig(n=300, constraints="1-2", seed=4))
    weighted, _ = synthesize(SynthConfig(n=300, constraints="1-2", seed=4, weights={"startend:quotation": 4.0}))
    count = lambda ps: sum("startend:quotation" in p.instruction_id_list for p in ps)  # noqa: E731
    assert count(weighted) > 2 * count(plain) > 0
    unit, _ = synthesize(SynthConfig(n=300, constraints="1-2", seed=4, weights={}))
    assert [p.prompt for p in unit] == [p.prompt for p in plain]  # no weights: the unweighted draw, same prompts


def test_infer_task_type():
    assert infer_task_type("Write a limerick about a cat").name == "poem"
    assert infer_task_type("Summarize the plot").name == "generic"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (SynthConfig(ids=["punctuation:no_coma"]), "unknown constraint id"),
        (SynthConfig(constraints="4-2"), "empty"),
        (SynthConfig(ids=["detectable_format:json_format", "detectable_format:title"], constraints="2"), "at most 1"),
        (SynthConfig(n=0), "at least 1"),
        (SynthConfig(near_dup=1.5), "near_dup"),
        (SynthConfig(weights={"language:response_language": 2.0}), "not one of the constraint ids"),
        (SynthConfig(weights={"startend:quotation": 0.0}), "must be positive"),
    ],
)
def test_bad_config_is_input_error(config, message):
    with pytest.raises(InputError, match=message):
        Synthesizer(config)


def test_bad_seed_files(tmp_path: Path):
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(InputError, match="no tasks"):
        read_seed_tasks(empty)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"task_type": "poem"}\n')
    with pytest.raises(InputError, match="bad.jsonl:2"):
        read_seed_tasks(bad)
    typo = tmp_path / "typo.jsonl"
    typo.write_text('{"prompt": "ok", "task_type": "poen"}\n')
    with pytest.raises(InputError, match="did you mean 'poem'"):
        read_seed_tasks(typo)
    with pytest.raises(InputError, match="not found"):
        read_seed_tasks(tmp_path / "missing.txt")


def test_exhausted_space_is_an_error(tmp_path: Path):
    one = tmp_path / "one.txt"
    one.write_text("Write a haiku.\n")
    config = SynthConfig(n=500, constraints="1", seed=0, seed_tasks=str(one), ids=["punctuation:no_comma"],
                         max_attempts_per_prompt=3)  # fmt: skip
    with pytest.raises(InputError, match="too small"):
        synthesize(config)


def test_prompts_from_ifbench_types_quote_the_request_they_ask_to_repeat():
    from posttrain.constraint_ids import IFBENCH_58, REPEAT_CHANGE, REPEAT_SPAN
    from posttrain.constraints import check_all

    prompts, _ = synthesize(SynthConfig(n=300, ids=list(IFBENCH_58), constraints="1-2", seed=0))
    assert {cid for p in prompts for cid in p.instruction_id_list} == set(IFBENCH_58)
    repeats = 0
    for p in prompts:
        check_all("An answer.", p.instruction_id_list, p.kwargs)  # every kwargs set validates
        for cid, kwargs in zip(p.instruction_id_list, p.kwargs, strict=True):
            if cid in (REPEAT_CHANGE, REPEAT_SPAN):
                repeats += 1
                assert p.text.startswith(kwargs["prompt_to_repeat"]) and len(p.instruction_id_list) == 1
            if cid == REPEAT_SPAN:
                assert 1 <= kwargs["n_start"] < kwargs["n_end"] < len(kwargs["prompt_to_repeat"].split())
    assert repeats >= 2
