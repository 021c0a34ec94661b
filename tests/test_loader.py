"API-level, distribution, determinism, sharding and fit-integration tests of mixup_lab.loader.DeviceLoader."
import math
import os
import socket
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from PIL import Image
from scipy import stats
from torch.utils.data import DistributedSampler, Subset, TensorDataset

from mixup_lab.data import (CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD, IMAGENET_MEAN, IMAGENET_STD, Cutout,
                            cifar, cifar_transforms, cutout_mask, write_cifar)
from mixup_lab.loader import (Augmentation, DeviceLoader, augment_batch, crop_flip_coords, draw_augmentation,
                              gather_crops, normalize_images, pad_images)

CPU = torch.device("cpu")


def _gen(seed=0): return torch.Generator().manual_seed(seed)


def _images(n=40, c=3, h=32, w=32, seed=0):
    return torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=_gen(seed))


def _reference(images, index, aug, padding, size=16, stats_=None, before=False):
    "Per image: zero-pad, crop, flip, Cutout (data.cutout_mask), ToTensor + Normalize; a Python loop over the batch."
    H, W = images.shape[-2:]
    out = []
    for b, n in enumerate(index.tolist()):
        img = images[n]
        if aug is not None and aug.offsets is not None:
            dy, dx = aug.offsets[b].tolist()
            img = F.pad(img, (padding,) * 4)[:, padding + dy:padding + dy + H, padding + dx:padding + dx + W]
        if aug is not None and aug.flips is not None and aug.flips[b]: img = img.flip(-1)
        x = img.float() / 255 if img.dtype == torch.uint8 else img.clone()
        hole = None
        if aug is not None and aug.centres is not None: hole = cutout_mask(aug.centres[b:b + 1], size, H, W)[0]
        if hole is not None and before: x[:, hole] = 0
        if stats_ is not None:
            x = (x - torch.tensor(stats_[0], dtype=x.dtype).view(-1, 1, 1)) / torch.tensor(stats_[1], dtype=x.dtype).view(-1, 1, 1)
        if hole is not None and not before: x[:, hole] = 0
        out.append(x)
    return torch.stack(out)


# ---------------------------------------------------------------- the pure functions
@settings(deadline=None, max_examples=25)
@given(st.integers(1, 6), st.integers(0, 5), st.booleans(), st.booleans(), st.integers(2, 14), st.integers(2, 14),
       st.integers(0, 2**31 - 1))
def test_gather_and_augment_match_the_per_image_reference(channels, padding, flip, cutout, h, w, seed):
    g = _gen(seed)
    images = torch.randint(0, 256, (9, channels, h, w), dtype=torch.uint8, generator=g)
    index = torch.randint(0, 9, (7,), generator=g)
    aug = draw_augmentation(7, h, w, padding, flip, cutout, generator=g)
    padded = pad_images(images, padding)
    assert padded.is_contiguous(memory_format=torch.channels_last) and padded.shape == (9, channels, h + 2 * padding, w + 2 * padding)
    mean, std = tuple(np.linspace(0.3, 0.6, channels).tolist()), tuple(np.linspace(0.2, 0.3, channels).tolist())
    for before in (False, True):
        out = augment_batch(padded, padding, index, aug, 3, mean, std, cutout_before_normalize=before)
        torch.testing.assert_close(out, _reference(images, index, aug, padding, 3, (mean, std), before), atol=1e-6, rtol=0)
        cl = augment_batch(padded, padding, index, aug, 3, mean, std, cutout_before_normalize=before, channels_last=True)
        assert torch.equal(cl, out) and cl.is_contiguous(memory_format=torch.channels_last) and out.is_contiguous()
    if aug.offsets is not None or aug.flips is not None:
        raw = gather_crops(padded, index, *crop_flip_coords(aug.offsets, aug.flips, h, w), padding)
        assert torch.equal(raw, (_reference(images, index, Augmentation(aug.offsets, aug.flips, None), padding) * 255).round().to(torch.uint8))


def test_draws_are_in_range_and_follow_the_generator():
    aug = draw_augmentation(5000, 7, 11, padding=3, cutout=True, generator=_gen(1))
    assert aug.offsets.dtype == torch.int64 and aug.offsets.min() == -3 and aug.offsets.max() == 3
    assert aug.flips.dtype == torch.bool
    assert aug.centres[:, 0].max() == 6 and aug.centres[:, 1].max() == 10 and aug.centres.min() == 0
    again = draw_augmentation(5000, 7, 11, padding=3, cutout=True, generator=_gen(1))
    assert all(torch.equal(a, b) for a, b in zip(aug, again))
    assert not torch.equal(aug.offsets, draw_augmentation(5000, 7, 11, 3, generator=_gen(2)).offsets)
    # the fixed order: offsets, then flips, then centres; switching a step off leaves the others' draws unchanged in kind
    g = _gen(3)
    expected = torch.randint(7, (10, 2), generator=g) - 3
    assert torch.equal(draw_augmentation(10, 7, 11, 3, generator=_gen(3)).offsets, expected)


def test_normalize_images_is_torchvision_bit_for_bit():
    from torchvision import transforms as T
    pixels = _images(8)
    for mean, std in ((CIFAR10_MEAN, CIFAR10_STD), (IMAGENET_MEAN, IMAGENET_STD)):
        tv = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
        expected = torch.stack([tv(Image.fromarray(p.permute(1, 2, 0).numpy())) for p in pixels])
        assert torch.equal(normalize_images(pixels, mean, std), expected)
    cl = pixels.contiguous(memory_format=torch.channels_last)  # the row-wise channels-last path: the same bits
    out = normalize_images(cl, IMAGENET_MEAN, IMAGENET_STD)
    assert out.is_contiguous(memory_format=torch.channels_last) and torch.equal(out, expected)
    floats = torch.rand(4, 3, 5, 5)
    out = normalize_images(floats)
    assert torch.equal(out, floats) and out.data_ptr() != floats.data_ptr()  # a copy, never the stored data
    assert normalize_images(pixels, dtype=torch.float64).dtype == torch.float64


# ---------------------------------------------------------------- distributions through the loader
def _coordinate_images(n):
    "Images whose channels hold their own row + 1, column + 1 and the constant 200, so crops tell their draws."
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    return torch.stack([yy + 1, xx + 1, torch.full_like(yy, 200)]).to(torch.uint8).expand(n, 3, 32, 32)


def _read_draws(batch):
    v = (batch * 255).round().long()
    flipped = v[:, 1, 16, 17] < v[:, 1, 16, 16]
    dy = v[:, 0, 16, 16] - 17
    dx = v[:, 1, 16, 16] - 1 - torch.where(flipped, torch.tensor(15), torch.tensor(16))
    return dy, dx, flipped


def test_crops_and_flips_have_torchvisions_distribution():
    n = 6000
    dl = DeviceLoader(_coordinate_images(n), torch.zeros(n, dtype=torch.long), 500, device=CPU, generator=_gen(7))
    batches = [x for x, _ in dl]
    dy, dx, flipped = map(torch.cat, zip(*[_read_draws(x) for x in batches]))
    assert dy.min() == -4 and dy.max() == 4 and dx.min() == -4 and dx.max() == 4
    assert stats.chisquare(torch.bincount((dy + 4) * 9 + dx + 4, minlength=81).numpy()).pvalue > 1e-3  # uniform, independent
    assert stats.binomtest(int(flipped.sum()), n, 0.5).pvalue > 1e-3
    # the pixels brought in by the crop are zeros (black): as many rows/columns as the offset
    x = torch.cat(batches)
    v = (x * 255).round().long()
    black_rows = (v[:, 2] == 0).all(-1).sum(-1)
    assert torch.equal(black_rows, dy.abs())
    # torchvision's pipeline through PIL, read the same way: the same distribution (two-sample chi-square)
    torch.manual_seed(0)
    tv = cifar_transforms("cifar10", train=True, normalize=False)
    pil = Image.fromarray(_coordinate_images(1)[0].permute(1, 2, 0).numpy())
    tdy, tdx, tflipped = _read_draws(torch.stack([tv(pil) for _ in range(3000)]))
    for ours, theirs in ((dy, tdy), (dx, tdx)):
        table = np.stack([np.bincount((ours + 4).numpy(), minlength=9), np.bincount((theirs + 4).numpy(), minlength=9)])
        assert stats.chi2_contingency(table).pvalue > 1e-3
    flips = [[int(flipped.sum()), int((~flipped).sum())], [int(tflipped.sum()), int((~tflipped).sum())]]
    assert stats.chi2_contingency(flips).pvalue > 1e-3


def test_a_wrong_offset_range_would_fail_the_chi_square():
    "The distribution test can fail: offsets on 0..8 shifted by 3 (range -3..5) are far from uniform on -4..4."
    wrong = torch.randint(0, 9, (6000,), generator=_gen(0)) - 3
    counts = torch.bincount((wrong + 4).clamp(0, 8), minlength=9).numpy()
    assert stats.chisquare(counts).pvalue < 1e-3


def test_cutout_centres_are_uniform():
    n = 32 * 32 * 12
    images = torch.full((n, 3, 32, 32), 200, dtype=torch.uint8)
    dl = DeviceLoader(images, torch.zeros(n, dtype=torch.long), 2048, augment=False, cutout=True, device=CPU, generator=_gen(2))
    holes = torch.cat([(x == 0).all(1) for x, _ in dl])  # (n, 32, 32)
    def centre(axis):
        covered = holes.any(dim=2 if axis == 0 else 1)  # (n, 32): rows (or columns) the hole covers
        first = covered.float().argmax(1)
        last = 31 - covered.flip(1).float().argmax(1)
        return torch.where(first == 0, last + 1 - 8, first + 8)  # s = 16: the hole spans centre - 8 .. centre + 7
    for axis in (0, 1):
        c = centre(axis)
        assert c.min() == 0 and c.max() == 31
        assert stats.chisquare(torch.bincount(c, minlength=32).numpy()).pvalue > 1e-3
    assert stats.chisquare(torch.bincount(centre(0) * 32 + centre(1), minlength=1024).numpy()).pvalue > 1e-3


def test_cutout_equals_data_cutout_with_the_same_generator():
    "Without crop or shuffle, the loader's holes are data.Cutout's: the same draws (rows, then columns) and geometry."
    images = _images(30)
    dl = DeviceLoader(images, torch.zeros(30, dtype=torch.long), 30, shuffle=False, augment=False, cutout=True,
                      normalize="cifar10", device=CPU, generator=_gen(5))
    x, _ = next(iter(dl))
    expected = Cutout(16, _gen(5))(normalize_images(images, CIFAR10_MEAN, CIFAR10_STD))
    assert torch.equal(x, expected)


# ---------------------------------------------------------------- batching, determinism, epochs
@settings(deadline=None, max_examples=40)
@given(st.integers(1, 60), st.integers(1, 20), st.sampled_from([None, True, False]), st.integers(1, 3))
def test_len_and_the_last_batch_rule(n, batch_size, drop_last, world):
    shards = [DeviceLoader(_images(n, 1, 4, 4), torch.zeros(n, dtype=torch.long), batch_size, drop_last=drop_last,
                           augment=False, device=CPU, generator=_gen(0), num_replicas=world, rank=r) for r in range(world)]
    per_rank = math.ceil(n / world)
    for dl in shards:
        sizes = [len(y) for _, y in dl]
        assert len(dl) == len(sizes)
        rest = per_rank % batch_size
        dropped = rest and (drop_last or (drop_last is None and rest == 1))
        assert sum(sizes) == per_rank - (rest if dropped else 0)
        if drop_last is None and batch_size > 1: assert 1 not in sizes  # mixing needs a partner
    assert len({len(dl) for dl in shards}) == 1  # every rank makes the same number of steps


def test_same_seed_same_epochs_and_every_image_once():
    labels = torch.arange(40)
    make = lambda seed: DeviceLoader(_images(40), labels, 16, cutout=True, normalize="cifar10", device=CPU, generator=_gen(seed))
    a, b = make(0), make(0)
    ea = [list(a), list(a)]
    eb = [list(b), list(b)]
    for x, y in zip(ea, eb):
        assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(x, y))
    assert torch.equal(torch.cat([y for _, y in ea[0]]).sort().values, labels)
    assert not torch.equal(torch.cat([y for _, y in ea[0]]), torch.cat([y for _, y in ea[1]]))  # reshuffled
    assert not torch.equal(torch.cat([y for _, y in list(make(1))]), torch.cat([y for _, y in ea[0]]))


def test_generator_state_decides_the_next_epoch():
    dl = DeviceLoader(_images(30), torch.arange(30), 8, device=CPU, generator=_gen(0))
    list(dl)
    state = dl.generator.get_state()
    second = [x for x, _ in dl]
    fresh = DeviceLoader(_images(30), torch.arange(30), 8, device=CPU, generator=torch.Generator())
    fresh.generator.set_state(state)  # what fit does on resume
    assert all(torch.equal(p, q) for p, q in zip(second, [x for x, _ in fresh]))


def test_set_epoch_depends_only_on_seed_and_epoch():
    def epoch_of(dl, e):
        dl.set_epoch(e)
        return torch.cat([y for _, y in dl])
    a = DeviceLoader(_images(30), torch.arange(30), 8, device=CPU, generator=_gen(4))
    b = DeviceLoader(_images(30), torch.arange(30), 8, device=CPU, generator=_gen(4))
    list(b); list(b)  # another history
    assert torch.equal(epoch_of(a, 3), epoch_of(b, 3))
    assert not torch.equal(epoch_of(a, 3), epoch_of(a, 4))
    a.set_epoch(5)
    first = torch.cat([y for _, y in a])
    nxt = torch.cat([y for _, y in a])  # counts on: epoch 6
    assert torch.equal(nxt, epoch_of(b, 6)) and not torch.equal(first, nxt)


def test_default_generator_follows_torch_manual_seed():
    torch.manual_seed(3)
    a = [y for _, y in DeviceLoader(_images(20), torch.arange(20), 5, device=CPU)]
    torch.manual_seed(3)
    b = [y for _, y in DeviceLoader(_images(20), torch.arange(20), 5, device=CPU)]
    assert all(torch.equal(p, q) for p, q in zip(a, b))


# ---------------------------------------------------------------- DDP shards
@pytest.mark.parametrize("n, world", [(45, 2), (40, 3), (7, 4)])
def test_shards_are_distributed_samplers_slices(n, world):
    "With shuffle=False the ranks hold exactly DistributedSampler's indices (same padding), and cover the dataset."
    labels = torch.arange(n)
    seen = []
    for rank in range(world):
        dl = DeviceLoader(_images(n, 1, 4, 4), labels, 4, shuffle=False, drop_last=False, augment=False, device=CPU,
                          num_replicas=world, rank=rank)
        got = torch.cat([y for _, y in dl]).tolist()
        assert got == list(DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=False))
        seen += got
    assert set(seen) == set(range(n))


def test_shuffled_shards_split_one_permutation():
    n, world = 50, 2
    shards = [DeviceLoader(_images(n), torch.arange(n), 5, device=CPU, generator=_gen(9), num_replicas=world, rank=r)
              for r in range(world)]
    whole = DeviceLoader(_images(n), torch.arange(n), 5, device=CPU, generator=_gen(9))
    epochs = [list(s) for s in shards]
    ys = [torch.cat([y for _, y in e]) for e in epochs]
    xs = [torch.cat([x for x, _ in e]) for e in epochs]
    one = list(whole)
    assert torch.equal(torch.stack(ys, 1).flatten(), torch.cat([y for _, y in one]))  # interleaved: one epoch
    assert torch.equal(torch.stack(xs, 1).flatten(0, 1), torch.cat([x for x, _ in one]))  # and the same augmentation
    assert torch.equal(torch.cat(ys).sort().values, torch.arange(n))


def _ddp_worker(rank, world, port, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from mixup_lab.models import small_cnn
    from mixup_lab.train import fit, get_objective
    dist.init_process_group("gloo")
    try:
        ids = DeviceLoader(_images(37, 1, 8, 8), torch.arange(37), 6, augment=False, device="cpu", generator=_gen(0))
        labels = torch.cat([y for _, y in ids])  # rank and world come from torch.distributed
        gathered = [None] * world
        dist.all_gather_object(gathered, (len(ids), labels.tolist()))
        dl = DeviceLoader(_images(37, 1, 8, 8), torch.arange(37) % 4, 6, device="cpu", generator=_gen(0))
        torch.manual_seed(rank)
        model = small_cnn(4, 1, width=4)
        history = fit(model, get_objective("mixup", 4), dl, epochs=2, lr=0.05, device="cpu", progress=False, seed=1)
        states = [None] * world
        dist.all_gather_object(states, {k: v.clone() for k, v in model.state_dict().items()})
        if rank == 0: torch.save({"gathered": gathered, "states": states, "history": history}, out)
    finally:
        dist.destroy_process_group()


def test_under_torch_distributed_each_rank_takes_its_slice_and_fit_trains(tmp_path):
    if not dist.is_gloo_available(): pytest.skip("Gloo backend not available")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path / "out.pt")), nprocs=2, join=True)
    out = torch.load(tmp_path / "out.pt", weights_only=False)
    (len0, y0), (len1, y1) = out["gathered"]
    assert len0 == len1 == 3 and len(y0) == len(y1) == 18  # 37 padded to 38: 19 per rank, 6+6+6 (+1 dropped)
    assert not set(y0) & set(y1) and len(set(y0) | set(y1)) == 36  # disjoint slices of one permutation
    s0, s1 = out["states"]
    assert all(torch.equal(s0[k], s1[k]) for k in s0)  # DDP kept the ranks in step
    assert np.isfinite(out["history"]["train_loss"]).all()


# ---------------------------------------------------------------- two views, batch samplers, datasets
def test_two_views_are_the_augmented_and_the_clean_image():
    images = _images(20)
    dl = DeviceLoader(images, torch.arange(20), 10, two_views=True, cutout=True, normalize="cifar100", device=CPU,
                      generator=_gen(1))
    for (xa, xc), y in dl:
        assert torch.equal(xc, normalize_images(images[y], CIFAR100_MEAN, CIFAR100_STD))
        assert xa.shape == xc.shape and not torch.equal(xa, xc)


def test_batch_sampler_replaces_the_order():
    from mixup_lab.synermix import BalancedBatchSampler
    labels = torch.arange(60) % 6
    sampler = BalancedBatchSampler(labels, 12, generator=_gen(0))
    expected = list(BalancedBatchSampler(labels, 12, generator=_gen(0)))
    dl = DeviceLoader(_images(60), labels, batch_sampler=sampler, augment=False, device=CPU)
    ys = [y for _, y in dl]
    assert len(dl) == len(expected) == len(ys)
    assert all(torch.equal(y, labels[torch.as_tensor(b)]) for y, b in zip(ys, expected))
    # under DDP the ranks take whole batches in turn
    two = [DeviceLoader(_images(60), labels, batch_sampler=BalancedBatchSampler(labels, 12, generator=_gen(0)),
                        augment=False, device=CPU, num_replicas=2, rank=r) for r in range(2)]
    got = [[y for _, y in d] for d in two]
    assert len(got[0]) == len(got[1]) == math.ceil(len(expected) / 2)
    assert all(torch.equal(y, labels[torch.as_tensor(b)]) for y, b in zip(got[0], expected[0::2]))
    assert all(torch.equal(y, labels[torch.as_tensor(b)]) for y, b in zip(got[1], (expected * 2)[1::2]))
    with pytest.raises(ValueError, match="mutually exclusive"): DeviceLoader(_images(60), labels, 12, batch_sampler=sampler)
    with pytest.raises(IndexError, match="outside 0..59"): list(DeviceLoader(_images(60), labels, batch_sampler=[[0, 60]], device=CPU))


def test_from_datasets_and_subsets():
    x = torch.rand(30, 1, 8, 8)
    y = torch.arange(30) % 3
    dl = DeviceLoader.from_dataset(TensorDataset(x, y), 30, shuffle=False, augment=False, device=CPU)
    xb, yb = next(iter(dl))
    assert torch.equal(xb, x) and torch.equal(yb, y)  # float images pass through unchanged
    sub = Subset(Subset(TensorDataset(x, y), list(range(5, 30))), [0, 3, 4])
    dl = DeviceLoader.from_dataset(sub, 3, shuffle=False, augment=False, device=CPU)
    assert torch.equal(next(iter(dl))[1], y[[5, 8, 9]])
    dl = DeviceLoader.from_dataset(sub, 3, shuffle=False, augment=False, drop_last=False, device=CPU, indices=[2])
    assert torch.equal(next(iter(dl))[1], y[[9]]) and dl.num_examples == 1
    with pytest.raises(TypeError, match="TensorDataset"): DeviceLoader.from_dataset([(x[0], 1)], 2)
    with pytest.raises(ValueError, match="resolve 'cifar' themselves"):
        DeviceLoader.from_dataset(TensorDataset(x, y), 2, normalize="cifar")


def test_cifar_constructor_reads_torchvisions_pixels(tmp_path):
    write_cifar(tmp_path, "cifar100", per_class=2, test_per_class=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train = DeviceLoader.cifar("cifar100", tmp_path, train=True, batch_size=64, verify=False, device=CPU)
        test = DeviceLoader.cifar("cifar100", tmp_path, train=False, batch_size=64, verify=False, device=CPU)
        tv_train = cifar("cifar100", tmp_path, train=True, augment=False, normalize=False, verify=False)
        tv_test = cifar("cifar100", tmp_path, train=False, verify=False)
        imagenet = DeviceLoader.cifar("cifar100", tmp_path, train=False, batch_size=100, verify=False, device=CPU,
                                      normalize="imagenet")
        tv_imagenet = cifar("cifar100", tmp_path, train=False, verify=False, normalize="imagenet")
    stored = train.images[:, :, 4:36, 4:36]  # the zero border of the crop around torchvision's pixels
    assert torch.equal(stored, torch.from_numpy(tv_train.data).permute(0, 3, 1, 2))
    assert train.augment and train.shuffle and not test.augment and not test.shuffle and test.drop_last is False
    assert torch.equal(torch.cat([x for x, _ in test]), torch.stack([tv_test[i][0] for i in range(100)]))
    assert torch.equal(next(iter(imagenet))[0], torch.stack([tv_imagenet[i][0] for i in range(100)]))
    assert [len(y) for _, y in train] == [64, 64, 64, 8]
    with pytest.raises(ValueError, match="md5"): DeviceLoader.cifar("cifar100", tmp_path, verify=True, device=CPU)


def test_cutout_before_normalize_makes_black_holes():
    images = torch.full((8, 3, 32, 32), 128, dtype=torch.uint8)
    before = DeviceLoader(images, torch.zeros(8, dtype=torch.long), 8, augment=False, cutout=True, normalize="imagenet",
                          cutout_before_normalize=True, device=CPU, generator=_gen(0))
    after = DeviceLoader(images, torch.zeros(8, dtype=torch.long), 8, augment=False, cutout=True, normalize="imagenet",
                         device=CPU, generator=_gen(0))
    (xb, _), (xa, _) = next(iter(before)), next(iter(after))
    hole = (xa == 0).all(1)
    black = (-torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)).view(1, 3, 1)
    assert hole.sum() >= 8 * 64
    torch.testing.assert_close(xb.permute(0, 2, 3, 1)[hole], black.view(1, 3).expand(int(hole.sum()), 3), atol=1e-6, rtol=0)
    assert torch.equal(xb.permute(0, 2, 3, 1)[~hole], xa.permute(0, 2, 3, 1)[~hole])


def test_layouts_and_dtypes():
    dl = DeviceLoader(_images(8), torch.zeros(8, dtype=torch.long), 4, channels_last=True, dtype=torch.bfloat16,
                      normalize="cifar10", device=CPU)
    x, y = next(iter(dl))
    assert x.dtype == torch.bfloat16 and x.is_contiguous(memory_format=torch.channels_last) and y.dtype == torch.int64
    x, _ = next(iter(DeviceLoader(_images(8), torch.zeros(8, dtype=torch.long), 4, device=CPU)))
    assert x.is_contiguous() and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(images=torch.zeros(4, 8, 8)), TypeError, r"uint8 or float tensor \(N, C, H, W\)"),
    (dict(images=torch.zeros(4, 1, 8, 8, dtype=torch.int32)), TypeError, "uint8 or float"),
    (dict(labels=torch.zeros(3, dtype=torch.long)), ValueError, "labels must be 4 integer classes"),
    (dict(labels=torch.zeros(4)), ValueError, "integer classes"),
    (dict(batch_size=None), ValueError, "batch_size must be an int >= 1"),
    (dict(batch_size=0), ValueError, "batch_size must be an int >= 1"),
    (dict(normalize="svhn"), ValueError, "normalize must be False, one of"),
    (dict(normalize=((0.5,), (0.5,))), ValueError, "one mean and one std per channel"),
    (dict(normalize=((0.5,) * 3, (0.0,) * 3)), ValueError, "std must be > 0"),
    (dict(num_replicas=2), ValueError, "num_replicas and rank must be given together"),
    (dict(num_replicas=2, rank=2), ValueError, r"rank must be an int in 0..1"),
    (dict(indices=[0, 4]), ValueError, r"indices must be a non-empty list of image indices in 0..3"),
    (dict(generator=0), TypeError, "generator must be a torch.Generator"),
    (dict(cutout=0), ValueError, "cutout must be an int >= 1"),
    (dict(padding=-1), ValueError, "padding must be an int >= 0"),
    (dict(augment="yes"), TypeError, "augment must be True or False"),
    (dict(shuffle="yes"), TypeError, "shuffle must be True, False or None"),
    (dict(dtype=torch.int64), TypeError, "dtype must be a floating-point"),
])
def test_bad_arguments(kwargs, exc, match):
    args = dict(images=_images(4), labels=torch.zeros(4, dtype=torch.long), batch_size=2, device=CPU)
    args.update(kwargs)
    with pytest.raises(exc, match=match): DeviceLoader(**args)


# ---------------------------------------------------------------- fit
def _digits_like(n=72, seed=0):
    g = _gen(seed)
    y = torch.arange(n) % 4
    x = (torch.rand(n, 1, 8, 8, generator=g) * 0.5 + y.view(-1, 1, 1, 1) * 0.1)
    return (x * 255).to(torch.uint8), y


def _kill_after(model, steps):
    "Make `model` raise after `steps` training forward passes, like a process killed mid-epoch (class and weights unchanged)."
    calls = [0]
    def hook(module, args):
        if module.training:
            calls[0] += 1
            if calls[0] > steps: raise RuntimeError("killed")
    model.register_forward_pre_hook(hook)


def _fit(objective, generator_seed, epochs=4, checkpoint=None, two_views=False, kill_at=None):
    from mixup_lab.models import small_cnn
    from mixup_lab.train import fit, get_objective
    x, y = _digits_like()
    dl = DeviceLoader(x, y, 16, padding=1, cutout=3, two_views=two_views, device=CPU, generator=_gen(generator_seed))
    test = DeviceLoader(*_digits_like(40, 1), 64, shuffle=False, augment=False, device=CPU)
    torch.manual_seed(0)
    model = small_cnn(4, 1, width=4)
    if kill_at is not None: _kill_after(model, kill_at)
    obj = get_objective(objective, 4) if isinstance(objective, str) else objective
    history = fit(model, obj, dl, test, epochs=epochs, lr=0.05, seed=3, progress=False, checkpoint=checkpoint)
    return model, history, dl


def test_fit_seeds_the_loader_and_resumes_bit_identically(tmp_path):
    from mixup_lab.train import get_objective, same_weights
    straight, h_straight, dl = _fit("mixup", generator_seed=0, checkpoint=tmp_path / "straight.pt")
    assert len(h_straight) == 4 and np.isfinite(h_straight["train_loss"]).all() and "test_acc" in h_straight
    other, _, _ = _fit("mixup", generator_seed=123)
    assert same_weights(straight, other)  # fit seeded the loader's generator: its initial state does not matter
    state = torch.load(tmp_path / "straight.pt", weights_only=False)
    assert len(state["rng"][0]["loader"]) == 1  # the DeviceLoader's generator is checkpointed
    # 72 images in batches of 16 (the last of 8 kept): 5 steps per epoch; killed in epoch 3
    with pytest.raises(RuntimeError, match="killed"):
        _fit("mixup", generator_seed=5, checkpoint=tmp_path / "run.pt", kill_at=12)
    assert torch.load(tmp_path / "run.pt", weights_only=False)["epoch"] == 2
    torch.manual_seed(77)  # scrambled global RNG: the resume must not depend on it
    resumed, h_resumed, _ = _fit("mixup", generator_seed=99, checkpoint=tmp_path / "run.pt")
    assert same_weights(resumed, straight)
    pd.testing.assert_frame_equal(h_resumed.drop(columns="time"), h_straight.drop(columns="time"))


def test_fit_with_two_views_for_synermix():
    model, history, _ = _fit("synermix", generator_seed=0, epochs=1, two_views=True)
    assert np.isfinite(history["train_loss"]).all()


def test_evaluation_refuses_a_loader_under_ddp_only():
    from mixup_lab.train import _eval_loader
    dl = DeviceLoader(_images(8), torch.zeros(8, dtype=torch.long), 4, device=CPU)
    assert _eval_loader(dl, 4, 0, 1) is dl
    with pytest.raises(ValueError, match="needs the test Dataset"): _eval_loader(dl, 4, 0, 2)
