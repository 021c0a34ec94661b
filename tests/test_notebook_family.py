"Smoke tests of the family experiment notebook (nbs/experiments/family.ipynb): tiny papermill runs at both scales, its outputs, resuming, and the full-scale grid."
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

pm = pytest.importorskip("papermill")
from notebooks import EXPERIMENTS, run_notebook

from mixup_lab.data import write_cifar
from mixup_lab.experiments import SUMMARY_COLUMNS
from mixup_lab.reproduce import NOTEBOOKS

NB = EXPERIMENTS / "family.ipynb"
TABLES = ("accuracy", "vs_cutmix", "summary")
FIGURES = ("differences", "samples")
LABELS = ["erm", "mixup(alpha=1.0)", "cutmix(alpha=1.0)", "zeta(gamma=2.8)", "fmix(alpha=1.0, decay_power=3.0)",
          "resizemix(scale=(0.1, 0.8))", "saliencymix(alpha=1.0)",
          "mixup_cutmix(alpha=1.0, cutmix_alpha=1.0, switch_prob=0.5)"]
DESCENDANTS = LABELS[4:]  # compared with CutMix too


def _run(out_dir: Path, **parameters):
    return run_notebook("family", out_dir / "executed.ipynb", out_dir=str(out_dir), **parameters)


def _records(out_dir: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in (out_dir / "family" / "runs").glob("*.json")}


def _check_outputs(out_dir: Path, labels: list, n: int, dataset: str):
    summary = pd.read_csv(out_dir / "family_summary.csv")
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    assert (summary["experiment"] == "family").all() and (summary["metric"] == "test_acc").all()
    vs_erm = summary[~summary["setting"].str.endswith("diff vs cutmix")]
    vs_cut = summary[summary["setting"].str.endswith("diff vs cutmix")]
    assert list(vs_erm["method"]) == labels and list(vs_cut["method"]) == [m for m in labels if m in DESCENDANTS]
    assert vs_erm["setting"].str.startswith(dataset).all()
    assert summary["mean"].between(0, 1).all() and (summary["n"] == n).all()
    erm = vs_erm.set_index("method").loc["erm"]
    assert erm["diff"] == 0  # the baseline against itself
    assert np.isfinite(summary["diff"]).all() and summary["paper"].isna().all()
    accuracy = pd.read_csv(out_dir / "family_accuracy.csv")
    assert list(accuracy["label"]) == labels and (accuracy["failed"] == 0).all()
    holm = accuracy["p_holm"].iloc[1:]  # the baseline has none
    assert accuracy["p_holm"].iloc[:1].isna().all()
    if n > 1: assert (holm >= accuracy["p_value"].iloc[1:] - 1e-12).all() and holm.between(0, 1).all()
    for what in TABLES:
        assert (out_dir / f"family_{what}.csv").is_file() and (out_dir / f"family_{what}.md").is_file()
    for what in FIGURES:
        assert (out_dir / "figures" / f"family_{what}.png").stat().st_size > 0
    return summary


def test_registered_in_reproduce():
    names = list(NOTEBOOKS)
    assert NOTEBOOKS["family"] == "experiments/family.ipynb" and names.index("family") < names.index("benchmarks")


def test_tiny_run_and_resume(tmp_path):
    _run(tmp_path, tiny=True)
    summary = _check_outputs(tmp_path, LABELS, n=2, dataset="digits")
    records = _records(tmp_path)
    assert len(records) == 2 * len(LABELS)
    tables = {what: (tmp_path / f"family_{what}.csv").read_text() for what in TABLES}
    _run(tmp_path, tiny=True)  # resumes: every run is recorded, so nothing is trained again
    assert _records(tmp_path) == records
    assert {what: (tmp_path / f"family_{what}.csv").read_text() for what in TABLES} == tables
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "family_summary.csv"), summary)


def test_full_scale_tiny_on_stand_in_cifar100(tmp_path):
    "The full-scale path (CIFAR-100, cifar_resnet18) on a stand-in CIFAR-100, which needs verify=False."
    data = tmp_path / "data"
    write_cifar(data, "cifar100", per_class=1, test_per_class=1)
    out = tmp_path / "out"
    out.mkdir()
    parameters = dict(scale="full", tiny=True, data_root=str(data), verify=False, methods="cutmix,saliencymix")
    _run(out, **parameters)
    _check_outputs(out, ["erm", "cutmix(alpha=1.0)", "saliencymix(alpha=1.0)"], n=1, dataset="cifar100")


def _cells():
    code = [c for c in nbformat.read(NB, as_version=4).cells if c.cell_type == "code"]
    tags = [c.metadata.get("tags", []) for c in code]
    params = next(i for i, t in enumerate(tags) if "parameters" in t)
    grid_cell = next(i for i, t in enumerate(tags) if "grid" in t)
    return code, params, grid_cell


def _grid(**parameters) -> dict:
    "Run the parameters, set-up and grid cells in-process (nothing is trained or written); return the namespace."
    code, params, grid_cell = _cells()
    ns = {}
    exec(code[params].source, ns)
    ns.update(parameters)
    for cell in code[params + 1:grid_cell + 1]: exec(cell.source, ns)
    return ns


def test_grid_cell_comes_before_any_training():
    code, params, grid_cell = _cells()
    assert sum("grid" in c.metadata.get("tags", []) for c in code) == 1
    assert params < grid_cell and not any("run_grid(" in c.source for c in code[:grid_cell + 1])


def test_full_scale_grid_then_data_root_check(tmp_path):
    ns = _grid(scale="full", out_dir=str(tmp_path))
    runs = ns["runs"]
    assert len(runs) == len(LABELS) * 3 and [r.label for r in runs[:len(LABELS)]] == LABELS
    assert {(r.dataset, r.model, r.epochs, r.batch_size, r.lr, r.weight_decay, r.schedule, r.per_class)
            for r in runs} == {("cifar100", "cifar_resnet18", 200, 128, 0.1, 5e-4, "cosine", None)}
    assert {r.seed for r in runs} == {0, 1, 2} and {dict(r.fit_kwargs)["eval_every"] for r in runs} == {5}
    code, _, grid_cell = _cells()
    with pytest.raises(ValueError, match="data_root"):
        exec(code[grid_cell + 1].source, ns)
    assert not any(tmp_path.iterdir())  # failed before writing anything


def test_parameters_shape_the_grid():
    ns = _grid(methods="fmix, resizemix(scale=(0.1, 0.8))", subset=20, seeds=[3, 4], epochs=7)
    assert [r.label for r in ns["runs"][:3]] == ["erm", LABELS[4], LABELS[5]]  # ERM, the baseline, always runs
    assert {(r.per_class, r.epochs, r.seed, dict(r.fit_kwargs)["eval_every"]) for r in ns["runs"]} == \
        {(20, 7, 3, 7), (20, 7, 4, 7)}
    assert len(_grid()["runs"]) == len(LABELS) * 10  # the default scale: 10 seeds
    with pytest.raises(ValueError, match="methods: unknown"):
        _grid(methods=["mixup", "snapmix"])
    with pytest.raises(ValueError, match="subset"):
        _grid(subset=0)
