import os
import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "2")

@pytest.fixture
def generator():
    "A freshly seeded CPU generator."
    return torch.Generator().manual_seed(0)
