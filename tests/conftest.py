"""Suite-wide settings.

One torch thread per test worker: the suite runs with ``pytest -n 2`` on 2 cores, and two
intra-op threads per worker on tiny tensors oversubscribe the machine (measured ~20× slower).
"""

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    torch.set_num_threads(1)
    yield
