"API-level, property-based and error-path tests of mixup_lab.core."
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

import mixup_lab
from mixup_lab.core import (ERM, InputMixer, LinearPlan, Objective, one_hot, as_soft_targets, sample_beta,
                            soft_target_cross_entropy, split_model)


def test_version():
    assert mixup_lab.__version__


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 16), st.integers(2, 12), st.integers(0, 2**31 - 1))
def test_one_hot_rows(batch, num_classes, seed):
    labels = torch.randint(num_classes, (batch,), generator=torch.Generator().manual_seed(seed))
    t = one_hot(labels, num_classes)
    assert t.shape == (batch, num_classes) and t.sum(1).eq(1).all()
    assert t.argmax(1).equal(labels)


@settings(max_examples=50, deadline=None)
@given(st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
def test_loss_is_linear_in_targets(lam, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(8, 5, generator=g, dtype=torch.float64)
    a, b = torch.randint(5, (8,), generator=g), torch.randint(5, (8,), generator=g)
    mixed = lam * one_hot(a, 5, torch.float64) + (1 - lam) * one_hot(b, 5, torch.float64)
    expected = lam * F.cross_entropy(logits.float(), a) + (1 - lam) * F.cross_entropy(logits.float(), b)
    torch.testing.assert_close(soft_target_cross_entropy(logits, mixed), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad, match", [
    (lambda: one_hot(torch.tensor([0, 5]), 5), "num_classes-1"),
    (lambda: one_hot(torch.tensor([0.5]), 5), "integer dtype"),
    (lambda: one_hot([0, 1], 5), "torch.Tensor"),
    (lambda: one_hot(torch.tensor([0]), 1.5), "num_classes"),
    (lambda: as_soft_targets(torch.ones(2, 4), 5), "num_classes"),
    (lambda: soft_target_cross_entropy(torch.ones(2, 3), torch.ones(2, 4)), "shape"),
    (lambda: sample_beta(-1.0), "alpha"),
    (lambda: sample_beta(float("nan")), "alpha"),
])
def test_error_paths(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        bad()


def test_sample_beta_is_seeded():
    draw = lambda: sample_beta(1.0, size=16, generator=torch.Generator().manual_seed(3))
    assert draw().equal(draw())


def test_split_model_error_names_explicit_parts():
    class Custom(nn.Module):
        def forward(self, x): return x
    with pytest.raises(TypeError, match="features="):
        split_model(Custom())


def test_split_model_timm_and_torchvision():
    timm = pytest.importorskip("timm")
    import torchvision
    x = torch.randn(2, 3, 32, 32)
    for model in (timm.create_model("resnet18", num_classes=4, pretrained=False).eval(),
                  torchvision.models.resnet18(num_classes=4).eval()):
        parts = split_model(model)
        torch.testing.assert_close(parts(x), model(x), rtol=1e-4, atol=1e-5)
        features, head = parts
        assert features(x).shape == (2, 512) and head(features(x)).shape == (2, 4)


def test_linear_plan_matches_formula(generator):
    t = torch.randn(6, 3, generator=generator)
    perm = torch.randperm(6, generator=generator)
    lam = torch.rand(6, generator=generator)
    torch.testing.assert_close(LinearPlan(lam, perm).rows(t), lam[:, None] * t + (1 - lam[:, None]) * t[perm])


def test_erm_is_an_objective():
    assert isinstance(ERM(), Objective)
    model = nn.Linear(3, 2)
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 1, 0])
    torch.testing.assert_close(ERM(2).loss(model, x, y), F.cross_entropy(model(x), y))


def test_linear_plan_label_targets_equal_lerp_of_one_hots():
    # The label fast path must give the same bits as rows(one_hot(y)) for every λ, extremes included.
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 5, (64,), generator=g)
    lams = torch.cat([torch.rand(300, dtype=torch.float64, generator=g), torch.rand(100, dtype=torch.float64, generator=g) ** 12,
                      1 - torch.rand(100, dtype=torch.float64, generator=g) ** 12,
                      torch.tensor([0.0, 1.0, 0.5, 0.5 - 2 ** -30, 2 ** -40, 1 - 2 ** -40], dtype=torch.float64)])
    for lam in lams.tolist():
        plan = LinearPlan(lam, torch.randperm(64, generator=g))
        fast, ref = plan.targets(y, 5), plan.rows(one_hot(y, 5))
        assert fast.dtype == ref.dtype and torch.equal(fast, ref)
        assert torch.equal(fast.sum(1), torch.ones(64))


def test_linear_plan_label_targets_check_range():
    plan = LinearPlan(0.3, torch.tensor([1, 0]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, num_classes-1\] = \[0, 2\], got values in \[0, 3\]"):
        plan.targets(torch.tensor([0, 3]), 3)
    with pytest.raises(ValueError, match=r"got values in \[-1, 1\]"):
        plan.targets(torch.tensor([1, -1]), 3)
    with pytest.raises(TypeError, match="integer dtype"):
        plan.targets(torch.tensor([True, False]), 3)
    # int32 labels and soft targets take the same values as the one-hot route
    assert torch.equal(plan.targets(torch.tensor([0, 2], dtype=torch.int32), 3), plan.rows(one_hot(torch.tensor([0, 2]), 3)))
    soft = torch.tensor([[0.2, 0.8, 0.0], [1.0, 0.0, 0.0]])
    assert torch.equal(plan.targets(soft, 3), plan.rows(soft))


def test_sample_beta_scalar_matches_vector_draw():
    a = sample_beta(0.4, generator=torch.Generator().manual_seed(5))
    b = sample_beta(0.4, size=1, generator=torch.Generator().manual_seed(5))
    assert a.shape == () and a.dtype == torch.float64 and torch.equal(a, b[0])


# ------------------------------------------------------------ issues 10-11: targets, checks, kernels
from mixup_lab.core import (PARTNERS, IdentityPlan, PicklableGenerators, RandomChoice, check_batch, check_finite,
                            gather_rows, partner_index, worker_generator)


def test_one_hot_label_smoothing_is_timms():
    from timm.data.mixup import one_hot as timm_one_hot
    y = torch.tensor([0, 3, 1, 3])
    for eps in (0.0, 0.1, 0.35, 1.0):
        off = eps / 5
        assert torch.equal(one_hot(y, 5, label_smoothing=eps), timm_one_hot(y, 5, on_value=1 - eps + off, off_value=off))
    with pytest.raises(ValueError, match=r"label_smoothing must lie in \[0.0, 1.0\]"):
        one_hot(y, 5, label_smoothing=-0.1)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool, torch.float16, torch.float64])
def test_as_soft_targets_accepts_any_B_K_dtype_and_infers_K(dtype):
    y = torch.tensor([2, 0, 1])
    rows = F.one_hot(y, 3).to(dtype)
    assert torch.equal(as_soft_targets(rows), one_hot(y, 3))  # K read off the targets
    assert torch.equal(as_soft_targets(rows, 3), one_hot(y, 3))
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        as_soft_targets(rows, 4)


def test_as_soft_targets_smoothing_and_errors():
    soft = torch.tensor([[0.2, 0.8], [1.0, 0.0]])
    torch.testing.assert_close(as_soft_targets(soft, label_smoothing=0.1), 0.9 * soft + 0.05)
    with pytest.raises(ValueError, match="non-negative"):
        as_soft_targets(torch.tensor([[1.5, -0.5], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="non-negative"):
        as_soft_targets(torch.tensor([[2, -1], [1, 0]]))
    with pytest.raises(TypeError, match="num_classes is required"):
        as_soft_targets(torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="num_classes"):
        as_soft_targets(torch.ones(3, 1))  # K = 1 is no classification


def test_soft_target_cross_entropy_refuses_negative_targets_and_non_tensor_logits():
    logits = torch.randn(3, 4)
    with pytest.raises(ValueError, match="non-negative"):
        soft_target_cross_entropy(logits, torch.tensor([[2.0, -1.0, 0, 0]] * 3))
    with pytest.raises(TypeError, match=r"the model returned a dict with keys \['logits'\]"):
        soft_target_cross_entropy({"logits": logits}, one_hot(torch.tensor([0, 1, 2]), 4))
    with pytest.raises(TypeError, match="returned a tuple of 2 items"):
        soft_target_cross_entropy((logits, logits), one_hot(torch.tensor([0, 1, 2]), 4))
    with pytest.raises(ValueError, match="the batch is empty"):
        soft_target_cross_entropy(logits[:0], torch.zeros(0, 4))
    assert soft_target_cross_entropy(logits[:0], torch.zeros(0, 4), reduction="sum") == 0


def test_erm_clear_errors():
    model = nn.Linear(3, 2)
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 1, 0])
    with pytest.raises(ValueError, match="the batch is empty"):
        ERM().loss(model, x[:0], y[:0])
    with pytest.raises(TypeError, match="the model returned a dict"):
        ERM().loss(lambda inp: {"logits": model(inp)}, x, y)
    with pytest.raises(ValueError, match="meta device"):
        ERM().loss(model, x.to("meta"), y)
    with pytest.raises(TypeError, match="y must be a torch.Tensor"):
        ERM().loss(model, x, [0, 1, 1, 0])
    with pytest.raises(ValueError, match="same batch size"):
        ERM().loss(model, x, y[:3])
    torch.testing.assert_close(ERM().loss(model, x, F.one_hot(y, 2)), F.cross_entropy(model(x), y))
    emb = nn.Sequential(nn.Embedding(10, 3), nn.Flatten(), nn.Linear(6, 2))  # integer inputs are fine for ERM
    assert torch.isfinite(ERM().loss(emb, torch.randint(10, (4, 2)), y))


@pytest.mark.parametrize("bad, exc, match", [
    ([0, 1, 2, 3], TypeError, "y must be a torch.Tensor"),
    ("cats", TypeError, "y must be a torch.Tensor"),
    (torch.tensor(1), ValueError, "same batch size"),
])
def test_check_batch_names_bad_y(bad, exc, match):
    with pytest.raises(exc, match=match):
        check_batch(torch.zeros(4, 3), bad)


def test_check_batch_meta_and_empty():
    with pytest.raises(ValueError, match="meta device"):
        check_batch(torch.zeros(4, 3, device="meta"))
    with pytest.raises(ValueError, match="meta device"):
        check_batch(torch.zeros(4, 3), torch.zeros(4, device="meta"))
    with pytest.raises(ValueError, match="the batch is empty"):
        check_batch(torch.zeros(0, 3), min_batch=1)
    assert check_batch(torch.zeros(1, 3), torch.zeros(1), min_batch=1) == 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_check_finite_counts(dtype):
    x = torch.rand(3, 4, 5).to(dtype)
    assert check_finite(x) is x
    x[0, 1, 2] = float("nan"); x[2, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"batch has 2 non-finite value\(s\) of 60 \(1 NaN, 1 ±Inf\) in 2 of 3 rows \[0, 2\]"):
        check_finite(x, "batch")
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        check_finite(x.tolist(), "x")


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.sampled_from([(3,), (2, 5), (3, 40, 300), (3, 105, 105), (7, 13, 401)]),
       st.sampled_from(["contiguous", "channels_last", "transposed"]), st.sampled_from([torch.float32, torch.float16]),
       st.booleans(), st.integers(0, 2**31 - 1))
def test_gather_rows_is_x_index(batch, shape, layout, dtype, grad, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *shape, generator=g).to(dtype)
    if layout == "channels_last" and x.ndim == 4: x = x.contiguous(memory_format=torch.channels_last)
    if layout == "transposed" and x.ndim >= 3: x = x.transpose(1, 2)
    index = torch.randint(batch, (batch,), generator=g)
    if grad: x = x.detach().requires_grad_()
    out = gather_rows(x, index)
    assert torch.equal(out.detach(), x.detach()[index]) and out.dtype == dtype
    if layout == "contiguous": assert out.is_contiguous()
    if layout == "channels_last" and x.ndim == 4: assert out.is_contiguous(memory_format=torch.channels_last)
    if grad:
        out.float().sum().backward()
        counts = torch.bincount(index, minlength=batch).to(dtype).view(-1, *[1] * len(shape))
        assert torch.equal(x.grad, counts.expand_as(x))


@pytest.mark.parametrize("threads", [1, 2])
def test_gather_rows_keeps_channels_last_on_every_path(threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for hw in (8, 120):  # rows below and above the grain size
            for fmt in (torch.channels_last, torch.contiguous_format):
                x = torch.randn(4, 3, hw, hw).contiguous(memory_format=fmt)
                out = gather_rows(x, torch.tensor([3, 1, 2, 0]))
                assert out.is_contiguous(memory_format=fmt) and torch.equal(out, x[[3, 1, 2, 0]])
    finally:
        torch.set_num_threads(before)


def test_partner_index_rules():
    assert partner_index(4, "roll").tolist() == [3, 0, 1, 2]
    assert partner_index(4, "flip").tolist() == [3, 2, 1, 0]
    assert torch.equal(partner_index(6, "random", torch.Generator().manual_seed(2)), torch.randperm(6, generator=torch.Generator().manual_seed(2)))
    x = torch.arange(5.)
    assert torch.equal(x[partner_index(5, "roll")], x.roll(1, 0))  # torchvision's pairing
    assert torch.equal(x[partner_index(5, "flip")], x.flip(0))  # timm's pairing
    with pytest.raises(ValueError, match="partner must be one of"):
        partner_index(4, "next")


class _Holder(PicklableGenerators):
    def __init__(self, generator, inner=None): self.generator, self.inner = generator, inner


def test_picklable_generators_share_and_restore_state():
    import copy
    import pickle
    g = torch.Generator().manual_seed(9)
    torch.rand(3, generator=g)
    a = _Holder(g, [_Holder(g), _Holder(None)])
    for b in (pickle.loads(pickle.dumps(a)), copy.deepcopy(a)):
        assert b.generator is not g and b.inner[0].generator is b.generator and b.inner[1].generator is None
        assert torch.equal(torch.rand(5, generator=b.generator), torch.rand(5, generator=copy.deepcopy(g)))
    assert copy.copy(a).generator is g


def test_worker_generator_outside_workers():
    g = torch.Generator()
    assert worker_generator(g) is g and worker_generator(None) is None


class _Toy(InputMixer):
    def plan(self, x): return LinearPlan(0.5, torch.arange(x.shape[0] - 1, -1, -1))


class _Keep(InputMixer):
    def plan(self, x): return IdentityPlan()


def test_random_choice_proportions_delegation_and_errors():
    choice = RandomChoice([_Toy(3), _Keep(3)], p=[3, 1], generator=torch.Generator().manual_seed(0))
    assert choice.p == (0.75, 0.25) and choice.num_classes == 3
    picks = [type(choice.choose()).__name__ for _ in range(4000)]
    assert abs(picks.count("_Toy") / 4000 - 0.75) < 0.03
    never = RandomChoice([_Toy(3), _Keep(3)], p=[0, 1], generator=torch.Generator().manual_seed(0))
    assert all(isinstance(never.choose(), _Keep) for _ in range(200))
    x, y = torch.randn(4, 2), torch.tensor([0, 1, 2, 0])
    xm, t = RandomChoice([_Toy(3)])(x, y)
    torch.testing.assert_close(xm, (x + x.flip(0)) / 2)
    model = nn.Linear(2, 3)
    assert torch.isfinite(choice.loss(model, x, y)) and isinstance(choice, Objective)
    for bad, exc, match in [(([_Toy(3), _Keep(4)],), ValueError, "agree on num_classes"),
                            (([_Toy(3, label_smoothing=0.1), _Keep(3)],), ValueError, "agree on label_smoothing"),
                            (([],), ValueError, "at least one"),
                            ((_Toy(3),), TypeError, "list of InputMixers"),
                            (([_Toy(3), ERM()],), TypeError, "must be InputMixers"),
                            (([_Toy(3)], [0.5, 0.5]), ValueError, "p must be a list of 1"),
                            (([_Toy(3), _Keep(3)], [-1, 2]), ValueError, "p must lie in"),
                            (([_Toy(3), _Keep(3)], [0, 0]), ValueError, "positive")]:
        with pytest.raises(exc, match=match):
            RandomChoice(*bad)


def test_input_mixer_batch_of_one_and_label_smoothing():
    x, y = torch.randn(1, 2), torch.tensor([2])
    xm, t = _Toy(3, label_smoothing=0.3)(x, y)
    assert torch.equal(xm, x) and torch.equal(t, one_hot(y, 3, label_smoothing=0.3))
    assert isinstance(_Toy(3).sample_plan(x), IdentityPlan)
    with pytest.raises(TypeError, match="num_classes is required"):
        _Toy()(torch.randn(4, 2), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(TypeError, match="check_finite must be True or False"):
        _Toy(3, check_finite=1)


# ------------------------------------------------------------ one home for checks: integers, flags, generators
from mixup_lab.core import check_bool, check_generator, check_int, check_num_classes


@pytest.mark.parametrize("value", [3, np.int64(3), np.int32(3), np.uint8(3)])
def test_check_int_accepts_python_and_numpy_ints(value):
    out = check_int(value, "n_mix", 2, 5)
    assert out == 3 and type(out) is int


@pytest.mark.parametrize("value, low, high, exc, match", [
    (1, 2, None, ValueError, r"n must be an int >= 2, got 1$"),
    (6, 1, 5, ValueError, r"n must be an int in 1\.\.5, got 6$"),
    (-1, 0, None, ValueError, r"n must be an int >= 0, got -1$"),
    (7, None, 5, ValueError, r"n must be an int <= 5, got 7$"),
    (2.0, 1, None, TypeError, r"n must be an int >= 1, got 2.0 \(float\)"),
    (True, 1, None, TypeError, r"n must be an int >= 1, got True \(bool\)"),  # a flag is no count
    (np.bool_(True), 1, None, TypeError, r"\(bool_?\)$"),
    ("3", 1, None, TypeError, r"n must be an int >= 1, got '3' \(str\)"),
    (np.float64(3.0), 1, None, TypeError, r"\(float64\)"),
    (torch.tensor(3), 1, None, TypeError, r"\(Tensor\)"),
])
def test_check_int_errors(value, low, high, exc, match):
    with pytest.raises(exc, match=match): check_int(value, "n", low, high)


def test_check_int_default_and_unbounded():
    assert check_int(1, "size") == 1 and check_int(-5, "offset", None) == -5
    with pytest.raises(ValueError, match="size must be an int >= 1"): check_int(0, "size")


def test_num_classes_goes_through_check_int():
    assert check_num_classes(np.int64(10)) == 10
    with pytest.raises(TypeError, match=r"num_classes must be an int >= 2, got 10.0 \(float\)"): check_num_classes(10.0)
    with pytest.raises(ValueError, match="num_classes must be an int >= 2, got 1"): check_num_classes(1)


def test_check_bool_and_check_generator():
    assert check_bool(True, "flag") is True and check_bool(np.bool_(False), "flag") is False
    for bad in (1, 0, "yes", None):
        with pytest.raises(TypeError, match="flag must be True or False"): check_bool(bad, "flag")
    g = torch.Generator()
    assert check_generator(g) is g and check_generator(None) is None
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator or None, got int; to seed, pass "
                                        r"torch.Generator\(\).manual_seed\(7\)"):
        check_generator(7)
    with pytest.raises(TypeError, match=r"cam_generator must be a torch.Generator or None, got str$"):
        check_generator("seed", "cam_generator")


def test_every_generator_holder_checks_with_check_generator():
    "One message for a bad generator everywhere (before: some classes checked nothing and failed at the first draw)."
    from mixup_lab.data import Cutout, loader
    from mixup_lab.fmix import FMix
    from mixup_lab.manifold import ManifoldMixup
    from mixup_lab.mixup import Mixup
    from mixup_lab.resizemix import ResizeMix
    from mixup_lab.saliencymix import SaliencyMix
    from mixup_lab.snapmix import SnapMix
    from mixup_lab.synermix import BalancedBatchSampler, SynerMix
    makers = [lambda g: Mixup(num_classes=3, generator=g), lambda g: ManifoldMixup(generator=g),
              lambda g: SnapMix(3, generator=g), lambda g: SynerMix(3, generator=g), lambda g: Cutout(4, g),
              lambda g: BalancedBatchSampler([0, 0, 1, 1], 2, generator=g), lambda g: loader(range(4), 2, generator=g),
              lambda g: FMix(num_classes=3, generator=g), lambda g: ResizeMix(num_classes=3, generator=g),
              lambda g: SaliencyMix(num_classes=3, generator=g)]
    for make in makers:
        with pytest.raises(TypeError, match="generator must be a torch.Generator or None, got int; to seed"):
            make(0)
