"""`posttrain halt build`: the model's own answers -> fragments -> verdicts -> HALT's SFT targets, with
provenance.

    problems (Prompt records with ground truth)  --sample-->  samples (Sample records, resumable)
    each sample: split into fragments, grade each, build the target (`targets.build_target`)  -->  SFT records

Every input is read and checked before anything is written (a problem without ground truth, an unparseable
ground-truth step, a sample of an unknown problem: `file:line: what`, exit code 2). Records go to
`<out>.partial` and are renamed at the end; a rerun skips the samples already done. A grader that fails on
a sample (raises, or gives -1 for every fragment) writes nothing for it and is counted: the next run tries
it again.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from posttrain.atomic import atomic_write_text
from posttrain.errors import InputError
from posttrain.halt.domains import Domain
from posttrain.halt.fragments import Fragment
from posttrain.halt.graders import FragmentGrader
from posttrain.halt.targets import build_target
from posttrain.records import (
    Prompt,
    Record,
    RecordWriter,
    Sample,
    Text,
    content_id,
    parse_row,
)


class HaltExample(Record):
    """One SFT row (`prompt` + `completion`, read by `posttrain train sft`) and how HALT made it."""

    prompt: Text
    completion: str
    prompt_id: str
    sample_id: str
    domain: str
    threshold: float
    ordered: bool
    marker: str
    grader: str
    original: str  # the model's answer before HALT
    fragments: list[dict[str, Any]]  # text, verdict, why
    cut_at: int | None = None
    kept: int = 0
    abstained: bool = False
    correct_fraction: float | None = None
    truncated: bool = False
    _id_fields: ClassVar[tuple[str, ...]] = ("sample_id", "domain", "threshold", "marker", "grader")


def example_id(sample_id: str, domain: str, threshold: float, marker: str, grader: str) -> str:
    """The id `HaltExample` derives, known before grading: a rerun skips finished samples, ungraded."""
    return content_id(sample_id, domain, threshold, marker, grader)


def load_problems(path: Path, domain: Domain) -> list[Prompt]:
    """Prompt records that each carry the domain's ground truth; the first that does not is `file:line`."""
    from posttrain.records import iter_jsonl_rows, read_records

    if path.suffix == ".parquet":
        rows = list(enumerate(read_records(path, Prompt), start=1))
    else:
        rows = [(line, parse_row(row, Prompt, path, line)) for line, row in iter_jsonl_rows(path)]
    seen: dict[str, int] = {}
    for line, problem in rows:
        try:
            domain.check_ground_truth(problem)
        except ValueError as err:
            raise InputError(str(err), path, line) from None
        if problem.id in seen:
            raise InputError(f"the same problem as line {seen[problem.id]} (id {problem.id})", path, line)
        seen[problem.id] = line
    return [problem for _, problem in rows]


@dataclass
class Graded:
    fragments: list[Fragment]
    verdicts: list[int]
    why: list[str]
    failed: str = ""  # the grader failed on this item: why


def grade_answer(domain: Domain, grader: FragmentGrader, problem: Prompt, answer: str) -> Graded:
    fragments = domain.split(answer, problem)
    try:
        graded = grader.grade(problem, fragments)
    except Exception as err:  # any grader failure is this item's -1, never the run's end
        return Graded(
            fragments, [-1] * len(fragments), [""] * len(fragments), f"{type(err).__name__}: {err}"[:300]
        )
    if len(graded) != len(fragments):
        return Graded(fragments, [-1] * len(fragments), [""] * len(fragments),
                      f"grader gave {len(graded)} verdicts for {len(fragments)} fragments")  # fmt: skip
    verdicts, why = [v for v, _ in graded], [w for _, w in graded]
    if fragments and all(v == -1 for v in verdicts):
        return Graded(fragments, verdicts, why, f"grader could not verify any fragment ({why[0]})")
    return Graded(fragments, verdicts, why)


def read_samples(path: Path, problems: dict[str, Prompt]) -> list[Sample]:
    from posttrain.records import iter_jsonl_rows

    samples = []
    for line, row in iter_jsonl_rows(path):
        sample = parse_row(row, Sample, path, line)
        if sample.prompt_id not in problems:
            raise InputError(
                f"sample of prompt_id {sample.prompt_id!r}, which is not in the problems file", path, line
            )
        samples.append(sample)
    return samples


@dataclass
class BuildStats:
    samples: int = 0  # in the samples file
    examples: int = 0  # in the output (this run's and a resumed run's)
    new: int = 0
    resumed: int = 0
    grader_failed: int = 0  # this run: samples without an example because the grader failed on them
    first_failure: str = ""
    kept_whole: int = 0
    cut: int = 0
    abstained: int = 0
    fragments: int = 0
    fragments_correct: int = 0
    fragments_unverifiable: int = 0
    mean_correct_fraction: float | None = None

    def count_examples(self, examples: list[HaltExample]) -> None:
        """The figures of the whole output file, so a resumed run reports all of it."""
        self.examples = len(examples)
        fractions = [e.correct_fraction for e in examples if e.correct_fraction is not None]
        self.mean_correct_fraction = round(sum(fractions) / len(fractions), 4) if fractions else None
        for e in examples:
            verdicts = Counter(int(f["verdict"]) for f in e.fragments)
            self.fragments += sum(verdicts.values())
            self.fragments_correct += verdicts[1]
            self.fragments_unverifiable += verdicts[-1]
            if e.abstained:
                self.abstained += 1
            elif e.completion == e.original:
                self.kept_whole += 1
            else:
                self.cut += 1


def build_targets(
    problems: list[Prompt],
    samples: list[Sample],
    out: Path,
    domain: Domain,
    grader: FragmentGrader,
    threshold: float,
    marker: str,
) -> BuildStats:
    """Write one HALT example per sample (resumable) and `<out>.stats.json`; returns the counts."""
    from posttrain.records import read_records

    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"--threshold must be in [0, 1], got {threshold}")
    if not marker.strip():
        raise InputError("the abstention marker is empty")
    by_id = {p.id: p for p in problems}
    stats = BuildStats(samples=len(samples))
    with RecordWriter(out) as writer:
        for sample in samples:
            if example_id(sample.id, domain.name, threshold, marker, grader.name) in writer.done:
                stats.resumed += 1
                continue
            problem = by_id[sample.prompt_id]
            graded = grade_answer(domain, grader, problem, sample.completion)
            if graded.failed:
                stats.grader_failed += 1
                stats.first_failure = stats.first_failure or f"sample {sample.id}: {graded.failed}"
                continue
            truncated = sample.finish_reason == "length"
            target = build_target(sample.completion, graded.fragments, graded.verdicts, threshold=threshold,
                                  ordered=domain.ordered, marker=marker, truncated=truncated)  # fmt: skip
            writer.write(HaltExample(
                prompt=problem.prompt, completion=target.text, prompt_id=problem.id, sample_id=sample.id,
                domain=domain.name, threshold=threshold, ordered=domain.ordered, marker=marker, grader=grader.name,
                original=sample.completion, cut_at=target.cut_at, kept=target.kept, abstained=target.abstained,
                correct_fraction=target.correct_fraction, truncated=truncated,
                fragments=[{"text": f.text, "verdict": v, "why": w}
                           for f, v, w in zip(graded.fragments, graded.verdicts, graded.why, strict=True)],
            ))  # fmt: skip
            stats.new += 1
    stats.count_examples(read_records(out, HaltExample) if stats.new + stats.resumed else [])
    atomic_write_text(stats_path(out), json.dumps(vars(stats), indent=2) + "\n")
    return stats


def stats_path(out: Path) -> Path:
    return out.with_name(out.name + ".stats.json")


def default_samples_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".jsonl") + ".samples.jsonl")
