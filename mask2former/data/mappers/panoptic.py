# Copyright (c) the mask2former authors.
"""Panoptic mapper of MaskFormer / Mask2Former (Cheng et al.): semantic-style augmentation and one
binary mask per non-crowd segment of the COCO-panoptic annotation."""

from typing import Any, Dict

import numpy as np
from detectron2.data import transforms as T

from ..panoptic_format import rgb_to_id, semantic_from_panoptic
from .registry import DATASET_MAPPER_REGISTRY
from .semantic import MaskFormerSemanticDatasetMapper
from .targets import (
    VOID_ID,
    check_panoptic_segments,
    pad_bottom_right,
    padded_image,
    panoptic_ids,
    panoptic_targets,
    read_panoptic_ids,
)

__all__ = ["MaskFormerPanopticDatasetMapper"]


@DATASET_MAPPER_REGISTRY.register_as("mask_former_panoptic")
class MaskFormerPanopticDatasetMapper(MaskFormerSemanticDatasetMapper):
    """Maps a panoptic dict (``file_name``, ``pan_seg_file_name``, ``segments_info`` with
    contiguous ``category_id``, optional ``sem_seg_file_name``) to model input.

    Training output: ``image`` ``[3, H, W]`` uint8, ``instances`` (``gt_classes [K]``,
    ``gt_masks [K, H, W]`` bool; one per non-crowd segment left after cropping) and ``sem_seg``
    ``[H, W]`` int64 when the dict has a semantic label map. Without one, a semantic map derived
    from the panoptic annotation drives the category-area-constrained crop.
    Constructor arguments and config: those of :class:`MaskFormerSemanticDatasetMapper`.
    """

    required_keys = ("pan_seg_file_name",)

    def map_for_training(self, dataset_dict: Dict[str, Any], image: np.ndarray) -> Dict[str, Any]:
        pan_file = dataset_dict.pop("pan_seg_file_name")
        segments_info = dataset_dict["segments_info"]
        pan_color = read_panoptic_ids(pan_file, image, dataset_dict["file_name"])  # [H, W, 3]
        segment_ids = rgb_to_id(pan_color)  # [H, W]
        check_panoptic_segments(segment_ids, segments_info, pan_file)

        has_semantic = "sem_seg_file_name" in dataset_dict
        if has_semantic:
            sem_seg = self._read_semantic(dataset_dict, image)
        else:
            sem_seg = semantic_from_panoptic(
                segment_ids, segments_info, self.ignore_label, dtype=np.float64
            )

        aug_input = T.AugInput(image, sem_seg=sem_seg)
        transforms = T.AugmentationList(self.augmentations)(aug_input)
        pan_ids = panoptic_ids(transforms.apply_segmentation(pan_color))  # [H, W]

        dataset_dict["image"] = padded_image(aug_input.image, self.size_divisibility)  # [3, H, W]
        if has_semantic:
            dataset_dict["sem_seg"] = self._pad_semantic(aug_input.sem_seg)  # [H, W]
        pan_ids = pad_bottom_right(pan_ids, self.size_divisibility, VOID_ID)  # padding is VOID
        dataset_dict["instances"] = panoptic_targets(
            pan_ids, segments_info, self.num_classes, pan_file
        )
        return dataset_dict
