"API-level, property-based and error-path tests of mixup_lab.fmix."
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import _family as fam
from mixup_lab.core import LinearPlan
from mixup_lab.fmix import (FMix, FMixPlan, boundary_density, fmix_mask, frequency_grid, low_frequency_noise,
                            top_fraction_mask)

seeds = st.integers(0, 2**31 - 1)
sizes = st.integers(1, 24)


@settings(max_examples=60, deadline=None)
@given(sizes, sizes, st.floats(0.0, 1.0), st.sampled_from([0.5, 1.0, 3.0, 6.0]), seeds)
def test_mask_area_is_lambda_to_half_a_pixel(height, width, lam, decay_power, seed):
    mask = fmix_mask(height, width, lam, decay_power, torch.Generator().manual_seed(seed))
    assert mask.dtype == torch.bool and mask.shape == (height, width)
    assert int(mask.sum()) == math.floor(lam * height * width + 0.5)
    assert abs(mask.double().mean().item() - lam) <= 0.5 / (height * width) + 1e-12


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), sizes, sizes, seeds)
def test_mask_keeps_the_largest_pixels(n, height, width, seed):
    g = torch.Generator().manual_seed(seed)
    noise = low_frequency_noise(n, height, width, 3.0, g)
    lam = torch.rand(n, generator=g, dtype=torch.float64)
    mask = top_fraction_mask(noise, lam)
    assert torch.equal(mask.sum((-2, -1)), torch.floor(lam * height * width + 0.5).long())
    for i in range(n):
        if 0 < mask[i].sum() < height * width:
            assert noise[i][mask[i]].min() >= noise[i][~mask[i]].max()


@pytest.mark.parametrize("height, width", [(8, 8), (7, 10), (5, 9), (1, 6), (32, 17)])
def test_noise_equals_numpy_reference(height, width):
    "The authors' construction, written with NumPy: irfftn of N(0,1) + iN(0,1) damped by 1/max(f, 1/max(H,W))^δ."
    g = torch.Generator().manual_seed(7)
    ours = low_frequency_noise(2, height, width, 3.0, g)
    z = torch.randn((2, height, width // 2 + 1, 2), generator=torch.Generator().manual_seed(7), dtype=torch.float64).numpy()
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :]
    scale = 1.0 / np.maximum(np.sqrt(fy ** 2 + fx ** 2), 1.0 / max(height, width)) ** 3.0
    ref = np.fft.irfftn((z[..., 0] + 1j * z[..., 1]) * scale, s=(height, width), axes=(-2, -1))
    np.testing.assert_allclose(ours.numpy(), ref, rtol=0, atol=1e-12)


def test_smoothness_grows_with_decay_power():
    g = torch.Generator().manual_seed(0)
    density = [float(boundary_density(top_fraction_mask(low_frequency_noise(100, 32, 32, d, g), 0.5)).mean())
               for d in (0.5, 1.0, 2.0, 3.0, 5.0)]
    assert all(a > b for a, b in zip(density, density[1:])), density
    assert density[0] > 0.3 and density[-1] < 0.1


def test_frequency_grid_values():
    f = frequency_grid(4, 5)
    assert f.shape == (4, 3)
    torch.testing.assert_close(f[0], torch.tensor([0.0, 0.2, 0.4], dtype=torch.float64))
    torch.testing.assert_close(f[2, 0], torch.tensor(0.5, dtype=torch.float64))


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 8), sizes, sizes, st.sampled_from([0.2, 1.0, 5.0]), st.sampled_from([1.0, 3.0]), seeds)
def test_targets_equal_pixel_fractions(batch, height, width, alpha, decay_power, seed):
    mixer = FMix(alpha, num_classes=batch, decay_power=decay_power, generator=torch.Generator().manual_seed(seed))
    fam.assert_targets_are_pixel_fractions(mixer, height, width, batch)


@settings(max_examples=30, deadline=None)
@given(st.floats(0.0, 1.0), seeds)
def test_seeded_generator_is_bit_identical(prob, seed):
    fam.assert_seeded_and_global_rng(lambda g: FMix(1.0, num_classes=4, prob=prob, generator=g), seed=seed)


def test_plan_pixels_and_lambda():
    x, _ = fam.batch(2, 6, (3, 12, 10))
    plan = FMix(1.0, num_classes=4, generator=torch.Generator().manual_seed(0)).sample_plan(x)
    assert isinstance(plan, FMixPlan) and isinstance(plan, LinearPlan) and isinstance(plan.lam, float)
    assert plan.lam == plan.mask.sum().item() / 120
    assert torch.equal(plan.inputs(x), torch.where(plan.mask, x, x[plan.perm]))
    assert FMixPlan(plan.mask, plan.perm).lam == plan.lam
    assert repr(plan).startswith("FMixPlan(lam=")


@pytest.mark.parametrize("dtype", fam.DTYPES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_dtype_and_memory_format_preserved(dtype, channels_last):
    fam.assert_dtype_and_layout_kept(lambda g: FMix(num_classes=4, generator=g), dtype, channels_last)


def test_autograd_reaches_x():
    fam.assert_autograd_reaches_x(lambda g: FMix(num_classes=4, generator=g))


def test_three_dim_batch_and_batch_of_one():
    x = torch.rand(4, 5, 13)
    xm, t = FMix(num_classes=3, generator=torch.Generator().manual_seed(0))(x, torch.tensor([0, 1, 2, 0]))
    assert xm.shape == x.shape
    torch.testing.assert_close(t.sum(1), torch.ones(4))
    fam.assert_batch_of_one_is_unchanged_by_its_plan(lambda g: FMix(num_classes=4, generator=g))


def test_get_objective_round_trip():
    fam.assert_objective_round_trip("fmix", FMix, alpha=0.5, decay_power=2.0)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(alpha=0.0), ValueError, "alpha must be a finite number > 0"),
    (dict(alpha=None), TypeError, "alpha must be a real number"),
    (dict(decay_power=0.0), ValueError, "decay_power must be a finite number > 0"),
    (dict(decay_power=float("inf")), ValueError, "decay_power must be a finite number > 0"),
    (dict(prob=1.5), ValueError, r"prob must lie in \[0.0, 1.0\]"),
    (dict(num_classes=1), ValueError, "num_classes must be an int >= 2"),
    (dict(num_classes=None), TypeError, "num_classes is required"),
    (dict(generator=0), TypeError, "generator must be a torch.Generator"),
])
def test_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        FMix(**(dict(alpha=1.0, num_classes=4) | kwargs))


def test_call_and_function_errors():
    x, y = fam.batch(0)
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        FMix(num_classes=4)(x[:, 0, 0], y)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, num_classes-1\]"):
        FMix(num_classes=4)(x, torch.full_like(y, 4))
    with pytest.raises(TypeError, match="floating-point"):
        FMix(num_classes=4)((x * 255).to(torch.uint8), y)
    with pytest.raises(ValueError, match=r"lam must lie in \[0.0, 1.0\]"):
        fmix_mask(4, 4, 1.2)
    with pytest.raises(ValueError, match="height must be an int >= 1"):
        fmix_mask(0, 4, 0.5)
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        low_frequency_noise(0, 4, 4)
    with pytest.raises(ValueError, match="one value per image"):
        top_fraction_mask(torch.rand(3, 4, 4), torch.rand(2))
    with pytest.raises(TypeError, match="noise must be a real floating-point tensor"):
        top_fraction_mask(torch.ones(4, 4, dtype=torch.long), 0.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_generator_and_batch():
    g = torch.Generator("cuda").manual_seed(0)
    x, y = fam.batch(1)
    xm, t = FMix(num_classes=4, generator=g)(x.cuda(), y.cuda())
    assert xm.is_cuda and t.is_cuda
    torch.testing.assert_close(t.sum(1), torch.ones(6, device="cuda"))
