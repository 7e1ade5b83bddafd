# Copyright (c) the mask2former authors.
"""Instance segmentation mapper of MaskFormer / Mask2Former (Cheng et al.): semantic-style
augmentation (plain random crop) and one binary mask per non-crowd object annotation."""

from typing import Any, Dict

import numpy as np
from detectron2.config import CfgNode, configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from .common import DatasetMapperBase
from .registry import DATASET_MAPPER_REGISTRY
from .semantic import semantic_mapper_config
from .targets import (
    annotation_masks,
    build_instances,
    pad_bottom_right,
    padded_image,
    training_objects,
)

__all__ = ["MaskFormerInstanceDatasetMapper"]


@DATASET_MAPPER_REGISTRY.register_as("mask_former_instance")
class MaskFormerInstanceDatasetMapper(DatasetMapperBase):
    """Maps an instance dict (``file_name``, ``annotations`` with ``segmentation`` as polygons or
    RLE, contiguous ``category_id``, ``iscrowd``) to model input.

    Training output: ``image`` ``[3, H, W]`` uint8 (padded with 128) and ``instances`` with
    ``gt_classes [K]`` and ``gt_masks [K, H, W]`` (bool), crowd and cropped-away objects dropped.
    """

    required_keys = ("annotations",)

    @configurable
    def __init__(self, is_train: bool = True, *, size_divisibility: int, **base_args: Any) -> None:
        """
        Args:
            is_train: see :class:`~mask2former.data.mappers.common.DatasetMapperBase`.
            size_divisibility: pad H and W to multiples of it (<= 0: no padding).
            base_args: ``augmentations``, ``image_format`` and ``num_classes`` (of the thing
                classes) of :class:`~mask2former.data.mappers.common.DatasetMapperBase`.
        """
        super().__init__(is_train, **base_args)
        self.size_divisibility = size_divisibility

    @classmethod
    def from_config(cls, cfg: CfgNode, is_train: bool = True) -> Dict[str, Any]:
        return semantic_mapper_config(cfg, is_train, "thing_classes", category_area_crop=False)

    def map_for_training(self, dataset_dict: Dict[str, Any], image: np.ndarray) -> Dict[str, Any]:
        file_name = dataset_dict["file_name"]
        objects = training_objects(dataset_dict.pop("annotations"), image.shape[:2], file_name)
        aug_input = T.AugInput(image)
        transforms = T.AugmentationList(self.augmentations)(aug_input)
        image = aug_input.image
        annotations = [
            utils.transform_instance_annotations(annotation, transforms, image.shape[:2])
            for annotation in objects
        ]
        classes, masks = annotation_masks(annotations, image.shape[:2], self.num_classes, file_name)
        image = padded_image(image, self.size_divisibility)  # [3, H, W]
        masks = [pad_bottom_right(m, self.size_divisibility, 0) for m in masks]
        dataset_dict["image"] = image
        dataset_dict["instances"] = build_instances(tuple(image.shape[-2:]), classes, masks)
        return dataset_dict
