"The GPU check's code path on the CPU (--device cpu --tiny), its failure reporting, and its no-CUDA exit."
import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mixup_lab import gpucheck
from mixup_lab.train import OBJECTIVES

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_cpu_run_passes_every_check(capsys):
    status = gpucheck.main(["--device", "cpu", "--tiny", "--compile-backend", "eager"])
    out = capsys.readouterr().out
    assert status == 0, out
    for name in OBJECTIVES:  # every registered objective, with both generators
        for kind in ("device", "cpu"):
            assert f"[ok]   objective {name}, {kind} generator" in out
    for line in ("DeviceLoader: batches on the device", "a CPU generator with data on the device",
                 "two views and two DDP shards", "timing: every objective's step vs ERM, eager",
                 "timing: DeviceLoader vs torchvision's DataLoader", "fit: 2 epochs of small_cnn",
                 "torch.compile (eager)", "measured epoch time"):
        assert line in out, line
    assert "| step vs ERM, eager" in out and "| loader speed-up" in out and "| step vs ERM, compiled (eager)" in out
    assert "0 failed" in out and "[FAIL]" not in out


def test_a_failing_check_is_reported_and_the_others_still_run():
    buf = io.StringIO()
    report = gpucheck.Report(60, out=buf)
    gpucheck.check_objectives(report, torch.device("cpu"), gpucheck.SIZES["tiny"], names=["no_such_objective", "erm"])
    assert report.failures == ["objective no_such_objective, device generator, bf16 autocast, channels_last",
                               "objective no_such_objective, cpu generator, bf16 autocast, channels_last"]
    assert "[ok]   objective erm, device generator" in buf.getvalue()
    assert "[FAIL] objective no_such_objective, device generator, bf16 autocast, channels_last: ValueError" in buf.getvalue()


def test_running_past_the_budget_fails(capsys):
    status = gpucheck.main(["--device", "cpu", "--tiny", "--no-compile", "--budget", "0.01"])
    out = capsys.readouterr().out
    assert status == 1 and "ran past its budget" in out
    assert "failed: " in out and "time budget" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_without_cuda_it_says_so_and_exits_zero():
    result = subprocess.run([sys.executable, "-m", "mixup_lab.gpucheck"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and "CUDA is not available" in result.stdout


def test_bad_arguments_are_usage_errors():
    with pytest.raises(SystemExit) as info: gpucheck.main(["--device", "tpu"])
    assert info.value.code == 2
