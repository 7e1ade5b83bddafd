"""Mask2Former inference rules in numpy, for a deployed network (ONNX Runtime) without torch.

The same rules as ``mask2former/modeling/postprocessing.py`` (MaskFormer / Mask2Former, Cheng et
al., NeurIPS 2021 / CVPR 2022) and the resizing that ``MaskFormer.forward`` and detectron2's
``sem_seg_postprocess`` do around them. Inputs per image: ``mask_cls`` [Q, K+1] class logits (last
column = no object) and ``mask_pred`` [Q, H, W] mask logits. Only numpy is imported.
"""

from typing import Collection, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "instance_inference",
    "masks_to_boxes",
    "panoptic_inference",
    "postprocess",
    "resize_bilinear",
    "sem_seg_postprocess",
    "semantic_inference",
]

SegmentInfo = Dict[str, Union[int, bool]]


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x))).astype(x.dtype, copy=False)


def _linear_weights(in_size: int, out_size: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of bilinear resizing along one axis, as torch computes them
    with ``align_corners=False`` (half-pixel centres, negative positions clamped to 0)."""
    scale = np.float32(in_size) / np.float32(out_size)
    src = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    i0 = np.minimum(src.astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    w1 = (src - i0).astype(np.float32)
    return i0, i1, w1


def resize_bilinear(x: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """``F.interpolate(x, size, mode="bilinear", align_corners=False)`` for [C, H, W] arrays.

    Returns:
        [C, size[0], size[1]] float32.
    """
    x = np.asarray(x, dtype=np.float32)
    out_h, out_w = size
    if x.shape[-2:] == (out_h, out_w):
        return x.copy()
    y0, y1, wy = _linear_weights(x.shape[-2], out_h)
    x0, x1, wx = _linear_weights(x.shape[-1], out_w)
    rows = x[:, y0, :] * (1 - wy)[None, :, None] + x[:, y1, :] * wy[None, :, None]  # [C, h, W]
    return rows[:, :, x0] * (1 - wx) + rows[:, :, x1] * wx  # [C, h, w]


def sem_seg_postprocess(
    result: np.ndarray, img_size: Tuple[int, int], output_height: int, output_width: int
) -> np.ndarray:
    """detectron2's ``sem_seg_postprocess``: crop [C, H_pad, W_pad] to the image inside the
    padding, ``img_size`` (h, w), then resize to (output_height, output_width)."""
    cropped = result[:, : img_size[0], : img_size[1]]
    return resize_bilinear(cropped, (output_height, output_width))


def semantic_inference(mask_cls: np.ndarray, mask_pred: np.ndarray) -> np.ndarray:
    """Per-class score map sum_q p(c | q) * sigmoid(mask_q).

    Args:
        mask_cls: [Q, K+1] class logits.
        mask_pred: [Q, H, W] mask logits.
    Returns:
        [K, H, W] float32 semantic scores.
    """
    probs = softmax(mask_cls.astype(np.float32))[:, :-1]  # [Q, K]
    masks = sigmoid(mask_pred.astype(np.float32))  # [Q, H, W]
    q, h, w = masks.shape
    return (probs.T @ masks.reshape(q, h * w)).reshape(-1, h, w)  # [K, H, W]


def panoptic_inference(
    mask_cls: np.ndarray,
    mask_pred: np.ndarray,
    *,
    num_classes: int,
    object_mask_threshold: float,
    overlap_threshold: float,
    thing_ids: Collection[int],
) -> Tuple[np.ndarray, List[SegmentInfo]]:
    """Panoptic segmentation by per-pixel argmax over confident queries (see the torch version).

    Returns:
        panoptic_seg: [H, W] int32 segment ids, 0 = void, segments numbered from 1.
        segments_info: one dict per segment with ``id``, ``isthing`` and ``category_id``.
    """
    probs = softmax(mask_cls.astype(np.float32))  # [Q, K+1]
    scores, labels = probs.max(-1), probs.argmax(-1)  # [Q], [Q]
    masks = sigmoid(mask_pred.astype(np.float32))  # [Q, H, W]
    keep = (labels != num_classes) & (scores > object_mask_threshold)
    cur_scores, cur_classes, cur_masks = scores[keep], labels[keep], masks[keep]

    height, width = masks.shape[-2:]
    panoptic_seg = np.zeros((height, width), dtype=np.int32)
    segments_info: List[SegmentInfo] = []
    if cur_masks.shape[0] == 0:
        return panoptic_seg, segments_info

    cur_mask_ids = (cur_scores[:, None, None] * cur_masks).argmax(0)  # [H, W]
    thing_set = set(int(i) for i in thing_ids)
    stuff_segment_ids: Dict[int, int] = {}
    current_segment_id = 0
    for k in range(cur_classes.shape[0]):
        pred_class = int(cur_classes[k])
        isthing = pred_class in thing_set
        assigned = cur_mask_ids == k
        own = cur_masks[k] >= 0.5
        segment = assigned & own
        mask_area, original_area = int(assigned.sum()), int(own.sum())
        if mask_area == 0 or original_area == 0 or not segment.any():
            continue
        if mask_area / original_area < overlap_threshold:
            continue
        if not isthing and pred_class in stuff_segment_ids:
            panoptic_seg[segment] = stuff_segment_ids[pred_class]
            continue
        current_segment_id += 1
        if not isthing:
            stuff_segment_ids[pred_class] = current_segment_id
        panoptic_seg[segment] = current_segment_id
        segments_info.append(
            {"id": current_segment_id, "isthing": isthing, "category_id": pred_class}
        )
    return panoptic_seg, segments_info


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """[N, H, W] bool masks -> [N, 4] float32 tight XYXY boxes (x1, y1 exclusive), zero if empty."""
    n, height, width = masks.shape
    boxes = np.zeros((n, 4), dtype=np.float32)
    x_any, y_any = masks.any(axis=1), masks.any(axis=2)  # [N, W], [N, H]
    for i in range(n):
        xs, ys = np.flatnonzero(x_any[i]), np.flatnonzero(y_any[i])
        if xs.size:
            boxes[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return boxes


def instance_inference(
    mask_cls: np.ndarray,
    mask_pred: np.ndarray,
    *,
    num_classes: int,
    test_topk_per_image: int,
    thing_ids: Optional[Collection[int]],
    panoptic_on: bool,
) -> Dict[str, np.ndarray]:
    """The top-k (query, class) pairs, each with its query's mask (see the torch version).

    Candidates are ordered by class probability, highest first (the torch version keeps
    ``topk(sorted=False)`` order; the set is the same).

    Returns:
        ``pred_masks`` [N, H, W] bool, ``pred_boxes`` [N, 4] float32 XYXY, ``scores`` [N] float32,
        ``pred_classes`` [N] int64.
    """
    scores = softmax(mask_cls.astype(np.float32))[:, :-1].reshape(-1)  # [Q*K]
    topk = min(test_topk_per_image, scores.shape[0])
    top = np.argsort(-scores, kind="stable")[:topk]  # [k]
    scores_per_image = scores[top]
    labels = top % num_classes
    query_indices = top // num_classes
    if panoptic_on:
        if thing_ids is None:
            raise ValueError("instance_inference: thing_ids are required when panoptic_on is True")
        keep = np.isin(labels, np.asarray(sorted(thing_ids), dtype=np.int64))
        scores_per_image, labels, query_indices = (
            scores_per_image[keep],
            labels[keep],
            query_indices[keep],
        )
    mask_logits = mask_pred[query_indices].astype(np.float32)  # [N, H, W]
    binary = mask_logits > 0
    n, h, w = binary.shape
    inside = binary.reshape(n, h * w)
    mask_scores = (sigmoid(mask_logits).reshape(n, h * w) * inside).sum(1) / (inside.sum(1) + 1e-6)
    return {
        "pred_masks": binary,
        "pred_boxes": masks_to_boxes(binary),
        "scores": (scores_per_image * mask_scores).astype(np.float32),
        "pred_classes": labels.astype(np.int64),
    }


def postprocess(
    pred_logits: np.ndarray,
    pred_masks: np.ndarray,
    *,
    padded_size: Tuple[int, int],
    image_size: Tuple[int, int],
    output_size: Tuple[int, int],
    tasks: Sequence[str],
    thing_ids: Collection[int] = (),
    object_mask_threshold: float = 0.8,
    overlap_threshold: float = 0.8,
    test_topk_per_image: int = 100,
    sem_seg_postprocess_before_inference: bool = True,
    panoptic_on: Optional[bool] = None,
) -> Dict[str, object]:
    """One image's results from the network outputs, as ``MaskFormer.forward`` computes them.

    Args:
        pred_logits: [Q, K+1] (or [1, Q, K+1]) class logits.
        pred_masks: [Q, H_pad/4, W_pad/4] (or with a leading 1) mask logits.
        padded_size: (H_pad, W_pad) of the network input.
        image_size: (h, w) of the resized image inside the padding.
        output_size: (height, width) the results are wanted at (usually the original image).
        tasks: any of "semantic", "panoptic", "instance".
        thing_ids: contiguous ids of the thing classes (panoptic, and instance with panoptic).
        object_mask_threshold, overlap_threshold: panoptic thresholds.
        test_topk_per_image: instance candidates kept.
        sem_seg_postprocess_before_inference: resize the mask logits to the output size before
            inference (required for panoptic and instance); if False, semantic inference runs at
            the padded size and its result is resized.
        panoptic_on: the model's ``TEST.PANOPTIC_ON``: instance results keep thing classes only.
            Default: whether "panoptic" is among ``tasks``.
    Returns:
        dict with ``sem_seg`` [K, height, width], ``panoptic_seg`` (ids [height, width] int32,
        segments_info) and/or ``instances`` (see :func:`instance_inference`).
    """
    unknown = set(tasks) - {"semantic", "panoptic", "instance"}
    if unknown:
        raise ValueError(f"unknown tasks {sorted(unknown)}; use semantic, panoptic, instance")
    if not sem_seg_postprocess_before_inference and set(tasks) - {"semantic"}:
        raise ValueError("sem_seg_postprocess_before_inference=False is for semantic alone")
    mask_cls = pred_logits.reshape(pred_logits.shape[-2:])  # [Q, K+1]
    masks = pred_masks.reshape(pred_masks.shape[-3:])  # [Q, h, w]
    num_classes = mask_cls.shape[-1] - 1
    masks = resize_bilinear(masks, padded_size)  # [Q, H_pad, W_pad]
    height, width = output_size
    if sem_seg_postprocess_before_inference:
        masks = sem_seg_postprocess(masks, image_size, height, width)  # [Q, height, width]
    result: Dict[str, object] = {}
    if "semantic" in tasks:
        sem_seg = semantic_inference(mask_cls, masks)
        if not sem_seg_postprocess_before_inference:
            sem_seg = sem_seg_postprocess(sem_seg, image_size, height, width)
        result["sem_seg"] = sem_seg
    if "panoptic" in tasks:
        result["panoptic_seg"] = panoptic_inference(
            mask_cls,
            masks,
            num_classes=num_classes,
            object_mask_threshold=object_mask_threshold,
            overlap_threshold=overlap_threshold,
            thing_ids=thing_ids,
        )
    if "instance" in tasks:
        things_only = "panoptic" in tasks if panoptic_on is None else panoptic_on
        result["instances"] = instance_inference(
            mask_cls,
            masks,
            num_classes=num_classes,
            test_topk_per_image=test_topk_per_image,
            thing_ids=thing_ids if things_only else None,
            panoptic_on=things_only,
        )
    return result
