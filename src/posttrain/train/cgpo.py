"""CGPO, Constrained Generative Policy Optimization (Xu et al. 2024, arXiv 2409.20370), one readable loop.

    result = train_cgpo(load_config(CGPOConfig, "recipes/cgpo_ifeval.yaml"), prompts)

Algorithm 1, per step and per task (Algorithm 2 runs every task and adds the gradients with weights ρ_l):

1. take the task's next B prompts; generate K responses each from the *current* policy (the hf backend shares
   the model object being trained, so it samples with this step's weights);
2. run the task's Mixture of Judges (`judges/mixture.py`): a response is satisfied only if *every* constraint
   judge passes (AND; the paper's pseudo-code says OR, its text says AND), and gets the calibrated reward
   R_calib = σ(r(a) − r(ā)) against the prompt's baseline response ā;
3. log-probs of the responses under the policy and the frozen reference π_ref (a copy of the starting model), so
   log-ratio = log π_w(a|s) − log π_ref(a|s);
4. the task's optimizer builds its loss from `losses.py`:
   - CRPG: R_cr = R_calib if satisfied else 0, shaped by max(1 − log-ratio/KL_max, 0), REINFORCE with the batch
     mean as baseline, over all B·K responses;
   - CODPO: per prompt, chosen = the highest-reward satisfied response, rejected = the lowest-reward violated one
     (none violated: the lowest-reward other response; none satisfied: the prompt is skipped); DPO + (λ/|a⁺|)·NLL;
   - CRRAFT: per prompt, the highest-reward satisfied response with log-ratio ≤ KL_max, weighted by its R_calib
     (none: the baseline ā if it satisfies every constraint, else skip); SFT on it;
5. backward(ρ_l · loss_l) for each task, one AdamW step.

Baselines ā: a prompt's `gold` (or a `baseline` column) when present, else one response of the reference policy
sampled before training and cached in `<out>/baselines.jsonl` (resumable, like every sample stage).

Prompts are a list of `Prompt` records (their `task` picks the task config; `"*"` catches the rest), or synthetic
instruction-following prompts made as `posttrain run` makes them (`prompts.*`), in which case the held-out split
is evaluated greedily before and after training (`<out>/eval_before`, `<out>/eval_after`, IFEval metrics).

Checkpoints every `train.save_every` steps hold the weights, optimizer, schedule and RNG; a rerun resumes from
the last one and, since every step's sampling is seeded by (train.seed, step), repeats the same trajectory.
Several processes (`torchrun --nproc_per_node N` or `accelerate launch`; gloo on CPU): each process rolls out its
share of every batch (whole prompts, so group statistics stay local) with its own copy of the policy, batch-level
counts and statistics are summed over processes, and the gradients are summed by hand after the backward passes,
so N processes take the step one process would take on the same responses. Metrics go to `<out>/metrics.jsonl` and
the `train.report_to` trackers; the final model at `<out>/model` carries a model card (README.md), as the offline
recipes' do.
"""

from __future__ import annotations

import copy
import functools
import json
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from posttrain.atomic import atomic_write_text
from posttrain.config import build
from posttrain.distributed.cluster import RaySection
from posttrain.errors import InputError
from posttrain.evals.greedy import EvalSection
from posttrain.judges.base import Judge, get_judge, make_items
from posttrain.judges.mixture import ANY_TASK, MixtureOfJudges, MixtureResult, TaskJudges
from posttrain.judges.runner import judge_spec
from posttrain.models.backend import Completion, SamplingParams
from posttrain.pairs.repair import repair
from posttrain.prompts.split import PromptsSection
from posttrain.records import Prompt, Sample, read_records
from posttrain.train import losses
from posttrain.train.data import (
    Batch,
    Sequence,
    Source,
    collate,
    long_prompt_error,
    pad_token_id,
    plan_batches,
    render,
)
from posttrain.train.logprobs import check_supported, sequence_logps, token_logps
from posttrain.train.runtime import (
    DataConfig,
    LoopConfig,
    LoRAConfig,
    MetricsLog,
    ModelCard,
    ModelConfig,
    Progress,
    TrainResult,
    apply_lora,
    check_loop,
    check_run_matches,
    dither_for_bf16,
    latest_checkpoint,
    load_checkpoint,
    load_tokenizer_and_check,
    make_optimizer,
    model_key,
    prepare_for_training,
    resolve_mixed_precision,
    run_fingerprint,
    save_checkpoint,
    save_on_main,
    start_process,
    torch_dtype,
    trajectory_settings,
)

# ---------------------------------------------------------------------------------------------------- config


CGPO_OPTIMIZERS = ("crpg", "codpo", "crraft")
GROUP_OPTIMIZERS = ("grpo", "rloo", "reinforce_pp")  # train/grpo.py
# Multi-sample preference losses (Wang, Zhao et al. 2024; losses.mdpo_loss / mipo_loss) on each prompt's satisfied
# vs violated responses: the online form of `posttrain train dpo` with loss.type mdpo | mipo.
MULTI_SAMPLE_OPTIMIZERS = ("mdpo", "mipo")
ENGINES_WITH_OWN_WEIGHTS = ("vllm", "ray")  # generation engines that get the policy's weights after every update


@dataclass
class CGPOTask:
    """One task of Algorithm 2: its judges, reward, optimizer and hyperparameters. The optimizer is one of CGPO's
    (crpg, codpo, crraft), of the GRPO family (grpo, rloo, reinforce_pp: train/grpo.py), or a multi-sample
    preference loss (mdpo, mipo)."""

    optimizer: Literal["crpg", "codpo", "crraft", "grpo", "rloo", "reinforce_pp", "mdpo", "mipo"] = "crraft"
    # Constraint judges, ANDed: verdict name -> options (`type:` picks the registry judge, as in recipes/judges.yaml).
    judges: dict[str, dict[str, Any]] = field(default_factory=lambda: {"ifeval": {"mode": "fixed"}})
    # r(s, a): any judge's score, e.g. a reward model ({type: reward_model, model: DIR}) or the IF judge's
    # fraction of constraints met ({type: ifeval}).
    reward: dict[str, Any] | None = field(default_factory=lambda: {"type": "ifeval", "mode": "fixed"})
    k: int = 4  # responses per prompt
    batch_size: int = 4  # prompts per step (B_l)
    kl_max: float = 10.0  # nats of sequence log-ratio (CRPG shaping, CRRAFT filter)
    weight: float = 1.0  # ρ_l
    beta: float = 0.1  # CODPO's DPO β (not reported in the paper); mdpo / mipo's β
    lam: float = 1.0  # CODPO's λ on the length-normalised chosen likelihood (not reported in the paper)
    # posttrain's extension, CODPO only: a prompt with no satisfied response takes ā as its chosen response (when ā
    # satisfies every constraint) instead of being skipped, as CRRAFT falls back to ā. Off = the paper.
    baseline_chosen: bool = False
    # ---- mdpo / mipo only: `group_size` satisfied responses of each prompt against `group_size` violated ones, drawn
    # at random from each side (a prompt with fewer on a side is skipped); k must be at least 2 * group_size.
    group_size: int = 2
    unbiased: bool = False  # mipo: subtract each group mean's variance (losses.mipo_loss)
    # ---- the GRPO family only (train/grpo.py; docs/methods/grpo.md)
    # The reward is r(s, a), the reward judge's score; with `gate`, 0 for a response that fails a constraint judge
    # (or is cut off while generation.require_finished): CGPO's Mixture of Judges as the gate of a group method.
    gate: bool = False
    clip_eps: float = 0.2  # PPO clip range ε of the ratio π/π_old
    clip_eps_high: float | None = None  # upper range (DAPO's clip-higher, e.g. 0.28); None = clip_eps
    # grpo: coefficient of the k3 KL to π_ref in the loss; rloo / reinforce_pp: of the KL penalty in the reward
    # (per response for rloo, per token for reinforce_pp). 0 = no reference term.
    kl_coef: float = 0.0
    # How token losses add up: token (DAPO: all tokens weigh the same), sequence (GRPO paper: mean per response,
    # then over responses), fixed (Dr. GRPO: divided by n · max_new_tokens).
    loss_aggregation: Literal["token", "sequence", "fixed"] = "token"
    scale_advantages: bool = True  # grpo: divide by the group's reward std (Dr. GRPO: false)
    drop_uniform_groups: bool = False  # leave out prompts whose K rewards are all equal (DAPO's dynamic-sampling filter)
    # DAPO's dynamic sampling: while fewer than batch_size prompts of the step carry signal (K rewards not all
    # equal), roll out up to this many more batches of the next prompts in the same step. 0 = the filter alone.
    refill: int = 0
    # Responses cut off by max_new_tokens: keep, filter (no loss on them: DAPO's overlong filtering), or penalty
    # (DAPO's soft overlong punishment, added to the reward: 0 up to max_new_tokens − overlong_buffer tokens, then
    # falling linearly to −1 at max_new_tokens).
    overlong: Literal["keep", "filter", "penalty"] = "keep"
    overlong_buffer: int = 32


@dataclass
class GenerationConfig:
    max_new_tokens: int = 128
    temperature: float = 1.0  # 1.0 keeps the sampled responses on-policy (and the logged KL an estimate of KL)
    top_p: float = 1.0
    batch_size: int = 16  # sequences per decode batch
    require_finished: bool = True  # a response cut off by max_new_tokens counts as violated (as RS pairs do)
    # float32: sample from the policy itself. bfloat16 | auto (bfloat16 where the CPU computes it natively): sample
    # from a bf16 copy of the policy, refreshed after every update (faster decoding on such CPUs; samples are
    # on-policy up to bf16 rounding; the loss still uses the policy's own log-probs). Full fine-tuning only.
    dtype: Literal["float32", "bfloat16", "auto"] = "float32"
    # hf: the in-process transformers backend above. vllm: an in-process vLLM engine (GPU; `posttrain[vllm]`) that
    # gets the policy's weights after every update; `vllm` holds its engine arguments (e.g. gpu_memory_utilization).
    # ray: a pool of Ray actors, each an HF backend of the policy (`posttrain[ray]`; distributed/generation.py) or
    # with `ray.backend: vllm` a vLLM engine per GPU (built with `vllm`'s engine arguments), that get the weights
    # after every update; `ray` holds the cluster settings (address, cpus_per_actor, gpus_per_actor, ...).
    engine: Literal["hf", "vllm", "ray"] = "hf"
    vllm: dict[str, Any] = field(default_factory=dict)
    ray: RaySection = field(default_factory=RaySection)


@dataclass
class BaselineConfig:
    # auto: the prompt's gold/baseline field when present, else a response of the reference policy
    source: Literal["auto", "gold", "reference"] = "auto"
    temperature: float = 1.0  # ā ~ π_ref (CGPO §4.1); 0 = the reference's greedy response
    # posttrain's extension, not the paper's: a sampled ā is edited by the constraint-repair rules
    # (posttrain.pairs.repair) into a verified answer where they can, so CRRAFT's fallback has a satisfied target
    # when none of the K responses qualifies (a 135M policy rarely produces one). Gold answers are never edited.
    repair: bool = False


@dataclass
class CGPODataConfig(DataConfig):
    # The end-of-turn token the policy sampled is part of its action, so it is a target (responses cut at
    # max_new_tokens never sampled one: their format tokens are masked whatever this says).
    mask_format_tokens: bool = False


@dataclass
class CGPOLoopConfig(LoopConfig):
    output_dir: str = "runs/cgpo"
    lr: float = 1e-6
    examples_per_forward: int | None = 4  # sequences (CODPO: pairs) per forward/backward pass
    # Optimizer steps on each rollout (GRPO's μ; TRL's num_iterations): the first is on-policy, later ones are
    # corrected by the clipped ratio π/π_old. GRPO-family tasks only.
    updates_per_rollout: int = 1


@dataclass
class CGPOConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    data: CGPODataConfig = field(default_factory=CGPODataConfig)
    train: CGPOLoopConfig = field(default_factory=CGPOLoopConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    # task name -> CGPOTask fields; a prompt's `task` picks its entry, "*" takes tasks not listed.
    tasks: dict[str, dict[str, Any]] = field(default_factory=lambda: {"instruction_following": {}})
    prompts: PromptsSection = field(default_factory=PromptsSection)  # used when no prompts are given
    eval: EvalSection = field(default_factory=EvalSection)
    evaluate: bool = True  # greedy IFEval on the synthetic held-out prompts before and after training
    # With evaluate: also this many responses per held-out prompt, sampled as in training (generation.*) and judged
    # by the task's judges, before and after: CGPO's own violation rate, on the policy's distribution (0 = off).
    heldout_k: int = 0


def parse_tasks(cfg: CGPOConfig) -> dict[str, CGPOTask]:
    """The `tasks` mapping as CGPOTask configs, every value checked (bad config is an InputError)."""
    if not cfg.tasks:
        raise InputError("tasks: give at least one task (e.g. tasks.instruction_following.optimizer=crraft)")
    tasks = {}
    for name, raw in cfg.tasks.items():
        raw = raw or {}
        if not isinstance(raw, dict):
            raise InputError(f"tasks.{name} must be a mapping of task settings, got {raw!r}")
        task = build(CGPOTask, raw, prefix=f"tasks.{name}.")
        where = f"tasks.{name}"
        if not task.judges and task.optimizer not in GROUP_OPTIMIZERS:  # the GRPO family learns from the reward alone
            raise InputError(f"{where}.judges: {task.optimizer} needs at least one constraint judge per task (its "
                             f"satisfied and violated responses)")  # fmt: skip
        if task.reward is None:
            raise InputError(
                f"{where}.reward: CGPO needs a reward (a reward model or a judge score) per task"
            )
        if task.k < 1 or task.batch_size < 1:
            raise InputError(f"{where}: k and batch_size must be at least 1")
        if task.optimizer == "codpo" and task.k < 2:
            raise InputError(f"{where}: codpo needs k >= 2 responses per prompt to form a pair")
        if task.optimizer in MULTI_SAMPLE_OPTIMIZERS and (task.group_size < 1 or task.k < 2 * task.group_size):
            raise InputError(f"{where}: {task.optimizer} compares group_size satisfied with group_size violated "
                             f"responses of a prompt: group_size >= 1 and k >= 2 * group_size (k={task.k}, "
                             f"group_size={task.group_size})")  # fmt: skip
        if task.optimizer in ("grpo", "rloo") and task.k < 2:  # REINFORCE++ normalises over the batch, not a group
            raise InputError(f"{where}: {task.optimizer} compares K responses per prompt; k must be at least 2")
        if task.clip_eps <= 0 or (task.clip_eps_high is not None and task.clip_eps_high <= 0) or task.kl_coef < 0:
            raise InputError(f"{where}: clip_eps and clip_eps_high must be positive, kl_coef not negative")
        if task.refill < 0 or (task.refill and not (task.optimizer in GROUP_OPTIMIZERS and task.drop_uniform_groups)):
            raise InputError(f"{where}.refill: a number of extra batches (>= 0), for a group optimizer (grpo, rloo, "
                             f"reinforce_pp) with drop_uniform_groups: true")  # fmt: skip
        if task.overlong == "penalty" and task.overlong_buffer < 1:
            raise InputError(f"{where}: overlong_buffer must be at least 1 token")
        if task.kl_max <= 0 or task.beta <= 0 or task.weight < 0 or task.lam < 0:
            raise InputError(f"{where}: kl_max and beta must be positive, weight and lam not negative")
        tasks[name] = task
    return tasks


def check_config(cfg: CGPOConfig) -> dict[str, CGPOTask]:
    check_loop(cfg.train)
    try:
        SamplingParams(cfg.generation.max_new_tokens, cfg.generation.temperature, cfg.generation.top_p)
    except ValueError as err:
        raise InputError(f"generation: {err}") from None
    if cfg.heldout_k < 0:
        raise InputError(f"heldout_k must be 0 (off) or a number of responses per held-out prompt, got {cfg.heldout_k}")
    if cfg.generation.dtype != "float32" and cfg.lora.enabled:
        raise InputError("generation.dtype: a bf16 copy of the full weights cannot follow LoRA; use float32")
    if cfg.generation.engine == "vllm":
        if cfg.lora.enabled:
            raise InputError("generation.engine=vllm takes the full weights after every update; LoRA is not supported")
        from posttrain.models.vllm import _import_vllm

        _import_vllm()  # the install hint, before any model is loaded
    if cfg.generation.engine == "ray":
        from posttrain.distributed.cluster import require_ray
        from posttrain.distributed.generation import check_section

        if cfg.lora.enabled:
            raise InputError("generation.engine=ray takes the full weights after every update; LoRA is not supported")
        require_ray("generation.engine=ray")  # the install hint, before any model is loaded
        check_section(cfg.generation.ray)
    tasks = parse_tasks(cfg)
    if cfg.train.updates_per_rollout < 1:
        raise InputError(f"train.updates_per_rollout must be at least 1, got {cfg.train.updates_per_rollout}")
    single = [name for name, t in tasks.items() if t.optimizer not in GROUP_OPTIMIZERS]
    if cfg.train.updates_per_rollout > 1 and single:
        raise InputError(
            f"train.updates_per_rollout > 1 needs a clipped-ratio optimizer (grpo, rloo, reinforce_pp); "
            f"task(s) {', '.join(single)} train once on each rollout"
        )
    return tasks


def needs_reference(tasks: dict[str, CGPOTask]) -> bool:
    """π_ref costs one model of memory and a forward pass per rollout. CGPO's optimizers use the log-ratio to it
    (KL-bounded rewards and filters), mdpo / mipo's losses are relative to it, and a KL term needs it; the GRPO
    family with kl_coef 0 never reads it (TRL's GRPOTrainer with beta 0 keeps no reference model either), so it is
    not kept and `kl` is not logged."""
    return any(t.optimizer in CGPO_OPTIMIZERS + MULTI_SAMPLE_OPTIMIZERS or t.kl_coef > 0 for t in tasks.values())


def needs_old_pass(task: CGPOTask, cfg: CGPOConfig) -> bool:
    """Whether π_old's log-probs need a pass of their own at rollout time. With one update per rollout, π_old is
    the policy being updated: the update's own forward pass, detached, gives them (the ratio is 1 and its gradient
    the policy gradient, as TRL does with num_iterations 1). They are needed beforehand for several updates per
    rollout (π_old stays the sampling policy), by CGPO's optimizers, and by a KL penalty in the reward (rloo,
    reinforce_pp). mdpo / mipo compare with π_ref only."""
    if task.optimizer in MULTI_SAMPLE_OPTIMIZERS:
        return False
    if task.optimizer not in GROUP_OPTIMIZERS or cfg.train.updates_per_rollout > 1:
        return True
    return task.optimizer != "grpo" and task.kl_coef > 0


def bf16_sampler(cfg: CGPOConfig, reference: Any) -> Any:
    """A bf16 copy of the starting policy to sample from (generation.dtype bfloat16, or auto on a CPU with native
    bf16), or None to sample from the policy itself."""
    from posttrain.models.hf import resolve_dtype

    if resolve_dtype(cfg.generation.dtype) != torch.bfloat16 or reference.dtype == torch.bfloat16:
        return None
    return copy.deepcopy(reference).to(torch.bfloat16).eval()


def build_mixture(tasks: dict[str, CGPOTask]) -> MixtureOfJudges:
    """One Mixture of Judges with every task's constraint judges and reward judge."""

    def make(name: str, options: dict[str, Any]) -> Judge:
        kind, opts = judge_spec(name, options)
        judge = get_judge(kind, **opts)
        judge.name = name
        return judge

    specs = {}
    for task_name, task in tasks.items():
        constraints = [make(name, opts) for name, opts in task.judges.items()]
        assert task.reward is not None
        # A judge's score serves as r(s, a) whatever its kind, so the reward gets its own name in the verdicts.
        reward = make(str(task.reward.get("type", "reward")), task.reward)
        reward.name = f"reward:{reward.name}"
        specs[task_name] = TaskJudges(constraints, reward)
    return MixtureOfJudges(tasks=specs)


# ---------------------------------------------------------------------------------------------------- prompts


def task_of(prompt: Prompt, tasks: dict[str, CGPOTask]) -> str | None:
    if prompt.task in tasks:
        return prompt.task
    return ANY_TASK if ANY_TASK in tasks else None


def partition(
    prompts: list[Prompt],
    tasks: dict[str, CGPOTask],
    mixture: MixtureOfJudges,
    tokenizer: Any,
    cfg: CGPOConfig,
    source: Source,
) -> dict[str, list[int]]:
    """Prompt indices per task (Algorithm 2's disjoint D_l), after checking every prompt can be judged and trained."""
    by_task: dict[str, list[int]] = {name: [] for name in tasks}
    for i, p in enumerate(prompts):
        try:
            name = task_of(p, tasks)
            if name is None:
                raise InputError(
                    f"unknown task '{p.task}': configured tasks are {', '.join(tasks)} (add '*' for others)"
                )
            judges = mixture.task_judges(name)
            for judge in [*judges.constraints, *([judges.reward] if judges.reward else [])]:
                if hasattr(judge, "validate"):
                    judge.validate(p)  # unknown constraint ids or bad kwargs, before any generation
                if judge.requires_gold and not p.gold:
                    raise InputError(f"judge '{judge.name}' needs a gold answer and this prompt has none")
            if render(tokenizer, p.prompt, "x", cfg.data.max_length, False) is None:
                if cfg.data.long_prompt == "skip":
                    continue
                raise long_prompt_error(cfg.data.max_length)
        except InputError as err:
            raise source.error(i, err) from None
        by_task[name].append(i)
    for name, task in tasks.items():
        if len(by_task[name]) < task.batch_size:
            raise InputError(
                f"task '{name}' has {len(by_task[name])} prompts, fewer than its batch_size {task.batch_size}"
            )
    return by_task


def synthetic_prompts(cfg: CGPOConfig, out: Path) -> list[Prompt]:
    """Training prompts made exactly as `posttrain run` makes them (same seed: same train/held-out split)."""
    from posttrain.prompts.split import make_prompts

    make_prompts(cfg.prompts, cfg.train.seed, out / "prompts")
    return read_records(out / "prompts" / "train.jsonl", Prompt)


def starting_policy(cfg: CGPOConfig, model: Any, tokenizer: Any, out: Path, dithered: bool) -> str:
    """The model "before" evaluates: the policy training starts from. Weights cast on load (`model.dtype`
    bfloat16) or dithered differ from the stored model, and greedy answers follow them (the bf16 cast of an SFT
    model answered 5 more of 128 held-out prompts than the model as stored): those weights are saved to
    `<out>/start_model` and evaluated, so "before → after" measures training alone."""
    if not dithered and all(p.dtype == torch.float32 for p in model.parameters()):
        return cfg.model.name
    path = out / "start_model"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def evaluate_heldout(cfg: CGPOConfig, model: str, out: Path, eval_dir: Path) -> None:
    """Greedy IFEval-style metrics on the held-out synthetic prompts and the benchmarks of `eval` (IFEval, IFBench)."""
    from posttrain.evals.greedy import benchmark_prompts, evaluate_greedy

    sets = {"heldout": read_records(out / "prompts" / "heldout.jsonl", Prompt)}
    sets |= benchmark_prompts(cfg.eval)
    evaluate_greedy(model, sets, eval_dir, cfg.eval, seed=cfg.train.seed, threads=cfg.train.threads)


def reference_baselines(
    cfg: CGPOConfig, prompts: list[Prompt], reference: Any, tokenizer: Any, out: Path
) -> dict[str, str]:
    """ā per prompt id: the prompt's gold/baseline, else one reference-policy response cached on disk."""
    from posttrain.models.hf import HFBackend
    from posttrain.progress import generation_progress
    from posttrain.sampling import sample_prompts

    found = {p.id: getattr(p, "baseline", None) or p.gold for p in prompts}
    if cfg.baseline.source == "reference":
        found = {pid: None for pid in found}
    missing = [p for p in prompts if not found[p.id]]
    if missing and cfg.baseline.source == "gold":
        raise InputError(
            f"baseline.source=gold but {len(missing)} prompts have no gold answer (first: {missing[0].id})"
        )
    if missing:
        gen = cfg.generation
        backend = HFBackend(
            cfg.model.name, cfg.train.threads, gen.batch_size, model_and_tokenizer=(reference, tokenizer)
        )
        params = SamplingParams(gen.max_new_tokens, cfg.baseline.temperature, gen.top_p, seed=cfg.train.seed)
        path = out / "baselines.jsonl"
        with generation_progress("baselines (π_ref)", len(missing)) as bar:
            sample_prompts(backend, missing, path, 1, params, cfg.model.name, gen.batch_size, bar.advance)
        by_id = {p.id: p for p in missing}
        for s in read_records(path, Sample):
            prompt, fixed = by_id[s.prompt_id], None
            if cfg.baseline.repair and prompt.instruction_id_list:
                truncated = s.finish_reason == "length"
                ids, kwargs = prompt.instruction_id_list, prompt.kwargs
                fixed = repair(s.completion, ids, kwargs, truncated, seed=cfg.train.seed)
            # An empty ā still has a reward (e.g. the constraints it happens to meet); the mixture refuses "".
            found[s.prompt_id] = fixed or s.completion or " "
    return {pid: str(text) for pid, text in found.items()}


# ---------------------------------------------------------------------------------------------------- selection


def codpo_pair(ok: list[bool | None], rewards: list[float]) -> tuple[int, int] | None:
    """(chosen, rejected) among one prompt's K responses (None = judge failure, left out), or None to skip."""
    satisfied = [i for i, v in enumerate(ok) if v is True]
    if not satisfied:
        return None
    chosen = max(satisfied, key=lambda i: rewards[i])
    violated = [i for i, v in enumerate(ok) if v is False]
    # No violated response: the paper falls back to the lowest-reward generation (other than the chosen one).
    pool = violated or [i for i in satisfied if i != chosen]
    if not pool:
        return None
    return chosen, min(pool, key=lambda i: rewards[i])


def multi_sample_groups(ok: list[bool | None], size: int, rng: random.Random) -> tuple[list[int], list[int]] | None:
    """(chosen, rejected): `size` satisfied and `size` violated responses of one prompt, each drawn at random from
    its side (None = judge failure, left out), or None to skip the prompt. Drawn, not the best and the worst: a
    group stands for its side's distribution, as `posttrain pairs --method group` draws them offline."""
    satisfied = [i for i, v in enumerate(ok) if v is True]
    violated = [i for i, v in enumerate(ok) if v is False]
    if len(satisfied) < size or len(violated) < size:
        return None
    return sorted(rng.sample(satisfied, size)), sorted(rng.sample(violated, size))


def crraft_choice(
    ok: list[bool | None], rewards: list[float], logratios: list[float], kl_max: float
) -> int | None:
    """The highest-reward satisfied response within the KL budget, or None (the caller falls back to ā)."""
    within = [i for i, v in enumerate(ok) if v is True and logratios[i] <= kl_max]
    return max(within, key=lambda i: rewards[i]) if within else None


# ---------------------------------------------------------------------------------------------------- model passes


def to_sequence(
    tokenizer: Any, prompt: Prompt, completion: Completion, cfg: CGPODataConfig
) -> Sequence | None:
    """The sampled response as training tokens; None when it cannot be trained on (empty, or no room)."""
    if not completion.text.strip():
        return None
    mask = cfg.mask_format_tokens or completion.finish_reason == "length"
    return render(tokenizer, prompt.prompt, completion.text, cfg.max_length, mask)


def training_autocast(cfg: CGPOConfig) -> Any:
    """bf16 autocast for the policy's passes under `train.mixed_precision` bf16, else a no-op context."""
    bf16 = resolve_mixed_precision(cfg.train.mixed_precision) == "bf16"
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)


@torch.no_grad()
def all_token_logps(model: Any, seqs: list[Sequence], per_forward: int, pad: int, cfg: CGPOConfig) -> list[torch.Tensor]:
    """Target-token log-probs of each sequence (one float32 tensor per sequence), without gradients; under the
    update's autocast, so π_old's and π_ref's log-probs have the policy's precision (a ratio of 1 where they agree)."""
    out: list[torch.Tensor] = []
    autocast = training_autocast(cfg)
    for start in range(0, len(seqs), per_forward):
        batch = collate(seqs[start : start + per_forward], pad, cfg.data.packing)
        with autocast:
            flat = token_logps(model, batch, cfg.train.logprob_chunk).float()
        out += list(flat.split(batch.lengths().tolist()))  # targets come sequence by sequence
    return out


def all_logps(model: Any, seqs: list[Sequence], per_forward: int, pad: int, cfg: CGPOConfig) -> torch.Tensor:
    """Sum of target log-probs of each sequence (float64), without gradients."""
    per_seq = all_token_logps(model, seqs, per_forward, pad, cfg)
    return torch.stack([t.double().sum() for t in per_seq]) if per_seq else torch.zeros(0, dtype=torch.float64)


def backward_in_parts(
    model: Any,
    seqs: list[Sequence],
    group: int,
    per_forward: int,
    pad: int,
    cfg: CGPOConfig,
    scale: float,
    part_loss: Any,
) -> float:
    """Forward + backward `seqs` a few units at a time (a unit is `group` consecutive sequences: 2 for a CODPO
    pair); `part_loss(start, token_logps, batch)` gives the summed loss of the units from unit `start`. Each unit's
    loss depends only on its own sequences (batch-level terms were precomputed), so the gradient is exact."""
    total = 0.0
    autocast = training_autocast(cfg)
    width = per_forward * group
    for start in range(0, len(seqs), width):
        batch = collate(seqs[start : start + width], pad, cfg.data.packing)
        with autocast:
            per_token = token_logps(model, batch, cfg.train.logprob_chunk)
        loss = part_loss(start // group, per_token, batch)
        (loss * scale).backward()
        total += float(loss.detach())
    return total


# ---------------------------------------------------------------------------------------------------- one task step


@dataclass
class OnlineState:
    """What every step of the online loop works with, set up once by `train_cgpo`."""

    model: Any  # the policy being trained
    reference: Any  # π_ref: the starting policy, frozen; None when no task needs it (`needs_reference`)
    tokenizer: Any
    backend: Any  # samples from the current policy (or its bf16 copy)
    mixture: MixtureOfJudges
    baselines: dict[str, str]  # ā per prompt id
    # log π_ref(ā|s) per prompt id, filled as CODPO's fallback needs them: ā and π_ref never change.
    baseline_ref_logps: dict[str, float] = field(default_factory=dict)
    accel: Any = None  # accelerate's Accelerator: with several processes, each rolls out its share of a batch

    @property
    def pad(self) -> int:
        return pad_token_id(self.tokenizer)

    def reduce_sum(self, *values: float) -> list[float]:
        """The sums of `values` over every process (the values themselves in a single process): the batch-level
        counts and statistics a loss is normalised by, so N processes compute the one-process loss between them."""
        if self.accel is None or self.accel.num_processes == 1:
            return [float(v) for v in values]
        local = torch.tensor([float(v) for v in values], dtype=torch.float64).to(self.accel.device)
        return [float(v) for v in self.accel.reduce(local, reduction="sum").cpu().tolist()]


@dataclass
class Rollout:
    """One task's batch after generation, judging and the no-grad log-prob passes; index i is the i-th response
    (prompt `prompt_of[i]`), grouped by prompt."""

    batch: list[Prompt]
    prompt_of: list[int]
    completions: list[Completion]
    results: list[MixtureResult]
    seqs: list[Sequence | None]  # None: not trainable (empty, or no room)
    ok: list[bool | None]  # satisfied (AND of the judges); None: a judge or the reward failed
    reward: list[float]
    calibrated: list[float]
    ref_logps: torch.Tensor
    logratio: torch.Tensor  # log π_w(a|s) − log π_ref(a|s); nan where not trainable
    # Per target token, for the GRPO family: the policy that sampled (π_old) and π_ref; None where not trainable.
    old_token_logps: list[torch.Tensor | None] = field(default_factory=list)
    ref_token_logps: list[torch.Tensor | None] = field(default_factory=list)

    def of_prompt(self, b: int) -> list[int]:
        return [i for i, p in enumerate(self.prompt_of) if p == b and self.seqs[i] is not None]


@dataclass
class Update:
    """What an optimizer trains on: `seqs` in units of `group` sequences, `n` units for the 1/n mean (counted over
    every process), and `part_loss(first unit, target-token log-probs, batch)` for the summed loss of a run of
    units."""

    seqs: list[Sequence]
    group: int
    n: int
    part_loss: Callable[[int, torch.Tensor, Batch], torch.Tensor]
    stats: dict[str, Any]


def crpg_update(task: CGPOTask, r: Rollout, state: OnlineState) -> Update:
    use = [i for i, s in enumerate(r.seqs) if s is not None and r.ok[i] is not None]
    r_cr = torch.tensor([(r.results[i].constrained_reward or 0.0) if r.ok[i] else 0.0 for i in use],
                        dtype=torch.float64)  # fmt: skip
    shaped = losses.crpg_rewards(r_cr, r.logratio[use], task.kl_max)
    total, n = state.reduce_sum(float(shaped.sum()), len(use))  # the batch mean, over every process's share
    adv = losses.crpg_advantages(r_cr, r.logratio[use], task.kl_max, baseline=total / max(n, 1))

    def part_loss(start: int, per_token: torch.Tensor, batch: Batch) -> torch.Tensor:
        logps = sequence_logps(per_token, batch)
        return losses.crpg_loss(logps, adv[start : start + len(logps)].to(logps)).sum()

    stats = {"shaped_reward": float(shaped.mean()) if use else 0.0, "trained": len(use)}
    return Update([s for i in use if (s := r.seqs[i]) is not None], 1, int(n), part_loss, stats)


def baseline_target(prompt: Prompt, state: OnlineState, cfg: CGPOConfig) -> tuple[Sequence, float] | None:
    """ā as a training target, with its calibrated reward σ(r(ā) − r(ā)) = 0.5, when it satisfies every constraint."""
    base = state.baselines[prompt.id]
    check = state.mixture.evaluate([prompt], [base], baseline=[base])[0]
    if check.value != 1 or check.calibrated is None or not base.strip():
        return None
    seq = render(state.tokenizer, prompt.prompt, base, cfg.data.max_length, cfg.data.mask_format_tokens)
    return (seq, check.calibrated) if seq is not None else None


def codpo_update(task: CGPOTask, r: Rollout, state: OnlineState, cfg: CGPOConfig) -> Update:
    seqs: list[Sequence] = []
    ref: list[float] = []
    fallbacks = 0
    for b, prompt in enumerate(r.batch):
        idx = r.of_prompt(b)
        ok = [r.ok[i] for i in idx]
        pick = codpo_pair(ok, [r.reward[i] for i in idx])
        if pick is not None:
            chosen, rejected = idx[pick[0]], idx[pick[1]]
            seqs += [r.seqs[chosen], r.seqs[rejected]]  # type: ignore[list-item]
            ref += [float(r.ref_logps[chosen]), float(r.ref_logps[rejected])]
            continue
        violated = [i for i, v in zip(idx, ok, strict=True) if v is False]
        if not (task.baseline_chosen and violated and not any(v is True for v in ok)):
            continue
        target = baseline_target(prompt, state, cfg)
        if target is None:
            continue
        rejected = min(violated, key=lambda i: r.reward[i])
        seqs += [target[0], r.seqs[rejected]]  # type: ignore[list-item]
        ref += [baseline_ref_logp(prompt, target[0], state, cfg), float(r.ref_logps[rejected])]
        fallbacks += 1
    ref_pairs = torch.tensor(ref, dtype=torch.float64).reshape(-1, 2)

    def part_loss(start: int, per_token: torch.Tensor, batch: Batch) -> torch.Tensor:
        logps, lengths = sequence_logps(per_token, batch), batch.lengths().to(per_token.device)
        part = ref_pairs[start : start + len(logps) // 2].to(logps)
        chosen, rejected = logps[0::2], logps[1::2]
        return losses.codpo_loss(
            chosen, rejected, part[:, 0], part[:, 1], lengths[0::2], task.beta, task.lam
        ).sum()

    n = len(seqs) // 2
    stats = {"pairs": n, "baseline_used": fallbacks, "skipped_prompts": len(r.batch) - n}
    return Update(seqs, 2, int(state.reduce_sum(n)[0]), part_loss, stats)


def baseline_ref_logp(prompt: Prompt, seq: Sequence, state: OnlineState, cfg: CGPOConfig) -> float:
    """log π_ref(ā|s): ā and π_ref never change, so once per prompt."""
    cache = state.baseline_ref_logps
    if prompt.id not in cache:
        cache[prompt.id] = float(all_logps(state.reference, [seq], 1, state.pad, cfg)[0])
    return cache[prompt.id]


def multi_sample_update(task: CGPOTask, r: Rollout, state: OnlineState, seed: int) -> Update:
    """mDPO / mIPO on-policy: a unit is one prompt's `group_size` chosen then `group_size` rejected sequences, drawn
    with a generator seeded by the step's seed and the prompt (a resumed run draws the same)."""
    size, seqs, ref = task.group_size, [], []
    for b, prompt in enumerate(r.batch):
        idx = r.of_prompt(b)  # trainable responses only
        pick = multi_sample_groups([r.ok[i] for i in idx], size, random.Random(f"{seed}:{prompt.id}"))
        if pick is None:
            continue
        unit = [idx[i] for i in pick[0] + pick[1]]
        seqs += [s for i in unit if (s := r.seqs[i]) is not None]
        ref += [float(r.ref_logps[i]) for i in unit]
    ref_units = torch.tensor(ref, dtype=torch.float64).reshape(-1, 2 * size)

    def part_loss(start: int, per_token: torch.Tensor, batch: Batch) -> torch.Tensor:
        logps = sequence_logps(per_token, batch).reshape(-1, 2 * size)
        lengths = batch.lengths().to(per_token.device).reshape(-1, 2 * size)
        part = ref_units[start : start + len(logps)].to(logps)
        groups = torch.arange(len(logps), device=logps.device).repeat_interleave(size)
        chosen, rejected = logps[:, :size].reshape(-1), logps[:, size:].reshape(-1)
        ref_chosen, ref_rejected = part[:, :size].reshape(-1), part[:, size:].reshape(-1)
        if task.optimizer == "mdpo":
            return losses.mdpo_loss(chosen, rejected, ref_chosen, ref_rejected, groups, task.beta).sum()
        return losses.mipo_loss(chosen, rejected, ref_chosen, ref_rejected, lengths[:, :size].reshape(-1),
                                lengths[:, size:].reshape(-1), groups, task.beta, task.unbiased).sum()  # fmt: skip

    n = len(ref_units)
    stats = {"groups": n, "skipped_prompts": len(r.batch) - n}
    return Update(seqs, 2 * size, int(state.reduce_sum(n)[0]), part_loss, stats)


def crraft_update(task: CGPOTask, r: Rollout, state: OnlineState, cfg: CGPOConfig) -> Update:
    seqs, weights, fallbacks = [], [], 0
    for b, prompt in enumerate(r.batch):
        idx = r.of_prompt(b)
        logratios = [float(r.logratio[i]) for i in idx]
        pick = crraft_choice([r.ok[i] for i in idx], [r.reward[i] for i in idx], logratios, task.kl_max)
        chosen = r.seqs[idx[pick]] if pick is not None else None
        if chosen is not None and pick is not None:
            seqs.append(chosen)
            weights.append(r.calibrated[idx[pick]])
            continue
        # No response qualifies: train on ā, but only if it satisfies every constraint itself.
        target = baseline_target(prompt, state, cfg)
        if target is not None:
            seqs.append(target[0])
            weights.append(target[1])
            fallbacks += 1
    w = torch.tensor(weights, dtype=torch.float64)

    def part_loss(start: int, per_token: torch.Tensor, batch: Batch) -> torch.Tensor:
        logps = sequence_logps(per_token, batch)
        return losses.crraft_loss(logps, w[start : start + len(logps)].to(logps)).sum()

    stats = {"selected": len(seqs), "baseline_used": fallbacks, "skipped_prompts": len(r.batch) - len(seqs)}
    return Update(seqs, 1, int(state.reduce_sum(len(seqs))[0]), part_loss, stats)


def satisfied(task: CGPOTask, result: MixtureResult, completion: Completion, require_finished: bool) -> bool | None:
    """Every constraint judge passed; None when a judge or the reward failed (-1 says nothing about the response:
    neither satisfied nor violated, left out). A response cut off by the token budget is violated when
    `require_finished`: its verdicts judged a fragment."""
    # CGPO's optimizers need the calibrated reward; the GRPO family only r(s, a).
    if task.optimizer in CGPO_OPTIMIZERS:
        failed = result.constrained_reward is None
    else:
        failed = result.value == -1 or result.reward is None
    if failed:
        return None
    return result.value == 1 and (completion.finish_reason != "length" or not require_finished)


def rollout(
    task: CGPOTask, batch: list[Prompt], step: int, state: OnlineState, cfg: CGPOConfig, refill: int = 0
) -> Rollout:
    """Algorithm 1, lines 3-6: K responses per prompt from the current policy, judged, with their log-ratios."""
    model, gen = state.model, cfg.generation
    per_forward = cfg.train.examples_per_forward or 10**9
    model.eval()
    rank = 0 if state.accel is None else state.accel.process_index
    # A resumed run samples what the uninterrupted one sampled; each process (and each refill) draws its own stream.
    seed = cfg.train.seed * 1_000_003 + step + rank * 7_919 + refill * 1_000_033
    params = SamplingParams(gen.max_new_tokens, gen.temperature, gen.top_p, seed=seed)
    rows = state.backend.generate([p.prompt for p in batch], task.k, params)
    prompt_of = [b for b, row in enumerate(rows) for _ in row]
    completions = [c for row in rows for c in row]
    if task.optimizer not in CGPO_OPTIMIZERS:  # r(s, a) only: these compare a prompt's K responses, not ā
        items = make_items([batch[b] for b in prompt_of], [c.text for c in completions], None)
        results = state.mixture.evaluate_items(items, calibrate=False)
    else:
        results = state.mixture.evaluate(
            [batch[b] for b in prompt_of],
            [c.text for c in completions],
            baseline=[state.baselines[batch[b].id] for b in prompt_of],
        )
    seqs = [
        to_sequence(state.tokenizer, batch[b], c, cfg.data)
        for b, c in zip(prompt_of, completions, strict=True)
    ]
    trainable = [s for s in seqs if s is not None]
    where = [i for i, s in enumerate(seqs) if s is not None]
    policy_lp = torch.full((len(seqs),), float("nan"), dtype=torch.float64)
    ref_lp = policy_lp.clone()
    old_tokens: list[torch.Tensor | None] = [None] * len(seqs)
    ref_tokens: list[torch.Tensor | None] = [None] * len(seqs)
    if trainable and needs_old_pass(task, cfg):
        for i, t in zip(where, all_token_logps(model, trainable, per_forward, state.pad, cfg), strict=True):
            old_tokens[i], policy_lp[i] = t, t.double().sum()
    if trainable and state.reference is not None:
        for i, t in zip(where, all_token_logps(state.reference, trainable, per_forward, state.pad, cfg), strict=True):
            ref_tokens[i], ref_lp[i] = t, t.double().sum()
    model.train()
    return Rollout(
        batch=batch,
        prompt_of=prompt_of,
        completions=completions,
        results=results,
        seqs=seqs,
        ok=[satisfied(task, res, c, gen.require_finished) for res, c in zip(results, completions, strict=True)],
        reward=[r.reward if r.reward is not None else 0.0 for r in results],
        calibrated=[r.calibrated if r.calibrated is not None else 0.0 for r in results],
        ref_logps=ref_lp,
        logratio=policy_lp - ref_lp,
        old_token_logps=old_tokens,
        ref_token_logps=ref_tokens,
    )


def joined(a: Rollout, b: Rollout) -> Rollout:
    """Two rollouts of one step as one (b's prompts numbered after a's)."""
    return Rollout(
        batch=a.batch + b.batch,
        prompt_of=a.prompt_of + [p + len(a.batch) for p in b.prompt_of],
        completions=a.completions + b.completions,
        results=a.results + b.results,
        seqs=a.seqs + b.seqs,
        ok=a.ok + b.ok,
        reward=a.reward + b.reward,
        calibrated=a.calibrated + b.calibrated,
        ref_logps=torch.cat([a.ref_logps, b.ref_logps]),
        logratio=torch.cat([a.logratio, b.logratio]),
        old_token_logps=a.old_token_logps + b.old_token_logps,
        ref_token_logps=a.ref_token_logps + b.ref_token_logps,
    )


def prepare_step(
    name: str,
    task: CGPOTask,
    batch: list[Prompt],
    step: int,
    state: OnlineState,
    cfg: CGPOConfig,
    more: Callable[[], list[Prompt]] | None = None,
) -> tuple[Update, dict[str, Any]]:
    """Generate and judge one task's batch and build its optimizer's update (Algorithm 1, lines 3-10); returns the
    update and the rollout's metrics. With `task.refill`, `more()` gives the next batch of prompts to roll out while
    too few of the step's prompts carry signal (DAPO's dynamic sampling; every process refills alike)."""
    r = rollout(task, batch, step, state, cfg)
    refills = 0
    if task.optimizer in GROUP_OPTIMIZERS:
        from posttrain.train.grpo import group_update, informative_groups

        while more is not None and refills < task.refill:
            if state.reduce_sum(informative_groups(task, r, cfg))[0] >= task.batch_size:
                break
            refills += 1
            r = joined(r, rollout(task, more(), step, state, cfg, refill=refills))
        update = group_update(task, r, cfg, state)
        if task.refill:
            update.stats["refills"] = refills
    elif task.optimizer == "crpg":
        update = crpg_update(task, r, state)
    elif task.optimizer == "codpo":
        update = codpo_update(task, r, state, cfg)
    elif task.optimizer in MULTI_SAMPLE_OPTIMIZERS:
        update = multi_sample_update(task, r, state, cfg.train.seed * 1_000_003 + step)
    else:
        update = crraft_update(task, r, state, cfg)
    judged = [res for res in r.results if res.value != -1]
    trained = [s for s in r.seqs if s is not None]
    row = {
        "violation": sum(ok is False for ok in r.ok) / max(sum(ok is not None for ok in r.ok), 1),
        "truncated": sum(c.finish_reason == "length" for c in r.completions) / max(len(r.completions), 1),
        "calibrated_reward": sum(r.calibrated) / max(len(r.calibrated), 1),
        "reward": sum(r.reward) / max(len(r.reward), 1),
        "response_length": sum(c.completion_tokens for c in r.completions) / max(len(r.completions), 1),
        "judge_failures": len(r.results) - len(judged),
        "tokens": sum(s.n_targets for s in trained),
    }
    if not r.logratio.isnan().all():  # the log-ratio to π_ref exists when both passes ran
        row["kl"] = float(r.logratio[~r.logratio.isnan()].mean())
    for judge in state.mixture.task_judges(name).constraints:
        values = [res.judgments[judge.name].value for res in r.results]
        values = [v for v in values if v != -1]
        row[f"violation/{judge.name}"] = sum(v == 0 for v in values) / max(len(values), 1)
    return update, row


def backward_update(task: CGPOTask, update: Update, state: OnlineState, cfg: CGPOConfig) -> float:
    """Backward one task's update with Algorithm 1's (1/n)Σ over its units, times Algorithm 2's ρ_l; the loss."""
    n = max(update.n, 1)
    per_forward = cfg.train.examples_per_forward or 10**9
    loss_sum = backward_in_parts(
        state.model, update.seqs, update.group, per_forward, state.pad, cfg, task.weight / n, update.part_loss
    )
    return loss_sum / n


def task_step(
    name: str,
    task: CGPOTask,
    batch: list[Prompt],
    step: int,
    state: OnlineState,
    cfg: CGPOConfig,
    more: Callable[[], list[Prompt]] | None = None,
) -> dict[str, Any]:
    """Generate, judge and backward one task's batch once (Algorithm 1, lines 3-12); returns its metrics."""
    update, row = prepare_step(name, task, batch, step, state, cfg, more)
    row["loss"] = backward_update(task, update, state, cfg)
    return {**row, **update.stats}


def merge_rows(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Step metrics: one task's as they are; several tasks' under `<task>/` plus their loss total."""
    if len(rows) == 1:
        return next(iter(rows.values()))
    merged: dict[str, Any] = {"loss": sum(r["loss"] for r in rows.values())}
    for task, row in rows.items():
        merged.update({f"{task}/{k}": v for k, v in row.items()})
    for key in ("violation", "calibrated_reward", "kl", "response_length"):
        if all(key in r for r in rows.values()):
            merged[key] = sum(r[key] for r in rows.values()) / len(rows)
    return merged


def heldout_violation(backend: Any, mixture: MixtureOfJudges, cfg: CGPOConfig, out: Path, when: str) -> None:
    """`heldout_k` responses per held-out prompt, sampled with the training settings and the same seed before and
    after training (paired), judged as in training: violated = some constraint judge fails, or the response was cut
    off while `generation.require_finished`. Writes `<out>/heldout_sampled_<when>.json` (rates) and
    `<out>/heldout_sampled_<when>.jsonl` (one row per response, for the paired comparison of `sampled_paired`)."""
    from posttrain.progress import generation_progress

    prompts = [p for p in read_records(out / "prompts" / "heldout.jsonl", Prompt) if p.instruction_id_list]
    gen = cfg.generation
    params = SamplingParams(gen.max_new_tokens, gen.temperature, gen.top_p, seed=cfg.train.seed * 1_000_003 - 1)
    rows = []
    with generation_progress(f"held-out, sampled ({when})", len(prompts)) as bar:
        for start in range(0, len(prompts), 4):
            batch = prompts[start : start + 4]
            done = backend.generate([p.prompt for p in batch], cfg.heldout_k, params)
            bar.advance(len(batch), sum(c.completion_tokens for row in done for c in row))
            rows += done
    pairs = [(p, c) for p, row in zip(prompts, rows, strict=True) for c in row]
    items = make_items([p for p, _ in pairs], [c.text for _, c in pairs], None)
    results = mixture.evaluate_items(items, None, with_reward=False)  # violation needs no reward or baseline
    responses = [
        {"prompt_id": p.id, "index": index % cfg.heldout_k, "response": c.text, "finish_reason": c.finish_reason,
         "violated": None if r.value == -1 else r.value == 0 or (c.finish_reason == "length" and gen.require_finished)}
        for index, ((p, c), r) in enumerate(zip(pairs, results, strict=True))
    ]  # fmt: skip
    judged = [row["violated"] for row in responses if row["violated"] is not None]
    summary = {
        "violation": sum(judged) / max(len(judged), 1),
        "responses": len(judged),
        "prompts": len(prompts),
        "k": cfg.heldout_k,
        "truncated": sum(c.finish_reason == "length" for _, c in pairs) / max(len(pairs), 1),
        "judge_failures": len(pairs) - len(judged),
    }
    atomic_write_text(out / f"heldout_sampled_{when}.jsonl", "".join(json.dumps(r) + "\n" for r in responses))
    atomic_write_text(out / f"heldout_sampled_{when}.json", json.dumps(summary, indent=2))


def sampled_paired(out: Path) -> Any:
    """Before vs after on the sampled held-out responses (`heldout_k`), paired by (prompt, sample index): each pair
    was sampled with the same seed, so only the policy differs. None unless both sides wrote their rows; responses
    a judge failed on are left out."""
    from posttrain.evals.paired import compare

    def passed(when: str) -> dict[str, bool] | None:
        path = out / f"heldout_sampled_{when}.jsonl"
        if not path.exists():
            return None
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return {f"{r['prompt_id']}#{r['index']}": not r["violated"] for r in rows if r["violated"] is not None}

    before, after = passed("before"), passed("after")
    return None if before is None or after is None else compare(before, after)


# ---------------------------------------------------------------------------------------------------- the loop


def sum_gradients(params: list[Any], accel: Any) -> None:
    """Add every process's gradients (each process's loss is already normalised by the whole batch's counts, so
    the sum is the one-process gradient). Done by hand rather than by DDP: a process may have fewer forward
    passes than another (or none), which DDP's per-backward collectives cannot match."""
    if accel.num_processes == 1:
        return
    import torch.distributed as dist

    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)


def over_processes(row: dict[str, Any], state: OnlineState) -> dict[str, Any]:
    """A step's metrics over every process: losses and token counts summed (each process holds a share of the
    whole batch's normalised loss), everything else averaged (the processes hold equal shares of the batch)."""
    world = 1 if state.accel is None else state.accel.num_processes
    if world == 1:
        return row
    keys = [k for k, v in row.items() if isinstance(v, int | float)]
    totals = state.reduce_sum(*(float(row[k]) for k in keys))
    summed = lambda k: k.split("/")[-1] in ("loss", "tokens", "trained", "pairs", "selected", "dropped_groups")  # noqa: E731
    return {**row, **{k: t if summed(k) else t / world for k, t in zip(keys, totals, strict=True)}}


def train_cgpo(
    cfg: CGPOConfig,
    prompts: list[Prompt] | None = None,
    source: Source | None = None,
    model: Any = None,
    tokenizer: Any = None,
) -> TrainResult:
    """Train with CGPO on `prompts` (None: the synthetic prompts of `cfg.prompts`); returns where the model and
    metrics are. `model`/`tokenizer` may be passed in already loaded; otherwise `cfg.model` is loaded."""
    from posttrain.models.embedded import load_model_and_tokenizer
    from posttrain.models.hf import HFBackend

    tasks = check_config(cfg)
    mixture = build_mixture(tasks)
    loop = cfg.train
    accel = start_process(loop)
    main = accel.is_main_process
    for name, task in tasks.items():
        if task.batch_size % accel.num_processes:
            raise InputError(f"tasks.{name}.batch_size {task.batch_size} does not split over "
                             f"{accel.num_processes} processes; make it a multiple")  # fmt: skip
    out = Path(loop.output_dir)
    synthetic = prompts is None
    source = source or Source()

    if model is None:
        model, tokenizer = load_model_and_tokenizer(cfg.model.name, dtype=torch_dtype(cfg.model.dtype))
    tokenizer = load_tokenizer_and_check(cfg.model, model, tokenizer)
    check_supported(model)
    if synthetic:
        if main:
            synthetic_prompts(cfg, out)
        accel.wait_for_everyone()
        prompts = read_records(out / "prompts" / "train.jsonl", Prompt)
    assert prompts is not None
    by_task = partition(prompts, tasks, mixture, tokenizer, cfg, source)

    used = [prompts[i] for idx in by_task.values() for i in idx]
    # Where the Ray engine runs (generation.ray) does not change what it samples: not part of the run's identity.
    generation = {k: v for k, v in asdict(cfg.generation).items() if k != "ray"}
    fingerprint = run_fingerprint(
        [p.id for p in used], model_key(cfg.model), asdict(cfg.data), asdict(cfg.lora), generation,
        asdict(cfg.baseline), {n: asdict(t) for n, t in tasks.items()},
        trajectory_settings(loop),
    )  # fmt: skip
    if loop.resume:
        check_run_matches(out, fingerprint)
    accel.wait_for_everyone()
    if main:
        if not loop.resume:
            shutil.rmtree(out / "checkpoints", ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        (out / "run.json").write_text(json.dumps({"fingerprint": fingerprint, "recipe": "cgpo"}), encoding="utf-8")
    accel.wait_for_everyone()
    dithered = dither_for_bf16(model, loop, cfg.lora)  # before π_ref and the sampler are copied from it
    if main and synthetic and cfg.evaluate and not (out / "eval_before" / "heldout" / "metrics.json").exists():
        evaluate_heldout(cfg, starting_policy(cfg, model, tokenizer, out, dithered), out, out / "eval_before")
    accel.wait_for_everyone()
    # π_ref is the starting policy, frozen; a copy costs one model of memory and keeps the loop free of swaps.
    reference = copy.deepcopy(model).eval().requires_grad_(False) if needs_reference(tasks) else None
    sampler = bf16_sampler(cfg, model if reference is None else reference)
    # ā only for CGPO's optimizers (calibrated reward, fallbacks); the GRPO family compares a prompt's K responses.
    calibrated = [prompts[i] for name, idx in by_task.items() if tasks[name].optimizer in CGPO_OPTIMIZERS for i in idx]
    if main:  # sampled once, cached in <out>/baselines.jsonl, which the other processes then read
        baselines = reference_baselines(cfg, calibrated, sampler or reference, tokenizer, out)  # sampler = π_ref now
    accel.wait_for_everyone()
    if not main:
        baselines = reference_baselines(cfg, calibrated, sampler or reference, tokenizer, out)
    model = apply_lora(model, cfg.lora)
    prepare_for_training(model, loop)
    # The policy itself, its bf16 copy, a vLLM engine or Ray actors (the last three synced after every update):
    # every step samples the current weights.
    backend: Any
    if cfg.generation.engine == "vllm":
        from posttrain.models.vllm import VLLMBackend

        backend = VLLMBackend(cfg.model.name, **cfg.generation.vllm)
    elif cfg.generation.engine == "ray":
        from posttrain.distributed.generation import RayGenerationBackend, SharedPool

        gen = cfg.generation
        pool = None
        if main:  # several training processes share one pool, driven by process 0
            pool = RayGenerationBackend(model, tokenizer, gen.ray, gen.batch_size, gen.dtype, gen.vllm, cfg.model.name)
        backend = pool if accel.num_processes == 1 else SharedPool(pool)
    else:
        backend = HFBackend(
            cfg.model.name, loop.threads, cfg.generation.batch_size, model_and_tokenizer=(sampler or model, tokenizer)
        )

    steps_per_epoch = {name: len(idx) // tasks[name].batch_size for name, idx in by_task.items()}
    total_steps = max(steps_per_epoch.values()) * loop.epochs  # a step = one rollout per task
    if loop.max_steps is not None:
        total_steps = min(total_steps, loop.max_steps)
    optimizer, scheduler = make_optimizer(model, loop, total_steps * loop.updates_per_rollout)

    step, tokens_seen = 0, 0
    saved: dict[str, Any] = {}
    resume_from = latest_checkpoint(out) if loop.resume else None
    if resume_from is not None:
        saved = load_checkpoint(resume_from, model, optimizer, scheduler)
        step, tokens_seen = int(saved["step"]), int(saved.get("tokens", 0))
    # Batches of prompts each task has rolled out: one per step, more where dynamic sampling refills a step.
    cursor = {name: int(saved.get("cursor", {}).get(name, step)) for name in tasks}

    def take(name: str) -> list[Prompt]:
        """The task's next batch (its prompts cycle, reshuffled every pass, deterministic in seed and pass); with
        N processes, process r rolls out prompts r, r + N, ... of it."""
        epoch, in_epoch = divmod(cursor[name], steps_per_epoch[name])
        idx = by_task[name]
        order = plan_batches([0] * len(idx), tasks[name].batch_size, loop.seed, epoch, cfg.data.shuffle, False)
        cursor[name] += 1
        return [prompts[idx[i]] for i in order[in_epoch]][accel.process_index :: accel.num_processes]

    if sampler is not None:
        sampler.load_state_dict(model.state_dict())
    synced = cfg.generation.engine in ENGINES_WITH_OWN_WEIGHTS
    if synced and step > 0:  # resumed: the engine still holds the starting weights
        backend.load_weights(model.named_parameters())
    sampled_eval = synthetic and cfg.evaluate and cfg.heldout_k > 0
    own = getattr(backend, "pool", backend)  # process 0's own backend, for the work it does alone
    if main and sampled_eval and step == 0 and not (out / "heldout_sampled_before.json").exists():  # π_ref only
        heldout_violation(own, mixture, cfg, out, "before")
    log = MetricsLog(out / "metrics.jsonl", step, enabled=main, report_to=loop.report_to, config=asdict(cfg))
    bar = Progress(
        total_steps, step, ["loss", "violation", "calibrated_reward", "kl", "response_length"],
        enabled=loop.progress and main, title="cgpo",
    )  # fmt: skip
    state = OnlineState(model, reference, tokenizer, backend, mixture, baselines, accel=accel)
    trainable = [p for p in model.parameters() if p.requires_grad]
    started = time.perf_counter()
    try:
        while step < total_steps:
            t0 = time.perf_counter()
            prepared = {}
            for name, task in tasks.items():
                prepared[name] = prepare_step(name, task, take(name), step, state, cfg, functools.partial(take, name))
            task_loss = dict.fromkeys(tasks, 0.0)
            for _ in range(loop.updates_per_rollout):  # GRPO's μ; CGPO's optimizers: once
                for name, task in tasks.items():
                    task_loss[name] += backward_update(task, prepared[name][0], state, cfg) / loop.updates_per_rollout
                sum_gradients(trainable, accel)
                grad_norm = (
                    float(
                        torch.nn.utils.clip_grad_norm_(
                            [p for p in model.parameters() if p.requires_grad], loop.max_grad_norm
                        )
                    )
                    if loop.max_grad_norm is not None
                    else float("nan")
                )
                lr = scheduler.get_last_lr()[0]
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            rows = {name: {**row, "loss": task_loss[name], **update.stats} for name, (update, row) in prepared.items()}
            if sampler is not None:
                sampler.load_state_dict(model.state_dict())  # casts to bf16
            if synced:
                backend.load_weights(model.named_parameters())
            step += 1
            row = over_processes(merge_rows(rows), state)
            tokens_seen += int(sum(row[k] for k in row if k == "tokens" or k.endswith("/tokens")))
            row = {"step": step, **row, "grad_norm": grad_norm, "lr": lr, "tokens_total": tokens_seen,
                   "step_seconds": time.perf_counter() - t0}  # fmt: skip
            log.write(row)
            bar.update(row)
            if loop.save_every and step % loop.save_every == 0 and step < total_steps:
                if main:
                    position = {"tokens": tokens_seen, "cursor": cursor}
                    save_checkpoint(out, step, model, optimizer, scheduler, position, loop.keep_checkpoints)
                accel.wait_for_everyone()
    finally:
        bar.close()
        log.close()
    train_seconds = time.perf_counter() - started
    model.eval()
    if main and sampled_eval:
        heldout_violation(own, mixture, cfg, out, "after")
    if cfg.generation.engine == "ray":
        backend.close()  # the actors' memory and cores go back before the final save and evaluation
    result = TrainResult(
        output_dir=out,
        model_dir=out / "model",
        metrics_path=out / "metrics.jsonl",
        metrics=log.rows,
        steps=step,
        train_seconds=train_seconds,
        tokens=tokens_seen,
        skipped=len(prompts) - len(used),
    )
    data_path = str(out / "prompts" / "train.jsonl") if synthetic else source.path
    card = ModelCard("cgpo", cfg, fingerprint, len(used), data_path, result)
    save_on_main(accel, model, tokenizer, out, cfg.lora, card)
    if main and synthetic and cfg.evaluate:
        shutil.rmtree(out / "eval_after", ignore_errors=True)  # always the model just saved
        evaluate_heldout(cfg, str(result.model_dir), out, out / "eval_after")
    return result
