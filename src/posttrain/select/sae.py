"""A TopK sparse autoencoder and its streaming training loop (Gao et al. 2024, "Scaling and evaluating sparse
autoencoders"; the SAE of Yang et al. 2025, arXiv 2502.14050, is this architecture on Llama's final residual stream).

    z  = ReLU(TopK(W_enc (x̃ - b_pre) + b_enc))          x̃ = x / s   (s: one scalar, so E||x̃||² = d)
    x̂ = W_dec z + b_pre                                 (tied: W_dec = W_encᵀ)
    L  = ||x̃ - x̂||² + α · ||e - ê_aux||²               e = x̃ - x̂, ê_aux = W_dec TopK_aux(dead latents)

- Normalisation: `s` is estimated once from the first batch and stored with the weights, so the same input is
  always scaled the same way and losses are comparable across layers and models (Gao et al. §2.1).
- Decoder columns are kept at unit norm and the gradient component parallel to each column is removed, so the
  encoder cannot shrink activations by growing decoder norms.
- Dead latents: a latent fires on a row when its activation there is > 0 (being among the top k is not enough:
  ReLU may still zero it); one that has not fired in the last `dead_tokens` training rows is dead. The AuxK loss asks
  the top `aux_k` dead latents to reconstruct the residual error, which gives them gradient and revives them
  (Gao et al. §A.2, α = 1/32). The reported dead fraction uses the same window.
- Reported reconstruction error is the normalised MSE ||x̃ - x̂||² / ||x̃ - mean(x̃)||² (0 perfect, 1 = predicting
  the mean).

Training reads batches from any iterator of float arrays (the cached activation shards of `features.py`), so it
streams: nothing holds the whole set of activations in memory. Checkpoints are written atomically every
`save_every` steps and training resumes from the last one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from posttrain.errors import InputError
from posttrain.records import content_id


@dataclass
class SAEConfig:
    n_latents: int = 4096
    k: int = 32  # the paper uses k=128 of 131,072 latents on Llama-3.1-8B; scaled down for a 576-d model
    tied: bool = False
    normalize: bool = True  # scale inputs so E||x||² = d (one scalar from the first batch)
    aux_k: int | None = None  # dead latents used by the AuxK loss (default d/2, as Gao et al.)
    aux_coef: float = 1 / 32
    dead_tokens: int = 100_000  # a latent silent for this many training rows is dead (paper: 10M tokens)
    lr: float = 2e-4
    warmup_steps: int = 50
    batch_size: int = 1024  # the paper: 4,096
    steps: int = 1000
    save_every: int = 200
    seed: int = 0
    threads: int | None = None

    def check(self) -> None:
        if self.k < 1 or self.k > self.n_latents:
            raise InputError(f"sae.k must be in [1, n_latents={self.n_latents}], got {self.k}")
        for name in ("n_latents", "batch_size", "steps", "dead_tokens"):
            if getattr(self, name) < 1:
                raise InputError(f"sae.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise InputError(f"sae.lr must be > 0, got {self.lr}")


class TopKSAE(nn.Module):
    scale: torch.Tensor  # the input normaliser s (a buffer)

    def __init__(self, d_in: int, n_latents: int, k: int, tied: bool = False, normalize: bool = True):
        super().__init__()
        self.d_in, self.n_latents, self.k, self.tied, self.normalize = d_in, n_latents, k, tied, normalize
        w = torch.randn(n_latents, d_in)
        w = w / w.norm(dim=1, keepdim=True)
        # Encoder initialised to the decoder's transpose (Gao et al.): latents start as matched filters.
        self.W_enc = nn.Parameter(w.clone())
        self.W_dec = None if tied else nn.Parameter(w.clone())  # rows are the decoder directions
        self.b_enc = nn.Parameter(torch.zeros(n_latents))
        self.b_pre = nn.Parameter(torch.zeros(d_in))
        self.register_buffer("scale", torch.ones(()))  # the input normaliser s; 1 until fitted

    @property
    def decoder(self) -> torch.Tensor:
        return self.W_enc if self.W_dec is None else self.W_dec

    def fit_normalizer(self, x: torch.Tensor) -> None:
        """Set s so E||x/s||² = d, and b_pre to the batch mean (a cheap stand-in for the geometric median)."""
        with torch.no_grad():
            if self.normalize:
                self.scale.fill_(float(x.pow(2).sum(-1).mean().div(self.d_in).sqrt().clamp_min(1e-8)))
            self.b_pre.copy_((x / self.scale).mean(0))

    def pre_acts(self, x: torch.Tensor) -> torch.Tensor:
        return (x / self.scale - self.b_pre) @ self.W_enc.T + self.b_enc

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The k largest latents of each row: (values >= 0, indices), both (rows, k)."""
        values, indices = self.pre_acts(x).topk(self.k, dim=-1)
        return values.relu(), indices

    def decode(self, values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        # A gather of k decoder rows instead of a dense (rows × n_latents) matmul: cost grows with k, not n_latents.
        return torch.einsum("bk,bkd->bd", values, self.decoder[indices]) + self.b_pre

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        """The full (rows, n_latents) latent vector: zero outside the top k."""
        values, indices = self.encode(x)
        return torch.zeros(x.shape[0], self.n_latents, dtype=values.dtype).scatter(1, indices, values)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        values, indices = self.encode(x)
        return self.decode(values, indices), values, indices

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        dec = self.decoder
        dec.div_(dec.norm(dim=1, keepdim=True).clamp_min(1e-8))

    @torch.no_grad()
    def remove_parallel_grad(self) -> None:
        dec = self.decoder
        if dec.grad is not None:
            dec.grad -= (dec.grad * dec).sum(1, keepdim=True) * dec


def normalized_mse(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    return float((x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum().clamp_min(1e-12))


def fired_latents(values: torch.Tensor, indices: torch.Tensor, n_latents: int) -> torch.Tensor:
    """Bool mask over latents: those with an activation > 0 on some row. A top-k latent whose ReLU is 0 reconstructs
    nothing and gets no gradient, so counting it as fired would hide dead latents."""
    fired = torch.zeros(n_latents, dtype=torch.bool)
    fired[indices[values > 0]] = True
    return fired


def sae_loss(
    sae: TopKSAE, x: torch.Tensor, dead: torch.Tensor, aux_k: int, aux_coef: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, normalised input, reconstruction, latents fired in the batch). `dead` and the last are bool masks over
    latents."""
    xn = x / sae.scale
    pre = (xn - sae.b_pre) @ sae.W_enc.T + sae.b_enc
    values, indices = pre.topk(sae.k, dim=-1)
    values = values.relu()
    x_hat = torch.einsum("bk,bkd->bd", values, sae.decoder[indices]) + sae.b_pre
    loss = (xn - x_hat).pow(2).sum(-1).mean()
    n_dead = int(dead.sum())
    if aux_coef > 0 and n_dead > 0:
        error = (xn - x_hat).detach()
        # Only dead latents compete here; the rest are masked to -inf so TopK picks among the dead.
        aux_pre = pre.masked_fill(~dead, float("-inf"))
        av, ai = aux_pre.topk(min(aux_k, n_dead), dim=-1)
        e_hat = torch.einsum("bk,bkd->bd", av.relu(), sae.decoder[ai])
        # Normalised by the error's own size, so the aux term stays on the scale of the main loss.
        aux = (error - e_hat).pow(2).sum(-1).mean() / error.pow(2).sum(-1).mean().clamp_min(1e-12)
        loss = loss + aux_coef * aux
    return loss, xn, x_hat, fired_latents(values.detach(), indices, sae.n_latents)


# ---------------------------------------------------------------------------------------------------- training


@dataclass
class SAEReport:
    steps: int
    rows_seen: int
    nmse: float  # last-window normalised MSE
    dead_fraction: float
    history: list[dict[str, float]]


def config_hash(cfg: SAEConfig, d_in: int, data_key: str) -> str:
    return content_id(asdict(cfg) | {"threads": None, "save_every": None}, d_in, data_key)


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_sae(path: str | Path) -> TopKSAE:
    path = Path(path)
    if not path.exists():
        raise InputError("SAE checkpoint not found", path)
    state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or "model" not in state or "shape" not in state:
        raise InputError("not a posttrain SAE checkpoint", path)
    d_in, n_latents, k, tied, normalize = state["shape"]
    sae = TopKSAE(d_in, n_latents, k, tied, normalize)
    sae.load_state_dict(state["model"])
    sae.eval()
    return sae


def train_sae(
    cfg: SAEConfig,
    batches: Callable[[int], Iterator[np.ndarray]],
    d_in: int,
    out_dir: str | Path,
    data_key: str = "",
    progress: bool = True,
) -> tuple[TopKSAE, SAEReport]:
    """Train on `batches(seed)` (an endless or finite stream of (rows, d_in) arrays, restarted with a new seed when it
    ends) for `cfg.steps` steps. Writes `out_dir/sae.pt` (final) and `out_dir/checkpoint.pt` (resumable)."""
    cfg.check()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    key = config_hash(cfg, d_in, data_key)
    final, ckpt = out / "sae.pt", out / "checkpoint.pt"
    if final.exists():
        state = torch.load(final, map_location="cpu", weights_only=False)
        if state.get("key") == key:
            return load_sae(final), SAEReport(**state["report"])
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    sae = TopKSAE(d_in, cfg.n_latents, cfg.k, cfg.tied, cfg.normalize)
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=6.25e-10)  # Gao et al.'s eps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)))
    # Rows since each latent last fired: the dead-latent clock.
    since_fired = torch.zeros(cfg.n_latents, dtype=torch.long)
    step, rows_seen, epoch, history = 0, 0, 0, []
    fitted = False
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        if state.get("key") == key:
            sae.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            since_fired = state["since_fired"]
            step, rows_seen, epoch, history = (
                state["step"],
                state["rows_seen"],
                state["epoch"],
                state["history"],
            )
            fitted = True
    aux_k = cfg.aux_k or max(1, d_in // 2)

    stream = _restartable(batches, cfg.seed + epoch)
    window: list[float] = []
    with _maybe_progress(progress, cfg.steps, step) as bar:
        while step < cfg.steps:
            x = torch.from_numpy(np.asarray(next(stream), dtype=np.float32))
            if not fitted:
                sae.fit_normalizer(x)
                sae.normalize_decoder()
                fitted = True
            dead = since_fired >= cfg.dead_tokens
            loss, xn, x_hat, fired = sae_loss(sae, x, dead, aux_k, cfg.aux_coef)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            sae.remove_parallel_grad()
            opt.step()
            sched.step()
            sae.normalize_decoder()
            since_fired += x.shape[0]
            since_fired[fired] = 0
            step += 1
            rows_seen += x.shape[0]
            window.append(normalized_mse(xn.detach(), x_hat.detach()))
            if step % 50 == 0 or step == cfg.steps:
                row = {
                    "step": step,
                    "nmse": float(np.mean(window)),
                    "dead_fraction": float(dead.float().mean()),
                }
                history.append(row)
                window = []
            if cfg.save_every and step % cfg.save_every == 0 and step < cfg.steps:
                _atomic_save(
                    {"key": key, "model": sae.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                     "since_fired": since_fired, "step": step, "rows_seen": rows_seen, "epoch": epoch,
                     "history": history},
                    ckpt,
                )  # fmt: skip
            if bar is not None:
                bar.advance(1, x.shape[0])
    # A latent counts as dead if it has not fired within the window, or (short runs) never fired at all.
    dead_fraction = float((since_fired >= min(cfg.dead_tokens, rows_seen)).float().mean())
    report = SAEReport(
        step, rows_seen, history[-1]["nmse"] if history else float("nan"), dead_fraction, history
    )
    sae.eval()
    _atomic_save(
        {"key": key, "model": sae.state_dict(), "shape": (d_in, cfg.n_latents, cfg.k, cfg.tied, cfg.normalize),
         "report": asdict(report), "config": asdict(cfg)},
        final,
    )  # fmt: skip
    ckpt.unlink(missing_ok=True)
    return sae, report


def _restartable(batches: Callable[[int], Iterator[np.ndarray]], seed: int) -> Iterator[np.ndarray]:
    while True:
        empty = True
        for batch in batches(seed):
            empty = False
            yield batch
        if empty:
            raise InputError("no activations to train the SAE on")
        seed += 1


class _maybe_progress:
    def __init__(self, enabled: bool, total: int, done: int):
        self.enabled, self.total, self.done = enabled, total, done
        self._cm: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from posttrain.progress import generation_progress

        self._cm = generation_progress("train SAE (steps)", self.total, self.done)
        return self._cm.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self._cm is not None:
            self._cm.__exit__(*exc)


@torch.no_grad()
def evaluate_sae(sae: TopKSAE, x: np.ndarray, batch_size: int = 4096) -> dict[str, float]:
    """Normalised MSE and the fraction of latents that never fired (activation > 0) on `x`."""
    fired = torch.zeros(sae.n_latents, dtype=torch.bool)
    err, var = 0.0, 0.0
    xs = torch.from_numpy(np.asarray(x, dtype=np.float32))
    mean = (xs / sae.scale).mean(0)
    for start in range(0, xs.shape[0], batch_size):
        chunk = xs[start : start + batch_size]
        x_hat, values, indices = sae(chunk)
        xn = chunk / sae.scale
        err += float((xn - x_hat).pow(2).sum())
        var += float((xn - mean).pow(2).sum())
        fired |= fired_latents(values, indices, sae.n_latents)
    return {"nmse": err / max(var, 1e-12), "dead_fraction": float((~fired).float().mean())}
