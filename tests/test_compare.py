"mixup_lab.compare: a run's summary beside a reference's (synthetic tables and fake run folders in tmp_path)."
import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from mixup_lab.compare import (Comparison, compare, compare_tables, paper_check, read_summary, report, run_results,
                               write_reference)
from mixup_lab.experiments import SUMMARY_COLUMNS, aggregate, grid, run_grid, save_table, summary_rows
from mixup_lab.reproduce import main

SEEDS = list(range(6))
NOISE = [0.0, 0.012, -0.008, 0.015, -0.011, 0.004]
OTHER = [0.01, -0.013, 0.006, -0.004, 0.011, -0.012]  # mixup's own noise: unpaired with ERM's


def rows(mixup=0.0, cutmix=0.03, experiment="zeta_mixup", seeds=SEEDS):
    "ERM ~ 0.80; mixup `mixup` above it (no clear difference at 0); cutmix `cutmix` above it (higher at 0.03)."
    k = len(seeds)
    acc = ([0.80 + e for e in NOISE[:k]] + [0.80 + mixup + e for e in OTHER[:k]]
           + [0.80 + cutmix + e + o / 5 for e, o in zip(NOISE[:k], OTHER[:k])])
    df = pd.DataFrame({"method": ["erm"] * k + ["mixup"] * k + ["cutmix"] * k, "dataset": "digits",
                       "seed": list(seeds) * 3, "test_acc": acc})
    return summary_rows(aggregate(df), experiment, "test_acc", setting=["dataset"])


def by_method(table: pd.DataFrame) -> dict:
    return {r.method: r for r in table.itertuples(index=False)}


def test_same_tables_agree_and_conclusions_hold():
    c = compare(rows(), rows())
    t = by_method(c.table)
    assert {r.noise for r in t.values()} == {"identical"}
    assert (t["mixup"].conclusion_ref, t["cutmix"].conclusion_ref) == ("no clear difference", "higher")
    assert t["erm"].check == "" and t["mixup"].check == t["cutmix"].check == "holds"
    assert c.verdict == "all 2 conclusions hold; 3 of 3 means within seed noise (3 identical)"


def test_a_small_move_is_within_noise_a_large_one_is_flagged():
    small = by_method(compare_tables(rows(mixup=0.003), rows()))["mixup"]
    assert small.noise == "within seed noise" and small.delta_lo < 0 < small.delta_hi and small.check == "holds"
    far = compare(rows(mixup=0.08), rows())
    m = by_method(far.table)["mixup"]
    assert m.noise == "outside seed noise" and m.delta_lo > 0
    assert abs(m.delta - 0.08) < 1e-12
    assert (m.conclusion_ref, m.conclusion_new, m.check) == ("no clear difference", "higher", "does not hold")
    assert far.verdict.startswith("1 of 2 conclusions do not hold (zeta_mixup · mixup · test_acc (digits)")
    assert "2 of 3 means within seed noise" in far.verdict


def test_a_flipped_conclusion_is_flagged():
    c = compare(rows(cutmix=-0.03), rows(cutmix=0.03))
    m = by_method(c.table)["cutmix"]
    assert (m.conclusion_ref, m.conclusion_new, m.same_sign, m.check) == ("higher", "lower", False, "does not hold")
    assert c.conclusions().set_index("method").loc["cutmix", "check"] == "does not hold"


def test_missing_rows_and_other_seed_counts_are_named():
    new = pd.concat([rows(seeds=SEEDS[:4]).iloc[:2], rows(experiment="family")], ignore_index=True)
    t = compare_tables(new, rows())
    status = dict(zip(zip(t.experiment, t.method), t.status))
    assert status == {("zeta_mixup", "erm"): "n differs (4 vs 6)", ("zeta_mixup", "mixup"): "n differs (4 vs 6)",
                      ("zeta_mixup", "cutmix"): "only in the reference", ("family", "erm"): "only in this run",
                      ("family", "mixup"): "only in this run", ("family", "cutmix"): "only in this run"}
    checks = dict(zip(zip(t.experiment, t.method), t.check))
    assert checks[("zeta_mixup", "cutmix")] == "missing in this run" and checks[("family", "cutmix")] == "new"
    verdict = Comparison(t, "a", "b").verdict
    assert "conclusion(s) of the reference missing in this run, not checked" in verdict  # named, not counted as failing
    assert "3 row(s) only in this run; 1 row(s) only in the reference; 2 row(s) with another number of seeds" in verdict


def test_failed_run_note_does_not_unmatch_a_row():
    new = rows()
    new.loc[new.method == "mixup", "method"] = "mixup [1 of 6 runs failed]"
    new.loc[new.method.str.startswith("mixup"), "n"] = 5
    t = by_method(compare_tables(new, rows()))
    assert t["mixup"].status == "n differs (5 vs 6)"


def test_damaged_tables_are_errors_naming_the_file(tmp_path):
    good = tmp_path / "ref"
    good.mkdir()
    rows().to_csv(good / "summary.csv", index=False)
    (tmp_path / "cols.csv").write_text(rows().drop(columns=["n"]).to_csv(index=False))
    with pytest.raises(ValueError, match=r"cols\.csv: columns .* differ from SUMMARY_COLUMNS"):
        compare(tmp_path / "cols.csv", good)
    rows().assign(std=["0.1", "wide", "0.2"]).to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(ValueError, match=r"text\.csv: column 'std' holds 'wide' in data row 2"):
        compare(good, tmp_path / "text.csv")
    pd.concat([rows(), rows().iloc[:1]]).to_csv(tmp_path / "dupe.csv", index=False)
    with pytest.raises(ValueError, match=r"dupe\.csv: 2 rows share"):
        compare(tmp_path / "dupe.csv", good)
    with pytest.raises(FileNotFoundError, match="no summary table there"):
        compare(tmp_path / "nowhere", good)
    old = rows().drop(columns=["paper_std", "paper_note"])  # a table written before paper_std/paper_note
    assert tuple(read_summary(old).columns) == SUMMARY_COLUMNS


def test_paper_spread_and_seed_interval():
    t = rows().assign(paper=[0.80, 0.70, "83.1 (another network)"], paper_std=[0.002, np.nan, np.nan])
    checked = dict(zip(paper_check(t).method, paper_check(t).paper_check))
    assert checked == {"erm": "within the paper's spread", "mixup": "paper outside our seed interval",
                       "cutmix": "text only: not compared"}
    t = rows().assign(paper=[0.85, 0.80, np.nan], paper_std=[0.01, np.nan, np.nan])
    checked = dict(zip(paper_check(t).method, paper_check(t).paper_check))
    assert checked == {"erm": "outside the paper's spread", "mixup": "paper within our seed interval"}
    assert compare(t).verdict.startswith("1 of 2 published numbers agree with ours")


def fake_run(folder: Path, mixup: float = 0.0, tiny: bool = False, scale: str = "default") -> Path:
    "A reproduce-like output folder: <experiment>/runs/*.json records, summary.csv and reproduce.json."
    noise = dict(zip(SEEDS, OTHER))
    acc = lambda r: {"test_acc": 0.8 + NOISE[r.seed] if r.method == "erm" else 0.8 + mixup + noise[r.seed],
                     "train_seconds": 1.0, "test_loss": 1.0}
    df = run_grid(grid(["erm", "mixup"], seeds=SEEDS, dataset="digits", epochs=1), folder / "zeta_mixup", train_fn=acc,
                  progress=False, threads=1)
    save_table(summary_rows(aggregate(df), "zeta_mixup", "test_acc", setting=["dataset"]), folder / "summary.csv")
    (folder / "reproduce.json").write_text(json.dumps({"parameters": {"scale": scale, "tiny": tiny},
                                                       "finished": "2026-01-01T00:00:00"}))
    return folder


def test_write_reference_ships_summary_results_and_machine(tmp_path):
    run = fake_run(tmp_path / "run", tiny=True)
    with pytest.raises(ValueError, match="tiny test run"):
        write_reference(run)  # never into the repository
    ref = write_reference(run, tmp_path / "reference" / "default")
    assert {p.name for p in ref.iterdir()} >= {"summary.csv", "results.csv", "machine.json"}
    results = pd.read_csv(ref / "results.csv")
    assert list(results.columns) == ["run_id", "experiment", "label", "method", "seed", "status", "metric", "value"]
    assert len(results) == 2 * len(SEEDS) * 2 and set(results.metric) == {"test_acc", "test_loss"}  # no timings
    assert results.experiment.unique().tolist() == ["zeta_mixup"]
    erm0 = results[(results.method == "erm") & (results.seed == 0) & (results.metric == "test_acc")].value.item()
    assert erm0 == pytest.approx(0.8)
    machine = json.loads((ref / "machine.json").read_text())
    assert machine["scale"] == "default" and machine["tiny"] is True and machine["threads"] == 1
    assert machine["runs"] == 12 and machine["cpu"] and machine["torch"] and machine["finished"] == "2026-01-01T00:00:00"
    pd.testing.assert_frame_equal(read_summary(ref), read_summary(run))
    records = sorted((run / "zeta_mixup" / "runs").glob("*.json"))
    records[0].write_text("{ damaged")
    with pytest.raises(Exception, match=records[0].name):
        run_results(run)


def test_report_writes_comparison_and_refuses_tiny_against_full_runs(tmp_path, capsys):
    ref = write_reference(fake_run(tmp_path / "a"), tmp_path / "nbs" / "experiments" / "reference" / "default")
    moved = fake_run(tmp_path / "b", mixup=0.08)
    c = report(moved, nbs=tmp_path / "nbs")  # the shipped reference of its scale
    out = capsys.readouterr().out
    assert c is not None and "1 of 1 conclusions do not hold" in out and "outside seed noise" in out
    written = pd.read_csv(moved / "comparison.csv")
    assert written.set_index("method").loc["mixup", "check"] == "does not hold"
    tiny = fake_run(tmp_path / "t", tiny=True)
    assert report(tiny, nbs=tmp_path / "nbs") is None and "tiny: not comparable" in capsys.readouterr().out
    assert report(tiny, ref) is None and "tiny: not comparable" in capsys.readouterr().out
    assert not (tiny / "comparison.csv").exists()
    (tmp_path / "elsewhere").mkdir()  # a notebooks folder without a reference
    assert report(fake_run(tmp_path / "c"), nbs=tmp_path / "elsewhere") is None
    assert "no reference shipped for the default scale" in capsys.readouterr().out


def test_reproduce_compare_only_compares(tmp_path, capsys):
    a, b = fake_run(tmp_path / "a"), fake_run(tmp_path / "b", mixup=0.003)
    assert main(["--out", str(b), "--compare", str(a)]) == 0
    out = capsys.readouterr().out
    assert "all 1 conclusions hold; 2 of 2 means within seed noise (1 identical)" in out
    assert (b / "comparison.csv").exists() and not (b / "notebooks").exists()  # nothing ran
    assert main(["--out", str(tmp_path / "empty"), "--compare", str(a)]) == 1
    (a / "summary.csv").write_text("experiment,mean\nx,1\n")
    assert main(["--out", str(b), "--compare", str(a)]) == 1
    err = capsys.readouterr().err
    assert "reproduce: comparison failed" in err and "summary.csv: columns" in err


def test_reproduce_ends_by_comparing_with_the_shipped_reference(tmp_path, capsys):
    "A throwaway summary notebook writes a summary.csv; reproduce compares it with nbs/experiments/reference/default."
    nbs = tmp_path / "repo" / "nbs"
    write_reference(fake_run(tmp_path / "ref_run"), nbs / "experiments" / "reference" / "default")
    src = fake_run(tmp_path / "new_run", mixup=0.08) / "summary.csv"
    params = ('scale = "default"\ndata_root = None\nout_dir = "."\ndevice = "auto"\n'
              'epochs = None\nseeds = None\ntiny = False')
    body = f"import shutil\nfrom pathlib import Path\nshutil.copy({str(src)!r}, Path(out_dir) / 'summary.csv')"
    cells = [new_code_cell(params, metadata={"tags": ["parameters"]}), new_code_cell(body)]
    nbformat.write(new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                         "display_name": "Python 3"}}),
                   nbs / "experiments" / "summary.ipynb")
    out = tmp_path / "out"
    assert main(["--only", "summary", "--nbs", str(nbs), "--out", str(out), "--kernel", "python3"]) == 0
    printed = capsys.readouterr().out
    assert "1 of 1 conclusions do not hold" in printed
    assert pd.read_csv(out / "comparison.csv").set_index("method").loc["mixup", "noise"] == "outside seed noise"
    assert main(["--only", "summary", "--nbs", str(nbs), "--out", str(tmp_path / "tiny"), "--kernel", "python3",
                 "--tiny"]) == 0
    assert "tiny: not comparable" in capsys.readouterr().out and not (tmp_path / "tiny" / "comparison.csv").exists()
