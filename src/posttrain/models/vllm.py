"""In-process vLLM (optional extra `posttrain[vllm]`, needs a GPU).

Requests are built as the transformers backend builds them: the prompt through the model's chat template (a final
assistant message is continued), one request per (prompt, sample index) with its own `sample_seed`, so a sample is
the same whatever batch it is in. Building requests and reading outputs are plain functions, tested on CPU without
vLLM installed; only `VLLMBackend` itself touches vLLM.
"""

from __future__ import annotations

from typing import Any

from posttrain.errors import InputError
from posttrain.models.backend import Completion, SamplingParams, as_messages, sample_seed


def build_sampling_kwargs(params: SamplingParams, prompt: Any, index: int) -> dict[str, Any]:
    """Keyword arguments of `vllm.SamplingParams` for sample `index` of `prompt`."""
    return {
        "n": 1,
        "max_tokens": params.max_new_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k or -1,  # vLLM's "no top-k" (0 is refused by older versions)
        "stop": list(params.stop) or None,
        "seed": sample_seed(params.seed, prompt, index),
    }


def chat_token_ids(tokenizer: Any, prompt: Any) -> list[int]:
    """The prompt through the chat template, as token ids; a final assistant message is continued, not closed."""
    messages = as_messages(prompt)
    if getattr(tokenizer, "chat_template", None) is None:
        raise InputError("the model's tokenizer has no chat template: posttrain samples chat models only")
    continuing = messages[-1]["role"] == "assistant"
    text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=not continuing, continue_final_message=continuing
    )
    return list(tokenizer(text, add_special_tokens=False).input_ids)


def build_requests(
    tokenizer: Any, prompts: list[Any], n: int, params: SamplingParams
) -> list[tuple[list[int], dict[str, Any]]]:
    """(prompt token ids, sampling kwargs) per (prompt, sample index), prompt-major: output k is sample k % n of
    prompt k // n."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    requests = []
    for prompt in prompts:
        ids = chat_token_ids(tokenizer, prompt)
        requests += [(ids, build_sampling_kwargs(params, prompt, j)) for j in range(n)]
    return requests


def to_completion(
    text: str, prompt_tokens: int, completion_tokens: int, finish_reason: str | None
) -> Completion:
    """vLLM finishes with "stop" (EOS or a stop string), "length" or "abort"; an unfinished output counts as stop."""
    return Completion(
        text=text,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        finish_reason=finish_reason or "stop",
    )


def completion_logprobs(prompt_logprobs: list[Any], context_len: int, target: list[int]) -> list[float]:
    """The logprobs of `target` tokens from vLLM's `prompt_logprobs` over context + target.

    Each position holds a dict token id -> Logprob (or a float); position 0 is None (nothing predicts it)."""
    out = []
    for k, token in enumerate(target):
        entry = prompt_logprobs[context_len + k][token]
        out.append(float(getattr(entry, "logprob", entry)))
    return out


def load_into_worker(worker: Any, named_tensors: list[tuple[str, Any]]) -> None:
    """Runs inside a vLLM worker (`collective_rpc` passes the worker first): its model's `load_weights` maps the HF
    names onto vLLM's fused parameters and copies each tensor to the worker's device."""
    worker.model_runner.model.load_weights(named_tensors)


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise InputError(
            "the vllm backend needs vLLM: pip install 'posttrain[vllm]' (a CUDA GPU machine); "
            "on CPU use 'embedded', a local model directory, or openai:<url> for a running server"
        ) from None
    return vllm


class VLLMBackend:
    def __init__(self, model: str, **engine_kwargs: Any) -> None:
        vllm = _import_vllm()
        from posttrain.models.embedded import EMBEDDED_NAME, resolve_model_path

        self._vllm = vllm
        self.name = model
        # Anything but `embedded` goes to vLLM as given: a local directory or, where there is a hub, a model id.
        path = resolve_model_path(model) if model == EMBEDDED_NAME else model
        self.llm = vllm.LLM(model=path, **engine_kwargs)
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, prompts: list[Any], n: int, params: SamplingParams) -> list[list[Completion]]:
        requests = build_requests(self.tokenizer, prompts, n, params)
        outputs = self.llm.generate(
            [{"prompt_token_ids": ids} for ids, _ in requests],
            [self._vllm.SamplingParams(**kwargs) for _, kwargs in requests],
            use_tqdm=False,
        )
        flat = [
            to_completion(
                o.outputs[0].text,
                len(o.prompt_token_ids),
                len(o.outputs[0].token_ids),
                o.outputs[0].finish_reason,
            )
            for o in outputs
        ]
        return [flat[i * n : (i + 1) * n] for i in range(len(prompts))]

    def load_weights(self, named_tensors: Any) -> None:
        """Replace the engine's weights with `(name, tensor)` pairs in the HF checkpoint's names (the online loop
        calls this after every update, so the next rollout samples the current policy). Through `collective_rpc`,
        which runs `load_into_worker` in each of the engine's workers, in process or not (the tensors are then
        pickled to them); the prefix cache is dropped since its entries were computed with the old weights. Untested
        here: it needs vLLM and a GPU."""
        self.llm.collective_rpc(load_into_worker, args=([(name, t.detach()) for name, t in named_tensors],))
        self.llm.reset_prefix_cache()

    def logprobs(self, prompt: Any, completion: str) -> list[float]:
        context = chat_token_ids(self.tokenizer, prompt)
        target = list(self.tokenizer(completion, add_special_tokens=False).input_ids)
        if not target:
            return []
        (output,) = self.llm.generate(
            [{"prompt_token_ids": context + target}],
            self._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0),
            use_tqdm=False,
        )
        return completion_logprobs(output.prompt_logprobs, len(context), target)
