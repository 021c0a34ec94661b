import os
import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "2")

@pytest.fixture
def generator():
    "A freshly seeded CPU generator."
    return torch.Generator().manual_seed(0)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run the tests marked slow")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a long end-to-end test (minutes); skipped unless --runslow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"): return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords: item.add_marker(skip)
