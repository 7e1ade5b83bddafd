#!/usr/bin/env python3
# Copyright (c) the mask2former authors.
"""ADE20K-full (847 classes) semantic labels from the ADE20K 2021_17_01 release, as prepared for
MaskFormer / Mask2Former: images and labels are resized so that the short side is at most 512
(bilinear / nearest), labels become 16-bit TIFFs holding the contiguous class index (0..846) and
65535 for pixels of unused classes (ignored).

    ADE20K_2021_17_01/index_ade20k.pkl, ADE20K_2021_17_01/images/ADE/.../*.jpg + *_seg.png
 -> ADE20K_2021_17_01/images_detectron2/{training,validation}/*.jpg
    ADE20K_2021_17_01/annotations_detectron2/{training,validation}/*.tif

Usage: ``python datasets/prepare_ade20k_full_sem_seg.py [--root $DETECTRON2_DATASETS]``
"""

import logging
import pickle
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
from PIL import Image

from mask2former.data import prepare
from mask2former.data.datasets.categories.ade20k_full import ADE20K_FULL_CATEGORIES

logger = logging.getLogger("prepare_ade20k_full_sem_seg")

IGNORE_LABEL = 65535
MAX_SHORT_SIDE = 512
# ADE20K object class index -> contiguous label
ID_MAP: Dict[int, int] = {dataset_id: i for i, (dataset_id, _) in enumerate(ADE20K_FULL_CATEGORIES)}


def decode_class_mask(seg: np.ndarray) -> np.ndarray:
    """ADE20K ``*_seg.png`` (``[H, W, 3]`` uint8) -> ``[H, W]`` int32 object class index
    ``R / 10 * 256 + G`` (the ADE20K toolkit's ``loadAde20K``)."""
    if seg.ndim != 3 or seg.shape[-1] < 3:
        raise ValueError(f"ADE20K *_seg.png must be an RGB image, got shape {seg.shape}")
    return (seg[..., 0].astype(np.int32) // 10) * 256 + seg[..., 1].astype(np.int32)


def convert_class_mask(class_mask: np.ndarray, id_map: Dict[int, int] = ID_MAP) -> np.ndarray:
    """Object class indices -> ``[H, W]`` uint16 contiguous labels (65535 for unmapped classes)."""
    output = np.full(class_mask.shape, IGNORE_LABEL, dtype=np.uint16)
    for class_id in np.unique(class_mask):
        if int(class_id) in id_map:
            output[class_mask == class_id] = id_map[int(class_id)]
    return output


def resize_pair(
    image: np.ndarray, label: np.ndarray, max_short_side: int = MAX_SHORT_SIDE
) -> Tuple[np.ndarray, np.ndarray]:
    """Resize image (bilinear) and label (nearest) so that the short side is at most
    ``max_short_side``."""
    h, w = image.shape[:2]
    if min(h, w) <= max_short_side:
        return image, label
    if w >= h:
        new_h, new_w = max_short_side, round(w / h * max_short_side)
    else:
        new_h, new_w = round(h / w * max_short_side), max_short_side
    image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
    return image, label


def convert_image(image_file: Path, output_image: Path, output_label: Path) -> None:
    """Resize one image and its ``*_seg.png`` and write the image and the 16-bit label TIFF."""
    seg_file = image_file.with_name(image_file.stem + "_seg.png")
    if not seg_file.is_file():
        raise FileNotFoundError(f"ADE20K segmentation not found: {str(seg_file)!r}")
    image = np.asarray(Image.open(image_file).convert("RGB"))
    label = convert_class_mask(decode_class_mask(np.asarray(Image.open(seg_file).convert("RGB"))))
    if label.shape != image.shape[:2]:
        raise ValueError(f"{str(seg_file)!r} size differs from image {str(image_file)!r}")
    image, label = resize_pair(image, label)
    Image.fromarray(image).save(output_image)
    Image.fromarray(label).save(output_label)


def main(argv: Optional[List[str]] = None) -> None:
    ade = prepare.dataset_folder(__doc__, "ADE20K_2021_17_01", argv)
    root = ade.parent
    index_file = ade / "index_ade20k.pkl"
    if not index_file.is_file():
        raise FileNotFoundError(f"ADE20K index not found: {str(index_file)!r}")
    with open(index_file, "rb") as f:
        index = pickle.load(f)
    for _, split in prepare.TRAIN_VAL_SPLITS:
        (ade / "images_detectron2" / split).mkdir(parents=True, exist_ok=True)
        (ade / "annotations_detectron2" / split).mkdir(parents=True, exist_ok=True)
    for folder, file_name in zip(index["folder"], index["filename"]):
        split = "validation" if file_name.split("_")[1] == "val" else "training"
        convert_image(
            root / folder / file_name,
            ade / "images_detectron2" / split / file_name,
            ade / "annotations_detectron2" / split / file_name.replace(".jpg", ".tif"),
        )
    logger.info(f"converted {len(index['filename'])} images")


if __name__ == "__main__":
    main()
