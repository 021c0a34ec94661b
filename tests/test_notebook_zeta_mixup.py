"Smoke test of the zeta_mixup experiment notebook: a tiny papermill run, its outputs, and resuming without re-training."
from pathlib import Path

import pandas as pd
import pytest

pm = pytest.importorskip("papermill")
import nbformat
from notebooks import EXPERIMENTS, check_grid_cell, check_needs_data_root, grid_namespace, run_notebook, stand_in_cifar

from mixup_lab.experiments import SUMMARY_COLUMNS
from mixup_lab.models import MODELS

NB = EXPERIMENTS / "zeta_mixup.ipynb"
FIGURES = ("gamma", "synthetic", "samples")
TABLES = ("accuracy", "gamma", "synthetic", "summary")


def _run(out_dir: Path, **parameters):
    return run_notebook("zeta_mixup", out_dir / "executed.ipynb", out_dir=str(out_dir), **parameters)


def _records(out_dir: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in (out_dir / "zeta_mixup" / "runs").glob("*.json")}


def test_tiny_run_and_resume(tmp_path):
    _run(tmp_path, tiny=True)
    summary = pd.read_csv(tmp_path / "zeta_mixup_summary.csv")
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    assert set(summary["method"]) == {"erm", "mixup(alpha=1.0)", "zeta(gamma=2.8)"}
    assert (summary["experiment"] == "zeta_mixup").all() and (summary["metric"] == "test_acc").all()
    assert summary["mean"].between(0, 1).all() and (summary["n"] == 2).all()
    for what in TABLES:
        assert (tmp_path / f"zeta_mixup_{what}.csv").is_file() and (tmp_path / f"zeta_mixup_{what}.md").is_file()
    for what in FIGURES:
        assert (tmp_path / "figures" / f"zeta_mixup_{what}.png").stat().st_size > 0
    synthetic = pd.read_csv(tmp_path / "zeta_mixup_synthetic.csv")
    assert {"original", "mixup (α=1)", "ζ-mixup (γ=2.8)"} <= set(synthetic["samples"])
    assert synthetic["label_correct"].between(0, 1).all() and synthetic["realism"].between(0, 1).all()

    records = _records(tmp_path)
    assert len(records) == 8  # 2 seeds x (erm, mixup, zeta 2.8, zeta 1.0)
    tables = {what: (tmp_path / f"zeta_mixup_{what}.csv").read_text() for what in TABLES}
    _run(tmp_path, tiny=True)  # resumes: every run is recorded, so nothing is trained again
    assert _records(tmp_path) == records
    assert {what: (tmp_path / f"zeta_mixup_{what}.csv").read_text() for what in TABLES} == tables


def test_full_scale_grid_then_data_root_check(tmp_path):
    "The full-scale grid cell builds the poster's grid; the next cell stops with a ValueError naming data_root."
    ns = grid_namespace("zeta_mixup", scale="full", out_dir=str(tmp_path))
    runs = ns["runs"]
    assert len(ns["main_runs"]) == 4 * 3 * 3 and len(runs) == 36 + 5 * 3  # + the γ sweep on CIFAR-10 x ResNet-18
    assert {(r.dataset, r.model) for r in runs} == {(d, m) for d in ("cifar10", "cifar100")
                                                    for m in ("cifar_resnet18", "cifar_resnet50")}
    assert all(r.model in MODELS for r in runs)
    assert {(r.epochs, r.batch_size, r.lr, r.weight_decay, r.per_class) for r in runs} == {(200, 128, 0.1, 1e-4, None)}
    assert {r.label for r in ns["main_runs"]} == {"erm", "mixup(alpha=1.0)", "zeta(gamma=2.8)"}
    check_needs_data_root("zeta_mixup", ns, tmp_path)


def test_grid_cell_comes_before_any_training():
    check_grid_cell("zeta_mixup")


def test_parameters_shape_the_grid():
    ns = grid_namespace("zeta_mixup", methods="zeta", subset=7, seeds=[3, 4], epochs=9)
    assert {r.label for r in ns["main_runs"]} == {"erm", "zeta(gamma=2.8)"}  # ERM, the baseline, always runs
    assert {r.label for r in ns["sweep_runs"]} == {"erm"} | {f"zeta(gamma={g})" for g in ns["cfg"]["gammas"]}
    assert {(r.per_class, r.epochs, dict(r.fit_kwargs)["eval_every"]) for r in ns["runs"]} == {(7, 9, 9)}
    assert {r.seed for r in ns["main_runs"]} == {3, 4}
    ns = grid_namespace("zeta_mixup", methods=["mixup(alpha=1.0)"])
    assert {r.label for r in ns["runs"]} == {"erm", "mixup(alpha=1.0)"}
    assert len(grid_namespace("zeta_mixup")["runs"]) == 3 * 5 + 8 * 3 - 3 * 3  # default: 5 seeds; the sweep (8 methods) on 3 of them, sharing 3 x 3 runs
    with pytest.raises(ValueError, match=r"methods: unknown \['snapmix'\]; choose names from \['erm', 'mixup', 'zeta'\]"):
        grid_namespace("zeta_mixup", methods="mixup,snapmix")
    with pytest.raises(ValueError, match="subset"):
        grid_namespace("zeta_mixup", subset=0)
    with pytest.raises(TypeError, match="verify"):
        grid_namespace("zeta_mixup", verify="no")


@pytest.mark.slow
def test_full_scale_tiny_on_stand_in_cifar(tmp_path):
    "The full-scale path (CIFAR-10/100 on the DeviceLoader, CIFAR ResNet-18/50) on stand-in CIFAR files, verify=False."
    data = stand_in_cifar(tmp_path / "data")
    out = tmp_path / "out"
    out.mkdir()
    _run(out, scale="full", tiny=True, device="cpu", verify=False, data_root=str(data), seeds=[0], subset=1,
         methods="zeta")
    summary = pd.read_csv(out / "zeta_mixup_summary.csv")
    assert set(summary["method"]) == {"erm", "zeta(gamma=2.8)"} and (summary["n"] == 1).all()
    assert set(summary["setting"].str.split(" · ").str[0]) == {"cifar10", "cifar100"}
    records = _records(out)
    assert len(records) == 4 * 2 + 1  # 4 contexts x (ERM, ζ-mixup 2.8), and γ = 1 of the sweep
    for what in FIGURES:
        assert (out / "figures" / f"zeta_mixup_{what}.png").stat().st_size > 0
