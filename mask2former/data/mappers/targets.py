# Copyright (c) the mask2former authors.
"""Ground-truth reading and target building shared by the dataset mappers.

Targets are detectron2 :class:`Instances` with ``gt_classes: [N] int64`` and
``gt_masks: [N, H, W] bool``, one mask per segment / class / object ("mask classification", as in
MaskFormer and Mask2Former). Masks left empty (e.g. by a crop) are dropped.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.data.detection_utils import SizeMismatchError
from detectron2.structures import Instances, polygons_to_bitmask
from torch.nn import functional as F

from ..bad_samples import CrowdOnlyError, NoAnnotationsError, note_dropped_objects
from ..image_io import read_image
from ..panoptic_format import rgb_to_id

__all__ = [
    "IMAGE_PAD_VALUE",
    "annotation_masks",
    "build_instances",
    "check_labels",
    "check_panoptic_segments",
    "image_to_tensor",
    "pad_bottom_right",
    "padded_image",
    "panoptic_ids",
    "panoptic_targets",
    "read_label_map",
    "read_panoptic_ids",
    "read_semantic_labels",
    "require_labelled_pixels",
    "semantic_targets",
    "training_objects",
]

# Value of the image padding (the official mappers pad images with 128).
IMAGE_PAD_VALUE = 128
# Panoptic id of VOID (unlabelled) pixels.
VOID_ID = 0


def _check_same_size(label: np.ndarray, image: np.ndarray, file_name: str, image_file: str) -> None:
    if label.shape[:2] != image.shape[:2]:
        raise ValueError(
            f"Annotation {file_name!r} has size {label.shape[1]}x{label.shape[0]} (WxH) but image "
            f"{image_file!r} has size {image.shape[1]}x{image.shape[0]}"
        )


def read_label_map(file_name: str, image: np.ndarray, image_file: str) -> np.ndarray:
    """Read a label PNG/TIFF as ``[H, W]`` float64 (torch resizes no uint16), checking its size
    against ``image`` (``[H, W, C]``)."""
    label = read_image(file_name)
    if label.ndim != 2:
        raise ValueError(f"Label map {file_name!r} must be single-channel, got shape {label.shape}")
    _check_same_size(label, image, file_name, image_file)
    return label.astype(np.float64)


def read_panoptic_ids(file_name: str, image: np.ndarray, image_file: str) -> np.ndarray:
    """Read a COCO-panoptic RGB-id PNG as ``[H, W, 3]`` uint8, checking its size."""
    color = read_image(file_name, "RGB")
    _check_same_size(color, image, file_name, image_file)
    return color


def check_labels(
    labels: np.ndarray, num_classes: Optional[int], ignore_label: int, file_name: str
) -> None:
    """Raise if ``labels`` hold a value outside ``[0, num_classes)`` other than ``ignore_label``."""
    if num_classes is None:
        return
    values = np.unique(labels)
    bad = values[((values < 0) | (values >= num_classes)) & (values != ignore_label)]
    if bad.size:
        raise ValueError(
            f"Label map {file_name!r} holds labels {bad.astype(np.int64).tolist()[:10]} outside "
            f"[0, {num_classes}) that are not the ignore label {ignore_label} (were the labels "
            "converted by the dataset's datasets/prepare_*.py script?)"
        )


def require_labelled_pixels(labels: np.ndarray, ignore_label: int, file_name: str) -> None:
    """Raise :class:`NoAnnotationsError` when every pixel of ``labels`` is ``ignore_label``."""
    if labels.size and bool(np.all(labels == ignore_label)):
        raise NoAnnotationsError(
            f"Label map {file_name!r} has no labelled pixel (all {ignore_label}, the ignore label)",
            file_name,
        )


def check_panoptic_segments(
    segment_ids: np.ndarray, segments_info: Sequence[Dict[str, Any]], file_name: str
) -> None:
    """Check a panoptic annotation before training on it.

    Args:
        segment_ids: ``[H, W]`` ids of the whole PNG (before any crop).
        segments_info: its segments (``id``, ``iscrowd``).

    Raises:
        ValueError: the PNG has non-VOID ids that ``segments_info`` does not list (their pixels
            would silently be trained as "no object"), or ``segments_info`` lists segments the
            PNG does not have: the json and the PNGs disagree.
        NoAnnotationsError: no segment at all (every pixel VOID).
        CrowdOnlyError: every segment is a crowd region.
    """
    in_png = set(np.unique(segment_ids).tolist()) - {VOID_ID}
    listed = {int(segment["id"]) for segment in segments_info}
    if in_png - listed:
        raise ValueError(
            f"Panoptic PNG {file_name!r} has segment ids {sorted(in_png - listed)[:10]} that are "
            f"not in its segments_info (ids {sorted(listed)[:10]}): the json and the PNGs "
            "disagree (wrong panoptic folder or json?)"
        )
    if listed - in_png:
        raise ValueError(
            f"segments_info of panoptic PNG {file_name!r} lists segment ids "
            f"{sorted(listed - in_png)[:10]} that are not in the PNG: the json and the PNGs "
            "disagree (wrong panoptic folder or json?)"
        )
    if not segments_info:
        raise NoAnnotationsError(
            f"Panoptic PNG {file_name!r} has no segment (every pixel VOID)", file_name
        )
    if all(segment.get("iscrowd", 0) for segment in segments_info):
        raise CrowdOnlyError(
            f"Every segment of panoptic PNG {file_name!r} is a crowd region", file_name
        )


def read_semantic_labels(
    file_name: str,
    image: np.ndarray,
    image_file: str,
    num_classes: Optional[int],
    ignore_label: int,
) -> np.ndarray:
    """:func:`read_label_map` then :func:`check_labels`: the ``[H, W]`` float64 label map of
    ``file_name``, checked against ``image``'s size and the class range."""
    labels = read_label_map(file_name, image, image_file)
    check_labels(labels, num_classes, ignore_label, file_name)
    return labels


def _check_category(category: int, num_classes: Optional[int], file_name: str) -> None:
    if num_classes is not None and not 0 <= category < num_classes:
        raise ValueError(
            f"Annotation of {file_name!r} has category_id {category} outside [0, {num_classes})"
        )


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """``[H, W, C]`` uint8 -> ``[C, H, W]`` uint8 tensor."""
    return torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))  # HWC -> CHW


def pad_bottom_right(x: torch.Tensor, size_divisibility: int, value: float) -> torch.Tensor:
    """Pad the last two dims of ``x`` (bottom/right) up to multiples of ``size_divisibility``.

    For cropped inputs no larger than the crop this is the official "pad to SIZE_DIVISIBILITY"
    (crop size); unlike the official code it never crops a larger input.
    """
    if size_divisibility <= 0:
        return x
    h, w = x.shape[-2:]
    pad_h = -h % size_divisibility
    pad_w = -w % size_divisibility
    if pad_h == 0 and pad_w == 0:
        return x
    if x.dtype == torch.bool:  # constant padding of bool tensors goes through uint8
        return F.pad(x.to(torch.uint8), [0, pad_w, 0, pad_h], value=value).bool().contiguous()
    return F.pad(x, [0, pad_w, 0, pad_h], value=value).contiguous()


def padded_image(image: np.ndarray, size_divisibility: int) -> torch.Tensor:
    """``[H, W, C]`` uint8 image -> ``[C, H', W']`` uint8 tensor padded (bottom/right, with
    :data:`IMAGE_PAD_VALUE`) to multiples of ``size_divisibility``."""
    return pad_bottom_right(image_to_tensor(image), size_divisibility, IMAGE_PAD_VALUE)


def build_instances(
    image_shape: Tuple[int, int], classes: Sequence[int], masks: Sequence[torch.Tensor]
) -> Instances:
    """``Instances`` with ``gt_classes [N]`` and ``gt_masks [N, H, W]`` (bool); empty masks are
    dropped."""
    keep = [i for i, mask in enumerate(masks) if bool(mask.any())]
    instances = Instances(image_shape)
    instances.gt_classes = torch.tensor([classes[i] for i in keep], dtype=torch.int64)
    if keep:
        instances.gt_masks = torch.stack([masks[i].to(torch.bool) for i in keep])  # [N, H, W]
    else:
        instances.gt_masks = torch.zeros((0, *image_shape), dtype=torch.bool)
    return instances


def semantic_targets(sem_seg: torch.Tensor, ignore_label: int) -> Instances:
    """One binary mask per class present in ``sem_seg`` (``[H, W]`` int64), ignore excluded."""
    classes = [int(c) for c in torch.unique(sem_seg) if int(c) != ignore_label]
    masks = [sem_seg == c for c in classes]
    return build_instances(tuple(sem_seg.shape), classes, masks)


def panoptic_targets(
    pan_ids: torch.Tensor,
    segments_info: List[Dict],
    num_classes: Optional[int],
    file_name: str,
) -> Instances:
    """One mask per non-crowd segment of ``pan_ids`` (``[H, W]`` segment ids); segments absent
    from ``pan_ids`` (cropped away) are dropped."""
    classes, masks = [], []
    for segment in segments_info:
        _check_category(segment["category_id"], num_classes, file_name)
        if segment.get("iscrowd", 0):
            continue
        classes.append(segment["category_id"])
        masks.append(pan_ids == segment["id"])
    return build_instances(tuple(pan_ids.shape), classes, masks)


def panoptic_ids(color: np.ndarray) -> torch.Tensor:
    """``[H, W, 3]`` panoptic colours -> ``[H, W]`` int64 segment ids."""
    return torch.as_tensor(rgb_to_id(color))


def _polygon_area(coords: Sequence[float]) -> float:
    """Area of a polygon given as ``[x0, y0, x1, y1, ...]`` (shoelace formula)."""
    xy = np.asarray(coords, dtype=np.float64).reshape(-1, 2)  # [P, 2]
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _usable_segmentation(
    annotation: Dict[str, Any], image_shape: Optional[Tuple[int, int]], file_name: str
) -> Optional[Any]:
    """The object's segmentation without its degenerate polygons, None when none is left.

    Polygons of fewer than 3 points or of zero area have no pixel (and pycocotools reads a
    4-number polygon as a box). An odd number of coordinates, or an RLE whose size is not the
    image's, is an error naming the file."""
    segm = annotation.get("segmentation")
    object_id = annotation.get("id", "?")
    if segm is None:
        raise ValueError(
            f"Object {object_id} of {file_name!r} has no segmentation (Mask2Former trains on "
            "masks; a box-only object would leave its pixels labelled as background)"
        )
    if isinstance(segm, list):
        for polygon in segm:
            if len(polygon) % 2:
                raise ValueError(
                    f"A polygon of object {object_id} of {file_name!r} has an odd number of "
                    f"coordinates ({len(polygon)})"
                )
        kept = [p for p in segm if len(p) >= 6 and _polygon_area(p) > 0]
        return kept or None
    if isinstance(segm, dict) and image_shape is not None:
        if tuple(int(v) for v in segm.get("size", image_shape)) != tuple(image_shape):
            raise SizeMismatchError(
                f"The RLE mask of object {object_id} of {file_name!r} has size "
                f"{list(segm['size'])} (HxW) but the image is {list(image_shape)}"
            )
    return segm


def training_objects(
    annotations: Sequence[Dict[str, Any]],
    image_shape: Optional[Tuple[int, int]],
    file_name: str,
) -> List[Dict[str, Any]]:
    """The non-crowd objects of an image to train on, before augmentation.

    Objects whose polygons are all degenerate (fewer than 3 points or zero area) are dropped and
    counted (``data/dropped_degenerate_polygon``); an image without objects is kept (a negative).

    Args:
        annotations: detectron2 objects (``segmentation``, ``category_id``, ``iscrowd``...).
        image_shape: (H, W) of the image, to check RLE sizes (None: not checked).

    Raises:
        CrowdOnlyError: the image has crowd objects and no usable other object.
        ValueError: see :func:`_usable_segmentation`.
    """
    kept, degenerate, crowd = [], 0, 0
    for annotation in annotations:
        if annotation.get("iscrowd", 0):
            crowd += 1
            continue
        segm = _usable_segmentation(annotation, image_shape, file_name)
        if segm is None:
            degenerate += 1
            continue
        kept.append(dict(annotation, segmentation=segm))
    note_dropped_objects(
        "degenerate_polygon", degenerate, file_name, "polygons of fewer than 3 points or no area"
    )
    if crowd and not kept:
        raise CrowdOnlyError(f"Every object of {file_name!r} is a crowd region", file_name)
    return kept


def annotation_masks(
    annotations: List[Dict],
    image_shape: Tuple[int, int],
    num_classes: Optional[int],
    file_name: str,
) -> Tuple[List[int], List[torch.Tensor]]:
    """Classes and ``[H, W]`` masks of transformed detectron2 annotations (polygons, COCO RLE or
    binary arrays in ``segmentation``)."""
    classes, masks = [], []
    for annotation in annotations:
        _check_category(int(annotation["category_id"]), num_classes, file_name)
        segm = annotation["segmentation"]
        if isinstance(segm, list):
            mask = polygons_to_bitmask(segm, *image_shape)
        elif isinstance(segm, dict):
            if isinstance(segm["counts"], list):  # uncompressed RLE
                segm = mask_util.frPyObjects(segm, *segm["size"])
            mask = mask_util.decode(segm)
        elif isinstance(segm, np.ndarray) and segm.ndim == 2:
            # RLE masks come back as arrays from transform_instance_annotations; pixels added by
            # padding transforms hold the segmentation pad value (255), not 1.
            mask = segm == 1
        else:
            raise ValueError(
                f"Unsupported segmentation of type {type(segm).__name__} in {file_name!r}: "
                "expected polygons, COCO RLE or an [H, W] array"
            )
        classes.append(int(annotation["category_id"]))
        masks.append(torch.from_numpy(np.ascontiguousarray(mask)).to(torch.bool))
    return classes, masks
