"API-level, property-based and error-path tests of mixup_lab.mixup."
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from mixup_lab.core import LinearPlan, one_hot
from mixup_lab.mixup import Mixup, MixupPlan, mixup_plan

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
seeds = st.integers(0, 2**31 - 1)


def _batch(seed, batch=6, shape=(3, 5, 4), num_classes=4, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(batch, *shape, generator=g) * 4 - 2).to(dtype)
    return x, torch.randint(num_classes, (batch,), generator=g)


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 12), st.integers(2, 7), st.sampled_from([0.05, 0.4, 1.0, 4.0]),
       st.sampled_from(["batch", "elem"]), st.floats(0.0, 1.0), seeds)
def test_targets_are_distributions(batch, num_classes, alpha, mode, prob, seed):
    x, y = _batch(seed, batch, num_classes=num_classes)
    _, t = Mixup(alpha, num_classes=num_classes, prob=prob, mode=mode,
                 generator=torch.Generator().manual_seed(seed))(x, y)
    assert t.shape == (batch, num_classes) and t.dtype == torch.float32
    assert (t >= 0).all()
    torch.testing.assert_close(t.sum(1), torch.ones(batch))


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 10), st.sampled_from([0.1, 1.0, 3.0]), st.sampled_from(["batch", "elem"]),
       st.sampled_from(DTYPES), seeds)
def test_outputs_in_convex_hull_of_pair(batch, alpha, mode, dtype, seed):
    x, y = _batch(seed, batch, dtype=dtype)
    plan = Mixup(alpha, num_classes=4, mode=mode, generator=torch.Generator().manual_seed(seed)).sample_plan(x)
    xm = plan.inputs(x)
    partner = x[plan.perm]
    assert ((xm >= torch.minimum(x, partner)) & (xm <= torch.maximum(x, partner))).all()


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["batch", "elem"]), st.floats(0.0, 1.0), seeds)
def test_seeded_generator_is_bit_identical(mode, prob, seed):
    x, y = _batch(seed)
    run = lambda: Mixup(0.4, num_classes=4, prob=prob, mode=mode, generator=torch.Generator().manual_seed(seed))(x, y)
    (xa, ta), (xb, tb) = run(), run()
    assert torch.equal(xa, xb) and torch.equal(ta, tb)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["batch", "elem"]), seeds)
def test_global_rng_follows_manual_seed(mode, seed):
    x, y = _batch(seed)
    torch.manual_seed(seed); xa, ta = Mixup(1.0, num_classes=4, mode=mode)(x, y)
    torch.manual_seed(seed); xb, tb = Mixup(1.0, num_classes=4, mode=mode)(x, y)
    assert torch.equal(xa, xb) and torch.equal(ta, tb)


@settings(max_examples=50, deadline=None)
@given(st.floats(0.0, 1.0), st.integers(2, 10), st.booleans(), seeds)
def test_matches_formula_and_timm(lam, batch, elem, seed):
    "With a fixed λ and partner, the mix is λ x + (1 − λ) x[π]; timm uses the flipped batch as partner."
    x, y = _batch(seed, batch)
    x = x.double()
    flip = torch.arange(batch - 1, -1, -1)
    lam_t = torch.full((batch,), lam, dtype=torch.float64) if elem else lam
    plan = MixupPlan(lam_t, flip)
    torch.testing.assert_close(plan.inputs(x), lam * x + (1 - lam) * x.flip(0), rtol=0, atol=1e-14)
    # timm.data.Mixup's _mix_batch: x.mul_(lam).add_(x.flip(0).mul_(1 - lam)); targets lam*y + (1-lam)*y.flip(0)
    timm_x = x.clone().mul_(lam).add_(x.flip(0).mul_(1 - lam))
    torch.testing.assert_close(plan.inputs(x), timm_x, rtol=0, atol=1e-14)
    t = one_hot(y, 4, torch.float64)
    torch.testing.assert_close(plan.rows(t), lam * t + (1 - lam) * t.flip(0), rtol=0, atol=1e-14)


def test_same_as_timm_with_its_draws():
    "Feed timm's λ (drawn from numpy) into our plan: identical mixed batch and targets."
    timm_data = pytest.importorskip("timm.data")
    import numpy as np
    x, y = _batch(0, 8)
    tm = timm_data.Mixup(mixup_alpha=1.0, cutmix_alpha=0.0, label_smoothing=0.0, num_classes=4)
    np.random.seed(0)
    xt, tt = tm(x.clone(), y)
    np.random.seed(0)
    np.random.rand()  # timm tosses its prob coin first
    lam = float(np.random.beta(1.0, 1.0))
    plan = MixupPlan(lam, torch.arange(7, -1, -1))
    torch.testing.assert_close(plan.inputs(x), xt)
    torch.testing.assert_close(plan.rows(one_hot(y, 4)), tt)


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_tiny_alpha_is_almost_clean(mode):
    "α → 0 puts λ at 0 or 1: every sample is (almost) an original one with a (almost) one-hot target."
    x, y = _batch(1, 16)
    xm, t = Mixup(1e-4, num_classes=4, mode=mode, generator=torch.Generator().manual_seed(0))(x, y)
    assert torch.isclose(t.max(1).values, torch.ones(16), atol=1e-3).all()
    plan = Mixup(1e-4, num_classes=4, mode=mode, generator=torch.Generator().manual_seed(0)).sample_plan(x)
    lam = torch.as_tensor(plan.lam).reshape(-1, 1, 1, 1).float()
    nearest = torch.where(lam > 0.5, x, x[plan.perm])
    torch.testing.assert_close(xm, nearest, atol=1e-3 * 4, rtol=0)


def test_prob_zero_passes_through_and_prob_one_mixes():
    x, y = _batch(2, 8)
    xm, t = Mixup(1.0, num_classes=4, prob=0.0, generator=torch.Generator().manual_seed(0))(x, y)
    assert torch.equal(xm, x) and torch.equal(t, one_hot(y, 4))
    assert isinstance(Mixup(1.0, num_classes=4, prob=1.0).sample_plan(x), LinearPlan)


def test_plan_types():
    p = mixup_plan(5, 1.0, "batch", torch.Generator().manual_seed(0))
    assert isinstance(p, LinearPlan) and isinstance(p.lam, float) and p.perm.sort().values.equal(torch.arange(5))
    q = mixup_plan(5, 1.0, "elem", torch.Generator().manual_seed(0))
    assert isinstance(q.lam, torch.Tensor) and q.lam.shape == (5,) and q.lam.dtype == torch.float32


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["batch", "elem"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_dtype_and_memory_format_preserved(dtype, mode, channels_last):
    x, y = _batch(3, 6, shape=(3, 7, 5), dtype=dtype)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = x.contiguous(memory_format=fmt)
    xm, t = Mixup(1.0, num_classes=4, mode=mode, generator=torch.Generator().manual_seed(0))(x, y)
    assert xm.dtype == dtype and xm.device == x.device and t.dtype == torch.float32
    assert xm.is_contiguous(memory_format=fmt)
    assert xm.data_ptr() != x.data_ptr()  # out of place


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_elem_lambda_rounded_to_input_dtype_so_targets_match(dtype):
    x, y = _batch(7, 8, dtype=dtype)
    plan = Mixup(1.0, num_classes=4, mode="elem", generator=torch.Generator().manual_seed(0)).sample_plan(x)
    assert plan.lam.dtype == torch.float32 and torch.equal(plan.lam.to(dtype).float(), plan.lam)
    lam = plan.lam.view(-1, 1, 1, 1).double()
    expected = lam * x.double() + (1 - lam) * x[plan.perm].double()
    torch.testing.assert_close(plan.inputs(x).double(), expected, atol=2 * 2 ** -7, rtol=0)


def test_input_not_modified():
    x, y = _batch(4, 6)
    x0 = x.clone()
    Mixup(1.0, num_classes=4)(x, y)
    assert torch.equal(x, x0)


def test_soft_target_input_and_loss():
    x, y = _batch(5, 6)
    soft = torch.softmax(torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), 1)
    xm, t = Mixup(1.0, num_classes=4, generator=torch.Generator().manual_seed(0))(x, soft)
    torch.testing.assert_close(t.sum(1), torch.ones(6))
    model = nn.Sequential(nn.Flatten(), nn.Linear(60, 4))
    loss = Mixup(1.0, num_classes=4, generator=torch.Generator().manual_seed(1)).loss(model, x, y)
    plan = Mixup(1.0, num_classes=4, generator=torch.Generator().manual_seed(1)).sample_plan(x)
    logits = model(plan.inputs(x))
    expected = plan.lam * F.cross_entropy(logits, y) + (1 - plan.lam) * F.cross_entropy(logits, y[plan.perm])
    torch.testing.assert_close(loss, expected)
    loss.backward()


def test_attributes_and_repr():
    g = torch.Generator()
    m = Mixup(0.2, num_classes=10, prob=0.5, mode="elem", generator=g)
    assert (m.alpha, m.num_classes, m.prob, m.mode, m.generator) == (0.2, 10, 0.5, "elem", g)
    assert repr(m) == "Mixup(alpha=0.2, num_classes=10, prob=0.5, mode='elem')"


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(alpha=0.0), ValueError, "alpha must be a finite number > 0"),
    (dict(alpha=-1.0), ValueError, "alpha must be a finite number > 0"),
    (dict(alpha=float("nan")), ValueError, "alpha must be a number"),
    (dict(alpha=float("inf")), ValueError, "alpha must be a finite number"),
    (dict(alpha="1"), TypeError, "alpha must be a real number"),
    (dict(prob=-0.1), ValueError, r"prob must lie in \[0.0, 1.0\]"),
    (dict(prob=1.5), ValueError, r"prob must lie in \[0.0, 1.0\]"),
    (dict(mode="pair"), ValueError, r"mode must be one of \['batch', 'elem'\]"),
    (dict(num_classes=1), ValueError, "num_classes must be an int >= 2"),
    (dict(generator=0), TypeError, "generator must be a torch.Generator"),
    (dict(partner="next"), ValueError, r"partner must be one of \['random', 'roll', 'flip'\]"),
    (dict(label_smoothing=1.5), ValueError, r"label_smoothing must lie in \[0.0, 1.0\]"),
    (dict(check_finite="yes"), TypeError, "check_finite must be True or False"),
])
def test_constructor_errors(kwargs, exc, match):
    args = dict(alpha=1.0, num_classes=4) | kwargs
    with pytest.raises(exc, match=match):
        Mixup(**args)


@pytest.mark.parametrize("make, exc, match", [
    (lambda x, y: (x[:0], y[:0]), ValueError, "the batch is empty"),
    (lambda x, y: (x, torch.full_like(y, 4)), ValueError, r"labels must lie in \[0, num_classes-1\]"),
    (lambda x, y: (x, y.tolist()), TypeError, "y must be a torch.Tensor"),
    (lambda x, y: (x, "cat dog"), TypeError, "y must be a torch.Tensor"),
    (lambda x, y: (x, F.one_hot(y, 4) - 0.5), ValueError, "non-negative"),
    (lambda x, y: (x.to("meta"), y), ValueError, "meta device"),
    (lambda x, y: (x, y - 5), ValueError, r"labels must lie in \[0, num_classes-1\]"),
    (lambda x, y: ((x * 100).to(torch.uint8), y), TypeError, "floating-point"),
    (lambda x, y: ((x * 100).long(), y), TypeError, "floating-point"),
    (lambda x, y: (x, y[:4]), ValueError, "same batch size"),
    (lambda x, y: (x, torch.rand(6, 3)), ValueError, r"soft targets must have shape \(B, num_classes\)"),
    (lambda x, y: (x[:, 0, 0, 0], y), ValueError, r"at least 2 dimensions"),
])
def test_call_errors(make, exc, match):
    x, y = _batch(6, 6)
    with pytest.raises(exc, match=match):
        Mixup(1.0, num_classes=4)(*make(x, y))


def test_plan_errors():
    with pytest.raises(ValueError, match="batch_size must be an int >= 2"):
        mixup_plan(1)
    with pytest.raises(ValueError, match="mode must be one of"):
        mixup_plan(4, mode="Batch")
    with pytest.raises(ValueError, match="alpha"):
        mixup_plan(4, alpha=float("nan"))


# ------------------------------------------------------------ issues 10-11
from mixup_lab.core import IdentityPlan, as_soft_targets, partner_index


def test_num_classes_required_only_for_integer_labels():
    x, y = _batch(0, 6)
    with pytest.raises(TypeError, match="num_classes is required"):
        Mixup(1.0)(x, y)
    xm, t = Mixup(1.0, generator=torch.Generator().manual_seed(0))(x, F.one_hot(y, 4))
    assert t.shape == (6, 4)


@pytest.mark.parametrize("mode", ["batch", "elem"])
@pytest.mark.parametrize("shape", [(3, 8, 8), (3, 120, 120)])  # below and above the gather's grain size
def test_inputs_that_require_grad_get_gradients(mode, shape):
    "Bug 1: the out= gathers crashed on inputs that require grad."
    x, y = _batch(1, 4, shape)
    xg = x.clone().requires_grad_()
    make = lambda: Mixup(1.0, num_classes=4, mode=mode, generator=torch.Generator().manual_seed(0))
    xm, t = make()(xg, y)
    assert xm.requires_grad and torch.equal(xm.detach(), make()(x, y)[0])  # the same bits with autograd
    xm.sum().backward()
    # d Σ mixed / d x_j = λ_j + Σ_{i: π(i) = j} (1 − λ_i) = 1 for a permutation
    torch.testing.assert_close(xg.grad, torch.ones_like(x))


def test_requires_grad_through_sem_and_synermix():
    "Bug 1 reached SEM and SynerMix with a mixup inter term."
    from mixup_lab.sem import SemanticEquivariantMixup
    from mixup_lab.synermix import SynerMix
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(60, 8), nn.ReLU(), nn.Linear(8, 4))
    x, y = _batch(2, 6)
    for objective in (SemanticEquivariantMixup(Mixup(1.0, num_classes=4, generator=torch.Generator().manual_seed(0))),
                      SynerMix(4, beta=0.5, inter=Mixup(1.0, num_classes=4, generator=torch.Generator().manual_seed(0)))):
        xg = x.clone().requires_grad_()
        objective.loss(model, xg, y).backward()
        assert xg.grad is not None and xg.grad.abs().sum() > 0, type(objective).__name__


@pytest.mark.parametrize("mode", ["batch", "elem"])
@pytest.mark.parametrize("prob", [0.0, 1.0])
def test_batch_of_one_passes_through(mode, prob):
    "Bug 2: a DataLoader's last batch of one sample crashed the epoch."
    x, y = _batch(3, 1)
    for eps in (0.0, 0.1):
        xm, t = Mixup(1.0, num_classes=4, prob=prob, mode=mode, label_smoothing=eps)(x, y)
        assert torch.equal(xm, x) and torch.equal(t, one_hot(y, 4, label_smoothing=eps))
    model = nn.Sequential(nn.Flatten(), nn.Linear(60, 4))
    torch.testing.assert_close(Mixup(1.0, num_classes=4).loss(model, x, y), F.cross_entropy(model(x), y))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_integer_one_hot_targets_are_accepted(dtype):
    "Bug 4: integer (B, K) one-hot labels were refused with a message about shape (B,)."
    x, y = _batch(4, 6)
    make = lambda k: Mixup(1.0, num_classes=k, generator=torch.Generator().manual_seed(0))
    xm, t = make(None)(x, F.one_hot(y, 4).to(dtype))  # num_classes read off the targets
    xl, tl = make(4)(x, y)
    assert torch.equal(xm, xl)
    torch.testing.assert_close(t, tl)
    with pytest.raises(ValueError, match=r"\(B, 5\)"):
        make(5)(x, F.one_hot(y, 4).to(dtype))


def test_negative_soft_targets_are_refused():
    "Issue 11, item 9: negative targets make the loss unbounded below."
    x, y = _batch(5, 6)
    bad = torch.softmax(torch.randn(6, 4), 1) - 0.3
    for mixer in (Mixup(1.0, num_classes=4), Mixup(1.0, num_classes=4, mode="elem", prob=0.0)):
        with pytest.raises(ValueError, match="non-negative"):
            mixer(x, bad)


def test_check_finite_option():
    x, y = _batch(6, 6)
    x[2, 1, 0, 0] = float("nan")
    Mixup(1.0, num_classes=4)(x, y)  # off by default: no pass over the batch
    with pytest.raises(ValueError, match=r"x has 1 non-finite value\(s\)"):
        Mixup(1.0, num_classes=4, check_finite=True)(x, y)
    with pytest.raises(ValueError, match="non-finite"):
        Mixup(1.0, num_classes=4, check_finite=True).sample_plan(x)
    soft = F.one_hot(y, 4).float(); soft[0, 0] = float("inf")
    with pytest.raises(ValueError, match="y has 1 non-finite"):
        Mixup(1.0, num_classes=4, check_finite=True)(x.nan_to_num(), soft)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("elem", [False, True])
def test_label_smoothing_equals_timm_mixup_target(eps, elem):
    "timm's mixup_target(target, K, lam, smoothing) with timm's flip partner and the same λ."
    from timm.data.mixup import mixup_target
    x, y = _batch(7, 8)
    g = torch.Generator().manual_seed(0)
    lam = torch.rand(8, generator=g) if elem else 0.37
    plan = MixupPlan(lam, partner_index(8, "flip"))
    timm_lam = lam.unsqueeze(1) if elem else lam
    torch.testing.assert_close(plan.targets(y, 4, eps), mixup_target(y, 4, lam=timm_lam, smoothing=eps))
    torch.testing.assert_close(plan.rows(as_soft_targets(y, 4, label_smoothing=eps)), mixup_target(y, 4, lam=timm_lam, smoothing=eps))


def test_label_smoothing_end_to_end_against_timm():
    "The whole call, with timm's draws (NumPy's global RNG) fed into our plan, equals timm.data.Mixup with smoothing."
    timm_data = pytest.importorskip("timm.data")
    import numpy as np
    x, y = _batch(8, 8)
    tm = timm_data.Mixup(mixup_alpha=1.0, cutmix_alpha=0.0, label_smoothing=0.1, num_classes=4)
    np.random.seed(1)
    xt, tt = tm(x.clone(), y)
    np.random.seed(1)
    np.random.rand()
    lam = float(np.random.beta(1.0, 1.0))
    mixer = Mixup(1.0, num_classes=4, partner="flip", label_smoothing=0.1)
    plan = MixupPlan(lam, partner_index(8, mixer.partner))
    torch.testing.assert_close(plan.inputs(x), xt)
    torch.testing.assert_close(plan.targets(y, 4, mixer.label_smoothing), tt)


def test_roll_partner_equals_torchvision_mixup():
    "torchvision's v2.MixUp rolls the batch: with its λ (drawn from torch's global RNG) we give the same batch and targets."
    from torchvision.transforms import v2
    x, y = _batch(9, 8)
    tv = v2.MixUp(alpha=1.0, num_classes=4)
    torch.manual_seed(3)
    xt, tt = tv(x, y)
    torch.manual_seed(3)
    lam = float(tv._dist.sample(()))
    plan = MixupPlan(lam, partner_index(8, "roll"))
    torch.testing.assert_close(plan.inputs(x), xt)
    torch.testing.assert_close(plan.targets(y, 4), tt)
    assert torch.equal(Mixup(1.0, num_classes=4, partner="roll").plan(x).perm, partner_index(8, "roll"))


def test_partner_rules_and_unmixed_fraction():
    g = torch.Generator().manual_seed(0)
    fixed = torch.stack([mixup_plan(2, 1.0, generator=g).perm for _ in range(4000)]) == torch.arange(2)
    assert abs(fixed.all(1).float().mean().item() - 0.5) < 0.03  # randperm leaves a batch of 2 unmixed half of the time
    for b in (2, 5, 8):
        assert (mixup_plan(b, partner="roll").perm != torch.arange(b)).all()
    assert (mixup_plan(5, partner="flip").perm == torch.arange(5)).sum() == 1  # the middle sample of an odd batch
    assert repr(Mixup(1.0, num_classes=3, partner="roll", label_smoothing=0.1)) == \
        "Mixup(alpha=1, num_classes=3, prob=1, mode='batch', partner='roll', label_smoothing=0.1)"


def test_elem_mode_coin_is_per_sample():
    "timm's mode='elem' tosses the prob coin per element; unmixed samples are exactly their own image and label."
    x, y = _batch(10, 512, (2, 2, 2))
    plan = Mixup(1.0, num_classes=4, prob=0.4, mode="elem", generator=torch.Generator().manual_seed(0)).sample_plan(x)
    kept = plan.lam == 1
    assert abs(kept.float().mean().item() - 0.6) < 0.06
    xm, t = plan.inputs(x), plan.targets(y, 4)
    assert torch.equal(xm[kept], x[kept]) and torch.equal(t[kept], one_hot(y, 4)[kept])
    assert isinstance(Mixup(1.0, num_classes=4, prob=0.0, mode="elem").sample_plan(x), IdentityPlan)


def test_default_seeded_draws_are_unchanged():
    "Bit-identity with the earlier version: the same seed draws the same λ and permutation (values drawn by commit 4364a26)."
    x = torch.zeros(6, 3, 7, 9)
    m = Mixup(1.0, num_classes=4, generator=torch.Generator().manual_seed(7))
    expected = [(0.59042586322727, [2, 4, 5, 0, 3, 1]), (0.8101470653991087, [1, 4, 3, 5, 0, 2]),
                (0.5844156741535657, [0, 2, 1, 5, 3, 4])]
    for lam, perm in expected:
        plan = m.sample_plan(x)
        assert plan.lam == lam and plan.perm.tolist() == perm
