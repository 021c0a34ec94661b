"API-level, property-based and error-path tests of mixup_lab.synermix."
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from _models import SUPPORTED, SUPPORTED_IDS, Opaque
from mixup_lab.core import Objective, split_model
from mixup_lab.manifold import ManifoldMixup
from mixup_lab.mixup import Mixup
from mixup_lab.synermix import (SYNERMIX_SETTINGS, BalancedBatchSampler, SynerMix, balanced_mode, fisher_ratio,
                                intra_class_mix, intra_class_cohesion, inter_class_separability, synermix_setting)
from mixup_lab.train import get_objective


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
    sampler = BalancedBatchSampler(labels, batch_size, mode="chunks", min_per_class=min_per_class,
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
    again = list(BalancedBatchSampler(labels, batch_size, mode="chunks", min_per_class=min_per_class,
                                      generator=torch.Generator().manual_seed(seed)))
    assert again == batches


def test_sampler_classes_per_batch_and_epochs_differ():
    labels = torch.arange(20).repeat(10)
    sampler = BalancedBatchSampler(labels, 32, mode="chunks", classes_per_batch=4, generator=torch.Generator().manual_seed(0))
    first, second = list(sampler), list(sampler)
    assert first != second  # a new order every epoch
    for batch in first:
        counts = torch.bincount(labels[batch])
        assert counts[counts > 0].min() >= 8


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(labels=[0.5, 1.0], batch_size=4), TypeError, "integer class ids"),
    (dict(labels=[], batch_size=4), ValueError, "non-empty"),
    (dict(labels=[0, 1], batch_size=0), ValueError, "batch_size must be an int >= 1, got 0"),
    (dict(labels=[0, 1], batch_size=2.0), TypeError, r"batch_size must be an int >= 1, got 2.0 \(float\)"),
    (dict(labels=[0, 1], batch_size=2, generator=7), TypeError, "generator must be a torch.Generator or None"),
    (dict(labels=[0, 1], batch_size=4, mode="chunks", min_per_class=3), ValueError, "batch_size must be >="),
    (dict(labels=[0, 1], batch_size=4, mode="chunks", classes_per_batch=9), ValueError, "classes_per_batch"),
    (dict(labels=[0, 1, 1], batch_size=2, classes_per_batch=1), ValueError, "belong to mode='chunks'"),
    (dict(labels=[0, 1, 1], batch_size=2, min_per_class=3), ValueError, "belong to mode='chunks'"),
    (dict(labels=[0, 1, 1], batch_size=4), ValueError, "drops the last partial batch"),
    (dict(labels=[0, 1, 1], batch_size=2, mode="pk"), ValueError, "mode must be one of"),
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
    sampler = BalancedBatchSampler(torch.tensor([0, 1, 2, 3]), 6, mode="chunks", generator=torch.Generator().manual_seed(0))
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


@pytest.mark.parametrize("make", SUPPORTED, ids=SUPPORTED_IDS)
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
    model, x, y = Opaque(5, 8, 4), torch.randn(4, 5), torch.tensor([0, 0, 1, 1])
    with pytest.raises(TypeError, match="split_model does not know how to split a Opaque"):
        SynerMix(4, beta=0.5).loss(model, x, y)
    parts = split_model(model, features=lambda t: model.trunk(t).relu(), head=model.classifier)
    assert torch.isfinite(SynerMix(4, beta=0.5).loss(parts, x, y))  # explicit parts make any model work
    assert torch.isfinite(SynerMix(4, beta=0.0).loss(model, x, y))  # β = 0 (CE only) never splits the model


# --- the public code's sampler (wxitxy/synermix, main.py `BalancedBatchSampler`), re-derived as a loop and driven by
# the draws our sampler makes from the same seed

def public_sampler_epoch(labels, batch_size, seed):
    """One epoch of the public rule: shuffle, cut floor(N / B) batches (the last partial one is dropped), then append,
    for each class seen exactly once in a batch (in increasing class order), one of the class's other samples, drawn
    uniformly; here the draw for the sample at epoch position j is the uniform u[j] of our sampler's stream."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=g).tolist()
    u = torch.rand(len(labels) // batch_size * batch_size, generator=g, dtype=torch.float64).tolist()
    labels = labels.tolist()
    batches = []
    for first in range(0, len(u), batch_size):
        drawn = order[first:first + batch_size]
        batch = list(drawn)
        for c in sorted(set(labels)):
            here = [j for j, i in enumerate(drawn) if labels[i] == c]
            if len(here) != 1: continue
            alone = drawn[here[0]]
            others = [i for i in range(len(labels)) if labels[i] == c and i != alone]
            batch.append(others[int(u[first + here[0]] * len(others))] if others else alone)
        batches.append(batch)
    return batches


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 12), min_size=2, max_size=250), st.integers(1, 40), st.integers(0, 2**31 - 1))
def test_paper_sampler_is_the_public_rule(labels, batch_size, seed):
    labels = torch.tensor(labels)
    batch_size = min(batch_size, len(labels))
    sampler = BalancedBatchSampler(labels, batch_size, generator=torch.Generator().manual_seed(seed))
    batches = list(sampler)
    assert batches == public_sampler_epoch(labels, batch_size, seed)
    assert len(batches) == len(sampler) == len(labels) // batch_size
    for batch in batches:
        counts = torch.bincount(labels[batch])
        assert not (counts == 1).any()  # no class seen once
        assert len(set(batch[:batch_size])) == batch_size  # the random part has no repeats


def test_paper_sampler_singleton_class_of_the_dataset_terminates():
    "Class 3 has one sample in the whole dataset: the public loop would never end; here the sample is repeated."
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 0, 1, 2])
    for seed in range(20):
        for batch in BalancedBatchSampler(labels, 5, generator=torch.Generator().manual_seed(seed)):
            if 6 in batch: assert batch.count(6) == 2
            assert not (torch.bincount(labels[batch]) == 1).any()


def test_paper_sampler_new_order_each_epoch_and_dataloader():
    labels = torch.arange(10).repeat(30)
    sampler = BalancedBatchSampler(labels, 32, generator=torch.Generator().manual_seed(0))
    first, second = list(sampler), list(sampler)
    assert first != second and len(first) == len(second) == 300 // 32
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(300, 2), labels), batch_sampler=sampler)
    assert len(loader) == 9 and all(not (torch.bincount(y) == 1).any() for _, y in loader)


def test_paper_sampler_on_cifar100_sized_labels():
    "The published sampler's batches are larger than batch_size and hold more classes than the chunk sampler's."
    labels = torch.arange(100).repeat_interleave(500)
    sizes = {mode: [len(b) for b in BalancedBatchSampler(labels, 128, mode=mode, generator=torch.Generator().manual_seed(1))]
             for mode in ("paper", "chunks")}
    assert len(sizes["paper"]) == 390 and 150 < sum(sizes["paper"]) / 390 < 177 and min(sizes["paper"]) > 128
    assert sum(sizes["chunks"]) == 50_000 and max(sizes["chunks"]) <= 130


def test_balanced_mode():
    assert [balanced_mode(v) for v in (False, None, True, "paper", "chunks")] == [None, None, "chunks", "paper", "chunks"]
    for bad in ("yes", 1, 2.0):
        with pytest.raises(ValueError, match="balanced must be False, True"): balanced_mode(bad)


def test_get_objective_synermix_inter_alpha_is_one():
    "The paper and the public README use α = 1 for both inter mixers; ManifoldMixup's own default is 2."
    for inter, cls in (("manifold", ManifoldMixup), ("mixup", Mixup)):
        obj = get_objective("synermix", 10, inter=inter)
        assert isinstance(obj.inter, cls) and obj.inter.alpha == 1.0 and obj.beta == 0.1
        assert get_objective("synermix", 10, inter=inter, alpha=0.4).inter.alpha == 0.4
    given = ManifoldMixup(alpha=2.0, num_classes=10)
    assert get_objective("synermix", 10, inter=given).inter is given  # an object keeps its own α
    assert get_objective("synermix_intra", 10).inter is None


def test_train_run_uses_the_requested_sampler():
    "experiments.train_run builds the public sampler for balanced='paper' and the chunk sampler for True."
    from mixup_lab.experiments import Run, train_run
    spec = lambda balanced: Run("synermix", {"inter": "mixup"}, epochs=1, batch_size=16, lr=0.05, per_class=4,
                                model_kwargs={"width": 4}, data_kwargs={"two_views": True, "balanced": balanced})
    paper, chunks = train_run(spec("paper")), train_run(spec(True))
    assert paper["train_loss"] != chunks["train_loss"]  # other batches
    assert train_run(spec("chunks"))["train_loss"] == chunks["train_loss"]
    with pytest.raises(ValueError, match="balanced must be False, True"):
        train_run(spec("yes"))


# ---------------------------------------------------------------- label smoothing (issue 10): both terms
def _views(x, kind):
    return x if kind == "same" else (x + 0.1, x)


@pytest.mark.parametrize("views", ["same", "two"])
def test_label_smoothing_reaches_both_terms(views):
    "SynerMix smooths the intra term's one-hots with the ε of its inter mixer (or of the plain CE)."
    model, x, y = net(), torch.randn(8, 5), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    eps, xv = 0.2, _views(x, views)
    x_aug = xv if views == "same" else xv[0]
    mix = lambda s: Mixup(1.0, num_classes=4, generator=torch.Generator().manual_seed(1), label_smoothing=s)
    parts = split_model(model)
    syn, classes = intra_class_mix(parts.features(x), y, torch.Generator().manual_seed(0))
    intra = F.cross_entropy(parts.head(syn), classes, label_smoothing=eps)
    for inter, expected_inter in ((mix(eps), mix(eps).loss(model, x_aug, y)),
                                  (None, F.cross_entropy(model(x_aug), y, label_smoothing=eps))):
        obj = SynerMix(4, beta=0.4, inter=inter, generator=torch.Generator().manual_seed(0),
                       label_smoothing=None if inter is not None else eps)
        assert obj.label_smoothing == eps
        terms = obj.losses(model, xv, y)
        torch.testing.assert_close(terms["intra"], intra)
        torch.testing.assert_close(terms["inter"], expected_inter)
        torch.testing.assert_close(terms["loss"], 0.4 * intra + 0.6 * expected_inter)


@pytest.mark.parametrize("views", ["same", "two"])
def test_no_label_smoothing_is_bit_identical(views):
    "ε = 0: the losses of before, bit for bit (intra against plain one-hots, the inter term ERM's or the mixer's)."
    from mixup_lab.core import ERM, one_hot, soft_target_cross_entropy
    model, x, y = net(), torch.randn(8, 5), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    xv = _views(x, views)
    x_aug = xv if views == "same" else xv[0]
    parts = split_model(model)
    syn, classes = intra_class_mix(parts.features(x), y, torch.Generator().manual_seed(0))
    intra = soft_target_cross_entropy(parts.head(syn), one_hot(classes, 4))
    inter = ERM(4).loss(model, x_aug, y)
    for kw in ({}, {"label_smoothing": 0.0}):
        terms = SynerMix(4, beta=0.4, generator=torch.Generator().manual_seed(0), **kw).losses(model, xv, y)
        assert torch.equal(terms["intra"], intra) and torch.equal(terms["inter"], inter)
        assert torch.equal(SynerMix(4, beta=0.0, **kw).loss(model, xv, y), inter)
    mixer = lambda: Mixup(1.0, num_classes=4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(SynerMix(4, beta=0.0, inter=mixer(), label_smoothing=0.0).loss(model, xv, y),
                       mixer().loss(model, x_aug, y))


def test_label_smoothing_must_agree_with_the_inter_mixer():
    with pytest.raises(ValueError, match=r"label_smoothing=0.1 differs from the inter mixer's label_smoothing=0"):
        SynerMix(4, inter=Mixup(num_classes=4), label_smoothing=0.1)
    with pytest.raises(ValueError, match=r"label_smoothing must lie in \[0.0, 1.0\]"):
        SynerMix(4, label_smoothing=2.0)

    class Custom:  # an objective without label_smoothing has no say: the given ε is SynerMix's own
        def loss(self, model, x, y): return model(x).sum() * 0
    assert SynerMix(4, inter=Custom(), label_smoothing=0.1).label_smoothing == 0.1
    assert SynerMix(4, inter=Custom()).label_smoothing == 0.0
    assert SynerMix(4, inter=ManifoldMixup(num_classes=4, label_smoothing=0.3)).label_smoothing == 0.3
    assert "label_smoothing=0.3" in repr(SynerMix(4, label_smoothing=0.3)) and "label_smoothing" not in repr(SynerMix(4))


@pytest.mark.parametrize("inter", ["mixup", "manifold"])
def test_get_objective_and_settings_smooth_both_terms(inter):
    obj = get_objective("synermix", 4, inter=inter, label_smoothing=0.1)
    assert obj.label_smoothing == obj.inter.label_smoothing == 0.1
    assert get_objective("synermix_intra", 4, label_smoothing=0.1).label_smoothing == 0.1
    assert get_objective("synermix", 4, inter=Mixup(num_classes=4, label_smoothing=0.2)).label_smoothing == 0.2
    setting = synermix_setting("w-RA&ER(MM)" if inter == "manifold" else "w-RA&ER(M)", 4, label_smoothing=0.1)
    assert setting.label_smoothing == setting.inter.label_smoothing == 0.1
