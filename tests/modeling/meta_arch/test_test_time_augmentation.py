"""SemanticSegmentorWithTTA: flips are undone and scales are averaged."""

from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from detectron2.config import CfgNode, get_cfg
from PIL import Image
from torch import nn

from mask2former.modeling.meta_arch.test_time_augmentation import SemanticSegmentorWithTTA


class ImageEchoModel(nn.Module):
    """Returns the image itself, resized to the output size, as ``sem_seg`` [3, height, width]."""

    def forward(self, batched_inputs: List[Dict[str, Any]]) -> List[Dict[str, torch.Tensor]]:
        outputs = []
        for x in batched_inputs:
            image = x["image"].float()[None]  # [1, 3, h, w]
            size = (x["height"], x["width"])
            outputs.append({"sem_seg": F.interpolate(image, size=size, mode="bilinear")[0]})
        return outputs


class InputHeightModel(nn.Module):
    """``sem_seg`` [1, height, width] filled with the height of the (augmented) input image."""

    def __init__(self) -> None:
        super().__init__()
        self.batch_sizes: List[int] = []

    def forward(self, batched_inputs: List[Dict[str, Any]]) -> List[Dict[str, torch.Tensor]]:
        self.batch_sizes.append(len(batched_inputs))
        return [
            {"sem_seg": torch.full((1, x["height"], x["width"]), float(x["image"].shape[1]))}
            for x in batched_inputs
        ]


def make_cfg(min_sizes, flip: bool, max_size: int = 1000) -> CfgNode:
    cfg = get_cfg()
    cfg.TEST.AUG.MIN_SIZES = min_sizes
    cfg.TEST.AUG.MAX_SIZE = max_size
    cfg.TEST.AUG.FLIP = flip
    return cfg


def asymmetric_image(height: int = 20, width: int = 30) -> torch.Tensor:
    """[3, H, W] uint8 image that differs from its mirror image."""
    ramp = torch.arange(width, dtype=torch.float32).expand(height, width)
    return torch.stack([ramp * 8, ramp.flip(1) * 3, ramp * 0 + 7]).to(torch.uint8)


def test_flip_is_undone() -> None:
    image = asymmetric_image()
    tta = SemanticSegmentorWithTTA(make_cfg(min_sizes=(20,), flip=True), ImageEchoModel())
    out = tta([{"image": image, "height": 20, "width": 30}])[0]["sem_seg"]
    # Both the plain and the flipped pass give back the image once the flip is undone.
    torch.testing.assert_close(out, image.float())
    naive = (image.float() + image.float().flip(2)) / 2  # what a forgotten un-flip would give
    assert not torch.allclose(out, naive)


def test_scales_are_averaged_and_batched() -> None:
    model = InputHeightModel()
    cfg = make_cfg(min_sizes=(10, 20, 40), flip=True)
    tta = SemanticSegmentorWithTTA(cfg, model, batch_size=4)
    out = tta([{"image": asymmetric_image(), "height": 20, "width": 30}])[0]["sem_seg"]
    # Short edge (height) resized to 10, 20 and 40, each also flipped: 6 passes.
    assert out.shape == (1, 20, 30)
    torch.testing.assert_close(out, torch.full((1, 20, 30), (10 + 20 + 40) / 3))
    assert model.batch_sizes == [4, 2]


def test_max_size_caps_the_long_edge() -> None:
    model = InputHeightModel()
    tta = SemanticSegmentorWithTTA(make_cfg(min_sizes=(40,), flip=False, max_size=45), model)
    out = tta([{"image": asymmetric_image(), "height": 20, "width": 30}])[0]["sem_seg"]
    # 20x30 -> short edge 40 would make the long edge 60 > 45: scaled to 30x45 instead.
    torch.testing.assert_close(out, torch.full((1, 20, 30), 30.0))


def test_reads_file_name_when_no_image(tmp_path: Path) -> None:
    image = asymmetric_image().permute(1, 2, 0).numpy()  # [H, W, 3]
    path = tmp_path / "image.png"
    Image.fromarray(image).save(path)
    cfg = make_cfg(min_sizes=(20,), flip=False)
    cfg.INPUT.FORMAT = "RGB"
    tta = SemanticSegmentorWithTTA(cfg, ImageEchoModel())
    out = tta([{"file_name": str(path)}])[0]["sem_seg"]
    np.testing.assert_array_equal(out.permute(1, 2, 0).numpy(), image.astype(np.float32))


def test_rejects_bad_batch_size() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        SemanticSegmentorWithTTA(make_cfg((20,), True), ImageEchoModel(), batch_size=0)
