"Smoke tests of the SnapMix experiment notebook (nbs/experiments/snapmix.ipynb) with papermill, tiny=True."
from pathlib import Path

import numpy as np
import pandas as pd
import papermill as pm
import pytest
from notebooks import check_grid_cell, check_needs_data_root, grid_namespace, run_notebook

from mixup_lab.data import write_image_folder
from mixup_lab.experiments import SUMMARY_COLUMNS

FIGURES = ("snapmix_accuracy.png", "snapmix_examples.png", "snapmix_proportions.png")
TABLES = ("snapmix_accuracy", "snapmix_vs_cutmix", "snapmix_proportions", "snapmix_summary")


def execute(out_dir: Path, **parameters) -> None:
    run_notebook("snapmix", out_dir / "executed.ipynb", **parameters, out_dir=str(out_dir))


def stored_files(out_dir: Path) -> dict:
    "Every run record and cached figure model, with its modification time."
    files = list((out_dir / "snapmix" / "runs").glob("*.json")) + list((out_dir / "snapmix" / "models").glob("*.pt"))
    return {p.name: p.stat().st_mtime_ns for p in files}


def test_tiny_run_writes_tables_and_figures_and_resumes(tmp_path):
    execute(tmp_path, tiny=True)
    summary = pd.read_csv(tmp_path / "snapmix_summary.csv")
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    assert (summary["experiment"] == "snapmix").all() and (summary["metric"] == "test_acc").all()
    vs_erm = summary[~summary["setting"].str.endswith("diff vs cutmix")]
    assert list(vs_erm["method"]) == ["erm", "cutmix", "snapmix"]
    assert vs_erm["mean"].between(0, 1).all() and (vs_erm["n"] == 2).all()
    erm = vs_erm.set_index("method").loc["erm"]
    assert erm["diff"] == 0 and erm["diff_lo"] == 0  # the baseline against itself
    vs_cut = summary[summary["setting"].str.endswith("diff vs cutmix")]
    assert list(vs_cut["method"]) == ["snapmix"] and np.isfinite(vs_cut["diff"]).all()
    assert summary["paper"].isna().all()  # no published numbers at default scale
    for name in TABLES:
        assert (tmp_path / f"{name}.csv").is_file() and (tmp_path / f"{name}.md").is_file()
    for name in FIGURES:
        assert (tmp_path / "figures" / name).stat().st_size > 0
    props = pd.read_csv(tmp_path / "snapmix_proportions.csv")
    assert props[["mean", "std"]].notna().all().all() and len(props) == 4

    before = stored_files(tmp_path)
    assert sum(name.endswith(".json") for name in before) == 7 and sum(name.endswith(".pt") for name in before) == 1  # + the figure model
    execute(tmp_path, tiny=True)  # everything is cached: nothing is retrained, the tables are the same
    assert stored_files(tmp_path) == before
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "snapmix_summary.csv"), summary)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "snapmix_proportions.csv"), props)


def test_full_scale_needs_data_root(tmp_path):
    with pytest.raises(pm.PapermillExecutionError) as info:
        execute(tmp_path, scale="full", tiny=True)
    assert info.value.ename == "ValueError" and "data_root" in info.value.evalue


def test_full_scale_path_on_a_fake_image_folder(tmp_path):
    "scale='full' with tiny=True on a stand-in CUB folder of JPEGs: folder data, torchvision's ResNet-50 (random weights), no download."
    write_image_folder(tmp_path / "data" / "cub200", classes=[f"{k:03d}.bird_{k}" for k in range(3)], per_class=2,
                       size=(70, 80))
    execute(tmp_path, scale="full", tiny=True, data_root=str(tmp_path / "data"), device="cpu", verify=False)
    summary = pd.read_csv(tmp_path / "snapmix_summary.csv")
    assert set(summary["method"]) == {"erm", "cutmix", "snapmix"}
    assert summary["setting"].str.startswith("folder:cub200, resnet50").all()
    paper = summary[~summary["setting"].str.endswith("diff vs cutmix")].set_index("method")["paper"]
    assert paper["erm"] == 0.8549 and paper["snapmix"] == 0.8775 and np.isnan(paper["cutmix"])
    assert (tmp_path / "figures" / "snapmix_examples.png").stat().st_size > 0


def test_full_scale_without_the_imagenet_weights_stops_before_training(tmp_path, monkeypatch):
    "Offline without resnet50-0676ba61.pth: the config cell names the file; no run is trained or recorded."
    write_image_folder(tmp_path / "data" / "cub200", classes=2, per_class=1)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache for the kernel
    monkeypatch.delenv("MIXUP_LAB_WEIGHTS", raising=False)
    with pytest.raises(pm.PapermillExecutionError) as info:
        execute(tmp_path, scale="full", data_root=str(tmp_path / "data"), device="cpu", epochs=1, seeds=[0])
    assert info.value.ename == "FileNotFoundError" and "resnet50-0676ba61.pth" in info.value.evalue
    assert "https://download.pytorch.org/models/resnet50-0676ba61.pth" in info.value.evalue
    assert not (tmp_path / "snapmix").exists()  # nothing trained, nothing recorded


def test_grid_cell_comes_before_any_training():
    check_grid_cell("snapmix")


def test_full_scale_grid_then_data_root_check(tmp_path):
    ns = grid_namespace("snapmix", scale="full", out_dir=str(tmp_path))
    runs, fig = ns["runs"], ns["fig_run"]
    assert len(runs) == 4 * 3 + 1 and runs[-1] == fig  # ERM, mixup, CutMix, SnapMix x 3 seeds, and the figure model
    assert {(r.dataset, r.model, dict(r.model_kwargs)["pretrained"]) for r in runs} == {("folder:cub200", "resnet50", True)}
    assert (fig.method, fig.seed, fig.epochs, fig.label) == ("erm", 0, 5, "figure model")
    check_needs_data_root("snapmix", ns, tmp_path)


def test_parameters_shape_the_grid():
    ns = grid_namespace("snapmix", methods="snapmix(prob=0.5),cutmix", subset=3, seeds=[4, 5], epochs=2)
    assert [r.label for r in ns["main_runs"][:3]] == ["erm", "cutmix", "snapmix(prob=0.5)"]  # ERM always runs
    assert {(r.per_class, r.epochs, r.seed) for r in ns["main_runs"]} == {(3, 2, 4), (3, 2, 5)}
    fig = ns["fig_run"]  # the figure model follows epochs=, seeds= and subset= like every run
    assert (fig.epochs, fig.seed, fig.per_class, dict(fig.fit_kwargs)["eval_every"]) == (2, 4, 3, 2)
    assert ns["runs"][-1] == fig
    assert len(grid_namespace("snapmix", methods=["snapmix"])["main_runs"]) == 3 * 7  # a name keeps both SnapMix rows
    with pytest.raises(ValueError, match=r"methods: unknown \['fmix'\]; choose names from \['erm', 'mixup', 'cutmix', 'snapmix'\]"):
        grid_namespace("snapmix", methods="fmix")
    with pytest.raises(ValueError, match="subset"):
        grid_namespace("snapmix", subset=0)
