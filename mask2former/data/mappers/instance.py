# Copyright (c) the mask2former authors.
"""Instance segmentation mapper of MaskFormer / Mask2Former (Cheng et al.): semantic-style
augmentation (plain random crop) and one binary mask per non-crowd object annotation."""

from typing import Any, Dict, List, Optional, Union

from detectron2.config import CfgNode, configurable
from detectron2.data import MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from fvcore.transforms.transform import Transform

from .common import map_for_inference, read_image_checked
from .registry import DATASET_MAPPER_REGISTRY
from .semantic import IMAGE_PAD_VALUE, semantic_mapper_config
from .targets import annotation_masks, build_instances, image_to_tensor, pad_bottom_right

__all__ = ["MaskFormerInstanceDatasetMapper"]


@DATASET_MAPPER_REGISTRY.register_as("mask_former_instance")
class MaskFormerInstanceDatasetMapper:
    """Maps an instance dict (``file_name``, ``annotations`` with ``segmentation`` as polygons or
    RLE, contiguous ``category_id``, ``iscrowd``) to model input.

    Training output: ``image`` ``[3, H, W]`` uint8 (padded with 128) and ``instances`` with
    ``gt_classes [K]`` and ``gt_masks [K, H, W]`` (bool), crowd and cropped-away objects dropped.
    """

    @configurable
    def __init__(
        self,
        is_train: bool = True,
        *,
        augmentations: List[Union[T.Augmentation, Transform]],
        image_format: str,
        size_divisibility: int,
        num_classes: Optional[int] = None,
    ) -> None:
        """
        Args:
            is_train, augmentations, image_format, size_divisibility: see
                :class:`MaskFormerSemanticDatasetMapper`.
            num_classes: ``category_id`` must lie in ``[0, num_classes)``; None skips the check.
        """
        self.is_train = is_train
        self.augmentations = augmentations
        self.image_format = image_format
        self.size_divisibility = size_divisibility
        self.num_classes = num_classes

    @classmethod
    def from_config(cls, cfg: CfgNode, is_train: bool = True) -> Dict[str, Any]:
        args = semantic_mapper_config(cfg, is_train, category_area_crop=False)
        meta = MetadataCatalog.get(cfg.DATASETS.TRAIN[0]) if cfg.DATASETS.TRAIN else None
        thing_classes = meta.get("thing_classes") if meta is not None else None
        return {
            "is_train": is_train,
            "augmentations": args["augmentations"],
            "image_format": args["image_format"],
            "size_divisibility": args["size_divisibility"],
            "num_classes": len(thing_classes) if thing_classes else None,
        }

    def __call__(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        dataset_dict, image = read_image_checked(dataset_dict, self.image_format)
        if not self.is_train:
            return map_for_inference(dataset_dict, image, self.augmentations)
        if "annotations" not in dataset_dict:
            raise ValueError(
                f"Instance mapper needs 'annotations' for {dataset_dict['file_name']!r}"
            )
        aug_input = T.AugInput(image)
        transforms = T.AugmentationList(self.augmentations)(aug_input)
        image = aug_input.image
        annotations = [
            utils.transform_instance_annotations(annotation, transforms, image.shape[:2])
            for annotation in dataset_dict.pop("annotations")
            if not annotation.get("iscrowd", 0)
        ]
        classes, masks = annotation_masks(
            annotations, image.shape[:2], self.num_classes, dataset_dict["file_name"]
        )
        image = pad_bottom_right(image_to_tensor(image), self.size_divisibility, IMAGE_PAD_VALUE)
        masks = [pad_bottom_right(m, self.size_divisibility, 0) for m in masks]
        dataset_dict["image"] = image  # [3, H, W]
        dataset_dict["instances"] = build_instances(tuple(image.shape[-2:]), classes, masks)
        return dataset_dict
