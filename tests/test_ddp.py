"fit under torch.distributed: two Gloo processes on the CPU, as torchrun would launch them."
import os
import socket

import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import TensorDataset

from _models import kill_after

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    return TensorDataset(torch.rand(n, 1, 8, 8, generator=g) + y.view(-1, 1, 1, 1) * 0.1, y)


def _train(tmp, tag, port, kill_at=None, epochs=3):
    from mixup_lab.models import small_cnn
    from mixup_lab.train import fit, get_objective
    # torchrun's environment: fit initialises (and afterwards destroys) the process group itself
    os.environ["MASTER_PORT"] = str(port)
    torch.manual_seed(int(os.environ["RANK"]))  # different initial weights: DDP must start from rank 0's
    model = small_cnn(4, 1, width=4)
    if kill_at is not None: kill_after(model, kill_at)
    objective = get_objective("mixup", 4)
    history = fit(model, objective, _data(100, 0), _data(31, 1), epochs=epochs, batch_size=12, lr=0.05, seed=4,
                  device="cpu", progress=False, checkpoint=os.path.join(tmp, f"{tag}.pt"))
    return model, history, objective.generator.get_state()


def _worker(rank, tmp, ports):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1")
    torch.set_num_threads(1)
    model, history, gen = _train(tmp, "straight", ports[0])
    torch.save({"state": model.state_dict(), "history": history, "gen": gen}, os.path.join(tmp, f"straight{rank}.pt"))
    # killed in epoch 3 on both ranks (100 samples / 2 ranks / batch 12: 5 steps per epoch), then resumed with
    # fresh objects (one spawn only: each new process pays torch's import of DDP's dependencies again)
    try:
        _train(tmp, "killed", ports[1], kill_at=11)
    except RuntimeError as e:
        assert "killed" in str(e)
    assert not dist.is_initialized()
    torch.save(torch.load(os.path.join(tmp, "killed.pt"), weights_only=False)["epoch"], os.path.join(tmp, "killed_epoch.pt"))
    torch.manual_seed(99)
    model, history, _ = _train(tmp, "killed", ports[2])
    torch.save({"state": model.state_dict(), "history": history}, os.path.join(tmp, f"resumed{rank}.pt"))


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_gloo_processes_agree_and_resume_exactly(tmp_path):
    if not dist.is_gloo_available(): pytest.skip("Gloo backend not available")
    ports = [_free_port() for _ in range(3)]
    mp.spawn(_worker, args=(str(tmp_path), ports), nprocs=WORLD, join=True)
    r0, r1 = (torch.load(tmp_path / f"straight{r}.pt", weights_only=False) for r in range(WORLD))
    assert _same(r0["state"], r1["state"])  # identical weights and buffers on both ranks
    pd.testing.assert_frame_equal(r0["history"].drop(columns="time"), r1["history"].drop(columns="time"))
    assert not torch.equal(r0["gen"], r1["gen"])  # each rank mixed its own batches with its own generator
    ckpt = torch.load(tmp_path / "straight.pt", weights_only=False)
    assert len(ckpt["rng"]) == WORLD and ckpt["config"]["world_size"] == WORLD
    assert _same(ckpt["model"], r0["state"])
    assert torch.load(tmp_path / "killed_epoch.pt") == 2  # the kill left epoch 2's checkpoint
    for r in range(WORLD):
        resumed = torch.load(tmp_path / f"resumed{r}.pt", weights_only=False)
        assert _same(resumed["state"], r0["state"])
        pd.testing.assert_frame_equal(resumed["history"].drop(columns="time"), r0["history"].drop(columns="time"))
