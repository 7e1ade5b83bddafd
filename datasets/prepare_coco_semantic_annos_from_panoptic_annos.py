#!/usr/bin/env python3
# Copyright (c) the mask2former authors.
"""Semantic label PNGs from COCO panoptic annotations, for mIoU evaluation of panoptic models.

Each segment's pixels get the contiguous index (0..132) of its category among the 133 COCO-panoptic
categories (crowd segments included); unlabeled pixels get 255.

    coco/annotations/panoptic_{val,train}2017.json + coco/panoptic_{val,train}2017/*.png
 -> coco/panoptic_semseg_{val,train}2017/*.png

Usage: ``python datasets/prepare_coco_semantic_annos_from_panoptic_annos.py [--root DIR]
[--splits val2017 train2017] [--workers N]``
"""

import functools
import json
import logging
import multiprocessing as mp
import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
from PIL import Image

from mask2former.data import prepare
from mask2former.data.datasets.categories.coco import COCO_PANOPTIC_CATEGORIES
from mask2former.data.panoptic_format import rgb_to_id, semantic_from_panoptic

logger = logging.getLogger("prepare_coco_semantic_annos_from_panoptic_annos")

IGNORE_LABEL = 255


def panoptic_png_to_semantic(
    input_png: str, output_png: str, segments: Sequence[Dict], id_map: Mapping[int, int]
) -> None:
    """Write the semantic PNG (uint8, ``id_map[category_id]``, 255 = unlabeled) of one panoptic
    PNG."""
    panoptic = rgb_to_id(np.asarray(Image.open(input_png).convert("RGB")))
    for segment in segments:
        if segment["category_id"] not in id_map:
            raise ValueError(
                f"Segment {segment['id']} of {input_png!r} has unknown category_id "
                f"{segment['category_id']}"
            )
    semantic = semantic_from_panoptic(panoptic, segments, IGNORE_LABEL, id_map)
    Image.fromarray(semantic).save(output_png)


def separate_coco_semantic_from_panoptic(
    panoptic_json: str,
    panoptic_root: str,
    sem_seg_root: str,
    categories: Sequence[Dict] = COCO_PANOPTIC_CATEGORIES,
    workers: int = 1,
) -> int:
    """Convert every annotation of ``panoptic_json``; returns the number of PNGs written.

    Args:
        categories: dicts with ``id``; a category's list index is its semantic label (< 255).
        workers: processes (1 = in this process).
    """
    if not Path(panoptic_json).is_file():
        raise FileNotFoundError(f"Panoptic json not found: {panoptic_json!r}")
    if not Path(panoptic_root).is_dir():
        raise FileNotFoundError(f"Panoptic PNG folder not found: {panoptic_root!r}")
    if len(categories) >= IGNORE_LABEL:
        raise ValueError(f"{len(categories)} categories do not fit below the ignore label 255")
    id_map = {category["id"]: i for i, category in enumerate(categories)}
    with open(panoptic_json) as f:
        annotations = json.load(f)["annotations"]
    os.makedirs(sem_seg_root, exist_ok=True)
    jobs = [
        (
            os.path.join(panoptic_root, a["file_name"]),
            os.path.join(sem_seg_root, a["file_name"]),
            a["segments_info"],
        )
        for a in annotations
    ]
    convert = functools.partial(panoptic_png_to_semantic, id_map=id_map)
    if workers > 1:
        with mp.Pool(processes=workers) as pool:
            pool.starmap(convert, jobs, chunksize=100)
    else:
        for job in jobs:
            convert(*job)
    return len(jobs)


def main(argv: Optional[List[str]] = None) -> None:
    parser = prepare.argument_parser(__doc__, "coco")
    parser.add_argument("--splits", nargs="+", default=["val2017", "train2017"])
    parser.add_argument("--workers", type=int, default=max(mp.cpu_count() // 2, 1))
    args = prepare.parse_args(parser, argv)
    coco = args.root / "coco"
    for split in args.splits:
        count = separate_coco_semantic_from_panoptic(
            str(coco / "annotations" / f"panoptic_{split}.json"),
            str(coco / f"panoptic_{split}"),
            str(coco / f"panoptic_semseg_{split}"),
            workers=args.workers,
        )
        logger.info(f"{split}: wrote {count} semantic PNGs to {coco / f'panoptic_semseg_{split}'}")


if __name__ == "__main__":
    main()
