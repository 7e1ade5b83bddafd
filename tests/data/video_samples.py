"""Small YouTube-VIS-format samples for the video data tests."""

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

from mask2former.data.datasets.synthetic_video import (
    SyntheticVideoSplit,
    generate_synthetic_video_split,
)

# 4 videos of 5-7 frames with 2-3 shapes each, occluding and leaving (about 0.1 s to generate).
TINY_SPLIT = SyntheticVideoSplit("tiny", num_videos=4, seed=4, min_frames=5, max_frames=7)


def make_tiny_split(root: Path) -> Path:
    """Generate :data:`TINY_SPLIT` into ``root`` (``JPEGImages/``, ``instances.json``)."""
    generate_synthetic_video_split(root, TINY_SPLIT)
    return root


def rle(mask: np.ndarray) -> Dict[str, Any]:
    """Compressed RLE with str counts of an [H, W] mask."""
    encoded = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    encoded["counts"] = encoded["counts"].decode("ascii")
    return encoded


def write_video_json(
    root: Path,
    annotations: Optional[List[Dict[str, Any]]],
    categories: List[Dict[str, Any]],
    length: int = 3,
    size: tuple = (8, 10),
) -> Path:
    """One video ``v/0000{t}.jpg`` (gray frames) of ``length`` frames and a json with
    ``annotations`` (omitted when None, as in test splits). Returns the json path."""
    height, width = size
    (root / "v").mkdir(parents=True, exist_ok=True)
    names = [f"v/{t:05d}.jpg" for t in range(length)]
    for name in names:
        Image.fromarray(np.full((height, width, 3), 128, dtype=np.uint8)).save(root / name)
    content: Dict[str, Any] = {
        "videos": [
            {"id": 7, "height": height, "width": width, "length": length, "file_names": names}
        ],
        "categories": categories,
    }
    if annotations is not None:
        content["annotations"] = annotations
    path = root / "video.json"
    path.write_text(json.dumps(content))
    return path
