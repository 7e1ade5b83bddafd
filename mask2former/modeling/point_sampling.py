"""Point sampling on mask logits, used by the matcher and the mask losses.

Mask2Former computes its mask costs and losses on a set of points instead of on whole masks.
The uncertainty-based importance sampling comes from PointRend (Kirillov et al., "PointRend: Image
Segmentation as Rendering", CVPR 2020) and follows detectron2's
``projects/point_rend/point_features.py``; it draws random numbers in the same order, so a seeded
run reproduces the official Mask2Former losses.

Shape shorthand: N masks, P points, C channels.
"""

from typing import Optional

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["calculate_uncertainty", "get_uncertain_point_coords_with_randomness", "point_sample"]


def point_sample(input: Tensor, point_coords: Tensor, align_corners: bool = False) -> Tensor:
    """Bilinearly sample ``input`` at points given in [0, 1] x [0, 1] (x, y) coordinates.

    A wrapper around :func:`torch.nn.functional.grid_sample` (zero padding outside the map).

    Args:
        input: [N, C, H, W] feature map.
        point_coords: [N, P, 2] or [N, Hgrid, Wgrid, 2] normalised (x, y) coordinates.
        align_corners: passed to ``grid_sample``; Mask2Former uses False.

    Returns:
        [N, C, P] or [N, C, Hgrid, Wgrid] sampled values.
    """
    add_dim = point_coords.dim() == 3
    if add_dim:
        point_coords = point_coords.unsqueeze(2)  # [N, P, 1, 2]
    output = F.grid_sample(input, 2.0 * point_coords - 1.0, align_corners=align_corners)
    if add_dim:
        output = output.squeeze(3)  # [N, C, P]
    return output


def calculate_uncertainty(logits: Tensor) -> Tensor:
    """Uncertainty of class-agnostic mask logits: -|logit|, highest where the logit is nearest 0.

    Args:
        logits: [N, 1, ...] mask logits.

    Returns:
        [N, 1, ...] uncertainty scores.
    """
    if logits.shape[1] != 1:
        raise ValueError(f"expected class-agnostic logits [N, 1, ...], got {tuple(logits.shape)}")
    return -logits.abs()


def get_uncertain_point_coords_with_randomness(
    coarse_logits: Tensor,
    num_points: int,
    oversample_ratio: float,
    importance_sample_ratio: float,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """PointRend training-time point selection, with ``calculate_uncertainty`` as the criterion.

    Draws ``int(num_points * oversample_ratio)`` uniform points per mask, keeps the
    ``int(importance_sample_ratio * num_points)`` most uncertain of them, then appends the remaining
    number of fresh uniform points. Random draws, in order: ``rand(N, num_points * oversample, 2)``
    then ``rand(N, num_random, 2)``.

    Args:
        coarse_logits: [N, 1, H, W] mask logits.
        num_points: P, the number of points returned per mask.
        oversample_ratio: >= 1, how many candidates to draw per returned point.
        importance_sample_ratio: in [0, 1], share of the points chosen by uncertainty.
        generator: draws from it instead of torch's global RNG (on the logits' device).

    Returns:
        [N, P, 2] point coordinates in [0, 1] x [0, 1].
    """
    if oversample_ratio < 1:
        raise ValueError(f"oversample_ratio must be >= 1, got {oversample_ratio}")
    if not 0 <= importance_sample_ratio <= 1:
        raise ValueError(
            f"importance_sample_ratio must be in [0, 1], got {importance_sample_ratio}"
        )
    num_masks = coarse_logits.shape[0]
    device = coarse_logits.device
    num_sampled = int(num_points * oversample_ratio)
    point_coords = torch.rand(
        num_masks, num_sampled, 2, device=device, generator=generator
    )  # [N, P * ratio, 2]
    point_logits = point_sample(coarse_logits, point_coords)  # [N, 1, P * ratio]
    # The uncertainty must be computed on the sampled logits, not sampled from a coarse uncertainty
    # map: a point between logits -1 and +1 has logit 0, the most uncertain value.
    point_uncertainties = calculate_uncertainty(point_logits)
    num_uncertain_points = int(importance_sample_ratio * num_points)
    num_random_points = num_points - num_uncertain_points
    idx = torch.topk(point_uncertainties[:, 0, :], k=num_uncertain_points, dim=1)[1]  # [N, Pu]
    point_coords = torch.gather(point_coords, 1, idx[..., None].expand(-1, -1, 2))  # [N, Pu, 2]
    if num_random_points > 0:
        random_coords = torch.rand(
            num_masks, num_random_points, 2, device=device, generator=generator
        )  # [N, Pr, 2]
        point_coords = torch.cat([point_coords, random_coords], dim=1)  # [N, P, 2]
    return point_coords
