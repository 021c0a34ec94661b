"Smoke test of the SynerMix experiment notebook (nbs/experiments/synermix.ipynb) with papermill, tiny=True."
from pathlib import Path

import pandas as pd
import papermill as pm
import pytest
from notebooks import check_grid_cell, check_needs_data_root, grid_namespace, run_notebook

from mixup_lab.experiments import SUMMARY_COLUMNS
from mixup_lab.synermix import SYNERMIX_SETTINGS

FIGURES = ("synermix_settings.png", "synermix_beta.png", "synermix_embedding.png")
TABLES = ("synermix_settings", "synermix_gains", "synermix_beta", "synermix_features", "synermix_features_summary",
          "synermix_summary")


def execute(out_dir: Path, **parameters) -> None:
    run_notebook("synermix", out_dir / "executed.ipynb", **parameters, out_dir=str(out_dir))


def stored_files(out_dir: Path) -> dict:
    "Every run record and cached feature file, with its modification time."
    files = [p for what, ext in (("runs", "json"), ("features", "pt"), ("models", "pt"))
             for p in (out_dir / "synermix" / what).glob(f"*.{ext}")]
    return {f"{p.parent.name}/{p.name}": p.stat().st_mtime_ns for p in files}


def test_tiny_run_writes_tables_and_figures_and_resumes(tmp_path):
    execute(tmp_path, tiny=True)
    summary = pd.read_csv(tmp_path / "synermix_summary.csv")
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    assert (summary["experiment"] == "synermix").all()
    acc = summary[summary["metric"] == "test_acc"]
    assert set(acc["method"]) == set(SYNERMIX_SETTINGS)  # all six settings, one row each (one dataset)
    assert len(acc) == 6 and acc["mean"].between(0, 1).all() and (acc["n"] == 2).all()
    base = acc.set_index("method").loc["wo-RA&ER"]
    assert base["diff"] == 0 and base["diff_lo"] == 0  # the baseline against itself
    gains = summary[summary["metric"] == "test_acc_gain"]
    assert len(gains) == 2 and gains["method"].str.startswith("w-RA&ER(M").all()
    assert summary["paper"].isna().all()  # no published numbers at default scale
    for name in TABLES:
        assert (tmp_path / f"{name}.csv").is_file() and (tmp_path / f"{name}.md").is_file()
    for name in FIGURES:
        assert (tmp_path / "figures" / name).stat().st_size > 0
    features = pd.read_csv(tmp_path / "synermix_features.csv")
    assert set(features["label"]) == {"wo-RA&ER", "w-RA&ER(M)"} and set(features["seed"]) == {0, 1}
    assert features[["cohesion", "separability", "fisher_ratio"]].notna().all().all()
    assert (features["test_acc"] == features["recorded_acc"]).all()  # the retrained model is the recorded one
    beta = pd.read_csv(tmp_path / "synermix_beta.csv")
    assert set(beta["beta"].dropna()) == {0.0, 0.5}

    before = stored_files(tmp_path)
    assert sum(name.endswith(".json") for name in before) == 14  # 6 settings x 2 seeds + 2 runs at beta = 0.5 (beta = 0 is w-ER(M))
    assert sum(name.endswith(".pt") for name in before) == 2 * 4  # the analysed runs' weights and features
    execute(tmp_path, tiny=True)  # everything is cached: nothing is retrained, the tables are the same
    assert stored_files(tmp_path) == before
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "synermix_summary.csv"), summary)


def test_full_scale_needs_data_root(tmp_path):
    with pytest.raises(pm.PapermillExecutionError) as info:
        execute(tmp_path, scale="full", tiny=True)
    assert info.value.ename == "ValueError" and "data_root" in info.value.evalue


def test_grid_cell_comes_before_any_training():
    check_grid_cell("synermix")


def test_full_scale_grid_then_data_root_check(tmp_path):
    ns = grid_namespace("synermix", scale="full", out_dir=str(tmp_path))
    runs = ns["runs"]
    assert len(ns["settings_runs"]) == 2 * 6 * 3 and len(ns["sweep_runs"]) == 7
    assert len(runs) == 36 + 4  # the sweep's new β values (4 of 6: β = 0 and 0.1 are settings) on seed 0
    assert set(ns["analysis_runs"]) <= set(runs)
    assert {(r.model, r.epochs, r.batch_size, r.per_class) for r in runs} == {("cifar_resnet18", 120, 128, None)}
    assert {dict(r.data_kwargs)["normalize"] for r in runs} == {"imagenet"}
    check_needs_data_root("synermix", ns, tmp_path)


def test_parameters_shape_the_grid():
    ns = grid_namespace("synermix", methods="w-RA, w-ER(M)", subset=4, seeds=[2, 3], epochs=5)
    assert ns["chosen"] == ["wo-RA&ER", "w-RA", "w-ER(M)"]  # the baseline always runs
    assert ns["sweep_runs"] == []  # no w-RA&ER(M): no β sweep
    assert [r.label for r in ns["analysis_runs"]] == ["wo-RA&ER", "w-RA", "w-ER(M)"] * 2
    assert {(r.per_class, r.epochs, r.seed in (2, 3), dict(r.fit_kwargs)["eval_every"]) for r in ns["runs"]} == \
        {(4, 5, True, 5)}
    assert len(grid_namespace("synermix", methods="w-RA&ER(M)")["sweep_runs"]) == 7 * 3
    assert len(grid_namespace("synermix")["runs"]) == 6 * 5 + 4 * 3
    with pytest.raises(ValueError, match=r"methods: unknown \['mixup'\]"):
        grid_namespace("synermix", methods="mixup")
    with pytest.raises(ValueError, match="subset"):
        grid_namespace("synermix", subset=-1)


@pytest.mark.slow
def test_full_scale_tiny_on_stand_in_cifar100(tmp_path):
    "The full-scale path: stand-in CIFAR-100 (verify=False) on the DeviceLoader with two views, the paper's sampler, Cutout."
    from mixup_lab.data import write_cifar
    write_cifar(tmp_path / "data", "cifar100", per_class=2, test_per_class=1)
    execute(tmp_path, scale="full", tiny=True, device="cpu", verify=False, data_root=str(tmp_path / "data"), seeds=[0],
            methods="w-RA&ER(M)")
    acc = pd.read_csv(tmp_path / "synermix_summary.csv")
    acc = acc[acc["metric"] == "test_acc"]
    assert set(acc["method"]) == {"wo-RA&ER", "w-RA&ER(M)"} and acc["setting"].str.startswith("cifar100").all()
    assert set(pd.read_csv(tmp_path / "synermix_beta.csv")["beta"].dropna()) == {0.0, 0.5}
    assert len(list((tmp_path / "synermix" / "runs").glob("*.json"))) == 4  # 2 settings + the sweep's w-ER(M) and β = 0.5
    features = pd.read_csv(tmp_path / "synermix_features.csv")
    assert (features["test_acc"] == features["recorded_acc"]).all()
