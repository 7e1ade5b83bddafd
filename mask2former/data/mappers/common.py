# Copyright (c) the mask2former authors.
"""Steps every mapper shares: reading the image and the inference-mode mapping."""

import copy
from typing import Any, Dict, List, Tuple

import numpy as np
from detectron2.config import CfgNode
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from .targets import image_to_tensor

__all__ = ["inference_augmentations", "map_for_inference", "read_image_checked"]

# Annotation keys removed from the dicts of inference mode (the evaluators read ground truth from
# the dataset themselves).
_ANNOTATION_KEYS = ("annotations", "sem_seg_file_name", "pan_seg_file_name")


def read_image_checked(
    dataset_dict: Dict[str, Any], image_format: str
) -> Tuple[Dict[str, Any], np.ndarray]:
    """Deep copy of ``dataset_dict`` (the mapper edits it) and its image ``[H, W, C]`` uint8,
    checked against the dict's ``height``/``width`` when present."""
    dataset_dict = copy.deepcopy(dataset_dict)
    image = utils.read_image(dataset_dict["file_name"], format=image_format)
    utils.check_image_size(dataset_dict, image)
    return dataset_dict, image


def inference_augmentations(cfg: CfgNode) -> List[T.Augmentation]:
    """Shortest-edge resize to INPUT.MIN_SIZE_TEST (none when it is 0), as detectron2's
    ``DatasetMapper`` does at test time."""
    if cfg.INPUT.MIN_SIZE_TEST <= 0:
        return []
    return [T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, "choice")]


def map_for_inference(
    dataset_dict: Dict[str, Any], image: np.ndarray, augmentations: List[T.Augmentation]
) -> Dict[str, Any]:
    """Inference output: ``image`` ``[C, H', W']`` uint8 after ``augmentations``; ``height`` /
    ``width`` = original size (predictions are resized to it); annotation keys removed."""
    dataset_dict.setdefault("height", image.shape[0])
    dataset_dict.setdefault("width", image.shape[1])
    image, _ = T.apply_transform_gens(augmentations, image)
    dataset_dict["image"] = image_to_tensor(image)
    for key in _ANNOTATION_KEYS:
        dataset_dict.pop(key, None)
    return dataset_dict
