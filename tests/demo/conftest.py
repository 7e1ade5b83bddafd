"""Fixtures of the demo tests: the demo module, a tiny random-weight model and small images."""

from pathlib import Path
from types import ModuleType
from typing import Callable, Dict, List

import cv2
import pytest
import torch
from demo_helpers import CONFIG, SAMPLES, load_demo_module
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from mask2former.config import build_config


@pytest.fixture(scope="session")
def demo() -> ModuleType:
    return load_demo_module("demo")


@pytest.fixture(scope="session")
def tiny_weights_of(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Path]:
    """``make(config)``: a checkpoint of the (instant) model of ``config`` with random weights,
    its queries spread apart and its classifier sharpened so that queries differ in class and
    score, as a trained model's do. One per config and session."""
    made: Dict[Path, Path] = {}

    def make(config: Path) -> Path:
        if config not in made:
            torch.manual_seed(0)
            model = build_model(build_config(str(config), ["MODEL.WEIGHTS", ""]))
            predictor = model.sem_seg_head.predictor
            with torch.no_grad():
                predictor.query_feat.weight.mul_(10.0)
                predictor.query_embed.weight.mul_(10.0)
                predictor.class_embed.weight.mul_(5.0)
            out = tmp_path_factory.mktemp("tiny_weights")
            DetectionCheckpointer(model, save_dir=str(out)).save("model")
            made[config] = out / "model.pth"
        return made[config]

    return make


@pytest.fixture(scope="session")
def tiny_weights(tiny_weights_of: Callable[[Path], Path]) -> Path:
    """The panoptic instant model (:data:`demo_helpers.CONFIG`) of ``tiny_weights_of``."""
    return tiny_weights_of(CONFIG)


@pytest.fixture(scope="session")
def small_images(tmp_path_factory: pytest.TempPathFactory) -> List[Path]:
    """The two COCO sample images at 64x43 and 64x36, as JPEG files named like COCO's."""
    folder = tmp_path_factory.mktemp("small_images")
    paths = []
    for sample in SAMPLES:
        image = cv2.imread(str(sample))
        height = round(image.shape[0] * 64 / image.shape[1])
        path = folder / sample.name
        cv2.imwrite(str(path), cv2.resize(image, (64, height), interpolation=cv2.INTER_AREA))
        paths.append(path)
    return paths
