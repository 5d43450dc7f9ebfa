"""`tensor_stats` and `sum_of_squares` against float64 references, on both paths (fast CPU, generic).

Rows of `tensor_stats`: sum of squares, max |x|, non-zero count, non-finite count. Counts of a sparse
tensor are over its (coalesced) stored values; an empty tensor has all-zero statistics.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gradient_doctor.probe.tensor_stats import count_nonfinite, sum_of_squares, tensor_stats

RTOL = 1e-5
CHUNK = 1 << 18
FAST = pytest.mark.parametrize("fast", [True, False], ids=["fast", "generic"])
DETAIL = pytest.mark.parametrize("detail", [True, False], ids=["detail", "norms-only"])


def values64(t: torch.Tensor) -> torch.Tensor:
    """The tensor's entries as float64 (a sparse tensor's coalesced stored values)."""
    if t.is_sparse:
        t = t.coalesce().values()
    return t.detach().reshape(-1).to(torch.float64)


def reference(t: torch.Tensor) -> list[float]:
    x = values64(t)
    if x.numel() == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [
        float(x.square().sum()),
        float(x.abs().max()),
        float((x != 0).sum()),  # NaN != 0: NaN counts as non-zero
        float((~torch.isfinite(x)).sum()),
    ]


def check(tensors, fast, *, detail=True, atol=0.0):
    """tensor_stats against the float64 reference; with detail=False, max |x| and non-zeros are NaN."""
    got = tensor_stats(tensors, fast=fast, detail=detail)
    assert got.dtype == torch.float64 and got.shape == (4, len(tensors))
    want = np.array([reference(t) for t in tensors]).T.reshape(4, len(tensors))
    if not detail:
        want[1:3] = np.nan
    np.testing.assert_allclose(got.numpy(), want, rtol=RTOL, atol=atol, equal_nan=True)
    return got


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@FAST
@DETAIL
def test_small_mixed_batch(fast, detail):
    g = _gen(0)
    tensors = [
        torch.randn(5, 7, generator=g),
        torch.randn(3, generator=g, dtype=torch.float64),
        torch.tensor([0.0, -3.5, 0.0, 2.0]),  # max |x| from a negative entry, zeros counted
        torch.zeros(4, 4),
        torch.randn(6, 5, generator=g).t(),  # non-contiguous
        torch.tensor(-2.5),  # 0-d
    ]
    got = check(tensors, fast, detail=detail)
    assert got[0, 3] == 0 and got[3].sum() == 0
    if detail:
        assert got[1, 2] == 3.5 and got[2, 2] == 2 and got[2, 3] == 0


@FAST
@pytest.mark.parametrize("n", [CHUNK, CHUNK + 1, 3 * CHUNK + 12345])
def test_long_tensors_use_the_chunked_path(fast, n):
    g = _gen(n)
    x = torch.randn(n, generator=g) * 3 + 1  # a non-zero mean: float32 accumulation would drift
    x[::5] = 0.0
    got = check([x], fast)
    assert got[2, 0] == n - len(range(0, n, 5))


@FAST
def test_sparse_tensor_counts_over_stored_values(fast):
    indices = torch.tensor([[0, 1, 1, 3, 3, 3], [2, 0, 0, 4, 4, 1]])  # duplicates: uncoalesced
    values = torch.tensor([1.5, -2.0, 0.5, 3.0, -3.0, -4.0])
    sparse = torch.sparse_coo_tensor(indices, values, (5, 6), check_invariants=True)
    assert not sparse.is_coalesced()
    got = check([sparse, torch.ones(2)], fast)
    # coalesced values: 1.5, -1.5, -4.0, 0.0 (3 - 3): sum of squares 2.25 + 2.25 + 16
    np.testing.assert_allclose(got[:, 0].numpy(), [20.5, 4.0, 3.0, 0.0])


@FAST
def test_empty_tensor_has_zero_statistics(fast):
    got = check([torch.empty(0), torch.empty(3, 0, dtype=torch.float64), torch.tensor([2.0])], fast)
    np.testing.assert_array_equal(got[:, :2].numpy(), 0.0)


@FAST
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(fast, dtype):
    g = _gen(1)
    x = (torch.randn(1000, generator=g) * 100).to(dtype)
    x[:10] = 0
    y = torch.tensor([60000.0 if dtype == torch.float16 else 1e30, -1.0], dtype=dtype)  # squares overflow dtype
    got = check([x, y], fast)
    assert got[2, 0] == 990 - int((x[10:] == 0).sum())


@FAST
@DETAIL
def test_nan_and_inf(fast, detail):
    tensors = [
        torch.tensor([1.0, math.inf, 0.0, 2.0]),
        torch.tensor([1.0, -math.inf, 0.0]),
        torch.tensor([math.nan, 0.0, 3.0, 0.0]),
        torch.tensor([math.inf, math.nan, -math.inf, 1.0], dtype=torch.float64),
        torch.tensor([1.0, 2.0]),
    ]
    got = check(tensors, fast, detail=detail)
    np.testing.assert_array_equal(got[3].numpy(), [1, 1, 1, 3, 0])
    assert got[0, 0] == math.inf and math.isnan(got[0, 2])
    if detail:
        np.testing.assert_array_equal(got[2].numpy(), [3, 2, 2, 4, 2])
        assert got[1, 1] == math.inf and math.isnan(got[1, 2])


@FAST
@DETAIL
def test_nonfinite_in_a_long_tensor(fast, detail):
    x = torch.randn(CHUNK + 100, generator=_gen(2))
    x[7] = math.nan
    x[CHUNK + 3] = math.inf
    x[CHUNK + 4] = -math.inf
    x[100:200] = 0
    got = check([x], fast, detail=detail)
    assert got[3, 0] == 3 and (got[2, 0] == CHUNK or not detail)


@FAST
@DETAIL
@pytest.mark.parametrize("scale", [1e-25, 1e-19, 1e20, 1e-40])
def test_tiny_and_huge_float32(fast, detail, scale):
    g = _gen(3)
    x = torch.randn(CHUNK + 17, generator=g) * scale  # 1e-40: float32 subnormals
    y = torch.randn(50, generator=g) * scale
    got = check([x, y, torch.ones(3), torch.zeros(4)], fast, detail=detail)
    assert got[0, 0] > 0 and math.isfinite(got[0, 0]) and got[3, 0] == 0


@FAST
@DETAIL
def test_float32_sums_near_and_past_overflow(fast, detail):
    near = torch.tensor([1.3e19, 1e19, -2.0])  # float32 sum of squares 2.69e38: finite, near the limit
    past = torch.tensor([1.7e19, 9e18, 9e18, 9e18])  # every square is finite, their float32 sum is not
    assert math.isfinite(float(near.square().sum())) and float(past.square().sum()) == math.inf
    got = check([near, past], fast, detail=detail)
    assert got[3].sum() == 0


def test_paths_agree():
    g = _gen(4)
    tensors = [torch.randn(CHUNK + 5, generator=g), torch.randn(7, 3, generator=g) * 1e-24,
               torch.tensor([math.nan, 1.0]), torch.randn(9, generator=g).to(torch.bfloat16)]
    np.testing.assert_allclose(tensor_stats(tensors, fast=True).numpy(), tensor_stats(tensors, fast=False).numpy(),
                               rtol=RTOL, equal_nan=True)


def test_no_tensors():
    assert tensor_stats([]).shape == (4, 0)
    assert sum_of_squares([]).shape == (0,)


# -- sum_of_squares: flat float32/float64 vectors --------------------------------------------
@FAST
def test_sum_of_squares(fast):
    g = _gen(5)
    flats = [
        torch.randn(100, generator=g),
        torch.randn(3 * CHUNK + 1, generator=g) + 2,
        torch.randn(CHUNK, generator=g, dtype=torch.float64),
        torch.randn(40, generator=g) * 1e-25,
        torch.randn(40, generator=g) * 1e20,
        torch.randn(CHUNK + 3, generator=g) * 1e-30,
        torch.zeros(10),
        torch.empty(0),
        torch.tensor([math.inf, 1.0]),
        torch.tensor([math.nan, 1.0]),
    ]
    got = sum_of_squares(flats, fast=fast)
    assert got.dtype == torch.float64 and got.shape == (len(flats),)
    want = [float(f.double().square().sum()) for f in flats]
    np.testing.assert_allclose(got.numpy(), want, rtol=RTOL, atol=0.0, equal_nan=True)
    assert got[3] > 0 and got[5] > 0 and math.isfinite(got[4])


# -- count_nonfinite: the model's inputs ------------------------------------------------------
@FAST
def test_count_nonfinite(fast):
    """Against a float64 count, with sums that overflow although every entry is finite (float32, float16), mixed
    infinities whose sum is NaN, an empty tensor and a non-contiguous one."""
    g = _gen(6)
    with_bad = torch.randn(7, 9, generator=g)
    with_bad[1, 2], with_bad[3, 4], with_bad[5, 6] = math.inf, -math.inf, math.nan
    tensors = [
        torch.randn(4, 5, generator=g),
        with_bad.t(),
        torch.full((4,), 3e38),  # finite entries, float32 sum overflows
        torch.full((3,), 6e4, dtype=torch.float16),  # finite entries, float16 sum overflows
        torch.tensor([math.inf, -math.inf], dtype=torch.float64),
        torch.empty(0, 3),
    ]
    for chosen in (*([t] for t in tensors), tensors):
        want = sum(float((~torch.isfinite(t.double())).sum()) for t in chosen)
        got = count_nonfinite(chosen, fast=fast)
        assert got.dtype == torch.float64 and got.dim() == 0 and float(got) == want


@pytest.mark.parametrize("fast", [None, False], ids=["host sums (CPU default)", "tensor path"])
@DETAIL
def test_gradient_blocks_against_float64_norms_per_parameter_and_layer(fast, detail):
    """Layer and parameter rows of `gradient_blocks` against float64 norms and counts in plain torch, with a parameter
    shared by two layers, a layer without parameters and an inf/NaN gradient; both CPU paths give the same numbers."""
    from gradient_doctor.probe.gradients import gradient_blocks
    from gradient_doctor.probe.rollup import Rollup

    gen = torch.Generator().manual_seed(0)
    params = [torch.zeros(shape, requires_grad=True) for shape in [(30, 20), (20,), (7, 3), (5,)]]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-3
    params[2].grad[0, :2] = torch.tensor([math.inf, math.nan])
    pairs = [(0, 0), (1, 0), (2, 1), (3, 1), (1, 3)]  # layer 2 owns nothing; param 1 is shared by layers 0 and 3
    layers, per_param = gradient_blocks(params, Rollup(pairs, n_layers=4, device="cpu"), detail=detail, fast=fast)
    squares = [float(values64(p.grad).square().sum()) for p in params]
    bad = [float((~torch.isfinite(p.grad)).sum()) for p in params]
    np.testing.assert_allclose(per_param[0].numpy(), np.sqrt(squares), rtol=RTOL)
    assert per_param[1].tolist() == bad
    for layer, owned in {0: [0, 1], 1: [2, 3], 3: [1]}.items():
        norm = math.sqrt(sum(squares[i] for i in owned))
        assert layers[0, layer].item() == pytest.approx(norm, rel=RTOL, nan_ok=True)
        assert layers[1, layer].item() == sum(bad[i] for i in owned)
    assert torch.isnan(layers[:, 2]).all()
    if detail:
        assert per_param[2, 0].item() == pytest.approx(float(params[0].grad.abs().max()), rel=RTOL)
    else:
        assert torch.isnan(per_param[2:]).all() and torch.isnan(layers[2:]).all()


def test_norms_summed_on_the_host_equal_the_tensor_rollup_bit_for_bit(monkeypatch):
    """The CPU's every-step path (`norm_blocks_on_host`: per-layer sums in Python) against the tensor rollup of the same
    host statistics: the same float64 additions in the same order, so equal to the last bit, NaN where unmeasured."""
    import gradient_doctor.probe.gradients as gradients
    from gradient_doctor.probe.rollup import Rollup

    gen = torch.Generator().manual_seed(1)
    params = [torch.zeros(shape, requires_grad=True) for shape in [(64, 33), (33,), (33, 10), (10,), (9,)]]
    for i, p in enumerate(params):
        p.grad = torch.randn(p.shape, generator=gen) * 10.0 ** -i
    params[4].grad[3] = math.inf
    rollup = Rollup([(0, 0), (1, 0), (2, 2), (3, 2), (4, 2), (4, 3)], n_layers=5, device="cpu")
    host = gradients.gradient_blocks(params, rollup, detail=False)
    monkeypatch.setattr(gradients, "_host_flats", lambda params, fast: None)  # the tensor rollup, same statistics
    tensor = gradients.gradient_blocks(params, rollup, detail=False)
    for a, b in zip(host, tensor):
        assert a.dtype == b.dtype == torch.float64 and torch.equal(a.nan_to_num(-1), b.nan_to_num(-1))
    assert torch.isinf(host[0][0, 2]) and host[1][1, 4] == 1.0
