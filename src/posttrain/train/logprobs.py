"""Per-token log-probabilities of target tokens without a (tokens x vocabulary) log-softmax copy.

The usual recipe, `log_softmax(logits).gather(labels)`, builds logits for *every* position and then a second
full-vocabulary tensor for the log-softmax, and autograd keeps both. Here the decoder's hidden states are projected
through the LM head only at positions that predict a target token, in chunks of `chunk_size` tokens, and each chunk
is `logit[target] - logsumexp(logits)`. With gradients on and more than one chunk, each chunk runs under activation
checkpointing, so at most one chunk of logits is alive at a time (it is recomputed in the backward pass): memory for the head is
O(chunk_size x vocab) instead of O(batch x length x vocab), for ~1 extra head matmul on target tokens only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from posttrain.errors import InputError
from posttrain.train.data import Batch


def unwrap(model: Any) -> Any:
    """The transformers model under a peft wrapper (LoRA layers stay injected in it)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def check_supported(model: Any) -> None:
    """Models that rescale logits after the LM head would get wrong log-probs from the bare head."""
    config = unwrap(model).config.get_text_config()
    for attr in ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier"):
        if getattr(config, attr, None) not in (None, 1, 1.0):
            raise InputError(f"models with `{attr}` are not supported by posttrain's training log-probs yet")


def _chunk_logps(hidden: Tensor, head: nn.Module, targets: Tensor) -> Tensor:
    logits = head(hidden).float()
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def token_logps(model: Any, batch: Batch, chunk_size: int = 1024) -> Tensor:
    """log p(target token | prefix) for every target token of the batch, shape (n_targets,)."""
    lm = unwrap(model)
    decoder, head = lm.get_decoder(), lm.get_output_embeddings()
    device = head.weight.device
    hidden = decoder(
        input_ids=batch.input_ids.to(device),
        position_ids=batch.position_ids.to(device),
        attention_mask=None if batch.attention_mask is None else batch.attention_mask.to(device),
        use_cache=False,  # a cache would also disable transformers' packed-sequence mask
    ).last_hidden_state
    hidden = hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch.pred_index.to(device))
    return head_logps(hidden, head, batch.target_ids.to(device), chunk_size)


def head_logps(hidden: Tensor, head: nn.Module, targets: Tensor, chunk_size: int = 1024) -> Tensor:
    """log p(target) from the hidden states at the positions that predict `targets` (rows of `hidden`), through
    the LM `head` in chunks (see the module docstring); for a loop that also reads the hidden states otherwise."""
    if hidden.shape[0] <= chunk_size:  # one chunk: nothing to gain from recomputing it in the backward pass
        return _chunk_logps(hidden, head, targets)
    pieces = []
    for start in range(0, hidden.shape[0], chunk_size):
        h, t = hidden[start : start + chunk_size], targets[start : start + chunk_size]
        if torch.is_grad_enabled():
            pieces.append(checkpoint(_chunk_logps, h, head, t, use_reentrant=False))
        else:
            pieces.append(_chunk_logps(h, head, t))
    return torch.cat(pieces)


def sequence_logps(per_token: Tensor, batch: Batch) -> Tensor:
    """Sum of the target-token log-probs of each sequence, shape (n_seqs,)."""
    out = torch.zeros(batch.n_seqs, dtype=per_token.dtype, device=per_token.device)
    return out.index_add(0, batch.target_seq.to(per_token.device), per_token)


class TokenLogps(nn.Module):
    """`token_logps` as a module, so DistributedDataParallel sees (and syncs gradients for) the forward pass."""

    def __init__(self, lm: Any, chunk_size: int = 1024):
        super().__init__()
        self.lm = lm
        self.chunk_size = chunk_size

    def forward(self, batch: Batch) -> Tensor:
        return token_logps(self.lm, batch, self.chunk_size)
