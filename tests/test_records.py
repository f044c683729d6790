from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from posttrain.errors import InputError
from posttrain.records import (
    GroupPair,
    Pair,
    Prompt,
    RecordWriter,
    Sample,
    Verdict,
    content_id,
    read_records,
    write_records,
)


def test_content_ids_are_stable_and_ignore_key_order():
    assert content_id({"a": 1, "b": 2}) == content_id({"b": 2, "a": 1})
    a = Prompt(prompt="Write a poem.", instruction_id_list=["punctuation:no_comma"])
    b = Prompt.model_validate(
        {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}], "prompt": "Write a poem."}
    )
    assert a.id == b.id and len(a.id) == 16
    assert Prompt(prompt="Write a poem!").id != a.id


def test_given_id_is_kept_and_unknown_fields_survive_a_round_trip(tmp_path: Path):
    p = Prompt.model_validate({"id": "custom", "prompt": "hi", "key": 1000})
    write_records(tmp_path / "p.jsonl", [p])
    back = read_records(tmp_path / "p.jsonl", Prompt)[0]
    assert back.id == "custom" and back.model_dump()["key"] == 1000


def test_pair_accepts_trl_standard_and_conversational_formats():
    Pair(prompt="Say hi", chosen="hi", rejected="Hello!")
    conv = Pair(
        prompt=[{"role": "user", "content": "Say hi"}],
        chosen=[{"role": "assistant", "content": "hi"}],
        rejected=[{"role": "assistant", "content": "Hello!"}],
    )
    assert conv.model_dump()["chosen"] == [{"role": "assistant", "content": "hi"}]


def test_group_pair_holds_k_responses_a_side_and_refuses_empty_groups(tmp_path: Path):
    group = GroupPair(prompt="Say hi", chosen=["hi", [{"role": "assistant", "content": "hey"}]], rejected=["Hello!"])
    assert len(group.chosen) == 2 and group.id == GroupPair(**group.model_dump(exclude={"id"})).id
    bad = {
        "'chosen' holds no responses": {"chosen": [], "rejected": ["b"]},
        "'chosen' response 2 of 2 is empty": {"chosen": ["a", "  "], "rejected": ["b"]},
        "field 'chosen.0': expected a string or a list of {role, content} messages": {
            "chosen": [{"role": "assistant", "content": "a"}], "rejected": ["b"],
        },
        "field 'chosen': Input should be a valid list": {"chosen": "a", "rejected": ["b"]},
    }  # fmt: skip
    path = tmp_path / "groups.jsonl"
    for message, row in bad.items():
        path.write_text(json.dumps({"prompt": "p", "chosen": ["a"], "rejected": ["b"]}) + "\n" + json.dumps(
            {"prompt": "p", **row}) + "\n")  # fmt: skip
        with pytest.raises(InputError, match=f"groups.jsonl:2: invalid GroupPair: {re.escape(message)}"):
            read_records(path, GroupPair)


def test_verdict_value_must_be_one_zero_or_minus_one():
    Verdict(sample_id="s", judge="ifeval", value=-1)
    with pytest.raises(ValueError):
        Verdict(sample_id="s", judge="ifeval", value=2)


def test_ifeval_input_rows_are_valid_prompts(ifeval_input: Path):
    rows = read_records(ifeval_input, Prompt)
    assert len(rows) == 540 and len({r.id for r in rows}) == 540


# ------------------------------------------------------------------------------------------- bad input


def _bad(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        (b'{"prompt": "ok"}\n{"prompt": "broken"\n', 2, "malformed JSON"),
        (b'{"prompt": "ok"}\n{"instruction_id_list": []}\n', 2, "missing field 'prompt'"),
        (b'{"prompt": 42}\n', 1, "field 'prompt': expected a string"),
        (b'{"prompt": "ok", "instruction_id_list": ["a"], "kwargs": [{}, {}]}\n', 1, "one kwargs dict per"),
        (b'{"prompt": "caf\xe9"}\n', 1, "not valid UTF-8"),
        (b"[1, 2]\n", 1, "expected a JSON object"),
        (b'{"prompt": "' + b"x" * (10 * 1024 * 1024) + b'"}\n', 1, "longer than 8 MiB"),
    ],
)
def test_bad_rows_name_file_line_and_problem(tmp_path: Path, content: bytes, line: int, words: str):
    path = _bad(tmp_path, content)
    with pytest.raises(InputError) as info:
        read_records(path, Prompt)
    assert info.value.message.startswith(f"{path}:{line}: ")
    assert words in info.value.message


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_file_is_an_error(tmp_path: Path, content: bytes):
    with pytest.raises(InputError, match="file is empty"):
        read_records(_bad(tmp_path, content), Prompt)


def test_missing_file_is_an_error(tmp_path: Path):
    with pytest.raises(InputError, match="file not found"):
        read_records(tmp_path / "nope.jsonl", Prompt)


def test_parquet_round_trip_and_row_errors(tmp_path: Path):
    samples = [Sample(prompt_id="p", prompt="q", completion=f"a{i}", index=i) for i in range(3)]
    write_records(tmp_path / "s.parquet", samples)
    assert [s.id for s in read_records(tmp_path / "s.parquet", Sample)] == [s.id for s in samples]
    with pytest.raises(InputError, match=r"s.parquet row:1: invalid Pair"):
        read_records(tmp_path / "s.parquet", Pair)


# ------------------------------------------------------------------------------------ atomic, resumable


def test_writer_leaves_no_output_when_the_stage_fails(tmp_path: Path):
    out = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError), RecordWriter(out) as writer:
        writer.write(Prompt(prompt="one"))
        raise RuntimeError("crash mid-stage")
    assert not out.exists()
    with RecordWriter(out) as writer:  # the rerun resumes: "one" is already done
        assert len(writer.done) == 1
        assert not writer.write(Prompt(prompt="one"))
        assert writer.write(Prompt(prompt="two"))
    assert [p.prompt for p in read_records(out, Prompt)] == ["one", "two"]
    assert not out.with_name("out.jsonl.partial").exists()


def test_rerun_of_a_finished_stage_keeps_the_file_identical(tmp_path: Path):
    out = tmp_path / "out.jsonl"
    write_records(out, [Prompt(prompt=str(i)) for i in range(5)])
    before = out.read_bytes()
    with RecordWriter(out) as writer:
        for i in range(5):
            writer.write(Prompt(prompt=str(i)))
    assert out.read_bytes() == before


def test_torn_last_line_from_kill_is_dropped_on_resume(tmp_path: Path):
    out = tmp_path / "out.jsonl"
    partial = tmp_path / "out.jsonl.partial"
    partial.write_text(json.dumps(Prompt(prompt="a").model_dump()) + "\n" + '{"id": "torn", "pro')
    with RecordWriter(out) as writer:
        assert writer.done == {Prompt(prompt="a").id}
        writer.write(Prompt(prompt="b"))
    assert [p.prompt for p in read_records(out, Prompt)] == ["a", "b"]


def test_kill_9_mid_write_then_resume_gives_the_same_file(tmp_path: Path):
    script = (
        "import sys, time\n"
        "from posttrain.records import Prompt, RecordWriter\n"
        "with RecordWriter(sys.argv[1]) as w:\n"
        "    for i in range(200):\n"
        "        w.write(Prompt(prompt=f'p{i}'))\n"
        "        if i == 50 and sys.argv[2] == 'slow':\n"
        "            print('ready', flush=True); time.sleep(60)\n"
    )
    killed = tmp_path / "killed.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(killed), "slow"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not killed.exists()
    subprocess.run([sys.executable, "-c", script, str(killed), "fast"], check=True)
    clean = tmp_path / "clean.jsonl"
    subprocess.run([sys.executable, "-c", script, str(clean), "fast"], check=True)
    assert killed.read_bytes() == clean.read_bytes()


def test_parquet_keeps_ifeval_kwargs_exactly(tmp_path: Path):
    prompts = [
        Prompt(
            prompt="a",
            instruction_id_list=["x", "y"],
            kwargs=[{}, {"num_words": 300, "relation": "at least"}],
        ),
        Prompt(prompt="b", instruction_id_list=["z"], kwargs=[{"keywords": ["k1", "k2"]}]),
    ]
    write_records(tmp_path / "p.parquet", prompts)
    back = read_records(tmp_path / "p.parquet", Prompt)
    assert [p.kwargs for p in back] == [p.kwargs for p in prompts] and [p.id for p in back] == [
        p.id for p in prompts
    ]
