"""When training is reproducible by iteration (``SEED`` >= 0 and the uniform sampler) and what
happens otherwise; the seeds derived from SEED and counters."""

import logging
from pathlib import Path

import pytest

from mask2former.data.bad_samples import SkippedSampleCounter
from mask2former.data.samplers import IterationBatchLoader
from mask2former.engine import Trainer
from mask2former.engine.reproducibility import IterationSeeds, reproducible_training
from mask2former.utils.seeding import derive_seed
from tests.helpers.train_runs import tiny_config


def test_seed_zero_uses_the_reproducible_loader(synthetic_datasets: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    assert reproducible_training(cfg)
    loader = Trainer.build_train_loader(cfg)  # wrapped by the counter of skipped samples
    assert isinstance(loader, SkippedSampleCounter) and isinstance(
        loader.loader, IterationBatchLoader
    )


def test_negative_seed_keeps_detectron2s_loader(
    synthetic_datasets: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = tiny_config(tmp_path, "SEED", "-1")
    with caplog.at_level(logging.INFO, logger="mask2former.engine.reproducibility"):
        loader = Trainer.build_train_loader(cfg)
    assert isinstance(loader, SkippedSampleCounter) and not reproducible_training(cfg)
    assert not isinstance(loader.loader, IterationBatchLoader)
    assert "will not repeat an uninterrupted one" in caplog.text


def test_another_sampler_is_detectron2s_with_a_warning(
    synthetic_datasets: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = tiny_config(tmp_path, "DATALOADER.SAMPLER_TRAIN", "RepeatFactorTrainingSampler")
    with caplog.at_level(logging.WARNING, logger="mask2former.engine.reproducibility"):
        assert not reproducible_training(cfg, log=True)
    assert "RepeatFactorTrainingSampler" in caplog.text


def test_resuming_with_another_seed_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    hook = IterationSeeds(1)
    with caplog.at_level(logging.WARNING, logger="mask2former.engine.reproducibility"):
        hook.load_state_dict({"seed": 1})
        assert caplog.text == ""
        hook.load_state_dict({"seed": 0})
    assert "SEED=1" in caplog.text and "SEED=0" in caplog.text


def test_derived_seeds_differ_by_every_key() -> None:
    seeds = {
        derive_seed(0, purpose, i, j) for purpose in range(3) for i in range(5) for j in (0, 1)
    }
    assert len(seeds) == 30 and all(0 <= s < 2**32 for s in seeds)
    assert derive_seed(7, 1, 2) == derive_seed(7, 1, 2) != derive_seed(8, 1, 2)
    with pytest.raises(ValueError):
        derive_seed(-1, 0)
