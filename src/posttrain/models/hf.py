"""Local transformers backend: batched sampling with length bucketing, left padding and a KV cache.

The decoding loop is ours rather than `model.generate` for three reasons: every (prompt, sample index) draws from
its own seeded generator, so a sample does not change when the batch around it does (resume and bucketing stay
reproducible); rows that finish (EOS or a stop string) leave the batch and the cache at once, so a long straggler
does not make every other row pay for its length; and stop strings end a row without a second pass. The prompts'
prefill is ours too (`_prefill`): the tokens every prompt of a batch starts with are computed once, each distinct
prompt once, and the rest in small groups by length.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from posttrain.errors import InputError
from posttrain.models.backend import Completion, SamplingParams, as_messages, sample_seed, torch_threads

DTYPES = ("auto", "float32", "bfloat16")
PREFILL_ROWS = 8  # distinct prompts per prefill pass: padded to the group's longest rest, not the batch's


def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux: stay with fp32
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(dtype: Any) -> Any:
    """A torch dtype from a name. "auto" is bf16 on CPUs that compute it natively (AVX512-BF16 or AMX), where
    sampling the embedded model ran 1.6x faster than fp32 (bench/sample_speed.py, docs/benchmarks.md), else fp32."""
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if dtype == "auto":
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    return getattr(torch, dtype)


class HFBackend:
    """Weights in `dtype`: a torch dtype or a name from DTYPES (default fp32)."""

    def __init__(
        self,
        model: str = "embedded",
        threads: int | None = None,
        batch_size: int = 16,
        dtype: Any = None,
        model_and_tokenizer: tuple[Any, Any] | None = None,
    ) -> None:
        import torch

        from posttrain.models.embedded import load_model_and_tokenizer

        torch.set_num_threads(threads or torch_threads())
        self.name = model
        self.batch_size = batch_size
        self.model, self.tokenizer = model_and_tokenizer or load_model_and_tokenizer(model, dtype=resolve_dtype(dtype))
        self.model.eval()
        if model_and_tokenizer is None:  # our own copy, never trained: bf16 weights packed once for oneDNN
            from posttrain.models.packed_linear import pack_linear_layers

            pack_linear_layers(self.model, batch_hint=batch_size)
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id
        self.eos_ids = _eos_ids(self.model, self.tokenizer)

    # -- prompts -------------------------------------------------------------------------------------------
    def encode(self, prompt: Any) -> list[int]:
        """Token ids of a prompt through the chat template; a final assistant message is continued, not closed."""
        messages = as_messages(prompt)
        if getattr(self.tokenizer, "chat_template", None) is None:
            raise InputError(f"model '{self.name}' has no chat template: posttrain samples chat models only")
        continuing = messages[-1]["role"] == "assistant"
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=not continuing, continue_final_message=continuing
        )
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    # -- generation ----------------------------------------------------------------------------------------
    def generate(
        self, prompts: list[Any], n: int, params: SamplingParams, seeds: list[int | None] | None = None
    ) -> list[list[Completion]]:
        """`seeds`: a base seed per prompt in place of `params.seed`, so that requests which each carry their own
        seed can share one batch (`posttrain serve`) and still sample exactly what they would alone."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        encoded = [self.encode(p) for p in prompts]
        context = getattr(self.model.config, "max_position_embeddings", None)
        for i, tokens in enumerate(encoded):
            if context and len(tokens) + params.max_new_tokens > context:
                raise InputError(
                    f"prompt {i} ({as_messages(prompts[i])[-1]['content'][:60]!r}…) has {len(tokens)} tokens: with "
                    f"max_new_tokens={params.max_new_tokens} it exceeds the model's context of {context}"
                )
        bases = [params.seed] * len(prompts) if seeds is None else seeds
        rows = [
            (i, j, encoded[i], sample_seed(bases[i], prompts[i], j))
            for i in range(len(prompts))
            for j in range(n)
        ]
        rows.sort(key=lambda r: len(r[2]))  # length buckets: little padding inside a batch
        out: list[list[Completion | None]] = [[None] * n for _ in prompts]
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            for (i, j, _, _), completion in zip(batch, self._decode(batch, params), strict=True):
                out[i][j] = completion
        return [[c for c in row if c is not None] for row in out]

    def _decode(
        self, rows: list[tuple[int, int, list[int], int | None]], params: SamplingParams
    ) -> list[Completion]:
        import torch

        from posttrain.models.kv_cache import growing_cache

        device = self.model.device  # the CPU, or a GPU in a Ray generation actor with gpus_per_actor
        generators = [_generator(seed) for (_, _, _, seed) in rows] if params.temperature > 0 else []
        generated: list[list[int]] = [[] for _ in rows]
        results: list[Completion | None] = [None] * len(rows)
        live = list(range(len(rows)))  # batch row -> original row
        cache = growing_cache(room=params.max_new_tokens)
        with torch.inference_mode():
            logits, mask, last_pos = self._prefill([r[2] for r in rows], cache)
            scratch = _scratch(len(rows), logits.shape[-1], device) if generators else None
            for step in range(params.max_new_tokens):
                picked = _choose(logits, params, [generators[r] for r in live] if generators else [], scratch)
                keep = []
                for b, (r, token) in enumerate(zip(live, picked.tolist(), strict=True)):
                    if token in self.eos_ids:
                        results[r] = self._completion(rows[r], generated[r], "stop", params.stop)
                        continue
                    generated[r].append(token)
                    if params.stop and self._hit_stop(generated[r], params.stop):
                        results[r] = self._completion(rows[r], generated[r], "stop", params.stop)
                    elif step == params.max_new_tokens - 1:
                        results[r] = self._completion(rows[r], generated[r], "length", params.stop)
                    else:
                        keep.append(b)
                if not keep:
                    break
                if len(keep) < len(live):
                    index = torch.tensor(keep, device=device)
                    cache.batch_select_indices(index)
                    mask, picked, last_pos = mask[index], picked[index], last_pos[index]
                    live = [live[b] for b in keep]
                mask = torch.cat([mask, torch.ones((len(live), 1), dtype=torch.long, device=device)], dim=1)
                last_pos = last_pos + 1
                logits = self.model(
                    input_ids=picked[:, None], attention_mask=mask, position_ids=last_pos[:, None],
                    cache=cache, use_cache=True,
                ).logits[:, -1, :]  # fmt: skip
        return [c for c in results if c is not None]

    def _prefill(self, prompts: list[list[int]], cache: Any) -> tuple[Any, Any, Any]:
        """Run the prompts into `cache`; return the last position's logits, the attention mask and each row's last
        position. Layout of a row: the tokens every prompt starts with, left padding, the rest of its prompt; the
        mask hides the padding and positions count real tokens only.

        What is computed: the shared start (the chat template's system turn, ~24 tokens here, ~a third of an IFEval
        prompt) once for the whole batch; each distinct prompt once (the n samples of a prompt share its prefill);
        the rests in groups of `PREFILL_ROWS` by length, each padded to its own longest, not the batch's. The groups'
        keys and values are then laid out in the rows' common layout (padding slots zero and masked) and copied to
        the rows that share a prompt."""
        import torch
        from transformers import DynamicCache

        device = self.model.device
        distinct: dict[tuple[int, ...], int] = {}
        row_of = [distinct.setdefault(tuple(p), len(distinct)) for p in prompts]
        unique = [list(p) for p in distinct]
        shared = _common_prefix(unique) if len(unique) > 1 else 0
        start: Any = DynamicCache()
        if shared:
            self.model(input_ids=torch.tensor([unique[0][:shared]], device=device), cache=start, use_cache=True,
                       logits_to_keep=1)  # fmt: skip
        rests = [p[shared:] for p in unique]
        width = max(len(r) for r in rests)
        by_length = sorted(range(len(rests)), key=lambda u: len(rests[u]))
        logits: Any = None
        keys: list[Any] = []  # per layer: [distinct prompts, kv heads, shared + width, head dim]
        values: list[Any] = []
        for first in range(0, len(by_length), PREFILL_ROWS):
            group = by_length[first : first + PREFILL_ROWS]
            own = max(len(rests[u]) for u in group)
            ids = torch.full((len(group), own), self.pad_id, dtype=torch.long)
            rest_mask = torch.zeros((len(group), own), dtype=torch.long)
            for b, u in enumerate(group):
                ids[b, own - len(rests[u]) :] = torch.tensor(rests[u])
                rest_mask[b, own - len(rests[u]) :] = 1
            part: Any = DynamicCache()
            for number, layer in enumerate(start.layers):
                part.update(layer.keys.expand(len(group), -1, -1, -1), layer.values.expand(len(group), -1, -1, -1),
                            number)  # fmt: skip
            out = self.model(
                input_ids=ids.to(device),
                attention_mask=torch.cat([torch.ones((len(group), shared), dtype=torch.long), rest_mask], 1).to(device),
                position_ids=(shared + rest_mask.cumsum(-1) - 1).clamp(min=0).to(device),
                cache=part,
                use_cache=True,
                logits_to_keep=1,
            ).logits[:, -1, :]  # logits of the last position only: the prompt's other logits are never used
            if logits is None:
                logits = out.new_empty((len(unique), out.shape[-1]))
                for layer in part.layers:
                    shape = (len(unique), layer.keys.shape[1], shared + width, layer.keys.shape[-1])
                    keys.append(layer.keys.new_zeros(shape))  # zeros: a masked slot must not hold a NaN
                    values.append(layer.values.new_zeros(shape))
            index = torch.tensor(group, device=device)
            logits[index] = out
            for number, layer in enumerate(part.layers):
                for full, computed in ((keys[number], layer.keys), (values[number], layer.values)):
                    full[index, :, :shared] = computed[:, :, :shared]
                    full[index, :, shared + width - own :] = computed[:, :, shared:]
        for number in range(len(keys)):
            cache.update(keys[number], values[number], number)
        lengths = torch.tensor([len(r) for r in rests])
        slots = torch.arange(width)
        rest_mask = (slots >= width - lengths[:, None]).long()
        mask = torch.cat([torch.ones((len(unique), shared), dtype=torch.long), rest_mask], dim=1).to(device)
        last = (shared + lengths - 1).to(device)
        if len(unique) < len(prompts):
            index = torch.tensor(row_of, device=device)
            cache.batch_select_indices(index)
            logits, mask, last = logits[index], mask[index], last[index]
        return logits, mask, last

    def _hit_stop(self, tokens: list[int], stop: tuple[str, ...]) -> bool:
        tail = self.tokenizer.decode(tokens[-(max(len(s) for s in stop) + 8) :], skip_special_tokens=True)
        return any(s in tail for s in stop)

    def _completion(self, row: Any, tokens: list[int], reason: str, stop: tuple[str, ...]) -> Completion:
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        cut = min((text.find(s) for s in stop if s in text), default=-1)
        if cut >= 0:
            text = text[:cut]  # as OpenAI: the stop string itself is not returned
        return Completion(
            text=text, prompt_tokens=len(row[2]), completion_tokens=len(tokens), finish_reason=reason
        )

    # -- scoring -------------------------------------------------------------------------------------------
    def logprobs(self, prompt: Any, completion: str) -> list[float]:
        import torch

        context = self.encode(prompt)
        target = list(self.tokenizer(completion, add_special_tokens=False).input_ids)
        if not target:
            return []
        ids = torch.tensor([context + target], device=self.model.device)
        with torch.inference_mode():
            logits = self.model(input_ids=ids).logits[0, len(context) - 1 : -1].float().cpu()
        chosen = torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor(target)[:, None])[:, 0]
        return [float(x) for x in chosen]


def _common_prefix(prompts: list[list[int]]) -> int:
    """Tokens all prompts start with, leaving each at least one of its own (its last position gives the logits)."""
    limit = min(len(p) for p in prompts) - 1
    shared = 0
    while shared < limit and all(p[shared] == prompts[0][shared] for p in prompts):
        shared += 1
    return shared


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(int(v) for v in value)
    return ids


def _generator(seed: int | None) -> Any:
    import torch

    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g


def _scratch(rows: int, vocab: int, device: Any) -> tuple[Any, Any, Any]:
    """`_choose`'s buffers for a batch: scaled logits and probabilities (float32), their running sum (float64)."""
    import torch

    return (
        torch.empty((rows, vocab), device=device),
        torch.empty((rows, vocab), device=device),
        torch.empty((rows, vocab), dtype=torch.float64, device=device),
    )


def _choose(logits: Any, params: SamplingParams, generators: list[Any], scratch: tuple[Any, Any, Any] | None = None) -> Any:
    """Next token per row: argmax when greedy, else temperature / top-k / top-p sampling with each row's own RNG.

    `scratch` (from `_scratch`, at least as many rows as `logits`) is reused across decode steps: allocating the
    [rows, vocab] tensors afresh each step cost page faults, 10-16 ms of a ~75 ms bf16 decode step of the embedded
    model at batch 32 (its vocabulary is 49,152), where the arithmetic itself takes ~2 ms. Same values either way."""
    import torch

    if params.temperature == 0 or not generators:
        return logits.argmax(dim=-1)
    rows = logits.shape[0]
    scaled, probs, cdf = (buffer[:rows] for buffer in scratch or _scratch(rows, logits.shape[-1], logits.device))
    scaled.copy_(logits).div_(params.temperature)
    if params.top_k:
        kth = torch.topk(scaled, min(params.top_k, scaled.shape[-1]), dim=-1).values[:, -1:]
        scaled.masked_fill_(scaled < kth, float("-inf"))
    torch.ops.aten._softmax.out(scaled, -1, False, out=probs)  # torch.softmax, into the buffer
    if params.top_p < 1:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # drop a token when the tokens ranked above it already hold top_p of the mass (the first always stays)
        drop = (sorted_probs.cumsum(-1) - sorted_probs) >= params.top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    # One uniform draw per row from the row's own generator keeps each sample independent of its batch; inverting
    # all rows' CDFs at once replaces a multinomial call per row (that loop took 16% of sampling time at batch 32).
    # float64: a float32 running sum over ~50k tokens drifts enough to move picks at the tail.
    u = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in generators]).to(probs.device)
    cdf.copy_(probs).cumsum_(dim=-1)  # in place: cumsum(dtype=float64) would convert into a fresh temporary
    # right=True: the first token whose cumulative mass exceeds the draw, so a zero-probability token is never picked
    picks = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(-1), right=True).squeeze(-1)
    return picks.clamp(max=probs.shape[-1] - 1)
