#!/usr/bin/env python3
# Copyright (c) the mask2former authors.
"""ADE20K instance annotations in COCO json format from the instance-track PNGs (R = instance
class id 1..100, G = instance id, 0 = none). Category ids are the contiguous semantic ids of the
150-class benchmark (e.g. 7 = bed), shared with the panoptic annotations, as in Mask2Former.

    ADEChallengeData2016/images/{training,validation}/*.jpg
    ADEChallengeData2016/annotations_instance/{training,validation}/*.png
 -> ADEChallengeData2016/ade20k_instance_{train,val}.json

Usage: ``python datasets/prepare_ade20k_ins_seg.py [--root $DETECTRON2_DATASETS]``
"""

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
from PIL import Image

from mask2former.data.datasets.categories.ade20k import (
    ADE20K_INSTANCE_CATEGORIES,
    ade20k_instances,
)
from mask2former.data.panoptic_format import coco_instance_annotation, write_json
from mask2former.data.prepare_cli import TRAIN_VAL_SPLITS, parse_prepare_args, prepare_parser

logger = logging.getLogger("prepare_ade20k_ins_seg")

CATEGORIES: List[Dict] = [{"id": sem, "name": name} for _, sem, name in ADE20K_INSTANCE_CATEGORIES]


def ade20k_instance_annotations(
    instance: np.ndarray, image_id: Any, first_annotation_id: int, file_name: str = ""
) -> List[Dict]:
    """COCO annotations (RLE masks) of the instances of one ``[H, W, 3]`` instance PNG, with ids
    ``first_annotation_id, first_annotation_id + 1, ...``."""
    return [
        coco_instance_annotation(mask, first_annotation_id + i, image_id, category)
        for i, (mask, category) in enumerate(ade20k_instances(instance, file_name))
    ]


def convert_split(ade_dir: Path, split: str, dirname: str) -> Dict:
    """Write ``ade20k_instance_{split}.json``; returns its content."""
    ade_dir = Path(ade_dir)
    image_dir = ade_dir / "images" / dirname
    instance_dir = ade_dir / "annotations_instance" / dirname
    for folder in (image_dir, instance_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"ADE20K folder not found: {str(folder)!r}")
    images, annotations = [], []
    for image_file in sorted(image_dir.glob("*.jpg")):
        image_id = image_file.stem
        width, height = Image.open(image_file).size
        instance_file = instance_dir / f"{image_id}.png"
        instance = np.asarray(Image.open(instance_file).convert("RGB"))
        if instance.shape[:2] != (height, width):
            raise ValueError(f"{str(instance_file)!r} size differs from image {str(image_file)!r}")
        images.append(
            {"id": image_id, "file_name": image_file.name, "width": width, "height": height}
        )
        annotations += ade20k_instance_annotations(
            instance, image_id, len(annotations) + 1, str(instance_file)
        )
    content = {"images": images, "annotations": annotations, "categories": CATEGORIES}
    write_json(ade_dir / f"ade20k_instance_{split}.json", content)
    return content


def main(argv: Optional[List[str]] = None) -> None:
    root = parse_prepare_args(prepare_parser(__doc__, "ADEChallengeData2016"), argv).root
    for split, dirname in TRAIN_VAL_SPLITS:
        content = convert_split(root / "ADEChallengeData2016", split, dirname)
        logger.info(f"{split}: {len(content['annotations'])} instances")


if __name__ == "__main__":
    main()
