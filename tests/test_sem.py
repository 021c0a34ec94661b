"API-level, property-based and error-path tests of mixup_lab.sem."
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from _models import SUPPORTED, SUPPORTED_IDS, Opaque, image_cnn
from mixup_lab.core import InputMixer, LinearPlan, Objective, split_model
from mixup_lab.cutmix import CutMix
from mixup_lab.zeta import ZetaMixup
from mixup_lab.manifold import ManifoldMixup
from mixup_lab.mixup import Mixup
from mixup_lab.sem import SEM_DISTANCES, SemanticEquivariantMixup, representation_distance


def mixer(seed=7, k=3, **kwargs):
    return Mixup(alpha=1.0, num_classes=k, generator=torch.Generator().manual_seed(seed), **kwargs)


def relu_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


def batch(seed=0, b=10):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 6, generator=g), torch.randint(3, (b,), generator=g)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(["batch", "elem"]), st.sampled_from(SEM_DISTANCES))
def test_weight_zero_is_the_mixer_loss(seed, mode, distance):
    model, (x, y) = relu_net(), batch(seed % 1000)
    sem = SemanticEquivariantMixup(mixer(seed, mode=mode), weight=0.0, distance=distance)
    torch.testing.assert_close(sem.loss(model, x, y), mixer(seed, mode=mode).loss(model, x, y))
    assert sem.last_regularizer >= 0 and math.isfinite(sem.last_regularizer)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.booleans(), st.sampled_from(SEM_DISTANCES), st.sampled_from(["batch", "elem"]))
def test_affine_features_are_exactly_equivariant(seed, bias, distance, mode):
    torch.manual_seed(seed % 1000)
    linear = nn.Sequential(nn.Linear(6, 8, bias=bias), nn.Linear(8, 3))
    x, y = batch(seed % 1000)
    sem = SemanticEquivariantMixup(mixer(seed, mode=mode), distance=distance)
    out = sem.losses(linear, x, y)
    assert abs(out["regularizer"].item()) < 1e-5
    torch.testing.assert_close(out["loss"], mixer(seed, mode=mode).loss(linear, x, y), rtol=1e-5, atol=1e-5)


def test_regularizer_definition_matches_manual_computation():
    model, (x, y) = relu_net(), batch()
    for distance in SEM_DISTANCES:
        out = SemanticEquivariantMixup(mixer(), weight=2.0, distance=distance).losses(model, x, y)
        plan = mixer().sample_plan(x)
        features, head = split_model(model)
        h_mixed, target = features(plan.inputs(x)), plan.rows(features(x))
        expected = F.mse_loss(h_mixed, target) if distance == "mse" else (1 - F.cosine_similarity(h_mixed, target)).mean()
        torch.testing.assert_close(out["regularizer"], expected)
        torch.testing.assert_close(out["loss"], out["label"] + 2.0 * expected)
        assert out["regularizer"].item() > 0


def test_stop_gradient_options():
    model, (x, y) = relu_net(), batch()

    def grads(stop):
        model.zero_grad()
        out = SemanticEquivariantMixup(mixer(), stop_grad_target=stop).losses(model, x, y)
        out["regularizer"].backward()
        return out["regularizer"].detach(), model[0].weight.grad.clone()

    (r_sg, g_sg), (r_full, g_full) = grads(True), grads(False)
    torch.testing.assert_close(r_sg, r_full)
    assert not torch.allclose(g_sg, g_full)
    # with the stop-gradient the regulariser's gradient is the mixed branch's alone
    model.zero_grad()
    plan = mixer().sample_plan(x)
    features, _ = split_model(model)
    with torch.no_grad(): target = plan.rows(features(x))
    F.mse_loss(features(plan.inputs(x)), target).backward()
    torch.testing.assert_close(model[0].weight.grad, g_sg)


def test_unmixed_batch_has_zero_regularizer_and_default_mixer():
    model, (x, y) = relu_net(), batch()
    out = SemanticEquivariantMixup(mixer(prob=0.0)).losses(model, x, y)
    assert out["regularizer"].item() == 0.0
    torch.testing.assert_close(out["loss"], F.cross_entropy(model(x), y))
    sem = SemanticEquivariantMixup(num_classes=3, generator=torch.Generator().manual_seed(0))
    assert isinstance(sem.mixer, Mixup) and sem.mixer.alpha == 1.0 and isinstance(sem, Objective)
    assert torch.isfinite(sem.loss(model, x, F.one_hot(y, 3).float()))  # soft targets are accepted


def test_any_linear_input_mixer_works():
    class Reverse(InputMixer):
        def plan(self, x): return LinearPlan(0.3, torch.arange(x.shape[0] - 1, -1, -1))

    model, (x, y) = relu_net(), batch()
    out = SemanticEquivariantMixup(Reverse(3)).losses(model, x, y)
    features, _ = split_model(model)
    expected = F.mse_loss(features(0.3 * x + 0.7 * x.flip(0)), 0.3 * features(x) + 0.7 * features(x).flip(0))
    torch.testing.assert_close(out["regularizer"], expected)


def test_training_lowers_the_regularizer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 3))
    x, y = batch(0, 64)
    probe = lambda: SemanticEquivariantMixup(mixer(99), weight=0.0, distance="cosine").losses(model, x, y)["regularizer"].item()
    before = probe()
    sem = SemanticEquivariantMixup(mixer(1), weight=50.0, distance="cosine")
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(60):
        loss = sem.loss(model, x, y)
        opt.zero_grad(); loss.backward(); opt.step()
    assert probe() < before


@pytest.mark.parametrize("call, exc, match", [
    (lambda: SemanticEquivariantMixup(num_classes=3, distance="l1"), ValueError, r"distance must be one of \['mse', 'cosine'\]"),
    (lambda: SemanticEquivariantMixup(num_classes=3, weight=-0.5), ValueError, "weight must be a finite number >= 0"),
    (lambda: SemanticEquivariantMixup(num_classes=3, weight=float("inf")), ValueError, "weight must be a finite number"),
    (lambda: SemanticEquivariantMixup(num_classes=3, weight=float("nan")), ValueError, "weight must be a number"),
    (lambda: SemanticEquivariantMixup(num_classes=3, weight="1"), TypeError, "weight must be a real number"),
    (lambda: SemanticEquivariantMixup(mixer=ManifoldMixup(num_classes=3), num_classes=3), TypeError, "mixer must be an InputMixer"),
    (lambda: SemanticEquivariantMixup(mixer="mixup", num_classes=3), TypeError, "mixer must be an InputMixer"),
    (lambda: SemanticEquivariantMixup(), TypeError, "pass num_classes"),
    (lambda: SemanticEquivariantMixup(mixer(), num_classes=4), ValueError, "differs from the mixer's"),
    (lambda: SemanticEquivariantMixup(mixer(), generator=torch.Generator()), ValueError, "set it on the mixer"),
    (lambda: SemanticEquivariantMixup(num_classes=3, stop_grad_target=1), TypeError, "stop_grad_target"),
    (lambda: representation_distance(torch.ones(2, 3), torch.ones(3, 3)), ValueError, r"shape \(B, D\)"),
])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match): call()


def test_unsupported_model_and_bad_batches():
    x, y = batch()
    sem = SemanticEquivariantMixup(num_classes=3)
    with pytest.raises(TypeError, match="features="): sem.loss(Opaque(6, 4, 3), x, y)
    with pytest.raises(ValueError, match="same batch size"): sem.loss(relu_net(), x, y[:4])
    with pytest.raises(ValueError, match="the batch is empty"): sem.loss(relu_net(), x[:0], y[:0])
    with pytest.raises(TypeError, match="y must be a torch.Tensor"): sem.loss(relu_net(), x, y.tolist())


MIXERS = {"mixup": lambda s: Mixup(alpha=1.0, num_classes=3, generator=s),
          "mixup-elem": lambda s: Mixup(alpha=1.0, num_classes=3, mode="elem", generator=s),
          "cutmix": lambda s: CutMix(alpha=1.0, num_classes=3, generator=s),
          "zeta": lambda s: ZetaMixup(gamma=2.8, num_classes=3, generator=s),
          "zeta-n3": lambda s: ZetaMixup(gamma=2.0, num_classes=3, n_mix=3, generator=s)}


@pytest.mark.parametrize("kind", list(MIXERS))
@pytest.mark.parametrize("stop", [True, False])
def test_every_input_mixer_gives_its_plan(kind, stop):
    "The regulariser is d(features(plan.inputs(x)), plan.rows(features(x))) for the mixer's own seeded plan."
    model = image_cnn()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 3, 12, 12, generator=g), torch.randint(3, (6,), generator=g)
    make = lambda: MIXERS[kind](torch.Generator().manual_seed(3))
    out = SemanticEquivariantMixup(make(), weight=0.7, distance="cosine", stop_grad_target=stop).losses(model, x, y)
    plan = make().sample_plan(x)
    features, head = split_model(model)
    h_mixed, target = features(plan.inputs(x)), plan.rows(features(x))
    expected = (1 - F.cosine_similarity(h_mixed, target)).mean()
    torch.testing.assert_close(out["regularizer"], expected)
    label = F.cross_entropy(head(h_mixed), plan.rows(F.one_hot(y, 3).float()))
    torch.testing.assert_close(out["loss"], label + 0.7 * expected)
    out["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("make", SUPPORTED, ids=SUPPORTED_IDS)
def test_supported_models_same_seed_same_loss(make):
    model = make()
    forward = type(model).forward
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    for kind in ("mixup", "cutmix", "zeta"):
        loss = lambda seed: SemanticEquivariantMixup(MIXERS[kind](torch.Generator().manual_seed(seed))).loss(model, x, y)
        first = loss(0)
        assert torch.equal(first, loss(0)) and not torch.equal(first, loss(1)), kind
        model.zero_grad()
        first.backward()
        assert torch.isfinite(first) and all(p.grad is not None for p in model.parameters()), kind
    assert type(model).forward is forward and not any(m._forward_hooks for m in model.modules())


# ------------------------------------------------------------ issues 10-11
def test_batch_of_one_has_zero_regularizer():
    model, (x, y) = relu_net(), batch(0, 1)
    out = SemanticEquivariantMixup(mixer()).losses(model, x, y)
    assert out["regularizer"].item() == 0.0
    torch.testing.assert_close(out["loss"], F.cross_entropy(model(x), y))


@pytest.mark.parametrize("kind", ["mixup", "mixup-elem", "cutmix", "zeta"])
def test_inputs_that_require_grad(kind):
    "Issue 10, bug 1: SEM with a mixup (or CutMix) mixer crashed on inputs that require grad."
    model = image_cnn()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 3, 12, 12, generator=g), torch.randint(3, (6,), generator=g)
    xg = x.clone().requires_grad_()
    SemanticEquivariantMixup(MIXERS[kind](torch.Generator().manual_seed(1))).loss(model, xg, y).backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0


def test_label_smoothing_random_choice_and_inferred_classes():
    from mixup_lab.cutmix import mixup_cutmix
    model, (x, y) = relu_net(), batch()
    out = SemanticEquivariantMixup(Mixup(1.0, num_classes=3, prob=0.0, label_smoothing=0.1)).losses(model, x, y)
    torch.testing.assert_close(out["loss"], F.cross_entropy(model(x), y, label_smoothing=0.1))
    no_k = SemanticEquivariantMixup(Mixup(1.0, generator=torch.Generator().manual_seed(0)))
    with_k = SemanticEquivariantMixup(Mixup(1.0, num_classes=3, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(no_k.loss(model, x, y), with_k.loss(model, x, y))  # K read off the logits
    both = SemanticEquivariantMixup(mixup_cutmix(3, generator=torch.Generator().manual_seed(0)), weight=0.5)
    model = image_cnn()
    xi, yi = torch.randn(4, 3, 12, 12), torch.tensor([0, 1, 2, 0])
    assert torch.isfinite(both.loss(model, xi, yi))
