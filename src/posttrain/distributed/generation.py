"""The online loop's generation on Ray (`generation.engine: ray` in `posttrain train cgpo|grpo`): a pool of actors,
each holding an HF backend of the policy's architecture, sampling contiguous shares of every rollout and loading
the policy's weights after every update.

    backend = RayGenerationBackend(policy, tokenizer, cfg.generation.ray, batch_size=16, dtype="float32")
    rows = backend.generate(prompts, k, params)      # the in-process HFBackend's rows, in prompt order
    backend.load_weights(policy.named_parameters())  # after every update

With several training processes (DDP), process 0 holds the pool and every process talks to it through
`SharedPool(pool or None)`, whose `generate` is a collective call (see the class).

Why the samples are the in-process backend's: each actor runs `HFBackend`, which seeds every (prompt, sample index)
on its own (`sample_seed`), so a response depends neither on the batch it shares nor on the actor it runs on; the
prompts go out in contiguous shares and come back in prompt order. So for seeded or greedy sampling the number of
actors does not change the rollout (given the same torch threads: float sums can round differently across thread
counts, as for the sample stage).

Why the weights come from the driver and not from disk: the driver holds the policy being trained; the actors
build the architecture from its config (random weights, overwritten at once) and copy in what `load_weights`
sends. A worker node needs posttrain and Ray, not the model, and the actors always sample exactly the driver's
weights, whatever `model.name` was (or a model passed to `train_cgpo` in memory).

Two ways for the weights (`generation.ray.weight_sync`): `object_store` (the default) puts them in Ray's object
store once per update and each actor copies them from there; `broadcast` sends them by a gloo or NCCL broadcast from
the training process (distributed/weight_sync.py).

vLLM engines as the actors (`generation.ray.backend: vllm`, one GPU each): each actor builds a vLLM engine from the
policy's checkpoint (`model.name`, which every GPU node must be able to read) with `generation.vllm`'s engine
arguments, and replaces its weights with the driver's after every update through vLLM's `collective_rpc`
(`VLLMBackend.load_weights`); weights go by the object store (a broadcast into vLLM's workers is refused).

What was run: a local cluster on one machine, CPU actors, both syncs (tests/distributed/test_ray_online.py). Not
run: several nodes, GPU actors (`gpus_per_actor` > 0: the HF backend then decodes on the actor's GPU), vLLM actors
and the NCCL broadcast; there is no GPU here. What runs without one is tested: the settings' checks and an actor
that is asked for vLLM where it is not installed.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from posttrain.distributed.cluster import RaySection, actor_count, connect, probe, resolve_address
from posttrain.distributed.sampling import release
from posttrain.distributed.work import result_of
from posttrain.errors import InputError
from posttrain.models.backend import Completion, SamplingParams, as_messages

Request = tuple[list[Any], int, SamplingParams]  # one generate call: prompts, samples per prompt, sampling


def check_section(section: RaySection) -> None:
    """The `generation.ray` settings, checked before any model is loaded: values, a GPU ask, the address."""
    section.check(prefix="generation.ray.")
    if section.backend == "vllm":
        if section.gpus_per_actor < 1 or section.gpus_per_actor != int(section.gpus_per_actor):
            raise InputError(
                "generation.ray.backend=vllm runs a vLLM engine per actor on whole GPUs: set generation.ray.gpus_per_actor "
                f"to 1 or more (got {section.gpus_per_actor})"
            )
        if section.weight_sync != "object_store":
            raise InputError(
                "generation.ray.backend=vllm takes its weights through the object store (vLLM's own workers cannot "
                "join the broadcast group): set generation.ray.weight_sync=object_store"
            )
    address = resolve_address(section.address)
    if address and address not in ("auto", "local"):
        probe(address)  # a typo'd address fails in seconds, not after the model and the baselines are loaded


def weights_checksum(named_parameters: Iterable[tuple[str, torch.Tensor]]) -> str:
    """sha256 over the parameters' names and bytes, in order: equal only for bit-identical weights."""
    digest = hashlib.sha256()
    for name, tensor in named_parameters:
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass
class Policy:
    """What an actor needs to build a model like the policy: everything but the weights (which follow)."""

    model_class: Any  # e.g. LlamaForCausalLM
    config: Any
    generation_config: Any  # its EOS ids end a response, as the policy's own do
    tokenizer: Any
    dtype: torch.dtype  # the policy's
    source: str | None = None  # the checkpoint the policy was loaded from (a vLLM actor builds its engine from it)


class GeneratorActor:
    """One HF backend in one Ray worker process (made a Ray actor class by `RayGenerationBackend`).

    Its constructor takes no model: every call carries the version number of the driver's current weights and,
    wrapped in a list so that Ray passes the references instead of fetching the objects, the ObjectRefs of the
    `Policy` and of the weights. An actor without a model, or with older weights, fetches them first. That is what
    keeps a restarted actor correct: Ray reruns the constructor of an actor that died (`max_restarts`) and retries
    the call (`max_task_retries`) on it, and the call brings the current weights along."""

    def __init__(
        self, dtype: str, threads: int, batch_size: int, gpus: float = 0, backend: str = "hf",
        engine_options: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        torch.set_num_threads(threads)
        self.dtype, self.threads, self.batch_size = dtype, threads, batch_size
        self.kind, self.engine_options = backend, dict(engine_options or {})
        self.device = "cuda" if gpus and torch.cuda.is_available() else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES
        self.backend: Any = None  # an HFBackend once the first call arrives
        self.version = -1
        self.group: Any = None  # the broadcast group (weight_sync: broadcast)
        self.specs: list[Any] = []
        self.receive_device = "cpu"

    def generate(
        self, prompts: list[Any], n: int, params: SamplingParams, version: int, refs: list[Any]
    ) -> list[list[Completion]]:
        self.load_weights(version, refs)
        return self.backend.generate(prompts, n, params)

    def logprobs(self, prompt: Any, completion: str, version: int, refs: list[Any]) -> list[float]:
        self.load_weights(version, refs)
        return self.backend.logprobs(prompt, completion)

    def load_weights(self, version: int, refs: list[Any]) -> None:
        """Bring this actor to weights `version`; `refs`: [the Policy's ObjectRef, the weights' ObjectRef]."""
        import ray

        if self.backend is None:
            self.backend = self._build(ray.get(refs[0]))
        if version == self.version:
            return
        if refs[1] is None:  # weight_sync: broadcast, and this actor missed a broadcast (it cannot: it is not restarted)
            raise RuntimeError(f"generation actor holds weights version {self.version}, the call needs {version}")
        state: dict[str, torch.Tensor] = ray.get(refs[1])
        if self.kind == "vllm":  # vLLM maps the HF checkpoint's names onto its own (fused) parameters
            self.backend.load_weights(state.items())
            self.version = version
            return
        params = dict(self.backend.model.named_parameters())
        if state.keys() != params.keys():
            missing, extra = sorted(params.keys() - state.keys()), sorted(state.keys() - params.keys())
            raise RuntimeError(f"the weights sent do not fit the actor's model: missing {missing[:3]}, extra {extra[:3]}")
        with torch.no_grad():
            for name, param in params.items():
                param.copy_(state[name])  # casts to bf16 where the actor samples in bf16
        self.version = version

    def _build(self, policy: Policy) -> Any:
        from posttrain.models.hf import HFBackend, resolve_dtype

        if self.kind == "vllm":
            from posttrain.models.vllm import VLLMBackend

            if not policy.source:
                raise InputError("generation.ray.backend=vllm builds its engines from a checkpoint: set model.name")
            # The engine loads the checkpoint; the first call's weights then replace it. generation.dtype float32
            # samples in the policy's dtype, bfloat16 in bf16, auto as vLLM's own "auto" (the checkpoint's dtype).
            engine_dtype = str(policy.dtype).removeprefix("torch.") if self.dtype == "float32" else self.dtype
            return VLLMBackend(policy.source, **{"dtype": engine_dtype, **self.engine_options})
        # As the in-process loop decides (`cgpo.bf16_sampler`): bf16 when generation.dtype resolves to it (for
        # `auto`, on this actor's own CPU), otherwise the policy's dtype.
        dtype = torch.bfloat16 if resolve_dtype(self.dtype) == torch.bfloat16 else policy.dtype
        # transformers' SDPA: the policy's config may name the trainer's packed attention (train/packed_attention.py),
        # registered in the training process only; generation does not use it anyway.
        config = copy.deepcopy(policy.config)
        model = policy.model_class._from_config(config, attn_implementation="sdpa")
        model = model.to(device=self.device, dtype=dtype).eval().requires_grad_(False)  # random until loaded
        model.generation_config = policy.generation_config
        return HFBackend("policy", self.threads, self.batch_size, model_and_tokenizer=(model, policy.tokenizer))

    def prepare_broadcast(self, specs: list[Any], refs: list[Any]) -> None:
        """Build the model (from the Policy in `refs`) and check that the parameters to be broadcast fit it: before
        the group forms, since a member that fails inside it would leave the others waiting for the timeout."""
        import ray

        if self.backend is None:
            self.backend = self._build(ray.get(refs[0]))
        names = {name for name, _ in self.backend.model.named_parameters()}
        sent = {name for name, _, _ in specs}
        if sent != names:
            missing, extra = sorted(names - sent), sorted(sent - names)
            raise RuntimeError(f"the weights to be sent do not fit the actor's model: missing {missing[:3]}, extra {extra[:3]}")
        self.specs = specs

    def join_broadcast(self, host: str, port: int, rank: int, world: int, backend: str) -> None:
        """Join the training process's broadcast group (rank 0 serves its store at host:port)."""
        from posttrain.distributed.weight_sync import join_group

        self.group = join_group(host, port, rank, world, backend)
        self.receive_device = "cuda" if backend == "nccl" else "cpu"

    def receive_weights(self, version: int) -> None:
        """Take part in the broadcast of weights `version` (the training process sends at the same time)."""
        from posttrain.distributed.weight_sync import receive

        receive(self.group, self.backend.model, self.specs, self.receive_device)
        self.version = version

    def checksum(self) -> str:
        if self.kind == "vllm":
            raise RuntimeError("a vLLM actor's weights live in its engine's workers: no checksum is read back")
        return weights_checksum(self.backend.model.named_parameters())


def shares(count: int, parts: int) -> list[range]:
    """`count` items in `parts` contiguous ranges whose sizes differ by at most one (the first ones larger)."""
    size, extra = divmod(count, parts)
    bounds = [i * size + min(i, extra) for i in range(parts + 1)]
    return [range(bounds[i], bounds[i + 1]) for i in range(parts)]


class RayGenerationBackend:
    """The online loop's backend on a pool of `GeneratorActor`s; `generate` and `logprobs` as `HFBackend`'s."""

    name = "policy"

    def __init__(
        self, model: Any, tokenizer: Any, section: RaySection, batch_size: int, dtype: str,
        engine_options: dict[str, Any] | None = None, source: str | None = None,
    ) -> None:  # fmt: skip
        """`engine_options` and `source` (the checkpoint the policy was loaded from): for `section.backend` vllm."""
        import ray

        check_section(section)
        self.owns_cluster = connect(section.address)
        # A broadcast group has a fixed membership: a restarted actor could not rejoin it (weight_sync.py).
        retries = section.max_retries if section.weight_sync == "object_store" else 0
        actor_class = ray.remote(GeneratorActor).options(
            num_cpus=section.cpus_per_actor,  # its torch threads
            num_gpus=section.gpus_per_actor,
            max_restarts=retries,
            max_task_retries=retries,
        )
        self.actors: list[Any] = [  # Ray actor handles
            actor_class.remote(dtype, section.cpus_per_actor, batch_size, section.gpus_per_actor, section.backend,
                               engine_options)  # fmt: skip
            for _ in range(actor_count(section))
        ]
        # In the object store once, however many actors read it; the driver's references keep these objects there
        # for as long as an actor may need them again (after a restart).
        policy = Policy(type(model), model.config, model.generation_config, tokenizer, model.dtype, source)
        self.refs: list[Any] = [ray.put(policy), None]  # ObjectRefs: the Policy, the current weights
        self.version = 0
        self.group: Any = None
        if section.weight_sync == "broadcast":
            self.group = self._form_group(list(model.named_parameters()), section)
        self.load_weights(model.named_parameters())

    def _form_group(self, named_parameters: list[tuple[str, torch.Tensor]], section: RaySection) -> Any:
        """The broadcast group: this process is rank 0 and serves the store; NCCL when the weights are on a GPU and
        the actors hold GPUs, gloo otherwise."""
        import ray

        from posttrain.distributed.weight_sync import join_group, open_port, specs

        on_gpu = named_parameters[0][1].is_cuda and section.gpus_per_actor > 0
        backend = "nccl" if on_gpu else "gloo"
        host = ray.util.get_node_ip_address()
        port, world = open_port(host), len(self.actors) + 1
        parameter_specs = specs(named_parameters)
        preparing = [actor.prepare_broadcast.remote(parameter_specs, self.refs) for actor in self.actors]
        for number, ref in enumerate(preparing):  # the actors build their models at the same time
            result_of(ref, f"preparing generation actor {number} for the weights' broadcast")
        joining = [actor.join_broadcast.remote(host, port, rank, world, backend)
                   for rank, actor in enumerate(self.actors, start=1)]  # fmt: skip
        group = join_group(host, port, 0, world, backend)  # returns once every actor has joined
        for number, ref in enumerate(joining):
            result_of(ref, f"generation actor {number} joining the weights' broadcast group ({backend})")
        return group

    def load_weights(self, named_parameters: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Every actor gets these weights (the online loop calls this after every update): by broadcast under
        `weight_sync: broadcast`; otherwise they go into the object store once (`ray.put`) and each actor reads them
        from there: one copy per node, not one per actor call. Returns when every actor holds them, so the next
        rollout samples them."""
        import ray

        self.version += 1
        if self.group is not None:
            self._broadcast([param for _, param in named_parameters])
            return
        state = {name: param.detach().cpu() for name, param in named_parameters}
        self.refs = [self.refs[0], ray.put(state)]  # the previous weights leave the store once no actor reads them
        loads = [actor.load_weights.remote(self.version, self.refs) for actor in self.actors]
        for number, ref in enumerate(loads):
            result_of(ref, f"loading the policy's weights (version {self.version}) into generation actor {number}")

    def _broadcast(self, tensors: list[torch.Tensor]) -> None:
        """weight_sync: broadcast. Every actor starts receiving, this process sends; returns when all hold them."""
        from posttrain.distributed.weight_sync import send

        receiving = [actor.receive_weights.remote(self.version) for actor in self.actors]
        send(self.group, tensors)
        for number, ref in enumerate(receiving):
            result_of(ref, f"broadcasting the policy's weights (version {self.version}) to generation actor {number}")

    def generate(self, prompts: list[Any], n: int, params: SamplingParams) -> list[list[Completion]]:
        return self.generate_many([(prompts, n, params)])[0]

    def generate_many(self, requests: list[Request]) -> list[list[list[Completion]]]:
        """Several `generate` calls at once (one per training process under `SharedPool`): every share of every
        request is sent before any result is awaited, so the actors work on all of them together."""
        running = [
            [
                (part, actor.generate.remote([prompts[i] for i in part], n, params, self.version, self.refs))
                for actor, part in zip(self.actors, shares(len(prompts), len(self.actors)), strict=True)
                if part
            ]
            for prompts, n, params in requests
        ]
        out = []
        for (prompts, n, _), calls in zip(requests, running, strict=True):
            rows: list[list[Completion]] = []
            for part, ref in calls:  # in share order: the rows come back in prompt order
                rows += result_of(ref, describe(prompts, part, n))
            out.append(rows)
        return out

    def logprobs(self, prompt: Any, completion: str) -> list[float]:
        ref = self.actors[0].logprobs.remote(prompt, completion, self.version, self.refs)
        return list(result_of(ref, f"scoring a completion of {as_messages(prompt)[-1]['content'][:50]!r}"))

    def checksums(self) -> list[str]:
        """Each actor's `weights_checksum`: equal across actors (and to the policy's, in the sampling dtype) once
        the weights are synced."""
        return [result_of(actor.checksum.remote(), f"the weights checksum of generation actor {number}")
                for number, actor in enumerate(self.actors)]  # fmt: skip

    def close(self) -> None:
        """End the actors (each holds a model's memory and its cores) and a local cluster this backend started."""
        import ray

        release(self.actors)
        self.actors, self.refs, self.group = [], [], None
        if self.owns_cluster:
            ray.shutdown()


class SharedPool:
    """One pool of generation actors for several training processes (`torchrun` / `accelerate launch` with
    `generation.engine: ray`): process 0 drives the actors (`pool`, None elsewhere); the others never touch Ray.

    `generate` is a collective call: every process makes it, in the same order (the online loop decides rollouts and
    refills over all processes), and each gets the rows of its own request. The requests are gathered to process 0,
    which runs them on the pool together (`generate_many`) and scatters the rows back; a failure there reaches every
    process as a RuntimeError with process 0's message, so none waits forever. `load_weights` runs on process 0
    alone: after a synchronized update every process holds the same weights, and the next `generate` waits for it.
    Work that process 0 does alone (the held-out evaluation) calls `pool` directly."""

    name = "policy"

    def __init__(self, pool: RayGenerationBackend | None) -> None:
        import torch.distributed as dist

        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        if (pool is None) != (self.rank != 0):
            raise ValueError("SharedPool: process 0, and only it, holds the pool")
        self.pool = pool

    def generate(self, prompts: list[Any], n: int, params: SamplingParams) -> list[list[Completion]]:
        import torch.distributed as dist

        requests: list[Any] = [None] * self.world
        dist.all_gather_object(requests, (prompts, n, params))
        answers: list[Any] | None = None
        failure: Exception | None = None
        if self.pool is not None:
            try:
                answers = self.pool.generate_many(requests)
            except Exception as err:  # sent to the others as text, raised here as itself
                failure, answers = err, [f"{type(err).__name__} in process 0: {err}"] * self.world
        mine: list[Any] = [None]
        dist.scatter_object_list(mine, answers, src=0)
        if failure is not None:
            raise failure
        if isinstance(mine[0], str):
            raise RuntimeError(f"generation on the shared Ray pool failed: {mine[0]}")
        return list(mine[0])

    def load_weights(self, named_parameters: Iterable[tuple[str, torch.Tensor]]) -> None:
        if self.pool is not None:
            self.pool.load_weights(named_parameters)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


def describe(prompts: list[Any], part: range, n: int) -> str:
    """The batch a failed call was working on, for the error message."""
    first = as_messages(prompts[part.start])[-1]["content"][:50]
    return f"generating {n} response{'s' if n != 1 else ''} for prompts {part.start + 1}-{part.stop} of {len(prompts)} (first: {first!r})"
