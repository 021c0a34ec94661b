"API-level, property-based and error-path tests of mixup_lab.core."
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
