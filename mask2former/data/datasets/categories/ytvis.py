# Copyright (c) the mask2former authors.
"""YouTube-VIS 2019 and 2021 category tables (Yang et al., "Video Instance Segmentation",
ICCV 2019): 40 classes each, dataset ids 1..40 in the order below, with the visualisation colours
of the official Mask2Former release (which takes them from IFC, Hwang et al. 2021).
"""

from typing import Dict, List, Sequence, Tuple

__all__ = ["YTVIS_2019_CATEGORIES", "YTVIS_2021_CATEGORIES", "ytvis_categories"]

# (name, RGB colour) of dataset ids 1..40.
_YTVIS_2019: Tuple[Tuple[str, Tuple[int, int, int]], ...] = (
    ("person", (220, 20, 60)),
    ("giant_panda", (0, 82, 0)),
    ("lizard", (119, 11, 32)),
    ("parrot", (165, 42, 42)),
    ("skateboard", (134, 134, 103)),
    ("sedan", (0, 0, 142)),
    ("ape", (255, 109, 65)),
    ("dog", (0, 226, 252)),
    ("snake", (5, 121, 0)),
    ("monkey", (0, 60, 100)),
    ("hand", (250, 170, 30)),
    ("rabbit", (100, 170, 30)),
    ("duck", (179, 0, 194)),
    ("cat", (255, 77, 255)),
    ("cow", (120, 166, 157)),
    ("fish", (73, 77, 174)),
    ("train", (0, 80, 100)),
    ("horse", (182, 182, 255)),
    ("turtle", (0, 143, 149)),
    ("bear", (174, 57, 255)),
    ("motorbike", (0, 0, 230)),
    ("giraffe", (72, 0, 118)),
    ("leopard", (255, 179, 240)),
    ("fox", (0, 125, 92)),
    ("deer", (209, 0, 151)),
    ("owl", (188, 208, 182)),
    ("surfboard", (145, 148, 174)),
    ("airplane", (106, 0, 228)),
    ("truck", (0, 0, 70)),
    ("zebra", (199, 100, 0)),
    ("tiger", (166, 196, 102)),
    ("elephant", (110, 76, 0)),
    ("snowboard", (133, 129, 255)),
    ("boat", (0, 0, 192)),
    ("shark", (183, 130, 88)),
    ("mouse", (130, 114, 135)),
    ("frog", (107, 142, 35)),
    ("eagle", (0, 228, 0)),
    ("earless_seal", (174, 255, 243)),
    ("tennis_racket", (255, 208, 186)),
)

# (name, RGB colour) of dataset ids 1..40 (2021 renames and re-orders the classes).
_YTVIS_2021: Tuple[Tuple[str, Tuple[int, int, int]], ...] = (
    ("airplane", (106, 0, 228)),
    ("bear", (174, 57, 255)),
    ("bird", (255, 109, 65)),
    ("boat", (0, 0, 192)),
    ("car", (0, 0, 142)),
    ("cat", (255, 77, 255)),
    ("cow", (120, 166, 157)),
    ("deer", (209, 0, 151)),
    ("dog", (0, 226, 252)),
    ("duck", (179, 0, 194)),
    ("earless_seal", (174, 255, 243)),
    ("elephant", (110, 76, 0)),
    ("fish", (73, 77, 174)),
    ("flying_disc", (250, 170, 30)),
    ("fox", (0, 125, 92)),
    ("frog", (107, 142, 35)),
    ("giant_panda", (0, 82, 0)),
    ("giraffe", (72, 0, 118)),
    ("horse", (182, 182, 255)),
    ("leopard", (255, 179, 240)),
    ("lizard", (119, 11, 32)),
    ("monkey", (0, 60, 100)),
    ("motorbike", (0, 0, 230)),
    ("mouse", (130, 114, 135)),
    ("parrot", (165, 42, 42)),
    ("person", (220, 20, 60)),
    ("rabbit", (100, 170, 30)),
    ("shark", (183, 130, 88)),
    ("skateboard", (134, 134, 103)),
    ("snake", (5, 121, 0)),
    ("snowboard", (133, 129, 255)),
    ("squirrel", (188, 208, 182)),
    ("surfboard", (145, 148, 174)),
    ("tennis_racket", (255, 208, 186)),
    ("tiger", (166, 196, 102)),
    ("train", (0, 80, 100)),
    ("truck", (0, 0, 70)),
    ("turtle", (0, 143, 149)),
    ("whale", (0, 228, 0)),
    ("zebra", (199, 100, 0)),
)


def _as_categories(table: Sequence[Tuple[str, Tuple[int, int, int]]]) -> List[Dict]:
    return [
        {"id": i + 1, "name": name, "color": list(color), "isthing": 1}
        for i, (name, color) in enumerate(table)
    ]


# Category dicts (``id``, ``name``, ``color``, ``isthing``) in dataset-id order.
YTVIS_2019_CATEGORIES: List[Dict] = _as_categories(_YTVIS_2019)
YTVIS_2021_CATEGORIES: List[Dict] = _as_categories(_YTVIS_2021)


def ytvis_categories(year: int) -> List[Dict]:
    """The category dicts of YouTube-VIS ``year`` (2019 or 2021)."""
    tables = {2019: YTVIS_2019_CATEGORIES, 2021: YTVIS_2021_CATEGORIES}
    if year not in tables:
        raise ValueError(f"YouTube-VIS year must be 2019 or 2021, got {year!r}")
    return [dict(c, color=list(c["color"])) for c in tables[year]]
