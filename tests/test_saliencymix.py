"API-level, property-based and error-path tests of mixup_lab.saliencymix."
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from scipy import ndimage

import _family as fam
from mixup_lab.core import LinearPlan
from mixup_lab.cutmix import random_box
from mixup_lab.saliencymix import (SALIENCYMIX_MODES, SaliencyMix, SaliencyMixPlan, peak_boxes, saliency_map,
                                   saliency_peak, spectral_residual)

seeds = st.integers(0, 2**31 - 1)
sizes = st.integers(1, 24)


def reference(image, sigma, average=3):
    "Spectral residual of one image, NumPy and SciPy."
    spectrum = np.fft.fft2(image)
    log_amplitude = np.log(np.maximum(np.abs(spectrum), 1e-12))
    residual = log_amplitude - ndimage.uniform_filter(log_amplitude, size=average, mode="wrap")
    s = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    return ndimage.gaussian_filter(s, sigma, mode="mirror", truncate=3.0)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(8, 40), st.integers(8, 40), st.floats(0.5, 2.0), st.sampled_from([1, 3, 5]), seeds)
def test_batched_saliency_equals_per_image_reference(batch, height, width, sigma, average, seed):
    grey = torch.rand(batch, height, width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    ours = spectral_residual(grey, sigma, average)
    ref = np.stack([reference(img, sigma, average) for img in grey.numpy()])
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-8, atol=1e-14)


def _blob_scenes(height, width, centres, seed=1):
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    scale = height / 64
    blobs = torch.stack([torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (3.0 * scale) ** 2)) for cy, cx in centres])
    return (blobs + 0.1 * torch.rand(blobs.shape, generator=torch.Generator().manual_seed(seed))).unsqueeze(1)


@pytest.mark.parametrize("height, width", [(32, 32), (64, 64), (96, 96), (224, 224)])
def test_saliency_peaks_on_a_bright_blob(height, width):
    rel = [(0.2, 0.75), (0.6, 0.3), (0.5, 0.5), (0.75, 0.25)]
    centres = [(round(a * height), round(b * width)) for a, b in rel]
    x = _blob_scenes(height, width, centres).expand(-1, 3, -1, -1)
    peaks = saliency_peak(saliency_map(x)).double()
    assert ((peaks - torch.tensor(centres, dtype=torch.float64)).abs() <= height / 16 + 1).all(), peaks


def test_saliency_map_shapes_and_layouts():
    x = torch.rand(3, 3, 20, 30)
    s = saliency_map(x)
    assert s.shape == (3, 20, 30) and s.dtype == torch.float32 and (s >= 0).all()
    torch.testing.assert_close(saliency_map(x.half()), saliency_map(x.half().float()))
    torch.testing.assert_close(saliency_map(x.contiguous(memory_format=torch.channels_last)), s)
    torch.testing.assert_close(saliency_map(x.mean(1)), s)  # (B, H, W) is already grey
    assert saliency_map(torch.rand(2, 3, 100, 90)).shape == (2, 100, 90)


def test_peak_boxes_match_cutmix_boxes():
    for seed in range(20):
        u = torch.rand((2,), generator=torch.Generator().manual_seed(seed), dtype=torch.float64).tolist()
        centre = torch.tensor([[int(u[0] * 13), int(u[1] * 21)]])
        assert tuple(peak_boxes(13, 21, 0.3, centre)[0].tolist()) == random_box(13, 21, 0.3, torch.Generator().manual_seed(seed))


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 8), sizes, sizes, st.sampled_from([0.2, 1.0, 5.0]), st.sampled_from(SALIENCYMIX_MODES), seeds)
def test_targets_equal_pixel_fractions(batch, height, width, alpha, mode, seed):
    mixer = SaliencyMix(alpha, num_classes=batch, mode=mode, generator=torch.Generator().manual_seed(seed))
    fam.assert_targets_are_pixel_fractions(mixer, height, width, batch)


@pytest.mark.parametrize("mode", SALIENCYMIX_MODES)
def test_box_contains_the_partners_peak(mode):
    centres = [(12, 50), (40, 20), (30, 30), (50, 14), (20, 20)]
    x = _blob_scenes(64, 64, centres)
    peaks = saliency_peak(saliency_map(x))
    for seed in range(10):
        plan = SaliencyMix(0.5, num_classes=5, mode=mode, generator=torch.Generator().manual_seed(seed)).sample_plan(x)
        boxes = plan.box if mode == "elem" else torch.tensor([plan.box] * 5)
        for i in range(5) if mode == "elem" else [0]:
            t, b, l, r = boxes[i].tolist()
            py, px = peaks[int(plan.perm[i])].tolist()
            assert b == t or (t <= py < b and l <= px < r)


@settings(max_examples=20, deadline=None)
@given(st.floats(0.0, 1.0), st.sampled_from(SALIENCYMIX_MODES), seeds)
def test_seeded_generator_is_bit_identical(prob, mode, seed):
    fam.assert_seeded_and_global_rng(lambda g: SaliencyMix(num_classes=4, prob=prob, mode=mode, generator=g), seed=seed)


def test_elem_mode_pixels_and_batch_mode_equivalence():
    x, _ = fam.batch(2, 6, (3, 16, 16))
    plan = SaliencyMix(num_classes=4, mode="elem", generator=torch.Generator().manual_seed(0)).sample_plan(x)
    assert isinstance(plan, SaliencyMixPlan) and isinstance(plan, LinearPlan) and plan.lam.shape == (6,)
    xm = plan.inputs(x)
    for i in range(6):  # the loop is the reference: sample i gets its partner's box
        t, b, l, r = plan.box[i].tolist()
        expected = x[i].clone()
        expected[:, t:b, l:r] = x[plan.perm[i], :, t:b, l:r]
        assert torch.equal(xm[i], expected)
        assert plan.lam[i].item() == pytest.approx(1 - (b - t) * (r - l) / 256, abs=1e-12)
    # one box for all: a (B, 4) tensor of equal rows mixes exactly like the tuple
    box = tuple(plan.box[0].tolist())
    same = SaliencyMixPlan(plan.lam[0].item(), plan.perm, box).inputs(x)
    assert torch.equal(same, SaliencyMixPlan(plan.lam[:1].expand(6), plan.perm, plan.box[:1].expand(6, 4)).inputs(x))
    assert "tensor of (6,)" in repr(plan)


@pytest.mark.parametrize("mode", SALIENCYMIX_MODES)
@pytest.mark.parametrize("dtype", fam.DTYPES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_dtype_and_memory_format_preserved(mode, dtype, channels_last):
    fam.assert_dtype_and_layout_kept(lambda g: SaliencyMix(num_classes=4, mode=mode, generator=g), dtype, channels_last)


@pytest.mark.parametrize("mode", SALIENCYMIX_MODES)
def test_autograd_reaches_x(mode):
    fam.assert_autograd_reaches_x(lambda g: SaliencyMix(num_classes=4, mode=mode, generator=g))


@pytest.mark.parametrize("mode", SALIENCYMIX_MODES)
def test_three_dim_batch_and_batch_of_one(mode):
    x = torch.rand(4, 5, 13)
    xm, t = SaliencyMix(num_classes=3, mode=mode, generator=torch.Generator().manual_seed(0))(x, torch.tensor([0, 1, 2, 0]))
    assert xm.shape == x.shape
    torch.testing.assert_close(t.sum(1), torch.ones(4))
    fam.assert_batch_of_one_is_unchanged_by_its_plan(lambda g: SaliencyMix(num_classes=4, mode=mode, generator=g))


@pytest.mark.parametrize("mode", SALIENCYMIX_MODES)
def test_get_objective_round_trip(mode):
    fam.assert_objective_round_trip("saliencymix", SaliencyMix, alpha=0.5, mode=mode, saliency_size=32)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(alpha=-1.0), ValueError, "alpha must be a finite number > 0"),
    (dict(mode="per-sample"), ValueError, r"mode must be one of \['batch', 'elem'\]"),
    (dict(saliency_size=0), ValueError, "saliency_size must be an int >= 1"),
    (dict(saliency_size=32.0), TypeError, "saliency_size must be an int >= 1"),  # core.check_int: wrong type
    (dict(prob=2.0), ValueError, r"prob must lie in \[0.0, 1.0\]"),
    (dict(num_classes=None), TypeError, "num_classes is required"),
])
def test_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        SaliencyMix(**(dict(num_classes=4) | kwargs))


def test_call_and_function_errors():
    x, y = fam.batch(0)
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        SaliencyMix(num_classes=4)(x[:, 0, 0], y)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, num_classes-1\]"):
        SaliencyMix(num_classes=4)(x, torch.full_like(y, 4))
    with pytest.raises(ValueError, match="average must be an odd int"):
        spectral_residual(torch.rand(1, 8, 8), average=4)
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        spectral_residual(torch.rand(1, 8, 8), sigma=0.0)
    with pytest.raises(ValueError, match="grey must be a"):
        spectral_residual(torch.rand(8, 8))
    with pytest.raises(ValueError, match="size must be an int >= 1"):
        saliency_map(x, size=0)
    with pytest.raises(ValueError, match="peaks must be a"):
        peak_boxes(8, 8, 0.5, torch.zeros(3, dtype=torch.long))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mode", SALIENCYMIX_MODES)
def test_cuda_generator_and_batch(mode):
    g = torch.Generator("cuda").manual_seed(0)
    x, y = fam.batch(1, 6, (3, 32, 32))
    xm, t = SaliencyMix(num_classes=4, mode=mode, generator=g)(x.cuda(), y.cuda())
    assert xm.is_cuda and t.is_cuda
    torch.testing.assert_close(t.sum(1), torch.ones(6, device="cuda"))
    torch.testing.assert_close(saliency_map(x.cuda()).cpu(), saliency_map(x), rtol=1e-4, atol=1e-7)
