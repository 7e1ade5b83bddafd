# Copyright (c) the mask2former authors.
"""ADE20K (SceneParsing, 150 classes) category tables, and the decoding of the instance-track PNGs
into these categories (used by the panoptic and instance preparation scripts).

Names and colours are those of the MIT SceneParsing benchmark (``objectInfo150``) as used by
Mask2Former (Cheng et al., CVPR 2022); the 100 instance ("thing") classes and their ids are those of
the SceneParsing instance track (``ade20k_instance_catid_mapping.txt``).
"""

from typing import Dict, Iterator, List, Tuple

import numpy as np

__all__ = [
    "ADE20K_150_CLASSES",
    "ADE20K_150_COLORS",
    "ADE20K_INSTANCE_CATEGORIES",
    "ADE20K_INSTANCE_TO_SEMANTIC",
    "ade20k_150_categories",
    "ade20k_instances",
]

# (name, colour) of the 150 classes; the list index is the contiguous id (label - 1 in the PNGs).
_ADE20K_150: List[Tuple[str, List[int]]] = [
    ("wall", [120, 120, 120]),
    ("building", [180, 120, 120]),
    ("sky", [6, 230, 230]),
    ("floor", [80, 50, 50]),
    ("tree", [4, 200, 3]),
    ("ceiling", [120, 120, 80]),
    ("road, route", [140, 140, 140]),
    ("bed", [204, 5, 255]),
    ("window ", [230, 230, 230]),
    ("grass", [4, 250, 7]),
    ("cabinet", [224, 5, 255]),
    ("sidewalk, pavement", [235, 255, 7]),
    ("person", [150, 5, 61]),
    ("earth, ground", [120, 120, 70]),
    ("door", [8, 255, 51]),
    ("table", [255, 6, 82]),
    ("mountain, mount", [143, 255, 140]),
    ("plant", [204, 255, 4]),
    ("curtain", [255, 51, 7]),
    ("chair", [204, 70, 3]),
    ("car", [0, 102, 200]),
    ("water", [61, 230, 250]),
    ("painting, picture", [255, 6, 51]),
    ("sofa", [11, 102, 255]),
    ("shelf", [255, 7, 71]),
    ("house", [255, 9, 224]),
    ("sea", [9, 7, 230]),
    ("mirror", [220, 220, 220]),
    ("rug", [255, 9, 92]),
    ("field", [112, 9, 255]),
    ("armchair", [8, 255, 214]),
    ("seat", [7, 255, 224]),
    ("fence", [255, 184, 6]),
    ("desk", [10, 255, 71]),
    ("rock, stone", [255, 41, 10]),
    ("wardrobe, closet, press", [7, 255, 255]),
    ("lamp", [224, 255, 8]),
    ("tub", [102, 8, 255]),
    ("rail", [255, 61, 6]),
    ("cushion", [255, 194, 7]),
    ("base, pedestal, stand", [255, 122, 8]),
    ("box", [0, 255, 20]),
    ("column, pillar", [255, 8, 41]),
    ("signboard, sign", [255, 5, 153]),
    ("chest of drawers, chest, bureau, dresser", [6, 51, 255]),
    ("counter", [235, 12, 255]),
    ("sand", [160, 150, 20]),
    ("sink", [0, 163, 255]),
    ("skyscraper", [140, 140, 140]),
    ("fireplace", [250, 10, 15]),
    ("refrigerator, icebox", [20, 255, 0]),
    ("grandstand, covered stand", [31, 255, 0]),
    ("path", [255, 31, 0]),
    ("stairs", [255, 224, 0]),
    ("runway", [153, 255, 0]),
    ("case, display case, showcase, vitrine", [0, 0, 255]),
    ("pool table, billiard table, snooker table", [255, 71, 0]),
    ("pillow", [0, 235, 255]),
    ("screen door, screen", [0, 173, 255]),
    ("stairway, staircase", [31, 0, 255]),
    ("river", [11, 200, 200]),
    ("bridge, span", [255, 82, 0]),
    ("bookcase", [0, 255, 245]),
    ("blind, screen", [0, 61, 255]),
    ("coffee table", [0, 255, 112]),
    ("toilet, can, commode, crapper, pot, potty, stool, throne", [0, 255, 133]),
    ("flower", [255, 0, 0]),
    ("book", [255, 163, 0]),
    ("hill", [255, 102, 0]),
    ("bench", [194, 255, 0]),
    ("countertop", [0, 143, 255]),
    ("stove", [51, 255, 0]),
    ("palm, palm tree", [0, 82, 255]),
    ("kitchen island", [0, 255, 41]),
    ("computer", [0, 255, 173]),
    ("swivel chair", [10, 0, 255]),
    ("boat", [173, 255, 0]),
    ("bar", [0, 255, 153]),
    ("arcade machine", [255, 92, 0]),
    ("hovel, hut, hutch, shack, shanty", [255, 0, 255]),
    ("bus", [255, 0, 245]),
    ("towel", [255, 0, 102]),
    ("light", [255, 173, 0]),
    ("truck", [255, 0, 20]),
    ("tower", [255, 184, 184]),
    ("chandelier", [0, 31, 255]),
    ("awning, sunshade, sunblind", [0, 255, 61]),
    ("street lamp", [0, 71, 255]),
    ("booth", [255, 0, 204]),
    ("tv", [0, 255, 194]),
    ("plane", [0, 255, 82]),
    ("dirt track", [0, 10, 255]),
    ("clothes", [0, 112, 255]),
    ("pole", [51, 0, 255]),
    ("land, ground, soil", [0, 194, 255]),
    ("bannister, banister, balustrade, balusters, handrail", [0, 122, 255]),
    ("escalator, moving staircase, moving stairway", [0, 255, 163]),
    ("ottoman, pouf, pouffe, puff, hassock", [255, 153, 0]),
    ("bottle", [0, 255, 10]),
    ("buffet, counter, sideboard", [255, 112, 0]),
    ("poster, posting, placard, notice, bill, card", [143, 255, 0]),
    ("stage", [82, 0, 255]),
    ("van", [163, 255, 0]),
    ("ship", [255, 235, 0]),
    ("fountain", [8, 184, 170]),
    ("conveyer belt, conveyor belt, conveyer, conveyor, transporter", [133, 0, 255]),
    ("canopy", [0, 255, 92]),
    ("washer, automatic washer, washing machine", [184, 0, 255]),
    ("plaything, toy", [255, 0, 31]),
    ("pool", [0, 184, 255]),
    ("stool", [0, 214, 255]),
    ("barrel, cask", [255, 0, 112]),
    ("basket, handbasket", [92, 255, 0]),
    ("falls", [0, 224, 255]),
    ("tent", [112, 224, 255]),
    ("bag", [70, 184, 160]),
    ("minibike, motorbike", [163, 0, 255]),
    ("cradle", [153, 0, 255]),
    ("oven", [71, 255, 0]),
    ("ball", [255, 0, 163]),
    ("food, solid food", [255, 204, 0]),
    ("step, stair", [255, 0, 143]),
    ("tank, storage tank", [0, 255, 235]),
    ("trade name", [133, 255, 0]),
    ("microwave", [255, 0, 235]),
    ("pot", [245, 0, 255]),
    ("animal", [255, 0, 122]),
    ("bicycle", [255, 245, 0]),
    ("lake", [10, 190, 212]),
    ("dishwasher", [214, 255, 0]),
    ("screen", [0, 204, 255]),
    ("blanket, cover", [20, 0, 255]),
    ("sculpture", [255, 255, 0]),
    ("hood, exhaust hood", [0, 153, 255]),
    ("sconce", [0, 41, 255]),
    ("vase", [0, 255, 204]),
    ("traffic light", [41, 0, 255]),
    ("tray", [41, 255, 0]),
    ("trash can", [173, 0, 255]),
    ("fan", [0, 245, 255]),
    ("pier", [71, 0, 255]),
    ("crt screen", [122, 0, 255]),
    ("plate", [0, 255, 184]),
    ("monitor", [0, 92, 255]),
    ("bulletin board", [184, 255, 0]),
    ("shower", [0, 133, 255]),
    ("radiator", [255, 214, 0]),
    ("glass, drinking glass", [25, 194, 194]),
    ("clock", [102, 255, 0]),
    ("flag", [92, 0, 255]),
]

ADE20K_150_CLASSES: List[str] = [name for name, _ in _ADE20K_150]
ADE20K_150_COLORS: List[List[int]] = [color for _, color in _ADE20K_150]

# Instance track: (instance category id, contiguous semantic id (= SceneParsing label - 1), name).
# The instance annotation PNGs store the instance category id in their red channel.
ADE20K_INSTANCE_CATEGORIES: List[Tuple[int, int, str]] = [
    (1, 7, "bed"), (2, 8, "windowpane"), (3, 10, "cabinet"), (4, 12, "person"),
    (5, 14, "door"), (6, 15, "table"), (7, 18, "curtain"), (8, 19, "chair"),
    (9, 20, "car"), (10, 22, "painting"), (11, 23, "sofa"), (12, 24, "shelf"),
    (13, 27, "mirror"), (14, 30, "armchair"), (15, 31, "seat"), (16, 32, "fence"),
    (17, 33, "desk"), (18, 35, "wardrobe"), (19, 36, "lamp"), (20, 37, "bathtub"),
    (21, 38, "railing"), (22, 39, "cushion"), (23, 41, "box"), (24, 42, "column"),
    (25, 43, "signboard"), (26, 44, "chest of drawers"), (27, 45, "counter"), (28, 47, "sink"),
    (29, 49, "fireplace"), (30, 50, "refrigerator"), (31, 53, "stairs"), (32, 55, "case"),
    (33, 56, "pool table"), (34, 57, "pillow"), (35, 58, "screen door"), (36, 62, "bookcase"),
    (37, 64, "coffee table"), (38, 65, "toilet"), (39, 66, "flower"), (40, 67, "book"),
    (41, 69, "bench"), (42, 70, "countertop"), (43, 71, "stove"), (44, 72, "palm"),
    (45, 73, "kitchen island"), (46, 74, "computer"), (47, 75, "swivel chair"), (48, 76, "boat"),
    (49, 78, "arcade machine"), (50, 80, "bus"), (51, 81, "towel"), (52, 82, "light"),
    (53, 83, "truck"), (54, 85, "chandelier"), (55, 86, "awning"), (56, 87, "streetlight"),
    (57, 88, "booth"), (58, 89, "television receiver"), (59, 90, "airplane"), (60, 92, "apparel"),
    (61, 93, "pole"), (62, 95, "bannister"), (63, 97, "ottoman"), (64, 98, "bottle"),
    (65, 102, "van"), (66, 103, "ship"), (67, 104, "fountain"), (68, 107, "washer"),
    (69, 108, "plaything"), (70, 110, "stool"), (71, 111, "barrel"), (72, 112, "basket"),
    (73, 115, "bag"), (74, 116, "minibike"), (75, 118, "oven"), (76, 119, "ball"),
    (77, 120, "food"), (78, 121, "step"), (79, 123, "trade name"), (80, 124, "microwave"),
    (81, 125, "pot"), (82, 126, "animal"), (83, 127, "bicycle"), (84, 129, "dishwasher"),
    (85, 130, "screen"), (86, 132, "sculpture"), (87, 133, "hood"), (88, 134, "sconce"),
    (89, 135, "vase"), (90, 136, "traffic light"), (91, 137, "tray"), (92, 138, "ashcan"),
    (93, 139, "fan"), (94, 142, "plate"), (95, 143, "monitor"), (96, 144, "bulletin board"),
    (97, 146, "radiator"), (98, 147, "glass"), (99, 148, "clock"), (100, 149, "flag"),
]  # fmt: skip


def ade20k_150_categories() -> List[Dict]:
    """The 150 classes as COCO-panoptic categories: ``id`` (= contiguous id), ``name``,
    ``color``, ``isthing`` (1 for the 100 classes of the instance track)."""
    things = {semantic_id for _, semantic_id, _ in ADE20K_INSTANCE_CATEGORIES}
    return [
        {"id": i, "name": name, "color": list(color), "isthing": int(i in things)}
        for i, (name, color) in enumerate(_ADE20K_150)
    ]


# Instance-track class id (red channel of the instance PNGs) -> contiguous semantic id.
ADE20K_INSTANCE_TO_SEMANTIC: Dict[int, int] = {
    instance_id: semantic_id for instance_id, semantic_id, _ in ADE20K_INSTANCE_CATEGORIES
}


def ade20k_instances(instance: np.ndarray, file_name: str = "") -> Iterator[Tuple[np.ndarray, int]]:
    """The instances of an instance-track PNG, in increasing instance id.

    Args:
        instance: ``[H, W, 3]`` uint8: R = instance class id (1..100), G = instance id (0 = none).
        file_name: named in the error for a malformed annotation.

    Yields:
        ``([H, W] bool mask, contiguous semantic id)`` per instance.
    """
    for instance_id in np.unique(instance[..., 1]):
        if instance_id == 0:
            continue
        mask = instance[..., 1] == instance_id
        classes = np.unique(instance[..., 0][mask])
        if len(classes) != 1 or int(classes[0]) not in ADE20K_INSTANCE_TO_SEMANTIC:
            raise ValueError(
                f"Instance annotation {file_name!r}: instance {int(instance_id)} has class ids "
                f"{classes.tolist()}, expected exactly one in 1..{len(ADE20K_INSTANCE_TO_SEMANTIC)}"
            )
        yield mask, ADE20K_INSTANCE_TO_SEMANTIC[int(classes[0])]
