# Copyright (c) the mask2former authors.
"""Generic dataset registration: panoptic (COCO-panoptic format), semantic and instance (COCO json).

Every builtin dataset goes through these three functions (see ``builtin.py``); users call them for
their own data. Metadata follows the Mask2Former conventions that its evaluators rely on.
:func:`set_class_metadata` gives a dataset registered by someone else (a detectron2 builtin) these
conventions without registering it again.
"""

import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog

from .dataset_root import RootRelativeMetadata, resolve_path
from .loaders import load_instance_json, load_panoptic_json, load_semantic_dataset

__all__ = [
    "CLASS_METADATA_KEYS",
    "panoptic_metadata",
    "register_instance_dataset",
    "register_panoptic_dataset",
    "register_semantic_dataset",
    "semantic_metadata",
    "set_class_metadata",
]

logger = logging.getLogger(__name__)

# The metadata fields that describe the classes (names, colours, id maps); the other fields are
# paths and evaluation settings.
CLASS_METADATA_KEYS = (
    "thing_classes",
    "thing_colors",
    "stuff_classes",
    "stuff_colors",
    "thing_dataset_id_to_contiguous_id",
    "stuff_dataset_id_to_contiguous_id",
)


def panoptic_metadata(categories: Sequence[Dict], all_classes_are_things: bool = False) -> Dict:
    """Mask2Former panoptic metadata from COCO-panoptic ``categories``.

    Every category gets a contiguous id (its list index), used for both things and stuff:
    ``stuff_classes``/``stuff_colors`` list all categories (semantic segmentation predicts every
    class) and ``stuff_dataset_id_to_contiguous_id`` maps all of them;
    ``thing_dataset_id_to_contiguous_id`` maps the things only. ``thing_classes``/``thing_colors``
    list the things, or all categories when ``all_classes_are_things`` (as the official
    Mapillary Vistas registration does).

    Args:
        categories: dicts with ``id``, ``name``, ``isthing`` and optionally ``color``.
    """
    things = [c for c in categories if c["isthing"]]
    named_as_things = list(categories) if all_classes_are_things else things
    meta = {
        "thing_classes": [c["name"] for c in named_as_things],
        "stuff_classes": [c["name"] for c in categories],
        "thing_dataset_id_to_contiguous_id": {
            c["id"]: i for i, c in enumerate(categories) if c["isthing"]
        },
        "stuff_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(categories)},
    }
    if all("color" in c for c in categories):
        meta["thing_colors"] = [c["color"] for c in named_as_things]
        meta["stuff_colors"] = [c["color"] for c in categories]
    return meta


def semantic_metadata(
    classes: Sequence[str],
    colors: Optional[Sequence[Sequence[int]]] = None,
    extra: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """Class metadata of a semantic dataset: ``stuff_classes``, ``stuff_colors`` (when ``colors``
    are given) and the ``extra`` fields (e.g. ``stuff_dataset_id_to_contiguous_id``)."""
    fields = dict(extra or {})
    fields["stuff_classes"] = list(classes)
    if colors is not None:
        fields["stuff_colors"] = [list(c) for c in colors]
    return fields


def set_class_metadata(name: str, metadata: Mapping[str, Any]) -> None:
    """Give the already registered dataset ``name`` the class fields of ``metadata``.

    Only the keys of :data:`CLASS_METADATA_KEYS` are used; each replaces the dataset's value. The
    dataset's loader and its other metadata (paths, ``evaluator_type``, ...) stay as they are.
    This is how the official Mask2Former adapts detectron2's builtins (e.g. the 80 thing classes of
    ``coco_2017_val_panoptic``, whose detectron2 metadata lists all 133 classes as things).
    """
    if name not in DatasetCatalog.list():
        raise KeyError(f"Dataset {name!r} is not registered")
    meta = MetadataCatalog.get(name)
    fields = {key: value for key, value in metadata.items() if key in CLASS_METADATA_KEYS}
    for key, value in fields.items():
        if key in meta.as_dict() and meta.get(key) != value:
            delattr(meta, key)  # Metadata.set refuses to change a value
    meta.set(**fields)


def _claim_name(name: str, replace: bool) -> None:
    """Free ``name`` in both catalogs when ``replace`` (e.g. a detectron2 builtin we re-register),
    else fail clearly if it is taken."""
    if name in DatasetCatalog.list():
        if not replace:
            raise ValueError(
                f"Dataset {name!r} is already registered; pick another name or pass replace=True"
            )
        DatasetCatalog.remove(name)
    if replace and name in MetadataCatalog.list():
        MetadataCatalog.remove(name)


def _set_metadata(
    name: str, paths: Dict[str, Optional[str]], root_relative: bool, **fields: Any
) -> None:
    paths = {key: path for key, path in paths.items() if path is not None}
    if root_relative:
        MetadataCatalog[name] = RootRelativeMetadata(name=name).set_root_relative_paths(**paths)
        MetadataCatalog.get(name).set(**fields)
    else:
        MetadataCatalog.get(name).set(**paths, **fields)


def register_panoptic_dataset(
    name: str,
    metadata: Dict,
    image_root: str,
    panoptic_root: str,
    panoptic_json: str,
    sem_seg_root: Optional[str] = None,
    instances_json: Optional[str] = None,
    *,
    evaluator_type: str = "coco_panoptic_seg",
    ignore_label: int = 255,
    label_divisor: int = 1000,
    image_ext: str = ".jpg",
    root_relative: bool = False,
    replace: bool = False,
) -> None:
    """Register a dataset in COCO-panoptic format (loaded by :func:`load_panoptic_json`).

    Args:
        name: dataset name, e.g. ``"coco_2017_val_panoptic_with_sem_seg"``.
        metadata: see :func:`panoptic_metadata` (class names, colours, id maps).
        image_root, panoptic_root, panoptic_json: images, RGB-id PNGs and their json.
        sem_seg_root: optional semantic PNGs (contiguous ids, 255 = ignore) named like the
            panoptic PNGs; enables ``sem_seg_file_name`` in the dicts and mIoU evaluation.
        instances_json: optional COCO instances json of the things (for AP evaluation).
        evaluator_type: ``"coco_panoptic_seg"``, ``"ade20k_panoptic_seg"``,
            ``"mapillary_vistas_panoptic_seg"``...
        ignore_label, label_divisor: metadata used by the mappers and evaluators.
        image_ext: image extension when the json lacks an ``images`` entry.
        root_relative: paths are relative to ``$DETECTRON2_DATASETS``, read at load/access time.
        replace: replace an existing registration of ``name`` instead of failing.

    Metadata set: ``image_root``, ``panoptic_root``, ``panoptic_json``, ``sem_seg_root`` and
    ``json_file`` (when given), ``evaluator_type``, ``ignore_label``, ``label_divisor`` and
    ``metadata``'s entries.
    """
    _claim_name(name, replace)
    meta = dict(metadata)

    def load() -> List[Dict]:
        semantic = None if sem_seg_root is None else resolve_path(sem_seg_root, root_relative)
        return load_panoptic_json(
            resolve_path(panoptic_json, root_relative),
            resolve_path(image_root, root_relative),
            resolve_path(panoptic_root, root_relative),
            meta,
            sem_seg_root=semantic,
            image_ext=image_ext,
        )

    DatasetCatalog.register(name, load)
    paths = {
        "image_root": image_root,
        "panoptic_root": panoptic_root,
        "panoptic_json": panoptic_json,
        "sem_seg_root": sem_seg_root,
        "json_file": instances_json,
    }
    _set_metadata(
        name,
        paths,
        root_relative,
        evaluator_type=evaluator_type,
        ignore_label=ignore_label,
        label_divisor=label_divisor,
        **meta,
    )


def register_semantic_dataset(
    name: str,
    image_root: str,
    sem_seg_root: str,
    classes: Sequence[str],
    *,
    colors: Optional[Sequence[Sequence[int]]] = None,
    ignore_label: int = 255,
    evaluator_type: str = "sem_seg",
    image_ext: str = "jpg",
    gt_ext: str = "png",
    metadata: Optional[Dict] = None,
    root_relative: bool = False,
    replace: bool = False,
) -> None:
    """Register a semantic segmentation dataset: images and label maps matched by file name.

    Args:
        name: dataset name, e.g. ``"ade20k_sem_seg_val"``.
        image_root, sem_seg_root: folders of images and of label maps (value = contiguous class
            id, ``ignore_label`` = ignored).
        classes: class names (``stuff_classes``); ``colors``: optional ``stuff_colors``.
        ignore_label: label value that is ignored in training and evaluation.
        image_ext, gt_ext: file extensions of images and label maps.
        metadata: extra metadata (e.g. ``stuff_dataset_id_to_contiguous_id``).
        root_relative, replace: as in :func:`register_panoptic_dataset`.
    """
    _claim_name(name, replace)

    def load() -> List[Dict]:
        return load_semantic_dataset(
            resolve_path(image_root, root_relative),
            resolve_path(sem_seg_root, root_relative),
            image_ext=image_ext,
            gt_ext=gt_ext,
        )

    DatasetCatalog.register(name, load)
    fields = semantic_metadata(classes, colors, metadata)
    _set_metadata(
        name,
        {"image_root": image_root, "sem_seg_root": sem_seg_root},
        root_relative,
        evaluator_type=evaluator_type,
        ignore_label=ignore_label,
        **fields,
    )


def register_instance_dataset(
    name: str,
    metadata: Dict,
    image_root: str,
    json_file: str,
    *,
    evaluator_type: str = "coco",
    root_relative: bool = False,
    replace: bool = False,
) -> None:
    """Register an instance segmentation dataset in COCO json format (detectron2
    ``load_coco_json`` via :func:`load_instance_json`; crowd annotations kept, flagged).

    Args:
        metadata: ``thing_classes`` and ``thing_dataset_id_to_contiguous_id`` consistent with
            the json's categories (``load_coco_json`` checks ``thing_classes``).
        root_relative, replace: as in :func:`register_panoptic_dataset`.
    """
    _claim_name(name, replace)

    def load() -> List[Dict]:
        return load_instance_json(
            resolve_path(json_file, root_relative), resolve_path(image_root, root_relative), name
        )

    DatasetCatalog.register(name, load)
    _set_metadata(
        name,
        {"image_root": image_root, "json_file": json_file},
        root_relative,
        evaluator_type=evaluator_type,
        **metadata,
    )
