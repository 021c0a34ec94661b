"API-level, property-based and error-path tests of mixup_lab.cutmix."
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from mixup_lab.core import LinearPlan, one_hot
from mixup_lab.cutmix import (CutMix, CutMixPlan, box_lambda, cutmix_plan, minmax_box, mixup_cutmix, paste_box,
                              random_box, random_segment)

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
seeds = st.integers(0, 2**31 - 1)
sizes = st.integers(1, 24)


def _batch(seed, batch=6, shape=(3, 7, 9), num_classes=4, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, *shape, generator=g).to(dtype)
    return x, torch.randint(num_classes, (batch,), generator=g)


@settings(max_examples=50, deadline=None)
@given(sizes, sizes, st.floats(0.0, 1.0), st.sampled_from(["authors", "round"]), seeds)
def test_random_box_is_inside_and_sized(height, width, lam, rule, seed):
    top, bottom, left, right = box = random_box(height, width, lam, torch.Generator().manual_seed(seed), rule)
    assert all(isinstance(v, int) for v in box)
    assert 0 <= top <= bottom <= height and 0 <= left <= right <= width
    side = math.sqrt(1 - lam)
    if rule == "authors":  # an even side 2·(int(n·side) // 2) before clipping, never more than the drawn area
        full_h, full_w = 2 * (int(height * side) // 2), 2 * (int(width * side) // 2)
    else:
        full_h, full_w = round(height * side), round(width * side)
    assert bottom - top <= full_h and right - left <= full_w
    # the box centre is inside the image, so at least half of each side survives clipping
    assert bottom - top >= full_h // 2 and right - left >= full_w // 2
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


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 8), st.integers(1, 4), st.integers(1, 40), st.sampled_from(["authors", "round"]),
       st.sampled_from([None, (0.2, 0.8)]), seeds)
def test_three_dim_batch_is_sequences_cut_along_T(batch, channels, length, rule, minmax, seed):
    "Issue 11, item 10: (B, C, T) gets a segment of T (it used to cut a box spanning C, mixing nothing when C = 1)."
    x = torch.arange(batch, dtype=torch.float32).view(batch, 1, 1).expand(batch, channels, length).contiguous()
    mixer = CutMix(1.0, num_classes=batch, box_rule=rule, cutmix_minmax=minmax, generator=torch.Generator().manual_seed(seed))
    plan = mixer.sample_plan(x)
    xm, t = plan.inputs(x), plan.targets(torch.arange(batch), batch)
    assert xm.shape == x.shape
    fraction = (xm[:, :1] == torch.arange(batch).view(1, batch, 1)).double().mean(-1)  # (B, K): every channel alike
    torch.testing.assert_close(t.double(), fraction, rtol=0, atol=1e-6)
    assert (xm == xm[:, :1]).all()  # a segment spans all channels
    if isinstance(plan, CutMixPlan):
        start, stop = plan.box
        assert 0 <= start <= stop <= length and plan.lam == 1 - (stop - start) / length


def test_segment_rule():
    "random_segment: about (1 − λ₀)·T steps, the authors' int cut and cut // 2 on each side of the centre."
    for length, lam in [(100, 0.75), (37, 0.5), (8, 0.1)]:
        u = torch.rand((), generator=torch.Generator().manual_seed(length), dtype=torch.float64).item()
        centre, half = int(u * length), int(length * (1 - lam)) // 2
        assert random_segment(length, lam, torch.Generator().manual_seed(length)) == (max(centre - half, 0), min(centre + half, length))
    with pytest.raises(ValueError, match="length must be an int >= 1"):
        random_segment(0, 0.5)


def test_c_equal_one_channel_sequences_always_mix_something():
    "With (B, 1, T) the old reading as (B, H=1, W=T) drew empty boxes for every λ₀ > 0 (int(1·√(1−λ₀)) < 1 rows)."
    x, y = torch.rand(8, 1, 64), torch.randint(3, (8,))
    mixer = CutMix(1.0, num_classes=3, generator=torch.Generator().manual_seed(0))
    lams = [mixer.sample_plan(x).lam for _ in range(200)]
    assert sum(lam < 1 for lam in lams) > 150


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
    (dict(generator="seed"), TypeError, "generator must be a torch.Generator"),
    (dict(box_rule="timm"), ValueError, r"box_rule must be one of \['authors', 'round'\]"),
    (dict(cutmix_minmax=(0.9, 0.1)), ValueError, "0 <= min < max <= 1"),
    (dict(cutmix_minmax=0.5), TypeError, "cutmix_minmax must be None or a pair"),
    (dict(partner="left"), ValueError, "partner must be one of"),
    (dict(label_smoothing=2), ValueError, "label_smoothing must lie in"),
])
def test_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        CutMix(**(dict(alpha=1.0, num_classes=4) | kwargs))


@pytest.mark.parametrize("make, exc, match", [
    (lambda x, y: (x[:0], y[:0]), ValueError, "the batch is empty"),
    (lambda x, y: (x, torch.full_like(y, 4)), ValueError, r"labels must lie in \[0, num_classes-1\]"),
    (lambda x, y: (x, y.tolist()), TypeError, "y must be a torch.Tensor"),
    (lambda x, y: (x, F.one_hot(y, 4) - 1), ValueError, "non-negative"),
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
    with pytest.raises(TypeError, match=r"width must be an int >= 1, got 2.5 \(float\)"):  # core.check_int: wrong type
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


# ------------------------------------------------------------ issues 10-12
from mixup_lab.core import IdentityPlan, RandomChoice, as_soft_targets, partner_index


def _authors_rand_bbox(H, W, lam, cy, cx):
    "The CutMix authors' rand_bbox rule (clovaai/CutMix-PyTorch, train.py), for a given integer centre; their W is our H."
    cut_h, cut_w = int(H * np.sqrt(1.0 - lam)), int(W * np.sqrt(1.0 - lam))
    return (int(np.clip(cy - cut_h // 2, 0, H)), int(np.clip(cy + cut_h // 2, 0, H)),
            int(np.clip(cx - cut_w // 2, 0, W)), int(np.clip(cx + cut_w // 2, 0, W)))


@settings(max_examples=200, deadline=None)
@given(sizes, sizes, st.floats(0.0, 1.0), seeds)
def test_default_box_is_the_authors_rand_bbox(height, width, lam, seed):
    "Issue 12, item 8: pin the authors' box rule (int cut, cut // 2 each side of a uniform integer centre, clipped)."
    u = torch.rand(2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).tolist()  # our centre draw
    cy, cx = int(u[0] * height), int(u[1] * width)
    assert random_box(height, width, lam, torch.Generator().manual_seed(seed)) == _authors_rand_bbox(height, width, lam, cy, cx)


def test_round_rule_reproduces_the_earlier_boxes():
    "box_rule='round' keeps the earlier versions' boxes bit for bit (values drawn by commit 4364a26)."
    cases = [(0, 0.3), (1, 0.5), (2, 0.9), (3, 0.05)]
    assert [random_box(7, 9, l, torch.Generator().manual_seed(s), "round") for s, l in cases] == \
        [(3, 7, 2, 9), (0, 3, 0, 5), (5, 7, 0, 2), (0, 4, 0, 7)]
    assert [random_box(32, 32, l, torch.Generator().manual_seed(s), "round") for s, l in cases] == \
        [(18, 32, 9, 32), (0, 13, 0, 19), (24, 32, 0, 8), (0, 17, 0, 25)]
    x = torch.zeros(6, 3, 7, 9)
    m = CutMix(1.0, num_classes=4, box_rule="round", generator=torch.Generator().manual_seed(7))
    expected = [(0.7142857142857143, [5, 4, 3, 1, 0, 2], (0, 3, 0, 6)), (0.7619047619047619, [0, 2, 1, 5, 3, 4], (4, 7, 3, 8)),
                (0.9047619047619048, [4, 2, 5, 0, 3, 1], (0, 2, 6, 9))]
    for lam, perm, box in expected:
        plan = m.sample_plan(x)
        assert (plan.lam, plan.perm.tolist(), plan.box) == (lam, perm, box)


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 9, 14), (2, 224, 160)])
def test_authors_rule_equals_torchvision_cutmix(shape):
    "torchvision's v2.CutMix box (int(½√(1−λ)·n) each side of a uniform centre) is the authors' rule; with its draws we give its batch."
    from torchvision.transforms import v2
    x, y = _batch(1, 6, shape)
    H, W = shape[-2:]
    tv = v2.CutMix(alpha=1.0, num_classes=4)
    for seed in range(5):
        torch.manual_seed(seed)
        xt, tt = tv(x, y)
        torch.manual_seed(seed)  # replay torchvision's draws: λ, then the column and the row of the centre
        lam0 = float(tv._dist.sample(()))
        r_x, r_y = int(torch.randint(W, (1,))), int(torch.randint(H, (1,)))
        box = _authors_rand_bbox(H, W, lam0, r_y, r_x)
        plan = CutMixPlan(box_lambda(H, W, box), partner_index(6, "roll"), box)
        assert torch.equal(plan.inputs(x), xt)
        torch.testing.assert_close(plan.targets(y, 4), tt)


def test_cutmix_minmax_has_timms_distribution():
    "timm's rand_bbox_minmax: sides uniform in [⌊n·min⌋, ⌊n·max⌋), boxes inside the image; compare the frequencies with timm's own draws."
    from timm.data.mixup import rand_bbox_minmax
    H, W, minmax, n = 10, 13, (0.2, 0.8), 20000
    np.random.seed(0)
    theirs = np.stack(rand_bbox_minmax((3, H, W), minmax, count=n), 1)
    g = torch.Generator().manual_seed(0)
    ours = np.array([minmax_box(H, W, minmax, g) for _ in range(n)])
    for k, size in enumerate((H, H, W, W)):  # top, bottom, left, right
        f_ours, f_theirs = (np.bincount(a[:, k], minlength=size + 1) / n for a in (ours, theirs))
        assert set(np.nonzero(f_ours)[0]) == set(np.nonzero(f_theirs)[0]) and np.abs(f_ours - f_theirs).max() < 0.02, k
    for a in (ours, theirs):
        assert set(a[:, 1] - a[:, 0]) == set(range(int(H * 0.2), int(H * 0.8)))


def test_cutmix_minmax_in_the_mixer():
    x, y = _batch(2, 6, (3, 20, 30))
    plan = CutMix(num_classes=4, cutmix_minmax=(0.3, 0.6), generator=torch.Generator().manual_seed(0)).sample_plan(x)
    top, bottom, left, right = plan.box
    assert 6 <= bottom - top < 12 and 9 <= right - left < 18 and plan.lam == box_lambda(20, 30, plan.box)
    assert repr(CutMix(num_classes=4, cutmix_minmax=(0.3, 0.6))) == "CutMix(alpha=1, num_classes=4, prob=1, cutmix_minmax=(0.3, 0.6))"


@pytest.mark.parametrize("shape", [(3, 8, 8), (3, 160, 160), (2, 300)])  # small box, large box, sequences
def test_inputs_that_require_grad_get_gradients(shape):
    "Issue 10, bug 1 (paste_box's out= gather)."
    x, y = _batch(3, 4, shape)
    xg = x.clone().requires_grad_()
    make = lambda: CutMix(1.0, num_classes=4, generator=torch.Generator().manual_seed(0))
    xm, t = make()(xg, y)
    assert torch.equal(xm.detach(), make()(x, y)[0])
    xm.sum().backward()
    torch.testing.assert_close(xg.grad, torch.ones_like(x))  # every output pixel is one input pixel, π a permutation


@pytest.mark.parametrize("threads", [1, 2])  # one thread: index_select into the output; several: advanced indexing for large boxes
@pytest.mark.parametrize("hw", [8, 160])
@pytest.mark.parametrize("channels_last", [False, True])
def test_paste_paths_agree_with_formula(hw, channels_last, threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try: _check_paste(hw, channels_last)
    finally: torch.set_num_threads(before)


def _check_paste(hw, channels_last):
    x = torch.rand(5, 3, hw, hw)
    if channels_last: x = x.contiguous(memory_format=torch.channels_last)
    perm, box = torch.tensor([4, 0, 3, 1, 2]), (1, hw - 2, 2, hw - 1)
    expected = x.clone()
    expected[..., 1:hw - 2, 2:hw - 1] = x[perm][..., 1:hw - 2, 2:hw - 1]
    out = paste_box(x, perm, box)
    assert torch.equal(out, expected) and out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def test_batch_of_one_and_integer_targets():
    x, y = _batch(4, 1)
    xm, t = CutMix(1.0, num_classes=4, label_smoothing=0.1)(x, y)
    assert torch.equal(xm, x) and torch.equal(t, one_hot(y, 4, label_smoothing=0.1))
    x, y = _batch(4, 6)
    xa, ta = CutMix(1.0, generator=torch.Generator().manual_seed(0))(x, F.one_hot(y, 4))
    xb, tb = CutMix(1.0, num_classes=4, generator=torch.Generator().manual_seed(0))(x, y)
    assert torch.equal(xa, xb)
    torch.testing.assert_close(ta, tb)


@pytest.mark.parametrize("eps", [0.1, 0.25])
def test_label_smoothing_equals_timm(eps):
    "timm's Mixup(cutmix_alpha=1, label_smoothing=ε), with its draws fed into our plan (its flip partner)."
    timm_data = pytest.importorskip("timm.data")
    from timm.data.mixup import cutmix_bbox_and_lam, mixup_target
    x, y = _batch(5, 8, (3, 16, 20))
    tm = timm_data.Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=eps, num_classes=4)
    np.random.seed(2)
    xt, tt = tm(x.clone(), y)
    np.random.seed(2)
    np.random.rand()  # timm's prob coin
    lam0 = float(np.random.beta(1.0, 1.0))
    box, lam = cutmix_bbox_and_lam(x.shape, lam0)
    plan = CutMixPlan(lam, partner_index(8, "flip"), tuple(int(v) for v in box))
    assert torch.equal(plan.inputs(x), xt)
    torch.testing.assert_close(plan.targets(y, 4, eps), tt)
    torch.testing.assert_close(plan.targets(y, 4, eps), mixup_target(y, 4, lam, eps))


def test_mixup_cutmix_is_timms_switch():
    from mixup_lab.mixup import Mixup
    from mixup_lab.train import get_objective
    both = mixup_cutmix(4, alpha=0.8, cutmix_alpha=1.0, switch_prob=0.25, label_smoothing=0.1,
                        generator=torch.Generator().manual_seed(0))
    assert isinstance(both, RandomChoice) and both.p == (0.75, 0.25)
    assert isinstance(both.mixers[0], Mixup) and both.mixers[0].alpha == 0.8 and isinstance(both.mixers[1], CutMix)
    picks = [type(both.choose()).__name__ for _ in range(4000)]
    assert abs(picks.count("CutMix") / 4000 - 0.25) < 0.03
    x, y = _batch(6, 8)
    xm, t = both(x, y)
    torch.testing.assert_close(t.sum(1), torch.ones(8))
    assert t.min() >= 0.1 / 4 - 1e-7  # smoothed
    built = get_objective("mixup_cutmix", 4, alpha=0.8, switch_prob=0.25, cutmix_minmax=(0.2, 0.8))
    assert built.p == (0.75, 0.25) and built.mixers[1].cutmix_minmax == (0.2, 0.8)
    sem = get_objective("sem", 4, mixer="mixup_cutmix", switch_prob=0.5)
    assert isinstance(sem.mixer, RandomChoice)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 7 * 9, 4))
    assert torch.isfinite(built.loss(model, x, y)) and torch.isfinite(sem.loss(model, x, y))
    with pytest.raises(ValueError, match="switch_prob"):
        mixup_cutmix(4, switch_prob=2)
