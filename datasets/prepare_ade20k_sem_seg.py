#!/usr/bin/env python3
# Copyright (c) the mask2former authors.
"""Convert ADE20K SceneParsing labels (0 = other, 1..150 = classes) to detectron2's convention
(0..149 = classes, 255 = ignore): ``label - 1`` in uint8, so 0 wraps to 255.

    ADEChallengeData2016/annotations/{training,validation}/*.png
 -> ADEChallengeData2016/annotations_detectron2/{training,validation}/*.png

Usage: ``python datasets/prepare_ade20k_sem_seg.py [--root $DETECTRON2_DATASETS]``
"""

import logging
from pathlib import Path
from typing import List, Optional

import numpy as np
from PIL import Image

from mask2former.data import prepare

logger = logging.getLogger("prepare_ade20k_sem_seg")

NUM_CLASSES = 150


def convert_ade20k_label(label: np.ndarray, file_name: str = "<array>") -> np.ndarray:
    """``[H, W]`` uint8 SceneParsing label (0..150) -> ``label - 1`` with 0 -> 255 (uint8)."""
    if label.dtype != np.uint8 or label.ndim != 2:
        raise ValueError(
            f"ADE20K label {file_name!r} must be a single-channel uint8 image, "
            f"got {label.dtype} {label.shape}"
        )
    if label.max(initial=0) > NUM_CLASSES:
        raise ValueError(
            f"ADE20K label {file_name!r} holds value {int(label.max())} > {NUM_CLASSES}: "
            "not a SceneParsing 150-class annotation"
        )
    return label - np.uint8(1)  # uint8 arithmetic: 0 (other) wraps to 255 (ignore)


def convert_split(annotation_dir: Path, output_dir: Path) -> int:
    """Convert every PNG of ``annotation_dir`` into ``output_dir``; returns the number written."""
    annotation_dir, output_dir = Path(annotation_dir), Path(output_dir)
    if not annotation_dir.is_dir():
        raise FileNotFoundError(f"ADE20K annotation folder not found: {str(annotation_dir)!r}")
    output_dir.mkdir(parents=True, exist_ok=True)
    files = sorted(annotation_dir.glob("*.png"))
    for file in files:
        label = np.asarray(Image.open(file))
        Image.fromarray(convert_ade20k_label(label, str(file))).save(output_dir / file.name)
    return len(files)


def main(argv: Optional[List[str]] = None) -> None:
    ade = prepare.dataset_folder(__doc__, "ADEChallengeData2016", argv)
    prepare.for_each_split(
        lambda _, folder: convert_split(
            ade / "annotations" / folder, ade / "annotations_detectron2" / folder
        ),
        "label maps converted",
    )


if __name__ == "__main__":
    main()
