# Copyright (c) the mask2former authors.
"""Boxes of binary masks: the one implementation used by the whole package.

:func:`masks_to_boxes` (torch, XYXY) gives the same boxes as detectron2's
``BitMasks.get_bounding_boxes`` without its per-mask Python loop; it serves instance inference
(``pred_boxes``) and the LSJ mappers (``gt_boxes``). :func:`mask_to_xywh` is the COCO-json form
(integer ``[x, y, width, height]``) of the same box, for the annotation writers.
"""

from typing import List

import numpy as np
import torch
from torch import Tensor

__all__ = ["mask_to_xywh", "masks_to_boxes"]


def masks_to_boxes(masks: Tensor) -> Tensor:
    """Tight boxes around binary masks, as detectron2's ``BitMasks.get_bounding_boxes``.

    Args:
        masks: [N, H, W] masks (bool, or any dtype where nonzero means inside).

    Returns:
        [N, 4] float32 XYXY boxes (x1, y1 exclusive: last pixel + 1); all zero for an empty mask.
    """
    if masks.dim() != 3:
        raise ValueError(f"masks_to_boxes needs [N, H, W] masks, got shape {tuple(masks.shape)}")
    masks = masks.bool()
    height, width = masks.shape[-2:]
    x_any = masks.any(dim=1)  # [N, W]
    y_any = masks.any(dim=2)  # [N, H]
    # argmax returns the first maximum: the first True from the start, or from the end if flipped.
    x0 = x_any.int().argmax(dim=1)  # [N]
    y0 = y_any.int().argmax(dim=1)  # [N]
    x1 = width - x_any.flip(1).int().argmax(dim=1)  # [N]
    y1 = height - y_any.flip(1).int().argmax(dim=1)  # [N]
    boxes = torch.stack([x0, y0, x1, y1], dim=1).float()  # [N, 4]
    return boxes * x_any.any(dim=1, keepdim=True)  # empty masks -> zero boxes


def mask_to_xywh(mask: np.ndarray) -> List[int]:
    """COCO ``bbox`` (``[x, y, width, height]``, integers) of a non-empty ``[H, W]`` mask: the box
    of :func:`masks_to_boxes` in COCO's form."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask_to_xywh needs an [H, W] mask, got shape {mask.shape}")
    if not mask.any():
        raise ValueError("mask_to_xywh needs a non-empty mask: COCO annotations have no empty box")
    box = masks_to_boxes(torch.from_numpy(np.ascontiguousarray(mask, dtype=bool))[None])[0]
    x0, y0, x1, y1 = (int(v) for v in box.tolist())
    return [x0, y0, x1 - x0, y1 - y0]
