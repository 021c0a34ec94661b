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
