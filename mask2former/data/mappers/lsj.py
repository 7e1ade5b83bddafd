# Copyright (c) the mask2former authors.
"""COCO mappers with large-scale jittering (LSJ; Ghiasi et al., CVPR 2021), Mask2Former's COCO
recipe (``coco_instance_lsj``, ``coco_panoptic_lsj``; adapted in the official code from DETR's
detectron2 mapper): flip, random rescale, fixed-size crop/pad to INPUT.IMAGE_SIZE squared."""

import logging
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch
from detectron2.config import CfgNode, configurable
from detectron2.data import MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from fvcore.transforms.transform import Transform

from ..panoptic_format import rgb_to_id
from .augmentations import build_lsj_augmentations
from .common import inference_augmentations, map_for_inference, read_image_checked
from .registry import DATASET_MAPPER_REGISTRY
from .targets import (
    annotation_masks,
    boxes_from_masks,
    build_instances,
    check_labels,
    image_to_tensor,
    panoptic_targets,
    read_label_map,
    read_panoptic_ids,
)

__all__ = ["COCOInstanceNewBaselineDatasetMapper", "COCOPanopticNewBaselineDatasetMapper"]

logger = logging.getLogger(__name__)


def _lsj_config(cfg: CfgNode, is_train: bool, classes_key: str) -> Dict[str, Any]:
    if is_train:
        augmentations = build_lsj_augmentations(
            cfg.INPUT.IMAGE_SIZE, cfg.INPUT.MIN_SCALE, cfg.INPUT.MAX_SCALE, cfg.INPUT.RANDOM_FLIP
        )
    else:
        augmentations = inference_augmentations(cfg)
    meta = MetadataCatalog.get(cfg.DATASETS.TRAIN[0]) if cfg.DATASETS.TRAIN else None
    classes = meta.get(classes_key) if meta is not None else None
    return {
        "is_train": is_train,
        "augmentations": augmentations,
        "image_format": cfg.INPUT.FORMAT,
        "num_classes": len(classes) if classes else None,
    }


class _LSJMapper:
    """Shared constructor of the LSJ mappers."""

    @configurable
    def __init__(
        self,
        is_train: bool = True,
        *,
        augmentations: List[Union[T.Augmentation, Transform]],
        image_format: str,
        num_classes: Optional[int] = None,
    ) -> None:
        """
        Args:
            is_train: training (augment, build targets) or inference mapping.
            augmentations: see :func:`build_lsj_augmentations` (inference: test resize).
            image_format: format for ``detection_utils.read_image``.
            num_classes: category ids must lie in ``[0, num_classes)``; None skips the check.
        """
        self.is_train = is_train
        self.augmentations = augmentations
        self.image_format = image_format
        self.num_classes = num_classes
        mode = "training" if is_train else "inference"
        logger.info(f"[{type(self).__name__}] augmentations in {mode}: {augmentations}")


@DATASET_MAPPER_REGISTRY.register_as("coco_instance_lsj")
class COCOInstanceNewBaselineDatasetMapper(_LSJMapper):
    """COCO instances (``annotations`` with polygons/RLE) -> LSJ training input.

    Training output: ``image`` ``[3, S, S]`` uint8 (S = INPUT.IMAGE_SIZE), ``padding_mask``
    ``[S, S]`` bool (True on padding) and ``instances`` with ``gt_classes [K]``,
    ``gt_masks [K, S, S]`` bool and ``gt_boxes`` (tight boxes of the masks); crowd objects and
    objects cropped away are dropped.
    """

    @classmethod
    def from_config(cls, cfg: CfgNode, is_train: bool = True) -> Dict[str, Any]:
        return _lsj_config(cfg, is_train, "thing_classes")

    def __call__(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        dataset_dict, image = read_image_checked(dataset_dict, self.image_format)
        if not self.is_train:
            return map_for_inference(dataset_dict, image, self.augmentations)
        valid = np.ones(image.shape[:2], dtype=np.uint8)
        image, transforms = T.apply_transform_gens(self.augmentations, image)
        image_shape = image.shape[:2]
        # Padding of the fixed-size crop writes 255 into segmentations: valid pixels stay 1.
        dataset_dict["padding_mask"] = torch.as_tensor(transforms.apply_segmentation(valid) != 1)
        dataset_dict["image"] = image_to_tensor(image)  # [3, S, S]

        annotations = [
            utils.transform_instance_annotations(annotation, transforms, image_shape)
            for annotation in dataset_dict.pop("annotations", [])
            if not annotation.get("iscrowd", 0)
        ]
        classes, masks = annotation_masks(
            annotations, image_shape, self.num_classes, dataset_dict["file_name"]
        )
        instances = build_instances(image_shape, classes, masks)
        instances.gt_boxes = boxes_from_masks(instances.gt_masks)
        dataset_dict["instances"] = instances
        return dataset_dict


@DATASET_MAPPER_REGISTRY.register_as("coco_panoptic_lsj")
class COCOPanopticNewBaselineDatasetMapper(_LSJMapper):
    """COCO panoptic (``pan_seg_file_name``, ``segments_info``, optional ``sem_seg_file_name``)
    -> LSJ training input.

    Training output: ``image`` ``[3, S, S]`` uint8, ``instances`` with ``gt_classes [K]``,
    ``gt_masks [K, S, S]`` bool and ``gt_boxes``, one per non-crowd segment left after the crop,
    and ``sem_seg`` ``[S, S]`` int64 (255 on padding) when the dict has a semantic label map.
    """

    @classmethod
    def from_config(cls, cfg: CfgNode, is_train: bool = True) -> Dict[str, Any]:
        return _lsj_config(cfg, is_train, "stuff_classes")

    def __call__(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        dataset_dict, image = read_image_checked(dataset_dict, self.image_format)
        if not self.is_train:
            return map_for_inference(dataset_dict, image, self.augmentations)
        if "pan_seg_file_name" not in dataset_dict:
            raise ValueError(
                f"Panoptic mapper needs 'pan_seg_file_name' for {dataset_dict['file_name']!r}"
            )
        image_file = dataset_dict["file_name"]
        pan_file = dataset_dict.pop("pan_seg_file_name")
        pan_color = read_panoptic_ids(pan_file, image, image_file)  # [H, W, 3]
        sem_seg = None
        if "sem_seg_file_name" in dataset_dict:
            sem_file = dataset_dict.pop("sem_seg_file_name")
            sem_seg = read_label_map(sem_file, image, image_file)
            check_labels(sem_seg, self.num_classes, 255, sem_file)

        image, transforms = T.apply_transform_gens(self.augmentations, image)
        dataset_dict["image"] = image_to_tensor(image)  # [3, S, S]
        if sem_seg is not None:
            sem_seg = transforms.apply_segmentation(sem_seg)  # padding becomes 255 (ignore)
            dataset_dict["sem_seg"] = torch.as_tensor(sem_seg.astype(np.int64))  # [S, S]
        # Padding makes colour (255, 255, 255), an id no segment has.
        pan_ids = torch.as_tensor(rgb_to_id(transforms.apply_segmentation(pan_color)))
        instances = panoptic_targets(
            pan_ids, dataset_dict["segments_info"], self.num_classes, pan_file
        )
        instances.gt_boxes = boxes_from_masks(instances.gt_masks)
        dataset_dict["instances"] = instances
        return dataset_dict
