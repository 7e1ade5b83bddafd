"""Session fixtures of the export and conversion tests."""

from pathlib import Path
from typing import Callable

import pytest
from detectron2.checkpoint import DetectionCheckpointer
from export_samples import randomized_model, tiny_cfg


@pytest.fixture(scope="session")
def checkpoint_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``factory(kind)`` -> a training checkpoint (.pth) of the randomized tiny model."""
    cache: dict = {}

    def make(kind: str) -> Path:
        if kind not in cache:
            model = randomized_model(tiny_cfg(kind))
            out = tmp_path_factory.mktemp(f"ckpt_{kind}")
            DetectionCheckpointer(model, save_dir=str(out)).save("model")
            cache[kind] = out / "model.pth"
        return cache[kind]

    return make
