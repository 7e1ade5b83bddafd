"""Fixtures of the engine tests: the synthetic panoptic dataset, generated once per session."""

from pathlib import Path

import pytest

from mask2former.data.datasets.synthetic import (
    SYNTHETIC_DIRNAME,
    ensure_synthetic_dataset,
    register_synthetic_datasets,
)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset root (``DETECTRON2_DATASETS``) holding the synthetic dataset that the builtin
    ``m2f_synthetic_panoptic_{train,val}`` registrations read."""
    root = tmp_path_factory.mktemp("datasets")
    ensure_synthetic_dataset(root / SYNTHETIC_DIRNAME)
    return root


@pytest.fixture
def synthetic_datasets(synthetic_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``DETECTRON2_DATASETS`` pointed at :func:`synthetic_root` for this test, and the builtin
    registrations (root-relative) in place, should another test have removed them."""
    monkeypatch.setenv("DETECTRON2_DATASETS", str(synthetic_root))
    register_synthetic_datasets()
    return synthetic_root
