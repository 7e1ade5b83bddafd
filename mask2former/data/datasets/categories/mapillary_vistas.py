# Copyright (c) the mask2former authors.
"""Mapillary Vistas v1.2 category table (65 evaluated classes), as used by Mask2Former.

The semantic label PNGs store the list index (0..64) and 65 for "unlabeled" (the ignore label);
the panoptic json uses ``id = index + 1``.
"""

from typing import Dict, List, Tuple

__all__ = ["MAPILLARY_VISTAS_IGNORE_LABEL", "mapillary_vistas_categories"]

# Label value of "void--unlabeled" in the semantic PNGs; Mask2Former ignores it.
MAPILLARY_VISTAS_IGNORE_LABEL = 65

# (readable name, colour, isthing)
_MAPILLARY_VISTAS: List[Tuple[str, List[int], int]] = [
    ("Bird", [165, 42, 42], 1),
    ("Ground Animal", [0, 192, 0], 1),
    ("Curb", [196, 196, 196], 0),
    ("Fence", [190, 153, 153], 0),
    ("Guard Rail", [180, 165, 180], 0),
    ("Barrier", [90, 120, 150], 0),
    ("Wall", [102, 102, 156], 0),
    ("Bike Lane", [128, 64, 255], 0),
    ("Crosswalk - Plain", [140, 140, 200], 1),
    ("Curb Cut", [170, 170, 170], 0),
    ("Parking", [250, 170, 160], 0),
    ("Pedestrian Area", [96, 96, 96], 0),
    ("Rail Track", [230, 150, 140], 0),
    ("Road", [128, 64, 128], 0),
    ("Service Lane", [110, 110, 110], 0),
    ("Sidewalk", [244, 35, 232], 0),
    ("Bridge", [150, 100, 100], 0),
    ("Building", [70, 70, 70], 0),
    ("Tunnel", [150, 120, 90], 0),
    ("Person", [220, 20, 60], 1),
    ("Bicyclist", [255, 0, 0], 1),
    ("Motorcyclist", [255, 0, 100], 1),
    ("Other Rider", [255, 0, 200], 1),
    ("Lane Marking - Crosswalk", [200, 128, 128], 1),
    ("Lane Marking - General", [255, 255, 255], 0),
    ("Mountain", [64, 170, 64], 0),
    ("Sand", [230, 160, 50], 0),
    ("Sky", [70, 130, 180], 0),
    ("Snow", [190, 255, 255], 0),
    ("Terrain", [152, 251, 152], 0),
    ("Vegetation", [107, 142, 35], 0),
    ("Water", [0, 170, 30], 0),
    ("Banner", [255, 255, 128], 1),
    ("Bench", [250, 0, 30], 1),
    ("Bike Rack", [100, 140, 180], 1),
    ("Billboard", [220, 220, 220], 1),
    ("Catch Basin", [220, 128, 128], 1),
    ("CCTV Camera", [222, 40, 40], 1),
    ("Fire Hydrant", [100, 170, 30], 1),
    ("Junction Box", [40, 40, 40], 1),
    ("Mailbox", [33, 33, 33], 1),
    ("Manhole", [100, 128, 160], 1),
    ("Phone Booth", [142, 0, 0], 1),
    ("Pothole", [70, 100, 150], 0),
    ("Street Light", [210, 170, 100], 1),
    ("Pole", [153, 153, 153], 1),
    ("Traffic Sign Frame", [128, 128, 128], 1),
    ("Utility Pole", [0, 0, 80], 1),
    ("Traffic Light", [250, 170, 30], 1),
    ("Traffic Sign (Back)", [192, 192, 192], 1),
    ("Traffic Sign (Front)", [220, 220, 0], 1),
    ("Trash Can", [140, 140, 20], 1),
    ("Bicycle", [119, 11, 32], 1),
    ("Boat", [150, 0, 255], 1),
    ("Bus", [0, 60, 100], 1),
    ("Car", [0, 0, 142], 1),
    ("Caravan", [0, 0, 90], 1),
    ("Motorcycle", [0, 0, 230], 1),
    ("On Rails", [0, 80, 100], 0),
    ("Other Vehicle", [128, 64, 64], 1),
    ("Trailer", [0, 0, 110], 1),
    ("Truck", [0, 0, 70], 1),
    ("Wheeled Slow", [0, 0, 192], 1),
    ("Car Mount", [32, 32, 32], 0),
    ("Ego Vehicle", [120, 10, 10], 0),
]


def mapillary_vistas_categories() -> List[Dict]:
    """The 65 classes as COCO-panoptic categories (``id`` 1..65, ``name``, ``color``,
    ``isthing``)."""
    return [
        {"id": i + 1, "name": name, "color": list(color), "isthing": isthing}
        for i, (name, color, isthing) in enumerate(_MAPILLARY_VISTAS)
    ]
