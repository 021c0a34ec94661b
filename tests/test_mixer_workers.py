"Mixers inside DataLoader workers (issue 10, bugs 6 and 7): each worker its own stream, reproducible, and spawn/forkserver pickling."
import copy
import multiprocessing
import pickle

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from mixup_lab.core import PicklableGenerators, RandomChoice
from mixup_lab.cutmix import CutMix, mixup_cutmix
from mixup_lab.manifold import ManifoldMixup
from mixup_lab.mixup import Mixup
from mixup_lab.sem import SemanticEquivariantMixup
from mixup_lab.zeta import ZetaMixup
from mixup_lab.data import Cutout
from mixup_lab.fmix import FMix
from mixup_lab.resizemix import ResizeMix
from mixup_lab.saliencymix import SaliencyMix
from mixup_lab.snapmix import SnapMix
from mixup_lab.synermix import BalancedBatchSampler, SynerMix

# every batch of 8 holds the same 8 images, so two batches come out equal exactly when they were mixed with equal draws
B = 8
DATA = TensorDataset(torch.arange(float(B)).view(B, 1, 1, 1).expand(B, 1, 6, 6).repeat(B, 1, 1, 1), (torch.arange(B) % 4).repeat(B))


def _run(mixer, context=None, seed=1, workers=2, epochs=1):
    loader = DataLoader(DATA, batch_size=B, num_workers=workers, collate_fn=mixer.collate, multiprocessing_context=context,
                        generator=torch.Generator().manual_seed(seed))
    return [batch for _ in range(epochs) for batch in loader]


def _mixers():
    return {"mixup": Mixup(1.0, num_classes=4, generator=torch.Generator().manual_seed(0)),
            "cutmix": CutMix(1.0, num_classes=4, generator=torch.Generator().manual_seed(0)),
            "zeta": ZetaMixup(2.0, num_classes=4, generator=torch.Generator().manual_seed(0)),
            "mixup_cutmix": mixup_cutmix(4, generator=torch.Generator().manual_seed(0)),
            # the family mixers drew their plans from the generator itself, so both workers mixed alike (fixed by G)
            "fmix": FMix(num_classes=4, generator=torch.Generator().manual_seed(0)),
            "resizemix": ResizeMix(num_classes=4, generator=torch.Generator().manual_seed(0)),
            "saliencymix": SaliencyMix(num_classes=4, generator=torch.Generator().manual_seed(0))}


def _equal(a, b): return all(torch.equal(u, v) for (u, s), (v, t) in zip(a, b)) and all(torch.equal(s, t) for (_, s), (_, t) in zip(a, b))


@pytest.mark.parametrize("name", ["mixup", "cutmix", "zeta", "mixup_cutmix", "fmix", "resizemix", "saliencymix"])
def test_fork_workers_draw_their_own_streams(name):
    "Bug 6: with 2 workers batches 0 and 1 were mixed identically (each worker had a copy of the same generator state)."
    batches = _run(_mixers()[name], "fork")
    xs = [x for x, _ in batches]  # batches 0, 2, 4, 6 come from worker 0, batches 1, 3, 5, 7 from worker 1
    assert all(not torch.equal(xs[i], xs[i + 1]) for i in (0, 2, 4, 6))  # the two workers draw differently
    assert not torch.equal(xs[0], xs[2])  # and a worker's successive batches too
    assert _equal(batches, _run(_mixers()[name], "fork"))  # reproducible
    other = _run(_mixers()[name], "fork", seed=2)
    assert not all(torch.equal(a, b) for a, (b, _) in zip(xs, other))  # another loader seed: other draws
    two = _run(_mixers()[name], "fork", epochs=2)
    assert not all(torch.equal(two[i][0], two[i + 8][0]) for i in range(8))  # each epoch's workers draw new numbers


def test_main_process_is_unchanged():
    "Without workers the collate_fn draws from the mixer's generator itself: the same batches as calling the mixer."
    direct = Mixup(1.0, num_classes=4, generator=torch.Generator().manual_seed(0))
    expected = [direct(x, y) for x, y in DataLoader(DATA, batch_size=B)]
    assert _equal(_run(Mixup(1.0, num_classes=4, generator=torch.Generator().manual_seed(0)), workers=0), expected)


def test_pickled_mixers_keep_their_state_and_shared_generators():
    "Bug 7: spawn/forkserver workers got the generator through shared memory; now its state travels as bytes."
    import torch.multiprocessing  # noqa: F401  (PyTorch's reducers)
    from multiprocessing.reduction import ForkingPickler
    g = torch.Generator().manual_seed(0)
    objects = [Mixup(1.0, num_classes=4, generator=g), CutMix(num_classes=4, generator=g), ZetaMixup(num_classes=4, generator=g),
               ManifoldMixup(generator=g), SemanticEquivariantMixup(Mixup(1.0, num_classes=4, generator=g)),
               mixup_cutmix(4, generator=g)]
    x, y = torch.rand(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 0, 1])
    for obj in objects:
        assert isinstance(obj, PicklableGenerators)
        data = bytes(ForkingPickler.dumps(obj))
        assert b"rebuild_storage" not in data, type(obj).__name__
        copy_ = pickle.loads(data)
        if isinstance(obj, (Mixup, CutMix, ZetaMixup, RandomChoice)):
            assert _equal([copy_(x, y)], [copy.deepcopy(obj)(x, y)])
    both = pickle.loads(pickle.dumps(objects[-1]))
    assert both.generator is both.mixers[0].generator is both.mixers[1].generator  # still one shared stream


@pytest.mark.parametrize("context", ["spawn", "forkserver"])
def test_spawn_and_forkserver_workers(context):
    "Bug 7 end to end: spawn/forkserver workers crashed with a generator-holding mixer; they now give the fork workers' batches."
    if context not in multiprocessing.get_all_start_methods(): pytest.skip(f"no {context} on this platform")
    mixer = mixup_cutmix(4, generator=torch.Generator().manual_seed(0))
    batches = _run(mixer, context)
    assert len(batches) == 8 and not torch.equal(batches[0][0], batches[1][0])
    assert _equal(batches, _run(mixup_cutmix(4, generator=torch.Generator().manual_seed(0)), "fork"))


class _CutoutImages(torch.utils.data.Dataset):
    "Eight images of ones, each cut by a seeded Cutout transform, as a dataset pipeline does it."
    def __init__(self, cutout): self.cutout = cutout
    def __len__(self): return 8
    def __getitem__(self, i): return self.cutout(torch.ones(1, 6, 6)), 0


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_cutout_draws_its_own_stream_in_each_worker(context):
    "A seeded Cutout as a dataset transform: each worker cut the same holes (a copy of one generator); now a stream each."
    if context not in multiprocessing.get_all_start_methods(): pytest.skip(f"no {context} on this platform")
    def holes(seed=1):
        loader = DataLoader(_CutoutImages(Cutout(3, torch.Generator().manual_seed(0))), batch_size=2, num_workers=2,
                            multiprocessing_context=context, generator=torch.Generator().manual_seed(seed))
        return [x for x, _ in loader]  # batches 0 and 2 from worker 0, batches 1 and 3 from worker 1
    first = holes()
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[2], first[3])
    assert all(torch.equal(a, b) for a, b in zip(first, holes()))  # reproducible
    assert not all(torch.equal(a, b) for a, b in zip(first, holes(seed=2)))  # the loader's seed gives new draws
    main = DataLoader(_CutoutImages(Cutout(3, torch.Generator().manual_seed(0))), batch_size=2)
    direct = Cutout(3, torch.Generator().manual_seed(0))
    assert all(torch.equal(x, torch.stack([direct(torch.ones(1, 6, 6)) for _ in range(2)])) for x, _ in main)


def _cam_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(4, 4))


def _pickled(obj):
    "What spawn/forkserver workers and executors receive: PyTorch's multiprocessing pickler, then plain unpickling."
    import torch.multiprocessing  # noqa: F401  (PyTorch's reducers)
    from multiprocessing.reduction import ForkingPickler
    data = bytes(ForkingPickler.dumps(obj))
    assert b"_restore_generator" in data, type(obj).__name__  # the generator travels as state bytes (core.PicklableGenerators)
    return pickle.loads(data)


def test_generator_holders_pickle_and_continue_the_same_stream():
    "SnapMix, SynerMix, its BalancedBatchSampler and Cutout: a pickled copy continues the stream where the original is."
    x, y = torch.rand(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 0, 1])
    net = _cam_net()
    snap = SnapMix(4, generator=torch.Generator().manual_seed(0))
    snap.plan(net, x, y)  # part-way through its stream
    a, b = _pickled(snap).plan(net, x, y), copy.deepcopy(snap).plan(net, x, y)
    assert (a.box_a, a.box_b) == (b.box_a, b.box_b) and torch.equal(a.perm, b.perm) and torch.equal(a.rho_a, b.rho_a)

    g = torch.Generator().manual_seed(1)
    syner = SynerMix(4, beta=0.5, inter=Mixup(1.0, num_classes=4, generator=g), generator=g)
    torch.rand(5, generator=g)  # part-way through its stream (a loss call would also keep its last losses, tensors)
    restored = _pickled(syner)
    assert restored.generator is restored.inter.generator  # still one shared stream
    assert torch.equal(restored.loss(net, x, y), copy.deepcopy(syner).loss(net, x, y))

    sampler = BalancedBatchSampler(torch.arange(24) % 5, 8, generator=torch.Generator().manual_seed(2))
    list(sampler)
    assert list(_pickled(sampler)) == list(copy.deepcopy(sampler))
    chunks = BalancedBatchSampler(torch.arange(24) % 5, 8, mode="chunks", generator=torch.Generator().manual_seed(2))
    assert list(_pickled(chunks)) == list(copy.deepcopy(chunks))

    cut = Cutout(3, torch.Generator().manual_seed(3))
    cut(torch.ones(2, 1, 6, 6))
    assert torch.equal(_pickled(cut)(torch.ones(4, 1, 6, 6)), copy.deepcopy(cut)(torch.ones(4, 1, 6, 6)))

    for mixer in (FMix(num_classes=4, generator=torch.Generator().manual_seed(4)),
                  ResizeMix(num_classes=4, generator=torch.Generator().manual_seed(4)),
                  SaliencyMix(num_classes=4, generator=torch.Generator().manual_seed(4))):
        mixer(x, y)
        assert _equal([_pickled(mixer)(x, y)], [copy.deepcopy(mixer)(x, y)]), type(mixer).__name__


def test_sampler_through_a_spawn_executor():
    "A spawn process pool (what run_grid's executors use) receives the sampler and draws the same epoch as here."
    from concurrent.futures import ProcessPoolExecutor
    sampler = BalancedBatchSampler(torch.arange(30) % 4, 8, generator=torch.Generator().manual_seed(5))
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        there = pool.submit(list, sampler).result()
    assert there == list(sampler)
