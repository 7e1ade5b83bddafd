#!/usr/bin/env python3
# Copyright (c) the mask2former authors.
"""Mapillary Vistas instance annotations in COCO json format, from its panoptic annotations: one
RLE-mask annotation per segment of a thing category (crowd flags kept). Category ids are the
panoptic ids (1..65), so the json matches ``mapillary_vistas_panoptic_{train,val}``'s
``thing_dataset_id_to_contiguous_id``.

    mapillary_vistas/{training,validation}/panoptic/panoptic_2018.json + panoptic/*.png
 -> mapillary_vistas/mapillary_vistas_instance_{train,val}.json

Usage: ``python datasets/prepare_mapillary_vistas_ins_seg.py [--root $DETECTRON2_DATASETS]``
"""

import json
import logging
from pathlib import Path
from typing import Any, Collection, Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

from mask2former.data import prepare
from mask2former.data.datasets.categories.mapillary_vistas import mapillary_vistas_categories
from mask2former.data.panoptic_format import coco_instance_annotation, rgb_to_id, write_json

logger = logging.getLogger("prepare_mapillary_vistas_ins_seg")


def panoptic_to_instance_annotations(
    segment_ids: np.ndarray,
    segments_info: Sequence[Dict],
    thing_ids: Collection[int],
    image_id: Any,
    first_annotation_id: int,
) -> List[Dict]:
    """COCO annotations of the thing segments of one panoptic annotation.

    Args:
        segment_ids: ``[H, W]`` segment ids of the panoptic PNG.
        segments_info: its segments (``id``, ``category_id``, optional ``iscrowd``).
        thing_ids: dataset category ids of things; other segments are skipped.
        first_annotation_id: id of the first annotation (ids increase by 1; keep them > 0).
    """
    annotations = []
    for segment in segments_info:
        if segment["category_id"] not in thing_ids:
            continue
        mask = segment_ids == segment["id"]
        if not mask.any():
            continue
        annotations.append(
            coco_instance_annotation(
                mask,
                first_annotation_id + len(annotations),
                image_id,
                segment["category_id"],
                segment.get("iscrowd", 0),
            )
        )
    return annotations


def convert_panoptic_json(panoptic_json: Path, panoptic_root: Path, categories: List[Dict]) -> Dict:
    """COCO instances json content of a COCO-panoptic dataset (things of ``categories``)."""
    if not Path(panoptic_json).is_file():
        raise FileNotFoundError(f"Panoptic json not found: {str(panoptic_json)!r}")
    if not Path(panoptic_root).is_dir():
        raise FileNotFoundError(f"Panoptic PNG folder not found: {str(panoptic_root)!r}")
    with open(panoptic_json) as f:
        panoptic = json.load(f)
    thing_ids = {c["id"] for c in categories if c["isthing"]}
    annotations: List[Dict] = []
    for annotation in panoptic["annotations"]:
        png = Path(panoptic_root) / annotation["file_name"]
        segment_ids = rgb_to_id(np.asarray(Image.open(png).convert("RGB")))
        annotations += panoptic_to_instance_annotations(
            segment_ids,
            annotation["segments_info"],
            thing_ids,
            annotation["image_id"],
            len(annotations) + 1,
        )
    return {
        "images": panoptic["images"],
        "annotations": annotations,
        "categories": [{"id": c["id"], "name": c["name"]} for c in categories if c["isthing"]],
    }


def main(argv: Optional[List[str]] = None) -> None:
    mapillary = prepare.dataset_folder(__doc__, "mapillary_vistas", argv)

    def convert_split(split: str, dirname: str) -> int:
        panoptic_dir = mapillary / dirname / "panoptic"
        content = convert_panoptic_json(
            panoptic_dir / "panoptic_2018.json", panoptic_dir, mapillary_vistas_categories()
        )
        write_json(mapillary / f"mapillary_vistas_instance_{split}.json", content)
        return len(content["annotations"])

    prepare.for_each_split(convert_split, "instances")


if __name__ == "__main__":
    main()
