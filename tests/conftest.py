import logging
import os
from pathlib import Path
from typing import Iterator

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"

# Small, deterministic CPU runs: 2 threads as on CI, and no accidental GPU use.
torch.set_num_threads(int(os.environ.get("M2F_TEST_THREADS", "2")))


# Weight initialisers filled in place; a structural build test does not need their random values,
# and skipping them makes the 200M-parameter Swin-L builds take a fraction of the time.
_INITIALISERS = (
    "trunc_normal_",
    "normal_",
    "uniform_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "constant_",
)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def mask2former_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """``caplog`` receiving the records of the "mask2former" loggers, which detectron2's
    ``setup_logger(name="mask2former")`` (called by the demo and training) stops from
    propagating to the root logger that ``caplog`` listens to."""
    logger = logging.getLogger("mask2former")
    propagate = logger.propagate
    logger.propagate = False  # each record once, whether or not setup_logger ran
    logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)
        logger.propagate = propagate


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without CUDA, even where the tests run on one."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def no_init(monkeypatch: pytest.MonkeyPatch) -> None:
    """Weight initialisers do nothing (for tests of model structure only)."""
    for name in _INITIALISERS:
        monkeypatch.setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
