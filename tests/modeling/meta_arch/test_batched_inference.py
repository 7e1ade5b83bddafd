"""Batched inference gives each image the result of its single-image run (official fixtures'
weights, images of one size). The batched convolutions may round differently from single-image
ones (oneDNN picks its blocking by batch size), so scores agree up to float rounding and the
discrete results (panoptic segments, instance classes) are equal, with the pixel tolerances of
the parity tests for thresholded values that sit at a tie (random weights make many)."""

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

import mask2former.modeling  # noqa: F401  (registers the model)
from tests.helpers.official_fixtures import FIXTURES, OFFICIAL_FIXTURES, official_cfg


@pytest.mark.parametrize("fixture", OFFICIAL_FIXTURES)
def test_batch_of_three_matches_single_image_runs(fixture: str) -> None:
    fixture_dir = FIXTURES / fixture
    model = build_model(official_cfg(fixture_dir)).eval()
    DetectionCheckpointer(model).load(str(fixture_dir / "state_dict.pth"))
    image = torch.load(fixture_dir / "input.pth")["image_uint8"]  # [3, 120, 150]
    images = [image, image.flip(-1), image.flip(-2)]
    # the last one asks for another output size: resized per image after the batched network
    sizes = [(120, 150), (120, 150), (60, 75)]
    inputs = [{"image": x, "height": h, "width": w} for x, (h, w) in zip(images, sizes)]
    with torch.no_grad():
        batched = model(inputs)
        single = [model([x])[0] for x in inputs]
    assert len(batched) == 3
    for b, s, (h, w) in zip(batched, single, sizes):
        assert b["sem_seg"].shape[-2:] == (h, w)
        torch.testing.assert_close(b["sem_seg"], s["sem_seg"], rtol=0, atol=1e-5)
        assert (b["sem_seg"].argmax(0) != s["sem_seg"].argmax(0)).sum() <= 5
        assert (b["panoptic_seg"][0] != s["panoptic_seg"][0]).sum() <= 5
        assert b["panoptic_seg"][1] == s["panoptic_seg"][1]
        assert torch.equal(b["instances"].pred_classes, s["instances"].pred_classes)
        assert (b["instances"].pred_masks != s["instances"].pred_masks).sum() <= 50
        torch.testing.assert_close(b["instances"].scores, s["instances"].scores, rtol=0, atol=1e-5)
