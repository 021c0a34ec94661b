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

from _models import kill_after
from mixup_lab.core import ERM
from mixup_lab.train import (METHOD_CLASSES, OBJECTIVES, CheckpointError, NonFiniteLossError, _owner, _train_loader,
                             _umask, atomic_write, auto_num_workers, evaluate, fit, get_objective, objective_generators,
                             remove_stale_temporaries, resolve_corruptions, resolve_device, same_weights, stream_seed,
                             to_device)

HERE = Path(__file__).resolve().parent


def _available(name):
    return name == "erm" or importlib.util.find_spec(f"mixup_lab.{METHOD_CLASSES[name][0]}") is not None


def _data(n=72, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.5 + y.view(-1, 1, 1, 1) * 0.1  # learnable: class shifts intensity
    return TensorDataset(x, y)


def _model(width=4):
    from mixup_lab.models import small_cnn
    torch.manual_seed(0)
    return small_cnn(4, 1, width=width)


def _fit(objective="mixup", epochs=2, seed=0, kill_at=None, train=None, width=4, **kwargs):
    model = _model(width)
    if kill_at is not None: kill_after(model, kill_at)
    obj = get_objective(objective, 4) if isinstance(objective, str) else objective
    kwargs = {"batch_size": 16, "lr": 0.05, "progress": False, **kwargs}
    history = fit(model, obj, _data() if train is None else train, _data(40, seed=1), epochs=epochs, seed=seed, **kwargs)
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
        _fit("mixup", epochs=4, seed=3, checkpoint=tmp_path / "run.pt", kill_at=12)
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
    _, h = _fit("erm", epochs=1, checkpoint=tmp_path / "c.pt", eval_every=3, progress=True)  # evaluation settings may change
    assert len(h) == 1


@pytest.mark.parametrize("change, field", [
    (dict(objective="cutmix"), "objective.class: checkpoint 'mixup_lab.mixup.Mixup' vs now 'mixup_lab.cutmix.CutMix'"),
    (dict(objective=get_objective("mixup", 4, alpha=0.3)), "objective.alpha: checkpoint 1.0 vs now 0.3"),
    (dict(train=TensorDataset(*_data(60)[:])), "train_data.size: checkpoint 72 vs now 60"),
    (dict(train=TensorDataset(_data()[:][0], _data()[:][1].flip(0))), "train_data.labels"),
    (dict(width=6), "model.layout"),
    (dict(epochs=3), "fit.epochs: checkpoint 2 vs now 3"),
    (dict(seed=1), "fit.seed: checkpoint 0 vs now 1"),
    (dict(identity={"dataset": "cifar10"}), "identity"),
])
def test_checkpoint_of_another_configuration_is_refused(tmp_path, change, field):
    "issue 11.3: a finished mixup checkpoint must not be resumed (or returned) as another run."
    _fit("mixup", epochs=2, checkpoint=tmp_path / "c.pt")
    with pytest.raises(CheckpointError) as info:
        _fit(**{"objective": "mixup", "epochs": 2, "checkpoint": tmp_path / "c.pt", **change})
    message = str(info.value)
    assert field in message and str(tmp_path / "c.pt") in message and "start fresh" in message and "delete it" in message


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "folder", "not_ours"])
def test_damaged_checkpoint_names_the_file(tmp_path, damage):
    "issue 11.4: no bare EOFError / UnpicklingError / OSError."
    ckpt = tmp_path / "c.pt"
    _fit("erm", epochs=1, checkpoint=ckpt)
    whole = ckpt.read_bytes()
    if damage == "truncated": ckpt.write_bytes(whole[: len(whole) // 3])
    elif damage == "empty": ckpt.write_bytes(b"")
    elif damage == "garbage": ckpt.write_bytes(b"\x80\x03 this is not a checkpoint")
    elif damage == "folder": ckpt.unlink(); ckpt.mkdir()
    else: torch.save([1, 2, 3], ckpt)
    with pytest.raises(CheckpointError, match="delete it or move it aside") as info:
        _fit("erm", epochs=1, checkpoint=ckpt)
    assert str(ckpt) in str(info.value)


# ---------------------------------------------------------------- runs that fail loudly
def test_an_epoch_without_batches_is_refused():
    "issue 11.1: a 1-sample dataset gave train_loss 0.0 and untouched weights."
    one = TensorDataset(*_data(1)[:])
    with pytest.raises(ValueError, match=r"yields no batch \(1 sample\(s\), batch_size=16\)"):
        _fit("erm", epochs=1, train=one)
    with pytest.raises(ValueError, match="yields no batch"):
        _fit("erm", epochs=1, train=TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long)))
    with pytest.raises(ValueError, match=r"DataLoader yields no batch \(72 sample\(s\), batch_size=100, drop_last=True\)"):
        _fit("erm", epochs=1, train=DataLoader(_data(), batch_size=100, drop_last=True))


def _poisoned(n=72):
    x, y = _data(n)[:]
    x = x.clone()
    x[5, 0, 2, 2] = float("nan")
    return TensorDataset(x, y)


def test_a_nan_pixel_stops_the_run_naming_epoch_and_cause(tmp_path):
    "issue 11.2 and 12: one NaN pixel gave NaN weights and a plausible-looking history."
    with pytest.raises(NonFiniteLossError) as info:
        _fit("mixup", epochs=3, train=_poisoned(), checkpoint=tmp_path / "c.pt")
    e = info.value
    assert e.epoch == 1 and 1 <= e.step <= 5 and e.history == []
    assert "epoch 1" in str(e) and "check_finite=True" in str(e) and "diverged" in str(e)
    assert "a NaN or ±inf in the training data is the likely cause" in str(e)  # issue 12: the failure names the cause
    assert not (tmp_path / "c.pt").exists()  # no checkpoint of a diverged epoch
    assert isinstance(e, FloatingPointError)


def test_weights_going_non_finite_are_caught_even_with_a_finite_loss():
    with pytest.raises(NonFiniteLossError, match="weights became NaN or infinite|loss became NaN") as info:
        _fit("erm", epochs=3, lr=1e6)
    assert info.value.epoch in (1, 2, 3)
    assert "learning rate too high for this model and method (lr=1000000.0)" in str(info.value)


def test_check_finite_names_the_batch():
    # core.check_finite (fit's own check was folded into it): the batch, the epoch, the counts and the rows
    with pytest.raises(ValueError, match=r"x of training batch \d of epoch 1 has 1 non-finite value\(s\) of \d+ "
                                         r"\(1 NaN, 0 ±Inf\) in 1 of 16 rows \[\d+\]"):
        _fit("mixup", epochs=1, train=_poisoned(), check_finite=True)
    m1, h1 = _fit("mixup", epochs=1, check_finite=True)  # clean data: the check changes nothing
    m2, h2 = _fit("mixup", epochs=1)
    assert same_weights(m1, m2)


def test_diverged_run_while_check_finite_blames_the_optimisation():
    with pytest.raises(NonFiniteLossError, match="check_finite=True found no non-finite input"):
        _fit("erm", epochs=3, lr=1e6, check_finite=True)


def test_compile_keeps_the_run_bit_identical():
    "compile=True compiles in place (class, state_dict keys, split_model unchanged); the eager backend is exact."
    m1, h1 = _fit("mixup", epochs=1, compile={"backend": "eager"})
    m2, h2 = _fit("mixup", epochs=1)
    assert type(m1) is type(m2) and list(m1.state_dict()) == list(m2.state_dict())
    assert same_weights(m1, m2)
    pd.testing.assert_frame_equal(h1.drop(columns="time"), h2.drop(columns="time"))
    if _available("snapmix"):  # a model-aware method still reaches into the compiled model's parts
        _fit("snapmix", epochs=1, compile={"backend": "eager"})
    if _available("manifold"):  # hooks registered at every step cannot work under a compiled forward: said up front
        with pytest.raises(ValueError, match="compile=True compiles the model's forward pass, which ignores the forward hooks"):
            _fit("manifold", epochs=1, compile={"backend": "eager"})


# ---------------------------------------------------------------- files, devices, loaders
def test_atomic_write_uses_the_umask_and_cleans_up(tmp_path):
    "issue 9: records were written with mode 0600 (mkstemp)."
    path = atomic_write(tmp_path / "r.json", lambda t: Path(t).write_text("{}"))
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()
    with pytest.raises(ZeroDivisionError):
        atomic_write(tmp_path / "s.json", lambda t: 1 / 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_remove_stale_temporaries(tmp_path):
    "issue 11.8: a kill during a write leaves a hidden temporary file."
    dead = subprocess.Popen([sys.executable, "-c", "pass"]); dead.wait()
    host = _owner().rsplit("-", 1)[0]
    killed = tmp_path / f".r.json.{host}-{dead.pid}.abcd1234.tmp"
    old_elsewhere = tmp_path / ".r.json.otherhost-77.abcd1234.tmp"
    fresh_elsewhere = tmp_path / ".s.json.otherhost-77.abcd1234.tmp"
    live = tmp_path / f".t.json.{_owner()}.abcd1234.tmp"
    for p in (killed, old_elsewhere, fresh_elsewhere, live): p.touch()
    os.utime(old_elsewhere, (1e9, 1e9))
    assert sorted(p.name for p in remove_stale_temporaries(tmp_path)) == sorted([killed.name, old_elsewhere.name])
    assert fresh_elsewhere.exists() and live.exists()


def test_resolve_device_and_workers_on_this_machine():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():  # no GPU here: 'auto' is the CPU, quietly
        assert resolve_device("auto") == torch.device("cpu")
    assert auto_num_workers(_data(), "cuda") == 0  # in-memory tensors: no workers
    assert auto_num_workers(DataLoader(_data()), "cpu") == 0


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
    ({"epochs": 2.0}, TypeError, r"epochs must be an int >= 1, got 2.0 \(float\)"),  # core.check_int: a type error
    ({"seed": np.int64(3)}, None, None),  # NumPy integers are integers
    ({"lr": -1.0}, ValueError, "lr must be"),
    ({"device": "cuda"}, ValueError, "CUDA is not available"),
    ({"compile": "yes"}, TypeError, "compile must be True, False or a dict"),
    ({"check_finite": 1}, TypeError, "check_finite must be True or False"),
    ({"identity": {"x": object()}}, TypeError, "identity must be JSON-storable"),
    ({"num_workers": -1}, ValueError, "num_workers must be 'auto' or an int >= 0"),
    ({"channels_last": "yes"}, ValueError, "channels_last must be one of"),
])
def test_fit_argument_errors(kwargs, exc, match):
    if kwargs.get("device") == "cuda" and torch.cuda.is_available(): pytest.skip("CUDA present")
    if exc is None:  # accepted
        _fit("erm", **{"epochs": 1, **kwargs})
        return
    with pytest.raises(exc, match=match):
        _fit("erm", **{"epochs": 1, **kwargs})


def test_fit_rejects_non_objectives_and_orphan_corruptions():
    with pytest.raises(TypeError, match=r"loss\(model, x, y\)"):
        fit(_model(), object(), _data(), progress=False)
    with pytest.raises(ValueError, match="corruptions need test_data"):
        fit(_model(), ERM(), _data(), corruptions=[("contrast", 1)], progress=False)
