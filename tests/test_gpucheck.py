"The GPU check's code path on the CPU (--device cpu --tiny), its failure reporting, its timings JSON, and its no-CUDA exit."
import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mixup_lab import gpucheck
from mixup_lab.train import OBJECTIVES

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_cpu_run_passes_every_check(capsys, tmp_path):
    timings = tmp_path / "timings.json"
    status = gpucheck.main(["--device", "cpu", "--tiny", "--compile-backend", "eager", "--timings-out", str(timings)])
    out = capsys.readouterr().out
    assert status == 0, out
    for name in OBJECTIVES:  # every registered objective, with both generators, and its step time
        for kind in ("device", "cpu"):
            assert f"[ok]   objective {name}, {kind} generator" in out
        assert f"[ok]   step time: small_cnn 32 px batch 8, {name}" in out
    for line in ("DeviceLoader: batches on the device", "a CPU generator with data on the device",
                 "two views and two DDP shards", "timing: every objective's step vs ERM, eager",
                 "timing: DeviceLoader vs torchvision's DataLoader", "fit: 2 epochs of small_cnn",
                 "torch.compile (eager)", "measured epoch time",
                 "[ok]   train.resolve_device: 'auto' gives CUDA when it is usable",
                 "[ok]   fit with its defaults (amp and channels_last 'auto'",
                 "[ok]   image folder: stand-in JPEGs through experiments.build_data('folder:...')",
                 "SnapMix(cam_model=...)", "[ok]   step time: resnet18 32 px batch 4, snapmix",
                 "[ok]   run_grid: 2 runs at once on one cpu device", "throughput ratio",
                 "through fit(compile={'backend': 'eager'})", "first epoch (compiles)", "second epoch",
                 "[ok]   timings JSON: 15 step rows, concurrent measured"):
        assert line in out, line
    assert "| step vs ERM, eager" in out and "| loader speed-up" in out and "| step vs ERM, compiled (eager)" in out
    assert "| concurrent runs on one device" in out
    assert "0 failed" in out and "[FAIL]" not in out

    obj = json.loads(timings.read_text())  # the schema reproduce --plan --timings reads, exactly
    assert gpucheck.validate_timings(obj) is obj
    assert set(obj) == {"schema", "device", "torch", "steps", "concurrent"}
    assert obj["schema"] == 1 and obj["device"] == "cpu" and obj["torch"] == torch.__version__
    for row in obj["steps"]:
        assert set(row) == {"model", "image_size", "batch_size", "method", "step_seconds"}
        assert isinstance(row["step_seconds"], float) and row["step_seconds"] > 0
    keys = {(r["model"], r["image_size"], r["batch_size"], r["method"]) for r in obj["steps"]}
    assert keys == {("small_cnn", 32, 8, n) for n in OBJECTIVES} | {("resnet18", 32, 4, "erm"), ("resnet18", 32, 4, "snapmix")}
    assert obj["concurrent"]["workers"] == 2 and obj["concurrent"]["throughput_ratio"] > 0


def test_the_full_plan_times_what_the_notebooks_train():
    plan = {(e["model"], e["image_size"], e["batch"]): gpucheck._plan_methods(e["methods"])
            for e in gpucheck.SIZES["full"]["steps"]["plan"]}
    assert plan[("cifar_resnet18", 32, 128)] == list(OBJECTIVES)
    assert {"erm", "mixup", "zeta", "cutmix", "fmix", "resizemix", "saliencymix", "mixup_cutmix"} <= set(plan[("cifar_resnet50", 32, 128)])
    assert plan[("resnet50", 448, 16)] == ["erm", "mixup", "cutmix", "snapmix"]
    steps = gpucheck.SIZES["full"]["steps"]
    assert (steps["warmup"], steps["timed"]) == (5, 20)


def test_a_failing_check_is_reported_and_the_others_still_run():
    buf = io.StringIO()
    report = gpucheck.Report(60, out=buf)
    gpucheck.check_objectives(report, torch.device("cpu"), gpucheck.SIZES["tiny"], names=["no_such_objective", "erm"])
    assert report.failures == ["objective no_such_objective, device generator, bf16 autocast, channels_last",
                               "objective no_such_objective, cpu generator, bf16 autocast, channels_last"]
    assert "[ok]   objective erm, device generator" in buf.getvalue()
    assert "[FAIL] objective no_such_objective, device generator, bf16 autocast, channels_last: ValueError" in buf.getvalue()


def test_failing_new_checks_give_a_nonzero_exit_with_their_names(monkeypatch, capsys, tmp_path):
    def broken_build_data(*args, **kwargs): raise RuntimeError("no image folder today")
    def broken_concurrent(*args, **kwargs): raise RuntimeError("no second process")
    def broken_resolve(device="auto"): return torch.device("meta")  # resolve_device gets 'auto' wrong
    monkeypatch.setattr(gpucheck, "build_data", broken_build_data)
    monkeypatch.setattr(gpucheck, "check_concurrent", broken_concurrent)  # raises outside any check: its section fails
    monkeypatch.setattr(gpucheck, "resolve_device", broken_resolve)
    timings = tmp_path / "t.json"
    status = gpucheck.main(["--device", "cpu", "--tiny", "--no-compile", "--timings-out", str(timings)])
    out = capsys.readouterr().out
    assert status == 1
    assert "[FAIL] image folder: stand-in JPEGs through experiments.build_data('folder:...')" in out
    assert "RuntimeError: no image folder today" in out
    assert "[FAIL] concurrent runs: RuntimeError: no second process" in out
    assert "[FAIL] train.resolve_device: 'auto' gives CUDA when it is usable, 'cuda' works: ValueError" in out
    assert "3 failed" in out and "failed: [" in out
    assert "[ok]   fit with its defaults" in out and "[ok]   step time: small_cnn 32 px batch 8, erm" in out  # the others ran
    obj = gpucheck.validate_timings(json.loads(timings.read_text()))  # still written, without the concurrency ratio
    assert obj["concurrent"] is None and len(obj["steps"]) == len(OBJECTIVES) + 2


def test_a_compile_failure_names_torch_compile(tmp_path):
    from mixup_lab.data import write_cifar
    write_cifar(tmp_path, "cifar10", per_class=2, test_per_class=1)
    report = gpucheck.Report(60, out=io.StringIO())
    gpucheck.check_training(report, torch.device("cpu"), gpucheck.SIZES["tiny"], tmp_path,
                            compile_backend="no_such_backend")
    assert len(report.failures) == 1 and "torch.compile (no_such_backend)" in report.failures[0]
    assert "torch.compile (backend 'no_such_backend') is unusable on this machine" in report.out.getvalue()


def test_timings_json_schema_and_default_path(tmp_path, monkeypatch):
    rows = [dict(model="cifar_resnet18", image_size=32, batch_size=128, method="erm", step_seconds=0.01)]
    path = gpucheck.write_timings(tmp_path / "t.json", "cpu", rows, {"workers": 2, "throughput_ratio": 1.6})
    assert json.loads(path.read_text())["steps"] == rows
    with pytest.raises(ValueError, match="step_seconds"):
        gpucheck.write_timings(tmp_path / "bad.json", "cpu", [dict(rows[0], step_seconds=-1.0)], None)
    assert not (tmp_path / "bad.json").exists()
    with pytest.raises(ValueError, match="exactly the keys"):
        gpucheck.validate_timings({"schema": 1, "device": "cpu", "torch": "2", "steps": [], "concurrent": None, "x": 1})
    monkeypatch.delenv("OUT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert gpucheck.default_timings_path() == tmp_path / "gpu_check_timings.json"
    monkeypatch.setenv("OUT", str(tmp_path / "out"))
    assert gpucheck.default_timings_path() == tmp_path / "out" / "gpu_check_timings.json"


def test_running_past_the_budget_fails(capsys, tmp_path):
    status = gpucheck.main(["--device", "cpu", "--tiny", "--no-compile", "--budget", "0.01",
                            "--timings-out", str(tmp_path / "t.json")])
    out = capsys.readouterr().out
    assert status == 1 and "ran past its budget" in out
    assert "failed: " in out and "time budget" in out
    gpucheck.validate_timings(json.loads((tmp_path / "t.json").read_text()))  # what was measured is still written


def test_a_swallowed_alarm_still_fails_the_budget(capsys, tmp_path, monkeypatch):
    # SIGALRM's exception is only printed when it lands in a gc callback or a __del__: the elapsed time must still count
    monkeypatch.setattr(gpucheck, "_alarm", lambda seconds: contextlib.nullcontext())
    status = gpucheck.main(["--device", "cpu", "--tiny", "--no-compile", "--budget", "0.01",
                            "--timings-out", str(tmp_path / "t.json")])
    out = capsys.readouterr().out
    assert status == 1 and "ran past its budget of 0 s" in out and "time budget" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_without_cuda_it_says_so_and_exits_zero(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mixup_lab.gpucheck"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and "CUDA is not available" in result.stdout
    assert not (ROOT / "gpu_check_timings.json").exists()


def test_bad_arguments_are_usage_errors():
    with pytest.raises(SystemExit) as info: gpucheck.main(["--device", "tpu"])
    assert info.value.code == 2
