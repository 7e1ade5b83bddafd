# Copyright (c) the mask2former authors.
"""Semantic segmentation mapper of MaskFormer / Mask2Former (Cheng et al., NeurIPS 2021 / CVPR
2022): semantic-style augmentation and one binary mask per class present ("mask classification")."""

from typing import Any, Dict

import numpy as np
import torch
from detectron2.config import CfgNode, configurable
from detectron2.data import transforms as T

from .augmentations import build_semantic_augmentations
from .common import Augmentations, DatasetMapperBase, mapper_config, training_ignore_label
from .registry import DATASET_MAPPER_REGISTRY
from .targets import (
    pad_bottom_right,
    padded_image,
    read_semantic_labels,
    require_labelled_pixels,
    semantic_targets,
)

__all__ = ["MaskFormerSemanticDatasetMapper", "semantic_mapper_config"]


def semantic_mapper_config(
    cfg: CfgNode,
    is_train: bool,
    classes_key: str = "stuff_classes",
    category_area_crop: bool = True,
) -> Dict[str, Any]:
    """Constructor arguments shared by the MaskFormer-style mappers (semantic, panoptic, instance):
    those of :func:`~mask2former.data.mappers.common.mapper_config` with MaskFormer's training
    augmentations, and ``size_divisibility``.

    Args:
        classes_key: metadata list giving ``num_classes``.
        category_area_crop: crop with INPUT.CROP.SINGLE_CATEGORY_MAX_AREA (needs a label map).
    """

    def training_augmentations() -> Augmentations:
        crop = cfg.INPUT.CROP
        return build_semantic_augmentations(
            min_size=cfg.INPUT.MIN_SIZE_TRAIN,
            max_size=cfg.INPUT.MAX_SIZE_TRAIN,
            sampling=cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING,
            crop_type=crop.TYPE if crop.ENABLED else None,
            crop_size=crop.SIZE,
            single_category_max_area=crop.SINGLE_CATEGORY_MAX_AREA if category_area_crop else None,
            ignore_value=cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            color_aug_ssd_format=cfg.INPUT.FORMAT if cfg.INPUT.COLOR_AUG_SSD else None,
        )

    return {
        **mapper_config(cfg, is_train, training_augmentations, classes_key),
        "size_divisibility": cfg.INPUT.SIZE_DIVISIBILITY,
    }


@DATASET_MAPPER_REGISTRY.register_as("mask_former_semantic")
class MaskFormerSemanticDatasetMapper(DatasetMapperBase):
    """Maps a semantic segmentation dict (``file_name``, ``sem_seg_file_name``) to model input.

    Training output: ``image`` ``[3, H, W]`` uint8 (padded with 128), ``sem_seg`` ``[H, W]``
    int64 (padded with ``ignore_label``) and ``instances`` with ``gt_classes [K]`` and
    ``gt_masks [K, H, W]`` (bool), one per class present, the ignore label excluded.
    Inference output: ``image`` resized for testing (see :func:`map_for_inference`).
    """

    required_keys = ("sem_seg_file_name",)

    @configurable
    def __init__(
        self,
        is_train: bool = True,
        *,
        ignore_label: int,
        size_divisibility: int,
        **base_args: Any,
    ) -> None:
        """
        Args:
            is_train: see :class:`~mask2former.data.mappers.common.DatasetMapperBase`.
            ignore_label: label value excluded from the targets (padding uses it too).
            size_divisibility: pad H and W to multiples of it (<= 0: no padding).
            base_args: ``augmentations``, ``image_format`` and ``num_classes`` of
                :class:`~mask2former.data.mappers.common.DatasetMapperBase`.
        """
        super().__init__(is_train, **base_args)
        self.ignore_label = ignore_label
        self.size_divisibility = size_divisibility

    @classmethod
    def from_config(cls, cfg: CfgNode, is_train: bool = True) -> Dict[str, Any]:
        return {**semantic_mapper_config(cfg, is_train), "ignore_label": training_ignore_label(cfg)}

    def _read_semantic(self, dataset_dict: Dict[str, Any], image: np.ndarray) -> np.ndarray:
        file_name = dataset_dict.pop("sem_seg_file_name")
        return read_semantic_labels(
            file_name, image, dataset_dict["file_name"], self.num_classes, self.ignore_label
        )

    def _pad_semantic(self, sem_seg: np.ndarray) -> torch.Tensor:
        sem_seg = torch.as_tensor(sem_seg.astype(np.int64))
        return pad_bottom_right(sem_seg, self.size_divisibility, self.ignore_label)

    def map_for_training(self, dataset_dict: Dict[str, Any], image: np.ndarray) -> Dict[str, Any]:
        if "annotations" in dataset_dict:
            raise ValueError(
                f"Semantic dataset dict of {dataset_dict['file_name']!r} has 'annotations'"
            )
        label_file = dataset_dict["sem_seg_file_name"]
        sem_seg = self._read_semantic(dataset_dict, image)
        require_labelled_pixels(sem_seg, self.ignore_label, label_file)

        aug_input = T.AugInput(image, sem_seg=sem_seg)
        T.AugmentationList(self.augmentations)(aug_input)

        dataset_dict["image"] = padded_image(aug_input.image, self.size_divisibility)  # [3, H, W]
        sem_seg = self._pad_semantic(aug_input.sem_seg)  # [H, W]
        dataset_dict["sem_seg"] = sem_seg
        dataset_dict["instances"] = semantic_targets(sem_seg, self.ignore_label)
        return dataset_dict
