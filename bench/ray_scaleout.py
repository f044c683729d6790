"""Single process vs Ray on this machine, in one run: judging (IF + code judges) and sampling, with the parallel
efficiency, Ray's overhead per task, and a PROJECTION (not a measurement) for 8 and 64 workers.

    python bench/ray_scaleout.py [--samples 50000] [--code-share 0.1] [--prompts 64] [--model embedded]
    nice -n 19 python bench/ray_scaleout.py --smoke     # 400 samples, a tiny random model, 8 prompts

Judging: synthetic verifiable prompts with canned responses for the ifeval judge, plus code prompts with unit
tests for the code judge (half the solutions pass). Sampling: the recipe's sample stage on `--prompts` prompts,
n=4, 48 tokens. Both executors' outputs are compared byte for byte. The projection assumes the measured per-sample
cost and per-task overhead hold on every worker and that the driver (reading, writing records) is not the limit;
it is arithmetic, labelled as such, never a run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from posttrain.distributed.cluster import RaySection
from posttrain.records import Prompt, Sample, write_records

RESPONSES = ["Sure. Here is a short answer without any commas at all.", "HELLO, WORLD! THIS IS ALL CAPS.",
             "first paragraph\n\n***\n\nsecond paragraph\n\nP.S. thanks", '"A quoted response, in lowercase."']  # fmt: skip
GOOD = "```python\ndef add(a, b):\n    return a + b\n```"
BAD = "```python\ndef add(a, b):\n    return a - b\n```"


def judging_inputs(folder: Path, n: int, code_share: float) -> tuple[Path, Path]:
    from posttrain.prompts.synth import SynthConfig, synthesize

    if_prompts, _ = synthesize(SynthConfig(n=200, constraints="1-3", seed=0))
    code = Prompt(prompt="Write add(a, b).", gold="assert add(1, 2) == 3\nassert add(-1, 1) == 0", task="code")
    samples = []
    for i in range(n):
        if i < int(n * code_share):
            samples.append(Sample(prompt_id=code.id, prompt=code.prompt, completion=GOOD if i % 2 else BAD, index=i))
        else:
            p = if_prompts[i % len(if_prompts)]
            samples.append(Sample(prompt_id=p.id, prompt=p.prompt, completion=RESPONSES[i % len(RESPONSES)], index=i))
    write_records(folder / "prompts.jsonl", [*if_prompts, code])
    write_records(folder / "samples.jsonl", samples)
    return folder / "samples.jsonl", folder / "prompts.jsonl"


def task_overhead(tasks: int = 400) -> float:
    """Seconds per empty Ray task, submitted and collected in one wave (what a batch pays besides its work)."""
    import ray

    noop = ray.remote(lambda: None)
    ray.get([noop.remote() for _ in range(20)])  # warm the workers
    start = time.perf_counter()
    ray.get([noop.remote() for _ in range(tasks)])
    return (time.perf_counter() - start) / tasks


def bench_judging(folder: Path, n: int, code_share: float, section: RaySection, cores: int) -> float:
    from posttrain.distributed.judging import judge_files_on_ray
    from posttrain.judges.runner import JudgeRunConfig, judge_files

    samples, prompts = judging_inputs(folder, n, code_share)
    cfg = JudgeRunConfig(judges={"ifeval": {}, "code": {"workers": 1}}, tasks={"code": ["code"], "*": ["ifeval"]},
                         min_parallel=10**12)  # fmt: skip
    start = time.perf_counter()
    judge_files(samples, prompts, folder / "single.jsonl", cfg)
    single = time.perf_counter() - start
    start = time.perf_counter()
    judge_files_on_ray(samples, prompts, folder / "ray.jsonl", cfg, section)
    on_ray = time.perf_counter() - start
    same = verdicts(folder / "single.jsonl") == verdicts(folder / "ray.jsonl")
    print(f"judging {n} samples ({code_share:.0%} code): single process {single:.1f} s ({n / single:,.0f}/s), "
          f"Ray on {cores} CPUs {on_ray:.1f} s ({n / on_ray:,.0f}/s); speed-up {single / on_ray:.2f}x, parallel "
          f"efficiency {single / on_ray / cores:.0%}; identical verdicts: {same}")  # fmt: skip
    return single / n  # seconds of work per sample, one core


def verdicts(path: Path) -> list[tuple[str, int, float | None]]:
    """(id, value, score) in file order: the code judge's detail holds the sandbox's wall time, which varies."""
    from posttrain.records import Verdict, read_records

    return [(v.id, v.value, v.score) for v in read_records(path, Verdict)]


def bench_sampling(folder: Path, model: str, n_prompts: int, cores: int) -> None:
    from posttrain.distributed.sampling import sample_prompts_on_ray
    from posttrain.models import SamplingParams, load_backend
    from posttrain.prompts.synth import SynthConfig, synthesize
    from posttrain.sampling import sample_prompts

    prompts, _ = synthesize(SynthConfig(n=n_prompts, constraints="1-2", seed=1))
    params = SamplingParams(max_new_tokens=48, temperature=0.8, top_p=0.95, seed=0)
    backend = load_backend(model, threads=1, dtype="float32", rows=8 * 4)  # one thread: what each Ray actor gets
    start = time.perf_counter()
    sample_prompts(backend, prompts, folder / "s_single.jsonl", 4, params, model, 8)
    single = time.perf_counter() - start
    start = time.perf_counter()
    sample_prompts_on_ray(model, prompts, folder / "s_ray.jsonl", 4, params, 8, RaySection(), "float32")
    on_ray = time.perf_counter() - start
    same = (folder / "s_single.jsonl").read_bytes() == (folder / "s_ray.jsonl").read_bytes()
    print(f"sampling {n_prompts} prompts x 4: single process (1 thread) {single:.1f} s, Ray ({cores} actors x 1 "
          f"CPU, model load included) {on_ray:.1f} s; speed-up {single / on_ray:.2f}x; identical samples: {same}")  # fmt: skip


def projection(per_sample: float, overhead: float, batch: int) -> None:
    per_batch = per_sample * batch + overhead
    for workers in (8, 64):
        print(f"PROJECTION (arithmetic, not a run): {workers} workers x batch {batch} -> "
              f"~{workers * batch / per_batch:,.0f} verdicts/s, 50,000 samples in ~{50_000 * per_batch / (workers * batch):.1f} s")  # fmt: skip


def tiny_model(folder: Path) -> str:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from posttrain.models.embedded import embedded_model_dir

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--code-share", type=float, default=0.1)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--batch", type=int, default=256, help="samples per judge task (ray.judge_batch)")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    import ray

    cores = len(os.sched_getaffinity(0))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # A worker that imports torch on a busy machine can take over Ray's default 60 s to register.
    os.environ.setdefault("RAY_worker_register_timeout_seconds", "600")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.smoke:
            args.samples, args.prompts, args.batch = 400, 8, 64
            args.model = tiny_model(folder / "tiny")
        ray.init(num_cpus=cores, include_dashboard=False, configure_logging=False, log_to_driver=False)
        try:
            overhead = task_overhead()
            print(f"Ray: {cores} CPUs, {overhead * 1e3:.2f} ms per empty task")
            per_sample = bench_judging(folder, args.samples, args.code_share, RaySection(judge_batch=args.batch), cores)
            bench_sampling(folder, args.model, args.prompts, cores)
            projection(per_sample, overhead, args.batch)
        finally:
            ray.shutdown()


if __name__ == "__main__":
    main()
