# Copyright (c) the mask2former authors.
"""Builtin datasets of Mask2Former (Cheng et al., CVPR 2022), under their official names.

Each family is a table of splits fed to one generic registration function (``register.py``).
Paths are relative to ``$DETECTRON2_DATASETS`` (default ``datasets``), which is read when a
dataset is loaded or a path metadata field is accessed, not at import (no file access here).

Names that detectron2 registers itself are not registered again. COCO instances
(``coco_2017_{train,val}``) and Cityscapes (``cityscapes_fine_{instance_seg,sem_seg,panoptic}_
{train,val}``) are used as they are. ``coco_2017_{train,val}_panoptic`` and
``ade20k_sem_seg_{train,val}`` are listed in the tables below (so that they exist whatever the
detectron2 version) but keep detectron2's registration, paths and root (read when
``detectron2.data`` is imported); they only get Mask2Former's class metadata, as in the official
code: the 80 COCO thing classes and colours (detectron2 lists all 133 classes as things), a
``stuff_dataset_id_to_contiguous_id`` over all 133 classes (one contiguous id space, as the
``_with_sem_seg`` variants), the ADE20K colours.
"""

import functools
import logging
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from detectron2.data import DatasetCatalog

from .categories.ade20k import (
    ADE20K_150_CLASSES,
    ADE20K_150_COLORS,
    ADE20K_INSTANCE_CATEGORIES,
    ade20k_150_categories,
)
from .categories.ade20k_full import ADE20K_FULL_CATEGORIES
from .categories.coco import COCO_PANOPTIC_CATEGORIES, coco_stuff_categories
from .categories.mapillary_vistas import MAPILLARY_VISTAS_IGNORE_LABEL, mapillary_vistas_categories
from .register import (
    panoptic_metadata,
    register_instance_dataset,
    register_panoptic_dataset,
    register_semantic_dataset,
    semantic_metadata,
    set_class_metadata,
)
from .synthetic import register_synthetic_datasets

__all__ = [
    "BUILTIN_INSTANCE",
    "BUILTIN_PANOPTIC",
    "BUILTIN_SEMANTIC",
    "TRAIN_VAL_SPLITS",
    "register_all_builtin",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PanopticSplit:
    """One split in COCO-panoptic format; paths relative to the dataset root."""

    name: str
    image_root: str
    panoptic_root: str
    panoptic_json: str
    sem_seg_root: Optional[str]
    instances_json: Optional[str]


@dataclass(frozen=True)
class PanopticFamily:
    categories: Callable[[], List[Dict]]
    evaluator_type: str
    splits: Tuple[PanopticSplit, ...]
    ignore_label: int = 255
    all_classes_are_things: bool = False


def _coco_panoptic(split: str, with_sem_seg: bool) -> PanopticSplit:
    return PanopticSplit(
        f"coco_2017_{split}_panoptic" + ("_with_sem_seg" if with_sem_seg else ""),
        f"coco/{split}2017",
        f"coco/panoptic_{split}2017",
        f"coco/annotations/panoptic_{split}2017.json",
        f"coco/panoptic_semseg_{split}2017" if with_sem_seg else None,
        f"coco/annotations/instances_{split}2017.json",
    )


def _ade20k_panoptic(split: str, dirname: str) -> PanopticSplit:
    root = "ADEChallengeData2016"
    return PanopticSplit(
        f"ade20k_panoptic_{split}",
        f"{root}/images/{dirname}",
        f"{root}/ade20k_panoptic_{split}",
        f"{root}/ade20k_panoptic_{split}.json",
        f"{root}/annotations_detectron2/{dirname}",
        f"{root}/ade20k_instance_{split}.json",
    )


def _mapillary_panoptic(split: str, dirname: str) -> PanopticSplit:
    root = f"mapillary_vistas/{dirname}"
    return PanopticSplit(
        f"mapillary_vistas_panoptic_{split}",
        f"{root}/images",
        f"{root}/panoptic",
        f"{root}/panoptic/panoptic_2018.json",
        f"{root}/labels",
        f"mapillary_vistas/mapillary_vistas_instance_{split}.json",
    )


BUILTIN_PANOPTIC: Tuple[PanopticFamily, ...] = (
    PanopticFamily(
        lambda: COCO_PANOPTIC_CATEGORIES,
        "coco_panoptic_seg",
        tuple(_coco_panoptic(s, sem) for s in ("train", "val") for sem in (False, True)),
    ),
    PanopticFamily(
        ade20k_150_categories,
        "ade20k_panoptic_seg",
        (_ade20k_panoptic("train", "training"), _ade20k_panoptic("val", "validation")),
    ),
    PanopticFamily(
        mapillary_vistas_categories,
        "mapillary_vistas_panoptic_seg",
        (_mapillary_panoptic("train", "training"), _mapillary_panoptic("val", "validation")),
        ignore_label=MAPILLARY_VISTAS_IGNORE_LABEL,
        all_classes_are_things=True,
    ),
)


@dataclass(frozen=True)
class SemanticFamily:
    """Semantic splits: ``{split}`` in the name and folders is replaced by each split's names."""

    name: str
    image_root: str
    sem_seg_root: str
    splits: Tuple[Tuple[str, str], ...]  # (name split, folder split)
    classes: Callable[[], List[str]]
    colors: Optional[Callable[[], List[List[int]]]] = None
    ignore_label: int = 255
    gt_ext: str = "png"
    dataset_ids: Optional[Callable[[], List[int]]] = None  # dataset id of each class


# (split name in dataset and file names, split folder of the ADE20K / Mapillary Vistas releases).
TRAIN_VAL_SPLITS: Tuple[Tuple[str, str], ...] = (("train", "training"), ("val", "validation"))

BUILTIN_SEMANTIC: Tuple[SemanticFamily, ...] = (
    SemanticFamily(
        "ade20k_sem_seg_{split}",
        "ADEChallengeData2016/images/{split}",
        "ADEChallengeData2016/annotations_detectron2/{split}",
        TRAIN_VAL_SPLITS,
        lambda: ADE20K_150_CLASSES,
        colors=lambda: ADE20K_150_COLORS,
    ),
    SemanticFamily(
        "ade20k_full_sem_seg_{split}",
        "ADE20K_2021_17_01/images_detectron2/{split}",
        "ADE20K_2021_17_01/annotations_detectron2/{split}",
        TRAIN_VAL_SPLITS,
        lambda: [name for _, name in ADE20K_FULL_CATEGORIES],
        ignore_label=65535,  # labels are 16-bit TIFFs (847 classes)
        gt_ext="tif",
        dataset_ids=lambda: [dataset_id for dataset_id, _ in ADE20K_FULL_CATEGORIES],
    ),
    SemanticFamily(
        "mapillary_vistas_sem_seg_{split}",
        "mapillary_vistas/{split}/images",
        "mapillary_vistas/{split}/labels",
        TRAIN_VAL_SPLITS,
        lambda: [c["name"] for c in mapillary_vistas_categories()],
        colors=lambda: [c["color"] for c in mapillary_vistas_categories()],
        ignore_label=MAPILLARY_VISTAS_IGNORE_LABEL,
    ),
    SemanticFamily(
        "coco_2017_{split}_stuff_10k_sem_seg",
        "coco/coco_stuff_10k/images_detectron2/{split}",
        "coco/coco_stuff_10k/annotations_detectron2/{split}",
        (("train", "train"), ("test", "test")),
        lambda: [c["name"] for c in coco_stuff_categories()],
        dataset_ids=lambda: [c["id"] for c in coco_stuff_categories()],
    ),
)

# ADE20K instance track: (name, image folder, COCO json) relative to the root.
BUILTIN_INSTANCE: Tuple[Tuple[str, str, str], ...] = tuple(
    (
        f"ade20k_instance_{split}",
        f"ADEChallengeData2016/images/{dirname}",
        f"ADEChallengeData2016/ade20k_instance_{split}.json",
    )
    for split, dirname in TRAIN_VAL_SPLITS
)


def _ade20k_instance_metadata() -> Dict:
    # json category ids are the contiguous semantic ids (7 = bed, ...), sorted.
    return {
        "thing_classes": [name for _, _, name in ADE20K_INSTANCE_CATEGORIES],
        "thing_dataset_id_to_contiguous_id": {
            semantic_id: i for i, (_, semantic_id, _) in enumerate(ADE20K_INSTANCE_CATEGORIES)
        },
    }


def _register_once(name: str, metadata: Dict, register: Callable[[], None]) -> None:
    """Call ``register`` unless ``name`` is registered already.

    A registered name is a detectron2 builtin (``coco_2017_{train,val}_panoptic``,
    ``ade20k_sem_seg_{train,val}``): it is not registered again (its loader, paths and root stay
    detectron2's), only given Mask2Former's class metadata (:func:`set_class_metadata` with
    ``metadata``), as the official code does.
    """
    if name in DatasetCatalog.list():
        logger.debug(
            f"Dataset {name!r} is registered already: setting Mask2Former's class metadata"
        )
        set_class_metadata(name, metadata)
    else:
        register()


def register_all_builtin() -> None:
    """Register every dataset of the tables above with lazy roots (names detectron2 registers
    itself keep detectron2's registration, see :func:`_register_once`), and the project's embedded
    synthetic dataset (generated on first load)."""
    register_synthetic_datasets()
    for family in BUILTIN_PANOPTIC:
        metadata = panoptic_metadata(family.categories(), family.all_classes_are_things)
        for split in family.splits:
            register = functools.partial(
                register_panoptic_dataset,
                split.name,
                metadata,
                split.image_root,
                split.panoptic_root,
                split.panoptic_json,
                sem_seg_root=split.sem_seg_root,
                instances_json=split.instances_json,
                evaluator_type=family.evaluator_type,
                ignore_label=family.ignore_label,
                root_relative=True,
            )
            _register_once(split.name, metadata, register)
    for family in BUILTIN_SEMANTIC:
        extra = {}
        if family.dataset_ids is not None:
            extra["stuff_dataset_id_to_contiguous_id"] = {
                dataset_id: i for i, dataset_id in enumerate(family.dataset_ids())
            }
        colors = None if family.colors is None else family.colors()
        metadata = semantic_metadata(family.classes(), colors, extra)
        for split_name, split_dir in family.splits:
            name = family.name.format(split=split_name)
            register = functools.partial(
                register_semantic_dataset,
                name,
                family.image_root.format(split=split_dir),
                family.sem_seg_root.format(split=split_dir),
                metadata["stuff_classes"],
                colors=colors,
                ignore_label=family.ignore_label,
                gt_ext=family.gt_ext,
                metadata=extra,
                root_relative=True,
            )
            _register_once(name, metadata, register)
    metadata = _ade20k_instance_metadata()
    for name, image_root, json_file in BUILTIN_INSTANCE:
        register = functools.partial(
            register_instance_dataset, name, metadata, image_root, json_file, root_relative=True
        )
        _register_once(name, metadata, register)
