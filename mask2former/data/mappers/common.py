# Copyright (c) the mask2former authors.
"""What every mapper shares: the base class (constructor arguments, reading the image, the
inference-mode mapping, the check of the annotation keys, skipping bad training samples) and the
config helpers."""

import copy
import logging
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
from detectron2.config import CfgNode, configurable
from detectron2.data import Metadata, MetadataCatalog
from detectron2.data import transforms as T
from fvcore.transforms.transform import Transform

from ..bad_samples import map_or_skip
from ..datasets.lookup import check_registered
from ..image_io import check_image_size, read_image
from .targets import image_to_tensor

__all__ = [
    "DatasetMapperBase",
    "inference_augmentations",
    "map_for_inference",
    "mapper_config",
    "read_image_checked",
    "training_ignore_label",
]

logger = logging.getLogger(__name__)

Augmentations = List[Union[T.Augmentation, Transform]]

# Annotation keys removed from the dicts of inference mode (the evaluators read ground truth from
# the dataset themselves).
_ANNOTATION_KEYS = ("annotations", "sem_seg_file_name", "pan_seg_file_name")


def read_image_checked(
    dataset_dict: Dict[str, Any], image_format: str
) -> Tuple[Dict[str, Any], np.ndarray]:
    """Deep copy of ``dataset_dict`` (the mapper edits it) and its image ``[H, W, C]`` uint8,
    checked against the dict's ``height``/``width`` when present.

    Raises:
        MissingFileError, UnreadableFileError: see :func:`mask2former.data.image_io.read_image`.
        SizeMismatchError: the image's size is not the dict's.
    """
    dataset_dict = copy.deepcopy(dataset_dict)
    image = read_image(dataset_dict["file_name"], format=image_format)
    check_image_size(dataset_dict, image)
    return dataset_dict, image


def inference_augmentations(cfg: CfgNode) -> List[T.Augmentation]:
    """Shortest-edge resize to INPUT.MIN_SIZE_TEST (none when it is 0), as detectron2's
    ``DatasetMapper`` does at test time."""
    if cfg.INPUT.MIN_SIZE_TEST <= 0:
        return []
    return [T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, "choice")]


def map_for_inference(
    dataset_dict: Dict[str, Any], image: np.ndarray, augmentations: Augmentations
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


def _training_dataset(cfg: CfgNode) -> Optional[Metadata]:
    """Metadata of the first training dataset, which the official mappers read; None if none."""
    return MetadataCatalog.get(cfg.DATASETS.TRAIN[0]) if cfg.DATASETS.TRAIN else None


def training_ignore_label(cfg: CfgNode) -> int:
    """``ignore_label`` of the first training dataset (255 when it sets none)."""
    meta = _training_dataset(cfg)
    return meta.get("ignore_label", 255) if meta is not None else 255


def mapper_config(
    cfg: CfgNode,
    is_train: bool,
    training_augmentations: Callable[[], Augmentations],
    classes_key: str,
) -> Dict[str, Any]:
    """The :class:`DatasetMapperBase` arguments read from ``cfg``.

    Args:
        training_augmentations: builds the training augmentations (inference mode uses
            :func:`inference_augmentations`).
        classes_key: metadata list whose length is ``num_classes`` (e.g. "stuff_classes"); None
            when there is no training dataset or it has no such list.

    Raises:
        KeyError: in training, a name of DATASETS.TRAIN is not registered (the message lists the
            close names).
    """
    if is_train:
        check_registered(cfg.DATASETS.TRAIN, "DATASETS.TRAIN")
    meta = _training_dataset(cfg)
    classes = meta.get(classes_key) if meta is not None else None
    return {
        "is_train": is_train,
        "augmentations": training_augmentations() if is_train else inference_augmentations(cfg),
        "image_format": cfg.INPUT.FORMAT,
        "num_classes": len(classes) if classes else None,
    }


class DatasetMapperBase:
    """Base of the dataset mappers: a callable ``dataset dict -> model input``.

    ``__call__`` reads the image; in inference mode it returns :func:`map_for_inference`; in
    training mode it checks that the dict has the keys of :attr:`required_keys` and returns
    :meth:`map_for_training`, which subclasses implement. Subclasses also give the
    ``from_config`` classmethod and may take further constructor arguments.

    Bad data (see :mod:`mask2former.data.bad_samples`): in training, a sample whose files are
    missing or unreadable, or that has nothing to learn from (crowd-only, no labelled pixel),
    makes ``__call__`` return None (detectron2's ``MapDataset`` maps another one) and is counted;
    in inference it is an error naming the file. Other faults are errors naming the file.
    """

    # Keys a training dict must have; a missing one is an error naming the image.
    required_keys: Tuple[str, ...] = ()

    @configurable
    def __init__(
        self,
        is_train: bool = True,
        *,
        augmentations: Augmentations,
        image_format: str,
        num_classes: Optional[int] = None,
    ) -> None:
        """
        Args:
            is_train: training (augment, build targets) or inference mapping.
            augmentations: applied in order to the image and its annotations (inference: the
                test-time resize).
            image_format: format for :func:`~mask2former.data.image_io.read_image` (e.g. "RGB").
            num_classes: class ids must lie in ``[0, num_classes)`` (or be the ignore label);
                None skips the check.
        """
        self.is_train = is_train
        self.augmentations = augmentations
        self.image_format = image_format
        self.num_classes = num_classes
        mode = "training" if is_train else "inference"
        logger.info(f"[{type(self).__name__}] augmentations in {mode}: {augmentations}")

    def __call__(self, dataset_dict: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        if not self.is_train:
            dataset_dict, image = read_image_checked(dataset_dict, self.image_format)
            return map_for_inference(dataset_dict, image, self.augmentations)
        return map_or_skip(self._map_training_sample, dataset_dict)

    def _map_training_sample(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        for key in self.required_keys:
            if key not in dataset_dict:
                raise ValueError(
                    f"{type(self).__name__} needs {key!r} in the dataset dict of "
                    f"{dataset_dict['file_name']!r}"
                )
        dataset_dict, image = read_image_checked(dataset_dict, self.image_format)
        return self.map_for_training(dataset_dict, image)

    def map_for_training(self, dataset_dict: Dict[str, Any], image: np.ndarray) -> Dict[str, Any]:
        """Training output of a (copied) dataset dict and its image ``[H, W, C]`` uint8."""
        raise NotImplementedError
