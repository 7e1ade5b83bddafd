# Copyright (c) the mask2former authors.
"""Helpers for the COCO annotation formats, shared by the dataset preparation scripts, the
synthetic dataset and the mappers.

COCO-panoptic (Kirillov et al., "Panoptic Segmentation", CVPR 2019; cocodataset/panopticapi): a
segment id is stored in the PNG as the colour ``R + 256 * G + 256**2 * B``; COCO instances store
masks as RLE (pycocotools).
"""

import json
import os
from typing import Any, Dict, Iterable, Mapping, Optional, Union

import numpy as np
import pycocotools.mask as mask_util

from ..utils.boxes import mask_to_xywh

__all__ = [
    "coco_instance_annotation",
    "id_to_rgb",
    "panoptic_segment_info",
    "rgb_to_id",
    "semantic_from_panoptic",
    "write_json",
]


def rgb_to_id(color: np.ndarray) -> np.ndarray:
    """Panoptic PNG colours ``[H, W, 3]`` (uint8) -> segment ids ``[H, W]`` (int64)."""
    if color.ndim != 3 or color.shape[-1] != 3:
        raise ValueError(f"Expected a panoptic RGB array [H, W, 3], got shape {color.shape}")
    color = color.astype(np.int64)
    return color[..., 0] + 256 * color[..., 1] + 256 * 256 * color[..., 2]


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """Segment ids ``[H, W]`` -> panoptic PNG colours ``[H, W, 3]`` (uint8)."""
    ids = ids.astype(np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 256**2 % 256], axis=-1).astype(np.uint8)


def semantic_from_panoptic(
    segment_ids: np.ndarray,
    segments_info: Iterable[Dict],
    ignore_label: int = 255,
    category_map: Optional[Mapping[int, int]] = None,
    dtype: np.dtype = np.uint8,
) -> np.ndarray:
    """Semantic label map from a panoptic id map: each segment's pixels get its category.

    Args:
        segment_ids: ``[H, W]`` segment ids (see :func:`rgb_to_id`).
        segments_info: dicts with ``id`` and ``category_id`` (crowd segments included).
        ignore_label: value of pixels in no listed segment (VOID).
        category_map: optional ``category_id -> label`` map (e.g. dataset id -> contiguous id);
            identity when None.
        dtype: output dtype.

    Returns:
        ``[H, W]`` label map.
    """
    semantic = np.full(segment_ids.shape, ignore_label, dtype=dtype)
    for segment in segments_info:
        category = segment["category_id"]
        semantic[segment_ids == segment["id"]] = (
            category if category_map is None else category_map[category]
        )
    return semantic


def panoptic_segment_info(
    mask: np.ndarray, segment_id: int, category_id: int, iscrowd: int = 0
) -> Dict[str, Any]:
    """COCO-panoptic ``segments_info`` entry (``id``, ``category_id``, ``area``, ``bbox``,
    ``iscrowd``) of a non-empty ``[H, W]`` mask."""
    return {
        "id": int(segment_id),
        "category_id": int(category_id),
        "area": int(mask.sum()),
        "bbox": mask_to_xywh(mask),
        "iscrowd": int(iscrowd),
    }


def coco_instance_annotation(
    mask: np.ndarray, annotation_id: int, image_id: Any, category_id: int, iscrowd: int = 0
) -> Dict[str, Any]:
    """COCO instances annotation of a non-empty ``[H, W]`` mask, segmentation as compressed RLE."""
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("utf-8")
    return {
        "id": int(annotation_id),
        "image_id": image_id,
        "category_id": int(category_id),
        "iscrowd": int(iscrowd),
        "bbox": mask_to_xywh(mask),
        "area": int(mask_util.area(rle)),
        "segmentation": rle,
    }


def write_json(path: Union[str, os.PathLike], content: Dict[str, Any]) -> None:
    """Write a COCO / COCO-panoptic annotation dict (``images``, ``annotations``,
    ``categories``...) to ``path`` as compact json."""
    with open(path, "w") as f:
        json.dump(content, f)
