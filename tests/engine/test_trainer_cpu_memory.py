"""SOLVER.CPU_KEEP_FREED_MEMORY: the trainer keeps freed CPU memory in the process (glibc malloc,
mask2former/utils/cpu_memory.py) when the key is on, and leaves malloc alone when it is off."""

from pathlib import Path

import pytest

from mask2former.engine import Trainer
from mask2former.engine import trainer as trainer_module
from tests.helpers.train_runs import tiny_config


@pytest.mark.parametrize("keep", [True, False])
def test_trainer_applies_it_before_training_on_a_cpu(
    keep: bool, synthetic_datasets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SOLVER.CPU_KEEP_FREED_MEMORY: the trainer sets it up when it is built (before the first
    step and the loader's workers), and not when the key is off."""
    calls = []
    monkeypatch.setattr(trainer_module, "keep_freed_cpu_memory", lambda: calls.append(1))
    Trainer(tiny_config(tmp_path, "SOLVER.CPU_KEEP_FREED_MEMORY", str(keep)))
    assert calls == ([1] if keep else [])
