"""VideoMaskFormer on the tiny fixture config (random weights): criterion choice, targets, training,
inference sizes and errors."""

from typing import Any, Dict, List

import pytest
import torch
from detectron2.config import CfgNode
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, ImageList, Instances
from torch import Tensor, nn

from mask2former.modeling.criterion import CRITERION_REGISTRY, VideoSetCriterion
from mask2former.modeling.meta_arch import VideoMaskFormer, is_video_meta_architecture
from tests.helpers.official_fixtures import official_video_cfg

HEIGHT, WIDTH = 60, 80


class ClipMaskMean(nn.Module):
    """A user's clip loss, selected by MODEL.MASK_FORMER.CRITERION_NAME."""

    def __init__(self, cfg: CfgNode) -> None:
        super().__init__()
        self.weight_dict = {"loss_clip_mean": 1.0}

    def forward(self, outputs: Dict[str, Any], targets: List[Dict[str, Tensor]]) -> Dict:
        return {"loss_clip_mean": outputs["pred_masks"].sigmoid().mean()}


if ClipMaskMean.__name__ not in CRITERION_REGISTRY:
    CRITERION_REGISTRY.register(ClipMaskMean)


def tiny_cfg(*opts: Any) -> CfgNode:
    cfg = official_video_cfg()
    cfg.merge_from_list(["MODEL.MASK_FORMER.TRAIN_NUM_POINTS", 256, *opts])
    return cfg


@pytest.fixture(scope="module")
def model() -> VideoMaskFormer:
    torch.manual_seed(0)
    return build_model(tiny_cfg())


def _frames(count: int, seed: int = 0, size=(HEIGHT, WIDTH)) -> List[Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return list(torch.randint(0, 256, (count, 3, *size), generator=generator, dtype=torch.uint8))


def _clip_instances(ids: List[List[int]], classes: List[int], bitmasks: bool = False):
    """One Instances per frame; ``ids[t][n]`` is track n's id in frame t (-1: absent)."""
    frames = []
    for t, frame_ids in enumerate(ids):
        masks = torch.zeros(len(classes), HEIGHT, WIDTH, dtype=torch.bool)
        for n, track in enumerate(frame_ids):
            if track != -1:
                masks[n, 10 * n : 10 * n + 20, 5 * t + 10 * n : 5 * t + 10 * n + 30] = True
        instances = Instances((HEIGHT, WIDTH))
        instances.gt_ids = torch.tensor(frame_ids, dtype=torch.int64)
        instances.gt_classes = torch.tensor(classes, dtype=torch.int64)
        instances.gt_masks = BitMasks(masks) if bitmasks else masks
        frames.append(instances)
    return frames


def test_official_names_and_video_criterion(model: VideoMaskFormer) -> None:
    assert type(model).__name__ == "VideoMaskFormer"
    assert is_video_meta_architecture("VideoMaskFormer")
    assert not is_video_meta_architecture("MaskFormer")
    assert not is_video_meta_architecture("NotRegistered")
    # The config names the image default; the video model uses the video criterion.
    assert tiny_cfg().MODEL.MASK_FORMER.CRITERION_NAME == "SetCriterion"
    assert type(model.criterion) is VideoSetCriterion
    assert len(model.criterion.weight_dict) == 3 * 4
    assert (model.num_frames, model.size_divisibility, model.test_topk_per_video) == (2, 32, 10)


def test_a_registered_criterion_name_is_kept() -> None:
    model = build_model(tiny_cfg("MODEL.MASK_FORMER.CRITERION_NAME", "ClipMaskMean"))
    assert isinstance(model.criterion, ClipMaskMean)
    frames = _frames(2)
    losses = model([{"image": frames, "instances": _clip_instances([[1], [1]], [3])}])
    assert set(losses) == {"loss_clip_mean"}


def test_prepare_targets_keeps_tracks_seen_in_a_frame(model: VideoMaskFormer) -> None:
    # Track 7 is absent from frame 0 (official mappers give it the dummy class 40 there), track 9
    # from every frame (dropped); bitmasks as the official mapper makes them.
    instances = _clip_instances([[3, -1, -1], [3, 7, -1]], [2, 5, 1], bitmasks=True)
    instances[0].gt_classes = torch.tensor([2, 40, 1])
    frames = [torch.zeros(3, HEIGHT, WIDTH), torch.zeros(3, HEIGHT, WIDTH)]
    images = ImageList.from_tensors(frames, 32)  # padded to 64 x 96
    [target] = model.prepare_targets([{"image": frames, "instances": instances}], images)
    assert target["labels"].tolist() == [2, 5]
    assert target["ids"].tolist() == [[3, 3], [-1, 7]]
    masks = target["masks"]
    assert masks.shape == (2, 2, 64, 96) and masks.dtype == torch.float32
    assert masks[:, :, HEIGHT:].sum() == 0 and masks[:, :, :, WIDTH:].sum() == 0
    assert masks[1, 0].sum() == 0 and masks[1, 1].sum() == 20 * 30
    expected = instances[1].gt_masks.tensor[0].float()
    torch.testing.assert_close(masks[0, 1, :HEIGHT, :WIDTH], expected)


def test_training_gives_finite_losses_and_gradients_everywhere() -> None:
    torch.manual_seed(0)
    model = build_model(tiny_cfg()).train()
    batch = [
        {"image": _frames(2, seed=1), "instances": _clip_instances([[1, 2], [1, -1]], [0, 7])},
        {"image": _frames(2, seed=2), "instances": _clip_instances([[5], [5]], [39])},
    ]
    losses = model(batch)
    assert set(losses) == set(model.criterion.weight_dict)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []


def test_training_clips_must_have_num_frames(model: VideoMaskFormer) -> None:
    model.train()
    try:
        with pytest.raises(ValueError, match="has 3 frames, expected num_frames=2"):
            model([{"image": _frames(3), "instances": _clip_instances([[1]] * 3, [0])}])
        with pytest.raises(ValueError, match="no 'instances'"):
            model([{"image": _frames(2)}])
    finally:
        model.eval()


@pytest.mark.parametrize("window", [False, True])
def test_inference_result_at_the_requested_size(model: VideoMaskFormer, window: bool) -> None:
    model.eval()
    model.window_inference, model.window_size = window, 2
    try:
        with torch.no_grad():
            resized = model([{"image": _frames(5), "height": 30, "width": 41}])
            native = model([{"image": _frames(5)}])
    finally:
        model.window_inference = False
    assert tuple(resized["image_size"]) == (30, 41) and tuple(native["image_size"]) == (60, 80)
    assert [m.shape for m in resized["pred_masks"]] == [(5, 30, 41)] * 10
    assert [m.shape for m in native["pred_masks"]] == [(5, HEIGHT, WIDTH)] * 10
    assert resized["pred_labels"] == native["pred_labels"]
    assert resized["pred_scores"] == sorted(resized["pred_scores"], reverse=True)
    assert all(isinstance(label, int) and 0 <= label < 40 for label in resized["pred_labels"])


def test_inference_takes_one_video(model: VideoMaskFormer) -> None:
    model.eval()
    with pytest.raises(ValueError, match="one video per call, got 2"):
        model([{"image": _frames(2)}, {"image": _frames(2)}])
    with pytest.raises(ValueError, match="has no frames"):
        model([{"image": [], "video_id": 3}])


def test_window_inference_needs_a_clip_decoder() -> None:
    cfg = tiny_cfg(
        "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME",
        "MultiScaleMaskedTransformerDecoder",
        "MODEL.MASK_FORMER.TEST.WINDOW_INFERENCE",
        True,
    )
    with pytest.raises(ValueError, match="forward_queries"):
        build_model(cfg)
