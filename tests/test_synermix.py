"API-level, property-based and error-path tests of mixup_lab.synermix."
import math

import pytest
import timm
import torch
import torchvision
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from mixup_lab.core import Objective, split_model
from mixup_lab.manifold import ManifoldMixup
from mixup_lab.mixup import Mixup
from mixup_lab.synermix import (SYNERMIX_SETTINGS, BalancedBatchSampler, SynerMix, fisher_ratio, intra_class_mix,
                                intra_class_cohesion, inter_class_separability, synermix_setting)


def loop_reference(features, labels, weights):
    "Per-class Python loop with the same raw weights."
    out = []
    for c in labels.unique():
        mask = labels == c
        w = weights[mask] / weights[mask].sum()
        out.append((w[:, None] * features[mask]).sum(0))
    return torch.stack(out), labels.unique()


def net(seed=0, d_in=5, k=4):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, 8), nn.ReLU(), nn.Linear(8, k))


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 40), st.integers(2, 12), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_intra_class_mix_matches_loop(batch, num_classes, dim, seed):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    y = torch.randint(num_classes, (batch,), generator=g)
    w = torch.rand(batch, generator=g, dtype=torch.float64) + 1e-3
    syn, classes = intra_class_mix(f, y, weights=w)
    ref, ref_classes = loop_reference(f, y, w)
    torch.testing.assert_close(syn, ref)
    assert torch.equal(classes, ref_classes)
    assert torch.equal(classes, classes.unique()) and classes.dtype == y.dtype  # sorted, unique
    assert syn.dtype == f.dtype


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 40), st.integers(2, 8), st.integers(0, 2**31 - 1))
def test_intra_class_mix_convex_hull(batch, num_classes, seed):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(batch, 3, generator=g)
    y = torch.randint(num_classes, (batch,), generator=g)
    syn, classes = intra_class_mix(f, y, g)
    for row, c in zip(syn, classes):  # test-only loop: coordinate-wise inside the class's bounding box
        members = f[y == c]
        assert (row >= members.min(0).values - 1e-5).all() and (row <= members.max(0).values + 1e-5).all()
        if members.shape[0] == 1: assert torch.equal(row, members[0])  # a singleton class gives itself


def test_intra_class_mix_deterministic_and_default_weights():
    g0 = lambda: torch.Generator().manual_seed(3)
    f, y = torch.randn(12, 4), torch.tensor([0, 1, 1, 2, 2, 2, 5, 5, 0, 1, 7, 2])
    a, _ = intra_class_mix(f, y, g0())
    b, _ = intra_class_mix(f, y, g0())
    assert torch.equal(a, b)
    ref, _ = loop_reference(f, y, 1 - torch.rand(12, generator=g0()))  # the documented draw: 1 − U[0, 1)
    torch.testing.assert_close(a, ref)
    assert not torch.equal(a, intra_class_mix(f, y, torch.Generator().manual_seed(4))[0])


def test_intra_class_mix_gradients_and_half_precision():
    f = torch.randn(6, 3, requires_grad=True)
    y = torch.tensor([0, 0, 1, 1, 1, 2])
    syn, _ = intra_class_mix(f, y, torch.Generator().manual_seed(0))
    syn.sum().backward()
    assert torch.allclose(f.grad.sum(0), torch.full((3,), 3.0))  # normalised weights: each class's sum to 1
    half, _ = intra_class_mix(f.detach().bfloat16(), y, torch.Generator().manual_seed(0))
    assert half.dtype == torch.bfloat16


@pytest.mark.parametrize("call, exc, match", [
    (lambda: intra_class_mix(torch.randn(4, 2), torch.tensor([0., 1, 0, 1])), TypeError, "integer tensor"),
    (lambda: intra_class_mix(torch.randn(4, 2), torch.tensor([0, 1])), ValueError, "same non-zero batch size"),
    (lambda: intra_class_mix(torch.randn(4), torch.tensor([0, 1, 0, 1])), ValueError, r"shape \(B, D\)"),
    (lambda: intra_class_mix(torch.randn(2, 2), torch.tensor([0, 0]), weights=torch.zeros(2)), ValueError, "positive sum"),
    (lambda: intra_class_mix(torch.randn(2, 2), torch.tensor([0, 0]), weights=-torch.ones(2)), ValueError, "non-negative"),
])
def test_intra_class_mix_errors(call, exc, match):
    with pytest.raises(exc, match=match): call()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=300), st.integers(4, 64), st.integers(2, 4),
       st.integers(0, 2**31 - 1))
def test_sampler_every_class_has_min_samples(labels, batch_size, min_per_class, seed):
    if 2 * min_per_class - 1 > batch_size: min_per_class = 2
    labels = torch.tensor(labels)
    sampler = BalancedBatchSampler(labels, batch_size, min_per_class=min_per_class,
                                   generator=torch.Generator().manual_seed(seed))
    batches = list(sampler)
    assert len(batches) == len(sampler)
    for batch in batches:
        counts = torch.bincount(labels[batch])
        assert counts[counts > 0].min() >= min_per_class
    # a cut moves back by less than one chunk (at most 2m − 1 items): every batch but the last is within 2m − 2
    # of batch_size; the last one holds the rest, at least one whole chunk, so it may be short (drop_last=False)
    assert all(abs(len(b) - batch_size) <= 2 * min_per_class - 2 for b in batches[:-1])
    assert min_per_class <= len(batches[-1]) <= batch_size + 2 * min_per_class - 2
    seen = torch.cat([torch.tensor(b) for b in batches])
    assert set(seen.tolist()) == set(range(len(labels)))  # the epoch is covered
    assert len(seen) == sampler.num_items  # each index once, plus the padding of classes smaller than a chunk
    again = list(BalancedBatchSampler(labels, batch_size, min_per_class=min_per_class,
                                      generator=torch.Generator().manual_seed(seed)))
    assert again == batches


def test_sampler_classes_per_batch_and_epochs_differ():
    labels = torch.arange(20).repeat(10)
    sampler = BalancedBatchSampler(labels, 32, classes_per_batch=4, generator=torch.Generator().manual_seed(0))
    first, second = list(sampler), list(sampler)
    assert first != second  # a new order every epoch
    for batch in first:
        counts = torch.bincount(labels[batch])
        assert counts[counts > 0].min() >= 8


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(labels=[0.5, 1.0], batch_size=4), TypeError, "integer class ids"),
    (dict(labels=[], batch_size=4), ValueError, "non-empty"),
    (dict(labels=[0, 1], batch_size=0), ValueError, "batch_size must be a positive int"),
    (dict(labels=[0, 1], batch_size=4, min_per_class=3), ValueError, "batch_size must be >="),
    (dict(labels=[0, 1], batch_size=4, classes_per_batch=9), ValueError, "classes_per_batch"),
    (dict(labels=[-1, 1], batch_size=4), ValueError, "non-negative"),
])
def test_sampler_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match): BalancedBatchSampler(**kwargs)


def test_beta_zero_is_the_inter_loss():
    model, x, y = net(), torch.randn(8, 5), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    for make in (lambda: Mixup(alpha=1.0, num_classes=4, generator=torch.Generator().manual_seed(1)),
                 lambda: ManifoldMixup(alpha=1.0, num_classes=4, generator=torch.Generator().manual_seed(1))):
        assert torch.equal(SynerMix(4, beta=0.0, inter=make()).loss(model, x, y), make().loss(model, x, y))
    torch.testing.assert_close(SynerMix(4, beta=0.0).loss(model, x, y), F.cross_entropy(model(x), y))


def test_inter_none_is_intra_plus_ce_and_views():
    model, y = net(), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    clean = torch.randn(8, 5)
    aug = clean + 0.1
    seeded = lambda beta, x: SynerMix(4, beta=beta, generator=torch.Generator().manual_seed(0)).losses(model, x, y)
    intra = seeded(1.0, clean)["loss"]
    out = seeded(0.5, (aug, clean))
    torch.testing.assert_close(out["intra"], intra)  # intra uses the clean view
    torch.testing.assert_close(out["inter"], F.cross_entropy(model(aug), y))  # CE on the augmented view
    torch.testing.assert_close(out["loss"], 0.5 * intra + 0.5 * F.cross_entropy(model(aug), y))
    same = seeded(0.5, clean)  # one tensor: both views are the same batch (one shared forward pass)
    torch.testing.assert_close(same["loss"], 0.5 * intra + 0.5 * F.cross_entropy(model(clean), y))


def test_intra_gradients_reach_the_features():
    model, x, y = net(), torch.randn(8, 5), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    SynerMix(4, beta=1.0, generator=torch.Generator().manual_seed(0)).loss(model, x, y).backward()
    assert model[0].weight.grad.abs().sum() > 0 and model[2].weight.grad.abs().sum() > 0


def test_settings_mapping():
    expected = {"wo-RA&ER": (0.0, type(None)), "w-RA": (0.5, type(None)), "w-ER(M)": (0.0, Mixup),
                "w-ER(MM)": (0.0, ManifoldMixup), "w-RA&ER(M)": (0.1, Mixup), "w-RA&ER(MM)": (0.1, ManifoldMixup)}
    assert set(SYNERMIX_SETTINGS) == set(expected)
    model, x, y = net(), torch.randn(8, 5), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    for name, (beta, cls) in expected.items():
        obj = synermix_setting(name, 4, alpha=0.5, generator=torch.Generator().manual_seed(0))
        assert obj.beta == beta and isinstance(obj.inter, cls) and isinstance(obj, Objective)
        if obj.inter is not None: assert obj.inter.alpha == 0.5
        assert torch.isfinite(obj.loss(model, (x + 0.1, x), y))
    assert synermix_setting("w-RA", 4, beta=0.2).beta == 0.2


@pytest.mark.parametrize("call, exc, match", [
    (lambda: SynerMix(4, beta=1.5), ValueError, r"beta must lie in \[0.0, 1.0\]"),
    (lambda: SynerMix(4, beta=-0.1), ValueError, "beta must lie in"),
    (lambda: SynerMix(4, beta=float("nan")), ValueError, "beta must be a number"),
    (lambda: SynerMix(4, inter=object()), TypeError, "inter must be None or an objective"),
    (lambda: SynerMix(1), ValueError, "num_classes"),
    (lambda: synermix_setting("w-RA&ER", 4), ValueError, "name must be one of"),
    (lambda: synermix_setting("wo-RA&ER", 4, beta=0.5), ValueError, "no intra-class term"),
    (lambda: SynerMix(4).loss(net(), (torch.randn(4, 5), torch.randn(3, 5)), torch.tensor([0, 0, 1, 1])),
     ValueError, "same shape"),
    (lambda: SynerMix(4).loss(net(), [torch.randn(4, 5)], torch.tensor([0, 0, 1, 1])), TypeError, "pair of tensors"),
    (lambda: SynerMix(4).loss(net(), torch.randn(4, 5), torch.eye(4)), TypeError, "integer class labels"),
])
def test_synermix_errors(call, exc, match):
    with pytest.raises(exc, match=match): call()


def test_metrics_known_values_and_invariances():
    lab = torch.tensor([0, 0, 1, 1])
    collapsed = torch.tensor([[1., 0], [1, 0], [0, 2], [0, 2]])
    assert math.isclose(intra_class_cohesion(collapsed, lab), 1.0, abs_tol=1e-6)
    assert math.isclose(inter_class_separability(collapsed, lab), 1.0, abs_tol=1e-6)
    assert fisher_ratio(collapsed, lab) == math.inf
    g = torch.Generator().manual_seed(0)
    f, y = torch.randn(50, 6, generator=g), torch.randint(5, (50,), generator=g)
    for metric in (intra_class_cohesion, inter_class_separability, fisher_ratio):
        assert math.isclose(metric(f, y), metric(3 * f, y), rel_tol=1e-5)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))
    assert math.isclose(fisher_ratio(f @ q + 2, y), fisher_ratio(f, y), rel_tol=1e-4)
    with pytest.raises(ValueError, match="two classes"): fisher_ratio(f, torch.zeros(50, dtype=torch.long))
    with pytest.raises(TypeError, match="integer tensor"): intra_class_cohesion(f, y.float())


def test_sampler_short_last_batch_is_documented_behaviour():
    "Four singleton classes padded to chunks of 2, batch_size 6: one batch of 6 and a last one of 2."
    sampler = BalancedBatchSampler(torch.tensor([0, 1, 2, 3]), 6, generator=torch.Generator().manual_seed(0))
    batches = list(sampler)
    assert [len(b) for b in batches] == [6, 2] and sampler.num_items == 8 and len(sampler) == 2
    for batch in batches: assert torch.bincount(torch.tensor([0, 1, 2, 3])[batch]).max() == 2


def test_singleton_classes_are_their_own_synthetic_feature():
    model, x = net(), torch.randn(6, 5)
    y = torch.tensor([0, 0, 1, 2, 2, 3])  # classes 1 and 3 have one sample each
    features, head = split_model(model)
    syn, classes = intra_class_mix(features(x), y, torch.Generator().manual_seed(0))
    assert torch.equal(classes, torch.tensor([0, 1, 2, 3]))
    torch.testing.assert_close(syn[1], features(x)[2])
    torch.testing.assert_close(syn[3], features(x)[5])
    singles = torch.tensor([3, 0, 2, 1])  # every class a singleton: L_intra is the CE of the clean batch
    torch.testing.assert_close(SynerMix(4, beta=1.0, generator=torch.Generator().manual_seed(0)).loss(model, x[:4], singles),
                               F.cross_entropy(model(x[:4]), singles))
    assert torch.isfinite(synermix_setting("w-RA&ER(M)", 4, generator=torch.Generator().manual_seed(0)).loss(model, x, y))


@pytest.mark.parametrize("name", list(SYNERMIX_SETTINGS))
def test_same_seed_same_loss(name):
    model, x, y = net(), torch.randn(8, 5), torch.tensor([0, 0, 1, 1, 2, 2, 3, 0])
    views = (x + 0.1 * torch.randn(8, 5), x)
    loss = lambda seed: synermix_setting(name, 4, generator=torch.Generator().manual_seed(seed)).loss(model, views, y)
    assert torch.equal(loss(0), loss(0))
    if name != "wo-RA&ER": assert not torch.equal(loss(0), loss(1))  # the baseline draws nothing


def sequential_cnn(k=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, k))


@pytest.mark.parametrize("make", [lambda: torchvision.models.resnet18(num_classes=3),
                                  lambda: timm.create_model("resnet10t", pretrained=False, num_classes=3),
                                  sequential_cnn], ids=["torchvision-resnet18", "timm-resnet10t", "sequential"])
def test_supported_models_with_each_inter_mixer(make):
    model = make()
    forward = type(model).forward
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 3, 32, 32, generator=g), torch.tensor([0, 0, 1, 1, 2, 0])  # class 2: a single sample
    views = (x + 0.1 * torch.randn(6, 3, 32, 32, generator=g), x)
    inters = {"none": lambda s: None, "mixup-elem": lambda s: Mixup(alpha=1.0, num_classes=3, mode="elem", generator=s),
              "manifold": lambda s: ManifoldMixup(alpha=1.0, num_classes=3, generator=s)}
    for kind, make_inter in inters.items():
        def loss():
            s = torch.Generator().manual_seed(1)
            return SynerMix(3, beta=0.3, inter=make_inter(s), generator=s).loss(model, views, y)
        first = loss()
        assert torch.equal(first, loss()), kind  # same seed, same loss
        model.zero_grad()
        first.backward()
        assert torch.isfinite(first) and all(p.grad is not None for p in model.parameters()), kind
    assert type(model).forward is forward and not any(m._forward_hooks for m in model.modules())


def test_unsupported_model_raises():
    class Opaque(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk, self.classifier = nn.Linear(5, 8), nn.Linear(8, 4)
        def forward(self, x): return self.classifier(self.trunk(x).relu())

    model, x, y = Opaque(), torch.randn(4, 5), torch.tensor([0, 0, 1, 1])
    with pytest.raises(TypeError, match="split_model does not know how to split a Opaque"):
        SynerMix(4, beta=0.5).loss(model, x, y)
    parts = split_model(model, features=lambda t: model.trunk(t).relu(), head=model.classifier)
    assert torch.isfinite(SynerMix(4, beta=0.5).loss(parts, x, y))  # explicit parts make any model work
    assert torch.isfinite(SynerMix(4, beta=0.0).loss(model, x, y))  # β = 0 (CE only) never splits the model
