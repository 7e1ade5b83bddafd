"""A training loss of your own, registered in Mask2Former's ``CRITERION_REGISTRY``.

Select it with ``MODEL.MASK_FORMER.CRITERION_NAME: SetCriterionWithFullMaskDice``
(custom_criterion.yaml). It keeps the official ``SetCriterion`` (Hungarian matching; class loss
and point-sampled mask losses on the final and every auxiliary prediction) and adds one loss to its
``loss_map``: dice on every pixel of each matched mask, the full-mask supervision that Mask2Former
replaces by sampled points (Cheng et al., CVPR 2022, Sec. 3.3).
"""

from typing import Any, Dict, List, Tuple

import torch
from detectron2.config import CfgNode, configurable
from torch import Tensor
from torch.nn import functional as F

from mask2former.modeling.criterion import CRITERION_REGISTRY, SetCriterion
from mask2former.modeling.losses import dice_loss


@CRITERION_REGISTRY.register()
class SetCriterionWithFullMaskDice(SetCriterion):
    """``SetCriterion`` plus ``loss_full_mask_dice`` (and ``loss_full_mask_dice_i`` for the
    auxiliary predictions), weighted like the dice loss."""

    @configurable
    def __init__(self, *, full_mask_dice_weight: float, num_predictions: int, **kwargs: Any):
        super().__init__(**kwargs)  # the SetCriterion arguments
        self.loss_map["full_mask_dice"] = self.loss_full_mask_dice
        self.losses.append("full_mask_dice")
        # MaskFormer trains on the losses named in weight_dict, times their weight: one name per
        # prediction (suffix _i: auxiliary prediction i).
        suffixes = [""] + [f"_{i}" for i in range(num_predictions - 1)]
        self.weight_dict.update(
            {f"loss_full_mask_dice{s}": full_mask_dice_weight for s in suffixes}
        )

    @classmethod
    def from_config(cls, cfg: CfgNode) -> Dict[str, Any]:
        mf = cfg.MODEL.MASK_FORMER
        return {
            **SetCriterion.from_config(cfg),
            "full_mask_dice_weight": mf.DICE_WEIGHT,
            "num_predictions": mf.DEC_LAYERS if mf.DEEP_SUPERVISION else 1,
        }

    def loss_full_mask_dice(
        self,
        outputs: Dict[str, Tensor],
        targets: List[Dict[str, Tensor]],
        indices: List[Tuple[Tensor, Tensor]],
        num_masks: float,
    ) -> Dict[str, Tensor]:
        """Dice of the matched ``pred_masks`` [N, h, w] against their targets resized to h x w."""
        masks = outputs["pred_masks"]  # [B, Q, h, w] logits
        pred = torch.cat([masks[b, query] for b, (query, _) in enumerate(indices)])  # [N, h, w]
        target = torch.cat([t["masks"][gt] for t, (_, gt) in zip(targets, indices)])  # [N, H, W]
        target = F.interpolate(target[:, None].to(pred), pred.shape[-2:], mode="bilinear")
        loss = dice_loss(pred.flatten(1), target.flatten(1), num_masks)  # [N, h*w] each
        return {"loss_full_mask_dice": loss}
