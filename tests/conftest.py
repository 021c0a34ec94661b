import os
import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "2")

@pytest.fixture
def generator():
    "A freshly seeded CPU generator."
    return torch.Generator().manual_seed(0)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test that takes more than about a minute (deselect with -m 'not slow')")
