import os
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"

# Small, deterministic CPU runs: 2 threads as on CI, and no accidental GPU use.
torch.set_num_threads(int(os.environ.get("M2F_TEST_THREADS", "2")))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES
