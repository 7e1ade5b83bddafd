#!/usr/bin/env python3
# Copyright (c) the mask2former authors.
"""ADE20K panoptic annotations (COCO-panoptic format) from the SceneParsing semantic labels and
the instance-track annotations, as in Mask2Former: stuff classes come from the semantic PNGs,
things (the 100 instance classes) from the instance PNGs (R = instance class id 1..100,
G = instance id, 0 = none) and are pasted over the stuff.

    ADEChallengeData2016/images/{training,validation}/*.jpg
    ADEChallengeData2016/annotations/{training,validation}/*.png
    ADEChallengeData2016/annotations_instance/{training,validation}/*.png
 -> ADEChallengeData2016/ade20k_panoptic_{train,val}/*.png + ade20k_panoptic_{train,val}.json

Usage: ``python datasets/prepare_ade20k_pan_seg.py [--root $DETECTRON2_DATASETS]``
"""

import logging
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from panopticapi.utils import IdGenerator
from PIL import Image

from mask2former.data import prepare
from mask2former.data.datasets.categories.ade20k import (
    ADE20K_INSTANCE_TO_SEMANTIC,
    ade20k_150_categories,
    ade20k_instances,
)
from mask2former.data.panoptic_format import id_to_rgb, panoptic_segment_info, write_json

logger = logging.getLogger("prepare_ade20k_pan_seg")

IGNORE = 255


def ade20k_panoptic(
    semantic: np.ndarray, instance: np.ndarray, id_generator: IdGenerator, file_name: str = ""
) -> Tuple[np.ndarray, List[Dict]]:
    """One image's panoptic annotation.

    Args:
        semantic: ``[H, W]`` uint8 SceneParsing label (0 = other, 1..150).
        instance: ``[H, W, 3]`` uint8 instance-track annotation.
        id_generator: panopticapi ``IdGenerator`` over :func:`ade20k_150_categories`.

    Returns:
        panoptic PNG colours ``[H, W, 3]`` uint8 and ``segments_info`` (contiguous category ids,
        areas and boxes measured after things are pasted over stuff; hidden segments dropped).
    """
    if semantic.shape != instance.shape[:2]:
        raise ValueError(
            f"{file_name!r}: semantic {semantic.shape} and instance {instance.shape[:2]} labels "
            "differ in size"
        )
    categories = semantic - np.uint8(1)  # 0 (other) -> 255
    things = set(ADE20K_INSTANCE_TO_SEMANTIC.values())
    ids = np.zeros(semantic.shape, dtype=np.int64)
    segment_categories = {}
    for category in np.unique(categories):
        if category == IGNORE or int(category) in things:
            continue
        segment_id, _ = id_generator.get_id_and_color(int(category))
        ids[categories == category] = segment_id
        segment_categories[segment_id] = int(category)
    for mask, category in ade20k_instances(instance, file_name):
        segment_id, _ = id_generator.get_id_and_color(category)
        ids[mask] = segment_id
        segment_categories[segment_id] = category
    segments = [
        panoptic_segment_info(ids == segment_id, segment_id, category)
        for segment_id, category in segment_categories.items()
        if (ids == segment_id).any()
    ]
    return id_to_rgb(ids), segments


def convert_split(ade_dir: Path, split: str, dirname: str) -> Dict:
    """Write ``ade20k_panoptic_{split}/`` PNGs and ``ade20k_panoptic_{split}.json``; returns the
    json content."""
    image_dir = Path(ade_dir) / "images" / dirname
    semantic_dir = Path(ade_dir) / "annotations" / dirname
    instance_dir = Path(ade_dir) / "annotations_instance" / dirname
    prepare.require_folders(image_dir, semantic_dir, instance_dir)
    out_folder = Path(ade_dir) / f"ade20k_panoptic_{split}"
    out_folder.mkdir(parents=True, exist_ok=True)
    categories = ade20k_150_categories()
    id_generator_categories = {c["id"]: c for c in categories}

    images = prepare.image_entries(image_dir)
    annotations = []
    for image in images:
        file_name = f"{image['id']}.png"
        semantic = prepare.read_label_png(semantic_dir / file_name, image)
        instance = prepare.read_label_png(instance_dir / file_name, image, "RGB")
        color, segments = ade20k_panoptic(
            semantic, instance, IdGenerator(id_generator_categories), str(instance_dir / file_name)
        )
        Image.fromarray(color).save(out_folder / file_name)
        annotations.append(
            {"image_id": image["id"], "file_name": file_name, "segments_info": segments}
        )
    content = {"images": images, "annotations": annotations, "categories": categories}
    write_json(Path(ade_dir) / f"ade20k_panoptic_{split}.json", content)
    return content


def main(argv: Optional[List[str]] = None) -> None:
    ade = prepare.dataset_folder(__doc__, "ADEChallengeData2016", argv)
    prepare.for_each_split(
        lambda split, dirname: len(convert_split(ade, split, dirname)["annotations"]),
        "panoptic annotations",
    )


if __name__ == "__main__":
    main()
