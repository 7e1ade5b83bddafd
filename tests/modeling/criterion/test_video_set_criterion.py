"""VideoSetCriterion and the Hungarian matcher on clips: a one-frame clip is an image, every frame
of a matched pair is supervised, one assignment per clip."""

from typing import Dict, List, Tuple

import pytest
import torch
from torch import Tensor
from torch.nn import functional as F

from mask2former.modeling.criterion import SetCriterion, VideoSetCriterion
from mask2former.modeling.matcher import HungarianMatcher

NUM_CLASSES = 5
WEIGHTS = {"loss_ce": 2.0, "loss_mask": 5.0, "loss_dice": 5.0}


def _criterion(cls=VideoSetCriterion) -> SetCriterion:
    matcher = HungarianMatcher(cost_class=2.0, cost_mask=5.0, cost_dice=5.0, num_points=64)
    return cls(
        num_classes=NUM_CLASSES,
        matcher=matcher,
        weight_dict=WEIGHTS,
        eos_coef=0.1,
        losses=["labels", "masks"],
        num_points=64,
        oversample_ratio=3.0,
        importance_sample_ratio=0.75,
    )


def _clip_batch(frames: int, seed: int = 0) -> Tuple[Dict[str, Tensor], List[Dict[str, Tensor]]]:
    """2 clips, 6 queries, 16x16 predictions, 32x32 targets of 8x8 blocks (3 and 2 instances)."""
    generator = torch.Generator().manual_seed(seed)
    outputs = {
        "pred_logits": torch.randn(2, 6, NUM_CLASSES + 1, generator=generator),
        "pred_masks": torch.randn(2, 6, frames, 16, 16, generator=generator) * 3,
    }
    targets = []
    for labels in ([0, 3, 4], [1, 1]):
        blocks = (torch.rand(len(labels), frames, 4, 4, generator=generator) > 0.6).float()
        masks = F.interpolate(blocks, size=(32, 32))  # [M, T, 32, 32], 8x8 blocks
        targets.append({"labels": torch.tensor(labels), "masks": masks})
    return outputs, targets


def test_one_frame_clip_is_an_image() -> None:
    outputs, targets = _clip_batch(frames=1)
    image_outputs = {**outputs, "pred_masks": outputs["pred_masks"][:, :, 0]}
    image_targets = [{**t, "masks": t["masks"][:, 0]} for t in targets]
    torch.manual_seed(0)
    video = _criterion()(outputs, targets)
    torch.manual_seed(0)
    image = _criterion(SetCriterion)(image_outputs, image_targets)
    assert video.keys() == image.keys() == WEIGHTS.keys()
    for key in video:
        assert torch.equal(video[key], image[key]), key


def test_matcher_assigns_each_instance_its_query_over_all_frames() -> None:
    """Each target is predicted by one query on all 3 frames (confidently, also where it is
    absent); the matcher finds these queries."""
    outputs, targets = _clip_batch(frames=3)
    targets[0]["masks"][1, 2] = 0  # instance 1 is absent from the last frame
    chosen = [torch.tensor([4, 0, 2]), torch.tensor([5, 1])]
    for b, (target, queries) in enumerate(zip(targets, chosen)):
        small = F.interpolate(target["masks"], size=(16, 16))  # [M, T, 16, 16]
        outputs["pred_masks"][b, queries] = (small * 2 - 1) * 20
    indices = HungarianMatcher(cost_class=2.0, cost_mask=5.0, cost_dice=5.0, num_points=256)(
        outputs, targets
    )
    for (query_idx, target_idx), queries in zip(indices, chosen):
        assert torch.equal(query_idx[target_idx.argsort()], queries)


def test_every_frame_of_a_matched_pair_is_supervised() -> None:
    """A prediction that is right on frames 0-1 and unsure on frame 2 has a larger mask loss than
    one right on every frame, and every frame's logits receive a gradient."""
    outputs, targets = _clip_batch(frames=3)
    for b, target in enumerate(targets):
        small = F.interpolate(target["masks"], size=(16, 16))
        outputs["pred_masks"][b, : len(target["labels"])] = (small * 2 - 1) * 10
        outputs["pred_logits"][b, : len(target["labels"])] = 0
        outputs["pred_logits"][b, torch.arange(len(target["labels"])), target["labels"]] = 10
    wrong = {**outputs, "pred_masks": outputs["pred_masks"].clone()}
    wrong["pred_masks"][:, :, 2] = 0.0
    torch.manual_seed(0)
    right = _criterion()(outputs, targets)
    torch.manual_seed(0)
    pred_masks = wrong["pred_masks"].requires_grad_()
    flipped = _criterion()(wrong, targets)
    assert flipped["loss_mask"] > right["loss_mask"] + 0.2
    assert flipped["loss_dice"] > right["loss_dice"] + 0.1
    (flipped["loss_mask"] + flipped["loss_dice"]).backward()
    grad_per_frame = pred_masks.grad.abs().sum(dim=(0, 1, 3, 4))  # [T]
    assert (grad_per_frame > 0).all()


def test_rejects_images_and_clips_of_another_length() -> None:
    outputs, targets = _clip_batch(frames=2)
    image_outputs = {**outputs, "pred_masks": outputs["pred_masks"][:, :, 0]}
    with pytest.raises(ValueError, match=r"pred_masks \[B, Q, T, h, w\]"):
        _criterion()(image_outputs, targets)
    targets[1]["masks"] = targets[1]["masks"][:, :1]
    with pytest.raises(ValueError, match=r"target 1 has masks of shape \(2, 1, 32, 32\)"):
        _criterion()(outputs, targets)
