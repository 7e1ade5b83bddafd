"""MaskFormer meta-architecture on the tiny R50 fixture config: training, inference, invariants."""

import pytest
import torch
from detectron2.config import CfgNode
from detectron2.data import Metadata
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Instances

import mask2former.modeling.backbone  # noqa: F401  (registers D2SwinTransformer)
import mask2former.modeling.heads  # noqa: F401  (registers MaskFormerHead)
from mask2former.config import validate_maskformer2_config
from mask2former.modeling.meta_arch import MaskFormer
from tests.helpers.official_fixtures import FIXTURES, official_cfg

FIXTURE = FIXTURES / "official_tiny"
THING_IDS = {i: i for i in range(80)}


def tiny_cfg(**overrides) -> CfgNode:
    cfg = official_cfg(FIXTURE)
    cfg.MODEL.MASK_FORMER.TRAIN_NUM_POINTS = 256  # keep the tests fast
    for key, value in overrides.items():
        node = cfg
        *parents, leaf = key.split(".")
        for name in parents:
            node = node[name]
        node[leaf] = value
    return cfg


@pytest.fixture(scope="module")
def model() -> MaskFormer:
    torch.manual_seed(0)
    model = build_model(tiny_cfg())
    model.metadata = Metadata(name="tiny", thing_dataset_id_to_contiguous_id=THING_IDS)
    return model


def _image(height: int, width: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, height, width), generator=generator).float()


def _instances(height: int, width: int, classes, as_bitmasks: bool = True) -> Instances:
    masks = torch.zeros(len(classes), height, width, dtype=torch.bool)
    for i in range(len(classes)):
        masks[i, 5 * i : 5 * i + 20, 10 * i : 10 * i + 25] = True
    instances = Instances((height, width))
    instances.gt_classes = torch.tensor(classes, dtype=torch.int64)
    instances.gt_masks = BitMasks(masks) if as_bitmasks else masks
    return instances


def test_build_registers_official_names(model: MaskFormer) -> None:
    assert type(model).__name__ == "MaskFormer"
    assert model.size_divisibility == 32
    # 3 losses for the final prediction and for each of the DEC_LAYERS - 1 aux predictions.
    assert len(model.criterion.weight_dict) == 3 * 4
    assert model.criterion.weight_dict["loss_ce_2"] == 2.0
    assert model.criterion.weight_dict["loss_dice_0"] == 5.0


def test_training_losses_are_weighted_criterion_losses(model: MaskFormer) -> None:
    inputs = [
        {"image": _image(60, 70, 0), "instances": _instances(60, 70, [1, 90])},
        {"image": _image(64, 96, 1), "instances": _instances(64, 96, [5], as_bitmasks=False)},
    ]
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        losses = model(inputs)
    # The same computation by hand: normalise, pad, run, targets padded to the batch size.
    images = [(x["image"] - model.pixel_mean) / model.pixel_std for x in inputs]
    padded = torch.zeros(2, 3, 64, 96)
    padded[0, :, :60, :70] = images[0]
    padded[1] = images[1]
    targets = []
    for x in inputs:
        gt_masks = x["instances"].gt_masks
        gt_masks = gt_masks.tensor if isinstance(gt_masks, BitMasks) else gt_masks
        masks = torch.zeros(len(gt_masks), 64, 96, dtype=torch.bool)
        masks[:, : gt_masks.shape[1], : gt_masks.shape[2]] = gt_masks
        targets.append({"labels": x["instances"].gt_classes, "masks": masks})
    torch.manual_seed(0)
    with torch.no_grad():
        outputs = model.sem_seg_head(model.backbone(padded))
        expected = model.criterion(outputs, targets)
    assert set(losses) == set(model.criterion.weight_dict)
    for key, value in losses.items():
        torch.testing.assert_close(value, expected[key] * model.criterion.weight_dict[key])


def test_every_parameter_gets_a_gradient(model: MaskFormer) -> None:
    model.train()
    model.zero_grad()
    inputs = [{"image": _image(64, 64, 2), "instances": _instances(64, 64, [3, 100])}]
    losses = model(inputs)
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.zero_grad()


def test_training_with_empty_targets(model: MaskFormer) -> None:
    model.train()
    model.zero_grad()
    inputs = [
        {"image": _image(64, 64, 3), "instances": _instances(64, 64, [])},
        {"image": _image(64, 64, 4), "instances": _instances(64, 64, [])},
    ]
    losses = model(inputs)
    assert set(losses) == set(model.criterion.weight_dict)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.sem_seg_head.predictor.class_embed.weight.grad.abs().sum() > 0
    model.zero_grad()


def test_training_without_instances_is_a_clear_error(model: MaskFormer) -> None:
    model.train()
    with pytest.raises(ValueError, match="instances"):
        model([{"image": _image(32, 32, 0)}])


def test_losses_not_in_weight_dict_are_dropped() -> None:
    torch.manual_seed(0)
    model = build_model(tiny_cfg(**{"MODEL.MASK_FORMER.DEEP_SUPERVISION": False}))
    model.train()
    with torch.no_grad():
        losses = model([{"image": _image(32, 32, 5), "instances": _instances(32, 32, [7])}])
    assert set(losses) == {"loss_ce", "loss_mask", "loss_dice"}


def test_inference_outputs_and_resizing(model: MaskFormer) -> None:
    model.eval()
    with torch.no_grad():
        [result] = model([{"image": _image(60, 70, 6), "height": 90, "width": 105}])
    assert result["sem_seg"].shape == (133, 90, 105)
    panoptic_seg, segments_info = result["panoptic_seg"]
    assert panoptic_seg.shape == (90, 105) and panoptic_seg.dtype == torch.int32
    assert {s["id"] for s in segments_info} == set(panoptic_seg.unique().tolist()) - {0}
    instances = result["instances"]
    assert instances.image_size == (90, 105)
    assert instances.pred_masks.shape[1:] == (90, 105)
    assert (instances.pred_classes < 80).all()  # panoptic on: things only
    assert len(instances.pred_boxes) == len(instances)


def test_batch_equals_one_by_one(model: MaskFormer) -> None:
    # Both images pad to 64x96, so each sees the same network input alone and in the batch.
    inputs = [
        {"image": _image(60, 70, 7), "height": 60, "width": 70},
        {"image": _image(64, 96, 8), "height": 32, "width": 48},
    ]
    model.eval()
    with torch.no_grad():
        batched = model(inputs)
        singles = [model([x])[0] for x in inputs]
    for b, s in zip(batched, singles):
        torch.testing.assert_close(b["sem_seg"], s["sem_seg"], rtol=1e-4, atol=1e-5)
        assert b["panoptic_seg"][1] == s["panoptic_seg"][1]
        assert (b["panoptic_seg"][0] != s["panoptic_seg"][0]).sum() <= 2
        torch.testing.assert_close(b["instances"].scores, s["instances"].scores)
        assert torch.equal(b["instances"].pred_classes, s["instances"].pred_classes)


def test_panoptic_needs_thing_ids_in_metadata(model: MaskFormer) -> None:
    model.eval()
    metadata = model.metadata
    model.metadata = Metadata(name="no_things")
    try:
        with pytest.raises(ValueError, match="no_things"), torch.no_grad():
            model([{"image": _image(32, 32, 9)}])
    finally:
        model.metadata = metadata


def test_building_the_model_does_not_validate_the_config() -> None:
    # The config is validated once, where it is built (mask2former.engine.build_config).
    cfg = tiny_cfg(**{"MODEL.MASK_FORMER.TEST.OVERLAP_THRESHOLD": 2.0})
    with pytest.raises(ValueError, match="OVERLAP_THRESHOLD"):
        validate_maskformer2_config(cfg)
    model = build_model(cfg)
    assert model.overlap_threshold == 2.0
