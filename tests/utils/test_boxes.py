"""mask2former.utils.boxes: the package's one mask-to-box implementation agrees with detectron2's
``BitMasks.get_bounding_boxes`` (random, empty, full and single-pixel masks) and with the COCO
``bbox`` of the annotation writers."""

import numpy as np
import pytest
import torch
from detectron2.structures import BitMasks

from mask2former.utils.boxes import mask_to_xywh, masks_to_boxes


def _random_masks(generator: torch.Generator, n: int, h: int, w: int) -> torch.Tensor:
    """[n, h, w] bool masks of varied density, with empty, full and single-pixel ones."""
    density = torch.rand(n, 1, 1, generator=generator)  # per-mask fill rate in [0, 1)
    masks = torch.rand(n, h, w, generator=generator) < density * 0.3
    masks[0] = False  # empty
    masks[1] = True  # full
    masks[2] = False
    masks[2, h - 1, w - 1] = True  # a single pixel in the last corner
    masks[3] = False
    masks[3, 0, :] = True  # a full first row
    return masks


@pytest.mark.parametrize("shape", [(7, 1, 1), (9, 5, 13), (12, 31, 17), (8, 64, 64)])
def test_masks_to_boxes_matches_detectron2(shape) -> None:
    generator = torch.Generator().manual_seed(sum(shape))
    for _ in range(5):
        masks = _random_masks(generator, *shape)
        expected = BitMasks(masks).get_bounding_boxes().tensor
        boxes = masks_to_boxes(masks)
        assert boxes.dtype == torch.float32 and boxes.shape == (shape[0], 4)
        torch.testing.assert_close(boxes, expected, rtol=0, atol=0)
        torch.testing.assert_close(masks_to_boxes(masks.to(torch.uint8)), expected)


def test_masks_to_boxes_empty_inputs() -> None:
    assert masks_to_boxes(torch.zeros(0, 5, 6, dtype=torch.bool)).shape == (0, 4)
    empty = masks_to_boxes(torch.zeros(3, 5, 6, dtype=torch.bool))
    assert torch.equal(empty, torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        masks_to_boxes(torch.zeros(5, 6, dtype=torch.bool))


def test_mask_to_xywh_is_the_same_box_in_coco_form() -> None:
    generator = torch.Generator().manual_seed(0)
    masks = _random_masks(generator, 16, 23, 29)[1:]  # COCO boxes exist for non-empty masks
    for mask, (x0, y0, x1, y1) in zip(masks, masks_to_boxes(masks).tolist()):
        bbox = mask_to_xywh(mask.numpy())
        assert bbox == [x0, y0, x1 - x0, y1 - y0]
        assert all(type(v) is int for v in bbox)  # json-serialisable
        ys, xs = np.nonzero(mask.numpy())
        assert bbox == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    with pytest.raises(ValueError, match="non-empty"):
        mask_to_xywh(np.zeros((4, 4), dtype=bool))
