"""Turn one image's mask-classification outputs into semantic, panoptic and instance results.

The inference rules of MaskFormer / Mask2Former (Cheng et al., NeurIPS 2021 / CVPR 2022). Inputs
are per image: ``mask_cls`` [Q, K+1] class logits (last column = no object) and ``mask_pred``
[Q, H, W] mask logits, already resized to the output resolution.

:func:`semantic_inference`, :func:`panoptic_inference` and :func:`instance_inference` are the
three rules on their own. :func:`mask_classification_inference` gives the same results for any
combination of them from the low-resolution mask logits, sharing the work: the masks are resized
once (only the queries some result needs: the resize is per query, so a subset gives the same
rows), turned into probabilities in place, and no [Q, H, W] float tensor is copied except the
kept queries of the panoptic argmax and the selected instances. Every step is a batched tensor
operation on the masks' device; the host reads a few [Q]-sized vectors per image (no per-query
synchronisation).
"""

from typing import Any, Collection, Dict, List, Optional, Tuple, Union

import torch
from detectron2.structures import Boxes, Instances
from torch import Tensor
from torch.nn import functional as F
from torch.profiler import record_function

from ..utils.boxes import masks_to_boxes
from .layers import linear

__all__ = [
    "instance_inference",
    "mask_classification_inference",
    "masks_to_boxes",
    "panoptic_inference",
    "resize_mask_logits",
    "semantic_inference",
]

SegmentInfo = Dict[str, Union[int, bool]]


def resize_mask_logits(
    mask_logits: Tensor,
    padded_size: Tuple[int, int],
    image_size: Tuple[int, int],
    output_size: Tuple[int, int],
) -> Tensor:
    """The official resizing of mask logits: bilinear (align_corners=False) to the padded input
    size, crop to the image, bilinear to the output size. The second resize is skipped when the
    output size is the image size (a same-size bilinear resize is the identity).

    Args:
        mask_logits: [Q, h, w] logits at the network's resolution (stride 4 of the padded input).
        padded_size, image_size, output_size: (H, W) of the padded input, of the image inside it
            and of the requested output.
    Returns:
        [Q, H_out, W_out] contiguous logits.
    """
    masks = F.interpolate(mask_logits[None], size=padded_size, mode="bilinear", align_corners=False)
    masks = masks[:, :, : image_size[0], : image_size[1]]  # [1, Q, h_img, w_img]
    if tuple(image_size) != tuple(output_size):
        masks = F.interpolate(masks, size=output_size, mode="bilinear", align_corners=False)
    return masks[0].contiguous()


def _semantic_from_probs(mask_cls: Tensor, mask_probs: Tensor) -> Tensor:
    """[Q, K+1] logits, [Q, H, W] mask probabilities -> [K, H, W] scores."""
    probs = F.softmax(mask_cls, dim=-1)[..., :-1]  # [Q, K]
    num_queries, height, width = mask_probs.shape
    # sem_seg[c, x] = sum_q probs[q, c] * mask_probs[q, x]: a linear map of the pixels' query
    # probabilities ([K, Q] x [Q, H*W]), through the fast CPU matrix product where it applies.
    scores = linear(probs.t(), mask_probs.reshape(num_queries, -1).t())  # [K, H*W]
    return scores.view(-1, height, width)  # [K, H, W]


def semantic_inference(mask_cls: Tensor, mask_pred: Tensor) -> Tensor:
    """Per-class score map sum_q p(c | q) * sigmoid(mask_q).

    Args:
        mask_cls: [Q, K+1] class logits.
        mask_pred: [Q, H, W] mask logits.

    Returns:
        [K, H, W] semantic scores (the no-object column is dropped after the softmax).
    """
    return _semantic_from_probs(mask_cls, mask_pred.sigmoid())


def _panoptic_queries(
    mask_cls: Tensor, num_classes: int, object_mask_threshold: float
) -> Tuple[Tensor, Tensor, Tensor]:
    """Kept queries: best class (softmax over K+1) not no-object and score above the threshold.
    Returns their indices [Qk] (ascending), scores [Qk] and classes [Qk]."""
    scores, labels = F.softmax(mask_cls, dim=-1).max(-1)  # [Q], [Q]
    keep = labels.ne(num_classes) & (scores > object_mask_threshold)
    index = keep.nonzero().squeeze(1)  # [Qk]
    return index, scores[index], labels[index]


def _panoptic_from_probs(
    mask_probs: Tensor,
    scores: Tensor,
    classes: Tensor,
    overlap_threshold: float,
    thing_ids: Collection[int],
) -> Tuple[Tensor, List[SegmentInfo]]:
    """Panoptic rule on the kept queries' probabilities ``mask_probs`` [Qk, H, W] (overwritten:
    the caller passes a tensor of its own); ``scores``, ``classes``: [Qk]."""
    height, width = mask_probs.shape[-2:]
    panoptic_seg = torch.zeros((height, width), dtype=torch.int32, device=mask_probs.device)
    num_kept = mask_probs.shape[0]
    if num_kept == 0:
        return panoptic_seg, []
    own = mask_probs >= 0.5  # [Qk, H, W], each query's own mask
    # The assigned query of each pixel: argmax (first maximum) as max(0).indices, which is faster.
    mask_ids = mask_probs.mul_(scores.view(-1, 1, 1)).max(0).indices  # [H, W]
    own_assigned = own.gather(0, mask_ids[None])[0]  # [H, W]: assigned and own
    # Per query: assigned area, own area, and the area of both (bincount: no host reads).
    assigned_area = torch.bincount(mask_ids.flatten(), minlength=num_kept)  # [Qk]
    own_area = own.flatten(1).sum(1, dtype=torch.int32)  # [Qk] (int32: 2x faster than int64)
    both = torch.where(own_assigned, mask_ids, num_kept).flatten()  # [H*W], Qk = not both
    both_area = torch.bincount(both, minlength=num_kept + 1)[:num_kept]  # [Qk]
    stats = torch.stack([classes, assigned_area, own_area, both_area]).tolist()  # one read

    # The official sequential rule, on host scalars: segment id of every kept query (0 = none).
    thing_set = set(thing_ids)
    stuff_segment_ids: Dict[int, int] = {}
    segment_of_query = [0] * num_kept
    segments_info: List[SegmentInfo] = []
    for k, (pred_class, mask_area, original_area, segment_area) in enumerate(zip(*stats)):
        if mask_area == 0 or original_area == 0 or segment_area == 0:
            continue
        if mask_area / original_area < overlap_threshold:
            continue
        isthing = pred_class in thing_set
        if not isthing and pred_class in stuff_segment_ids:  # merge stuff of one class
            segment_of_query[k] = stuff_segment_ids[pred_class]
            continue
        segment_id = len(segments_info) + 1
        if not isthing:
            stuff_segment_ids[pred_class] = segment_id
        segment_of_query[k] = segment_id
        segments_info.append({"id": segment_id, "isthing": isthing, "category_id": pred_class})
    lookup = torch.tensor(segment_of_query, dtype=torch.int32).to(
        mask_ids.device, non_blocking=True
    )
    panoptic_seg = torch.where(own_assigned, lookup[mask_ids], panoptic_seg)  # [H, W]
    return panoptic_seg, segments_info


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
    index, scores, classes = _panoptic_queries(mask_cls, num_classes, object_mask_threshold)
    probs = mask_pred.index_select(0, index).sigmoid_()  # [Qk, H, W]
    return _panoptic_from_probs(probs, scores, classes, overlap_threshold, thing_ids)


def _instance_candidates(
    mask_cls: Tensor,
    num_classes: int,
    test_topk_per_image: int,
    thing_ids: Optional[Collection[int]],
    panoptic_on: bool,
) -> Tuple[Tensor, Tensor, Tensor]:
    """Top-k (query, class) pairs (``topk(sorted=False)`` order), thing classes only when
    ``panoptic_on``. Returns class probabilities [N], classes [N] and query indices [N]."""
    num_queries = mask_cls.shape[0]
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
    return scores_per_image, labels_per_image, query_indices


def _instances_from_masks(
    image_size: Tuple[int, int],
    scores: Tensor,
    labels: Tensor,
    inverse: Tensor,
    binary_masks: Tensor,
    mask_probs: Tensor,
) -> Instances:
    """Instances of the candidates; candidate n uses the masks of row ``inverse[n]`` of
    ``binary_masks`` [U, H, W] (logit > 0) and ``mask_probs`` [U, H, W]."""
    masks = binary_masks.to(mask_probs.dtype)  # [U, H, W] 0/1
    # Per unique query: area and sum of the probabilities inside the mask (a row-wise dot product).
    areas = masks.flatten(1).sum(1)  # [U], exact below 2**24 pixels (as the official sum)
    inside = torch.einsum("ux,ux->u", mask_probs.flatten(1), masks.flatten(1))  # [U]
    mask_scores = inside / (areas + 1e-6)  # [U]
    result = Instances(image_size)
    result.pred_masks = masks.index_select(0, inverse)  # [N, H, W]
    result.pred_boxes = Boxes(masks_to_boxes(binary_masks).index_select(0, inverse))
    result.scores = scores * mask_scores[inverse]
    result.pred_classes = labels
    return result


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
    scores, labels, queries = _instance_candidates(
        mask_cls, num_classes, test_topk_per_image, thing_ids, panoptic_on
    )
    unique_queries, inverse = torch.unique(queries, return_inverse=True)  # [U], [N]
    logits = mask_pred.index_select(0, unique_queries)  # [U, H, W]
    binary_masks = logits > 0
    return _instances_from_masks(
        tuple(mask_pred.shape[-2:]), scores, labels, inverse, binary_masks, logits.sigmoid_()
    )


def _rows_of(rows: Optional[Tensor], queries: Tensor) -> Tensor:
    """Positions of ``queries`` in the ascending query indices ``rows`` (all queries if None)."""
    return queries if rows is None else torch.searchsorted(rows, queries)


def mask_classification_inference(
    mask_cls: Tensor,
    mask_logits: Tensor,
    *,
    padded_size: Tuple[int, int],
    image_size: Tuple[int, int],
    output_size: Tuple[int, int],
    semantic_on: bool,
    panoptic_on: bool,
    instance_on: bool,
    num_classes: int,
    object_mask_threshold: float,
    overlap_threshold: float,
    thing_ids: Optional[Collection[int]],
    test_topk_per_image: int,
) -> Dict[str, Any]:
    """The results of :func:`semantic_inference`, :func:`panoptic_inference` and
    :func:`instance_inference` on ``resize_mask_logits(mask_logits, ...)``, computed together.

    Args:
        mask_cls: [Q, K+1] class logits.
        mask_logits: [Q, h, w] mask logits at the network's resolution.
        padded_size, image_size, output_size: as in :func:`resize_mask_logits`.
        semantic_on, panoptic_on, instance_on: which results to return (``sem_seg``,
            ``panoptic_seg``, ``instances``).
        Other arguments: as in the three functions (``thing_ids`` is needed for panoptic).
    Returns:
        dict with the enabled results, at ``output_size``.
    """
    kept = candidates = None
    needed = []  # queries whose full-resolution mask some result needs
    if panoptic_on:
        kept = _panoptic_queries(mask_cls, num_classes, object_mask_threshold)
        needed.append(kept[0])
    if instance_on:
        candidates = _instance_candidates(
            mask_cls, num_classes, test_topk_per_image, thing_ids, panoptic_on
        )
        unique_queries, inverse = torch.unique(candidates[2], return_inverse=True)  # [U], [N]
        needed.append(unique_queries)
    rows = None if semantic_on else torch.unique(torch.cat(needed))  # [R], ascending
    with record_function("mask2former::postprocess.resize"):
        masks = resize_mask_logits(
            mask_logits if rows is None else mask_logits[rows], padded_size, image_size, output_size
        )  # [Q or R, H, W]
        if instance_on:  # compare, then gather the bool rows: a quarter of the bytes to copy
            binary_masks = (masks > 0).index_select(0, _rows_of(rows, unique_queries))  # [U, H, W]
        probs = masks.sigmoid_()  # in place: the logits are not needed any more

    result: Dict[str, Any] = {}
    if semantic_on:
        with record_function("mask2former::postprocess.semantic"):
            result["sem_seg"] = _semantic_from_probs(mask_cls, probs)
    if kept is not None:
        index, scores, classes = kept
        with record_function("mask2former::postprocess.panoptic"):
            result["panoptic_seg"] = _panoptic_from_probs(
                probs.index_select(0, _rows_of(rows, index)),
                scores,
                classes,
                overlap_threshold,
                thing_ids,
            )
    if candidates is not None:
        with record_function("mask2former::postprocess.instance"):
            result["instances"] = _instances_from_masks(
                tuple(probs.shape[-2:]),
                candidates[0],
                candidates[1],
                inverse,
                binary_masks,
                probs.index_select(0, _rows_of(rows, unique_queries)),
            )
    return result
