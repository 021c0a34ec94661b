"API-level, property-based and error-path tests of mixup_lab.cutmix."
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from mixup_lab.core import LinearPlan, one_hot
from mixup_lab.cutmix import CutMix, CutMixPlan, box_lambda, cutmix_plan, paste_box, random_box

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
seeds = st.integers(0, 2**31 - 1)
sizes = st.integers(1, 24)


def _batch(seed, batch=6, shape=(3, 7, 9), num_classes=4, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, *shape, generator=g).to(dtype)
    return x, torch.randint(num_classes, (batch,), generator=g)


@settings(max_examples=50, deadline=None)
@given(sizes, sizes, st.floats(0.0, 1.0), seeds)
def test_random_box_is_inside_and_sized(height, width, lam, seed):
    top, bottom, left, right = box = random_box(height, width, lam, torch.Generator().manual_seed(seed))
    assert all(isinstance(v, int) for v in box)
    assert 0 <= top <= bottom <= height and 0 <= left <= right <= width
    side = math.sqrt(1 - lam)
    assert bottom - top <= round(height * side) and right - left <= round(width * side)
    # the box centre is inside the image, so at least half of each (rounded) side survives clipping
    assert bottom - top >= round(height * side) // 2 and right - left >= round(width * side) // 2
    assert box_lambda(height, width, box) == 1 - (bottom - top) * (right - left) / (height * width)


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 8), sizes, sizes, st.sampled_from([0.2, 1.0, 5.0]), seeds)
def test_target_mass_equals_pixel_fraction(batch, height, width, alpha, seed):
    "Image c is constant c with label c: the label mass of c must be the fraction of pixels with value c."
    x = torch.arange(batch, dtype=torch.float32).view(batch, 1, 1, 1).expand(batch, 2, height, width).contiguous()
    xm, t = CutMix(alpha, num_classes=batch, generator=torch.Generator().manual_seed(seed))(x, torch.arange(batch))
    pixel_fraction = (xm[:, :1] == torch.arange(batch).view(1, batch, 1, 1)).double().mean((-2, -1))
    torch.testing.assert_close(t.double(), pixel_fraction, rtol=0, atol=1e-6)


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 10), st.integers(2, 7), sizes, sizes, st.sampled_from([0.05, 1.0, 4.0]),
       st.floats(0.0, 1.0), st.sampled_from(DTYPES), seeds)
def test_pixels_come_from_the_pair_and_targets_are_distributions(batch, num_classes, height, width, alpha, prob,
                                                                 dtype, seed):
    x, y = _batch(seed, batch, (3, height, width), num_classes, dtype)
    plan = CutMix(alpha, num_classes=num_classes, prob=prob,
                  generator=torch.Generator().manual_seed(seed)).sample_plan(x)
    xm = plan.inputs(x)
    perm = getattr(plan, "perm", torch.arange(batch))
    assert ((xm == x) | (xm == x[perm])).all()
    t = plan.rows(one_hot(y, num_classes))
    assert (t >= 0).all()
    torch.testing.assert_close(t.sum(1), torch.ones(batch))
    if isinstance(plan, CutMixPlan):  # the pixels taken from the partner are exactly the box
        top, bottom, left, right = plan.box
        mask = torch.zeros(height, width, dtype=torch.bool)
        mask[top:bottom, left:right] = True
        assert torch.equal(xm, torch.where(mask, x[perm], x))
        assert plan.lam == box_lambda(height, width, plan.box)


@settings(max_examples=30, deadline=None)
@given(st.floats(0.0, 1.0), seeds)
def test_seeded_generator_is_bit_identical(prob, seed):
    x, y = _batch(seed)
    run = lambda: CutMix(1.0, num_classes=4, prob=prob, generator=torch.Generator().manual_seed(seed))(x, y)
    (xa, ta), (xb, tb) = run(), run()
    assert torch.equal(xa, xb) and torch.equal(ta, tb)


def test_global_rng_follows_manual_seed():
    x, y = _batch(0)
    torch.manual_seed(3); xa, ta = CutMix(1.0, num_classes=4)(x, y)
    torch.manual_seed(3); xb, tb = CutMix(1.0, num_classes=4)(x, y)
    assert torch.equal(xa, xb) and torch.equal(ta, tb)


@settings(max_examples=30, deadline=None)
@given(sizes, sizes, seeds)
def test_same_as_timm_formula_with_same_box_and_partner(height, width, seed):
    "timm's batch CutMix: x[:, :, yl:yh, xl:xh] = x.flip(0)[:, :, yl:yh, xl:xh], λ = 1 − box area / (H W)."
    x, y = _batch(seed, 6, (3, height, width))
    box = random_box(height, width, 0.5, torch.Generator().manual_seed(seed))
    yl, yh, xl, xh = box
    expected = x.clone()
    expected[:, :, yl:yh, xl:xh] = x.flip(0)[:, :, yl:yh, xl:xh]
    lam = 1 - (yh - yl) * (xh - xl) / float(height * width)
    plan = CutMixPlan(box_lambda(height, width, box), torch.arange(5, -1, -1), box)
    assert torch.equal(plan.inputs(x), expected)
    assert plan.lam == pytest.approx(lam, abs=1e-15)
    t = one_hot(y, 4)
    torch.testing.assert_close(plan.rows(t), lam * t + (1 - lam) * t.flip(0))


def test_tiny_alpha_is_almost_clean_or_fully_pasted():
    "α → 0: λ₀ ∈ {0, 1}; λ₀ = 1 is an empty box (the clean batch)."
    x, y = _batch(1, 8, (3, 16, 16))
    for seed in range(10):
        plan = CutMix(1e-4, num_classes=4, generator=torch.Generator().manual_seed(seed)).sample_plan(x)
        if plan.lam == 1.0:
            assert torch.equal(plan.inputs(x), x) and torch.equal(plan.rows(one_hot(y, 4)), one_hot(y, 4))
        else:  # a full-size box, clipped: at least a quarter of the image comes from the partner
            assert plan.lam <= 0.75


def test_lambda_one_box_is_empty_and_lambda_zero_is_full_when_centred():
    assert box_lambda(10, 6, random_box(10, 6, 1.0)) == 1.0
    assert box_lambda(10, 6, (0, 10, 0, 6)) == 0.0
    x = torch.rand(3, 1, 10, 6)
    assert torch.equal(paste_box(x, torch.tensor([1, 2, 0]), (0, 10, 0, 6)), x[[1, 2, 0]])
    assert torch.equal(paste_box(x, torch.tensor([1, 2, 0]), (4, 4, 0, 6)), x)


def test_plan_types_and_draw_order():
    p = cutmix_plan(5, 12, 20, 1.0, torch.Generator().manual_seed(0))
    assert isinstance(p, LinearPlan) and isinstance(p.lam, float) and p.perm.sort().values.equal(torch.arange(5))
    assert len(p.box) == 4 and p.lam == box_lambda(12, 20, p.box)
    assert repr(p).startswith("CutMixPlan(lam=")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_dtype_and_memory_format_preserved(dtype, channels_last):
    x, y = _batch(3, 6, (3, 11, 8), dtype=dtype)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = x.contiguous(memory_format=fmt)
    x0 = x.clone()
    xm, t = CutMix(1.0, num_classes=4, generator=torch.Generator().manual_seed(0))(x, y)
    assert xm.dtype == dtype and xm.device == x.device and t.dtype == torch.float32
    assert xm.is_contiguous(memory_format=fmt)
    assert torch.equal(x, x0) and xm.data_ptr() != x.data_ptr()  # out of place


def test_three_dim_batch_and_non_square():
    x = torch.rand(4, 5, 13)  # (B, H, W)
    xm, t = CutMix(1.0, num_classes=3, generator=torch.Generator().manual_seed(0))(x, torch.tensor([0, 1, 2, 0]))
    assert xm.shape == x.shape
    torch.testing.assert_close(t.sum(1), torch.ones(4))


def test_loss_is_mixed_cross_entropy():
    x, y = _batch(5, 6)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 7 * 9, 4))
    loss = CutMix(1.0, num_classes=4, generator=torch.Generator().manual_seed(1)).loss(model, x, y)
    plan = CutMix(1.0, num_classes=4, generator=torch.Generator().manual_seed(1)).sample_plan(x)
    logits = model(plan.inputs(x))
    expected = plan.lam * F.cross_entropy(logits, y) + (1 - plan.lam) * F.cross_entropy(logits, y[plan.perm])
    torch.testing.assert_close(loss, expected)
    loss.backward()


def test_prob_zero_passes_through():
    x, y = _batch(2, 8)
    xm, t = CutMix(1.0, num_classes=4, prob=0.0, generator=torch.Generator().manual_seed(0))(x, y)
    assert torch.equal(xm, x) and torch.equal(t, one_hot(y, 4))


def test_attributes_and_repr():
    g = torch.Generator()
    m = CutMix(0.5, num_classes=10, prob=0.25, generator=g)
    assert (m.alpha, m.num_classes, m.prob, m.generator) == (0.5, 10, 0.25, g)
    assert repr(m) == "CutMix(alpha=0.5, num_classes=10, prob=0.25)"


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(alpha=0.0), ValueError, "alpha must be a finite number > 0"),
    (dict(alpha=-2.0), ValueError, "alpha must be a finite number > 0"),
    (dict(alpha=float("nan")), ValueError, "alpha must be a number"),
    (dict(alpha=None), TypeError, "alpha must be a real number"),
    (dict(prob=-0.1), ValueError, r"prob must lie in \[0.0, 1.0\]"),
    (dict(prob=float("nan")), ValueError, "prob must be a number"),
    (dict(num_classes=1), ValueError, "num_classes must be an int >= 2"),
    (dict(num_classes=None), TypeError, "num_classes is required"),
    (dict(generator="seed"), TypeError, "generator must be a torch.Generator"),
])
def test_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        CutMix(**(dict(alpha=1.0, num_classes=4) | kwargs))


@pytest.mark.parametrize("make, exc, match", [
    (lambda x, y: (x[:1], y[:1]), ValueError, "at least 2"),
    (lambda x, y: (x, torch.full_like(y, 4)), ValueError, r"labels must lie in \[0, num_classes-1\]"),
    (lambda x, y: ((x * 255).to(torch.uint8), y), TypeError, "floating-point"),
    (lambda x, y: (x, y[:3]), ValueError, "same batch size"),
    (lambda x, y: (x[:, 0, 0], y), ValueError, "at least 3 dimensions"),
])
def test_call_errors(make, exc, match):
    x, y = _batch(6, 6)
    with pytest.raises(exc, match=match):
        CutMix(1.0, num_classes=4)(*make(x, y))


def test_function_errors():
    with pytest.raises(ValueError, match="height must be an int >= 1"):
        random_box(0, 4, 0.5)
    with pytest.raises(ValueError, match="width must be an int >= 1"):
        random_box(4, 2.5, 0.5)
    with pytest.raises(ValueError, match=r"lam must lie in \[0.0, 1.0\]"):
        random_box(4, 4, -0.1)
    with pytest.raises(ValueError, match="box must satisfy"):
        box_lambda(4, 4, (2, 1, 0, 4))
    with pytest.raises(TypeError, match="box must be a tuple of 4 ints"):
        box_lambda(4, 4, (0, 1, 2))
    with pytest.raises(ValueError, match="box must satisfy"):
        paste_box(torch.rand(2, 1, 4, 4), torch.tensor([1, 0]), (0, 5, 0, 1))
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        paste_box(torch.rand(2, 4), torch.tensor([1, 0]), (0, 1, 0, 1))
    with pytest.raises(ValueError, match="batch_size must be an int >= 2"):
        cutmix_plan(1, 4, 4)
