"Grids through real executors: claims shared by concurrent runners, a local process pool, submitit's local executor."
import json
import os
import socket
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
import torch

from mixup_lab.executors import LocalPool, local_executor, make_executor, visible_gpus
from mixup_lab.experiments import (CLAIM_STALE, Run, claim_path, grid, load_results, record_path, run_grid, run_one,
                                   train_run)

HERE = Path(__file__).resolve().parent
RUNS = grid(["erm", ("mixup", {"alpha": 0.5})], seeds=[0, 1, 2], epochs=1)


def logged_train(run, log):
    "A fake train_fn that appends who trained what to `log` (O_APPEND: whole lines) and takes a moment."
    with open(log, "a") as f: f.write(f"{run.run_id} {os.getpid()}\n")
    time.sleep(0.4)
    return {"test_acc": 0.1 * run.seed + (0.05 if run.method == "mixup" else 0.0)}


def _trained(log) -> list[tuple[str, int]]:
    return [(line.split()[0], int(line.split()[1])) for line in Path(log).read_text().splitlines()] if Path(log).exists() else []


RUNNER = """
import json, sys, time
from functools import partial
from pathlib import Path
sys.path.insert(0, {tests!r})
import test_executors as t
from mixup_lab.experiments import run_grid
Path({ready!r}).touch()
while not Path({go!r}).exists(): time.sleep(0.01)
df = run_grid(t.RUNS, {out!r}, partial(t.logged_train, log={log!r}), progress=False)
print(json.dumps(sorted(df.run_id)))
"""


def test_two_concurrent_runners_train_each_run_exactly_once(tmp_path):
    log, go, out = tmp_path / "log.txt", tmp_path / "go", tmp_path / "results"
    procs = []
    for i in range(2):
        code = RUNNER.format(tests=str(HERE), ready=str(tmp_path / f"ready{i}"), go=str(go), out=str(out), log=str(log))
        procs.append(subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, cwd=HERE.parent))
    deadline = time.time() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)):  # both imported torch: start together
        assert time.time() < deadline and all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.05)
    go.touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    expected = sorted(r.run_id for r in RUNS)
    for stdout, _ in outputs:
        assert json.loads(stdout.strip().splitlines()[-1]) == expected  # each runner returns the whole grid
    trained = _trained(log)
    assert sorted(rid for rid, _ in trained) == expected  # every run trained exactly once
    assert len({pid for _, pid in trained}) == 2  # and the work was shared
    assert sorted(p.name for p in (out / "runs").iterdir()) == [f"{rid}.json" for rid in expected]  # no claim left


def _claim(tmp_path, run, host, pid, age=0.0):
    path = claim_path(tmp_path, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"run_id": run.run_id, "host": host, "pid": pid, "token": "theirs", "started": "earlier"}))
    if age: os.utime(path, (time.time() - age,) * 2)
    return path


def test_a_killed_runners_claim_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"]); dead.wait()
    _claim(tmp_path, RUNS[0], socket.gethostname(), dead.pid)  # fresh, but its owner is gone from this host
    _claim(tmp_path, RUNS[1], "node-elsewhere", 4242, age=CLAIM_STALE + 60)  # another host, no heartbeat for too long
    log = tmp_path / "log.txt"
    df = run_grid(RUNS, tmp_path, partial(logged_train, log=log), progress=False)
    assert sorted(rid for rid, _ in _trained(log)) == sorted(r.run_id for r in RUNS) and len(df) == len(RUNS)
    assert not list((tmp_path / "runs").glob(".*"))


def test_a_live_claim_is_respected_and_picked_up_once_its_owner_dies(tmp_path):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        _claim(tmp_path, RUNS[0], socket.gethostname(), sleeper.pid)  # a live runner on this host
        _claim(tmp_path, RUNS[1], "node-elsewhere", 4242)  # a runner on another host with a fresh heartbeat
        log = tmp_path / "log.txt"
        with pytest.warns(UserWarning, match="2 run\\(s\\) are being trained by other runners"):
            df = run_grid(RUNS, tmp_path, partial(logged_train, log=log), progress=False, wait=False)
        assert sorted(df.run_id) == sorted(r.run_id for r in RUNS[2:])
        assert {rid for rid, _ in _trained(log)} == {r.run_id for r in RUNS[2:]}
    finally:
        sleeper.kill(); sleeper.wait()
    os.utime(claim_path(tmp_path, RUNS[1]), (time.time() - CLAIM_STALE - 1,) * 2)  # that host went silent too
    df = run_grid(RUNS, tmp_path, partial(logged_train, log=log), progress=False)  # the next pass
    assert len(df) == len(RUNS) and sorted(rid for rid, _ in _trained(log)) == sorted(r.run_id for r in RUNS)


def test_run_one_statuses(tmp_path):
    run = RUNS[0]
    log = tmp_path / "log.txt"
    assert run_one(run, tmp_path, partial(logged_train, log=log), threads=1) == {"run_id": run.run_id, "status": "ok"}
    assert run_one(run, tmp_path, partial(logged_train, log=log))["status"] == "exists"
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        _claim(tmp_path, RUNS[1], socket.gethostname(), sleeper.pid)
        assert run_one(RUNS[1], tmp_path, partial(logged_train, log=log))["status"] == "busy"
    finally:
        sleeper.kill(); sleeper.wait()
    assert len(_trained(log)) == 1


TINY = grid(["erm", ("mixup", {"alpha": 1.0})], seeds=[0, 1], epochs=1, batch_size=32, lr=0.05, per_class=4,
            model_kwargs={"width": 4})


def _numbers(results_dir) -> dict:
    "Every record's result without wall times, by run_id."
    out = {}
    for p in sorted((Path(results_dir) / "runs").glob("*.json")):
        rec = json.loads(p.read_text())
        result = {k: v for k, v in rec["result"].items() if k != "train_seconds"}
        result["history"] = [{k: v for k, v in row.items() if k != "time"} for row in result.get("history", [])]
        out[rec["run_id"]] = (rec["status"], result, rec["data"], rec["env"]["threads"])
    return out


def failing_train(run):
    raise ValueError(f"broken data pipeline for {run.run_id}")


def test_a_local_pool_gives_the_records_of_a_serial_run_bit_for_bit(tmp_path):
    run_grid(TINY, tmp_path / "serial", progress=False, threads=1)
    with local_executor(2, gpus=None, threads=1) as pool:
        pooled = run_grid(TINY, tmp_path / "pool", progress=False, executor=pool)
        assert len(pooled) == len(TINY)
        # an error in a worker reaches the caller, names the run, and leaves neither record nor claim
        with pytest.raises(ValueError, match="broken data pipeline") as info:
            run_grid(TINY[:1], tmp_path / "broken", failing_train, progress=False, executor=pool)
        assert any(TINY[0].run_id in note for note in getattr(info.value, "__notes__", []))
        assert not list((tmp_path / "broken" / "runs").iterdir())
    serial, pool_numbers = _numbers(tmp_path / "serial"), _numbers(tmp_path / "pool")
    assert serial == pool_numbers and len(serial) == len(TINY)
    assert {threads for *_, threads in serial.values()} == {1}


def where_am_i(barrier):
    barrier.wait(timeout=120)  # holds each worker until all three have a task: none can take two, however slow a start
    return os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES"), os.environ.get("MIXUP_LAB_WORKER")


def test_local_pool_assigns_gpus_round_robin_before_cuda_starts():
    import multiprocessing
    with multiprocessing.get_context("spawn").Manager() as manager, local_executor(3, gpus=["0", "1"]) as pool:
        barrier = manager.Barrier(3)
        seen = [f.result() for f in [pool.submit(where_am_i, barrier) for _ in range(3)]]
    by_pid = {pid: (gpu, worker) for pid, gpu, worker in seen}
    assert len(by_pid) == 3
    assert sorted(by_pid.values()) == [("0", "0"), ("0", "2"), ("1", "1")]  # worker i on GPU i mod 2: two share GPU 0


def test_submitit_local_executor_runs_a_grid(tmp_path):
    "The SLURM code path (pickled job, job folder, result file), run as subprocesses of this machine."
    spec = {"kind": "slurm", "cluster": "local", "folder": str(tmp_path / "jobs"), "gpus_per_job": 0,
            "cpus_per_job": 1, "timeout_min": 10, "partition": "ignored-here"}
    df = run_grid(TINY[:2], tmp_path / "slurm", progress=False, executor=spec)
    assert len(df) == 2 and set(df.status) == {"ok"}
    run_grid(TINY[:2], tmp_path / "serial", progress=False, threads=1)
    assert _numbers(tmp_path / "slurm") == _numbers(tmp_path / "serial")  # cpus_per_job=1: one thread, same numbers
    assert list((tmp_path / "jobs").iterdir())  # submitit's job files and logs


def test_make_executor_specs():
    assert make_executor(None) is None and make_executor("serial") is None and make_executor({"kind": "serial"}) is None
    with make_executor({"kind": "local", "workers": 2, "gpus": [3], "threads": 2}) as pool:
        assert isinstance(pool, LocalPool) and (pool.workers, pool.gpus, pool.threads) == (2, ["3"], 2)
        assert make_executor(pool) is pool
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['gpu'\] in a 'local' executor spec"):
        make_executor({"kind": "local", "gpu": 1})
    with pytest.raises(ValueError, match="needs 'folder'"):
        make_executor({"kind": "slurm", "partition": "gpu"})
    with pytest.raises(ValueError, match="needs 'kind'"):
        make_executor({"workers": 2})
    with pytest.raises(ValueError, match="workers must be an int >= 1"):
        make_executor({"kind": "local", "workers": 0})
    assert visible_gpus("2,3") == ["2", "3"] and visible_gpus(None) == []
