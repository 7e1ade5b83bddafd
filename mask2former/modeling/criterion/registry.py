"""Registry of training criteria (the loss of the MaskFormer meta-architecture).

Select one with ``MODEL.MASK_FORMER.CRITERION_NAME`` (default "SetCriterion", the official
Hungarian-matched mask-classification loss). To use your own loss without subclassing the model::

    from mask2former.modeling.criterion import CRITERION_REGISTRY

    @CRITERION_REGISTRY.register()
    class MyCriterion(nn.Module):
        def __init__(self, cfg):  # or @configurable with a from_config(cls, cfg)
            super().__init__()
            self.weight_dict = {"loss_my": 1.0}

        def forward(self, outputs, targets):
            return {"loss_my": outputs["pred_masks"].sigmoid().mean()}

and set ``MODEL.MASK_FORMER.CRITERION_NAME: MyCriterion`` in the YAML file.
"""

from typing import Optional

from detectron2.config import CfgNode
from detectron2.utils.registry import Registry
from torch import nn

from ..registry_utils import lookup

__all__ = ["CRITERION_REGISTRY", "build_criterion"]

CRITERION_REGISTRY = Registry("CRITERION")
CRITERION_REGISTRY.__doc__ = """
Registry for training criteria. The registered object is called with `cfg` and returns a module
with `forward(outputs, targets) -> Dict[str, Tensor]` of unweighted losses and a `weight_dict`
attribute (loss name -> weight). MaskFormer trains on `loss * weight_dict[name]` for every loss
named in `weight_dict` and drops the others.

`outputs` is the head's dict (`pred_logits` [B, Q, K+1], `pred_masks` [B, Q, H/4, W/4],
`aux_outputs`); `targets` holds one dict per image with `labels` [M] and `masks` [M, H_pad, W_pad].
"""


def build_criterion(cfg: CfgNode, name: Optional[str] = None) -> nn.Module:
    """Build the criterion named by ``cfg.MODEL.MASK_FORMER.CRITERION_NAME``.

    Args:
        cfg: the model config, passed to the criterion.
        name: build this registered criterion instead of the one the config names (a
            meta-architecture's own default, e.g. ``VideoMaskFormer``'s "VideoSetCriterion").

    Raises:
        KeyError: the name is not registered.
        TypeError: the built criterion has no ``weight_dict``.
    """
    name = cfg.MODEL.MASK_FORMER.CRITERION_NAME if name is None else name
    config_key = "MODEL.MASK_FORMER.CRITERION_NAME"
    criterion = lookup(CRITERION_REGISTRY, name, config_key, "criteria")(cfg)
    if not isinstance(getattr(criterion, "weight_dict", None), dict):
        raise TypeError(
            f"Criterion {name!r} must have a weight_dict attribute (loss name -> weight), which "
            "MaskFormer applies to its losses"
        )
    return criterion
