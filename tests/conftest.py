import os
import pytest
import torch

from mixup_lab import data

os.environ.setdefault("OMP_NUM_THREADS", "2")

@pytest.fixture
def generator():
    "A freshly seeded CPU generator."
    return torch.Generator().manual_seed(0)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run the tests marked slow (each notebook at full scale on stand-in data; `make test-slow`)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test of several minutes, skipped unless --runslow (or MIXUP_LAB_SLOW=1)")


def pytest_collection_modifyitems(config, items):
    # The default run stays within CI's budget; the end-to-end reproduce test already runs every notebook at full scale.
    if config.getoption("--runslow") or os.environ.get("MIXUP_LAB_SLOW") == "1": return
    skip = pytest.mark.skip(reason="slow: run with --runslow or `make test-slow`")
    for item in items:
        if "slow" in item.keywords: item.add_marker(skip)


@pytest.fixture
def fixture_root(tmp_path):
    "Stand-in CIFAR-10/100 and CUB folders in their real on-disk formats."
    root = tmp_path / "data"
    data.write_cifar(root, "cifar10", per_class=4, test_per_class=2)
    data.write_cifar(root, "cifar100", per_class=4, test_per_class=1)
    data.write_image_folder(root / "cub200", classes=3, per_class=4, size=32)
    return root


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    "No ImageNet weights anywhere: an empty hub cache, no $MIXUP_LAB_WEIGHTS."
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("MIXUP_LAB_WEIGHTS", raising=False)
