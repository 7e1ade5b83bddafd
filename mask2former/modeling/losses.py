"""Mask losses on sampled points: sigmoid binary cross-entropy and dice.

Each formula is written once, in a form that either pairs row n of the predictions with row n of
the targets (the training loss over matched pairs) or compares every prediction with every target
(the Hungarian matching cost). Dice loss as in V-Net (Milletari et al., 2016) with the +1 smoothing
used by DETR (facebookresearch/detr, ``models/segmentation.py``) and Mask2Former.

Shape shorthand: N predictions, M targets, P points.
"""

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = [
    "batch_dice_loss",
    "batch_sigmoid_ce_loss",
    "dice_loss",
    "pointwise_dice",
    "pointwise_sigmoid_ce",
    "sigmoid_ce_loss",
]


def _dot(a: Tensor, b: Tensor, pairwise: bool) -> Tensor:
    """Sum over points of a * b: [N, P] x [N, P] -> [N], or every pair [N, P] x [M, P] -> [N, M]."""
    if pairwise:
        return torch.einsum("np,mp->nm", a, b)  # [N, M]
    return torch.einsum("np,np->n", a, b)  # [N]


def _add(a: Tensor, b: Tensor, pairwise: bool) -> Tensor:
    """a + b for [N] and [M] (or [N]) vectors: [N, M] if pairwise, else [N]."""
    if pairwise:
        return a[:, None] + b[None, :]  # [N, M]
    return a + b  # [N]


def pointwise_sigmoid_ce(logits: Tensor, targets: Tensor, pairwise: bool = False) -> Tensor:
    """Mean over points of ``binary_cross_entropy_with_logits(logits, targets)``.

    BCE(x, t) = t * softplus(-x) + (1 - t) * softplus(x), which also holds for soft targets.

    Args:
        logits: [N, P] mask logits at the points.
        targets: [N, P] (or [M, P] if pairwise) target values in [0, 1] at the same points.
        pairwise: compare every prediction with every target.

    Returns:
        [N] per-pair losses, or [N, M] if pairwise.
    """
    num_points = logits.shape[1]
    cost_pos = F.softplus(-logits)  # [N, P], loss if the target is 1
    cost_neg = F.softplus(logits)  # [N, P], loss if the target is 0
    total = _dot(cost_pos, targets, pairwise) + _dot(cost_neg, 1 - targets, pairwise)
    return total / num_points


def pointwise_dice(logits: Tensor, targets: Tensor, pairwise: bool = False) -> Tensor:
    """Dice loss 1 - (2 * sum(s * t) + 1) / (sum(s) + sum(t) + 1) with s = sigmoid(logits).

    Args:
        logits: [N, P] mask logits at the points.
        targets: [N, P] (or [M, P] if pairwise) target values in [0, 1] at the same points.
        pairwise: compare every prediction with every target.

    Returns:
        [N] per-pair losses, or [N, M] if pairwise.
    """
    probs = logits.sigmoid()
    numerator = 2 * _dot(probs, targets, pairwise)
    denominator = _add(probs.sum(-1), targets.sum(-1), pairwise)
    return 1 - (numerator + 1) / (denominator + 1)


def sigmoid_ce_loss(logits: Tensor, targets: Tensor, num_masks: float) -> Tensor:
    """Training BCE loss: per matched pair mean over points, summed, divided by ``num_masks``.

    Args:
        logits: [N, P] predicted mask logits at the points of the N matched pairs.
        targets: [N, P] ground-truth mask values at the same points.
        num_masks: normaliser, the (averaged over workers) number of ground-truth masks.
    """
    return pointwise_sigmoid_ce(logits, targets).sum() / num_masks


def dice_loss(logits: Tensor, targets: Tensor, num_masks: float) -> Tensor:
    """Training dice loss: per matched pair, summed, divided by ``num_masks``.

    Args:
        logits: [N, P] predicted mask logits at the points of the N matched pairs.
        targets: [N, P] ground-truth mask values at the same points.
        num_masks: normaliser, the (averaged over workers) number of ground-truth masks.
    """
    return pointwise_dice(logits, targets).sum() / num_masks


def batch_sigmoid_ce_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Matching cost: BCE of every prediction [N, P] against every target [M, P] -> [N, M]."""
    return pointwise_sigmoid_ce(logits, targets, pairwise=True)


def batch_dice_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Matching cost: dice of every prediction [N, P] against every target [M, P] -> [N, M]."""
    return pointwise_dice(logits, targets, pairwise=True)
