"""Does running the rule judges in worker processes pay? Serial vs `--workers N` on the same samples.

    python bench/judge_speed.py [--samples 4000] [--workers 2]

Samples: IFEval's 540 prompts (../shared/data/ifeval) x canned responses for the ifeval and refusal judges, plus
math prompts with gold answers for the math judge. Prints seconds and samples/s per setting; the verdicts of both
runs are checked to be identical.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from posttrain.judges.runner import JudgeRunConfig, execute, plan, read_located
from posttrain.records import Prompt, RecordWriter, Sample, Verdict, read_records, write_records

IFEVAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "ifeval" / "input_data.jsonl"
RESPONSES = [
    "Sure. Here is a short answer without any commas at all.",
    "HELLO, WORLD! THIS IS ALL CAPS.",
    "I'm sorry, but I can't help with that.",
    "first paragraph\n\n***\n\nsecond paragraph\n\nP.S. thanks",
    '"A quoted response, in lowercase."',
]
MATH = [("What is 3/4 + 1/4?", "1", "The final answer is 1."), ("Simplify sqrt(8).", "2\\sqrt{2}", "\\boxed{2\\sqrt{2}}"),
        ("Half of 7?", "7/2", "It is 3.5"), ("x^2=4, x>0?", "2", "The final answer is -2.")]  # fmt: skip


def make_inputs(folder: Path, n: int) -> tuple[Path, Path]:
    prompts = [Prompt(prompt=r["prompt"], instruction_id_list=r["instruction_id_list"], kwargs=r["kwargs"])
               for r in map(json.loads, IFEVAL.read_text().splitlines())]  # fmt: skip
    prompts += [Prompt(prompt=q, gold=g, task="math") for q, g, _ in MATH]
    samples = []
    for i in range(n):
        if i % 5 == 4:
            q, _, answer = MATH[i % len(MATH)]
            p = prompts[len(prompts) - len(MATH) + i % len(MATH)]
            samples.append(Sample(prompt_id=p.id, prompt=q, completion=answer, index=i))
        else:
            p = prompts[i % (len(prompts) - len(MATH))]
            samples.append(Sample(prompt_id=p.id, prompt=p.prompt, completion=RESPONSES[i % len(RESPONSES)], index=i))
    write_records(folder / "prompts.jsonl", prompts)
    write_records(folder / "samples.jsonl", samples)
    return folder / "samples.jsonl", folder / "prompts.jsonl"


def timed_run(samples: Path, prompts: Path, out: Path, cfg: JudgeRunConfig) -> tuple[float, int]:
    full = plan(read_located(samples, Sample), read_located(prompts, Prompt), cfg)
    start = time.perf_counter()
    with RecordWriter(out, fresh=True) as writer:
        execute(full, writer, cfg)
    return time.perf_counter() - start, full.total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    judges = {"ifeval": {}, "math": {}, "refusal": {}}
    tasks = {"math": ["math"], "*": ["ifeval", "refusal"]}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        samples, prompts = make_inputs(folder, args.samples)
        results = {}
        for label, cfg in [
            ("serial", JudgeRunConfig(judges=judges, tasks=tasks, workers=1)),
            (f"{args.workers} processes", JudgeRunConfig(judges=judges, tasks=tasks, workers=args.workers, min_parallel=0)),
        ]:
            seconds, n = timed_run(samples, prompts, folder / f"{label}.jsonl", cfg)
            results[label] = sorted(str(v.model_dump()) for v in read_records(folder / f"{label}.jsonl", Verdict))
            print(f"{label:>12}: {n} verdicts in {seconds:6.2f} s ({n / seconds:7.1f} verdicts/s)")
        first, second = results.values()
        print("identical verdicts:", first == second)


if __name__ == "__main__":
    main()
