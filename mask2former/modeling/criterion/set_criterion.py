"""Set-prediction loss of Mask2Former.

After DETR's ``SetCriterion`` (Carion et al., ECCV 2020, facebookresearch/detr ``models/detr.py``):
match predictions to targets with the Hungarian matcher, then supervise each matched pair. Mask
losses are computed on points chosen by PointRend-style importance sampling, as in Mask2Former
(Cheng et al., CVPR 2022).
"""

from typing import Any, Callable, Dict, List, Sequence, Tuple

import torch
import torch.distributed as dist
from detectron2.config import CfgNode, configurable
from detectron2.utils.comm import get_world_size
from torch import Tensor, nn
from torch.nn import functional as F

from ..losses import dice_loss, sigmoid_ce_loss
from ..matcher import HungarianMatcher
from ..point_sampling import get_uncertain_point_coords_with_randomness, point_sample
from .registry import CRITERION_REGISTRY

__all__ = ["SetCriterion", "weight_dict_from_config"]

Indices = List[Tuple[Tensor, Tensor]]
LossFn = Callable[[Dict[str, Tensor], List[Dict[str, Tensor]], Indices, float], Dict[str, Tensor]]


def weight_dict_from_config(cfg: CfgNode) -> Dict[str, float]:
    """Loss name -> weight: ``loss_ce``, ``loss_mask``, ``loss_dice`` weighted by
    ``MODEL.MASK_FORMER.{CLASS,MASK,DICE}_WEIGHT`` and, with ``DEEP_SUPERVISION``, the same for
    each of the ``DEC_LAYERS - 1`` aux predictions (suffix ``_i``)."""
    mf = cfg.MODEL.MASK_FORMER
    weight_dict = {
        "loss_ce": mf.CLASS_WEIGHT,
        "loss_mask": mf.MASK_WEIGHT,
        "loss_dice": mf.DICE_WEIGHT,
    }
    if mf.DEEP_SUPERVISION:
        # DEC_LAYERS counts the prediction from the learned queries as a layer, so there are
        # DEC_LAYERS - 1 aux predictions, each weighted like the final one.
        weight_dict.update(
            {f"{k}_{i}": v for i in range(mf.DEC_LAYERS - 1) for k, v in list(weight_dict.items())}
        )
    return weight_dict


@CRITERION_REGISTRY.register()
class SetCriterion(nn.Module):
    """Hungarian-matched classification and mask losses, for the final and every aux prediction.

    Losses (unweighted; ``weight_dict`` holds the weights the meta-architecture applies):
      * ``"labels"`` -> ``loss_ce``: cross-entropy over all queries; unmatched queries target the
        no-object class, whose weight is ``eos_coef`` (buffer ``empty_weight``).
      * ``"masks"`` -> ``loss_mask`` (sigmoid BCE) and ``loss_dice`` on ``num_points`` points per
        matched pair, normalised by the number of ground-truth masks (averaged over workers).
    Losses of ``aux_outputs[i]`` get the suffix ``_i``.
    """

    @configurable
    def __init__(
        self,
        num_classes: int,
        matcher: HungarianMatcher,
        weight_dict: Dict[str, float],
        eos_coef: float,
        losses: Sequence[str],
        num_points: int,
        oversample_ratio: float,
        importance_sample_ratio: float,
    ) -> None:
        """
        Args:
            num_classes: K, the number of classes without the no-object class.
            matcher: computes the query-target assignment.
            weight_dict: loss name -> weight (used by the meta-architecture, kept here as official).
            eos_coef: classification weight of the no-object class.
            losses: names of the losses to compute, keys of ``loss_map`` ("labels", "masks").
            num_points: points per matched mask for the mask losses.
            oversample_ratio: candidate points drawn per kept point for importance sampling.
            importance_sample_ratio: share of the points chosen by uncertainty.
        """
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher
        self.weight_dict = dict(weight_dict)
        self.eos_coef = eos_coef
        self.loss_map: Dict[str, LossFn] = {"labels": self.loss_labels, "masks": self.loss_masks}
        unknown = [name for name in losses if name not in self.loss_map]
        if unknown:
            raise ValueError(f"unknown losses {unknown}; available: {sorted(self.loss_map)}")
        self.losses = list(losses)
        empty_weight = torch.ones(num_classes + 1)
        empty_weight[-1] = eos_coef
        self.register_buffer("empty_weight", empty_weight)
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio

    @classmethod
    def from_config(cls, cfg: CfgNode) -> Dict[str, Any]:
        mf = cfg.MODEL.MASK_FORMER
        matcher = HungarianMatcher(
            cost_class=mf.CLASS_WEIGHT,
            cost_mask=mf.MASK_WEIGHT,
            cost_dice=mf.DICE_WEIGHT,
            num_points=mf.TRAIN_NUM_POINTS,
        )
        return {
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            "matcher": matcher,
            "weight_dict": weight_dict_from_config(cfg),
            "eos_coef": mf.NO_OBJECT_WEIGHT,
            "losses": ["labels", "masks"],
            "num_points": mf.TRAIN_NUM_POINTS,
            "oversample_ratio": mf.OVERSAMPLE_RATIO,
            "importance_sample_ratio": mf.IMPORTANCE_SAMPLE_RATIO,
        }

    def loss_labels(
        self,
        outputs: Dict[str, Tensor],
        targets: List[Dict[str, Tensor]],
        indices: Indices,
        num_masks: float,
    ) -> Dict[str, Tensor]:
        """Weighted cross-entropy on ``pred_logits`` [B, Q, K+1] -> ``{"loss_ce": scalar}``."""
        src_logits = outputs["pred_logits"].float()
        batch_idx, src_idx = self._src_permutation_idx(indices)
        target_classes = torch.full(
            src_logits.shape[:2], self.num_classes, dtype=torch.int64, device=src_logits.device
        )  # [B, Q], no object everywhere
        matched_classes = torch.cat([t["labels"][j] for t, (_, j) in zip(targets, indices)])
        target_classes[batch_idx, src_idx] = matched_classes.to(src_logits.device)
        loss_ce = F.cross_entropy(
            src_logits.transpose(1, 2), target_classes, self.empty_weight
        )  # logits [B, K+1, Q]
        return {"loss_ce": loss_ce}

    def loss_masks(
        self,
        outputs: Dict[str, Tensor],
        targets: List[Dict[str, Tensor]],
        indices: Indices,
        num_masks: float,
    ) -> Dict[str, Tensor]:
        """BCE and dice on importance-sampled points of the matched masks.

        ``pred_masks`` [B, Q, h, w] logits against ``masks`` [M, H, W] targets covering the same
        image area -> ``{"loss_mask": scalar, "loss_dice": scalar}``. Clips ([B, Q, T, h, w]
        against [M, T, H, W], as the official ``VideoSetCriterion``): each frame of a matched pair
        is a mask with its own points, and the sums over the N*T masks are still divided by
        ``num_masks``, the number of ground-truth instances.
        """
        pred_masks = outputs["pred_masks"]
        batch_idx, src_idx = self._src_permutation_idx(indices)
        src_masks = pred_masks[batch_idx, src_idx]  # [N, (T,) h, w], N matched pairs in the batch
        if src_masks.shape[0] == 0:
            # No ground truth anywhere in the batch: zero losses that still reach the graph.
            zero = pred_masks.sum() * 0.0
            return {"loss_mask": zero, "loss_dice": zero.clone()}
        target_masks = self._matched_target_masks(targets, indices).to(src_masks)  # [N, (T,) H, W]
        src_masks = src_masks.flatten(0, -3)[:, None]  # [N*T, 1, h, w] (T = 1 for images)
        target_masks = target_masks.flatten(0, -3)[:, None]  # [N*T, 1, H, W]

        with torch.no_grad():
            point_coords = self._point_coords(src_masks, targets, indices)  # [N, P, 2]
            point_labels = point_sample(target_masks, point_coords).squeeze(1)  # [N, P]
        point_logits = point_sample(src_masks, point_coords).squeeze(1)  # [N, P]
        return {
            "loss_mask": sigmoid_ce_loss(point_logits, point_labels, num_masks),
            "loss_dice": dice_loss(point_logits, point_labels, num_masks),
        }

    def _point_coords(
        self, src_masks: Tensor, targets: List[Dict[str, Tensor]], indices: Indices
    ) -> Tensor:
        """Importance-sampled points [N, P, 2] of the matched masks ``src_masks`` [N, 1, h, w]
        (clips: [N*T, 1, h, w]); those of an image (or clip) whose target has a ``generator`` are
        drawn from it, per image."""
        if not any("generator" in t for t in targets):
            return get_uncertain_point_coords_with_randomness(
                src_masks, self.num_points, self.oversample_ratio, self.importance_sample_ratio
            )
        # masks of image b first; a clip's pairs have T masks each (src_masks is [N*T, 1, h, w])
        frames = src_masks.shape[0] // sum(len(src) for src, _ in indices)
        per_image = src_masks.split([len(src) * frames for src, _ in indices])
        return torch.cat(
            [
                get_uncertain_point_coords_with_randomness(
                    masks,
                    self.num_points,
                    self.oversample_ratio,
                    self.importance_sample_ratio,
                    generator=target.get("generator"),
                )
                for masks, target in zip(per_image, targets)
                if len(masks)
            ]
        )

    @staticmethod
    def _src_permutation_idx(indices: Indices) -> Tuple[Tensor, Tensor]:
        """(batch index [N], query index [N]) of every matched prediction."""
        batch_idx = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)])
        src_idx = torch.cat([src for src, _ in indices])
        return batch_idx, src_idx

    @staticmethod
    def _matched_target_masks(targets: List[Dict[str, Tensor]], indices: Indices) -> Tensor:
        """Matched ground-truth masks [N, (T,) H, W], zero-padded to the largest size in the
        batch."""
        height = max(t["masks"].shape[-2] for t in targets)
        width = max(t["masks"].shape[-1] for t in targets)
        matched = []
        for target, (_, tgt_idx) in zip(targets, indices):
            masks = target["masks"][tgt_idx]  # [m, (T,) h_i, w_i]
            pad = (0, width - masks.shape[-1], 0, height - masks.shape[-2])
            matched.append(F.pad(masks, pad))  # [m, (T,) H, W]
        return torch.cat(matched)

    def get_loss(
        self,
        loss: str,
        outputs: Dict[str, Tensor],
        targets: List[Dict[str, Tensor]],
        indices: Indices,
        num_masks: float,
    ) -> Dict[str, Tensor]:
        """Dispatch to the loss named ``loss`` through ``loss_map``."""
        return self.loss_map[loss](outputs, targets, indices, num_masks)

    def _num_masks(self, targets: List[Dict[str, Tensor]], device: torch.device) -> float:
        """Number of ground-truth masks per worker, averaged over workers, at least 1."""
        num_masks = torch.as_tensor(
            [float(sum(len(t["labels"]) for t in targets))], dtype=torch.float, device=device
        )
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(num_masks)
        return torch.clamp(num_masks / get_world_size(), min=1).item()

    def forward(
        self, outputs: Dict[str, Any], targets: List[Dict[str, Tensor]]
    ) -> Dict[str, Tensor]:
        """
        Args:
            outputs: ``pred_logits`` [B, Q, K+1], ``pred_masks`` [B, Q, h, w] and optionally
                ``aux_outputs``: a list of dicts with the same two keys.
            targets: B dicts with ``labels`` [M] int64 and ``masks`` [M, H, W] (bool or float)
                covering the same (padded) image area as ``pred_masks``, and optionally
                ``generator``: the image's ``torch.Generator`` for the random points of the
                matcher and of the mask losses (torch's global RNG otherwise).

        Returns:
            Unweighted losses ``loss_ce``, ``loss_mask``, ``loss_dice`` and, for every aux
            prediction i, the same names with suffix ``_i``.
        """
        final_outputs = {k: v for k, v in outputs.items() if k != "aux_outputs"}
        num_masks = self._num_masks(targets, final_outputs["pred_logits"].device)
        predictions = [("", final_outputs)]
        predictions += [(f"_{i}", aux) for i, aux in enumerate(outputs.get("aux_outputs", []))]

        losses: Dict[str, Tensor] = {}
        for suffix, prediction in predictions:
            indices = self.matcher(prediction, targets)
            for loss in self.losses:
                values = self.get_loss(loss, prediction, targets, indices, num_masks)
                losses.update({name + suffix: value for name, value in values.items()})
        return losses

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, losses={self.losses}, eos_coef={self.eos_coef}, "
            f"num_points={self.num_points}, oversample_ratio={self.oversample_ratio}, "
            f"importance_sample_ratio={self.importance_sample_ratio},\n"
            f"weight_dict={self.weight_dict}"
        )
