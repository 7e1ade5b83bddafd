# Copyright (c) the mask2former authors.
"""COCO mappers with large-scale jittering (LSJ; Ghiasi et al., CVPR 2021), Mask2Former's COCO
recipe (``coco_instance_lsj``, ``coco_panoptic_lsj``; adapted in the official code from DETR's
detectron2 mapper): flip, random rescale, fixed-size crop/pad to INPUT.IMAGE_SIZE squared."""

from typing import Any, Dict

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import Boxes, Instances

from ...utils.boxes import masks_to_boxes
from ..panoptic_format import rgb_to_id
from .augmentations import build_lsj_augmentations
from .common import Augmentations, DatasetMapperBase, mapper_config
from .registry import DATASET_MAPPER_REGISTRY
from .targets import (
    annotation_masks,
    build_instances,
    check_panoptic_segments,
    image_to_tensor,
    panoptic_ids,
    panoptic_targets,
    read_panoptic_ids,
    read_semantic_labels,
    training_objects,
)

__all__ = ["COCOInstanceNewBaselineDatasetMapper", "COCOPanopticNewBaselineDatasetMapper"]

# Label of the padding in the semantic maps (the FixedSizeCrop pads segmentations with 255).
_SEM_SEG_IGNORE = 255


def _lsj_config(cfg: CfgNode, is_train: bool, classes_key: str) -> Dict[str, Any]:
    def training_augmentations() -> Augmentations:
        return build_lsj_augmentations(
            cfg.INPUT.IMAGE_SIZE,
            cfg.INPUT.MIN_SCALE,
            cfg.INPUT.MAX_SCALE,
            cfg.INPUT.RANDOM_FLIP,
        )

    return mapper_config(cfg, is_train, training_augmentations, classes_key)


def _with_boxes(instances: Instances) -> Instances:
    """``instances`` with ``gt_boxes``: the tight XYXY boxes of its ``gt_masks``."""
    instances.gt_boxes = Boxes(masks_to_boxes(instances.gt_masks))
    return instances


@DATASET_MAPPER_REGISTRY.register_as("coco_instance_lsj")
class COCOInstanceNewBaselineDatasetMapper(DatasetMapperBase):
    """COCO instances (``annotations`` with polygons/RLE) -> LSJ training input.

    Training output: ``image`` ``[3, S, S]`` uint8 (S = INPUT.IMAGE_SIZE), ``padding_mask``
    ``[S, S]`` bool (True on padding) and ``instances`` with ``gt_classes [K]``,
    ``gt_masks [K, S, S]`` bool and ``gt_boxes`` (tight boxes of the masks); crowd objects and
    objects cropped away are dropped. Constructor: that of
    :class:`~mask2former.data.mappers.common.DatasetMapperBase` (``num_classes``: thing classes).
    """

    @classmethod
    def from_config(cls, cfg: CfgNode, is_train: bool = True) -> Dict[str, Any]:
        return _lsj_config(cfg, is_train, "thing_classes")

    def map_for_training(self, dataset_dict: Dict[str, Any], image: np.ndarray) -> Dict[str, Any]:
        file_name = dataset_dict["file_name"]
        objects = training_objects(dataset_dict.pop("annotations", []), image.shape[:2], file_name)
        valid = np.ones(image.shape[:2], dtype=np.uint8)
        image, transforms = T.apply_transform_gens(self.augmentations, image)
        image_shape = image.shape[:2]
        # Padding of the fixed-size crop writes 255 into segmentations: valid pixels stay 1.
        dataset_dict["padding_mask"] = torch.as_tensor(transforms.apply_segmentation(valid) != 1)
        dataset_dict["image"] = image_to_tensor(image)  # [3, S, S]

        annotations = [
            utils.transform_instance_annotations(annotation, transforms, image_shape)
            for annotation in objects
        ]
        classes, masks = annotation_masks(annotations, image_shape, self.num_classes, file_name)
        dataset_dict["instances"] = _with_boxes(build_instances(image_shape, classes, masks))
        return dataset_dict


@DATASET_MAPPER_REGISTRY.register_as("coco_panoptic_lsj")
class COCOPanopticNewBaselineDatasetMapper(DatasetMapperBase):
    """COCO panoptic (``pan_seg_file_name``, ``segments_info``, optional ``sem_seg_file_name``)
    -> LSJ training input.

    Training output: ``image`` ``[3, S, S]`` uint8, ``instances`` with ``gt_classes [K]``,
    ``gt_masks [K, S, S]`` bool and ``gt_boxes``, one per non-crowd segment left after the crop,
    and ``sem_seg`` ``[S, S]`` int64 (255 on padding) when the dict has a semantic label map.
    Constructor: that of :class:`~mask2former.data.mappers.common.DatasetMapperBase`
    (``num_classes``: all classes).
    """

    required_keys = ("pan_seg_file_name",)

    @classmethod
    def from_config(cls, cfg: CfgNode, is_train: bool = True) -> Dict[str, Any]:
        return _lsj_config(cfg, is_train, "stuff_classes")

    def map_for_training(self, dataset_dict: Dict[str, Any], image: np.ndarray) -> Dict[str, Any]:
        image_file = dataset_dict["file_name"]
        pan_file = dataset_dict.pop("pan_seg_file_name")
        pan_color = read_panoptic_ids(pan_file, image, image_file)  # [H, W, 3]
        check_panoptic_segments(rgb_to_id(pan_color), dataset_dict["segments_info"], pan_file)
        sem_seg = None
        if "sem_seg_file_name" in dataset_dict:
            sem_file = dataset_dict.pop("sem_seg_file_name")
            sem_seg = read_semantic_labels(
                sem_file, image, image_file, self.num_classes, _SEM_SEG_IGNORE
            )

        image, transforms = T.apply_transform_gens(self.augmentations, image)
        dataset_dict["image"] = image_to_tensor(image)  # [3, S, S]
        if sem_seg is not None:
            sem_seg = transforms.apply_segmentation(sem_seg)  # padding becomes 255 (ignore)
            dataset_dict["sem_seg"] = torch.as_tensor(sem_seg.astype(np.int64))  # [S, S]
        # Padding makes colour (255, 255, 255), an id no segment has.
        pan_ids = panoptic_ids(transforms.apply_segmentation(pan_color))  # [S, S]
        instances = panoptic_targets(
            pan_ids, dataset_dict["segments_info"], self.num_classes, pan_file
        )
        dataset_dict["instances"] = _with_boxes(instances)
        return dataset_dict
