import pytest
import torch

from posttrain.train import compensated_adamw
from posttrain.train.compensated_adamw import CompensatedAdamW
from posttrain.train.runtime import LoopConfig, make_optimizer


def _params(dtype: torch.dtype, seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    # one tensor larger than a slice, so the sliced update is exercised across slice boundaries
    shapes = [(compensated_adamw.SLICE + 37,), (48, 32), (5,)]
    return [torch.nn.Parameter((torch.randn(s, generator=g) * 0.05).to(dtype)) for s in shapes]


def _grads(params: list[torch.nn.Parameter], step: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    return [torch.randn(p.shape, generator=g) * 1e-2 for p in params]


def _run(optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter], steps: range) -> None:
    for step in steps:
        for p, grad in zip(params, _grads(params, step), strict=True):
            p.grad = grad.to(p.dtype)
        optimizer.step()


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_fp32_weights_follow_torch_adamw(weight_decay):
    ours, theirs = _params(torch.float32), _params(torch.float32)
    kwargs = {"lr": 1e-3, "betas": (0.9, 0.99), "weight_decay": weight_decay}
    _run(CompensatedAdamW(ours, **kwargs), ours, range(6))
    _run(torch.optim.AdamW(theirs, **kwargs), theirs, range(6))
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_bf16_weights_keep_updates_that_torch_adamw_rounds_away():
    """lr 1e-6 on weights of ~0.05 (bf16 grid ~2e-4): torch's AdamW on bf16 weights barely moves them; with the
    compensation, weight + compensation moves as fp32 AdamW from the same start."""
    start = _params(torch.bfloat16)
    exact = [torch.nn.Parameter(p.detach().float()) for p in start]
    ours = [torch.nn.Parameter(p.detach().clone()) for p in start]
    plain = [torch.nn.Parameter(p.detach().clone()) for p in start]
    kwargs = {"lr": 1e-6, "weight_decay": 0.0}
    optimizer = CompensatedAdamW(ours, **kwargs)
    begin = [p.detach().float() + optimizer._start_compensation(p) * optimizer.unit(p.detach()) for p in ours]
    steps = range(200)
    _run(optimizer, ours, steps)
    _run(torch.optim.AdamW(exact, **kwargs), exact, steps)
    _run(torch.optim.AdamW(plain, **kwargs), plain, steps)
    for p0, b0, p_exact, p_ours, p_plain in zip(start, begin, exact, ours, plain, strict=True):
        moved = p_exact.detach() - p0.float()  # ~1e-5 per weight after 200 steps, the grid ~2e-4
        total = optimizer.exact_weight(p_ours)
        error = (total - b0 - moved).abs()  # the compensation's resolution (2^-24 of the weight), the bf16 moment
        assert error.mean() < 0.01 * moved.abs().mean() and error.max() < 0.05 * moved.abs().max()
        assert (p_plain.detach().float() - p0.float()).abs().mean() < 0.1 * moved.abs().mean()


@pytest.mark.parametrize("dither", [True, False])
def test_the_dithered_compensation_lets_the_bf16_weights_follow_small_updates_on_average(dither):
    """Every weight gets the same small update each step (a constant gradient: Adam moves each by lr). From a zero
    compensation no bf16 weight moves until its sum crosses half a grid step; from the dithered one the rounded
    weights move by the exact amount on average, from the first steps."""
    g = torch.Generator().manual_seed(0)
    weight = torch.nn.Parameter(((torch.rand(200_000, generator=g) + 0.5) * 0.05).to(torch.bfloat16))
    start = weight.detach().float().clone()
    optimizer = CompensatedAdamW([weight], lr=1e-6, dither_seed=0 if dither else None)
    for _ in range(10):
        weight.grad = torch.ones_like(weight)
        optimizer.step()
    mean_move = (weight.detach().float() - start).mean().item()  # exact: -1e-5, a tenth of the grid (~1e-4..4e-4)
    if dither:
        assert mean_move == pytest.approx(-1e-5, rel=0.15)
    else:
        assert mean_move == 0.0


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_the_compiled_bf16_pass_computes_what_the_torch_slices_compute(weight_decay):
    """Same start, same gradients, 5 steps: the moments equal the slice path's to the bit (the kernel uses the fused
    multiply-adds torch's CPU kernels use). The kernel's square root is IEEE's where torch's vectorized fp32 sqrt is
    off by an ulp in ~17% of cases, so an update may differ in its last bit: the exact weights (weight +
    compensation) agree within a few ulps of the updates, and a bf16 weight's rounding flips in a few cases."""
    compiled, sliced = _params(torch.bfloat16), _params(torch.bfloat16)
    kwargs = {"lr": 1e-4, "betas": (0.9, 0.99), "weight_decay": weight_decay}
    fast = CompensatedAdamW(compiled, **kwargs)
    slow = CompensatedAdamW(sliced, compiled=False, **kwargs)
    for step in range(5):
        _run(fast, compiled, range(step, step + 1))
        _run(slow, sliced, range(step, step + 1))
        for a, b in zip(compiled, sliced, strict=True):
            ours, theirs = fast.state[a], slow.state[b]
            assert torch.equal(ours["exp_avg"], theirs["exp_avg"])
            assert torch.equal(ours["exp_avg_sq"], theirs["exp_avg_sq"])
            assert (a != b).float().mean() < 1e-4
            torch.testing.assert_close(
                fast.exact_weight(a), slow.exact_weight(b), rtol=2**-22, atol=(step + 1) * kwargs["lr"] * 2**-20
            )


def test_state_dict_resumes_exactly():
    a, b = _params(torch.bfloat16), _params(torch.bfloat16)
    first = CompensatedAdamW(a, lr=1e-4)
    _run(first, a, range(3))
    second = CompensatedAdamW(b, lr=1e-4)
    _run(second, b, range(3))
    resumed = CompensatedAdamW(b, lr=1e-4)
    resumed.load_state_dict(second.state_dict())
    _run(first, a, range(3, 6))
    _run(resumed, b, range(3, 6))
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


def test_the_compensation_unit_is_a_fraction_of_the_bf16_grid_step():
    weight = torch.tensor([0.05, 1.0, -3e-4, 1.5, -7.0]).to(torch.bfloat16)
    step = torch.nextafter(weight, torch.full_like(weight, float("inf"))).float() - weight.float()
    assert torch.equal(CompensatedAdamW.unit(weight) * 2**16, step)


def test_state_dtypes():
    (big, *_) = params = _params(torch.bfloat16)
    optimizer = CompensatedAdamW(params, lr=1e-4)
    _run(optimizer, params, range(1))
    state = optimizer.state[big]
    assert state["exp_avg"].dtype == torch.bfloat16
    assert state["exp_avg_sq"].dtype == torch.float32  # bf16 cannot hold a 0.1% change per step
    assert state["compensation"].dtype == torch.int16  # in 2^-16 of a grid step: bf16 would be too coarse
    fp32 = _params(torch.float32)
    optimizer = CompensatedAdamW(fp32, lr=1e-4)
    _run(optimizer, fp32, range(1))
    assert "compensation" not in optimizer.state[fp32[0]]


def test_make_optimizer_picks_compensation_for_bf16_weights():
    model = torch.nn.Linear(4, 4)
    optimizer, _ = make_optimizer(model, LoopConfig(), total_steps=10)
    assert type(optimizer) is torch.optim.AdamW
    optimizer, _ = make_optimizer(model.to(torch.bfloat16), LoopConfig(), total_steps=10)
    assert isinstance(optimizer, CompensatedAdamW)


def test_rejects_bad_hyperparameters():
    with pytest.raises(ValueError, match="betas"):
        CompensatedAdamW(_params(torch.float32), betas=(0.9, 1.0))
