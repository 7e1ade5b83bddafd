# Copyright (c) the mask2former authors.
"""COCO category tables beyond detectron2's: the 171 COCO-Stuff classes (80 things + 91 stuff).

The 133 COCO-panoptic categories and the 80 COCO things come from detectron2's
``builtin_meta.COCO_CATEGORIES``; COCO-Stuff adds the 91 fine-grained stuff classes (ids 92..182).
"""

from typing import Dict, List

from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

__all__ = ["COCO_PANOPTIC_CATEGORIES", "coco_stuff_categories"]

# The 133 COCO-panoptic categories (``id``, ``name``, ``color``, ``isthing``).
COCO_PANOPTIC_CATEGORIES: List[Dict] = COCO_CATEGORIES

# COCO-Stuff stuff class names, dataset ids 92..182 in order.
_COCO_STUFF_NAMES: List[str] = [
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage",
    "cardboard", "carpet", "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds",
    "counter", "cupboard", "curtain", "desk-stuff", "dirt", "door-stuff", "fence", "floor-marble",
    "floor-other", "floor-stone", "floor-tile", "floor-wood", "flower", "fog", "food-other",
    "fruit", "furniture-other", "grass", "gravel", "ground-other", "hill", "house", "leaves",
    "light", "mat", "metal", "mirror-stuff", "moss", "mountain", "mud", "napkin", "net", "paper",
    "pavement", "pillow", "plant-other", "plastic", "platform", "playingfield", "railing",
    "railroad", "river", "road", "rock", "roof", "rug", "salad", "sand", "sea", "shelf",
    "sky-other", "skyscraper", "snow", "solid-other", "stairs", "stone", "straw",
    "structural-other", "table", "tent", "textile-other", "towel", "tree", "vegetable",
    "wall-brick", "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile",
    "wall-wood", "water-other", "waterdrops", "window-blind", "window-other", "wood",
]  # fmt: skip


def coco_stuff_categories() -> List[Dict]:
    """The 171 COCO-Stuff classes (``id``, ``name``, ``isthing``): the 80 COCO things (ids 1..90)
    followed by the 91 stuff classes (ids 92..182). Their list index is the contiguous label that
    the prepared ``annotations_detectron2`` PNGs hold."""
    things = [
        {"id": c["id"], "name": c["name"], "isthing": 1} for c in COCO_CATEGORIES if c["isthing"]
    ]
    stuff = [{"id": 92 + i, "name": n, "isthing": 0} for i, n in enumerate(_COCO_STUFF_NAMES)]
    return things + stuff
