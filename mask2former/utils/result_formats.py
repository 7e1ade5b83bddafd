# Copyright (c) the mask2former authors.
"""Model outputs in the machine-readable formats of the COCO tools, with dataset category ids.

- instances: COCO results (``loadRes`` of pycocotools), through detectron2's
  ``instances_to_coco_json`` and the instance evaluator's id mapping;
- panoptic: COCO panoptic (Kirillov et al., CVPR 2019; cocodataset/panopticapi): an RGB PNG of
  segment ids (:func:`~mask2former.data.panoptic_format.id_to_rgb`) and ``segments_info``;
- semantic: a label map of contiguous class indices, and the table of those classes.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.data import Metadata
from detectron2.evaluation.coco_evaluation import instances_to_coco_json
from detectron2.structures import Instances

from mask2former.data.panoptic_format import id_to_rgb, panoptic_segment_info
from mask2former.evaluation.instance_evaluation import unmap_category_ids

__all__ = [
    "coco_categories",
    "instances_to_coco_results",
    "panoptic_to_coco",
    "semantic_classes",
    "semantic_label_map",
]


def _reverse(metadata: Metadata, key: str) -> Optional[Dict[int, int]]:
    """``contiguous id -> dataset id`` from ``metadata.<key>`` (dataset -> contiguous), or None."""
    mapping = metadata.get(key)
    return None if mapping is None else {v: k for k, v in mapping.items()}


def instances_to_coco_results(
    instances: Instances, image_id: Any, metadata: Metadata, file_name: Optional[str] = None
) -> List[Dict[str, Any]]:
    """COCO results of one image: ``image_id``, ``category_id`` (dataset id), ``bbox`` (XYWH),
    ``score`` and ``segmentation`` (compressed RLE), plus ``file_name`` when given.

    Args:
        instances: ``pred_masks`` [N, H, W], ``pred_boxes``, ``scores`` [N], ``pred_classes`` [N]
            (contiguous ids).
        metadata: its ``thing_dataset_id_to_contiguous_id`` maps the classes back to dataset ids
            (the classes stay contiguous ids when it has none).
    """
    results = instances_to_coco_json(instances.to("cpu"), image_id)
    unmap_category_ids(results, metadata)
    if file_name is not None:
        for result in results:
            result["file_name"] = file_name
    return results


def panoptic_to_coco(
    panoptic_seg: torch.Tensor, segments_info: Sequence[Dict[str, Any]], metadata: Metadata
) -> Tuple[np.ndarray, List[Dict[str, Any]]]:
    """COCO-panoptic PNG and ``segments_info`` of one image.

    Args:
        panoptic_seg: [H, W] int segment ids (0 = void).
        segments_info: the model's dicts with ``id``, ``category_id`` (contiguous) and ``isthing``.
        metadata: thing classes map back through ``thing_dataset_id_to_contiguous_id``, stuff
            classes through ``stuff_dataset_id_to_contiguous_id`` (as detectron2's
            ``COCOPanopticEvaluator``); ids stay contiguous when a map is missing.

    Returns:
        ([H, W, 3] uint8 RGB image of the ids, ``id = R + 256 G + 256^2 B``; one dict per
        non-empty segment with ``id``, ``category_id`` (dataset id), ``isthing``, ``area``,
        ``bbox`` (XYWH) and ``iscrowd`` 0).
    """
    ids = panoptic_seg.cpu().numpy().astype(np.int64)  # [H, W]
    things = _reverse(metadata, "thing_dataset_id_to_contiguous_id")
    stuff = _reverse(metadata, "stuff_dataset_id_to_contiguous_id")
    converted = []
    for segment in segments_info:
        mask = ids == segment["id"]
        if not mask.any():
            continue
        isthing = bool(segment["isthing"])
        mapping = things if isthing else stuff
        category_id = segment["category_id"]
        if mapping is not None:
            if category_id not in mapping:
                kind = "thing" if isthing else "stuff"
                raise ValueError(
                    f"panoptic segment {segment['id']} has {kind} class {category_id}, which "
                    f"dataset {metadata.name!r} does not map to a dataset id"
                )
            category_id = mapping[category_id]
        info = panoptic_segment_info(mask, segment["id"], category_id)
        info["isthing"] = isthing
        converted.append(info)
    return id_to_rgb(ids), converted


def coco_categories(metadata: Metadata) -> List[Dict[str, Any]]:
    """COCO-panoptic ``categories`` (``id``, ``name``, ``isthing``) of panoptic ``metadata``
    (``stuff_classes`` lists every class in Mask2Former's metadata); empty when unknown."""
    names = metadata.get("stuff_classes") or []
    dataset_ids = _reverse(metadata, "stuff_dataset_id_to_contiguous_id") or {}
    thing_ids = set((metadata.get("thing_dataset_id_to_contiguous_id") or {}).values())
    return [
        {"id": dataset_ids.get(i, i), "name": name, "isthing": int(i in thing_ids)}
        for i, name in enumerate(names)
    ]


def semantic_label_map(sem_seg: torch.Tensor) -> np.ndarray:
    """[H, W] class index per pixel (argmax of the [K, H, W] scores): uint8 when K <= 256,
    else uint16 (both store losslessly in a PNG)."""
    labels = sem_seg.argmax(dim=0).cpu().numpy()  # [H, W]
    return labels.astype(np.uint8 if sem_seg.shape[0] <= 256 else np.uint16)


def semantic_classes(metadata: Metadata, num_classes: int) -> List[Dict[str, Any]]:
    """What each index of :func:`semantic_label_map` means: ``index``, ``name`` and
    ``dataset_id`` (from ``stuff_dataset_id_to_contiguous_id``; None when unknown)."""
    names = list(metadata.get("stuff_classes") or [])
    dataset_ids = _reverse(metadata, "stuff_dataset_id_to_contiguous_id") or {}
    return [
        {
            "index": i,
            "name": names[i] if i < len(names) else f"class {i}",
            "dataset_id": dataset_ids.get(i),
        }
        for i in range(num_classes)
    ]
