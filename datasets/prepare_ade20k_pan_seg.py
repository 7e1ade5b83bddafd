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

from mask2former.data.datasets.categories.ade20k import (
    ADE20K_INSTANCE_TO_SEMANTIC,
    ade20k_150_categories,
    ade20k_instances,
)
from mask2former.data.panoptic_format import id_to_rgb, panoptic_segment_info, write_json
from mask2former.data.prepare_cli import TRAIN_VAL_SPLITS, parse_prepare_args, prepare_parser

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
    ade_dir = Path(ade_dir)
    image_dir = ade_dir / "images" / dirname
    semantic_dir = ade_dir / "annotations" / dirname
    instance_dir = ade_dir / "annotations_instance" / dirname
    for folder in (image_dir, semantic_dir, instance_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"ADE20K folder not found: {str(folder)!r}")
    out_folder = ade_dir / f"ade20k_panoptic_{split}"
    out_folder.mkdir(parents=True, exist_ok=True)
    categories = ade20k_150_categories()
    id_generator_categories = {c["id"]: c for c in categories}

    images, annotations = [], []
    for image_file in sorted(image_dir.glob("*.jpg")):
        image_id = image_file.stem
        width, height = Image.open(image_file).size
        semantic_file = semantic_dir / f"{image_id}.png"
        instance_file = instance_dir / f"{image_id}.png"
        semantic = np.asarray(Image.open(semantic_file))
        instance = np.asarray(Image.open(instance_file).convert("RGB"))
        if semantic.shape != (height, width):
            raise ValueError(f"{str(semantic_file)!r} size differs from image {str(image_file)!r}")
        color, segments = ade20k_panoptic(
            semantic, instance, IdGenerator(id_generator_categories), str(instance_file)
        )
        Image.fromarray(color).save(out_folder / f"{image_id}.png")
        images.append(
            {"id": image_id, "file_name": image_file.name, "width": width, "height": height}
        )
        annotations.append(
            {"image_id": image_id, "file_name": f"{image_id}.png", "segments_info": segments}
        )
    content = {"images": images, "annotations": annotations, "categories": categories}
    write_json(ade_dir / f"ade20k_panoptic_{split}.json", content)
    return content


def main(argv: Optional[List[str]] = None) -> None:
    root = parse_prepare_args(prepare_parser(__doc__, "ADEChallengeData2016"), argv).root
    for split, dirname in TRAIN_VAL_SPLITS:
        content = convert_split(root / "ADEChallengeData2016", split, dirname)
        logger.info(f"{split}: {len(content['annotations'])} panoptic annotations")


if __name__ == "__main__":
    main()
