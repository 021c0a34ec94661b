"API-level, property-based and error-path tests of mixup_lab.snapmix."
import copy
import math

import numpy as np
import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from hypothesis import given, settings, strategies as st

from _models import OpaqueConv
from mixup_lab.core import IdentityPlan, Objective, one_hot, random_permutation, sample_beta, uniform
from mixup_lab.snapmix import SnapMix, SnapMixPlan, _random_box, percent_maps, semantic_percent_map


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
                          align_corners=True)
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
    model, (x, y) = OpaqueConv(3, 4, 5), batch()
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


# --- the public code (Shaoli-Huang/SnapMix, utils/mixmethod.py `snapmix`, utils/custom_ops.py `rand_bbox`), re-derived
# here from its rules, driven by the draws our plan makes from the same seed

def replayed_draws(seed, batch, height, width, beta=5.0):
    "The draws SnapMix.plan makes from a generator seeded with `seed`, in its order: coin, λ, λ1, π, two integer centres."
    g = torch.Generator().manual_seed(seed)
    coin = uniform((), g).item()
    lam, lam1 = sample_beta(beta, size=2, generator=g).tolist()
    perm = random_permutation(batch, g)
    u = uniform(4, g).tolist()
    return coin, lam, lam1, perm, [(int(u[0] * height), int(u[1] * width)), (int(u[2] * height), int(u[3] * width))]


def public_box(height, width, lam, centre):
    "rand_bbox with its centre given: sides int(size·√(1−λ)), each spanning centre ± side // 2, clipped to the image."
    ratio = np.sqrt(1.0 - lam)
    rows, cols = int(height * ratio), int(width * ratio)
    (cy, cx) = centre
    lo = lambda c, s, n: int(np.clip(c - s // 2, 0, n))
    hi = lambda c, s, n: int(np.clip(c + s // 2, 0, n))
    return lo(cy, rows, height), hi(cy, rows, height), lo(cx, cols, width), hi(cx, cols, width)


def public_maps(model, x, y):
    "get_spm: CAM of the label with the class bias, bilinear (align_corners=False) to the image, minus its min, over its sum."
    body, head = model[:-3], model[-1]
    with torch.no_grad():
        return torch.stack([reference_map(body(x[i:i + 1])[0], head, y[i], tuple(x.shape[-2:])) for i in range(len(x))])


def public_snapmix(x, y, maps, lam, lam1, perm, centres):
    "After the draws: paste the resized partner box (align_corners=True); ρ's summed for same labels, then NaN → area."
    height, width = x.shape[-2:]
    a, b = public_box(height, width, lam, centres[0]), public_box(height, width, lam1, centres[1])
    if (a[1] - a[0]) * (a[3] - a[2]) <= 0 or (b[1] - b[0]) * (b[3] - b[2]) <= 0:  # no mixing: ρ_a = 1, ρ_b = 0
        return x.clone(), torch.ones(len(x)), torch.zeros(len(x))
    mixed = x.clone()
    piece = x[perm][:, :, b[0]:b[1], b[2]:b[3]]
    mixed[:, :, a[0]:a[1], a[2]:a[3]] = F.interpolate(piece, size=(a[1] - a[0], a[3] - a[2]), mode="bilinear",
                                                      align_corners=True)
    mass = lambda m, box: m[:, box[0]:box[1], box[2]:box[3]].sum((1, 2)) / (m.sum((1, 2)) + 1e-8)
    rho_a, rho_b = 1 - mass(maps, a), mass(maps[perm], b)
    same = y == y[perm]
    rho_a, rho_b = torch.where(same, rho_a + rho_b, rho_a), torch.where(same, rho_a + rho_b, rho_b)  # first the sum
    kept = 1 - (a[1] - a[0]) * (a[3] - a[2]) / (height * width)
    return mixed, rho_a.nan_to_num(nan=kept), rho_b.nan_to_num(nan=1 - kept)  # then the area fallback


def cam_net(seed=0, classes=3):
    "No bias before the pool: an all-zero image has an all-zero feature map, hence a degenerate (NaN) map."
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1, bias=False),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, classes))


@pytest.mark.parametrize("size", [16, 11, 5])
@pytest.mark.parametrize("seed", range(12))
def test_plan_equals_public_code_with_the_same_draws(seed, size):
    "Mixed images to the bit and targets to float rounding, with same-label pairs and degenerate maps in the batch."
    model = cam_net(seed)
    g = torch.Generator().manual_seed(100 + seed)
    x, y = torch.randn(8, 3, size, size, generator=g), torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    x[[1, 4]] = 0  # two degenerate maps: image 1 (label 0) and image 4 (label 2)
    coin, lam, lam1, perm, centres = replayed_draws(seed, 8, size, size)
    maps = public_maps(model, x, y)
    assert maps[[1, 4]].isnan().all() and not maps[[0, 2, 3, 5, 6, 7]].isnan().any()
    mixed, rho_a, rho_b = public_snapmix(x, y, maps, lam, lam1, perm, centres)
    ours_x, ours_t = SnapMix(3, generator=torch.Generator().manual_seed(seed))(model, x, y)
    assert coin < 1.0 and torch.equal(ours_x, mixed)
    torch.testing.assert_close(ours_t, rho_a[:, None] * one_hot(y, 3) + rho_b[:, None] * one_hot(y[perm], 3),
                               rtol=1e-5, atol=1e-6)


def test_degenerate_same_label_pair_gets_the_areas():
    "The public order: a NaN map in either image of a same-label pair gives both terms the area, class mass exactly 1."
    model, g = cam_net(), torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 3, 16, 16, generator=g), torch.zeros(6, dtype=torch.long)  # all pairs share the label
    x[0] = 0
    plan = SnapMix(3, generator=torch.Generator().manual_seed(2)).plan(model, x, y)
    touched = (torch.arange(6) == 0) | (plan.perm == 0)  # image 0 itself, and the image whose partner is image 0
    mass = plan.rows(one_hot(y, 3))[:, 0]
    torch.testing.assert_close(mass[touched], torch.ones(int(touched.sum())))
    assert (mass[~touched] > 1).all()  # good maps on both sides: 2 (ρ_a + ρ_b), with ρ_a + ρ_b ≈ 1 here


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 1.0), st.integers(1, 40), st.integers(1, 40), st.floats(0.0, 0.999), st.floats(0.0, 0.999))
def test_box_is_the_public_rand_bbox(lam, height, width, u_y, u_x):
    assert _random_box(lam, height, width, u_y, u_x) == public_box(height, width, lam, (int(u_y * height), int(u_x * width)))


def test_boxes_have_even_sides_unless_clipped():
    for lam in torch.linspace(0, 1, 41).tolist():
        y0, y1, x0, x1 = _random_box(lam, 32, 32, 0.5, 0.5)  # centred: never clipped at 32 × 32
        assert (y1 - y0) % 2 == 0 and (x1 - x0) % 2 == 0


def test_head_with_other_number_of_outputs_is_an_error():
    model, (x, y) = cnn(classes=5), batch(classes=5)
    for k in (8, 4):
        with pytest.raises(ValueError, match=f"head has 5 outputs but num_classes={k}"):
            SnapMix(k).loss(model, x, y % k)
    with pytest.raises(ValueError, match="head has 5 outputs but num_classes=8"):
        SnapMix(8, cam_model=cnn(classes=5))


def test_cam_model_supplies_the_maps():
    model, fixed, (x, y) = cnn(0), cnn(1), batch()
    plan = SnapMix(5, cam_model=fixed, generator=torch.Generator().manual_seed(0)).plan(model, x, y)
    torch.testing.assert_close(plan.maps, percent_maps(fixed, x, y))
    assert not torch.allclose(plan.maps, percent_maps(model, x, y))
    own = SnapMix(5, generator=torch.Generator().manual_seed(0)).plan(model, x, y)
    assert plan.box_a == own.box_a and torch.equal(plan.perm, own.perm)  # same draws, other maps
    linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 5))  # trains without a CAM of its own
    loss = SnapMix(5, cam_model=fixed, generator=torch.Generator().manual_seed(0)).loss(linear, x, y)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is None for p in fixed.parameters())
    assert fixed.training  # its mode is restored after the eval-mode CAM forward
    with pytest.raises(TypeError, match="cam_model must be an nn.Module"):
        SnapMix(5, cam_model="resnet50")
    with pytest.raises(TypeError, match="head is an nn.Linear"):
        SnapMix(5, cam_model=nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                           nn.Sequential(nn.Linear(4, 5))))


# ---------------------------------------------------------------- label smoothing (issue 10: every mixer takes it)
@pytest.mark.parametrize("eps", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("same_label", ["sum", "merge"])
def test_label_smoothing_targets_are_rho_weighted_smoothed_one_hots(eps, same_label):
    "SnapMix had no label_smoothing; its targets are ρ_a·ỹ_a + ρ_b·ỹ_b with ỹ timm's smoothed one-hot."
    from timm.data.mixup import one_hot as timm_one_hot
    model, (x, y) = cnn(), batch(3)
    y[1] = y[0]  # at least one same-label pair is likely; the rule acts on the ρ's, before the smoothing
    make = lambda **kw: SnapMix(5, same_label=same_label, generator=torch.Generator().manual_seed(2), **kw)
    plan = make().plan(model, x, y)
    assert isinstance(plan, SnapMixPlan)
    xm, t = make(label_smoothing=eps)(model, x, y)
    smooth = timm_one_hot(y, 5, on_value=1 - eps + eps / 5, off_value=eps / 5)
    torch.testing.assert_close(t, plan.rho_a[:, None] * smooth + plan.rho_b[:, None] * smooth[plan.perm])
    torch.testing.assert_close(t.sum(1), plan.rho_a + plan.rho_b)  # smoothing moves mass, adds none
    assert torch.equal(xm, plan.inputs(x))  # the same draws: the smoothing changes the targets only
    model.eval()  # no dropout noise: the loss's forward pass and ours see the same network
    loss = make(label_smoothing=eps).loss(model, x, y)
    logp = F.log_softmax(model(xm), 1)
    torch.testing.assert_close(loss, -(t * logp).sum(1).mean())


def test_no_label_smoothing_is_bit_identical():
    "label_smoothing=0 (the default) gives ρ_a·e_a + ρ_b·e_b, bit for bit, for labels and for (B, K) targets."
    model, (x, y) = cnn(), batch(4)
    make = lambda **kw: SnapMix(5, generator=torch.Generator().manual_seed(7), **kw)
    plan = make().plan(model, x, y)
    onehot = one_hot(y, 5)
    expected = plan.rho_a[:, None] * onehot + plan.rho_b[:, None] * onehot[plan.perm]
    for kw in ({}, {"label_smoothing": 0.0}):
        assert torch.equal(make(**kw)(model, x, y)[1], expected)
        assert torch.equal(make(**kw)(model, x, onehot)[1], expected)
    assert "label_smoothing" not in repr(make()) and "label_smoothing=0.3" in repr(make(label_smoothing=0.3))


def test_label_smoothing_of_soft_and_unmixed_targets():
    model, (x, y) = cnn(), batch(5)
    soft = torch.softmax(torch.randn(6, 5, generator=torch.Generator().manual_seed(0)), 1)
    make = lambda **kw: SnapMix(5, generator=torch.Generator().manual_seed(1), **kw)
    plan = make().plan(model, x, soft)
    t = make(label_smoothing=0.2)(model, x, soft)[1]
    smooth = 0.8 * soft + 0.2 / 5  # (1 − ε) t + ε/K, as for every mixer
    torch.testing.assert_close(t, plan.rho_a[:, None] * smooth + plan.rho_b[:, None] * smooth[plan.perm])
    xi, ti = SnapMix(5, prob=0.0, label_smoothing=0.2)(model, x, y)
    assert torch.equal(xi, x)
    torch.testing.assert_close(ti, one_hot(y, 5, label_smoothing=0.2))
    with pytest.raises(ValueError, match=r"label_smoothing must lie in \[0.0, 1.0\]"): SnapMix(5, label_smoothing=-0.1)


def test_integer_one_hot_targets():
    "(B, K) integer one-hot targets (F.one_hot) give the labels' plan and targets (before: (B, K) labels reached the maps)."
    model, (x, y) = cnn(), batch(6)
    make = lambda: SnapMix(5, generator=torch.Generator().manual_seed(3))
    a, b = make()(model, x, y), make()(model, x, F.one_hot(y, 5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_get_objective_passes_label_smoothing():
    from mixup_lab.train import get_objective
    assert get_objective("snapmix", 5, label_smoothing=0.1).label_smoothing == 0.1
