# Copyright (c) the mask2former authors.
"""YouTube-VIS format (Yang et al., "Video Instance Segmentation", ICCV 2019): loader and
registration, written once for every dataset in that format (YouTube-VIS 2019/2021, the embedded
synthetic video dataset, users' own data). Same records and metadata as the official
Mask2Former ``load_ytvis_json`` / ``register_ytvis_instances`` (adapted there from IFC).

A YouTube-VIS json holds ``videos`` (``id``, ``width``, ``height``, ``length``, ``file_names``),
``categories`` (``id``, ``name``) and, except for test splits, ``annotations``: one per instance
*track*, with per-frame lists ``segmentations`` (RLE, polygons or null when the instance is absent
from that frame), ``bboxes`` (XYWH or null) and ``areas`` (or null).
"""

import json
import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

import pycocotools.mask as mask_util
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from detectron2.utils.file_io import PathManager

from .dataset_root import resolve_path
from .loaders import _missing
from .register import _claim_name, _set_metadata

__all__ = ["load_ytvis_json", "register_ytvis_instances", "ytvis_metadata"]

logger = logging.getLogger(__name__)

# Keys copied from a json annotation into every per-frame object.
_ANNOTATION_KEYS = ("iscrowd", "category_id", "id")


def ytvis_metadata(categories: Sequence[Dict]) -> Dict[str, Any]:
    """Detectron2 metadata from category dicts (``id``, ``name``, optional ``color``):
    ``thing_classes``, ``thing_dataset_id_to_contiguous_id`` (dataset ids sorted -> 0..K-1) and
    ``thing_colors`` when every category has a colour."""
    ordered = sorted(categories, key=lambda c: c["id"])
    meta: Dict[str, Any] = {
        "thing_classes": [c["name"] for c in ordered],
        "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(ordered)},
    }
    if all("color" in c for c in ordered):
        meta["thing_colors"] = [list(c["color"]) for c in ordered]
    return meta


def _category_map(
    categories: List[Dict], json_file: str, dataset_name: Optional[str]
) -> Dict[int, int]:
    """Dataset id -> contiguous id, from the dataset's metadata when it has one (checked against
    the json), else from the json (and stored in the metadata)."""
    from_json = ytvis_metadata(categories)
    if dataset_name is None:
        return from_json["thing_dataset_id_to_contiguous_id"]
    meta = MetadataCatalog.get(dataset_name)
    id_map = meta.get("thing_dataset_id_to_contiguous_id")
    if id_map is None:
        meta.set(
            thing_classes=from_json["thing_classes"],
            thing_dataset_id_to_contiguous_id=from_json["thing_dataset_id_to_contiguous_id"],
        )
        return from_json["thing_dataset_id_to_contiguous_id"]
    names = {c["id"]: c["name"] for c in categories}
    classes = meta.get("thing_classes")
    for dataset_id, name in names.items():
        if dataset_id not in id_map or (classes and classes[id_map[dataset_id]] != name):
            raise ValueError(
                f"Category {dataset_id} ({name!r}) of {json_file!r} does not match the metadata "
                f"of dataset {dataset_name!r} (thing_classes / thing_dataset_id_to_contiguous_id)"
            )
    return dict(id_map)


def _frame_object(
    annotation: Dict, frame: int, id_map: Mapping[int, int], keys: Sequence[str]
) -> Optional[Dict[str, Any]]:
    """The detectron2 object of one track in one frame, or None when it is absent there."""
    boxes = annotation.get("bboxes") or []
    segms = annotation.get("segmentations") or []
    if frame >= len(segms) or frame >= len(boxes) or not segms[frame] or not boxes[frame]:
        return None
    segm = segms[frame]
    if isinstance(segm, dict):
        if isinstance(segm["counts"], list):  # uncompressed RLE -> compressed
            segm = mask_util.frPyObjects(segm, *segm["size"])
    else:  # polygons: keep the valid ones (>= 3 points)
        segm = [poly for poly in segm if len(poly) % 2 == 0 and len(poly) >= 6]
        if not segm:
            return None
    obj = {key: annotation[key] for key in keys if key in annotation}
    obj["iscrowd"] = obj.get("iscrowd", 0)
    obj["bbox"] = list(boxes[frame])
    obj["bbox_mode"] = BoxMode.XYWH_ABS
    obj["segmentation"] = segm
    obj["category_id"] = id_map[annotation["category_id"]]
    return obj


def _check_mask_sizes(annotation: Dict, video: Dict, json_file: str) -> None:
    """Raise when an RLE mask of the track is not the video's size (polygons have no size)."""
    expected = [video["height"], video["width"]]
    for frame, segm in enumerate(annotation.get("segmentations") or []):
        if isinstance(segm, dict) and [int(v) for v in segm["size"]] != expected:
            raise ValueError(
                f"Annotation {annotation.get('id')} of {json_file!r} has a mask of size "
                f"{list(segm['size'])} (HxW) in frame {frame} of video {video['id']}, whose "
                f"size is {expected}"
            )


def load_ytvis_json(
    json_file: str,
    image_root: str,
    dataset_name: Optional[str] = None,
    extra_annotation_keys: Optional[Sequence[str]] = None,
) -> List[Dict[str, Any]]:
    """Load a YouTube-VIS json into detectron2 video records.

    Args:
        json_file: the YouTube-VIS json.
        image_root: folder the videos' ``file_names`` are relative to.
        dataset_name: when given, its metadata's category map is used (and checked against the
            json), or set from the json when the metadata has none.
        extra_annotation_keys: more annotation keys to copy into the per-frame objects.

    Returns:
        One record per video (sorted by id): ``video_id``, ``length`` (T), ``file_names`` (T
        paths), ``height``, ``width`` and ``annotations``: T lists (one per frame) of objects
        ``{id (track id), category_id (contiguous), iscrowd, bbox (XYWH), bbox_mode,
        segmentation (RLE or polygons)}``, holding the tracks present in that frame. Test splits
        (no ``annotations`` in the json) give T empty lists.
    """
    if not PathManager.isfile(json_file):
        raise _missing("YouTube-VIS json", json_file)
    with PathManager.open(json_file) as f:
        content = json.load(f)
    for key in ("videos", "categories"):
        if key not in content:
            raise ValueError(f"YouTube-VIS json {json_file!r} has no {key!r}")
    id_map = _category_map(content["categories"], json_file, dataset_name)
    tracks: Dict[int, List[Dict]] = {video["id"]: [] for video in content["videos"]}
    for annotation in content.get("annotations", []):
        if annotation["video_id"] not in tracks:
            raise ValueError(
                f"Annotation {annotation.get('id')} of {json_file!r} refers to video "
                f"{annotation['video_id']}, which is not in 'videos'"
            )
        if annotation["category_id"] not in id_map:
            raise ValueError(
                f"Annotation {annotation.get('id')} of {json_file!r} has category_id "
                f"{annotation['category_id']}, which is not among its categories"
            )
        tracks[annotation["video_id"]].append(annotation)

    keys = tuple(_ANNOTATION_KEYS) + tuple(extra_annotation_keys or ())
    records = []
    for video in sorted(content["videos"], key=lambda v: v["id"]):
        length = video["length"]
        if len(video["file_names"]) < length:
            raise ValueError(
                f"Video {video['id']} of {json_file!r} has length {length} but only "
                f"{len(video['file_names'])} file_names"
            )
        for annotation in tracks[video["id"]]:
            _check_mask_sizes(annotation, video, json_file)
        frames = [
            [
                obj
                for obj in (_frame_object(a, t, id_map, keys) for a in tracks[video["id"]])
                if obj is not None
            ]
            for t in range(length)
        ]
        records.append(
            {
                "video_id": video["id"],
                "length": length,
                "file_names": [os.path.join(image_root, f) for f in video["file_names"][:length]],
                "height": video["height"],
                "width": video["width"],
                "annotations": frames,
            }
        )
    if records and not PathManager.isfile(records[0]["file_names"][0]):
        raise _missing("Video frame", records[0]["file_names"][0])  # checks the first only
    logger.info(f"Loaded {len(records)} videos in YouTube-VIS format from {json_file}")
    return records


def register_ytvis_instances(
    name: str,
    metadata: Dict,
    json_file: str,
    image_root: str,
    *,
    evaluator_type: str = "ytvis",
    root_relative: bool = False,
    replace: bool = False,
) -> None:
    """Register a video instance segmentation dataset in YouTube-VIS json format (loaded by
    :func:`load_ytvis_json`), as the official ``register_ytvis_instances``.

    Args:
        name: dataset name, e.g. ``"ytvis_2019_train"``.
        metadata: extra metadata, e.g. :func:`ytvis_metadata` of the categories (may be empty:
            the classes are then read from the json when the dataset is loaded).
        json_file, image_root: the json and the folder its ``file_names`` are relative to.
        evaluator_type: picks the evaluator (``"ytvis"``: :class:`YTVISEvaluator`).
        root_relative: paths are relative to ``$DETECTRON2_DATASETS``, read at load/access time.
        replace: replace an existing registration of ``name`` instead of failing.

    Metadata set: ``json_file``, ``image_root``, ``evaluator_type`` and ``metadata``'s entries.
    """
    _claim_name(name, replace)

    def load() -> List[Dict[str, Any]]:
        return load_ytvis_json(
            resolve_path(json_file, root_relative), resolve_path(image_root, root_relative), name
        )

    DatasetCatalog.register(name, load)
    _set_metadata(
        name,
        {"json_file": json_file, "image_root": image_root},
        root_relative,
        evaluator_type=evaluator_type,
        **metadata,
    )
