"""Critic-RM (Yu et al., NAACL 2025, arXiv 2411.16646): a reward model that writes a critique, then scores it.

    result = train_critic_rm(load_config(CriticRMConfig, "recipes/critic_rm.yaml"), pairs)

What the paper states and what is our reconstruction is in docs/methods/critic_rm.md (UNVERIFIED marks). Readable
top to bottom:

1. **Critiques** (stage 1, `write_critiques`). For each preference pair, the model itself (`critiques.model`,
   default `model.name`) samples `critiques.n` critiques of the chosen and of the rejected response through a
   posttrain backend, each ending in "Score: X/10" (`judges/critic_rm.py` holds the request and the parser).
   Unparseable critiques are dropped and counted. A pair is kept when its chosen critiques score higher on average
   than its rejected ones; then a chosen critique is kept when it scores above the rejected mean, a rejected one
   when it scores below the chosen mean (`agreeing`). Refinement (`critiques.refine`): `rank` — the same model
   rates each kept critique (greedy, "Score: X/10") and the best `critiques.keep` stay; `summarize` — it merges the
   kept critiques of a response into one, kept if its score still agrees (else the best critique is kept);
   `none` — the `keep` most agreeing ones. One record per pair goes to `<output_dir>/critiques.jsonl` as it is
   done (`RecordWriter`), so a restarted run skips finished pairs.
2. **Joint training** (stage 2). One causal LM with a scalar head on its last hidden state. Each training row is
   "critique request(x, y) → critique z" rendered with the chat template: the critique tokens are next-token
   targets, and the head read at the row's last token is r(x, y, z). A pair's chosen and rejected rows, with
   their kept critiques, give λ(t)·L_critique + (1 − λ(t))·L_BT (`losses.critic_rm_loss`), λ moving from
   `loss.critique_weight_start` to `loss.critique_weight_end` over the optimizer steps (`losses.critique_weight`).
   One forward pass gives both losses.
3. **The model directory** (`<output_dir>/model/`): the causal LM in HF format (it writes critiques with plain
   `from_pretrained` or any posttrain backend), `reward_head.safetensors` and `critic_rm.json` (the request
   template, score scale, budgets). `get_judge("critic_rm", model=DIR)` (`judges/critic_rm.py`) is inference:
   m critiques per response, the mean of their rewards.
"""

from __future__ import annotations

import contextlib
import gc
import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field
from torch import Tensor, nn

from posttrain.atomic import atomic_write_text
from posttrain.errors import InputError
from posttrain.judges.critic_rm import (
    CRITIQUE_TEMPLATE,
    HEAD_FILE,
    SETTINGS_FILE,
    critique_messages,
    prompt_text,
    read_critique_score,
)
from posttrain.records import (
    Pair,
    Record,
    RecordWriter,
    Text,
    as_text,
    content_id,
    iter_jsonl_rows,
)
from posttrain.train import losses
from posttrain.train.data import (
    Batch,
    Sequence,
    Source,
    collate,
    forward_passes,
    long_prompt_error,
    pad_token_id,
    plan_batches,
    render,
)
from posttrain.train.logprobs import check_supported, head_logps, unwrap
from posttrain.train.runtime import (
    Checkpoints,
    DataConfig,
    LoopConfig,
    LoRAConfig,
    MetricsLog,
    ModelCard,
    ModelConfig,
    Progress,
    StepSums,
    Throughput,
    TrainResult,
    apply_lora,
    check_loop,
    claim_output_dir,
    dither_for_bf16,
    load_tokenizer_and_check,
    make_optimizer,
    model_key,
    plan_steps,
    prepare_for_training,
    run_fingerprint,
    save_on_main,
    start_process,
    torch_dtype,
    trajectory_settings,
)

RANK_TEMPLATE = """\
Below are a user's request, an AI assistant's response, and a critique of that response. Rate the critique: is \
it accurate, specific and fair, and does its score fit the response?
End with the line "Score: X/{scale}", where X is a whole number from 1 (a useless critique) to {scale} (an \
excellent one).

[User request]
{prompt}

[Assistant response]
{response}

[Critique]
{critique}"""

SUMMARY_TEMPLATE = """\
Below are a user's request, an AI assistant's response, and several critiques of that response. Write one \
critique that keeps the points they agree on and drops what is wrong. Be specific and brief.
End with the line "Score: X/{scale}", where X is a whole number from 1 (useless) to {scale} (excellent).

[User request]
{prompt}

[Assistant response]
{response}

{critiques}"""


# ---------------------------------------------------------------------------------------------------- configs


@dataclass
class CritiqueConfig:
    """Stage 1: how critiques are written, filtered and refined."""

    model: str | None = None  # backend spec of the critic; None = model.name (self-generated, as the paper)
    n: int = 4  # critiques sampled per response
    temperature: float = 0.8
    top_p: float = 1.0
    max_new_tokens: int = 192
    scale: int = 10  # "Score: X/scale"
    refine: Literal["none", "rank", "summarize"] = "rank"
    keep: int = 2  # critiques kept per response (rank, none); summarize keeps one
    refine_max_new_tokens: int = 96  # rank: the rating; summarize: the merged critique
    batch_size: int = 8  # pairs per generation call (and per resume unit)
    seed: int = 0


@dataclass
class CriticRMLossConfig:
    # λ(t), the critique loss's weight (the reward loss gets 1 − λ), from start to end over the optimizer steps.
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    critique_weight_start: float = 0.9
    critique_weight_end: float = 0.1


@dataclass
class CriticRMDataConfig(DataConfig):
    mask_format_tokens: bool = (
        False  # the end of turn stays a target: the critic learns to stop after its score
    )


@dataclass
class CriticRMLoopConfig(LoopConfig):
    output_dir: str = "runs/critic_rm"


@dataclass
class CriticRMConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    data: CriticRMDataConfig = field(default_factory=CriticRMDataConfig)
    train: CriticRMLoopConfig = field(default_factory=CriticRMLoopConfig)
    critiques: CritiqueConfig = field(default_factory=CritiqueConfig)
    loss: CriticRMLossConfig = field(default_factory=CriticRMLossConfig)


@dataclass
class CriticRMResult(TrainResult):
    critiques: dict[str, int] = field(default_factory=dict)  # stage 1's counts (critiques_stats.json)


def check_settings(cfg: CriticRMConfig) -> None:
    c, loss = cfg.critiques, cfg.loss
    for name in ("n", "keep", "batch_size", "max_new_tokens", "refine_max_new_tokens"):
        if getattr(c, name) < 1:
            raise InputError(f"critiques.{name} must be at least 1")
    if c.scale < 2:
        raise InputError("critiques.scale must be at least 2")
    if c.n > 1 and c.temperature == 0:
        raise InputError(
            "critiques.n > 1 needs critiques.temperature > 0 (greedy critiques are all the same)"
        )
    for name in ("critique_weight_start", "critique_weight_end"):
        if not 0 <= getattr(loss, name) <= 1:
            raise InputError(f"loss.{name} must be in [0, 1]")


def check_pairs(pairs: list[Pair], source: Source) -> None:
    """Every pair must state a preference: two different responses (a missing side is refused when read)."""
    if not pairs:
        raise InputError("no preference pairs to train on", source.path)
    for i, pair in enumerate(pairs):
        if as_text(pair.chosen).strip() == as_text(pair.rejected).strip():
            raise source.error(
                i, InputError("chosen and rejected are the same response: the pair states no preference")
            )
        if not prompt_text(pair.prompt).strip():
            raise source.error(i, InputError("the prompt is empty"))


# ---------------------------------------------------------------------------------------------------- stage 1


class CritiquedPair(Record):
    """A pair with its critiques: every sampled one (text, score or None, problem) and those kept for training."""

    pair_id: str
    settings: str  # hash of the critique settings the record was made with
    prompt: Text
    chosen: Text
    rejected: Text
    chosen_critiques: list[dict[str, Any]] = Field(default_factory=list)
    rejected_critiques: list[dict[str, Any]] = Field(default_factory=list)
    status: Literal["kept", "disagree", "unparseable"] = "kept"  # see `agreeing`
    kept_chosen: list[str] = Field(default_factory=list)
    kept_rejected: list[str] = Field(default_factory=list)
    unparseable_ratings: int = 0  # rank: ratings without a valid score (ranked last)
    summary_fallbacks: int = 0  # summarize: merged critiques that did not parse or agree (best critique kept)
    _id_fields: ClassVar[tuple[str, ...]] = ("pair_id", "settings")


def critique_settings(cfg: CriticRMConfig) -> str:
    c = cfg.critiques
    return content_id(
        c.model or cfg.model.name, c.n, c.temperature, c.top_p, c.max_new_tokens, c.scale, c.refine, c.keep,
        c.refine_max_new_tokens, c.seed, CRITIQUE_TEMPLATE, RANK_TEMPLATE, SUMMARY_TEMPLATE,
    )  # fmt: skip


Status = Literal["kept", "disagree", "unparseable"]


def agreeing(chosen: list[int | None], rejected: list[int | None]) -> tuple[Status, list[int], list[int]]:
    """(status, chosen indices, rejected indices) of the critiques whose scores agree with the label, most agreeing
    first. The pair agrees when its chosen critiques' mean score is above its rejected ones'; then a chosen critique
    agrees when it scores above the rejected mean, a rejected one when below the chosen mean (both sides keep at
    least one: the best chosen score is ≥ its mean > the rejected mean, and symmetrically)."""
    c = [s for s in chosen if s is not None]
    r = [s for s in rejected if s is not None]
    if not c or not r:
        return "unparseable", [], []
    mean_c, mean_r = statistics.fmean(c), statistics.fmean(r)
    if mean_c <= mean_r:
        return "disagree", [], []
    kept_c = sorted(
        (i for i, s in enumerate(chosen) if s is not None and s > mean_r), key=lambda i: -(chosen[i] or 0)
    )
    kept_r = sorted(
        (i for i, s in enumerate(rejected) if s is not None and s < mean_c), key=lambda i: rejected[i] or 0
    )
    return "kept", kept_c, kept_r


def rank_by_rating(candidates: list[int], ratings: list[int | None], keep: int) -> list[int]:
    """The `keep` best-rated candidates; unrated ones rank last, ties keep the agreement order."""
    order = sorted(range(len(candidates)), key=lambda k: -(ratings[k] or 0))
    return [candidates[k] for k in order[:keep]]


@dataclass
class _Side:
    """One response of a pair while its critiques are refined."""

    pair: int
    chosen: bool
    prompt: Text
    response: str
    texts: list[str]
    candidates: list[int]  # indices into texts that agree with the label, most agreeing first
    other_mean: (
        float  # the other response's mean score, which an agreeing critique's score is on the right side of
    )
    kept: list[str] = field(default_factory=list)
    unparseable_ratings: int = 0
    fallback: int = 0

    def agrees(self, score: int | None) -> bool:
        if score is None:
            return False
        return score > self.other_mean if self.chosen else score < self.other_mean


def critique_batch(
    backend: Any, pairs: list[Pair], cfg: CriticRMConfig, settings: str
) -> list[CritiquedPair]:
    """Stage 1 for a batch of pairs: sample, parse, filter by the label, refine."""
    from posttrain.models.backend import SamplingParams

    c = cfg.critiques
    responses = [as_text(r) for p in pairs for r in (p.chosen, p.rejected)]
    requests = [
        critique_messages(pairs[i // 2].prompt, r, CRITIQUE_TEMPLATE, c.scale)
        for i, r in enumerate(responses)
    ]
    params = SamplingParams(
        max_new_tokens=c.max_new_tokens, temperature=c.temperature, top_p=c.top_p, seed=c.seed
    )
    written = backend.generate(requests, c.n, params)
    records, sides = [], []
    for k, pair in enumerate(pairs):
        parsed = []
        for completions in written[2 * k : 2 * k + 2]:
            parsed.append([(x.text, *read_critique_score(x.text, c.scale)) for x in completions])
        scores = [[s for _, s, _ in side] for side in parsed]
        status, kept_c, kept_r = agreeing(scores[0], scores[1])
        records.append(
            CritiquedPair(
                pair_id=pair.id, settings=settings, prompt=pair.prompt, chosen=pair.chosen, rejected=pair.rejected,
                chosen_critiques=[{"text": t, "score": s, "problem": p} for t, s, p in parsed[0]],
                rejected_critiques=[{"text": t, "score": s, "problem": p} for t, s, p in parsed[1]],
                status=status,
            )
        )  # fmt: skip
        if status == "kept":
            mean_c = statistics.fmean(s for s in scores[0] if s is not None)
            mean_r = statistics.fmean(s for s in scores[1] if s is not None)
            texts = [[t for t, _, _ in side] for side in parsed]
            # A refined critique must still agree: above the rejected mean for the chosen side, below the chosen
            # mean for the rejected side.
            sides.append(_Side(k, True, pair.prompt, responses[2 * k], texts[0], kept_c, mean_r))
            sides.append(_Side(k, False, pair.prompt, responses[2 * k + 1], texts[1], kept_r, mean_c))
    refine(backend, sides, c)
    for side in sides:
        record = records[side.pair]
        if side.chosen:
            record.kept_chosen = side.kept
        else:
            record.kept_rejected = side.kept
        record.unparseable_ratings += side.unparseable_ratings
        record.summary_fallbacks += side.fallback
    return records


def refine(backend: Any, sides: list[_Side], c: CritiqueConfig) -> None:
    """Fill each side's `kept` critiques as `critiques.refine` says; one greedy generation call for all sides."""
    from posttrain.models.backend import SamplingParams

    if c.refine == "none" or not sides:
        for side in sides:
            side.kept = [side.texts[i] for i in side.candidates[: c.keep]]
        return
    greedy = SamplingParams(max_new_tokens=c.refine_max_new_tokens, temperature=0.0, seed=c.seed)
    prompt = lambda side: prompt_text(side.prompt).strip()  # noqa: E731
    if c.refine == "rank":
        asks = [(side, i) for side in sides for i in side.candidates]
        texts = [RANK_TEMPLATE.format(prompt=prompt(s), response=s.response.strip(), critique=s.texts[i].strip(),
                                      scale=c.scale) for s, i in asks]  # fmt: skip
        answers = (
            backend.generate([[{"role": "user", "content": t}] for t in texts], 1, greedy) if texts else []
        )
        ratings: dict[int, list[int | None]] = {id(s): [] for s in sides}
        for (side, _), answer in zip(asks, answers, strict=True):
            rating = read_critique_score(answer[0].text, c.scale)[0]
            side.unparseable_ratings += rating is None
            ratings[id(side)].append(rating)
        for side in sides:
            side.kept = [side.texts[i] for i in rank_by_rating(side.candidates, ratings[id(side)], c.keep)]
        return
    texts = []
    for side in sides:
        listed = "\n\n".join(
            f"[Critique {n}]\n{side.texts[i].strip()}" for n, i in enumerate(side.candidates, 1)
        )
        texts.append(SUMMARY_TEMPLATE.format(prompt=prompt(side), response=side.response.strip(), critiques=listed,
                                             scale=c.scale))  # fmt: skip
    answers = backend.generate([[{"role": "user", "content": t}] for t in texts], 1, greedy)
    for side, answer in zip(sides, answers, strict=True):
        summary = answer[0].text
        if side.agrees(read_critique_score(summary, c.scale)[0]):
            side.kept = [summary]
        else:  # a summary that lost its score, or changed it against the label, is not kept
            side.fallback += 1
            side.kept = [side.texts[side.candidates[0]]]


def read_critique_file(path: Path, settings: str) -> list[CritiquedPair]:
    """The records of an existing critiques file (finished or partial); refused when made with other settings."""
    from posttrain.records import parse_row

    rows = []
    for line, row in iter_jsonl_rows(path):
        record = parse_row(row, CritiquedPair, path, line)
        if record.settings != settings:
            raise InputError(
                "made with other critique settings (critiques.* or the critic model); use another "
                "train.output_dir or delete the file to write the critiques again", path, line,
            )  # fmt: skip
        rows.append(record)
    return rows


def write_critiques(
    pairs: list[Pair], cfg: CriticRMConfig, path: Path, backend: Any = None
) -> tuple[list[CritiquedPair], dict[str, int]]:
    """Stage 1, resumable: pairs already in `path` (or its `.partial`) are not critiqued again. Returns the
    records of `pairs` in their order, and the counts."""
    settings = critique_settings(cfg)
    partial = path.with_name(path.name + ".partial")
    for existing in (partial, path):
        if existing.exists():
            read_critique_file(existing, settings)
            break
    unique = list({p.id: p for p in pairs}.values())
    with RecordWriter(path) as writer:
        todo = [p for p in unique if content_id(p.id, settings) not in writer.done]
        if todo and backend is None:
            from posttrain.models import load_backend

            backend = load_backend(cfg.critiques.model or cfg.model.name, threads=cfg.train.threads)
        bar = Progress(
            len(unique), len(unique) - len(todo), [], enabled=cfg.train.progress, title="critiques"
        )
        try:
            for start in range(0, len(todo), cfg.critiques.batch_size):
                batch = todo[start : start + cfg.critiques.batch_size]
                for record in critique_batch(backend, batch, cfg, settings):
                    writer.write(record)
                bar.update({"step": len(unique) - len(todo) + start + len(batch)})
        finally:
            bar.close()
    by_pair = {r.pair_id: r for r in read_critique_file(path, settings)}
    records = [by_pair[p.id] for p in unique]
    stats = critique_counts(records, cfg.critiques.refine)
    atomic_write_text(path.with_name("critiques_stats.json"), json.dumps(stats, indent=2) + "\n")
    return records, stats


def critique_counts(records: list[CritiquedPair], refine_mode: str) -> dict[str, int]:
    all_critiques = [c for r in records for c in (*r.chosen_critiques, *r.rejected_critiques)]
    return {
        "pairs": len(records),
        "pairs_kept": sum(r.status == "kept" for r in records),
        "pairs_disagree": sum(r.status == "disagree" for r in records),
        "pairs_unparseable": sum(r.status == "unparseable" for r in records),
        "critiques": len(all_critiques),
        "critiques_unparseable": sum(c.get("score") is None for c in all_critiques),
        "critiques_kept": sum(len(r.kept_chosen) + len(r.kept_rejected) for r in records),
        "ratings_unparseable": sum(r.unparseable_ratings for r in records) if refine_mode == "rank" else 0,
        "summary_fallbacks": sum(r.summary_fallbacks for r in records) if refine_mode == "summarize" else 0,
    }


# ---------------------------------------------------------------------------------------------------- stage 2


@dataclass
class Example:
    """One training row pair: a pair's chosen and rejected response, each with one of its kept critiques."""

    record: int
    chosen: Sequence
    rejected: Sequence


def training_examples(
    records: list[CritiquedPair], tokenizer: Any, cfg: CriticRMConfig
) -> tuple[list[Example], dict[str, int]]:
    """Kept critiques as rows: the i-th chosen critique with the i-th rejected one (the shorter side's list
    repeats), so every kept critique is a target. A kept critique that does not parse (an edited file) is dropped
    and counted; a prompt that leaves no room follows `data.long_prompt`."""
    c, data = cfg.critiques, cfg.data
    examples: list[Example] = []
    dropped = {"dropped_unparseable": 0, "skipped_long": 0}
    for k, record in enumerate(records):
        if record.status != "kept":
            continue
        sides = []
        for response, kept in ((record.chosen, record.kept_chosen), (record.rejected, record.kept_rejected)):
            good = [z for z in kept if read_critique_score(z, c.scale)[0] is not None]
            dropped["dropped_unparseable"] += len(kept) - len(good)
            request: Any = critique_messages(record.prompt, as_text(response), CRITIQUE_TEMPLATE, c.scale)
            sides.append(
                [render(tokenizer, request, z, data.max_length, data.mask_format_tokens) for z in good]
            )
        if not sides[0] or not sides[1]:
            continue
        for i in range(max(len(sides[0]), len(sides[1]))):
            chosen, rejected = sides[0][i % len(sides[0])], sides[1][i % len(sides[1])]
            if chosen is None or rejected is None:
                if data.long_prompt == "skip":
                    dropped["skipped_long"] += 1
                    continue
                raise InputError(f"pair {record.pair_id}: {long_prompt_error(data.max_length).what}")
            examples.append(Example(k, chosen, rejected))
    return examples, dropped


class CritiqueAndReward(nn.Module):
    """The critic and its reward head: one decoder pass gives the critique tokens' log-probs (LM head at the
    positions that predict them) and r(x, y, z) (scalar head at each row's last token)."""

    def __init__(self, lm: Any, chunk_size: int = 1024):
        super().__init__()
        self.lm = lm
        config = unwrap(lm).config.get_text_config()
        self.head = nn.Linear(config.hidden_size, 1, bias=False)
        nn.init.normal_(self.head.weight, std=getattr(config, "initializer_range", 0.02))
        self.chunk_size = chunk_size

    def forward(self, batch: Batch) -> tuple[Tensor, Tensor]:
        base = unwrap(self.lm)
        lm_head = base.get_output_embeddings()
        device = lm_head.weight.device
        hidden = base.get_decoder()(
            input_ids=batch.input_ids.to(device),
            position_ids=batch.position_ids.to(device),
            attention_mask=None if batch.attention_mask is None else batch.attention_mask.to(device),
            use_cache=False,
        ).last_hidden_state
        flat = hidden.reshape(-1, hidden.shape[-1])
        logps = head_logps(flat.index_select(0, batch.pred_index.to(device)), lm_head,
                           batch.target_ids.to(device), self.chunk_size)  # fmt: skip
        last = flat.index_select(0, batch.seq_end.to(device))
        return logps, self.head(last.to(self.head.weight.dtype)).squeeze(-1).float()


def save_head(model_dir: Path, head: nn.Linear, cfg: CriticRMConfig) -> None:
    """The reward head and the settings inference needs, beside the saved LM."""
    from safetensors.torch import save_file

    save_file({"weight": head.weight.detach().cpu().contiguous()}, str(model_dir / HEAD_FILE))
    settings = {
        "format": "posttrain-critic-rm/1",
        "template": CRITIQUE_TEMPLATE,
        "scale": cfg.critiques.scale,
        "max_new_tokens": cfg.critiques.max_new_tokens,
        "max_length": cfg.data.max_length,
        "base_model": cfg.model.name,
    }
    atomic_write_text(model_dir / SETTINGS_FILE, json.dumps(settings, indent=2) + "\n")


def train_critic_rm(
    cfg: CriticRMConfig,
    pairs: list[Pair],
    source: Source | None = None,
    critic: Any = None,
    model: Any = None,
    tokenizer: Any = None,
) -> CriticRMResult:
    """Stage 1 (critiques, with `critic` or the backend of `critiques.model`) then stage 2 (joint training of
    `model`, a causal LM, default `model.name`)."""
    from posttrain.models.embedded import load_model_and_tokenizer

    check_loop(cfg.train)
    check_settings(cfg)
    source = source or Source()
    check_pairs(pairs, source)
    loop = cfg.train
    out = Path(loop.output_dir)

    # -- stage 1: critiques written by the model, kept where they agree with the label -----------------------
    records, stats = write_critiques(pairs, cfg, out / "critiques.jsonl", critic)
    del critic
    gc.collect()  # the critic's weights go before the trained copy loads

    # -- stage 2: next-token loss on the kept critiques + Bradley-Terry on the critique-conditioned reward ------
    accel = start_process(loop)
    if model is None:
        model, tokenizer = load_model_and_tokenizer(cfg.model.name, dtype=torch_dtype(cfg.model.dtype))
    tokenizer = load_tokenizer_and_check(cfg.model, model, tokenizer)
    check_supported(model)
    examples, dropped = training_examples(records, tokenizer, cfg)
    stats.update(dropped, examples=len(examples))
    if not examples:
        raise InputError(
            f"no pair has critiques that agree with its label ({stats['pairs']} pairs: {stats['pairs_disagree']} "
            f"disagree, {stats['pairs_unparseable']} without a parseable critique on a side; "
            f"{stats['critiques_unparseable']} of {stats['critiques']} critiques unparseable)",
            out / "critiques.jsonl",
        )
    pad = pad_token_id(tokenizer)
    plan = plan_steps(len(examples), loop, accel, "critiqued pairs")
    fingerprint = run_fingerprint(
        [records[e.record].id for e in examples], [e.chosen.ids + e.rejected.ids for e in examples], model_key(cfg.model),
        cfg.data.__dict__, cfg.loss.__dict__, cfg.lora.__dict__, trajectory_settings(loop),
    )  # fmt: skip
    out = claim_output_dir(loop, fingerprint, "critic-rm", accel)

    dither_for_bf16(model, loop, cfg.lora)
    model = apply_lora(model, cfg.lora)
    prepare_for_training(model, loop)
    joint = CritiqueAndReward(model, loop.logprob_chunk)
    joint.train()
    lengths = [len(e.chosen.ids) + len(e.rejected.ids) for e in examples]
    optimizer, scheduler = make_optimizer(joint, loop, plan.total_steps)
    wrapped, optimizer = accel.prepare(joint, optimizer)
    trained = accel.unwrap_model(wrapped)
    checkpoints = Checkpoints(out, loop, accel, trained, optimizer, scheduler, plan.total_steps)
    step, tokens_seen = checkpoints.resume()
    log = MetricsLog(
        out / "metrics.jsonl", step, accel.is_main_process, report_to=loop.report_to, config=asdict(cfg)
    )
    bar = Progress(
        plan.total_steps, step, ["loss", "critique_loss", "rm_loss", "accuracy", "tokens_per_s"],
        enabled=loop.progress and accel.is_main_process, title="critic-rm",
    )  # fmt: skip
    speed = Throughput()
    try:
        while step < plan.total_steps:
            epoch = plan.epoch(step)
            weight = losses.critique_weight(
                step, plan.total_steps, cfg.loss.critique_weight_start, cfg.loss.critique_weight_end, cfg.loss.schedule
            )  # fmt: skip
            batches = plan_batches(
                lengths, loop.batch_size, loop.seed, epoch, cfg.data.shuffle, cfg.data.bucket_by_length
            )
            mine = plan.micro_batches(batches, step)
            # Both losses are means over the whole step (critique tokens, pairs), so passes and accumulation add up.
            step_targets = sum(
                examples[i].chosen.n_targets + examples[i].rejected.n_targets for idx in mine for i in idx
            )
            step_pairs = sum(len(idx) for idx in mine)
            passes = forward_passes(mine, loop.examples_per_forward)
            sums = StepSums("critique_nll", "targets", "bt", "pairs", "accuracy", "margin", "tokens")
            for p, (_, part) in enumerate(passes):
                batch = collate(
                    [s for i in part for s in (examples[i].chosen, examples[i].rejected)],
                    pad,
                    cfg.data.packing,
                )
                sync = contextlib.nullcontext() if p == len(passes) - 1 else accel.no_sync(wrapped)
                with sync:
                    with accel.autocast():
                        token_logps, rewards = wrapped(batch)
                    chosen, rejected = rewards[0::2], rewards[1::2]  # rows alternate chosen, rejected
                    loss = losses.critic_rm_loss(
                        token_logps, chosen, rejected, weight, step_targets, step_pairs
                    )
                    accel.backward(loss)
                chosen, rejected = chosen.detach(), rejected.detach()
                sums.add(
                    critique_nll=-token_logps.detach().double().sum(),
                    bt=losses.bradley_terry_loss(chosen, rejected).double().sum(),
                    accuracy=(chosen > rejected).double().sum(),
                    margin=(chosen - rejected).double().sum(),
                    tokens=batch.n_tokens,
                )
            sums.add(targets=step_targets, pairs=step_pairs)
            grad_norm = (
                float(accel.clip_grad_norm_(wrapped.parameters(), loop.max_grad_norm))
                if loop.max_grad_norm is not None
                else float("nan")
            )
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1

            totals = sums.reduce(accel)
            tokens_seen += int(totals["tokens"])
            critique_loss, rm_loss = (
                totals["critique_nll"] / totals["targets"],
                totals["bt"] / totals["pairs"],
            )
            row = {
                "step": step,
                "epoch": epoch,
                "loss": weight * critique_loss + (1 - weight) * rm_loss,
                "critique_loss": critique_loss,
                "rm_loss": rm_loss,
                "critique_weight": weight,
                "accuracy": totals["accuracy"] / totals["pairs"],
                "margin": totals["margin"] / totals["pairs"],
                "grad_norm": grad_norm,
                "lr": lr,
                "tokens": tokens_seen,
                "tokens_per_s": speed.add(int(totals["tokens"])),
            }
            log.write(row)
            bar.update(row)
            checkpoints.save_if_due(step, epoch, tokens_seen)
    finally:
        bar.close()
        log.close()
    result = CriticRMResult(
        output_dir=out,
        model_dir=out / "model",
        metrics_path=out / "metrics.jsonl",
        metrics=log.rows,
        steps=step,
        train_seconds=speed.elapsed(),
        tokens=tokens_seen,
        skipped=dropped["skipped_long"],
        critiques=stats,
    )
    card = ModelCard("critic-rm", cfg, fingerprint, len(examples), source.path, result)
    save_on_main(accel, trained.lm, tokenizer, out, cfg.lora, card)
    if accel.is_main_process:
        save_head(out / "model", trained.head, cfg)
        atomic_write_text(out / "critiques_stats.json", json.dumps(stats, indent=2) + "\n")
    accel.wait_for_everyone()
    return result
