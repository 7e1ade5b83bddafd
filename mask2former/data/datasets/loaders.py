# Copyright (c) the mask2former authors.
"""Dataset loaders: one per annotation format.

* :func:`load_panoptic_json`: COCO-panoptic format (json + RGB-id PNGs, optional semantic PNGs);
  used for COCO, ADE20K and Mapillary Vistas panoptic alike (the official Mask2Former repeats
  this loader once per dataset).
* :func:`load_instance_json`: COCO instances json (detectron2 ``load_coco_json``).
* :func:`load_semantic_dataset`: a folder of images and a folder of label PNGs (detectron2's
  ``load_sem_seg`` with clear errors for missing folders).
"""

import json
import logging
import os
from typing import Any, Dict, List, Mapping, Optional

from detectron2.data.datasets import load_coco_json, load_sem_seg
from detectron2.utils.file_io import PathManager

from .dataset_root import DATASET_ROOT_ENV

__all__ = ["load_instance_json", "load_panoptic_json", "load_semantic_dataset"]

logger = logging.getLogger(__name__)


def _missing(kind: str, path: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{kind} not found: {path!r} (builtin datasets live under ${DATASET_ROOT_ENV}, "
        "default ./datasets; see datasets/README.md)"
    )


def _convert_segment(segment: Dict[str, Any], metadata: Mapping, json_file: str) -> Dict[str, Any]:
    """Copy of a segment with ``category_id`` made contiguous and ``isthing`` set."""
    segment = dict(segment)
    category = segment["category_id"]
    things = metadata["thing_dataset_id_to_contiguous_id"]
    stuff = metadata["stuff_dataset_id_to_contiguous_id"]
    if category in things:
        segment["category_id"], segment["isthing"] = things[category], True
    elif category in stuff:
        segment["category_id"], segment["isthing"] = stuff[category], False
    else:
        raise ValueError(
            f"Segment {segment.get('id')} in {json_file!r} has category_id {category}, which is "
            "in neither thing_dataset_id_to_contiguous_id nor stuff_dataset_id_to_contiguous_id"
        )
    segment.setdefault("iscrowd", 0)
    return segment


def load_panoptic_json(
    json_file: str,
    image_root: str,
    panoptic_root: str,
    metadata: Mapping,
    sem_seg_root: Optional[str] = None,
    image_ext: str = ".jpg",
) -> List[Dict[str, Any]]:
    """Load a COCO-panoptic-format dataset into detectron2 dicts.

    Args:
        json_file: panoptic json (``images``, ``annotations`` with ``segments_info``).
        image_root: folder of the images.
        panoptic_root: folder of the RGB-id panoptic PNGs named by the annotations' ``file_name``.
        metadata: needs ``thing_dataset_id_to_contiguous_id`` and
            ``stuff_dataset_id_to_contiguous_id`` (dataset category id -> contiguous id).
        sem_seg_root: optional folder of semantic PNGs named like the panoptic PNGs.
        image_ext: image extension used when the json has no ``images`` entry for an image.

    Returns:
        One dict per annotated image: ``file_name``, ``image_id``, ``pan_seg_file_name``,
        ``segments_info`` (``id``, contiguous ``category_id``, ``isthing``, ``iscrowd``, ...),
        ``height``/``width`` when the json gives them, ``sem_seg_file_name`` with ``sem_seg_root``.
    """
    if not PathManager.isfile(json_file):
        raise _missing("Panoptic json", json_file)
    with PathManager.open(json_file) as f:
        content = json.load(f)
    images = {image["id"]: image for image in content.get("images", [])}

    records = []
    for annotation in content["annotations"]:
        image_id = annotation["image_id"]
        stem = os.path.splitext(annotation["file_name"])[0]
        image_info = images.get(image_id, {})
        record = {
            "file_name": os.path.join(image_root, image_info.get("file_name", stem + image_ext)),
            "image_id": image_id,
            "pan_seg_file_name": os.path.join(panoptic_root, annotation["file_name"]),
            "segments_info": [
                _convert_segment(s, metadata, json_file) for s in annotation["segments_info"]
            ],
        }
        if "height" in image_info and "width" in image_info:
            record["height"], record["width"] = image_info["height"], image_info["width"]
        if sem_seg_root is not None:
            record["sem_seg_file_name"] = os.path.join(sem_seg_root, annotation["file_name"])
        records.append(record)

    if not records:
        raise ValueError(f"No annotations in panoptic json {json_file!r}")
    # Check the first record only: listing large folders is slow.
    for key, kind in [
        ("file_name", "Image"),
        ("pan_seg_file_name", "Panoptic PNG"),
        ("sem_seg_file_name", "Semantic PNG (see datasets/README.md to generate it)"),
    ]:
        if key in records[0] and not PathManager.isfile(records[0][key]):
            raise _missing(kind, records[0][key])
    logger.info(f"Loaded {len(records)} images in COCO-panoptic format from {json_file}")
    return records


def load_semantic_dataset(
    image_root: str, sem_seg_root: str, image_ext: str = "jpg", gt_ext: str = "png"
) -> List[Dict[str, Any]]:
    """Images and label maps matched by file name (detectron2 ``load_sem_seg``).

    Returns:
        Dicts with ``file_name``, ``sem_seg_file_name``.
    """
    for kind, folder in [("Image folder", image_root), ("Label folder", sem_seg_root)]:
        if not PathManager.isdir(folder):
            raise _missing(kind, folder)
    return load_sem_seg(sem_seg_root, image_root, gt_ext=gt_ext, image_ext=image_ext)


def load_instance_json(json_file: str, image_root: str, dataset_name: str) -> List[Dict[str, Any]]:
    """COCO instances json -> detectron2 dicts (``load_coco_json``, which also sets the dataset's
    ``thing_classes`` metadata and checks it against the json's categories).

    Returns:
        Dicts with ``file_name``, ``height``, ``width``, ``image_id``, ``annotations``
        (``bbox``, ``segmentation``, contiguous ``category_id``, ``iscrowd``).

    Raises:
        ValueError: naming the json, for a KeyError of ``load_coco_json`` (e.g. an annotation
            whose ``category_id`` is not among the json's categories).
    """
    if not PathManager.isfile(json_file):
        raise _missing("Instances json", json_file)
    try:
        return load_coco_json(json_file, image_root, dataset_name)
    except KeyError as error:  # e.g. an annotation's category_id not among the categories
        raise ValueError(f"Instances json {json_file!r} cannot be loaded: {error}") from error
