"""build_criterion(cfg): the official SetCriterion by default, a user's registered criterion when
MODEL.MASK_FORMER.CRITERION_NAME names it (no subclassing of the model)."""

from pathlib import Path
from typing import Any, Dict, List

import pytest
import torch
from detectron2.config import CfgNode
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Instances
from torch import Tensor, nn

import mask2former.modeling  # noqa: F401  (registers the model)
from mask2former.modeling.criterion import CRITERION_REGISTRY, SetCriterion, build_criterion
from tests.helpers.official_fixtures import FIXTURES, official_cfg


class MeanMaskProbability(nn.Module):
    """A user's loss: the mean predicted mask probability of the final prediction."""

    def __init__(self, cfg: CfgNode):
        super().__init__()
        self.weight_dict = {"loss_mean_mask": cfg.MODEL.MASK_FORMER.MASK_WEIGHT}
        self.calls = 0

    def forward(self, outputs: Dict[str, Any], targets: List[Dict[str, Tensor]]) -> Dict:
        self.calls += 1
        assert all({"labels", "masks"} <= set(t) for t in targets)
        return {
            "loss_mean_mask": outputs["pred_masks"].sigmoid().mean(),
            "loss_not_weighted": outputs["pred_logits"].sum(),  # dropped: not in weight_dict
        }


class NoWeightDict(nn.Module):
    def __init__(self, cfg: CfgNode):
        super().__init__()

    def forward(self, outputs: Dict[str, Any], targets: List[Dict[str, Tensor]]) -> Dict:
        return {}


for _criterion in (MeanMaskProbability, NoWeightDict):
    if _criterion.__name__ not in CRITERION_REGISTRY:
        CRITERION_REGISTRY.register(_criterion)


def _cfg() -> CfgNode:
    cfg = official_cfg(FIXTURES / "official_tiny")
    cfg.MODEL.MASK_FORMER.TRAIN_NUM_POINTS = 256
    return cfg


def test_default_is_the_official_set_criterion() -> None:
    cfg = _cfg()
    assert cfg.MODEL.MASK_FORMER.CRITERION_NAME == "SetCriterion"
    criterion = build_criterion(cfg)
    assert type(criterion) is SetCriterion
    mf = cfg.MODEL.MASK_FORMER
    assert criterion.num_classes == cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
    assert criterion.empty_weight[-1] == mf.NO_OBJECT_WEIGHT
    assert (criterion.num_points, criterion.oversample_ratio) == (256, mf.OVERSAMPLE_RATIO)
    assert criterion.matcher.cost_mask == mf.MASK_WEIGHT
    # loss_ce, loss_mask, loss_dice for the final prediction and DEC_LAYERS - 1 aux predictions.
    assert len(criterion.weight_dict) == 3 * mf.DEC_LAYERS
    assert criterion.weight_dict["loss_dice_2"] == mf.DICE_WEIGHT


def test_registered_criterion_selected_from_yaml_trains_the_model(tmp_path: Path) -> None:
    yaml_file = tmp_path / "my_loss.yaml"
    yaml_file.write_text("MODEL:\n  MASK_FORMER:\n    CRITERION_NAME: MeanMaskProbability\n")
    cfg = _cfg()
    cfg.merge_from_file(str(yaml_file))
    torch.manual_seed(0)
    model = build_model(cfg)
    assert isinstance(model.criterion, MeanMaskProbability)

    masks = torch.zeros(1, 64, 64, dtype=torch.bool)
    masks[0, 8:30, 8:40] = True
    instances = Instances((64, 64), gt_classes=torch.tensor([2]), gt_masks=BitMasks(masks))
    batch = [{"image": torch.randint(0, 256, (3, 64, 64)).float(), "instances": instances}]
    model.train()
    losses = model(batch)
    assert model.criterion.calls == 1
    assert set(losses) == {"loss_mean_mask"}
    with torch.no_grad():
        images = (batch[0]["image"] - model.pixel_mean) / model.pixel_std
        outputs = model.sem_seg_head(model.backbone(images[None]))
    expected = outputs["pred_masks"].sigmoid().mean() * cfg.MODEL.MASK_FORMER.MASK_WEIGHT
    torch.testing.assert_close(losses["loss_mean_mask"].detach(), expected)
    losses["loss_mean_mask"].backward()
    assert model.sem_seg_head.predictor.mask_embed.layers[0].weight.grad is not None


def test_unknown_criterion_lists_the_registered_ones() -> None:
    cfg = _cfg()
    cfg.MODEL.MASK_FORMER.CRITERION_NAME = "NoSuchLoss"
    with pytest.raises(KeyError, match="CRITERION_NAME 'NoSuchLoss'.*SetCriterion"):
        build_criterion(cfg)


def test_criterion_without_weight_dict_is_rejected() -> None:
    cfg = _cfg()
    cfg.MODEL.MASK_FORMER.CRITERION_NAME = "NoWeightDict"
    with pytest.raises(TypeError, match="NoWeightDict.*weight_dict"):
        build_criterion(cfg)
