"""Whole-process wall time, as a new user meets it: `posttrain --help`, and `posttrain eval ifeval` against the
reference IFEval checkers scoring the same responses in a process of their own.

    python bench/startup.py                              # 5 runs of each, 5 responses per IFEval prompt (2,690)
    nice -n 19 python bench/startup.py --runs 1 --per-prompt 1   # smoke run

Every figure is a fresh process timed from spawn to exit (imports, JIT, cache loads, worker pools and output
included); each command runs --runs times and the minimum and median are printed. Commands:

- `python -c pass`: the interpreter alone, the floor under every other line (site-packages' .pth files included).
- `posttrain --help` through the installed `posttrain` launcher, as typed (goal: < 0.3 s). Help and scoring a responses
  file (`eval ifeval|ifbench` without `--model`) run as is; other commands re-execute under jemalloc when it is
  installed (posttrain.cli.launch).
- `posttrain --version`, which re-executes, and again with POSTTRAIN_ALLOCATOR=system, which does not: the
  difference is what the re-execution costs every other command.
- `posttrain eval ifeval --data D --responses R --out O`: the command as documented, default workers.
- the reference: google-research's checkers as vendored in lm-eval (loaded by tests/constraints/ifeval_reference.py,
  as bench/ifeval_speed.py does), one process that reads the same two files, computes every row's strict and loose
  verdicts, and prints the four metrics (what the reference's `evaluation_main` does). Its loader builds NLTK's
  punkt data from posttrain's parameters, so that process also imports `posttrain.constraints` (a few percent of
  its time at most; it only makes the reference slower).

The responses are bench/ifeval_speed.py's (`build_jobs`: templated multi-block responses, unique per row). IFEval
matches responses to prompts by prompt text, so each response gets its own copy of its input row, with the response
number appended to the prompt. The four metrics of both sides are asserted equal before the ratios are printed.
Needs: pip install --no-deps lm-eval immutabledict, and ../shared/data/ifeval/input_data.jsonl.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HELP_GOAL_SECONDS = 0.3
EVAL_GOAL_RATIO = 10.0
METRICS = ("prompt_level_strict_acc", "prompt_level_loose_acc", "inst_level_strict_acc", "inst_level_loose_acc")


def posttrain_command() -> list[str]:
    """The installed console script (what a user types), else the module through the same launcher."""
    script = shutil.which("posttrain")
    return [script] if script else [sys.executable, "-m", "posttrain"]


def wall_times(command: Sequence[str], runs: int, env: Mapping[str, str] | None = None) -> list[float]:
    """Seconds from spawn to exit of `runs` fresh processes; a failing run stops the benchmark with its stderr."""
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seconds.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return seconds


def write_inputs(folder: Path, per_prompt: int, seed: int) -> tuple[Path, Path]:
    """IFEval input rows, one per response, and the responses, as `posttrain eval ifeval` reads them."""
    sys.path.insert(0, str(REPO))
    from bench.ifeval_speed import build_jobs

    data, responses = folder / "input_data.jsonl", folder / "responses.jsonl"
    with data.open("w", encoding="utf-8") as rows, responses.open("w", encoding="utf-8") as answers:
        for number, (row, text) in enumerate(build_jobs(per_prompt, seed)):
            prompt = f"{row['prompt']}\n\n(response {number})"
            rows.write(json.dumps({**row, "prompt": prompt}) + "\n")
            answers.write(json.dumps({"prompt": prompt, "response": text}) + "\n")
    return data, responses


def reference_main(data: Path, responses: Path) -> None:
    """The reference's whole job in this process: load its checkers, score every row strict and loose, print the
    four metrics as JSON."""
    sys.path.insert(0, str(REPO / "tests" / "constraints"))
    import ifeval_reference

    reference = ifeval_reference.load()
    logging.disable(logging.ERROR)  # the reference logs every failed language detection
    by_prompt = {}
    for line in responses.read_text(encoding="utf-8").splitlines():
        answer = json.loads(line)
        by_prompt[answer["prompt"]] = answer["response"]
    strict, loose = [], []
    for line in data.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        strict.append(reference.strict(row, by_prompt[row["prompt"]]))
        loose.append(reference.loose(row, by_prompt[row["prompt"]]))
    print(json.dumps(four_metrics(strict, loose)))


def four_metrics(strict: list[list[bool]], loose: list[list[bool]]) -> dict[str, float]:
    def rate(values: list[bool]) -> float:
        return sum(values) / len(values)

    return dict(zip(METRICS, (
        rate([all(v) for v in strict]), rate([all(v) for v in loose]),
        rate([x for v in strict for x in v]), rate([x for v in loose for x in v]),
    ), strict=True))  # fmt: skip


def check_same_metrics(reference_command: list[str], out: Path) -> None:
    """The timed runs discard output: one more reference run prints its metrics, compared with the command's."""
    printed = subprocess.run(reference_command, capture_output=True, text=True, check=True).stdout
    reference = json.loads(printed.strip().splitlines()[-1])
    ours = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    differ = {name: (reference[name], ours[name]) for name in METRICS if reference[name] != ours[name]}
    assert not differ, f"metrics differ (reference, posttrain): {differ}"


def report(label: str, seconds: list[float]) -> float:
    best, median = min(seconds), statistics.median(seconds)
    print(f"{label:<52}{best:>9.3f}{median:>9.3f}")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="Processes per command (min and median shown).")
    parser.add_argument("--per-prompt", type=int, default=5, help="Responses per IFEval prompt (538 prompts).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference-worker", nargs=2, type=Path, metavar=("DATA", "RESPONSES"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.reference_worker:
        reference_main(*args.reference_worker)
        return

    posttrain = posttrain_command()
    system_malloc = {**os.environ, "POSTTRAIN_ALLOCATOR": "system"}
    with tempfile.TemporaryDirectory(prefix="posttrain_startup_") as tmp:
        folder = Path(tmp)
        data, responses = write_inputs(folder, args.per_prompt, args.seed)
        count = sum(1 for _ in data.open(encoding="utf-8"))
        evaluate = [*posttrain, "eval", "ifeval", "--data", str(data), "--responses", str(responses),
                    "--out", str(folder / "out")]  # fmt: skip
        reference = [sys.executable, str(Path(__file__).resolve()), "--reference-worker", str(data), str(responses)]

        print(f"{' '.join(posttrain)}; {args.runs} runs each; wall seconds")
        print(f"{'command':<52}{'min':>9}{'median':>9}")
        report("python -c pass", wall_times([sys.executable, "-c", "pass"], args.runs))
        help_median = report("posttrain --help", wall_times([*posttrain, "--help"], args.runs))
        relaunched = report("posttrain --version", wall_times([*posttrain, "--version"], args.runs))
        as_is = report("posttrain --version (POSTTRAIN_ALLOCATOR=system)",
                       wall_times([*posttrain, "--version"], args.runs, system_malloc))  # fmt: skip
        ours = report(f"posttrain eval ifeval ({count} responses)", wall_times(evaluate, args.runs))
        theirs = report(f"reference checkers ({count} responses)", wall_times(reference, args.runs))
        check_same_metrics(reference, folder / "out")

    print("four metrics identical (strict and loose, prompt and instruction level)")
    print(f"posttrain --help: median {help_median:.3f} s (goal < {HELP_GOAL_SECONDS} s)")
    print(f"re-executing under jemalloc: {relaunched - as_is:+.3f} s by median")
    print(f"eval ifeval vs reference, whole process: {theirs / ours:.1f}x by median (goal >= {EVAL_GOAL_RATIO:.0f}x)")


if __name__ == "__main__":
    main()
