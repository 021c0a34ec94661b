"summary.ipynb through papermill, on summary rows made here (it trains nothing, so no other notebook is needed)."

import pandas as pd
import papermill as pm
import pytest
from notebooks import run_notebook

from mixup_lab.experiments import SUMMARY_COLUMNS, aggregate, save_table, summary_rows



def _rows(experiment, shift):
    df = pd.DataFrame({"method": ["erm"] * 3 + ["mixup"] * 3, "dataset": "digits", "seed": [0, 1, 2] * 2,
                       "test_acc": [0.80, 0.82, 0.81, 0.80 + shift, 0.83 + shift, 0.815 + shift]})
    return summary_rows(aggregate(df), experiment, "test_acc", setting=["dataset"])


def _run(out):
    run_notebook("summary", out / "summary_out.ipynb", out_dir=str(out))


def test_summary_collects_every_experiment(tmp_path):
    save_table(_rows("zeta_mixup", 0.03), tmp_path / "zeta_mixup_summary.csv")
    save_table(_rows("sem", -0.01), tmp_path / "sem_summary.csv")
    bench = pd.DataFrame([dict(zip(SUMMARY_COLUMNS, ["benchmarks", "(128, 3, 32, 32)", "Mixup", "time ratio vs timm",
                                                      0.9, None, 1, None, None, None, None, "<= 1.0"]))])
    save_table(bench, tmp_path / "benchmarks_summary.csv")
    _run(tmp_path)
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    assert summary.experiment.tolist() == ["zeta_mixup"] * 2 + ["sem"] * 2 + ["benchmarks"]  # reproduce's order
    assert (tmp_path / "figures" / "summary_differences.png").stat().st_size > 0
    text = (tmp_path / "summary_out.ipynb").read_text()
    assert "not run: synermix, snapmix" in text


def test_summary_refuses_misaligned_and_missing_tables(tmp_path):
    with pytest.raises(pm.PapermillExecutionError, match="no <experiment>_summary.csv"):
        _run(tmp_path)
    pd.DataFrame({"method": ["erm"], "acc": [0.9]}).to_csv(tmp_path / "sem_summary.csv", index=False)
    with pytest.raises(pm.PapermillExecutionError, match="differ from SUMMARY_COLUMNS"):
        _run(tmp_path)


def test_summary_lists_what_changed_since_the_previous_table(tmp_path):
    "A second run over changed rows keeps the first table and lists every changed, new or dropped accuracy row."
    save_table(_rows("zeta_mixup", 0.03), tmp_path / "zeta_mixup_summary.csv")
    save_table(_rows("sem", -0.01), tmp_path / "sem_summary.csv")
    _run(tmp_path)
    first = pd.read_csv(tmp_path / "summary.csv")
    assert not (tmp_path / "summary_previous.csv").exists()  # nothing earlier to keep
    save_table(_rows("zeta_mixup", 0.05), tmp_path / "zeta_mixup_summary.csv")  # mixup's mean moves by +2 points
    (tmp_path / "sem_summary.csv").unlink()
    save_table(_rows("snapmix", 0.0), tmp_path / "snapmix_summary.csv")
    _run(tmp_path)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "summary_previous.csv"), first)
    changes = pd.read_csv(tmp_path / "summary_changes.csv")
    kind = {(r.experiment, r.method): r.change for r in changes.itertuples()}
    assert kind == {("zeta_mixup", "mixup"): "changed", ("sem", "erm"): "dropped", ("sem", "mixup"): "dropped",
                    ("snapmix", "erm"): "new", ("snapmix", "mixup"): "new"}
    moved = changes[changes.change == "changed"].iloc[0]
    assert abs(moved["delta (pp)"] - 2.0) < 1e-9
    _run(tmp_path)  # the same inputs again: the table is unchanged and the comparison still reads the kept one
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "summary_previous.csv"), first)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "summary_changes.csv"), changes)


def test_summary_compares_with_a_reference_and_names_what_moved(tmp_path):
    "The 'Did this run reproduce the reference?' section: a moved mean and a flipped conclusion are reported."
    ref = tmp_path / "reference"
    save_table(_rows("zeta_mixup", 0.03), ref / "summary.csv")
    (ref / "machine.json").write_text('{"scale": "default", "tiny": false}')
    save_table(_rows("zeta_mixup", -0.03), tmp_path / "zeta_mixup_summary.csv")
    save_table(_rows("sem", 0.0), tmp_path / "sem_summary.csv")
    run_notebook("summary", tmp_path / "summary_out.ipynb", out_dir=str(tmp_path), reference=str(ref))
    text = (tmp_path / "summary_out.ipynb").read_text()
    assert "1 of 1 conclusions do not hold (zeta_mixup · mixup · test_acc (digits)" in text
    assert "outside seed noise" in text and "2 row(s) only in this run" in text
    run_notebook("summary", tmp_path / "tiny_out.ipynb", out_dir=str(tmp_path), tiny=True)
    assert "tiny: not comparable" in (tmp_path / "tiny_out.ipynb").read_text()


def test_summary_at_full_scale_checks_the_published_numbers(tmp_path):
    "At full scale the comparison is with the papers: within their spread, or the paper within our seed interval."
    paper = {"erm": {"value": 0.81, "std": 0.005, "note": "same setting"}, "mixup": 0.70}
    df = pd.DataFrame({"method": ["erm"] * 3 + ["mixup"] * 3, "dataset": "cifar10", "seed": [0, 1, 2] * 2, "test_acc": [0.80, 0.82, 0.81, 0.83, 0.85, 0.84]})
    save_table(summary_rows(aggregate(df), "zeta_mixup", "test_acc", setting=["dataset"], paper=paper),
               tmp_path / "zeta_mixup_summary.csv")
    run_notebook("summary", tmp_path / "full_out.ipynb", out_dir=str(tmp_path), scale="full")
    text = (tmp_path / "full_out.ipynb").read_text()
    assert "1 of 2 published numbers agree with ours" in text
    assert "within the paper's spread" in text and "paper outside our seed interval" in text
    assert "81.0 ± 0.5 (same setting)" in text  # the summary table shows the spread and the note
