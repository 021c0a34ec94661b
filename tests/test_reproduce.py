"The papermill plumbing of the `reproduce` command, with throwaway one-cell notebooks (not the real experiments)."
import json
from pathlib import Path

import nbformat
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


# ---- issue 9: up-front checks, --plan, Ctrl-C, the full path end to end ----
import os
import re
import time

import torch

from mixup_lab import data, reproduce

GRID_PARAMS = PARAMS + "\nmethods = None\nsubset = None\nexecutor = None\nverify = True\nweights_dir = None"


def _grid_repo(tmp_path, dataset="cifar10", model="cifar_resnet18", model_kwargs=None):
    "A repo whose zeta_mixup notebook has a grid cell (runs on `dataset`/`model`) and then fails if it really runs."
    nbs = tmp_path / "repo" / "nbs"
    path = nbs / NOTEBOOKS["zeta_mixup"]
    path.parent.mkdir(parents=True, exist_ok=True)
    grid_cell = (f"from mixup_lab.experiments import grid\nNAME = 'zeta_mixup'\n"
                 f"runs = grid(['erm', ('mixup', {{'alpha': 1.0}})], seeds=seeds or [0], dataset={dataset!r}, "
                 f"model={model!r}, model_kwargs={model_kwargs or {}!r}, per_class=subset, epochs=epochs or 2)")
    cells = [new_code_cell(GRID_PARAMS, metadata={"tags": ["parameters"]}),
             new_code_cell(grid_cell, metadata={"tags": ["grid"]}), new_code_cell("raise RuntimeError('trained')")]
    nbformat.write(new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                         "display_name": "Python 3"}}), path)
    return nbs


def _bad(tmp_path, capsys, nbs, extra, root):
    out = tmp_path / "out"
    code, err = _exit(["--only", "zeta_mixup", "--nbs", str(nbs), "--out", str(out), "--scale", "full",
                       "--data-root", str(root), "--device", "cpu"] + extra, capsys)
    assert code == 2, err
    assert "nothing was run or written" in err and "Traceback" not in err
    assert not out.exists()
    return err


def test_bad_input_data_root_without_files(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    err = _bad(tmp_path, capsys, _grid_repo(tmp_path), [], tmp_path / "empty")
    assert "cifar-10-batches-py/ not found" in err and "cifar-10-python.tar.gz" in err


def test_bad_input_corrupt_pickle_and_md5(tmp_path, capsys):
    root = tmp_path / "data"
    folder = data.write_cifar(root, "cifar10", per_class=3)
    err = _bad(tmp_path, capsys, _grid_repo(tmp_path), [], root)
    assert "do not match the md5 checksums" in err and "--no-verify" in err  # stand-in files, checked by default
    (folder / "data_batch_3").write_bytes((folder / "data_batch_3").read_bytes()[:100])  # truncated
    err = _bad(tmp_path, capsys, _grid_repo(tmp_path), ["--no-verify"], root)
    assert "data_batch_3 is not a readable CIFAR-10 pickle" in err


def test_bad_input_missing_weights(tmp_path, capsys, no_weights):
    root = tmp_path / "data"
    data.write_image_folder(root / "cub200", classes=2, per_class=2)
    nbs = _grid_repo(tmp_path, "folder:cub200", "resnet50", {"pretrained": True})
    err = _bad(tmp_path, capsys, nbs, ["--weights", str(tmp_path / "weights_dir")], root)
    assert "--weights" in err and "no such folder" in err
    (tmp_path / "weights_dir").mkdir()
    err = _bad(tmp_path, capsys, nbs, ["--weights", str(tmp_path / "weights_dir")], root)
    assert "resnet50-0676ba61.pth" in err and str(tmp_path / "weights_dir") in err and "--weights DIR" in err
    (tmp_path / "weights_dir" / "resnet50-0676ba61.pth").write_bytes(b"present")  # the check only needs the file
    (root / "cub200" / "test" / "class_1").rename(root / "cub200" / "test" / "class_9")
    err = _bad(tmp_path, capsys, nbs, ["--weights", str(tmp_path / "weights_dir")], root)
    assert "resnet50" not in err and "same class folders" in err and "class_9" in err


@pytest.mark.parametrize("extra, messages", [
    (["--workers", "0"], ["--workers must be an integer >= 1 (runs at once), got 0"]),
    (["--executor", "dask"], ["unknown executor 'dask'", "serial, local, slurm"]),
    (["--executor", '{"kind": "mpi"}'], ["unknown executor kind 'mpi'"]),
    (["--subset", "5"], ["--subset 5 is larger than the smallest class of cifar10 (3 training images", "at most 3"]),
    (["--workers", "0", "--executor", "dask", "--subset", "5"], ["3 problem(s)"]),  # all of them at once
])
def test_bad_input_options(tmp_path, capsys, extra, messages):
    root = tmp_path / "data"
    data.write_cifar(root, "cifar10", per_class=3)
    err = _bad(tmp_path, capsys, _grid_repo(tmp_path), ["--no-verify"] + extra, root)
    for m in messages: assert m in err, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_full_scale_needs_cuda_unless_device_cpu(tmp_path, capsys):
    root = tmp_path / "data"
    data.write_cifar(root, "cifar10", per_class=3)
    out = tmp_path / "out"
    code, err = _exit(["--only", "zeta_mixup", "--nbs", str(_grid_repo(tmp_path)), "--out", str(out), "--scale", "full",
                       "--data-root", str(root), "--no-verify"], capsys)  # --device auto
    assert code == 2 and "CUDA is not available" in err and "--device cpu" in err and not out.exists()


def test_only_declared_parameters_are_injected(tmp_path, capsys):
    nbs = _grid_repo(tmp_path, "digits", "small_cnn")
    _write(nbs, "summary", RECORD)  # declares the seven common parameters only
    out = tmp_path / "out"
    nb = nbs / NOTEBOOKS["zeta_mixup"]
    nb.write_text(nb.read_text().replace("raise RuntimeError('trained')",
                                         "import json; json.dump(dict(subset=subset, executor=executor, verify=verify), "
                                         "open(out_dir + '/zeta.json', 'w'))"))
    code, err = _exit(["--only", "zeta_mixup,summary", "--nbs", str(nbs), "--out", str(out), "--subset", "2",
                       "--workers", "2", "--no-verify", "--kernel", "python3"], capsys)
    assert code == 0, err
    assert json.loads((out / "zeta.json").read_text()) == {"subset": 2, "executor": {"kind": "local", "workers": 2},
                                                          "verify": False}
    assert set(json.loads((out / "summary.json").read_text())) == {"scale", "data_root", "device", "epochs", "seeds",
                                                                  "tiny", "cwd"}
    assert "summary has no parameter" not in err  # the summary needs none of them: no note


def test_ctrl_c_prints_one_line(tmp_path, capsys, monkeypatch):
    nbs = _grid_repo(tmp_path, "digits", "small_cnn")
    def interrupted(*args, **kwargs): raise KeyboardInterrupt
    monkeypatch.setattr(reproduce, "run_notebooks", interrupted)
    code, err = _exit(["--only", "zeta_mixup", "--nbs", str(nbs), "--out", str(tmp_path / "out"), "--seeds", "0,1"],
                      capsys)
    assert code == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "reproduce: interrupted; 0 of 4 runs done, rerun the same command to resume"


def test_plan_default_scale(tmp_path, capsys):
    out = tmp_path / "never"
    tic = time.time()
    code = main(["--plan", "--out", str(out)])
    text = capsys.readouterr()
    assert code == 0, text.err
    assert "family: 1 datasets (digits) × 1 models (small_cnn) × 8 methods" in text.out and "total:" in text.out
    assert "device-hours" in text.out and "timed here on cpu" in text.out
    assert not out.exists()
    assert time.time() - tic < 120


TIMINGS = {"schema": 1, "device": "NVIDIA H100", "torch": "2.5", "concurrent": {"workers": 4, "throughput_ratio": 2.0},
           "steps": [{"model": m, "image_size": s, "batch_size": 128, "method": "erm", "step_seconds": t}
                     for m, s, t in [("cifar_resnet18", 32, 0.006), ("cifar_resnet50", 32, 0.015), ("resnet50", 448, 0.2),
                                     ("resnet18", 448, 0.1), ("resnet50", 224, 0.05), ("resnet18", 224, 0.025),
                                     ("small_cnn", 8, 0.001), ("small_cnn", 32, 0.002)]]}


def test_plan_full_scale_with_timings(tmp_path, capsys, fixture_root, no_weights):
    timings = tmp_path / "timings.json"
    timings.write_text(json.dumps(TIMINGS))
    out = tmp_path / "never"
    code = main(["--plan", "--scale", "full", "--data-root", str(fixture_root), "--timings", str(timings),
                 "--no-verify", "--out", str(out), "--workers", "4", "--weights", str(tmp_path)])
    text = capsys.readouterr()
    assert "family: 1 datasets (cifar100) × 1 models (cifar_resnet18) × 8 methods" in text.out
    assert "from " + str(timings) in text.out and "NVIDIA H100" in text.out and "timed here" not in text.out
    assert "wall hours" in text.out
    total = float(re.search(r"total: .* ≈ ([0-9.]+) device-hours", text.out).group(1))
    assert total > 0
    assert code in (0, 2) and not out.exists()  # 2: a problem listed under the plan (e.g. weights)
    if code == 2: assert "problem(s) a run would stop on" in text.err


def test_unknown_method_is_a_problem_found_in_the_grid(tmp_path, capsys):
    out = tmp_path / "never"
    code, err = _exit(["--only", "family", "--methods", "erm,nosuchmix", "--out", str(out)], capsys)
    assert code == 2 and "family.ipynb: the cells up to its grid cell failed" in err and "nosuchmix" in err
    assert not out.exists()
