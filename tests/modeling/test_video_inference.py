"""The video inference helpers: top-k selection, padding, mask upsampling, window assembly."""

import pytest
import torch
from detectron2.structures import ImageList
from torch.nn import functional as F

from mask2former.modeling.video_inference import (
    masks_at_output_size,
    pad_frames,
    padded_size,
    top_predictions,
    video_result,
    windowed_masks,
)


def test_top_predictions_are_the_best_query_class_pairs() -> None:
    logits = torch.randn(7, 5)  # 7 queries, 4 classes + no object
    scores, labels, queries = top_predictions(logits, topk=10)
    probs = logits.softmax(-1)[:, :-1]
    assert scores.tolist() == sorted(scores.tolist(), reverse=True)
    torch.testing.assert_close(scores, probs[queries, labels])
    assert set(zip(queries.tolist(), labels.tolist())) == {
        (i // 4, i % 4) for i in probs.flatten().topk(10).indices.tolist()
    }
    assert len(top_predictions(logits[:2], topk=10)[0]) == 8  # at most Q*K pairs


@pytest.mark.parametrize("divisibility", [0, 32])
def test_padding_as_imagelist(divisibility: int) -> None:
    frames = [torch.randn(3, 50, 70), torch.randn(3, 45, 72)]
    expected = ImageList.from_tensors(frames, divisibility).tensor
    size = padded_size([tuple(f.shape[-2:]) for f in frames], divisibility)
    assert size == tuple(expected.shape[-2:]) == ((64, 96) if divisibility else (50, 72))
    assert torch.equal(pad_frames(frames, size), expected)


def test_masks_of_chosen_queries_equal_the_official_order_of_operations() -> None:
    """Official: upsample all queries, then select, crop and resize; ours selects first."""
    logits = torch.randn(6, 3, 8, 10) * 3  # [Q, T, H/4, W/4] of a 32x40 padded input
    queries = torch.tensor([4, 1, 1])
    official = F.interpolate(logits, size=(32, 40), mode="bilinear", align_corners=False)
    official = official[queries][:, :, :30, :37]
    official = F.interpolate(official, size=(45, 50), mode="bilinear", align_corners=False) > 0
    ours = masks_at_output_size(logits[queries], (32, 40), (30, 37), (45, 50))
    assert ours.dtype == torch.bool and torch.equal(ours, official)


@pytest.mark.parametrize("window", [1, 2, 5, 9])
def test_windowed_masks_equal_the_whole_clip(window: int) -> None:
    logits = torch.randn(3, 5, 8, 10)  # [k, T, h, w]

    def to_output(x: torch.Tensor) -> torch.Tensor:
        return masks_at_output_size(x, (32, 40), (30, 37), (45, 50))

    windows = []
    masks = windowed_masks(lambda s: windows.append(s) or logits[:, s], 5, window, to_output)
    assert torch.equal(masks, to_output(logits))
    assert all(s.stop - s.start <= window for s in windows)
    assert len(windows) == -(-5 // window)


def test_video_result_is_the_official_dict() -> None:
    masks = torch.rand(2, 3, 4, 5) > 0.5
    result = video_result(torch.tensor([0.9, 0.5]), torch.tensor([3, 0]), masks, (4, 5))
    assert result["image_size"] == (4, 5)
    assert result["pred_scores"] == pytest.approx([0.9, 0.5])
    assert result["pred_labels"] == [3, 0]
    assert len(result["pred_masks"]) == 2 and torch.equal(result["pred_masks"][1], masks[1])
