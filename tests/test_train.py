"API-level tests of mixup_lab.train: objectives by name, bitwise determinism, exact resume, evaluation, errors."
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings, strategies as st
from torch.utils.data import DataLoader, TensorDataset

from mixup_lab.core import ERM
from mixup_lab.train import (METHOD_CLASSES, OBJECTIVES, _train_loader, evaluate, fit, get_objective,
                             objective_generators, resolve_corruptions, same_weights, stream_seed, to_device)

HERE = Path(__file__).resolve().parent


def _available(name):
    return name == "erm" or importlib.util.find_spec(f"mixup_lab.{METHOD_CLASSES[name][0]}") is not None


def _data(n=72, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.5 + y.view(-1, 1, 1, 1) * 0.1  # learnable: class shifts intensity
    return TensorDataset(x, y)


def _model():
    from mixup_lab.models import small_cnn
    torch.manual_seed(0)
    return small_cnn(4, 1, width=4)


def _fit(objective="mixup", epochs=2, seed=0, **kwargs):
    model = _model()
    obj = get_objective(objective, 4) if isinstance(objective, str) else objective
    kwargs = {"batch_size": 16, "lr": 0.05, "progress": False, **kwargs}
    history = fit(model, obj, _data(), _data(40, seed=1), epochs=epochs, seed=seed, **kwargs)
    return model, history


# ---------------------------------------------------------------- get_objective
def test_get_objective_unknown_name_lists_all():
    with pytest.raises(ValueError, match="name must be one of.*'erm'.*'synermix_intra'.*'sem'"):
        get_objective("mixpu", 10)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: get_objective("erm", 10, alpha=1.0), TypeError, "no hyperparameters"),
    (lambda: get_objective("mixup", 10, alhpa=1.0), TypeError, "unexpected keyword.*alhpa"),
    (lambda: get_objective("mixup", 0), ValueError, "num_classes"),
    (lambda: get_objective("synermix_intra", 10, inter="mixup"), TypeError, "synermix_intra"),
    (lambda: get_objective("synermix_intra", 10, beta=1.5), ValueError, "beta"),
    (lambda: get_objective("synermix", 10, inter="cutmix"), ValueError, "inter must be one of"),
    (lambda: get_objective("sem", 10, mixer="erm"), ValueError, "mixer must be one of"),
])
def test_get_objective_errors(call, exc, match):
    try:
        with pytest.raises(exc, match=match):
            call()
    except ModuleNotFoundError as e:  # that method's notebook is not exported yet
        pytest.skip(str(e))


@pytest.mark.parametrize("name", OBJECTIVES)
def test_every_objective_trains_one_step(name):
    if not _available(name): pytest.skip(f"mixup_lab.{METHOD_CLASSES[name][0]} is not there yet")
    objective = get_objective(name, 4)
    model = _model()
    x, y = _data(16)[:]
    loss = objective.loss(model, x, y)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_get_objective_forwards_hyperparameters():
    m = get_objective("mixup", 5, alpha=0.3, prob=0.5)
    assert (m.alpha, m.prob, m.num_classes) == (0.3, 0.5, 5)
    if _available("synermix"):
        s = get_objective("synermix", 5, inter="mixup", alpha=0.4, beta=0.2)
        assert s.beta == 0.2 and s.inter.alpha == 0.4
        intra = get_objective("synermix_intra", 5)
        assert (intra.beta, intra.inter) == (0.5, None)  # the paper's w-RA
        assert get_objective("synermix_intra", 5, beta=0.3).beta == 0.3


# ---------------------------------------------------------------- randomness
def test_objective_generators_fill_and_share():
    if not _available("synermix"): pytest.skip("synermix not there yet")
    obj = get_objective("synermix", 4, inter="mixup")
    g = torch.Generator()
    found = objective_generators(obj, fill=g)
    assert found == [g] and obj.generator is g and obj.inter.generator is g
    assert objective_generators(ERM(3), fill=g) == []


@settings(deadline=None, max_examples=50)
@given(st.integers(0, 2**40), st.integers(0, 50), st.integers(0, 50))
def test_stream_seed_streams_differ(seed, a, b):
    assert 0 <= stream_seed(seed, a) < 2**63
    assert (stream_seed(seed, a) == stream_seed(seed, b)) == (a == b)


@settings(deadline=None, max_examples=50)
@given(st.integers(2, 60), st.integers(2, 20))
def test_train_loader_never_yields_a_single_sample(n, batch_size):
    ds = TensorDataset(torch.zeros(n, 2), torch.zeros(n, dtype=torch.long))
    sizes = [len(y) for _, y in _train_loader(ds, batch_size, 0, 0, 1, 0, torch.device("cpu"))]
    assert min(sizes) >= 2
    assert sum(sizes) >= n - 1


def test_same_seed_bit_identical_history_and_weights():
    m1, h1 = _fit(seed=5)
    m2, h2 = _fit(seed=5)
    m3, _ = _fit(seed=6)
    pd.testing.assert_frame_equal(h1.drop(columns="time"), h2.drop(columns="time"))
    assert same_weights(m1, m2) and not same_weights(m1, m3)


def test_passing_a_generator_does_not_change_the_run():
    a = get_objective("mixup", 4)
    b = get_objective("mixup", 4, generator=torch.Generator().manual_seed(999))
    ma, ha = _fit(a, seed=2)
    mb, hb = _fit(b, seed=2)
    assert same_weights(ma, mb)


def test_evaluation_frequency_does_not_change_training():
    m1, _ = _fit(epochs=3, eval_every=1)
    m2, h2 = _fit(epochs=3, eval_every=3)
    assert same_weights(m1, m2)
    assert h2.test_acc.isna().tolist() == [True, True, False]


@pytest.mark.parametrize("balanced", [False, True])
def test_dataloader_input_is_reseeded(balanced):
    if balanced and not _available("synermix"): pytest.skip("synermix not there yet")
    def run(seed):
        model = _model()
        if balanced:
            from mixup_lab.synermix import BalancedBatchSampler
            sampler = BalancedBatchSampler(_data().tensors[1], 16, generator=torch.Generator().manual_seed(seed))
            dl = DataLoader(_data(), batch_sampler=sampler)
        else:
            dl = DataLoader(_data(), batch_size=16, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(seed))
        fit(model, get_objective("mixup", 4), dl, epochs=2, lr=0.05, seed=1, progress=False)
        return model
    assert same_weights(run(0), run(123))  # fit's seed decides, not the generator's state


# ---------------------------------------------------------------- checkpoint / resume
class Killer:
    "Raises after `steps` loss calls, like a process killed in the middle of an epoch."
    def __init__(self, objective, steps): self.objective, self.steps = objective, steps
    def loss(self, model, x, y):
        self.steps -= 1
        if self.steps < 0: raise RuntimeError("killed")
        return self.objective.loss(model, x, y)


def _resume_job(checkpoint, out, threads):
    "Run in a fresh process: new objects, scrambled global RNGs, resume to 4 epochs, save the result."
    import random
    torch.set_num_threads(threads)  # the parent's count: float reductions depend on how work is split
    torch.manual_seed(77); np.random.seed(77); random.seed(77)
    model, history = _fit("mixup", epochs=4, seed=3, checkpoint=checkpoint)
    torch.save({"state": model.state_dict(), "history": history}, out)


def test_killed_run_resumes_bit_identically_in_a_fresh_process(tmp_path):
    straight, h_straight = _fit("mixup", epochs=4, seed=3, checkpoint=tmp_path / "straight.pt")
    # 72 training samples in batches of 16: 5 steps per epoch; die in the middle of epoch 3
    with pytest.raises(RuntimeError, match="killed"):
        _fit(Killer(get_objective("mixup", 4), steps=12), epochs=4, seed=3, checkpoint=tmp_path / "run.pt")
    assert torch.load(tmp_path / "run.pt", weights_only=False)["epoch"] == 2
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import test_train; "
            f"test_train._resume_job({str(tmp_path / 'run.pt')!r}, {str(tmp_path / 'out.pt')!r}, {torch.get_num_threads()})")
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=HERE.parent)
    resumed = torch.load(tmp_path / "out.pt", weights_only=False)
    straight_state = straight.state_dict()
    assert resumed["state"].keys() == straight_state.keys()
    assert all(torch.equal(resumed["state"][k], straight_state[k]) for k in straight_state)
    pd.testing.assert_frame_equal(resumed["history"].drop(columns="time"), h_straight.drop(columns="time"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.pt", "run.pt", "straight.pt"]  # no temp files


def test_checkpoint_with_other_settings_is_refused(tmp_path):
    _fit("erm", epochs=1, checkpoint=tmp_path / "c.pt")
    with pytest.raises(ValueError, match="lr: checkpoint 0.05 vs now 0.1"):
        _fit("erm", epochs=1, lr=0.1, checkpoint=tmp_path / "c.pt")
    _, h = _fit("erm", epochs=1, checkpoint=tmp_path / "c.pt")  # finished: returns its history
    assert len(h) == 1


def test_checkpoint_holds_every_rng_state(tmp_path):
    _fit("mixup", epochs=1, checkpoint=tmp_path / "c.pt")
    state = torch.load(tmp_path / "c.pt", weights_only=False)
    assert set(state) >= {"model", "optimizer", "scheduler", "epoch", "history", "rng", "config"}
    assert set(state["rng"][0]) == {"python", "numpy", "torch", "cuda", "objective", "loader"}
    assert len(state["rng"][0]["objective"]) == 1 and len(state["rng"][0]["loader"]) == 1


# ---------------------------------------------------------------- batches, evaluation
def test_nested_two_view_batches_reach_the_objective():
    seen = []
    class Probe(ERM):
        def loss(self, model, x, y):
            seen.append(isinstance(x, (tuple, list)) and all(isinstance(v, torch.Tensor) for v in x))
            return super().loss(model, x[0], y)
    from mixup_lab.data import TwoViews
    train = TwoViews(_data(), augment=lambda t: t.flip(-1))
    fit(_model(), Probe(4), train, TwoViews(_data(20)), epochs=1, batch_size=16, progress=False)
    assert seen and all(seen)


def test_to_device_keeps_structure():
    batch = ((torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)), torch.tensor([0, 1]))
    moved = to_device(batch, "cpu", channels_last=True)
    assert isinstance(moved[0], tuple) and moved[0][1].is_contiguous(memory_format=torch.channels_last)
    assert moved[1].dtype == torch.long


def test_evaluate_matches_manual_computation():
    model = _model().eval()
    ds = _data(30)
    x, y = ds[:]
    with torch.no_grad():
        logits = model(x)
    expected_acc = (logits.argmax(1) == y).float().mean().item()
    expected_loss = nn.functional.cross_entropy(logits, y).item()
    out = evaluate(model, ds, "cpu", batch_size=7)
    assert out["acc"] == pytest.approx(expected_acc) and out["loss"] == pytest.approx(expected_loss, rel=1e-5)
    soft = TensorDataset(x, nn.functional.one_hot(y, 4).float())
    assert evaluate(model, soft, "cpu")["acc"] == pytest.approx(expected_acc)


def test_corruption_columns():
    assert len(resolve_corruptions("all")) == 5 * len(__import__("mixup_lab.data", fromlist=["x"]).CORRUPTIONS)
    _, h = _fit("erm", epochs=1, corruptions=[("contrast", 2), ("gaussian_blur", 1)])
    assert {"acc_contrast_2", "acc_gaussian_blur_1", "corrupt_acc"} <= set(h.columns)
    with pytest.raises(ValueError, match="severity must be an int in"):
        resolve_corruptions([("contrast", 9)])
    with pytest.raises(ValueError, match="corruption name must be one of"):
        resolve_corruptions([("snow", 1)])


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"schedule": "linear"}, ValueError, "schedule must be one of"),
    ({"amp": True}, ValueError, "needs a CUDA device"),
    ({"epochs": 0}, ValueError, "epochs must be an int >= 1"),
    ({"lr": -1.0}, ValueError, "lr must be"),
    ({"device": "cuda"}, ValueError, "CUDA is not available"),
])
def test_fit_argument_errors(kwargs, exc, match):
    if kwargs.get("device") == "cuda" and torch.cuda.is_available(): pytest.skip("CUDA present")
    with pytest.raises(exc, match=match):
        _fit("erm", **{"epochs": 1, **kwargs})


def test_fit_rejects_non_objectives_and_orphan_corruptions():
    with pytest.raises(TypeError, match=r"loss\(model, x, y\)"):
        fit(_model(), object(), _data(), progress=False)
    with pytest.raises(ValueError, match="corruptions need test_data"):
        fit(_model(), ERM(), _data(), corruptions=[("contrast", 1)], progress=False)
