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
