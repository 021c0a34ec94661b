"The whole full-scale path on this CPU: `reproduce --scale full` on stand-in CIFAR-10/100 and CUB files in their published on-disk formats, the smallest slice, through every experiment notebook and the summary (issue 9, section 4). In its own file so that pytest-xdist starts it early."
import json
import re
import time

import pandas as pd
import torch

from mixup_lab.reproduce import main

EXPERIMENTS = ("zeta_mixup", "synermix", "snapmix", "sem", "family")


def test_end_to_end_full_scale_on_cpu(tmp_path, capsys, fixture_root, no_weights):
    "reproduce --scale full on stand-in data in the real formats, the smallest slice, through every experiment and the summary."
    import torchvision
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save(torchvision.models.resnet50().state_dict(), weights / "resnet50-0676ba61.pth")  # a local state dict
    out = tmp_path / "out"
    tic = time.time()
    code = main(["--scale", "full", "--data-root", str(fixture_root), "--device", "cpu", "--no-verify", "--epochs", "1",
                 "--seeds", "0", "--subset", "2", "--tiny", "--weights", str(weights), "--out", str(out),
                 "--only", ",".join(EXPERIMENTS + ("summary",))])
    seconds = time.time() - tic
    text = capsys.readouterr()
    assert code == 0, text.err[-3000:]
    assert "--no-verify: the CIFAR md5 sums are not checked" in text.err
    planned = dict(re.findall(r"^(\w+): .*?; (\d+) runs,", text.out, flags=re.M))
    assert set(planned) == set(EXPERIMENTS), text.out
    for name in EXPERIMENTS:
        records = [json.loads(p.read_text()) for p in (out / name / "runs").glob("*.json")]
        assert len(records) == int(planned[name]), name
        assert all(r["status"] == "ok" for r in records), [r["error"] for r in records if r["status"] != "ok"]
        assert {r["run"]["epochs"] for r in records} == {1} and {r["run"]["seed"] for r in records} == {0}
        assert all(r["run"]["per_class"] == 2 for r in records if r["run"]["dataset"] != "digits"), name
        assert list(out.glob(f"{name}_*.csv")), name  # its tables
        assert (out / "notebooks" / f"{name}.ipynb").exists()
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    for name in EXPERIMENTS: assert any(f.startswith(name) for f in figures), (name, figures)
    assert all((out / "figures" / f).stat().st_size > 1000 for f in figures)
    summary = pd.read_csv(out / "summary.csv")  # our numbers beside the published ones
    assert set(EXPERIMENTS) <= set(summary["experiment"]) and summary["paper"].notna().any()
    manifest = json.loads((out / "reproduce.json").read_text())
    assert [n["name"] for n in manifest["notebooks"]] == list(EXPERIMENTS) + ["summary"]
    print(f"end-to-end full-scale reproduction on the CPU: {seconds:.0f} s")
