"Tests of mixup_lab.experiments: hashable run specs, the crash-safe runner, aggregation, train_run."
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings, strategies as st
from scipy import stats

from mixup_lab.experiments import (Run, aggregate, build_data, grid, load_results, record_path, run_grid,
                                   train_run)

keys = st.sampled_from(["alpha", "gamma", "beta", "prob", "n_mix", "weight"])
values = st.one_of(st.floats(0.01, 10, allow_nan=False), st.integers(1, 8), st.booleans())


@settings(deadline=None, max_examples=50)
@given(st.dictionaries(keys, values, min_size=0, max_size=5), st.randoms(use_true_random=False),
       st.integers(0, 1000))
def test_run_id_ignores_keyword_order_and_roundtrips(kwargs, rnd, seed):
    items = list(kwargs.items())
    rnd.shuffle(items)
    a, b = Run("mixup", kwargs, seed=seed), Run("mixup", dict(items), seed=seed)
    assert a == b and hash(a) == hash(b) and a.run_id == b.run_id
    assert Run.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    assert a.run_id != Run("mixup", kwargs, seed=seed + 1).run_id


def test_run_validation():
    with pytest.raises(ValueError, match="epochs must be an int >= 1"):
        Run("erm", epochs=0)
    with pytest.raises(TypeError, match="kwargs must be a dict"):
        Run("erm", kwargs=[1, 2])
    with pytest.raises(TypeError):
        Run("mixup", {"alpha": object()})
    assert Run("zeta", {"gamma": 2.8}).label == "zeta(gamma=2.8)"


def test_grid_orders_seeds_outermost():
    runs = grid(["erm", ("mixup", {"alpha": 0.2}, "mixup-0.2")], seeds=[3, 4], dataset="digits", epochs=1)
    assert [(r.seed, r.label) for r in runs] == [(3, "erm"), (3, "mixup-0.2"), (4, "erm"), (4, "mixup-0.2")]
    with pytest.raises(ValueError, match="name, \\(name, kwargs\\)"):
        grid([("a", {}, "t", "extra")])


def test_interrupted_grid_resumes_without_duplicates_or_retraining(tmp_path):
    runs = grid(["erm", ("mixup", {"alpha": 1.0})], seeds=[0, 1, 2], epochs=1)
    calls = []

    def train_fn(run, fail_at=None):
        calls.append(run.run_id)
        if len(calls) == fail_at: raise KeyboardInterrupt  # even a Ctrl-C leaves no partial record
        return {"test_acc": 0.1 * run.seed, "history": [{"epoch": 1, "x": float("nan")}]}

    with pytest.raises(KeyboardInterrupt):
        run_grid(runs, tmp_path, lambda r: train_fn(r, fail_at=3), progress=False)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted(f"{r.run_id}.json" for r in runs[:2])
    df = run_grid(list(reversed(runs)) + runs, tmp_path, train_fn, progress=False)
    assert calls[:3] == [r.run_id for r in runs[:3]]
    retrained = calls[3:]
    assert sorted(retrained) == sorted(r.run_id for r in runs[2:])  # the two finished runs were not retrained
    assert len(df) == len(runs) and df.run_id.is_unique
    assert list(df.run_id) == [r.run_id for r in reversed(runs)]  # grid order
    assert len(load_results(tmp_path)) == len(runs)
    rec = json.loads(record_path(tmp_path, runs[0]).read_text())
    assert rec["run"] == runs[0].to_dict() and rec["result"]["history"][0]["x"] is None
    run_grid(runs, tmp_path, train_fn, progress=False)
    assert len(calls) == 3 + 4


def test_run_grid_rejects_bad_results(tmp_path):
    with pytest.raises(TypeError, match="must return a dict"):
        run_grid([Run("erm")], tmp_path, lambda r: 0.5, progress=False)
    with pytest.raises(TypeError, match="cannot store"):
        run_grid([Run("erm")], tmp_path, lambda r: {"model": object()}, progress=False)
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_load_results_flattens_runs_and_results(tmp_path):
    runs = grid([("mixup", {"alpha": 1.0})], seeds=[0], per_class=5)
    run_grid(runs, tmp_path, lambda r: {"test_acc": 0.5, "extra": {"a": 1, "b": 2}}, progress=False)
    row = load_results(tmp_path).iloc[0]
    assert row.method == "mixup" and json.loads(row.kwargs) == {"alpha": 1.0} and row.per_class == 5
    assert (row["extra.a"], row["extra.b"], row.label) == (1, 2, "mixup(alpha=1.0)")


def _table():
    # erm seeds 0..3, mixup seeds 0..2 (seed 3 missing: pairs only over matching seeds), cutmix only on seed 0
    return pd.DataFrame({
        "method": ["erm"] * 4 + ["mixup"] * 3 + ["cutmix"],
        "dataset": ["digits"] * 8,
        "model": ["small_cnn"] * 8,
        "seed": [0, 1, 2, 3, 0, 1, 2, 0],
        "test_acc": [0.90, 0.92, 0.91, 0.95, 0.93, 0.92, 0.95, 0.89]})


def test_aggregate_mean_std_and_paired_interval():
    agg = aggregate(_table()).set_index("label")
    erm = [0.90, 0.92, 0.91, 0.95]
    assert agg.loc["erm", "n"] == 4
    assert agg.loc["erm", "mean"] == pytest.approx(np.mean(erm))
    assert agg.loc["erm", "std"] == pytest.approx(np.std(erm, ddof=1))
    d = np.array([0.93 - 0.90, 0.92 - 0.92, 0.95 - 0.91])  # mean 0.02333, sd 0.020817, n = 3
    half = 4.302652729749464 * d.std(ddof=1) / math.sqrt(3)
    m = agg.loc["mixup"]
    assert m["n_pairs"] == 3 and m["diff"] == pytest.approx(0.0233333333)
    assert (m["diff_lo"], m["diff_hi"]) == (pytest.approx(0.0233333333 - half), pytest.approx(0.0233333333 + half))
    assert half == pytest.approx(0.051712, abs=1e-5)
    assert m["p_value"] == pytest.approx(stats.ttest_rel([0.93, 0.92, 0.95], erm[:3]).pvalue)
    c = agg.loc["cutmix"]
    assert c["n_pairs"] == 1 and c["diff"] == pytest.approx(-0.01) and math.isnan(c["diff_lo"])


def test_aggregate_contexts_baselines_and_errors():
    t = pd.concat([_table(), _table().assign(dataset="cifar10", test_acc=lambda d: d.test_acc - 0.2)])
    agg = aggregate(t)
    assert len(agg) == 6 and set(agg.dataset) == {"digits", "cifar10"}
    mix = agg[agg.label == "mixup"].set_index("dataset")["diff"]
    assert mix["digits"] == pytest.approx(mix["cifar10"])  # differences only within a context
    assert aggregate(_table(), baseline=None)["diff"].isna().all()
    assert aggregate(_table(), metric="test_acc", baseline="mixup").set_index("label").loc["mixup", "diff"] == 0
    with pytest.raises(ValueError, match="not a column"):
        aggregate(_table(), metric="corrupt_acc")
    with pytest.raises(ValueError, match="several rows share"):
        aggregate(pd.concat([_table(), _table()]))
    two_bases = pd.concat([_table(), _table().query("method == 'erm'").assign(label="erm-b")]).assign(
        label=lambda d: d.get("label", d.method).fillna(d.method))
    with pytest.raises(ValueError, match="matches several variants"):
        aggregate(two_bases)


def test_train_run_on_tiny_digits():
    run = Run("mixup", {"alpha": 1.0}, epochs=1, batch_size=32, lr=0.05, per_class=5, seed=1,
              model_kwargs={"width": 4}, corruptions=[("contrast", 3)])
    result = train_run(run)
    assert 0 <= result["test_acc"] <= 1 and 0 <= result["acc_contrast_3"] <= 1
    assert result["corrupt_acc"] == result["acc_contrast_3"]
    assert len(result["history"]) == 1 and result["num_params"] > 0


def test_train_run_synermix_with_two_views_and_balanced_batches():
    run = Run("synermix", {"inter": "mixup"}, epochs=1, batch_size=16, lr=0.05, per_class=4, model_kwargs={"width": 4},
              data_kwargs={"two_views": True, "balanced": True})
    assert len(train_run(run)["history"]) == 1


def test_build_data_errors():
    with pytest.raises(ValueError, match="needs data_root"):
        build_data(Run("erm", dataset="cifar100"))
    with pytest.raises(ValueError, match="dataset must be one of"):
        build_data(Run("erm", dataset="svhn"))
    with pytest.raises(ValueError, match="unknown data_kwargs for digits"):
        build_data(Run("erm", data_kwargs={"cutout": 16}))
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        build_data(Run("erm", dataset="cifar10"), data_root="/nonexistent")


def _fake_folder(root, splits=("train", "test"), classes=("a_bird", "b_bird", "c_bird"), n=4):
    "A tiny class-per-folder dataset of generated PNGs of varied sizes, one colour per class."
    from PIL import Image
    for s in splits:
        for k, c in enumerate(classes):
            (root / s / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = np.zeros((36 + 5 * i, 44 + 3 * k, 3), dtype=np.uint8)
                pixels[..., k] = 200
                pixels[: 4 + i, :, (k + 1) % 3] = 255  # a stripe: crops and flips change the image
                Image.fromarray(pixels).save(root / s / c / f"img{i}.png")
    return root


def test_build_data_image_folder(tmp_path):
    _fake_folder(tmp_path / "birds")
    d = build_data(Run("erm", dataset="folder:birds", data_kwargs={"image_size": 32}), tmp_path)
    assert (d["num_classes"], d["in_channels"], len(d["train"]), len(d["test"])) == (3, 3, 12, 12)
    assert d["train"].classes == ["a_bird", "b_bird", "c_bird"]
    assert d["train"][0][0].shape == (3, 32, 32) and d["test"][11][0].shape == (3, 32, 32)
    x0, y0 = d["test"][0]
    assert torch.equal(d["test"][0][0], x0) and y0 == 0  # the test transform is deterministic (centre crop)
    raw = d["corruption_data"][5][0]
    assert raw.min() >= 0 and raw.max() <= 1  # [0, 1] images for the corruptions, normalised afterwards
    torch.testing.assert_close(d["corruption_normalize"](raw), d["test"][5][0])
    assert d["balanced"] is False and d["train"].transform.transforms[0].size == 37  # round(32 * 8 / 7)
    warped = build_data(Run("erm", dataset="folder:birds", data_kwargs={"image_size": 16, "resize": 20, "warp": True}),
                        tmp_path)
    assert warped["train"].transform.transforms[0].size == (20, 20) and warped["train"][3][0].shape == (3, 16, 16)
    few = build_data(Run("erm", dataset="folder:birds", per_class=2, seed=3, data_kwargs={"image_size": 16}), tmp_path)
    from mixup_lab.experiments import dataset_labels
    assert dataset_labels(few["train"]).bincount().tolist() == [2, 2, 2]


def test_build_data_image_folder_default_size_and_val_split(tmp_path):
    _fake_folder(tmp_path / "planes", splits=("train", "val"), n=1)
    d = build_data(Run("erm", dataset="folder:planes"), str(tmp_path))
    assert d["test"].root == str(tmp_path / "planes" / "val")
    steps = [type(t).__name__ for t in d["train"].transform.transforms]
    assert steps == ["Resize", "RandomCrop", "RandomHorizontalFlip", "ToTensor", "Normalize"]
    assert d["train"].transform.transforms[1].size == (448, 448) and d["train"].transform.transforms[0].size == 512
    assert [type(t).__name__ for t in d["test"].transform.transforms][:2] == ["Resize", "CenterCrop"]
    off = build_data(Run("erm", dataset="folder:planes", data_kwargs={"augment": False}), tmp_path)
    assert "RandomCrop" not in [type(t).__name__ for t in off["train"].transform.transforms]


def test_build_data_image_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="needs data_root.*cub200/train/CLASS"):
        build_data(Run("erm", dataset="folder:cub200"))
    with pytest.raises(FileNotFoundError, match=r"cub200/train/CLASS/\*\.jpg.*does not exist"):
        build_data(Run("erm", dataset="folder:cub200"), tmp_path)
    (tmp_path / "cars" / "train" / "x").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"or val/.*holds \['train'\]"):
        build_data(Run("erm", dataset="folder:cars"), tmp_path)
    for bad in ("folder:", "folder:../birds", "folder:a/b"):
        with pytest.raises(ValueError, match="folder directly under data_root"):
            build_data(Run("erm", dataset=bad), tmp_path)
    _fake_folder(tmp_path / "birds", n=1)
    for kwargs, msg in [({"cutout": 16}, "unknown data_kwargs for image folders"),
                        ({"image_size": 0}, "image_size must be an int >= 1"),
                        ({"image_size": 32, "resize": 16}, "resize must be an int >= image_size")]:
        with pytest.raises(ValueError, match=msg):
            build_data(Run("erm", dataset="folder:birds", data_kwargs=kwargs), tmp_path)
    _fake_folder(tmp_path / "mixed", splits=("train",), n=1)
    _fake_folder(tmp_path / "mixed", splits=("test",), classes=("a_bird", "z_bird"), n=1)
    with pytest.raises(ValueError, match="same class folders"):
        build_data(Run("erm", dataset="folder:mixed"), tmp_path)


def test_train_run_snapmix_on_an_image_folder(tmp_path):
    _fake_folder(tmp_path / "birds")
    run = Run("snapmix", {"beta": 5.0}, dataset="folder:birds", epochs=1, batch_size=6, lr=0.01,
              model_kwargs={"width": 4}, data_kwargs={"image_size": 32}, corruptions=[("contrast", 3)])
    result = train_run(run, data_root=tmp_path, device="cpu")
    assert 0 <= result["test_acc"] <= 1 and 0 <= result["acc_contrast_3"] <= 1 and len(result["history"]) == 1


# ---------------------------------------------------------------- issue 11: no silent wrong results in records
import functools
import os
import subprocess
import sys
import warnings
from pathlib import Path

from mixup_lab.experiments import (RECORD_SCHEMA, DamagedRecordsError, StaleRecordsError, claim_path, data_source,
                                   summary_rows)
from mixup_lab.train import NonFiniteLossError, _owner, _umask


def _fake(run):
    return {"test_acc": 0.5 + 0.01 * run.seed + (0.1 if run.method == "mixup" else 0.0), "history": [{"epoch": 1}]}


def test_integral_floats_and_ints_are_one_run_across_invocations(tmp_path):
    "issue 11.7: alpha=1 and alpha=1.0 were two run_ids, trained and stored twice, two rows in aggregate."
    calls = []
    def train(run): calls.append(run.run_id); return _fake(run)
    first = grid(["erm", ("mixup", {"alpha": 1})], seeds=[0, 1], epochs=1, lr=1)
    second = grid(["erm", ("mixup", {"alpha": 1.0})], seeds=[0, 1, 2], epochs=1, lr=1.0)
    run_grid(first, tmp_path, train, progress=False)
    df = run_grid(second, tmp_path, train, progress=False)
    assert len(calls) == 4 + 2  # only seed 2 is new
    assert len(list((tmp_path / "runs").glob("*.json"))) == 6
    agg = aggregate(df)
    assert len(agg) == 2 and set(agg["n"]) == {3}  # one row per method, not one per spelling
    assert Run("mixup", {"alpha": np.float64(2.0)}) == Run("mixup", {"alpha": 2})
    assert Run("mixup", {"alpha": 1.0}).label == "mixup(alpha=1.0)"  # the spec keeps its spelling
    with pytest.raises(ValueError, match="Run.kwargs.alpha must be a finite number"):
        Run("mixup", {"alpha": float("inf")})


def test_record_schema(tmp_path):
    run = Run("mixup", {"alpha": 0.5}, epochs=1, batch_size=32, lr=0.05, per_class=3, model_kwargs={"width": 4})
    run_grid([run], tmp_path, progress=False, threads=1)
    path = record_path(tmp_path, run)
    rec = json.loads(path.read_text())
    assert set(rec) == {"schema", "run_id", "label", "status", "run", "result", "error", "data", "env", "seconds", "finished"}
    assert (rec["schema"], rec["status"], rec["error"], rec["run_id"]) == (RECORD_SCHEMA, "ok", None, path.stem)
    assert Run.from_dict(rec["run"]).run_id == rec["run_id"]
    assert set(rec["data"]) == {"dataset", "source", "files", "train_size", "test_size", "num_classes", "train_labels",
                                "test_labels"}
    assert (rec["data"]["dataset"], rec["data"]["train_size"], rec["data"]["num_classes"]) == ("digits", 30, 10)
    assert rec["data"]["source"] == data_source("digits")["source"]
    assert rec["env"]["threads"] == 1 and rec["env"]["device"] == "cpu" and rec["env"]["mixup_lab"]
    assert "data" not in rec["result"] and "env" not in rec["result"]
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()  # issue 9: not mkstemp's 0600
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [path.name]  # no claim, no temporary file left


def test_a_diverged_run_is_recorded_as_failed_and_left_out_of_means(tmp_path):
    "issue 11.2: a diverged run was stored as a normal record and averaged in by aggregate."
    runs = grid(["erm", ("mixup", {"alpha": 1.0})], seeds=[0, 1], epochs=2, batch_size=32, lr=0.05, per_class=5,
                model_kwargs={"width": 4})
    wild = Run("mixup", {"alpha": 1.0}, seed=2, epochs=2, batch_size=32, lr=1e5, per_class=5, model_kwargs={"width": 4})
    def train(run):  # seed 2 diverges for real; the others train normally
        return train_run(wild if (run.seed, run.method) == (2, "mixup") else run, device="cpu")
    df = run_grid(runs + [dataclasses_replace(runs[1], seed=2), dataclasses_replace(runs[0], seed=2)], tmp_path, train,
                  progress=False)
    failed = df[df.status == "failed"]
    assert list(failed.label) == ["mixup(alpha=1.0)"] and failed.error.iloc[0].startswith("training diverged")
    rec = json.loads(record_path(tmp_path, dataclasses_replace(runs[1], seed=2)).read_text())
    assert rec["status"] == "failed" and rec["error"]["type"] == "NonFiniteLossError" and rec["error"]["epoch"] in (1, 2)
    assert f"in epoch {rec['error']['epoch']}" in failed.error.iloc[0] and "lr=100000.0" in failed.error.iloc[0]
    assert len(rec["result"]["history"]) == rec["error"]["epoch"] - 1  # the curve up to the failure
    agg = aggregate(df).set_index("label")
    assert agg.loc["mixup(alpha=1.0)", "n"] == 2 and agg.loc["mixup(alpha=1.0)", "failed"] == 1
    ok = df[(df.label == "mixup(alpha=1.0)") & (df.status == "ok")].test_acc
    assert agg.loc["mixup(alpha=1.0)", "mean"] == pytest.approx(ok.mean())
    assert agg.loc["mixup(alpha=1.0)", "n_pairs"] == 2 and agg.loc["erm", "failed"] == 0
    rows = summary_rows(aggregate(df), "demo", "test_acc")
    assert "mixup(alpha=1.0) [1 of 3 runs failed]" in set(rows.method)
    calls = []
    run_grid(runs, tmp_path, lambda r: calls.append(r) or _fake(r), progress=False)
    assert calls == []  # a failed record is a result ...
    run_grid([dataclasses_replace(runs[1], seed=2)], tmp_path, lambda r: calls.append(r) or _fake(r), progress=False,
             retry_failed=True)
    assert len(calls) == 1  # ... trained again on request
    other = []
    with pytest.raises(ValueError, match="boom"):  # other errors stop the grid and leave no record
        run_grid([Run("erm", seed=9)], tmp_path, lambda r: (_ for _ in ()).throw(ValueError("boom")), progress=False)
    assert not record_path(tmp_path, Run("erm", seed=9)).exists() and not claim_path(tmp_path, Run("erm", seed=9)).exists()


def dataclasses_replace(run, **changes):
    import dataclasses
    return dataclasses.replace(run, **changes)


def test_aggregate_with_only_failed_runs_of_a_variant():
    df = pd.DataFrame({"method": ["erm", "erm", "mixup", "mixup"], "seed": [0, 1, 0, 1], "dataset": "digits",
                       "status": ["ok", "ok", "failed", "failed"], "test_acc": [0.9, 0.8, np.nan, 0.1]})
    agg = aggregate(df).set_index("label")
    assert (agg.loc["mixup", "n"], agg.loc["mixup", "failed"]) == (0, 2) and np.isnan(agg.loc["mixup", "mean"])
    assert np.isnan(agg.loc["mixup", "diff"])  # no pair survives


def _damage(tmp_path, runs):
    run_grid(runs, tmp_path, _fake, progress=False)
    paths = [record_path(tmp_path, r) for r in runs]
    paths[0].write_bytes(b"\xff\xfe\x00 latin-1 junk")
    paths[1].write_text("{}")
    paths[2].write_text("[1, 2, 3]")
    rec = json.loads(paths[3].read_text()); del rec["result"]; paths[3].write_text(json.dumps(rec))
    rec = json.loads(paths[4].read_text()); rec["run_id"] = runs[0].run_id; paths[4].write_text(json.dumps(rec))
    rec = json.loads(paths[5].read_text()); rec["result"]["test_acc"] = "0.93"; paths[5].write_text(json.dumps(rec))
    rec = json.loads(paths[6].read_text()); rec["run"]["seed"] = 99; paths[6].write_text(json.dumps(rec))
    paths[7].write_text('{"run_id": ')
    return paths


def test_every_damaged_record_is_named_at_once_before_anything_trains(tmp_path):
    "issue 11.6: KeyError / TypeError / UnicodeDecodeError without a path, one file at a time."
    runs = grid(["erm", "mixup"], seeds=[0, 1, 2, 3], epochs=1)
    paths = _damage(tmp_path, runs)
    calls = []
    with pytest.raises(DamagedRecordsError) as info:
        run_grid(runs + [Run("erm", seed=50)], tmp_path, lambda r: calls.append(r) or _fake(r), progress=False)
    assert calls == []
    e = info.value
    assert sorted(e.problems) == sorted(paths)
    message = str(e)
    for path, why in [(paths[0], "is not UTF-8 text"), (paths[1], "has no 'run_id'"), (paths[2], "holds a JSON list"),
                      (paths[3], "has no 'result'"), (paths[4], "holds another run's record"),
                      (paths[5], "has the string '0.93' as result entry 'test_acc'"),
                      (paths[6], "has a run spec that does not match its run_id"), (paths[7], "is not valid JSON")]:
        assert f"{path.name} {why}" in message
    assert "mkdir -p" in message and str(tmp_path / "damaged") in message and "trained again" in message
    with pytest.raises(DamagedRecordsError, match="8 damaged record"):
        load_results(tmp_path)
    # set aside as the message says: the grid goes on, and retrains those runs
    (tmp_path / "damaged").mkdir()
    for p in paths: p.rename(tmp_path / "damaged" / p.name)
    run_grid(runs, tmp_path, lambda r: calls.append(r) or _fake(r), progress=False)
    assert len(calls) == 8


def test_string_results_are_refused_when_written(tmp_path):
    with pytest.raises(TypeError, match="has the string 'high' as result entry 'test_acc'"):
        run_grid([Run("erm")], tmp_path, lambda r: {"test_acc": "high"}, progress=False)
    assert not record_path(tmp_path, Run("erm")).exists()


def test_an_unwritable_results_folder_is_found_before_training(tmp_path):
    "issue 11.5: found only after the first run had trained (and its result was lost)."
    calls = []
    train = lambda r: calls.append(r) or _fake(r)
    (tmp_path / "a").mkdir(); (tmp_path / "a" / "runs").write_text("not a folder")
    (tmp_path / "b").write_text("not a folder either")
    for results in (tmp_path / "a", tmp_path / "b" / "results"):
        with pytest.raises(PermissionError, match="is not writable.*nothing was trained"):
            run_grid([Run("erm")], results, train, progress=False)
    with pytest.raises(PermissionError, match="checkpoint folder"):
        run_grid([Run("erm")], tmp_path / "c", functools.partial(train_run, checkpoint_dir=tmp_path / "b" / "ckpt"),
                 progress=False)
    if os.geteuid() != 0:  # root ignores permission bits
        (tmp_path / "ro" / "runs").mkdir(parents=True)
        (tmp_path / "ro" / "runs").chmod(0o555)
        try:
            with pytest.raises(PermissionError, match="is not writable"):
                run_grid([Run("erm")], tmp_path / "ro", train, progress=False)
        finally:
            (tmp_path / "ro" / "runs").chmod(0o755)
    assert calls == []
    (tmp_path / "done" / "runs").mkdir(parents=True)  # a finished grid in a read-only folder can still be read
    run_grid([Run("erm")], tmp_path / "done", train, progress=False)
    assert len(run_grid([Run("erm")], tmp_path / "done", train, progress=False)) == 1


def test_a_temporary_file_left_by_a_killed_writer_is_cleaned(tmp_path):
    "issue 11.8: a kill during a record write left a hidden 0-byte .tmp file forever."
    code = ("import os, sys, time; sys.path.insert(0, sys.argv[1]); from mixup_lab.train import atomic_write\n"
            "def write(tmp):\n    print('writing', flush=True); time.sleep(60)\n"
            "atomic_write(sys.argv[2], write)")
    folder = tmp_path / "runs"; folder.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", code, str(Path(__file__).parents[1]), str(folder / "x.json")],
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    writer.kill(); writer.wait()  # kill -9 in the middle of the write
    left = list(folder.glob(".*.tmp"))
    assert len(left) == 1 and left[0].stat().st_size == 0
    run_grid([Run("erm")], tmp_path, _fake, progress=False)
    assert sorted(p.name for p in folder.iterdir()) == [f"{Run('erm').run_id}.json"]


def _birds(root, n=2):
    from PIL import Image
    for split in ("train", "test"):
        for k, c in enumerate(("a", "b")):
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(np.full((20, 20 + i, 3), 40 + 100 * k, np.uint8)).save(root / split / c / f"{i}.png")


def test_records_of_changed_data_are_stale(tmp_path):
    "issue 11.7: a record was reused after the data changed (the run id ignores data_root and what it holds)."
    data = tmp_path / "data"
    _birds(data / "birds")
    run = Run("erm", dataset="folder:birds", epochs=1, batch_size=4, lr=0.01, model_kwargs={"width": 4},
              data_kwargs={"image_size": 16})
    train = functools.partial(train_run, data_root=data, device="cpu")
    run_grid([run], tmp_path / "out", train, progress=False)
    rec = json.loads(record_path(tmp_path / "out", run).read_text())
    assert (rec["data"]["files"], rec["data"]["train_size"]) == (8, 4)
    mtime = record_path(tmp_path / "out", run).stat().st_mtime_ns
    run_grid([run], tmp_path / "out", train, progress=False)  # same data: reused
    assert record_path(tmp_path / "out", run).stat().st_mtime_ns == mtime
    _birds(data / "birds", n=3)  # the dataset grew
    with pytest.raises(StaleRecordsError, match="was trained on other data .*files 8 when recorded, 12 now") as info:
        run_grid([run], tmp_path / "out", train, progress=False)
    assert "stale='retrain'" in str(info.value) and list(info.value.problems) == [record_path(tmp_path / "out", run)]
    df = run_grid([run], tmp_path / "out", train, progress=False, stale="retrain")
    assert json.loads(record_path(tmp_path / "out", run).read_text())["data"]["train_size"] == 6 and len(df) == 1
    # a record of schema 1 (before records held their data) cannot be checked: stale too
    rec = json.loads(record_path(tmp_path / "out", run).read_text())
    old = {k: rec[k] for k in ("run_id", "label", "run", "result", "seconds", "finished")}
    record_path(tmp_path / "out", run).write_text(json.dumps(old))
    assert load_results(tmp_path / "out").status.tolist() == ["ok"]  # still readable
    with pytest.raises(StaleRecordsError, match="record schema 1"):
        run_grid([run], tmp_path / "out", train, progress=False)
    # without the data (results copied to a laptop): reused, with a warning
    run_grid([run], tmp_path / "out", train, progress=False, stale="retrain")
    with pytest.warns(UserWarning, match="cannot be read"):
        assert len(run_grid([run], tmp_path / "out", functools.partial(train_run, data_root=tmp_path / "nowhere"),
                            progress=False)) == 1


# ---------------------------------------------------------------- CIFAR on the DeviceLoader (issue 9)
def _stand_in_cifar(root):
    import warnings
    from mixup_lab.data import write_cifar
    write_cifar(root, "cifar10", per_class=6, test_per_class=2)
    warnings.filterwarnings("ignore", message="cifar\\(verify=False\\)")


SYNERMIX_RUN = dict(dataset="cifar10", model="small_cnn", model_kwargs={"width": 4}, per_class=4, epochs=3, batch_size=8,
                    lr=0.05, data_kwargs={"two_views": True, "balanced": "paper", "cutout": True,
                                          "cutout_before_normalize": True, "normalize": "imagenet"})


def test_device_loader_run_resumes_bit_identically(tmp_path, monkeypatch):
    "A SynerMix run on the DeviceLoader (two views, the paper's sampler, Cutout), killed mid-epoch and resumed: the same weights and history."
    from mixup_lab import models
    from mixup_lab.loader import DeviceLoader
    from _models import kill_after
    _stand_in_cifar(tmp_path / "data")
    run = Run("synermix", {"beta": 0.1, "inter": "mixup", "alpha": 1.0}, **SYNERMIX_RUN)
    opts = dict(data_root=tmp_path / "data", device="cpu", verify=False)
    assert isinstance(build_data(run, opts["data_root"], verify=False, device="cpu")["train"], DeviceLoader)
    straight = train_run(run, **opts, model_dir=tmp_path / "straight")
    get_model = models.get_model
    monkeypatch.setattr(models, "get_model", lambda *a, **k: kill_after(get_model(*a, **k), 7))  # dies in epoch 2
    with pytest.raises(RuntimeError, match="killed"):
        train_run(run, **opts, checkpoint_dir=tmp_path / "ckpt")
    assert torch.load(tmp_path / "ckpt" / f"{run.run_id}.pt", weights_only=False)["epoch"] >= 1
    monkeypatch.setattr(models, "get_model", get_model)
    torch.manual_seed(123)  # the global RNG scrambled: the loader's generator and the sampler's come from the checkpoint
    resumed = train_run(run, **opts, checkpoint_dir=tmp_path / "ckpt", model_dir=tmp_path / "resumed")
    a = torch.load(tmp_path / "straight" / f"{run.run_id}.pt")
    b = torch.load(tmp_path / "resumed" / f"{run.run_id}.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pd.testing.assert_frame_equal(straight["history"].drop(columns="time"), resumed["history"].drop(columns="time"))
    assert straight["data"] == resumed["data"] and straight["data"]["train_size"] == 40
    assert not (tmp_path / "ckpt" / f"{run.run_id}.pt").exists()  # the record replaces the checkpoint


def test_device_and_torch_loaders_train_on_the_same_data(tmp_path):
    _stand_in_cifar(tmp_path / "data")
    spec = dict(SYNERMIX_RUN, epochs=1, data_kwargs={})
    dev = train_run(Run("erm", **spec), tmp_path / "data", device="cpu", verify=False)
    tv = train_run(Run("erm", **dict(spec, data_kwargs={"loader": "torch"})), tmp_path / "data", device="cpu", verify=False)
    assert dev["data"] == tv["data"] and dev["env"]["num_workers"] == 0
    with pytest.raises(ValueError, match="loader must be one of"):
        train_run(Run("erm", **dict(spec, data_kwargs={"loader": "pil"})), tmp_path / "data", device="cpu", verify=False)


def test_weights_dir_reaches_the_pretrained_model(tmp_path, monkeypatch):
    "train_run(weights_dir=...) gives the pretrained torchvision ResNet its ImageNet weights file; without it, an error before training."
    import torchvision
    from mixup_lab.models import pretrained_weights_url
    _stand_in_cifar(tmp_path / "data")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache
    monkeypatch.delenv("MIXUP_LAB_WEIGHTS", raising=False)
    run = Run("erm", dataset="cifar10", model="resnet18", model_kwargs={"pretrained": True}, per_class=1, epochs=1,
              batch_size=10, lr=1e-12, weight_decay=0.0)  # a vanishing step: the trained weights are the loaded ones
    opts = dict(data_root=tmp_path / "data", device="cpu", verify=False, checkpoint_dir=tmp_path / "ckpt")
    with pytest.raises(FileNotFoundError, match="resnet18-"):
        train_run(run, **opts)
    assert not (tmp_path / "ckpt").exists()  # nothing trained
    torch.manual_seed(5)
    reference = torchvision.models.resnet18(num_classes=1000).state_dict()
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save(reference, weights / pretrained_weights_url("resnet18").rsplit("/", 1)[-1])
    train_run(run, **opts, weights_dir=weights, model_dir=tmp_path / "models")
    trained = torch.load(tmp_path / "models" / f"{run.run_id}.pt")
    assert torch.allclose(trained["conv1.weight"], reference["conv1.weight"], atol=1e-8) and trained["fc.weight"].shape == (10, 512)
    assert "weights_dir" not in run.run_id and dict(run.model_kwargs) == {"pretrained": True}  # a path is not the run's identity
