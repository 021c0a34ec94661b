"Running the experiment notebooks with papermill from the tests (imported by the test_notebook_*.py files)."
from pathlib import Path

import papermill as pm
from jupyter_client.kernelspec import KernelSpecManager

EXPERIMENTS = Path(__file__).resolve().parents[1] / "nbs" / "experiments"
# `make setup` registers the mixup_lab kernel; a bare environment still has python3
KERNEL = "mixup_lab" if "mixup_lab" in KernelSpecManager().find_kernel_specs() else "python3"


def run_notebook(name: str,  # nbs/experiments/<name>.ipynb
                 target: Path,  # where the executed copy goes
                 **parameters,  # papermill parameters, e.g. tiny=True, out_dir=str(tmp_path)
                ):
    "Execute an experiment notebook from its own folder, as `reproduce` does; return papermill's notebook."
    return pm.execute_notebook(str(EXPERIMENTS / f"{name}.ipynb"), str(target), parameters=parameters,
                               kernel_name=KERNEL, cwd=str(EXPERIMENTS), progress_bar=False, log_output=False)


def code_cells(name: str):
    "The code cells of nbs/experiments/<name>.ipynb, the index of its `parameters` cell and of its `grid` cell."
    import nbformat
    code = [c for c in nbformat.read(EXPERIMENTS / f"{name}.ipynb", as_version=4).cells if c.cell_type == "code"]
    tags = [c.metadata.get("tags", []) for c in code]
    params = next(i for i, t in enumerate(tags) if "parameters" in t)
    grid_cell = next(i for i, t in enumerate(tags) if "grid" in t)
    return code, params, grid_cell


def grid_namespace(name: str, **parameters) -> dict:
    "Run a notebook's parameters, set-up and grid cells in-process (as `reproduce --plan` does: nothing trained or written); return the namespace."
    code, params, grid_cell = code_cells(name)
    ns = {}
    exec(code[params].source, ns)
    ns.update(parameters)
    for cell in code[params + 1:grid_cell + 1]: exec(cell.source, ns)
    return ns


def check_grid_cell(name: str):
    "One `grid` cell after the parameters; nothing before it trains, loads data or writes files."
    code, params, grid_cell = code_cells(name)
    assert sum("grid" in c.metadata.get("tags", []) for c in code) == 1
    assert params < grid_cell
    early = "\n".join(c.source for c in code[:grid_cell + 1])
    for call in ("run_grid(", "train_run(", "fit(", "build_data(", "mkdir(", "data.cifar(", "digits(", "train_model("):
        assert call not in early, f"{call} before the grid cell of {name}"


def check_needs_data_root(name: str, ns: dict, out_dir: Path):
    "At full scale without data_root, the cell after the grid stops with a ValueError naming data_root, before writing anything."
    import pytest
    code, _, grid_cell = code_cells(name)
    with pytest.raises(ValueError, match="data_root"):
        exec(code[grid_cell + 1].source, ns)
    assert not any(Path(out_dir).iterdir())  # failed before writing anything


def stand_in_cifar(root: Path, per_class: int = 1) -> Path:
    "Stand-in CIFAR-10 and CIFAR-100 under root, in the published on-disk formats (read with verify=False)."
    from mixup_lab.data import write_cifar
    for name in ("cifar10", "cifar100"): write_cifar(root, name, per_class=per_class, test_per_class=1)
    return root
