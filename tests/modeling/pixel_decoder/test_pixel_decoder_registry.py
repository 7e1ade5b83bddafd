"""build_pixel_decoder also finds pixel decoders registered the official way, in detectron2's
SEM_SEG_HEADS_REGISTRY, and such a decoder runs in a MaskFormer model."""

import logging
from typing import Dict, List, Optional, Tuple

import pytest
import torch
from detectron2.config import CfgNode, configurable
from detectron2.data import Metadata
from detectron2.layers import Conv2d, ShapeSpec
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY, build_model
from detectron2.structures import BitMasks, Instances
from torch import Tensor, nn

import mask2former.modeling  # noqa: F401  (registers the model)
from mask2former.modeling.pixel_decoder import PIXEL_DECODER_REGISTRY, build_pixel_decoder
from tests.helpers.official_fixtures import FIXTURES, official_cfg

REGISTRY_LOGGER = "mask2former.modeling.pixel_decoder.registry"


class OfficialStylePixelDecoder(nn.Module):
    """A pixel decoder as a user of the official code writes it: 1x1 projections of every input
    level, mask features from the finest, the 3 coarsest as multi-scale features."""

    @configurable
    def __init__(self, input_shape: Dict[str, ShapeSpec], *, conv_dim: int, mask_dim: int):
        super().__init__()
        self.in_features = sorted(input_shape, key=lambda k: input_shape[k].stride)  # fine first
        self.projections = nn.ModuleList(
            Conv2d(input_shape[k].channels, conv_dim, kernel_size=1) for k in self.in_features
        )
        self.mask_features = Conv2d(conv_dim, mask_dim, kernel_size=1)

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: Dict[str, ShapeSpec]) -> Dict:
        head = cfg.MODEL.SEM_SEG_HEAD
        return {
            "input_shape": {k: v for k, v in input_shape.items() if k in head.IN_FEATURES},
            "conv_dim": head.CONVS_DIM,
            "mask_dim": head.MASK_DIM,
        }

    def forward_features(
        self, features: Dict[str, Tensor]
    ) -> Tuple[Tensor, Optional[Tensor], List[Tensor]]:
        outs = [proj(features[k]) for k, proj in zip(self.in_features, self.projections)]
        return self.mask_features(outs[0]), None, outs[::-1][:3]


# Registered only where the official ADVANCED_USAGE.md says to.
if "OfficialStylePixelDecoder" not in SEM_SEG_HEADS_REGISTRY:
    SEM_SEG_HEADS_REGISTRY.register(OfficialStylePixelDecoder)


def _cfg(pixel_decoder: str) -> CfgNode:
    cfg = official_cfg(FIXTURES / "official_tiny")
    cfg.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME = pixel_decoder
    cfg.MODEL.MASK_FORMER.TRAIN_NUM_POINTS = 256
    return cfg


def test_decoder_in_sem_seg_heads_registry_builds_and_runs_in_maskformer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert "OfficialStylePixelDecoder" not in PIXEL_DECODER_REGISTRY
    torch.manual_seed(0)
    with caplog.at_level(logging.INFO, logger=REGISTRY_LOGGER):
        model = build_model(_cfg("OfficialStylePixelDecoder"))
    records = [r for r in caplog.records if r.name == REGISTRY_LOGGER]
    assert len(records) == 1
    message = records[0].getMessage()
    assert "OfficialStylePixelDecoder" in message and "SEM_SEG_HEADS_REGISTRY" in message
    assert isinstance(model.sem_seg_head.pixel_decoder, OfficialStylePixelDecoder)
    model.metadata = Metadata(name="tiny", thing_dataset_id_to_contiguous_id={0: 0})

    image = torch.randint(0, 256, (3, 64, 64)).float()
    masks = torch.zeros(1, 64, 64, dtype=torch.bool)
    masks[0, 10:40, 5:30] = True
    instances = Instances((64, 64), gt_classes=torch.tensor([3]), gt_masks=BitMasks(masks))
    model.train()
    losses = model([{"image": image, "instances": instances}])
    sum(losses.values()).backward()
    assert model.sem_seg_head.pixel_decoder.projections[0].weight.grad is not None

    model.eval()
    with torch.no_grad():
        [result] = model([{"image": image, "height": 32, "width": 32}])
    assert result["sem_seg"].shape == (133, 32, 32)


def test_own_registry_is_searched_first_without_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger=REGISTRY_LOGGER):
        cfg = _cfg("BasePixelDecoder")
        shapes = {
            f"res{i}": ShapeSpec(channels=32 * 2 ** (i - 2), stride=2**i) for i in range(2, 6)
        }
        decoder = build_pixel_decoder(cfg, shapes)
    assert type(decoder).__name__ == "BasePixelDecoder"
    assert not [r for r in caplog.records if r.name == REGISTRY_LOGGER]


def test_sem_seg_head_that_is_not_a_pixel_decoder_is_rejected() -> None:
    with pytest.raises(TypeError, match="MaskFormerHead.*forward_features"):
        build_model(_cfg("MaskFormerHead"))


def test_unknown_name_is_reported() -> None:
    with pytest.raises(KeyError, match="PIXEL_DECODER_NAME 'Nope'.*MSDeformAttnPixelDecoder"):
        build_model(_cfg("Nope"))
