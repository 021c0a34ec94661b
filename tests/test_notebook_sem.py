"Smoke test of the SEM experiment notebook: a tiny papermill run, then a second run that must re-train nothing."
from pathlib import Path

import pandas as pd
import pytest

pm = pytest.importorskip("papermill")
from notebooks import check_grid_cell, check_needs_data_root, grid_namespace, run_notebook, stand_in_cifar

from mixup_lab.experiments import SUMMARY_COLUMNS

LABELS = {"erm", "mixup(alpha=1.0)", "sem(weight=10.0)"}

def _execute(out_dir: Path, target: Path):
    run_notebook("sem", target, tiny=True, out_dir=str(out_dir))

def test_sem_notebook_tiny(tmp_path):
    out = tmp_path / "runs"
    _execute(out, tmp_path / "first.ipynb")
    summary = pd.read_csv(out / "sem_summary.csv")
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    assert set(summary["method"]) == LABELS
    assert set(summary["metric"]) == {"test_acc", "corrupt_acc"}
    assert (summary["experiment"] == "sem").all()
    assert summary["mean"].between(0, 1).all() and (summary["n"] == 2).all()
    # SEM is compared with ERM and with mixup: the setting says which baseline each diff refers to
    sem_rows = summary[summary["method"] == "sem(weight=10.0)"]
    assert set(sem_rows["setting"].str.rsplit("; ", n=1).str[-1]) == {"diff vs erm", "diff vs mixup"}
    for what in ("severity", "corruptions"):
        fig = out / "figures" / f"sem_{what}.png"
        assert fig.is_file() and fig.stat().st_size > 0
    severity = pd.read_csv(out / "sem_severity_vs_erm.csv")
    assert set(severity["severity"]) == {0, 1, 2, 3, 4, 5} and set(severity["label"]) == LABELS
    corruption = pd.read_csv(out / "sem_corruption_vs_mixup.csv")
    assert set(corruption["corruption"]) == {"gaussian_noise", "contrast"}

    records = sorted((out / "sem" / "runs").glob("*.json"))
    assert len(records) == 2 * len(LABELS)  # tiny: 2 seeds x 3 methods
    mtimes = {p: p.stat().st_mtime_ns for p in records}
    _execute(out, tmp_path / "second.ipynb")  # same out_dir: everything is already trained
    assert {p: p.stat().st_mtime_ns for p in sorted((out / "sem" / "runs").glob("*.json"))} == mtimes
    pd.testing.assert_frame_equal(pd.read_csv(out / "sem_summary.csv"), summary)

def test_sem_notebook_full_scale_needs_data_root(tmp_path):
    with pytest.raises(pm.PapermillExecutionError, match="data_root"):
        run_notebook("sem", tmp_path / "full.ipynb", scale="full", out_dir=str(tmp_path / "runs"))
    assert not (tmp_path / "runs" / "sem").exists()  # it failed before training anything


def test_grid_cell_comes_before_any_training():
    check_grid_cell("sem")


def test_full_scale_grid_then_data_root_check(tmp_path):
    ns = grid_namespace("sem", scale="full", out_dir=str(tmp_path))
    runs = ns["runs"]
    assert len(runs) == 2 * 4 * 3  # CIFAR-10/100 x (ERM, mixup, SEM at two weights) x 3 seeds
    assert {(r.dataset, r.model, r.epochs, r.per_class) for r in runs} == \
        {(d, "cifar_resnet18", 200, None) for d in ("cifar10", "cifar100")}
    assert {r.label for r in runs} == {"erm", "mixup(alpha=1.0)", "sem(weight=1.0)", "sem(weight=10.0)"}
    check_needs_data_root("sem", ns, tmp_path)


def test_parameters_shape_the_grid():
    ns = grid_namespace("sem", methods="sem", subset=12, seeds=[5], epochs=3)
    assert [r.label for r in ns["runs"]] == ["erm", "sem(weight=10.0)"]  # ERM, the baseline, always runs
    assert {(r.per_class, r.epochs, r.seed, dict(r.fit_kwargs)["eval_every"]) for r in ns["runs"]} == {(12, 3, 5, 3)}
    ns = grid_namespace("sem", scale="full", methods=["sem(weight=1.0)"], tiny=True)
    assert {r.label for r in ns["runs"]} == {"erm", "sem(weight=1.0)"}
    assert {dict(r.data_kwargs).get("test_size") for r in ns["runs"]} == {None}  # CIFAR keeps its test set
    assert len(grid_namespace("sem")["runs"]) == 3 * 5
    with pytest.raises(ValueError, match=r"methods: unknown \['cutmix'\]; choose names from \['erm', 'mixup', 'sem'\]"):
        grid_namespace("sem", methods="cutmix")
    with pytest.raises(ValueError, match="subset"):
        grid_namespace("sem", subset=0)
    with pytest.raises(TypeError, match="verify"):
        grid_namespace("sem", verify=1)


@pytest.mark.slow
def test_sem_notebook_full_scale_tiny_on_stand_in_cifar(tmp_path):
    "reproduce --scale full --tiny's path: CIFAR-10/100 (stand-in files, verify=False) on the DeviceLoader, corrupted test sets."
    data = stand_in_cifar(tmp_path / "data")
    out = tmp_path / "runs"
    run_notebook("sem", tmp_path / "full.ipynb", scale="full", tiny=True, device="cpu", verify=False, data_root=str(data),
                 out_dir=str(out), seeds=[0], subset=1, methods="mixup,sem(weight=1.0)")
    summary = pd.read_csv(out / "sem_summary.csv")
    assert set(summary["method"]) == {"erm", "mixup(alpha=1.0)", "sem(weight=1.0)"}
    assert set(summary["setting"].str.split(",").str[0]) == {"cifar10", "cifar100"}
    assert len(list((out / "sem" / "runs").glob("*.json"))) == 2 * 3
    assert (out / "figures" / "sem_severity.png").stat().st_size > 0
