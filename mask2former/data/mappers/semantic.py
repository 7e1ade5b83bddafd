# Copyright (c) the mask2former authors.
"""Semantic segmentation mapper of MaskFormer / Mask2Former (Cheng et al., NeurIPS 2021 / CVPR
2022): semantic-style augmentation and one binary mask per class present ("mask classification")."""

import logging
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch
from detectron2.config import CfgNode, configurable
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from fvcore.transforms.transform import Transform

from .augmentations import build_semantic_augmentations
from .common import inference_augmentations, map_for_inference, read_image_checked
from .registry import DATASET_MAPPER_REGISTRY
from .targets import (
    check_labels,
    image_to_tensor,
    pad_bottom_right,
    read_label_map,
    semantic_targets,
)

__all__ = ["MaskFormerSemanticDatasetMapper", "semantic_mapper_config"]

logger = logging.getLogger(__name__)

# Value of the image padding (the official mappers pad images with 128).
IMAGE_PAD_VALUE = 128


def semantic_mapper_config(
    cfg: CfgNode, is_train: bool, category_area_crop: bool = True
) -> Dict[str, Any]:
    """Constructor arguments of the semantic-style mappers read from ``cfg``.

    The ignore label and number of classes come from the first training dataset's metadata
    (``ignore_label``, ``stuff_classes``), as in the official mapper.
    """
    meta = MetadataCatalog.get(cfg.DATASETS.TRAIN[0]) if cfg.DATASETS.TRAIN else None
    stuff_classes = meta.get("stuff_classes") if meta is not None else None
    if is_train:
        crop = cfg.INPUT.CROP
        augmentations = build_semantic_augmentations(
            min_size=cfg.INPUT.MIN_SIZE_TRAIN,
            max_size=cfg.INPUT.MAX_SIZE_TRAIN,
            sampling=cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING,
            crop_type=crop.TYPE if crop.ENABLED else None,
            crop_size=crop.SIZE,
            single_category_max_area=crop.SINGLE_CATEGORY_MAX_AREA if category_area_crop else None,
            ignore_value=cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            color_aug_ssd_format=cfg.INPUT.FORMAT if cfg.INPUT.COLOR_AUG_SSD else None,
        )
    else:
        augmentations = inference_augmentations(cfg)
    return {
        "is_train": is_train,
        "augmentations": augmentations,
        "image_format": cfg.INPUT.FORMAT,
        "ignore_label": meta.get("ignore_label", 255) if meta is not None else 255,
        "size_divisibility": cfg.INPUT.SIZE_DIVISIBILITY,
        "num_classes": len(stuff_classes) if stuff_classes else None,
    }


@DATASET_MAPPER_REGISTRY.register_as("mask_former_semantic")
class MaskFormerSemanticDatasetMapper:
    """Maps a semantic segmentation dict (``file_name``, ``sem_seg_file_name``) to model input.

    Training output: ``image`` ``[3, H, W]`` uint8 (padded with 128), ``sem_seg`` ``[H, W]``
    int64 (padded with ``ignore_label``) and ``instances`` with ``gt_classes [K]`` and
    ``gt_masks [K, H, W]`` (bool), one per class present, the ignore label excluded.
    Inference output: ``image`` resized for testing (see :func:`map_for_inference`).
    """

    @configurable
    def __init__(
        self,
        is_train: bool = True,
        *,
        augmentations: List[Union[T.Augmentation, Transform]],
        image_format: str,
        ignore_label: int,
        size_divisibility: int,
        num_classes: Optional[int] = None,
    ) -> None:
        """
        Args:
            is_train: training (augment, build targets) or inference mapping.
            augmentations: applied to image and label map, in order.
            image_format: format for ``detection_utils.read_image`` (e.g. "RGB").
            ignore_label: label value excluded from the targets (padding uses it too).
            size_divisibility: pad H and W to multiples of it (<= 0: no padding).
            num_classes: labels must lie in ``[0, num_classes)`` or equal ``ignore_label``;
                None skips the check.
        """
        self.is_train = is_train
        self.augmentations = augmentations
        self.image_format = image_format
        self.ignore_label = ignore_label
        self.size_divisibility = size_divisibility
        self.num_classes = num_classes
        mode = "training" if is_train else "inference"
        logger.info(f"[{type(self).__name__}] augmentations in {mode}: {augmentations}")

    @classmethod
    def from_config(cls, cfg: CfgNode, is_train: bool = True) -> Dict[str, Any]:
        return semantic_mapper_config(cfg, is_train)

    def _read_semantic(self, dataset_dict: Dict[str, Any], image: np.ndarray) -> np.ndarray:
        file_name = dataset_dict.pop("sem_seg_file_name")
        sem_seg = read_label_map(file_name, image, dataset_dict["file_name"])
        check_labels(sem_seg, self.num_classes, self.ignore_label, file_name)
        return sem_seg

    def _pad_image(self, image: np.ndarray) -> torch.Tensor:
        return pad_bottom_right(image_to_tensor(image), self.size_divisibility, IMAGE_PAD_VALUE)

    def _pad_semantic(self, sem_seg: np.ndarray) -> torch.Tensor:
        sem_seg = torch.as_tensor(sem_seg.astype(np.int64))
        return pad_bottom_right(sem_seg, self.size_divisibility, self.ignore_label)

    def __call__(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        dataset_dict, image = read_image_checked(dataset_dict, self.image_format)
        if not self.is_train:
            return map_for_inference(dataset_dict, image, self.augmentations)
        if "sem_seg_file_name" not in dataset_dict:
            raise ValueError(
                f"Semantic mapper needs 'sem_seg_file_name' for {dataset_dict['file_name']!r}"
            )
        if "annotations" in dataset_dict:
            raise ValueError(
                f"Semantic dataset dict of {dataset_dict['file_name']!r} has 'annotations'"
            )
        sem_seg = self._read_semantic(dataset_dict, image)

        aug_input = T.AugInput(image, sem_seg=sem_seg)
        T.AugmentationList(self.augmentations)(aug_input)

        dataset_dict["image"] = self._pad_image(aug_input.image)  # [3, H, W]
        sem_seg = self._pad_semantic(aug_input.sem_seg)  # [H, W]
        dataset_dict["sem_seg"] = sem_seg
        dataset_dict["instances"] = semantic_targets(sem_seg, self.ignore_label)
        return dataset_dict
