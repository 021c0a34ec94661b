"Smoke test of the SEM experiment notebook: a tiny papermill run, then a second run that must re-train nothing."
from pathlib import Path

import pandas as pd
import pytest

pm = pytest.importorskip("papermill")
from notebooks import run_notebook

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
