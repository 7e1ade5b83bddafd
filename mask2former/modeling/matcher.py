"""Hungarian matching between predicted masks and ground-truth masks.

After DETR (Carion et al., ECCV 2020, facebookresearch/detr ``models/matcher.py``), with the mask
costs of Mask2Former (Cheng et al., CVPR 2022) computed on randomly sampled points.
"""

from typing import Dict, List, Tuple

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from .losses import batch_dice_loss, batch_sigmoid_ce_loss
from .point_sampling import point_sample

__all__ = ["HungarianMatcher"]


def _with_frame_axis(masks: Tensor) -> Tensor:
    """[N, H, W] image masks -> [N, 1, H, W]; [N, T, H, W] clip masks are returned as they are."""
    return masks[:, None] if masks.dim() == 3 else masks


class HungarianMatcher(nn.Module):
    """One-to-one assignment of queries to ground-truth masks, minimising a weighted cost.

    cost = cost_class * (-p[gt class]) + cost_mask * BCE + cost_dice * dice, where BCE and dice are
    computed on ``num_points`` points drawn uniformly once per image and shared by all predictions
    and targets of that image. Unmatched queries are treated as "no object" by the criterion.

    Clips (Video Mask2Former, whose official ``VideoHungarianMatcher`` this also is): masks of
    T frames are compared on the same points in every frame, i.e. on T * ``num_points`` values.
    Non-finite predictions (a diverged model) give non-finite costs; they are replaced by finite
    stand-ins so that the assignment still runs and the losses, non-finite too, are what reports
    the divergence (the trainer's check names the iteration and loss terms).
    """

    def __init__(
        self,
        cost_class: float = 1.0,
        cost_mask: float = 1.0,
        cost_dice: float = 1.0,
        num_points: int = 0,
    ) -> None:
        """
        Args:
            cost_class: weight of the classification cost.
            cost_mask: weight of the sigmoid BCE mask cost.
            cost_dice: weight of the dice mask cost.
            num_points: number of points sampled per image for the mask costs.
        """
        super().__init__()
        if cost_class == 0 and cost_mask == 0 and cost_dice == 0:
            raise ValueError("HungarianMatcher: all costs are 0")
        if num_points <= 0:
            raise ValueError(f"HungarianMatcher: num_points must be > 0, got {num_points}")
        self.cost_class = cost_class
        self.cost_mask = cost_mask
        self.cost_dice = cost_dice
        self.num_points = num_points

    @torch.no_grad()
    def forward(
        self, outputs: Dict[str, Tensor], targets: List[Dict[str, Tensor]]
    ) -> List[Tuple[Tensor, Tensor]]:
        """
        Args:
            outputs: ``pred_logits`` [B, Q, K+1] class logits (last = no object) and
                ``pred_masks`` [B, Q, h, w] mask logits, or [B, Q, T, h, w] for clips; other keys
                are ignored.
            targets: B dicts with ``labels`` [M] int64 and ``masks`` [M, H, W] (clips:
                [M, T, H, W]) covering the same (padded) image area as ``pred_masks``, and
                optionally ``generator``: the ``torch.Generator`` (on the masks' device) the
                image's points are drawn from (torch's global RNG otherwise).

        Returns:
            B pairs (query_indices [m], target_indices [m]) of int64 tensors, m = min(Q, M);
            empty when an image has no targets.
        """
        pred_logits = outputs["pred_logits"]
        pred_masks = outputs["pred_masks"]
        indices = []
        for b, target in enumerate(targets):
            # One set of points per image, shared by all predictions and targets.
            point_coords = torch.rand(
                1, self.num_points, 2, device=pred_masks.device, generator=target.get("generator")
            )  # [1, P, 2]
            tgt_ids = target["labels"]
            if tgt_ids.numel() == 0:
                empty = torch.empty(0, dtype=torch.int64)
                indices.append((empty, empty.clone()))
                continue
            # Costs in float32, even under mixed precision.
            with torch.autocast(device_type=pred_masks.device.type, enabled=False):
                out_prob = pred_logits[b].float().softmax(-1)  # [Q, K+1]
                cost_class = -out_prob[:, tgt_ids]  # [Q, M]

                out_mask = _with_frame_axis(pred_masks[b].float())  # [Q, T, h, w], T = 1: image
                tgt_mask = _with_frame_axis(target["masks"].to(out_mask))  # [M, T, H, W]
                out_points = point_sample(
                    out_mask, point_coords.expand(out_mask.shape[0], -1, -1)
                ).flatten(1)  # [Q, T, P] -> [Q, T*P]
                tgt_points = point_sample(
                    tgt_mask, point_coords.expand(tgt_mask.shape[0], -1, -1)
                ).flatten(1)  # [M, T, P] -> [M, T*P]
                cost_mask = batch_sigmoid_ce_loss(out_points, tgt_points)  # [Q, M]
                cost_dice = batch_dice_loss(out_points, tgt_points)  # [Q, M]

            cost = (
                self.cost_mask * cost_mask
                + self.cost_class * cost_class
                + self.cost_dice * cost_dice
            )  # [Q, M]
            query_idx, target_idx = linear_sum_assignment(torch.nan_to_num(cost).cpu())
            indices.append(
                (
                    torch.as_tensor(query_idx, dtype=torch.int64),
                    torch.as_tensor(target_idx, dtype=torch.int64),
                )
            )
        return indices

    def extra_repr(self) -> str:
        return (
            f"cost_class={self.cost_class}, cost_mask={self.cost_mask}, "
            f"cost_dice={self.cost_dice}, num_points={self.num_points}"
        )
