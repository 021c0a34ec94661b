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
            "mixup_cutmix": mixup_cutmix(4, generator=torch.Generator().manual_seed(0))}


def _equal(a, b): return all(torch.equal(u, v) for (u, s), (v, t) in zip(a, b)) and all(torch.equal(s, t) for (_, s), (_, t) in zip(a, b))


@pytest.mark.parametrize("name", ["mixup", "cutmix", "zeta", "mixup_cutmix"])
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
