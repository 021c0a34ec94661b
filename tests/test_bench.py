"""Smoke tests of mixup_lab.bench: the helpers run on tiny inputs and agree with the package, and the benchmark notebook
runs end to end at tiny size. No time is ever asserted."""
import math
import os
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings, strategies as st

from mixup_lab.bench import (clone_floor, intra_class_loop, make_step, markdown_table, paired_ratio, peak_memory,
                             percent_map_loop, quiet_stderr, ratio_row, ratio_table, step_benchmark, summary_table, time_fn, time_many,
                             zeta_reference, zeta_reference_matrix)
from mixup_lab.core import ERM, one_hot
from mixup_lab.experiments import SUMMARY_COLUMNS
from mixup_lab.models import small_cnn
from mixup_lab.snapmix import semantic_percent_map
from mixup_lab.synermix import intra_class_mix
from mixup_lab.zeta import ZetaMixup, p_series_weights


def test_time_fn_and_many_return_positive_medians():
    x = torch.randn(32, 64)
    assert time_fn(lambda: x.sum(), min_run_time=0.005) > 0
    assert time_fn(lambda: x.sum(), min_run_time=0.005, clock="wall") > 0
    out = time_many({"sum": lambda: x.sum(), "clone": lambda: x.clone()}, min_run_time=0.005, rounds=2)
    assert set(out) == {"sum", "clone"} and all(v > 0 and math.isfinite(v) for v in out.values())
    assert clone_floor(x, min_run_time=0.005) > 0


def test_time_many_single_call_rounds():
    "A function slower than a round's budget is timed once per round."
    calls = []
    def slow():
        calls.append(1)
        torch.randn(200, 200) @ torch.randn(200, 200)
    time_many({"slow": slow}, min_run_time=1e-6, rounds=3, block_time=1e-6)
    assert len(calls) == 4  # one warm-up, then one per round
    calls.clear()
    time_many({"slow": slow}, min_run_time=1e-6, rounds=3, warmup=0, block_time=1e-6)
    assert len(calls) == 3


def test_time_many_blocks_fast_functions():
    "A function much faster than block_time is timed in blocks of at least 50 calls."
    calls = []
    out = time_many({"fast": lambda: calls.append(1)}, min_run_time=1e-3, rounds=2, per_round=True)
    assert len(out["fast"]) == 2 and len(calls) >= 1 + 2 * 50


def test_time_many_rotates_the_order():
    "Each round starts with the next function, so no function is always measured first."
    order = []
    fns = {name: (lambda name=name: order.append(name)) for name in "abc"}
    time_many(fns, min_run_time=1e-7, rounds=3, warmup=0, block_time=1e-9)
    assert order == list("abc") + list("bca") + list("cab")


@pytest.mark.parametrize("kwargs, match", [(dict(clock="cpu"), "clock must be one of"),
                                           (dict(min_run_time=-1.0), "min_run_time must be a finite number > 0"),
                                           (dict(device="cuda"), "CUDA is not available")])
def test_time_fn_errors(kwargs, match):
    if kwargs.get("device") == "cuda" and torch.cuda.is_available(): pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match=match): time_fn(lambda: None, **kwargs)


def test_paired_ratio():
    assert paired_ratio([2.0, 4.0, 9.0], [1.0, 2.0, 3.0]) == 2.0  # the median of 2, 2, 3
    with pytest.raises(ValueError, match="same length"): paired_ratio([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="non-empty"): paired_ratio([], [])


def test_time_many_errors():
    with pytest.raises(ValueError, match="rounds must be an int >= 1"): time_many({"a": lambda: None}, rounds=0)
    with pytest.raises(ValueError, match="warmup must be an int >= 0"): time_many({"a": lambda: None}, warmup=-1)
    with pytest.raises(ValueError, match="at least one function"): time_many({})


def test_peak_memory_counts_allocations():
    assert peak_memory(lambda: torch.ones(500, 1000).sum()) >= 2_000_000
    assert peak_memory(lambda: None) == 0


def test_quiet_stderr_restores_fd2():
    before = os.fstat(2)
    with quiet_stderr(): os.write(2, b"this line goes to /dev/null\n")
    after = os.fstat(2)
    assert (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino)


def test_step_benchmark_and_make_step():
    model, x, y = small_cnn(3, width=4), torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    seconds, peak = step_benchmark(model, ERM(3), x, y, min_run_time=0.005)
    assert seconds > 0 and peak > 0
    assert all(p.grad is None for p in model.parameters())  # gradients are released at the end of a step
    step = make_step(small_cnn(3, width=4), ERM(3), x, y)
    assert len({peak_memory(step) for _ in range(3)}) == 1  # momentum buffers exist: the first step is steady-state
    assert math.isfinite(step())
    with pytest.raises(TypeError, match=r"loss\(model, x, y\)"): make_step(model, object(), x, y)


@settings(deadline=None, max_examples=30)
@given(num=st.floats(1e-6, 1e3), den=st.floats(1e-6, 1e3), target=st.floats(0.01, 100), at_least=st.booleans())
def test_ratio_table_status_follows_target(num, den, target, at_least):
    df = ratio_table([ratio_row("s", "c", "a", num, "b", den, target, at_least=at_least)])
    ratio = df["ratio"].iloc[0]
    assert ratio == pytest.approx(num / den)
    assert df["meets"].iloc[0] == ("pass" if (ratio >= target if at_least else ratio <= target) else "miss")
    assert df["target"].iloc[0] == f"{'≥' if at_least else '≤'} {target:g}"


def test_ratio_table_informative_rows_and_markdown():
    df = ratio_table([ratio_row("step", "m", "mixup", 3 * 2**20, "ERM", 2 * 2**20, unit="B"),
                      ratio_row("mixing", "m", "ours", 2e-6, "timm", 4e-6, 1.0)])
    assert df["meets"].tolist() == ["", "pass"]
    assert {"target", "meets", "threads", "cores", "device"} <= set(df.columns)
    md = markdown_table(df)
    assert "3.00 MiB" in md and "2 µs" in md and "≤ 1" in md
    with pytest.raises(ValueError, match="unit must be one of"): ratio_row("a", "b", "c", 1, "d", 1, unit="ms")
    with pytest.raises(ValueError, match="at least one"): ratio_table([])


@settings(deadline=None, max_examples=20)
@given(b=st.integers(2, 12), gamma=st.floats(0.5, 5.0), seed=st.integers(0, 2**16))
def test_zeta_reference_matrix_rows(b, gamma, seed):
    w = zeta_reference_matrix(b, gamma, torch.Generator().manual_seed(seed))
    weights = p_series_weights(b, gamma, torch.float64)
    torch.testing.assert_close(w.diagonal(), weights[0].expand(b))
    torch.testing.assert_close(w.sort(1, descending=True).values, weights.expand(b, b))


@settings(deadline=None, max_examples=20)
@given(b=st.integers(2, 10), seed=st.integers(0, 2**16))
def test_zeta_reference_matches_zeta_mixup(b, seed):
    g = torch.Generator().manual_seed(seed)
    x, t = torch.randn(b, 2, 3, 3, generator=g), one_hot(torch.arange(b) % 3, 3)
    plan = ZetaMixup(num_classes=3, generator=g).plan(x)
    xr, tr = zeta_reference(x, t, plan.matrix())
    torch.testing.assert_close(plan.inputs(x), xr, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(plan.rows(t), tr, rtol=1e-6, atol=1e-6)


@settings(deadline=None, max_examples=20)
@given(b=st.integers(1, 40), k=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_intra_class_loop_matches(b, k, seed):
    g = torch.Generator().manual_seed(seed)
    feats, labels = torch.randn(b, 5, generator=g), torch.randint(0, k, (b,), generator=g)
    ours, classes = intra_class_mix(feats, labels, torch.Generator().manual_seed(seed))
    ref, ref_classes = intra_class_loop(feats, labels, torch.Generator().manual_seed(seed))
    assert torch.equal(classes, ref_classes)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_percent_map_loop_matches_batched():
    g = torch.Generator().manual_seed(0)
    fm, head, lab = torch.randn(4, 8, 3, 3, generator=g), nn.Linear(8, 5), torch.tensor([0, 4, 2, 2])
    fm[1] = 0.0  # a constant map: NaN in both
    ours, ref = semantic_percent_map(fm, head, lab, (9, 6)), percent_map_loop(fm, head, lab, (9, 6))
    torch.testing.assert_close(ours, ref, equal_nan=True)
    assert ref[1].isnan().all() and torch.allclose(ref[0].sum(), torch.tensor(1.0))


def test_summary_table_rows_with_targets():
    df = ratio_table([ratio_row("1 mixing", "mixup (8,3,4,4)", "ours", 2.0, "x.clone()", 1.0, 2.5),
                      ratio_row("3 intra", "B=8", "per-class loop", 3.0, "ours", 1.0, 20, at_least=True),
                      ratio_row("5 step time", "cnn", "mixup", 1.1, "ERM", 1.0, 1.1),
                      ratio_row("5 step memory", "cnn", "mixup", 1.0, "ERM", 1.0, unit="B")])
    s = summary_table(df)
    assert list(s.columns) == list(SUMMARY_COLUMNS) and len(s) == 3  # the informative row is left out
    assert s["experiment"].unique().tolist() == ["benchmarks"]
    assert s["method"].tolist() == ["ours", "ours", "mixup"]
    assert s["metric"].tolist() == ["time ratio vs x.clone()", "speed-up vs per-class loop (its time ÷ ours)", "time ratio vs ERM"]
    assert s["mean"].tolist() == pytest.approx([2.0, 3.0, 1.1])
    assert s["paper"].tolist() == ["≤ 2.5", "≥ 20", "≤ 1.1"]


def _kernel():
    from jupyter_client.kernelspec import KernelSpecManager
    return "mixup_lab" if "mixup_lab" in KernelSpecManager().find_kernel_specs() else "python3"


def test_notebook_tiny_run(tmp_path):
    "The benchmark notebook end to end at tiny size: every output file, the table's columns, the summary format."
    pm = pytest.importorskip("papermill")
    import pandas as pd
    nbs = Path(__file__).resolve().parent.parent / "nbs"
    pm.execute_notebook(str(nbs / "90_benchmarks.ipynb"), str(tmp_path / "out.ipynb"), kernel_name=_kernel(),
                        parameters=dict(tiny=True, out_dir=str(tmp_path / "runs")), cwd=str(nbs), progress_bar=False)
    runs = tmp_path / "runs"
    for name in ("benchmarks.csv", "benchmarks.md", "benchmarks_summary.csv", "benchmarks_zeta_error.csv",
                 "benchmarks_steps.csv", "benchmarks_family_parts.csv", "benchmarks_mixing_busy.csv",
                 "benchmarks_environment.json", "figures/benchmarks.png"):
        assert (runs / name).is_file(), name
    table = pd.read_csv(runs / "benchmarks.csv", keep_default_na=False)
    assert {"section", "case", "ratio", "target", "meets", "threads", "device"} <= set(table.columns)
    assert set(table["meets"]) <= {"pass", "miss", ""} and (table["meets"] != "").any()
    assert set(table["section"]) == {"1 mixing", "1b mixing, busy CPU", "2 ζ-mixup", "3 SynerMix-Intra", "4 SnapMix maps",
                                     "5 step time", "5 step memory", "6 family", "7 data loading"}
    loading = table[table["section"] == "7 data loading"]
    assert (loading["target"] == "≥ 5").all() and (loading["ratio"] > 0).all()
    assert (runs / "benchmarks_loader.csv").is_file()
    summary = pd.read_csv(runs / "benchmarks_summary.csv")
    assert list(summary.columns) == list(SUMMARY_COLUMNS) and (summary["experiment"] == "benchmarks").all()
    assert len(summary) == (table["target"] != "").sum()
