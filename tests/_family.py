"Shared checks for the mixers of the wider family (FMix, ResizeMix, SaliencyMix): what every InputMixer must do."
import torch
import torch.nn as nn

from mixup_lab.core import one_hot
from mixup_lab.sem import SemanticEquivariantMixup
from mixup_lab.train import get_objective, objective_generators

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def batch(seed, size=6, shape=(3, 7, 9), num_classes=4, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(size, *shape, generator=g).to(dtype), torch.randint(num_classes, (size,), generator=g)


def constant_images(size, height, width, channels=2):
    "Image c is constant c (and has label c): the label mass of c must equal the fraction of pixels of value c."
    x = torch.arange(size, dtype=torch.float32).view(size, 1, 1, 1).expand(size, channels, height, width).contiguous()
    return x, torch.arange(size)


def pixel_fraction(xm, size):
    return (xm[:, :1] == torch.arange(size).view(1, size, 1, 1)).double().mean((-2, -1))


def assert_targets_are_pixel_fractions(mixer, height, width, size=5):
    x, y = constant_images(size, height, width)
    xm, t = mixer(x, y)
    torch.testing.assert_close(t.double(), pixel_fraction(xm, size), rtol=0, atol=1e-6)
    torch.testing.assert_close(t.sum(1), torch.ones(size))
    assert (t >= 0).all()


def assert_dtype_and_layout_kept(make, dtype, channels_last):
    x, y = batch(3, 6, (3, 11, 8), dtype=dtype)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = x.contiguous(memory_format=fmt)
    x0 = x.clone()
    xm, t = make(torch.Generator().manual_seed(0))(x, y)
    assert xm.dtype == dtype and xm.shape == x.shape and t.dtype == torch.float32 and t.shape == (6, 4)
    assert xm.is_contiguous(memory_format=fmt)
    assert torch.equal(x, x0) and xm.data_ptr() != x.data_ptr()  # out of place


def assert_autograd_reaches_x(make):
    x, y = batch(4, 6, (3, 12, 12))
    x = x.requires_grad_()
    xm, _ = make(torch.Generator().manual_seed(1))(x, y)
    xm.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    torch.testing.assert_close(x.grad.sum(), torch.tensor(float(x.numel())), rtol=1e-3, atol=1e-3)


def assert_seeded_and_global_rng(make, prob=1.0, seed=0):
    x, y = batch(seed)
    run = lambda: make(torch.Generator().manual_seed(seed))(x, y)
    (xa, ta), (xb, tb) = run(), run()
    assert torch.equal(xa, xb) and torch.equal(ta, tb)
    torch.manual_seed(seed); xa, ta = make(None)(x, y)
    torch.manual_seed(seed); xb, tb = make(None)(x, y)
    assert torch.equal(xa, xb) and torch.equal(ta, tb)


def assert_batch_of_one_is_unchanged_by_its_plan(make):
    "Core decides whether a batch of one is mixed; a plan for it must still work (its only partner is itself)."
    x, y = batch(5, 1, (3, 9, 9))
    plan = make(torch.Generator().manual_seed(0)).plan(x)
    assert torch.equal(plan.inputs(x), x)
    torch.testing.assert_close(plan.targets(y, 4), one_hot(y, 4))


def assert_objective_round_trip(name, cls, **kwargs):
    g = torch.Generator().manual_seed(0)
    obj = get_objective(name, 4, generator=g, **kwargs)
    assert isinstance(obj, cls) and obj.num_classes == 4 and obj.generator is g
    for k, v in kwargs.items(): assert getattr(obj, k) == v, k
    assert objective_generators(obj) == [g]
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4))
    x, y = batch(6, 8, (1, 8, 8))
    loss = obj.loss(model, x, y)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    # SEM mixes representations with plan.rows: the plan's rows must be the targets' proportions
    sem = SemanticEquivariantMixup(mixer=get_objective(name, 4, generator=torch.Generator().manual_seed(1), **kwargs))
    loss = sem.loss(model, x, y)
    assert torch.isfinite(loss)
    plan = obj.sample_plan(x)
    t = one_hot(y, 4)
    torch.testing.assert_close(plan.rows(t), plan.targets(y, 4))
