"""End-to-end parity with the official Video Mask2Former (``tests/fixtures/official_tiny_video``).

Builds the model from our copy of the official YouTube-VIS 2019 R50 recipe plus the fixture's
``config_overrides.yaml``, loads ``state_dict.pth`` through detectron2's checkpointer, and compares
with the official outputs (tolerances of the fixture's README): raw outputs (mask features, class
and mask logits of every decoder layer) within 1e-5 relative, the 10 predictions of the eval-mode
result dict (score, label, masks), and each train-mode loss within mean +- 3 std of ``loss.json``
(and equal to the official seed-0 value). Also: the memory-bounded (windowed) inference gives the
same predictions as the whole-video pass.
"""

import json
from typing import Dict

import pytest
import torch
from torch.nn import functional as F

import mask2former  # noqa: F401  (registers the model)
from mask2former.modeling import VideoMaskFormer
from mask2former.modeling.criterion import VideoSetCriterion
from mask2former.modeling.video_inference import top_predictions
from tests.helpers.official_fixtures import (
    VIDEO_FIXTURE,
    assert_losses_match,
    video_fixture_model,
    video_fixture_training_clip,
)

HEIGHT, WIDTH = 120, 150  # the clip's frames (inference.json image_size)


@pytest.fixture(scope="module")
def model() -> VideoMaskFormer:
    return video_fixture_model()


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    return torch.load(VIDEO_FIXTURE / "input.pth")["frames_uint8"]  # [3, 3, 120, 150]


@pytest.fixture(scope="module")
def whole_pass(model: VideoMaskFormer, frames: torch.Tensor) -> Dict:
    with torch.no_grad():
        return model([{"image": list(frames), "height": HEIGHT, "width": WIDTH}])


def test_official_weights_load_without_missing_or_unexpected_keys(model: VideoMaskFormer) -> None:
    official = torch.load(VIDEO_FIXTURE / "state_dict.pth")
    state = model.state_dict()
    assert set(state) == set(official)  # no missing and no unexpected key
    for key, value in official.items():
        assert torch.equal(state[key], value), key
    assert isinstance(model.criterion, VideoSetCriterion)


def test_raw_outputs_match(model: VideoMaskFormer) -> None:
    inputs = torch.load(VIDEO_FIXTURE / "input.pth")["images_normalized_padded"]  # [T, 3, H, W]
    raw = torch.load(VIDEO_FIXTURE / "raw_outputs.pth")
    # Our normalisation and padding give what the official backbone saw.
    frames = list(torch.load(VIDEO_FIXTURE / "input.pth")["frames_uint8"])
    torch.testing.assert_close(model.preprocess(frames).tensor, inputs, rtol=1e-6, atol=1e-6)
    with torch.no_grad():
        features = model.backbone(inputs)
        _, mask_features = model.sem_seg_head.predictor_inputs(features)
        outputs = model.sem_seg_head(features)
    ref = raw["pixel_decoder.mask_features"]
    assert (mask_features - ref).abs().max() <= 1e-5 * ref.abs().max()
    predictions = [("", outputs)] + [
        (f"aux_outputs.{i}.", o) for i, o in enumerate(outputs["aux_outputs"])
    ]
    assert len(predictions) == 4
    for prefix, prediction in predictions:
        for key in ("pred_logits", "pred_masks"):
            ref = raw[prefix + key]
            assert prediction[key].shape == ref.shape, prefix + key
            assert (prediction[key] - ref).abs().max() <= 1e-5 * ref.abs().max(), prefix + key


def test_video_result_matches_official(whole_pass: Dict) -> None:
    ref = torch.load(VIDEO_FIXTURE / "inference.pth")
    info = json.loads((VIDEO_FIXTURE / "inference.json").read_text())
    assert set(whole_pass) == {"image_size", "pred_scores", "pred_labels", "pred_masks"}
    assert tuple(whole_pass["image_size"]) == tuple(info["image_size"])
    # Ours are sorted by score, as the fixture's.
    assert whole_pass["pred_labels"] == ref["pred_labels"].tolist()
    torch.testing.assert_close(
        torch.tensor(whole_pass["pred_scores"]), ref["pred_scores"], rtol=1e-5, atol=1e-6
    )
    masks = torch.stack(whole_pass["pred_masks"])
    assert masks.dtype == torch.bool and masks.shape == (10, 3, HEIGHT, WIDTH)
    # The same masks, except where the official logit is at the threshold within float rounding
    # (raw outputs agree to ~1e-6 relative): on this clip at most one pixel, official logit 3.7e-6
    # of a largest 26.
    differ = masks != ref["pred_masks"]
    assert differ.sum() <= 5
    if differ.any():
        raw = torch.load(VIDEO_FIXTURE / "raw_outputs.pth")
        padded = tuple(torch.load(VIDEO_FIXTURE / "input.pth")["images_normalized_padded"].shape)
        logits = _output_logits(raw["pred_logits"][0], raw["pred_masks"][0], padded[-2:])
        assert logits[differ].abs().max() < 1e-5 * logits.abs().max()


def test_train_losses_match(model: VideoMaskFormer) -> None:
    reference = json.loads((VIDEO_FIXTURE / "loss.json").read_text())
    model.train()
    torch.manual_seed(0)
    try:
        with torch.no_grad():
            losses = model([video_fixture_training_clip()])
    finally:
        model.eval()
    # The matcher and the point sampling draw their random numbers in the official order.
    assert_losses_match(losses, reference, same_seed=True)


@pytest.mark.parametrize("window_size", [1, 2])
def test_window_inference_gives_the_whole_pass_predictions(
    model: VideoMaskFormer, frames: torch.Tensor, whole_pass: Dict, window_size: int
) -> None:
    """Windows bound the backbone, pixel decoder and mask upsampling; the decoder still attends to
    all frames. So the predictions are the same, up to float rounding of the per-window products:
    labels equal, scores within 1e-5, and a mask pixel may differ only where the whole-pass logit
    is ~0 (on this clip: one pixel, logit 3e-7)."""
    model.window_inference, model.window_size = True, window_size
    try:
        with torch.no_grad():
            windowed = model([{"image": list(frames), "height": HEIGHT, "width": WIDTH}])
    finally:
        model.window_inference = False
    assert tuple(windowed["image_size"]) == (HEIGHT, WIDTH)
    assert windowed["pred_labels"] == whole_pass["pred_labels"]
    torch.testing.assert_close(
        torch.tensor(windowed["pred_scores"]),
        torch.tensor(whole_pass["pred_scores"]),
        rtol=1e-5,
        atol=1e-7,
    )
    masks, whole = torch.stack(windowed["pred_masks"]), torch.stack(whole_pass["pred_masks"])
    assert masks.shape == whole.shape and masks.dtype == torch.bool
    differ = masks != whole
    assert differ.sum() <= 5
    if differ.any():
        logits = _whole_pass_output_logits(model)  # [10, T, HEIGHT, WIDTH]
        assert logits[differ].abs().max() < 1e-5 * logits.abs().max()


def _whole_pass_output_logits(model: VideoMaskFormer) -> torch.Tensor:
    """The logits the whole-pass masks threshold: [10, T, HEIGHT, WIDTH]."""
    inputs = torch.load(VIDEO_FIXTURE / "input.pth")["images_normalized_padded"]
    with torch.no_grad():
        outputs = model.sem_seg_head(model.backbone(inputs))
    return _output_logits(outputs["pred_logits"][0], outputs["pred_masks"][0], inputs.shape[-2:])


def _output_logits(pred_logits: torch.Tensor, pred_masks: torch.Tensor, padded) -> torch.Tensor:
    """The logits the video result thresholds: [10, T, HEIGHT, WIDTH], from a clip's raw
    ``pred_logits`` [Q, K+1] and ``pred_masks`` [Q, T, h, w] (frames padded to ``padded``)."""
    _, _, queries = top_predictions(pred_logits)
    logits = F.interpolate(pred_masks[queries], size=tuple(padded), mode="bilinear")
    return F.interpolate(logits[:, :, :HEIGHT, :WIDTH], size=(HEIGHT, WIDTH), mode="bilinear")
