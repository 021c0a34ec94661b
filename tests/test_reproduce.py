"The papermill plumbing of the `reproduce` command, with throwaway one-cell notebooks (not the real experiments)."
import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from mixup_lab.reproduce import NOTEBOOKS, find_notebooks_dir, main, parse

PARAMS = ('scale = "default"\ndata_root = None\nout_dir = "."\ndevice = "auto"\n'
          'epochs = None\nseeds = None\ntiny = False')
RECORD = ("import os, json\nfrom pathlib import Path\n"
          "Path(out_dir, NAME + '.json').write_text(json.dumps(dict(scale=scale, data_root=data_root, device=device,\n"
          "    epochs=epochs, seeds=seeds, tiny=tiny, cwd=os.getcwd())))\n"
          "Path(out_dir, 'figures', NAME + '.png').write_bytes(b'png')")


def _write(nbs: Path, name: str, body: str):
    path = nbs / NOTEBOOKS[name]
    path.parent.mkdir(parents=True, exist_ok=True)
    cells = [new_code_cell(PARAMS, metadata={"tags": ["parameters"]}), new_code_cell(f"NAME = {name!r}\n" + body)]
    nbformat.write(new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                         "display_name": "Python 3"}}), path)


@pytest.fixture
def repo(tmp_path):
    nbs = tmp_path / "repo" / "nbs"
    _write(nbs, "zeta_mixup", RECORD)
    _write(nbs, "summary", RECORD)
    _write(nbs, "sem", "raise ValueError('broken experiment')")
    return nbs


def _exit(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def test_runs_notebooks_with_parameters_and_copies_figures(repo, tmp_path, capsys):
    out, data = tmp_path / "out", tmp_path / "data"
    data.mkdir()
    code, err = _exit(["--only", "zeta_mixup", "--nbs", str(repo), "--out", str(out), "--data-root", str(data),
                       "--seeds", "1,2", "--epochs", "3", "--device", "cpu", "--kernel", "no_such_kernel"], capsys)
    assert code == 0, err
    assert "no_such_kernel" in err and "python3" in err  # fell back to python3
    for name in ("zeta_mixup",):
        rec = json.loads((out / f"{name}.json").read_text())
        assert rec == {"scale": "default", "data_root": str(data.resolve()), "device": "cpu", "epochs": 3,
                       "seeds": [1, 2], "tiny": False, "cwd": str(repo / Path(NOTEBOOKS[name]).parent)}
        assert (out / "notebooks" / f"{name}.ipynb").exists()
        assert (repo.parent / "figures" / f"{name}.png").read_bytes() == b"png"
    manifest = json.loads((out / "reproduce.json").read_text())
    assert [n["name"] for n in manifest["notebooks"]] == ["zeta_mixup"]
    assert manifest["kernel"] == "python3"


def test_tiny_run_does_not_touch_repo_figures_and_failure_names_the_notebook(repo, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _exit(["--only", "zeta_mixup,sem", "--nbs", str(repo), "--out", str(out), "--tiny"], capsys)
    assert code == 1
    assert "notebook 'sem' failed" in err and "broken experiment" in err and "sem.ipynb" in err
    assert json.loads((out / "zeta_mixup.json").read_text())["tiny"] is True
    assert (out / "notebooks" / "sem.ipynb").exists()  # the partly executed notebook shows the traceback
    assert not (repo.parent / "figures").exists()


@pytest.mark.parametrize("argv, message", [
    (["--only", "zeta"], "unknown notebook name(s) ['zeta']"),
    (["--only", ","], "unknown notebook name"),
    (["--scale", "full"], "--scale full needs --data-root"),
    (["--scale", "full", "--data-root", "/nonexistent/data"], "no such folder"),
    (["--scale", "medium"], "invalid choice: 'medium'"),
    (["--device", "tpu"], "invalid choice: 'tpu'"),
    (["--seeds", "a,b"], "comma-separated integers"),
    (["--epochs", "0"], "integer >= 1"),
    (["--only", "snapmix"], "notebook(s) not found: snapmix"),
])
def test_bad_arguments_stop_before_any_work(repo, tmp_path, capsys, argv, message):
    out = tmp_path / "never"
    code, err = _exit(argv + ["--nbs", str(repo), "--out", str(out)], capsys)
    assert code == 2 and message in err, err
    assert not out.exists()


def test_selection_runs_in_canonical_order(repo):
    assert parse(["--only", "summary,zeta_mixup,sem", "--nbs", str(repo)]).names == ["zeta_mixup", "sem", "summary"]
    assert parse(["--nbs", str(repo), "--list"]).names == list(NOTEBOOKS)
    assert list(NOTEBOOKS)[-1] == "summary"  # it reads the other notebooks' outputs


def test_list_and_default_notebook_folder(repo, capsys):
    assert main(["--list", "--nbs", str(repo)]) == 0
    assert "zeta_mixup" in capsys.readouterr().out
    nbs = find_notebooks_dir()
    assert nbs.name == "nbs" and (nbs.parent / "mixup_lab").is_dir()
    with pytest.raises(FileNotFoundError, match="no such folder"):
        find_notebooks_dir("/nonexistent/nbs")
