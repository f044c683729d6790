"""The file-level judge stage: planning checks, per-task judge sets, resume, processes == in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from posttrain.errors import InputError
from posttrain.judges.runner import JudgeRunConfig, execute, plan, read_located, summarize
from posttrain.records import Prompt, RecordWriter, Sample, Verdict, read_records, write_records

PROMPTS = [
    Prompt(prompt="Write without commas.", instruction_id_list=["punctuation:no_comma"], kwargs=[{}], gold="2"),
    Prompt(prompt="What is 1+1?", gold="2", task="math"),
]
ANSWERS = {0: ["no commas at all", "one, two"], 1: ["The final answer is 2.", "I'm sorry, but I can't do that."]}


def make_files(tmp_path: Path, n: int = 8, prompts: list[Prompt] = PROMPTS) -> tuple[Path, Path]:
    """n samples alternating between the two prompts, each with one good and one bad answer."""
    samples = [Sample(prompt_id=prompts[i % 2].id, prompt=prompts[i % 2].prompt, completion=ANSWERS[i % 2][(i // 2) % 2],
                      index=i) for i in range(n)]  # fmt: skip
    write_records(tmp_path / "prompts.jsonl", prompts)
    write_records(tmp_path / "samples.jsonl", samples)
    return tmp_path / "samples.jsonl", tmp_path / "prompts.jsonl"


def run(tmp_path: Path, cfg: JudgeRunConfig, out: Path) -> list[Verdict]:
    samples, prompts = make_files(tmp_path)
    full = plan(read_located(samples, Sample), read_located(prompts, Prompt), cfg)
    with RecordWriter(out) as writer:
        todo, _ = full.without(writer.done)
        execute(todo, writer, cfg)
    return read_records(out, Verdict)


def test_processes_give_the_same_verdicts_as_in_process(tmp_path):
    judges = {"ifeval": {}, "math": {}, "refusal": {}}
    inline = run(tmp_path, JudgeRunConfig(judges=judges, min_parallel=10**9), tmp_path / "inline.jsonl")
    pooled = run(tmp_path, JudgeRunConfig(judges=judges, workers=2, chunk_size=2, min_parallel=0), tmp_path / "pool.jsonl")
    key = lambda v: (v.sample_id, v.judge)  # noqa: E731
    assert sorted((v.model_dump() for v in inline), key=str) == sorted((v.model_dump() for v in pooled), key=str)
    assert len(inline) == 8 * 3 and len({key(v) for v in inline}) == 24


def test_task_judge_sets_and_the_summary(tmp_path):
    cfg = JudgeRunConfig(judges={"ifeval": {}, "math": {}, "refusal": {}},
                         tasks={"math": ["math"], "*": ["ifeval", "refusal"]})  # fmt: skip
    verdicts = run(tmp_path, cfg, tmp_path / "v.jsonl")
    by_judge = {name: [v for v in verdicts if v.judge == name] for name in ("ifeval", "math", "refusal")}
    assert [len(v) for v in by_judge.values()] == [4, 4, 4]
    rows = {r.judge: r for r in summarize(verdicts)}
    assert (rows["math"].counts[1], rows["math"].counts[0], rows["math"].mean_score) == (2, 2, 0.5)
    assert rows["ifeval"].counts[1] == 2 and rows["refusal"].counts[1] == 4
    assert "AND (mixture)" in rows


def test_resume_skips_what_is_written(tmp_path):
    samples, prompts = make_files(tmp_path)
    cfg = JudgeRunConfig(judges={"refusal": {}})
    out = tmp_path / "v.jsonl"
    full = plan(read_located(samples, Sample), read_located(prompts, Prompt), cfg)
    with pytest.raises(KeyboardInterrupt), RecordWriter(out) as writer:
        first = full.without(writer.done)[0]
        first.work["refusal"] = first.work["refusal"][:3]
        execute(first, writer, cfg)
        raise KeyboardInterrupt  # killed mid-stage: the partial file stays, the output does not exist yet
    assert not out.exists() and out.with_name("v.jsonl.partial").exists()
    with RecordWriter(out) as writer:
        todo, skipped = full.without(writer.done)
        assert (skipped, todo.total) == (3, 5)
        execute(todo, writer, cfg)
    assert len(read_records(out, Verdict)) == 8


def test_planning_errors_name_the_file_and_line(tmp_path):
    samples, prompts = make_files(tmp_path)
    located_samples = read_located(samples, Sample)
    bad = tmp_path / "bad_prompts.jsonl"
    write_records(bad, [PROMPTS[0], PROMPTS[1].model_copy(update={"gold": None})])
    with pytest.raises(InputError, match=r"bad_prompts.jsonl:2: prompt .* has no 'gold', which judge 'math' needs"):
        plan(located_samples, read_located(bad, Prompt), JudgeRunConfig(judges={"math": {}}))
    with pytest.raises(InputError, match="pass --prompts"):
        plan(located_samples, None, JudgeRunConfig(judges={"ifeval": {}}))
    with pytest.raises(InputError, match=r"samples.jsonl:1: prompt_id '.*' is not in"):
        plan(located_samples, read_located(prompts, Prompt)[1:], JudgeRunConfig(judges={"refusal": {}}))
    with pytest.raises(InputError, match="did you mean 'math'"):
        plan(located_samples, None, JudgeRunConfig(judges={"maths": {}}))
    with pytest.raises(InputError, match="has no option 'strict' \\(did you mean 'strict_format'\\?\\)"):
        plan(located_samples, None, JudgeRunConfig(judges={"math": {"strict": True}}))
    with pytest.raises(InputError, match="task 'x' lists judge 'code'"):
        plan(located_samples, None, JudgeRunConfig(judges={"refusal": {}}, tasks={"x": ["code"]}))


def test_bad_constraint_kwargs_are_reported_with_the_prompt_line(tmp_path):
    samples, prompts = make_files(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(prompts.read_text().replace('"kwargs": [{}]', '"kwargs": [{"bogus": 1}]'))
    with pytest.raises(InputError, match=r"bad.jsonl:1: prompt .*unknown kwarg 'bogus'"):
        plan(read_located(samples, Sample), read_located(bad, Prompt), JudgeRunConfig(judges={"ifeval": {}}))


def test_a_named_judge_of_another_type(tmp_path):
    cfg = JudgeRunConfig(judges={"strict_math": {"type": "math", "strict_format": True}})
    verdicts = run(tmp_path, cfg, tmp_path / "v.jsonl")
    assert {v.judge for v in verdicts} == {"strict_math"}


def test_forked_workers_from_the_cli_match_in_process(tmp_path):
    """In a fresh interpreter (no torch loaded) the workers are forked; their verdicts equal the in-process ones."""
    import subprocess
    import sys

    samples, prompts = make_files(tmp_path, n=40)
    inline = run(tmp_path, JudgeRunConfig(judges={"ifeval": {}, "math": {}, "refusal": {}},
                                          tasks={"math": ["math"], "*": ["ifeval", "refusal"]}), tmp_path / "a.jsonl")
    code = (
        "import sys\nfrom posttrain.cli import judge, main\n"
        "import posttrain.judges.runner as r\n"
        "assert r._mp_context().get_start_method() == 'fork', r._mp_context()\n"
        "if not any(c.name == 'judge' for c in main.app.registered_commands): judge.register(main.app)\n"
        "sys.exit(main.main(sys.argv[1:]))"
    )
    args = ["judge", "--samples", str(samples), "--prompts", str(prompts), "--judges", "ifeval,math,refusal",
            "--out", str(tmp_path / "b.jsonl"), "--workers", "2", "chunk_size=4", "min_parallel=0",
            "tasks={math: [math], '*': [ifeval, refusal]}"]  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    forked = read_records(tmp_path / "b.jsonl", Verdict)
    assert sorted(str(v.model_dump()) for v in forked) == sorted(str(v.model_dump()) for v in inline)


def test_judge_files_is_the_stage_and_equals_the_in_memory_judge(tmp_path):
    """`posttrain run` and `posttrain judge` share `judge_files`; its verdicts are the library judge's, and a rerun
    judges nothing new."""
    from posttrain.judges import get_judge, judge_samples
    from posttrain.judges.runner import judge_files

    samples, prompts = make_files(tmp_path)
    cfg = JudgeRunConfig(judges={"ifeval": {"mode": "fixed"}})
    full, todo, skipped = judge_files(samples, prompts, tmp_path / "v.jsonl", cfg)
    assert (full.total, todo.total, skipped) == (8, 8, 0)
    written = read_records(tmp_path / "v.jsonl", Verdict)
    by_id = {p.id: p for p in read_records(prompts, Prompt)}
    expected = judge_samples(get_judge("ifeval", mode="fixed"), read_records(samples, Sample), by_id)
    assert sorted((v.model_dump() for v in written), key=str) == sorted((v.model_dump() for v in expected), key=str)
    _, todo, skipped = judge_files(samples, prompts, tmp_path / "v.jsonl", cfg)
    assert (todo.total, skipped) == (0, 8)
