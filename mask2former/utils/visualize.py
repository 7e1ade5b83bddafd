"""Panoptic predictions next to the ground truth, drawn with detectron2's ``Visualizer``."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import torch
from detectron2.data import Metadata
from detectron2.utils.visualizer import ColorMode, Visualizer
from PIL import Image

from mask2former.data.panoptic_format import rgb_to_id

__all__ = ["draw_panoptic", "load_panoptic_ground_truth", "side_by_side"]


def draw_panoptic(
    image: np.ndarray,
    panoptic_seg: torch.Tensor,
    segments_info: List[Dict[str, Any]],
    metadata: Metadata,
    scale: float = 1.0,
) -> np.ndarray:
    """Overlay a panoptic segmentation on ``image``.

    Args:
        image: [H, W, 3] uint8 RGB.
        panoptic_seg: [H, W] int segment ids (0 or an id not in ``segments_info`` = void).
        segments_info: dicts with ``id``, ``category_id`` (contiguous) and ``isthing``.
        metadata: the dataset metadata (``thing_classes``, ``stuff_classes``, colours).
        scale: output size factor (small images are easier to see enlarged).

    Returns:
        [H * scale, W * scale, 3] uint8 RGB.
    """
    vis = Visualizer(image, metadata, scale=scale, instance_mode=ColorMode.IMAGE)
    return vis.draw_panoptic_seg(panoptic_seg.cpu(), segments_info).get_image()


def load_panoptic_ground_truth(record: Dict[str, Any]) -> Tuple[torch.Tensor, List[Dict]]:
    """Read the panoptic ground truth of a detectron2 dataset record.

    Args:
        record: a dict with ``pan_seg_file_name`` and ``segments_info`` (contiguous category ids
            and ``isthing``), as produced by the COCO-panoptic loaders.

    Returns:
        ([H, W] int64 segment ids, segments_info).
    """
    if "pan_seg_file_name" not in record:
        raise ValueError(f"record of {record.get('file_name')!r} has no 'pan_seg_file_name'")
    ids = rgb_to_id(np.asarray(Image.open(record["pan_seg_file_name"]).convert("RGB")))
    return torch.from_numpy(ids), list(record["segments_info"])


def side_by_side(images: Sequence[np.ndarray], pad: int = 4) -> np.ndarray:
    """Concatenate [H_i, W_i, 3] uint8 images left to right on a white background."""
    height = max(im.shape[0] for im in images)
    width = sum(im.shape[1] for im in images) + pad * (len(images) - 1)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    x = 0
    for im in images:
        canvas[: im.shape[0], x : x + im.shape[1]] = im
        x += im.shape[1] + pad
    return canvas
