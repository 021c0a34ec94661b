"API-level, property-based and error-path tests of mixup_lab.manifold."
import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from hypothesis import given, settings, strategies as st

from _models import Opaque
from mixup_lab.core import IdentityPlan, LinearPlan, Objective, one_hot, soft_target_cross_entropy
from mixup_lab.manifold import ManifoldMixup, default_layers, mixed_forward, resolve_layers


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))


def no_hooks(model):
    return not any(m._forward_hooks for m in model.modules())


@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 1.0), st.integers(0, 3), st.integers(0, 2**31 - 1))
def test_mixed_hidden_state_is_the_formula(lam, k, seed):
    model, g = mlp(), torch.Generator().manual_seed(seed)
    x = torch.randn(5, 6, generator=g)
    perm = torch.randperm(5, generator=g)
    plan = LinearPlan(lam, perm)
    with torch.no_grad():
        h = model[:k + 1](x)
        expected = model[k + 1:](lam * h + (1 - lam) * h[perm])
        torch.testing.assert_close(mixed_forward(model, x, plan, str(k)), expected, rtol=1e-5, atol=1e-6)
    assert no_hooks(model)


def test_input_layer_is_mixup():
    model, x = mlp(), torch.randn(4, 6)
    plan = LinearPlan(0.25, torch.tensor([3, 2, 1, 0]))
    torch.testing.assert_close(mixed_forward(model, x, plan, "input"), model(plan.rows(x)))
    torch.testing.assert_close(mixed_forward(model, x, IdentityPlan(), "2"), model(x))


def test_hooks_removed_after_success_and_exception():
    model, x = mlp(), torch.randn(4, 6)
    plan = LinearPlan(0.5, torch.tensor([1, 0, 3, 2]))
    mixed_forward(model, x, plan, "1")
    assert no_hooks(model)

    def fail(module, inputs): raise RuntimeError("forward failed")
    handle = model[3].register_forward_pre_hook(fail)
    with pytest.raises(RuntimeError, match="forward failed"):
        mixed_forward(model, x, plan, "1")
    handle.remove()
    assert no_hooks(model)
    torch.testing.assert_close(model(x), model[2:](model[:2](x)))  # nothing mixes any more

    mm = ManifoldMixup(layers=["2"], generator=torch.Generator().manual_seed(0))
    model[3].register_forward_pre_hook(fail)
    with pytest.raises(RuntimeError, match="forward failed"):
        mm.loss(model, x, torch.tensor([0, 1, 2, 0]))
    assert no_hooks(model)


def test_layer_choice_is_seeded_and_uniform():
    model, x = torchvision.models.resnet18(num_classes=3), torch.zeros(4, 3, 8, 8)
    draws = lambda seed: [ManifoldMixup(generator=g).sample(model, x)[1]
                          for g in [torch.Generator().manual_seed(seed)] for _ in range(300)]
    first = draws(0)
    assert first == draws(0) and first != draws(1)
    counts = {name: first.count(name) for name in ("input", "layer1", "layer2")}
    assert sum(counts.values()) == 300 and all(60 <= c <= 140 for c in counts.values()), counts


def test_loss_is_seeded_and_matches_manual_computation():
    model, x, y = mlp(), torch.randn(6, 6), torch.tensor([0, 1, 2, 0, 1, 2])
    loss = lambda seed: ManifoldMixup(num_classes=3, generator=torch.Generator().manual_seed(seed)).loss(model, x, y)
    assert torch.equal(loss(5), loss(5))
    plan, layer = ManifoldMixup(generator=torch.Generator().manual_seed(5)).sample(model, x)
    expected = soft_target_cross_entropy(mixed_forward(model, x, plan, layer), plan.rows(one_hot(y, 3)))
    torch.testing.assert_close(loss(5), expected)
    assert isinstance(ManifoldMixup(), Objective)


@pytest.mark.parametrize("make", [
    lambda: torchvision.models.resnet18(num_classes=4),
    lambda: timm.create_model("resnet10t", pretrained=False, num_classes=4),
    lambda: nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)),
], ids=["torchvision-resnet18", "timm-resnet10t", "sequential"])
def test_works_on_supported_models(make):
    model = make()
    cls_forward = type(model).forward
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    for layer in resolve_layers(model):
        loss = ManifoldMixup(num_classes=4, layers=[layer], generator=torch.Generator().manual_seed(0)).loss(model, x, y)
        loss.backward()
        assert torch.isfinite(loss)
    assert no_hooks(model) and type(model).forward is cls_forward
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    seeded = lambda seed: ManifoldMixup(num_classes=4, generator=torch.Generator().manual_seed(seed)).loss(model, x, y)
    assert torch.equal(seeded(3), seeded(3))  # default layers, same seed: the same layer, λ, π and loss


def test_model_without_default_layers():
    "A model neither split_model nor the defaults know: a TypeError asking for layers=; explicit names work."
    model, x, y = Opaque(6, 8, 3), torch.randn(4, 6), torch.tensor([0, 1, 2, 0])
    with pytest.raises(TypeError, match="no default Manifold Mixup layers for a Opaque; pass layers="):
        ManifoldMixup().loss(model, x, y)
    loss = ManifoldMixup(layers=["input", "trunk"], generator=torch.Generator().manual_seed(0)).loss(model, x, y)
    assert torch.isfinite(loss) and no_hooks(model)


def test_default_layers():
    assert default_layers(torchvision.models.resnet18()) == ["input", "layer1", "layer2"]
    assert default_layers(timm.create_model("resnet18", num_classes=2)) == ["input", "layer1", "layer2"]
    seq = nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    assert default_layers(seq) == ["input", "1", "2"]

    class Staged(nn.Module):
        def __init__(self):
            super().__init__()
            self.stages = nn.Sequential(*[nn.Linear(4, 4) for _ in range(4)])
            self.head = nn.Linear(4, 2)
        def forward(self, x): return self.head(self.stages(x))
    assert default_layers(Staged()) == ["input", "stages.0", "stages.1"]
    with pytest.raises(TypeError, match="pass layers="):
        default_layers(nn.Linear(3, 2))


@pytest.mark.parametrize("bad, error, match", [
    (lambda: resolve_layers(mlp(), ["input", "layer1"]), ValueError, "unknown layer 'layer1'.*available: 'input', '0'"),
    (lambda: resolve_layers(mlp(), ""), ValueError, "unknown layer ''"),
    (lambda: resolve_layers(mlp(), []), ValueError, "at least one"),
    (lambda: resolve_layers(mlp(), [3]), TypeError, "module names"),
    (lambda: ManifoldMixup(alpha=-1), ValueError, "alpha"),
    (lambda: ManifoldMixup(prob=2), ValueError, "prob"),
    (lambda: ManifoldMixup(num_classes=1), ValueError, "num_classes"),
    (lambda: ManifoldMixup(layers=[]), ValueError, "non-empty"),
    (lambda: ManifoldMixup(generator=0), TypeError, "generator"),
    (lambda: ManifoldMixup().loss(mlp(), torch.randn(0, 6), torch.tensor([], dtype=torch.long)), ValueError, "the batch is empty"),
    (lambda: ManifoldMixup().loss(mlp(), torch.randn(2, 6), [0, 1]), TypeError, "y must be a torch.Tensor"),
    (lambda: ManifoldMixup(label_smoothing=-1), ValueError, "label_smoothing"),
    (lambda: ManifoldMixup().loss(mlp(), torch.randn(2, 6), torch.tensor([[1.0, -1.0, 1.0]] * 2)), ValueError, "non-negative"),
    (lambda: ManifoldMixup().loss(mlp(), torch.ones(2, 6, dtype=torch.long), torch.tensor([0, 1])), TypeError, "floating-point"),
    (lambda: mixed_forward(mlp(), torch.randn(2, 6), IdentityPlan(), "9"), ValueError, "unknown layer '9'"),
])
def test_error_paths(bad, error, match):
    with pytest.raises(error, match=match):
        bad()


def test_unused_layer_raises():
    class WithSpare(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.spare = nn.Linear(3, 2), nn.Linear(3, 3)
        def forward(self, x): return self.used(x)
    model = WithSpare()
    with pytest.raises(RuntimeError, match="'spare' was not called"):
        mixed_forward(model, torch.randn(2, 3), LinearPlan(0.5, torch.tensor([1, 0])), "spare")
    assert no_hooks(model)


def test_prob_zero_is_erm():
    model, x, y = mlp(), torch.randn(4, 6), torch.tensor([0, 1, 2, 0])
    logits, targets = ManifoldMixup(prob=0.0)(model, x, y)
    torch.testing.assert_close(logits, model(x))
    assert torch.equal(targets, one_hot(y, 3))


# ------------------------------------------------------------ issues 10-11
def test_batch_of_one_is_a_plain_forward_pass():
    model, x, y = mlp(), torch.randn(1, 6), torch.tensor([2])
    logits, targets = ManifoldMixup(layers=["2"], label_smoothing=0.2)(model, x, y)
    torch.testing.assert_close(logits, model(x))
    assert torch.equal(targets, one_hot(y, 3, label_smoothing=0.2))


def test_label_smoothing_integer_targets_and_grad_inputs():
    model, x, y = mlp(), torch.randn(6, 6), torch.tensor([0, 1, 2, 0, 1, 2])
    make = lambda **kw: ManifoldMixup(num_classes=3, generator=torch.Generator().manual_seed(2), **kw)
    base = make().loss(model, x, y)
    torch.testing.assert_close(ManifoldMixup(generator=torch.Generator().manual_seed(2)).loss(model, x, F.one_hot(y, 3)), base)
    plan, layer = make().sample(model, x)
    expected = soft_target_cross_entropy(mixed_forward(model, x, plan, layer), plan.rows(one_hot(y, 3, label_smoothing=0.1)))
    torch.testing.assert_close(make(label_smoothing=0.1).loss(model, x, y), expected)
    xg = x.clone().requires_grad_()
    make().loss(model, xg, y).backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="non-finite"):
        make(check_finite=True).loss(model, x / 0, y)


def test_default_seeded_losses_are_unchanged():
    "The same seed gives the same losses as before (values computed at commit 4364a26)."
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    g = torch.Generator().manual_seed(123)
    torch.randn(6, 3, 7, 9, generator=g); torch.randint(4, (6,), generator=g)  # the draws before, as when measured
    x, y = torch.randn(5, 6, generator=g), torch.tensor([0, 1, 2, 0, 1])
    mm = ManifoldMixup(num_classes=3, generator=torch.Generator().manual_seed(3))
    losses = [mm.loss(net, x, y).item() for _ in range(3)]
    assert losses == pytest.approx([1.2357347011566162, 1.2010605335235596, 1.2548091411590576], rel=1e-6)
