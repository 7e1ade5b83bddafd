"""Tiny random-weight models (the fixture-sized configs) and the real photos the export and
conversion tests run on."""

from pathlib import Path

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.modeling import build_model
from PIL import Image

import mask2former  # noqa: F401  (registers the model and datasets)
from mask2former.engine import build_config

REPO = Path(__file__).resolve().parents[2]
CONFIGS = {
    "swin": REPO / "tests/fixtures/official_tiny_swin/config_full.yaml",
    "r50": REPO / "tests/fixtures/official_tiny/config_full.yaml",
}
PHOTOS = sorted((REPO / "tests/data/samples/coco_panoptic/images").glob("*.jpg"))


def tiny_cfg(kind: str, *opts: str) -> CfgNode:
    return build_config(str(CONFIGS[kind]), ["MODEL.DEVICE", "cpu", *opts])


def randomized_model(cfg: CfgNode, seed: int = 0) -> torch.nn.Module:
    """A model whose every parameter and norm statistic is random (the initialisation leaves
    some at 0 or 1, e.g. the sampling-offset weights, which would hide a mapping error)."""
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.normal_(0.0, 0.1)
            elif name.endswith("running_var"):
                b.uniform_(0.5, 1.5)
    return model


def photo(index: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """A real photo, RGB uint8 [H, W, 3], optionally resized to ``size`` (h, w)."""
    image = Image.open(PHOTOS[index]).convert("RGB")
    if size is not None:
        image = image.resize((size[1], size[0]), Image.BILINEAR)
    return np.asarray(image).copy()


def normalized(model: torch.nn.Module, image_rgb: np.ndarray) -> torch.Tensor:
    """[1, 3, H, W] input of the backbone for an RGB model."""
    x = torch.from_numpy(image_rgb).permute(2, 0, 1).float()[None]
    return (x - model.pixel_mean[None]) / model.pixel_std[None]
