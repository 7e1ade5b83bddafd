"""Turn one image's mask-classification outputs into semantic, panoptic and instance results.

The inference rules of MaskFormer / Mask2Former (Cheng et al., NeurIPS 2021 / CVPR 2022). Inputs
are per image: ``mask_cls`` [Q, K+1] class logits (last column = no object) and ``mask_pred``
[Q, H, W] mask logits, already resized to the output resolution.
"""

from typing import Collection, Dict, List, Optional, Tuple, Union

import torch
from detectron2.structures import Boxes, Instances
from torch import Tensor
from torch.nn import functional as F

from ..utils.boxes import masks_to_boxes

__all__ = ["instance_inference", "masks_to_boxes", "panoptic_inference", "semantic_inference"]

SegmentInfo = Dict[str, Union[int, bool]]


def semantic_inference(mask_cls: Tensor, mask_pred: Tensor) -> Tensor:
    """Per-class score map sum_q p(c | q) * sigmoid(mask_q).

    Args:
        mask_cls: [Q, K+1] class logits.
        mask_pred: [Q, H, W] mask logits.

    Returns:
        [K, H, W] semantic scores (the no-object column is dropped after the softmax).
    """
    probs = F.softmax(mask_cls, dim=-1)[..., :-1]  # [Q, K]
    masks = mask_pred.sigmoid()  # [Q, H, W]
    return torch.einsum("qc,qhw->chw", probs, masks)  # [K, H, W]


def panoptic_inference(
    mask_cls: Tensor,
    mask_pred: Tensor,
    *,
    num_classes: int,
    object_mask_threshold: float,
    overlap_threshold: float,
    thing_ids: Collection[int],
) -> Tuple[Tensor, List[SegmentInfo]]:
    """Panoptic segmentation by per-pixel argmax over confident queries.

    Queries whose best class (softmax over K+1) is not no-object and whose score exceeds
    ``object_mask_threshold`` are kept. Each pixel goes to the kept query maximising
    score * sigmoid(mask). Visiting kept queries in order, a query becomes a segment if its assigned
    area, its own area (sigmoid >= 0.5) and their intersection are non-empty and
    assigned / own >= ``overlap_threshold``. Segments of the same stuff class are merged.

    Args:
        mask_cls: [Q, K+1] class logits.
        mask_pred: [Q, H, W] mask logits.
        num_classes: K.
        object_mask_threshold: minimum class score of a kept query.
        overlap_threshold: minimum assigned / own area ratio of a segment.
        thing_ids: contiguous ids of the thing classes.

    Returns:
        panoptic_seg: [H, W] int32 segment ids, 0 = void, segments numbered from 1.
        segments_info: one dict per segment with ``id``, ``isthing`` and ``category_id``
            (the contiguous class id).
    """
    scores, labels = F.softmax(mask_cls, dim=-1).max(-1)  # [Q], [Q]
    masks = mask_pred.sigmoid()  # [Q, H, W]
    keep = labels.ne(num_classes) & (scores > object_mask_threshold)
    cur_scores = scores[keep]
    cur_classes = labels[keep]
    cur_masks = masks[keep]  # [Qk, H, W]

    height, width = masks.shape[-2:]
    panoptic_seg = torch.zeros((height, width), dtype=torch.int32, device=masks.device)
    segments_info: List[SegmentInfo] = []
    if cur_masks.shape[0] == 0:
        return panoptic_seg, segments_info

    cur_prob_masks = cur_scores.view(-1, 1, 1) * cur_masks  # [Qk, H, W]
    cur_mask_ids = cur_prob_masks.argmax(0)  # [H, W]
    thing_set = set(thing_ids)
    stuff_segment_ids: Dict[int, int] = {}
    current_segment_id = 0
    for k in range(cur_classes.shape[0]):
        pred_class = int(cur_classes[k].item())
        isthing = pred_class in thing_set
        assigned = cur_mask_ids == k
        own = cur_masks[k] >= 0.5
        segment = assigned & own
        mask_area = int(assigned.sum().item())
        original_area = int(own.sum().item())
        if mask_area == 0 or original_area == 0 or int(segment.sum().item()) == 0:
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


def instance_inference(
    mask_cls: Tensor,
    mask_pred: Tensor,
    *,
    num_classes: int,
    test_topk_per_image: int,
    thing_ids: Optional[Collection[int]],
    panoptic_on: bool,
) -> Instances:
    """Instance segmentation: the top-k (query, class) pairs, each with its query's mask.

    Scores are the class probabilities (softmax, no-object column dropped) flattened over
    queries x classes; the ``test_topk_per_image`` best are kept, in ``topk(sorted=False)`` order.
    When ``panoptic_on``, only thing classes (``thing_ids``) are kept, as in the official
    implementation; otherwise every class is kept. The final score is the class probability times
    the mean sigmoid inside the binary mask (logit > 0).

    Args:
        mask_cls: [Q, K+1] class logits.
        mask_pred: [Q, H, W] mask logits.
        num_classes: K.
        test_topk_per_image: number of candidates kept before the thing filter.
        thing_ids: contiguous ids of the thing classes; required when ``panoptic_on``.
        panoptic_on: keep only thing classes.

    Returns:
        Instances of size (H, W) with ``pred_masks`` [N, H, W] float 0/1, ``pred_boxes`` (tight
        XYXY boxes of the masks, zero for an empty mask), ``scores`` [N], ``pred_classes`` [N].
    """
    num_queries = mask_cls.shape[0]
    image_size = tuple(mask_pred.shape[-2:])
    scores = F.softmax(mask_cls, dim=-1)[:, :-1]  # [Q, K]
    topk = min(test_topk_per_image, num_queries * num_classes)
    scores_per_image, topk_indices = scores.flatten(0, 1).topk(topk, sorted=False)  # [k], [k]
    labels_per_image = topk_indices % num_classes
    query_indices = topk_indices // num_classes

    if panoptic_on:
        if thing_ids is None:
            raise ValueError("instance_inference: thing_ids are required when panoptic_on is True")
        ids = torch.as_tensor(sorted(thing_ids), dtype=torch.int64, device=mask_cls.device)
        is_thing = torch.zeros(num_classes, dtype=torch.bool, device=mask_cls.device)  # [K]
        is_thing[ids] = True
        keep = is_thing[labels_per_image]
        scores_per_image = scores_per_image[keep]
        labels_per_image = labels_per_image[keep]
        query_indices = query_indices[keep]

    mask_logits = mask_pred[query_indices]  # [N, H, W]
    binary_masks = mask_logits > 0  # [N, H, W]
    pred_masks = binary_masks.float()
    mask_scores = (mask_logits.sigmoid().flatten(1) * pred_masks.flatten(1)).sum(1) / (
        pred_masks.flatten(1).sum(1) + 1e-6
    )  # [N]

    result = Instances(image_size)
    result.pred_masks = pred_masks
    result.pred_boxes = Boxes(masks_to_boxes(binary_masks))
    result.scores = scores_per_image * mask_scores
    result.pred_classes = labels_per_image
    return result
