"""Semantic / panoptic / instance inference, against the official outputs and on small cases."""

import json

import pytest
import torch
from detectron2.modeling.postprocessing import sem_seg_postprocess
from detectron2.structures import BitMasks
from torch.nn import functional as F

from mask2former.modeling.postprocessing import (
    instance_inference,
    masks_to_boxes,
    panoptic_inference,
    semantic_inference,
)
from tests.helpers.official_fixtures import assert_matches_official

FIXTURE_NAMES = ["official_tiny", "official_tiny_swin"]


def _fixture_logits(fixture_dir):
    """(mask_cls [Q, K+1], mask_pred [Q, 120, 150]) as README step 1 prepares them."""
    raw = torch.load(fixture_dir / "raw_outputs.pth")
    mask_pred = F.interpolate(
        raw["pred_masks"], size=(128, 160), mode="bilinear", align_corners=False
    )[0]  # [Q, 128, 160]
    mask_pred = sem_seg_postprocess(mask_pred, (120, 150), 120, 150)  # [Q, 120, 150]
    return raw["pred_logits"][0], mask_pred


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_postprocessing_parity_with_official(fixtures_dir, name: str) -> None:
    fixture_dir = fixtures_dir / name
    info = json.loads((fixture_dir / "postprocess.json").read_text())
    mask_cls, mask_pred = _fixture_logits(fixture_dir)
    num_classes = mask_cls.shape[-1] - 1
    sem_seg = semantic_inference(mask_cls, mask_pred)
    panoptic = panoptic_inference(
        mask_cls,
        mask_pred,
        num_classes=num_classes,
        object_mask_threshold=info["object_mask_threshold"],
        overlap_threshold=info["overlap_threshold"],
        thing_ids=info["thing_contiguous_ids"],
    )
    instances = instance_inference(
        mask_cls,
        mask_pred,
        num_classes=num_classes,
        test_topk_per_image=info["test_topk_per_image"],
        thing_ids=info["thing_contiguous_ids"],
        panoptic_on=True,
    )
    assert_matches_official(fixture_dir, sem_seg, panoptic, instances)


def test_masks_to_boxes_matches_detectron2_and_handles_empty_masks() -> None:
    masks = torch.rand(6, 9, 11) > 0.8
    masks[2] = False
    masks[3] = False
    masks[3, 4, 7] = True  # a single pixel -> box (7, 4, 8, 5)
    boxes = masks_to_boxes(masks)
    torch.testing.assert_close(boxes, BitMasks(masks).get_bounding_boxes().tensor)
    assert boxes[2].abs().sum() == 0
    assert boxes[3].tolist() == [7.0, 4.0, 8.0, 5.0]


def _logits_for(classes, num_classes: int, confidence: float = 8.0) -> torch.Tensor:
    logits = torch.zeros(len(classes), num_classes + 1)
    for q, c in enumerate(classes):
        logits[q, c] = confidence
    return logits


def test_panoptic_merges_stuff_and_numbers_segments_from_one() -> None:
    num_classes = 4  # 0, 1 things; 2, 3 stuff
    mask_pred = torch.full((5, 6, 8), -10.0)
    mask_pred[0, :3, :4] = 10  # thing 0
    mask_pred[1, 3:, :4] = 10  # stuff 2
    mask_pred[2, :, 4:] = 10  # stuff 2 again -> merged into the same segment
    mask_pred[3, 3:, :4] = 10  # thing 1 hidden behind query 1 (lower score) -> overlap test fails
    mask_pred[4] = 10  # no-object query: dropped
    mask_cls = _logits_for([0, 2, 2, 1, 4], num_classes)
    mask_cls[3, 1] = 4.0  # less confident than query 1
    panoptic_seg, segments = panoptic_inference(
        mask_cls,
        mask_pred,
        num_classes=num_classes,
        object_mask_threshold=0.5,
        overlap_threshold=0.8,
        thing_ids=[0, 1],
    )
    assert segments == [
        {"id": 1, "isthing": True, "category_id": 0},
        {"id": 2, "isthing": False, "category_id": 2},
    ]
    assert (panoptic_seg[:3, :4] == 1).all()
    assert (panoptic_seg[3:, :4] == 2).all() and (panoptic_seg[:, 4:] == 2).all()


def test_panoptic_without_confident_queries_is_void() -> None:
    mask_cls = _logits_for([3, 3], num_classes=3)  # all no-object
    panoptic_seg, segments = panoptic_inference(
        mask_cls,
        torch.randn(2, 4, 4),
        num_classes=3,
        object_mask_threshold=0.8,
        overlap_threshold=0.8,
        thing_ids=[0],
    )
    assert segments == [] and (panoptic_seg == 0).all()


def test_semantic_inference_is_probability_weighted_mask_sum() -> None:
    mask_cls = torch.randn(3, 5)
    mask_pred = torch.randn(3, 4, 6)
    sem_seg = semantic_inference(mask_cls, mask_pred)
    probs = mask_cls.softmax(-1)[:, :-1]
    expected = (probs[:, :, None, None] * mask_pred.sigmoid()[:, None]).sum(0)
    torch.testing.assert_close(sem_seg, expected)


def test_instance_inference_scores_and_thing_filter() -> None:
    num_classes = 3
    mask_cls = _logits_for([0, 2], num_classes)
    mask_pred = torch.full((2, 5, 5), -5.0)
    mask_pred[0, 1:3, 1:4] = 5.0
    mask_pred[1, 0, 0] = 5.0
    all_classes = instance_inference(
        mask_cls,
        mask_pred,
        num_classes=num_classes,
        test_topk_per_image=100,  # more than Q * K candidates
        thing_ids=None,
        panoptic_on=False,
    )
    assert len(all_classes) == 6
    things = instance_inference(
        mask_cls,
        mask_pred,
        num_classes=num_classes,
        test_topk_per_image=2,
        thing_ids=[0, 1],
        panoptic_on=True,
    )
    assert things.pred_classes.tolist() == [0]
    best = things.pred_boxes.tensor[0].tolist()
    assert best == [1.0, 1.0, 4.0, 3.0]
    class_prob = mask_cls.softmax(-1)[0, 0]
    mask_score = torch.sigmoid(torch.tensor(5.0))
    torch.testing.assert_close(things.scores[0], class_prob * mask_score)
    with pytest.raises(ValueError, match="thing_ids"):
        instance_inference(
            mask_cls,
            mask_pred,
            num_classes=num_classes,
            test_topk_per_image=2,
            thing_ids=None,
            panoptic_on=True,
        )
