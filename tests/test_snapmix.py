"API-level, property-based and error-path tests of mixup_lab.snapmix."
import copy

import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from hypothesis import given, settings, strategies as st

from mixup_lab.core import IdentityPlan, Objective, one_hot
from mixup_lab.snapmix import SnapMix, SnapMixPlan, percent_maps, semantic_percent_map


def cnn(seed=0, classes=5):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 3, padding=1), nn.Dropout(0.5), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes))


def batch(seed=0, n=6, size=16, classes=5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(classes, (n,), generator=g)


def reference_map(f, head, label, size):
    "One image at a time, with the classifier as a 1x1 convolution and the class bias added."
    cam = F.conv2d(f.relu()[None], head.weight[:, :, None, None], head.bias)[0, label]
    cam = F.interpolate(cam[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    cam = cam - cam.min()
    return cam / cam.sum()


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(1, 6), st.integers(1, 6), st.integers(1, 20), st.integers(0, 2**31 - 1))
def test_maps_are_distributions_and_match_per_sample_reference(b, h, w, size, seed):
    g = torch.Generator().manual_seed(seed)
    fmap = torch.randn(b, 4, h, w, generator=g)
    head = nn.Linear(4, 3)
    labels = torch.randint(3, (b,), generator=g)
    maps = semantic_percent_map(fmap, head, labels, (size, size + 1))
    assert maps.shape == (b, size, size + 1) and maps.dtype == torch.float32
    ok = ~maps.isnan().flatten(1).any(1)  # constant maps (e.g. h = w = 1) are NaN by design
    assert (maps[ok] >= 0).all()
    torch.testing.assert_close(maps[ok].sum((1, 2)), torch.ones(int(ok.sum())))
    with torch.no_grad():
        ref = torch.stack([reference_map(fmap[i], head, labels[i], (size, size + 1)) for i in range(b)])
    assert ref[ok].isfinite().all()  # we flag every map the reference finds degenerate (and near-constant ones)
    torch.testing.assert_close(maps[ok], ref[ok], rtol=1e-4, atol=1e-5)


def test_constant_maps_are_nan():
    head = nn.Linear(4, 3)
    assert semantic_percent_map(torch.full((2, 4, 3, 3), 0.7), head, torch.tensor([0, 2]), 9).isnan().all()
    assert semantic_percent_map(-torch.rand(2, 4, 3, 3), head, torch.tensor([0, 2]), 9).isnan().all()  # ReLU -> 0


def test_plan_proportions_targets_and_model_state():
    model, (x, y) = cnn(), batch()
    model[1].eval()  # a frozen batch norm must stay frozen
    bn_stats = model[1].running_mean.clone(), model[1].running_var.clone()
    plan = SnapMix(5, generator=torch.Generator().manual_seed(0)).plan(model, x, y)
    assert isinstance(plan, SnapMixPlan)
    (ay0, ay1, ax0, ax1), (by0, by1, bx0, bx1) = plan.box_a, plan.box_b
    same = y == y[plan.perm]
    rho_a = 1 - plan.maps[:, ay0:ay1, ax0:ax1].sum((1, 2))
    rho_b = plan.maps[plan.perm][:, by0:by1, bx0:bx1].sum((1, 2))
    torch.testing.assert_close(plan.rho_a, torch.where(same, rho_a + rho_b, rho_a))
    torch.testing.assert_close(plan.rho_b, torch.where(same, rho_a + rho_b, rho_b))
    xm, t = SnapMix(5, generator=torch.Generator().manual_seed(0))(model, x, y)
    torch.testing.assert_close(t, plan.rho_a[:, None] * one_hot(y, 5) + plan.rho_b[:, None] * one_hot(y[plan.perm], 5))
    assert (t >= 0).all()
    outside = torch.ones(16, 16, dtype=torch.bool)
    outside[ay0:ay1, ax0:ax1] = False
    assert torch.equal(xm[:, :, outside], x[:, :, outside])
    patch = F.interpolate(x[plan.perm][:, :, by0:by1, bx0:bx1], size=(ay1 - ay0, ax1 - ax0), mode="bilinear",
                          align_corners=False)
    torch.testing.assert_close(xm[:, :, ay0:ay1, ax0:ax1], patch)
    assert model.training and not model[1].training and model[5].training
    assert torch.equal(model[1].running_mean, bn_stats[0]) and torch.equal(model[1].running_var, bn_stats[1])


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_targets_nonnegative_and_bounded(seed):
    model, (x, y) = cnn(), batch(seed)
    _, t = SnapMix(5, generator=torch.Generator().manual_seed(seed))(model, x, y)
    assert (t >= 0).all() and (t.sum(1) <= 4 + 1e-5).all()  # ρ's in [0, 1]; a same-label pair counts twice


def test_same_label_sum_and_merge():
    model, (x, _) = cnn(), batch()
    y = torch.full((6,), 2)
    ps = SnapMix(5, generator=torch.Generator().manual_seed(1)).plan(model, x, y)
    pm = SnapMix(5, same_label="merge", generator=torch.Generator().manual_seed(1)).plan(model, x, y)
    total = pm.rho_a + pm.rho_b
    torch.testing.assert_close(ps.rho_a, total)
    torch.testing.assert_close(ps.rho_b, total)
    torch.testing.assert_close(ps.rows(one_hot(y, 5))[:, 2], 2 * total)
    torch.testing.assert_close(pm.rows(one_hot(y, 5))[:, 2], total)


def test_nan_maps_fall_back_to_area():
    model, (x, y) = cnn(), batch()
    with torch.no_grad():
        model[4].weight.zero_()
        model[4].bias.fill_(1.0)  # constant last feature map -> constant CAM -> NaN map
    plan = SnapMix(5, same_label="merge", generator=torch.Generator().manual_seed(0)).plan(model, x, y)
    assert plan.maps.isnan().all()
    area = (plan.box_a[1] - plan.box_a[0]) * (plan.box_a[3] - plan.box_a[2]) / 256
    torch.testing.assert_close(plan.rho_a, torch.full((6,), 1 - area))
    torch.testing.assert_close(plan.rho_b, torch.full((6,), area))


def test_determinism_and_identity_cases():
    model, (x, y) = cnn(), batch()
    run = lambda seed: SnapMix(5, generator=torch.Generator().manual_seed(seed))(model, x, y)
    (x1, t1), (x2, t2), (x3, _) = run(3), run(3), run(4)
    assert torch.equal(x1, x2) and torch.equal(t1, t2) and not torch.equal(x1, x3)
    xi, ti = SnapMix(5, prob=0.0)(model, x, y)
    assert torch.equal(xi, x) and torch.equal(ti, one_hot(y, 5))
    tiny = torch.randn(4, 3, 1, 1)  # every box clips to zero area: no mixing
    tiny_model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    assert isinstance(SnapMix(5).plan(tiny_model, tiny, y[:4]), IdentityPlan)
    assert isinstance(SnapMix(5), Objective)


@pytest.mark.parametrize("make", [lambda: torchvision.models.resnet18(num_classes=5),
                                  lambda: timm.create_model("resnet18", num_classes=5)])
def test_resnets_train_step(make):
    model, (x, y) = make(), batch(size=32, n=4)
    loss = SnapMix(5, generator=torch.Generator().manual_seed(0)).loss(model, x, y)
    loss.backward()
    assert torch.isfinite(loss) and model.training and model.fc.weight.grad is not None


def test_low_precision_channels_last_and_soft_labels():
    model, (x, y) = cnn(), batch()
    xb = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    xm, t = SnapMix(5, generator=torch.Generator().manual_seed(0))(model.to(torch.bfloat16), xb, y)
    assert xm.dtype == torch.bfloat16 and xm.is_contiguous(memory_format=torch.channels_last)
    assert t.dtype == torch.float32 and (t >= 0).all()
    soft = one_hot(y, 5)
    _, ts = SnapMix(5, generator=torch.Generator().manual_seed(0))(model, xb, soft)
    torch.testing.assert_close(ts, t)


def test_mode_restored_after_exception():
    model, (x, y) = cnn(), batch()
    model[4].register_forward_pre_hook(lambda m, i: (_ for _ in ()).throw(RuntimeError("body failed")))
    with pytest.raises(RuntimeError, match="body failed"):
        percent_maps(model, x, y)
    assert all(m.training for m in model.modules())


@pytest.mark.parametrize("bad, error, match", [
    (lambda: SnapMix(5).loss(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                           nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 5))), *batch()),
     TypeError, "head is an nn.Linear"),
    (lambda: SnapMix(5).loss(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(4, 5)),
                             *batch()), TypeError, "global average pool"),
    (lambda: semantic_percent_map(torch.randn(2, 4, 3, 3), nn.ReLU(), torch.tensor([0, 1]), 6), TypeError, "nn.Linear"),
    (lambda: SnapMix(5, beta=0.0), ValueError, "beta"),
    (lambda: SnapMix(5, beta=-1), ValueError, "beta"),
    (lambda: SnapMix(5, prob=-0.1), ValueError, "prob"),
    (lambda: SnapMix(5, prob=1.1), ValueError, "prob"),
    (lambda: SnapMix(1), ValueError, "num_classes"),
    (lambda: SnapMix(5, same_label="mean"), ValueError, "same_label"),
    (lambda: SnapMix(5, generator=1), TypeError, "generator"),
    (lambda: SnapMix(5).loss(cnn(), batch()[0][:1], batch()[1][:1]), ValueError, "at least 2"),
    (lambda: SnapMix(5).loss(cnn(), (batch()[0] * 50).to(torch.uint8), batch()[1]), TypeError, "floating-point"),
    (lambda: SnapMix(5).loss(cnn(), batch()[0].flatten(2), batch()[1]), ValueError, r"\(B, C, H, W\)"),
    (lambda: SnapMix(5).loss(cnn(), batch()[0], torch.tensor([0, 1, 2, 3, 4, 9])), ValueError, "labels must lie"),
])
def test_error_paths(bad, error, match):
    with pytest.raises(error, match=match):
        bad()


@pytest.mark.parametrize("make", [lambda: torchvision.models.resnet18(num_classes=5),
                                  lambda: timm.create_model("resnet10t", pretrained=False, num_classes=5), cnn],
                         ids=["torchvision-resnet18", "timm-resnet10t", "sequential"])
def test_supported_models_same_seed_same_loss(make):
    "64×64 images give ResNets a 2×2 last feature map, so the CAM path (not the area fallback) is exercised."
    model, (x, y) = make(), batch(size=64, n=4)
    forward = type(model).forward
    # the maps read the batch-norm running statistics, which a training forward updates: the same seed gives the
    # same loss for the same model state, so each call gets its own copy of the initial model (and the model's own
    # dropout, which draws from the global RNG, gets the same global seed)
    def seeded_loss():
        torch.manual_seed(123)
        return SnapMix(5, generator=torch.Generator().manual_seed(0)).loss(copy.deepcopy(model), x, y)
    losses = [seeded_loss() for _ in range(2)]
    assert torch.equal(losses[0], losses[1]) and torch.isfinite(losses[0])
    plan = SnapMix(5, generator=torch.Generator().manual_seed(0)).plan(model, x, y)
    assert isinstance(plan, SnapMixPlan) and not plan.maps.isnan().any()
    loss = SnapMix(5, generator=torch.Generator().manual_seed(1)).loss(model, x, y)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert type(model).forward is forward and model.training and not any(m._forward_hooks for m in model.modules())


def test_unsupported_model_raises():
    class Opaque(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.classifier = nn.Conv2d(3, 4, 3), nn.Linear(4, 5)
        def forward(self, x): return self.classifier(self.conv(x).relu().mean((2, 3)))

    model, (x, y) = Opaque(), batch()
    with pytest.raises(TypeError, match="split_model does not know how to split a Opaque"):
        SnapMix(5).loss(model, x, y)
    from mixup_lab.core import split_model
    parts = split_model(model, body=lambda t: model.conv(t).relu(), head=model.classifier)  # explicit parts work
    assert torch.isfinite(SnapMix(5, generator=torch.Generator().manual_seed(0)).loss(parts, x, y))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 8), st.integers(1, 8), st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**31 - 1))
def test_matrix_upsampling_equals_interpolate_formula(h, w, out_h, out_w, seed):
    "Any scale (odd, even, non-integer, down): the maps equal F.interpolate, then shift and normalise, of the CAM."
    g = torch.Generator().manual_seed(seed)
    fmap, head, labels = torch.randn(3, 5, h, w, generator=g), nn.Linear(5, 4), torch.randint(4, (3,), generator=g)
    with torch.no_grad():
        cam = torch.einsum("bchw,bc->bhw", fmap.relu(), head.weight[labels])
        up = F.interpolate(cam[:, None], size=(out_h, out_w), mode="bilinear", align_corners=False)[:, 0]
        low, high = up.amin((1, 2), keepdim=True), up.amax((1, 2), keepdim=True)
        ref = (up - low) / (up - low).sum((1, 2), keepdim=True)
        maps = semantic_percent_map(fmap, head, labels, (out_h, out_w))
    spread = (high - low).flatten() / up.abs().amax((1, 2)).clamp_min(1e-30)
    clear = (spread > 2e-5) | (spread < 5e-6)  # away from the constant-map threshold, both decide alike
    assert torch.equal(maps.isnan().flatten(1).all(1)[clear], (spread <= 1e-5)[clear])
    ok = clear & ~maps.isnan().flatten(1).any(1)
    assert (maps[ok] >= 0).all()
    torch.testing.assert_close(maps[ok], ref[ok], rtol=1e-4, atol=1e-6)
