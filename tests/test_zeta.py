"API-level, property-based and error-path tests of mixup_lab.zeta (ζ-mixup)."
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st
from scipy import special

from mixup_lab.core import one_hot, uniform
from mixup_lab.zeta import (ZetaMixup, ZetaPlan, dominance_gamma, intrinsic_dimension, p_series_weights,
                            zeta_weights)

gammas = st.floats(0.1, 8.0, allow_nan=False)
seeds = st.integers(0, 2**31 - 1)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 40), gammas, seeds)
def test_zeta_weights_rows_are_permuted_p_series(n, gamma, seed):
    W = zeta_weights(n, gamma, torch.Generator().manual_seed(seed), dtype=torch.float64)
    p = p_series_weights(n, gamma, torch.float64)
    assert W.shape == (n, n)
    assert torch.equal(W.sort(dim=1, descending=True).values, p.expand(n, n))
    torch.testing.assert_close(W.sum(1), torch.ones(n, dtype=torch.float64), rtol=0, atol=1e-12)
    assert torch.equal(W.diagonal(), W.max(1).values)
    if n > 1: assert torch.equal(W.argmax(1), torch.arange(n))  # strict: the p-series decreases strictly


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 24), st.integers(2, 7), gammas, st.one_of(st.none(), st.integers(2, 24)), seeds)
def test_targets_are_distributions_and_outputs_convex(batch, num_classes, gamma, n_mix, seed):
    n_mix = None if n_mix is None else min(n_mix, batch)
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(batch, 3, 5, generator=g), torch.randint(num_classes, (batch,), generator=g)
    xm, t = ZetaMixup(gamma, num_classes=num_classes, n_mix=n_mix, generator=g)(x, y)
    assert xm.shape == x.shape and xm.dtype == x.dtype and t.shape == (batch, num_classes)
    assert (t >= 0).all()
    torch.testing.assert_close(t.sum(1), torch.ones(batch), rtol=0, atol=1e-5)
    lo, hi = x.min(0).values, x.max(0).values  # a convex combination stays within the per-feature range
    assert (xm >= lo - 1e-5).all() and (xm <= hi + 1e-5).all()


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 20), st.integers(2, 20), gammas, seeds)
def test_n_mix_path_equals_dense_reference(batch, n_mix, gamma, seed):
    n_mix = min(n_mix, batch)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 2, 3, 3, generator=g, dtype=torch.float64)
    plan = ZetaMixup(gamma, num_classes=3, n_mix=n_mix, generator=g).plan(x)
    assert isinstance(plan, ZetaPlan) and plan.index.shape == (batch, n_mix)
    assert torch.equal(plan.index[:, 0], torch.arange(batch))
    assert all(len(set(row)) == n_mix for row in plan.index.tolist())  # distinct samples per output
    # dense reference built from the same indices and weights
    W = torch.zeros(batch, batch, dtype=torch.float64)
    W[torch.arange(batch)[:, None], plan.index] = p_series_weights(n_mix, gamma, torch.float64)
    torch.testing.assert_close(plan.rows(x), (W @ x.flatten(1)).view_as(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(plan.matrix(), W)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 16), gammas, seeds)
def test_exact_mode_matches_zeta_weights_and_n_mix_equal_batch(batch, gamma, seed):
    x = torch.randn(batch, 4, generator=torch.Generator().manual_seed(seed))
    dense = ZetaMixup(gamma, num_classes=2, generator=torch.Generator().manual_seed(seed)).plan(x)
    full = ZetaMixup(gamma, num_classes=2, n_mix=batch, generator=torch.Generator().manual_seed(seed)).plan(x)
    W = zeta_weights(batch, gamma, torch.Generator().manual_seed(seed))
    torch.testing.assert_close(dense.rows(x), W @ x, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(full.rows(x), W @ x, rtol=1e-5, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 40), st.integers(2, 40), seeds)
def test_n_mix_keeps_the_leading_ranks_of_the_exact_plan(batch, n_mix, seed):
    n_mix = min(n_mix, batch)
    x = torch.randn(batch, 3)
    exact = ZetaMixup(2.0, num_classes=2, generator=torch.Generator().manual_seed(seed)).plan(x)
    part = ZetaMixup(2.0, num_classes=2, n_mix=n_mix, generator=torch.Generator().manual_seed(seed)).plan(x)
    assert torch.equal(part.index, exact.index[:, :n_mix])


@settings(max_examples=30, deadline=None)
@given(st.one_of(st.none(), st.integers(2, 6)), seeds)
def test_determinism_under_seeded_generator(n_mix, seed):
    x, y = torch.randn(6, 3, 4, 4), torch.randint(4, (6,))
    run = lambda s: ZetaMixup(2.4, num_classes=4, n_mix=n_mix, generator=torch.Generator().manual_seed(s))(x, y)
    a, b = run(seed), run(seed)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_seed_changes_the_batch():
    x, y = torch.randn(6, 5), torch.randint(4, (6,))
    run = lambda s: ZetaMixup(2.4, num_classes=4, generator=torch.Generator().manual_seed(s))(x, y)[0]
    assert not torch.equal(run(0), run(1))


@pytest.mark.parametrize("n_mix", [None, 3])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtype_and_channels_last(n_mix, dtype):
    x = torch.randn(5, 3, 4, 4).to(dtype).contiguous(memory_format=torch.channels_last)
    y = torch.randint(3, (5,))
    run = lambda inp: ZetaMixup(2.8, num_classes=3, n_mix=n_mix, generator=torch.Generator().manual_seed(0))(inp, y)
    xm, t = run(x)
    assert xm.dtype == dtype and t.dtype == torch.float32
    assert xm.is_contiguous(memory_format=torch.channels_last)
    if dtype != torch.float64:  # half types are mixed in float32 and rounded once
        assert torch.equal(xm, run(x.float())[0].to(dtype))


def test_prob_zero_passes_through():
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    xm, t = ZetaMixup(2.8, num_classes=3, prob=0.0)(x, y)
    assert torch.equal(xm, x) and torch.equal(t, one_hot(y, 3))


def test_stream_is_coin_then_keys():
    x, y = torch.randn(7, 3), torch.randint(3, (7,))
    xm, _ = ZetaMixup(2.8, num_classes=3, generator=torch.Generator().manual_seed(5))(x, y)
    g = torch.Generator().manual_seed(5); uniform((), g)
    torch.testing.assert_close(xm, zeta_weights(7, 2.8, g) @ x)


@pytest.mark.parametrize("n, expected", [(3, 0.78788), (4, 1.08213), (8, 1.43579), (32, 1.65053), (128, 1.70394),
                                         (1024, 1.72364)])
def test_dominance_gamma_table(n, expected):
    g_min = dominance_gamma(n)
    assert abs(g_min - expected) < 5e-6
    above = p_series_weights(n, g_min * (1 + 1e-6), torch.float64)
    below = p_series_weights(n, g_min * (1 - 1e-6), torch.float64)
    assert above[0] > above[1:].sum() and below[0] < below[1:].sum()


def test_dominance_gamma_limits():
    assert abs(dominance_gamma() - 1.72864723899818) < 1e-12
    assert abs(special.zeta(dominance_gamma(), 1) - 2) < 1e-12
    assert dominance_gamma(2) == 0.0
    assert dominance_gamma(4096) < dominance_gamma()


@pytest.mark.parametrize("n", [3, 5, 16])
def test_label_correctness_worst_case(n):
    x, y = torch.randn(n, 2), torch.tensor([0] + [1] * (n - 1))
    for factor, dominates in [(1.01, True), (0.99, False)]:
        _, t = ZetaMixup(dominance_gamma(n) * factor, num_classes=2, generator=torch.Generator().manual_seed(0))(x, y)
        assert bool(t[0, 0] > t[0, 1]) == dominates


def test_n2_is_mixup():
    for lam in (0.55, 0.8, 0.97):
        gamma = math.log2(lam / (1 - lam))
        x = torch.randn(2, 5, dtype=torch.float64)
        out = ZetaMixup(gamma, num_classes=2).plan(x).rows(x)
        torch.testing.assert_close(out, torch.stack([lam * x[0] + (1 - lam) * x[1], lam * x[1] + (1 - lam) * x[0]]))


def test_intrinsic_dimension_plane_and_helix():
    g = torch.Generator().manual_seed(0)
    rotation = torch.linalg.qr(torch.randn(10, 10, generator=g))[0]
    plane = torch.cat([torch.rand(2000, 2, generator=g), torch.zeros(2000, 8)], 1) @ rotation
    assert abs(intrinsic_dimension(plane, k=20) - 2) < 0.15
    assert abs(intrinsic_dimension(plane, k=20, max_elements=5000) - intrinsic_dimension(plane, k=20)) < 1e-9
    t = 6 * math.pi * torch.rand(2000, generator=g, dtype=torch.float64)
    helix = torch.stack([t.cos(), t.sin(), t / 10], 1)
    assert abs(intrinsic_dimension(helix, k=20) - 1) < 0.1


x4, y4 = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])


@pytest.mark.parametrize("bad, error, match", [
    (lambda: ZetaMixup(0.0, num_classes=3), ValueError, "gamma"),
    (lambda: ZetaMixup(-2.0, num_classes=3), ValueError, "gamma"),
    (lambda: ZetaMixup(float("nan"), num_classes=3), ValueError, "gamma"),
    (lambda: ZetaMixup("2.8", num_classes=3), TypeError, "gamma"),
    (lambda: ZetaMixup(2.8, num_classes=3, n_mix=1), ValueError, "n_mix"),
    (lambda: ZetaMixup(2.8, num_classes=3, n_mix=3.0), TypeError, "n_mix"),
    (lambda: ZetaMixup(2.8, num_classes=3, prob=-0.1), ValueError, "prob"),
    (lambda: ZetaMixup(2.8, num_classes=3, prob=1.1), ValueError, "prob"),
    (lambda: ZetaMixup(2.8, num_classes=3)(x4[:0], y4[:0]), ValueError, "the batch is empty"),
    (lambda: ZetaMixup(2.8, num_classes=3)(x4, y4.tolist()), TypeError, "y must be a torch.Tensor"),
    (lambda: ZetaMixup(2.8)(x4, y4), TypeError, "num_classes is required"),
    (lambda: ZetaMixup(2.8, num_classes=3)(x4, y4 + 3), ValueError, "num_classes-1"),
    (lambda: ZetaMixup(2.8, num_classes=3)(x4.to(torch.uint8), y4), TypeError, "floating-point"),
    (lambda: ZetaMixup(2.8, num_classes=3)(x4, y4[:3]), ValueError, "same batch size"),
    (lambda: zeta_weights(0), ValueError, "n must be an int >= 1"),
    (lambda: p_series_weights(3, 0.0), ValueError, "gamma"),
    (lambda: dominance_gamma(1), ValueError, "n must be an int >= 2"),
    (lambda: intrinsic_dimension(torch.randn(50, 3), k=60), ValueError, "k must be smaller"),
    (lambda: intrinsic_dimension(torch.zeros(20, 3), k=5), ValueError, "duplicate"),
])
def test_bad_input(bad, error, match):
    with pytest.raises(error, match=match):
        bad()


# ------------------------------------------------------------ issues 10-11
@settings(max_examples=30, deadline=None)
@given(st.integers(1, 7), st.integers(2, 12), st.floats(0.0, 1.0), seeds)
def test_n_mix_larger_than_the_batch_mixes_min_n_b(batch, n_mix, prob, seed):
    "Issue 10, bug 3: ZetaMixup(n_mix=N) on a batch smaller than N (a short last batch) crashed."
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(batch, 3, 4, generator=g), torch.randint(3, (batch,), generator=g)
    xm, t = ZetaMixup(2.0, num_classes=3, n_mix=n_mix, prob=prob, generator=torch.Generator().manual_seed(seed))(x, y)
    assert xm.shape == x.shape and t.shape == (batch, 3)
    torch.testing.assert_close(t.sum(1), torch.ones(batch), rtol=0, atol=1e-5)
    if batch >= 2:
        plan = ZetaMixup(2.0, num_classes=3, n_mix=n_mix, generator=torch.Generator().manual_seed(seed)).plan(x)
        assert plan.index.shape == (batch, min(n_mix, batch))
    else:
        assert torch.equal(xm, x) and torch.equal(t, one_hot(y, 3))


def test_short_batch_inside_fit():
    from torch.utils.data import TensorDataset
    from mixup_lab.train import fit
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(10, 4), torch.arange(10) % 2)  # batches of 4, 4 and 2 for n_mix=4
    model = torch.nn.Sequential(torch.nn.Linear(4, 2))
    history = fit(model, ZetaMixup(2.0, num_classes=2, n_mix=4), data, data, epochs=1, batch_size=4, lr=0.1, progress=False)
    assert len(history) == 1


def test_one_nan_spreads_unless_checked():
    "Issue 11, item 12: exact ζ-mixup spreads one NaN pixel to every sample; check_finite=True refuses the batch."
    x, y = torch.randn(6, 3, 4, 4), torch.randint(3, (6,))
    x[2, 1, 0, 0] = float("nan")
    xm, _ = ZetaMixup(2.8, num_classes=3)(x, y)
    assert xm.flatten(1).isnan().any(1).all()
    with pytest.raises(ValueError, match=r"x has 1 non-finite value\(s\) of 288 \(1 NaN, 0 ±Inf\)"):
        ZetaMixup(2.8, num_classes=3, check_finite=True)(x, y)


def test_label_smoothing_and_integer_one_hot_targets():
    x, y = torch.randn(6, 3), torch.randint(3, (6,))
    make = lambda **kw: ZetaMixup(2.8, generator=torch.Generator().manual_seed(0), **kw)
    _, t_int = make()(x, torch.nn.functional.one_hot(y, 3))
    _, t_lab = make(num_classes=3)(x, y)
    torch.testing.assert_close(t_int, t_lab)
    _, t_s = make(num_classes=3, label_smoothing=0.3)(x, y)
    torch.testing.assert_close(t_s, 0.7 * t_lab + 0.1)  # smoothing commutes with a convex mix


def test_default_seeded_draws_are_unchanged():
    "The same seed draws the same orderings as before (values drawn by commit 4364a26)."
    m = ZetaMixup(2.0, num_classes=4, n_mix=3, generator=torch.Generator().manual_seed(7))
    x = torch.zeros(6, 3, 7, 9)
    assert m.sample_plan(x).index.tolist() == [[0, 3, 1], [1, 4, 5], [2, 1, 3], [3, 2, 4], [4, 3, 1], [5, 2, 3]]
    assert m.sample_plan(x).index.tolist() == [[0, 2, 5], [1, 2, 4], [2, 1, 3], [3, 4, 5], [4, 5, 2], [5, 2, 3]]
