"API-level, property-based and error-path tests of mixup_lab.resizemix."
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

import _family as fam
from mixup_lab.core import LinearPlan
from mixup_lab.cutmix import box_lambda
from mixup_lab.resizemix import INTERPOLATIONS, ResizeMix, ResizeMixPlan, paste_resized, resize_box

seeds = st.integers(0, 2**31 - 1)
sizes = st.integers(1, 24)


@settings(max_examples=60, deadline=None)
@given(sizes, sizes, st.floats(0.001, 1.0), seeds)
def test_box_fits_and_has_the_scaled_size(height, width, tau, seed):
    top, bottom, left, right = box = resize_box(height, width, tau, torch.Generator().manual_seed(seed))
    assert all(isinstance(v, int) for v in box)
    assert 0 <= top < bottom <= height and 0 <= left < right <= width
    assert bottom - top == max(1, math.floor(tau * height + 0.5))
    assert right - left == max(1, math.floor(tau * width + 0.5))


def test_box_position_is_uniform_over_the_fitting_positions():
    counts = torch.zeros(3, 5)
    for s in range(3000):
        top, _, left, _ = resize_box(4, 8, 0.5, torch.Generator().manual_seed(s))
        counts[top, left] += 1
    assert (counts > 0).all()  # every position where a 2×4 box fits
    assert counts.max() / counts.min() < 1.6  # 15 cells, about 200 draws each


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 8), sizes, sizes, st.sampled_from([(0.1, 0.8), (0.5, 0.5), (0.9, 1.0)]),
       st.sampled_from(["nearest", "area"]), seeds)
def test_targets_equal_pixel_fractions(batch, height, width, scale, interpolation, seed):
    mixer = ResizeMix(scale, num_classes=batch, interpolation=interpolation, generator=torch.Generator().manual_seed(seed))
    fam.assert_targets_are_pixel_fractions(mixer, height, width, batch)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 8), st.integers(2, 20), st.integers(2, 20), seeds)
def test_pasted_region_is_the_resized_partner(batch, height, width, seed):
    x, y = fam.batch(seed, batch, (2, height, width))
    plan = ResizeMix(num_classes=4, generator=torch.Generator().manual_seed(seed)).sample_plan(x)
    xm = plan.inputs(x)
    top, bottom, left, right = plan.box
    expected = F.interpolate(x[plan.perm], size=(bottom - top, right - left), mode="nearest")
    assert torch.equal(xm[..., top:bottom, left:right], expected)
    outside = torch.ones(height, width, dtype=torch.bool)
    outside[top:bottom, left:right] = False
    assert torch.equal(xm[..., outside], x[..., outside])
    assert plan.lam == box_lambda(height, width, plan.box)


@settings(max_examples=30, deadline=None)
@given(st.floats(0.0, 1.0), seeds)
def test_seeded_generator_is_bit_identical(prob, seed):
    fam.assert_seeded_and_global_rng(lambda g: ResizeMix(num_classes=4, prob=prob, generator=g), seed=seed)


def test_tau_follows_the_scale_range():
    x, _ = fam.batch(0, 4, (1, 100, 100))
    sides = [ResizeMix((0.2, 0.6), num_classes=4, generator=torch.Generator().manual_seed(s)).plan(x).box for s in range(300)]
    heights = torch.tensor([b - t for t, b, _, _ in sides], dtype=torch.float64)
    assert heights.min() >= 20 and heights.max() <= 60
    assert abs(heights.mean().item() - 40) < 2.5  # U(0.2, 0.6)·100 has mean 40 (sd 11.5; 300 draws: se 0.7)


@pytest.mark.parametrize("dtype", fam.DTYPES)
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_dtype_and_memory_format_preserved(dtype, channels_last, interpolation):
    fam.assert_dtype_and_layout_kept(lambda g: ResizeMix(num_classes=4, interpolation=interpolation, generator=g),
                                     dtype, channels_last)


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_autograd_reaches_x(interpolation):
    if interpolation == "bicubic":  # bicubic weights can be negative and overshoot: the gradient sum is not preserved
        x, y = fam.batch(4, 6, (3, 12, 12))
        x.requires_grad_()
        ResizeMix(num_classes=4, interpolation="bicubic", generator=torch.Generator().manual_seed(1))(x, y)[0].sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
        return
    fam.assert_autograd_reaches_x(lambda g: ResizeMix(num_classes=4, interpolation=interpolation, generator=g))


def test_plan_types_and_shapes():
    x, _ = fam.batch(1, 5, (12, 20))  # (B, H, W)
    plan = ResizeMix(num_classes=4, generator=torch.Generator().manual_seed(0)).sample_plan(x)
    assert isinstance(plan, ResizeMixPlan) and isinstance(plan, LinearPlan) and isinstance(plan.lam, float)
    assert plan.inputs(x).shape == x.shape
    x5 = torch.rand(3, 2, 2, 6, 6)  # (B, T, C, H, W): the middle dimensions are carried along
    out = paste_resized(x5, torch.tensor([2, 0, 1]), (0, 3, 0, 3))
    assert torch.equal(out[..., :3, :3], x5[[2, 0, 1]][..., ::2, ::2])
    assert repr(plan).startswith("ResizeMixPlan(lam=")
    fam.assert_batch_of_one_is_unchanged_by_its_plan(lambda g: ResizeMix((1.0, 1.0), num_classes=4, generator=g))


def test_get_objective_round_trip():
    fam.assert_objective_round_trip("resizemix", ResizeMix, scale=(0.2, 0.5), interpolation="bilinear")


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(scale=(0.8, 0.1)), ValueError, r"scale must be a pair \(low, high\)"),
    (dict(scale=(0.0, 0.5)), ValueError, r"scale must be a pair \(low, high\)"),
    (dict(scale=(-0.1, 0.5)), ValueError, r"scale\[0\] must lie in \[0.0, 1.0\]"),
    (dict(scale=(0.1, 2.0)), ValueError, r"scale\[1\] must lie in \[0.0, 1.0\]"),
    (dict(scale=0.5), TypeError, "scale must be a pair"),
    (dict(scale=(0.1, 0.2, 0.3)), TypeError, "scale must be a pair"),
    (dict(scale=("a", 0.5)), TypeError, r"scale\[0\] must be a real number"),
    (dict(interpolation="linear"), ValueError, "interpolation must be one of"),
    (dict(prob=-1), ValueError, r"prob must lie in \[0.0, 1.0\]"),
    (dict(num_classes=None), TypeError, "num_classes is required"),
])
def test_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ResizeMix(**(dict(num_classes=4) | kwargs))


def test_call_and_function_errors():
    x, y = fam.batch(0)
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        ResizeMix(num_classes=4)(x[:, 0, 0], y)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, num_classes-1\]"):
        ResizeMix(num_classes=4)(x, torch.full_like(y, 4))
    with pytest.raises(ValueError, match=r"tau must lie in \(0, 1\]"):
        resize_box(4, 4, 0.0)
    with pytest.raises(ValueError, match="width must be an int >= 1"):
        resize_box(4, 0, 0.5)
    with pytest.raises(ValueError, match="box must satisfy"):
        paste_resized(x, torch.arange(6), (0, 8, 0, 1))
    with pytest.raises(ValueError, match="interpolation must be one of"):
        paste_resized(x, torch.arange(6), (0, 1, 0, 1), "cubic")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_generator_and_batch():
    g = torch.Generator("cuda").manual_seed(0)
    x, y = fam.batch(1)
    xm, t = ResizeMix(num_classes=4, interpolation="bilinear", generator=g)(x.cuda(), y.cuda())
    assert xm.is_cuda and t.is_cuda
    torch.testing.assert_close(t.sum(1), torch.ones(6, device="cuda"))
