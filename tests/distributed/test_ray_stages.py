"""The sample and judge stages on a local Ray cluster (2 CPUs) against the single-process stages: the same bytes,
resume by id, a killed actor's batch retried, and bad cluster settings refused before anything is written."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

from posttrain.cli.main import main  # noqa: E402
from posttrain.distributed.cluster import RaySection, placeable_actors, probe  # noqa: E402
from posttrain.distributed.judging import judge_files_on_ray  # noqa: E402
from posttrain.distributed.sampling import sample_prompts_on_ray  # noqa: E402
from posttrain.errors import InputError  # noqa: E402
from posttrain.judges.runner import JudgeRunConfig, judge_files  # noqa: E402
from posttrain.models import SamplingParams, load_backend  # noqa: E402
from posttrain.models.backend import Completion  # noqa: E402
from posttrain.prompts.synth import SynthConfig, synthesize  # noqa: E402
from posttrain.records import Prompt, RecordWriter, Sample, read_records  # noqa: E402
from tests.train.conftest import tiny_llama  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "quickstart.yaml"
PARAMS = SamplingParams(max_new_tokens=6, temperature=0.9, top_p=0.95, seed=3)
N, BATCH = 2, 2


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoTokenizer

    from posttrain.models.embedded import embedded_model_dir

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    path = tmp_path_factory.mktemp("tiny-llama")
    tiny_llama(len(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def prompts() -> list[Prompt]:
    records, _ = synthesize(SynthConfig(n=7, constraints="1-2", seed=1))
    return records


@pytest.fixture(scope="module")
def local_samples(tiny_dir: Path, prompts: list[Prompt], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from posttrain.sampling import sample_prompts

    out = tmp_path_factory.mktemp("local") / "samples.jsonl"
    backend = load_backend(str(tiny_dir), threads=1, dtype="float32", rows=BATCH * N)  # as the stage loads it
    sample_prompts(backend, prompts, out, N, PARAMS, str(tiny_dir), BATCH)
    return out


def test_an_unreachable_address_is_a_clear_error_in_seconds(tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(InputError, match=rf"cannot reach the Ray cluster at 127.0.0.1:{port}: Connection refused"):
            probe(f"127.0.0.1:{port}")
        with pytest.raises(InputError, match="is not host:port"):
            probe("nowhere")
        # Its own process: this one may already be connected to the module's cluster, which connect() would reuse.
        command = [sys.executable, "-m", "posttrain", "run", str(RECIPE), f"runs_dir={tmp_path}", "executor=ray",
                   "--ray-address", f"127.0.0.1:{port}"]  # fmt: skip
        start = time.monotonic()
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert f"error: cannot reach the Ray cluster at 127.0.0.1:{port}: Connection refused" in proc.stderr
    assert time.monotonic() - start < 60 and not any(tmp_path.iterdir())


def _section(**overrides: Any) -> RaySection:
    return RaySection(**{"cpus_per_actor": 1, "judge_batch": 4, **overrides})


def test_sampling_on_ray_writes_the_single_process_file(cluster, tiny_dir, prompts, local_samples, tmp_path):
    out = tmp_path / "samples.jsonl"
    seen: list[int] = []
    written, total = sample_prompts_on_ray(str(tiny_dir), prompts, out, N, PARAMS, BATCH, _section(), "float32",
                                           lambda done, _tokens: seen.append(done))  # fmt: skip
    assert (written, total) == (2 * len(prompts), 2 * len(prompts))
    assert out.read_bytes() == local_samples.read_bytes()
    assert sum(seen) == len(prompts)  # the progress bar saw every prompt


@dataclass
class CrashOnce:
    """A backend factory whose backend kills its worker process on its first call (a marker file remembers it
    across the restart), as a node lost mid-batch would."""

    model_dir: str
    marker: str

    def __call__(self) -> Any:
        return _CrashingBackend(load_backend(self.model_dir, threads=1, dtype="float32"), Path(self.marker))


class _CrashingBackend:
    def __init__(self, inner: Any, marker: Path) -> None:
        self.inner, self.marker, self.name = inner, marker, inner.name

    def generate(self, prompts: list[Any], n: int, params: SamplingParams) -> list[list[Completion]]:
        if not self.marker.exists():
            self.marker.touch()
            os._exit(1)
        return self.inner.generate(prompts, n, params)


def test_a_rerun_resumes_and_a_killed_actors_batch_is_retried(cluster, tiny_dir, prompts, local_samples, tmp_path):
    out = tmp_path / "samples.jsonl"
    first_batch = local_samples.read_bytes().splitlines(keepends=True)[: N * BATCH]
    (tmp_path / "samples.jsonl.partial").write_bytes(b"".join(first_batch) + b'{"torn')  # killed mid-line
    crash = CrashOnce(str(tiny_dir), str(tmp_path / "crashed"))
    written, total = sample_prompts_on_ray(str(tiny_dir), prompts, out, N, PARAMS, BATCH, _section(actors=1),
                                           "float32", factory=crash)  # fmt: skip
    assert (tmp_path / "crashed").exists()  # the worker did die mid-stage, and its batch ran again
    assert (written, total) == (N * (len(prompts) - BATCH), N * len(prompts))  # the first batch was resumed
    assert out.read_bytes() == local_samples.read_bytes()
    ids = [s.id for s in read_records(out, Sample)]
    assert len(ids) == len(set(ids)) == N * len(prompts)  # no record lost or doubled


def test_judging_on_ray_writes_the_single_process_verdicts(cluster, prompts, local_samples, tmp_path):
    prompts_file = tmp_path / "prompts.jsonl"
    with RecordWriter(prompts_file) as writer:
        for p in prompts:
            writer.write(p)
    cfg = JudgeRunConfig(judges={"ifeval": {"mode": "fixed"}, "refusal": {}}, min_parallel=10**9)
    judge_files(local_samples, prompts_file, tmp_path / "local.jsonl", cfg)
    full, todo, skipped = judge_files_on_ray(local_samples, prompts_file, tmp_path / "ray.jsonl", cfg, _section())
    assert (todo.total, skipped) == (full.total, 0) and full.total == 2 * N * len(prompts)
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    again = judge_files_on_ray(local_samples, prompts_file, tmp_path / "ray.jsonl", cfg, _section())
    assert (again[1].total, again[2]) == (0, full.total)  # a rerun has nothing left to do


def test_resources_no_node_has_are_refused(cluster):
    assert placeable_actors(1, 0) == 2
    with pytest.raises(InputError, match="no node of the Ray cluster has 64 CPUs .*the largest has 2 CPUs"):
        placeable_actors(64, 0)
    with pytest.raises(InputError, match="1 GPUs"):
        placeable_actors(1, 1)


def test_the_run_command_refuses_a_cluster_it_cannot_use_before_writing(cluster, tmp_path, capsys):
    base = ["run", str(RECIPE), f"runs_dir={tmp_path}", "name=toy", "executor=ray"]
    assert main([*base, "ray.cpus_per_actor=64"]) == 2
    assert "no node of the Ray cluster has 64 CPUs" in capsys.readouterr().err
    assert main([*base, "ray.actors=3"]) == 2
    assert "ray.actors=3 sampling actors of 1 CPUs do not fit" in capsys.readouterr().err
    assert not (tmp_path / "toy").exists()


def test_the_runs_sample_and_judge_stages_give_the_same_files_on_either_executor(cluster, tiny_dir, prompts, tmp_path):
    from posttrain.pipeline.quickstart import RunConfig, SampleSection, judge_samples, sample_train

    outputs = {}
    for executor in ("local", "ray"):
        cfg = RunConfig(model=str(tiny_dir), runs_dir=str(tmp_path), name=executor, threads=1, executor=executor,
                        sample=SampleSection(n=2, max_new_tokens=5, dtype="float32", batch_prompts=3))  # fmt: skip
        with RecordWriter(cfg.run_dir / "prompts" / "train.jsonl") as writer:
            for p in prompts:
                writer.write(p)
        sample_train(cfg, cfg.run_dir, 0, cfg.run_dir / "sample")
        judge_samples(cfg, cfg.run_dir, "", cfg.run_dir / "judge")
        outputs[executor] = [(cfg.run_dir / f).read_bytes() for f in ("sample/samples.jsonl", "judge/verdicts.jsonl")]
    assert outputs["ray"] == outputs["local"] and all(outputs["ray"])
