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

from mask2former.data import prepare
from mask2former.data.datasets.categories.ade20k import (
    ADE20K_INSTANCE_CATEGORIES,
    ade20k_instances,
)
from mask2former.data.panoptic_format import coco_instance_annotation, write_json

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
    image_dir = Path(ade_dir) / "images" / dirname
    instance_dir = Path(ade_dir) / "annotations_instance" / dirname
    prepare.require_folders(image_dir, instance_dir)
    images = prepare.image_entries(image_dir)
    annotations: List[Dict] = []
    for image in images:
        instance_file = instance_dir / f"{image['id']}.png"
        instance = prepare.read_label_png(instance_file, image, "RGB")
        annotations += ade20k_instance_annotations(
            instance, image["id"], len(annotations) + 1, str(instance_file)
        )
    content = {"images": images, "annotations": annotations, "categories": CATEGORIES}
    write_json(Path(ade_dir) / f"ade20k_instance_{split}.json", content)
    return content


def main(argv: Optional[List[str]] = None) -> None:
    ade = prepare.dataset_folder(__doc__, "ADEChallengeData2016", argv)
    prepare.for_each_split(
        lambda split, dirname: len(convert_split(ade, split, dirname)["annotations"]), "instances"
    )


if __name__ == "__main__":
    main()
