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

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
from PIL import Image

from mask2former.data.datasets.categories.ade20k import ADE20K_INSTANCE_CATEGORIES
from mask2former.data.panoptic_format import coco_instance_annotation

logger = logging.getLogger("prepare_ade20k_ins_seg")

SPLITS = (("train", "training"), ("val", "validation"))
INSTANCE_TO_SEMANTIC: Dict[int, int] = {ins: sem for ins, sem, _ in ADE20K_INSTANCE_CATEGORIES}
CATEGORIES: List[Dict] = [{"id": sem, "name": name} for _, sem, name in ADE20K_INSTANCE_CATEGORIES]


def ade20k_instance_annotations(
    instance: np.ndarray, image_id: Any, first_annotation_id: int, file_name: str = ""
) -> List[Dict]:
    """COCO annotations (RLE masks) of the instances of one ``[H, W, 3]`` instance PNG, with ids
    ``first_annotation_id, first_annotation_id + 1, ...``."""
    annotations = []
    for instance_id in np.unique(instance[..., 1]):
        if instance_id == 0:
            continue
        mask = instance[..., 1] == instance_id
        classes = np.unique(instance[..., 0][mask])
        if len(classes) != 1 or int(classes[0]) not in INSTANCE_TO_SEMANTIC:
            raise ValueError(
                f"Instance annotation {file_name!r}: instance {int(instance_id)} has class ids "
                f"{classes.tolist()}, expected exactly one in 1..{len(INSTANCE_TO_SEMANTIC)}"
            )
        category = INSTANCE_TO_SEMANTIC[int(classes[0])]
        annotation_id = first_annotation_id + len(annotations)
        annotations.append(coco_instance_annotation(mask, annotation_id, image_id, category))
    return annotations


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
    with open(ade_dir / f"ade20k_instance_{split}.json", "w") as f:
        json.dump(content, f)
    return content


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root",
        default=os.getenv("DETECTRON2_DATASETS", "datasets"),
        help="dataset root with ADEChallengeData2016/ (default: $DETECTRON2_DATASETS or datasets)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    for split, dirname in SPLITS:
        content = convert_split(Path(args.root) / "ADEChallengeData2016", split, dirname)
        logger.info(f"{split}: {len(content['annotations'])} instances")


if __name__ == "__main__":
    main()
