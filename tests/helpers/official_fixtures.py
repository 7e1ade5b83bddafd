"""The official-implementation fixtures in ``tests/fixtures/official_tiny{,_swin,_video}``: their
configs and the comparison of post-processed results with the official ones."""

import json
from pathlib import Path
from typing import Dict

import pytest
import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.structures import BitMasks, Instances

from mask2former.config import add_maskformer2_config
from mask2former.video_config import add_maskformer2_video_config

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
OFFICIAL_FIXTURES = ("official_tiny", "official_tiny_swin")
VIDEO_FIXTURE = FIXTURES / "official_tiny_video"


def official_cfg(fixture_dir: Path) -> CfgNode:
    """The fixture's full official config (``config_full.yaml``) merged on our defaults."""
    cfg = get_cfg()
    add_maskformer2_config(cfg)
    cfg.merge_from_file(str(fixture_dir / "config_full.yaml"))
    return cfg


def official_video_cfg() -> CfgNode:
    """Our copy of the official video recipe the fixture was made from (YouTube-VIS 2019 R50,
    named in the first line of ``config_overrides.yaml``) with the fixture's overrides on top: the
    acceptance route of the video parity test. ``tests/test_video_config.py`` checks that this
    resolves to the official full dump ``config_full.yaml``."""
    overrides = VIDEO_FIXTURE / "config_overrides.yaml"
    recipe = overrides.read_text().splitlines()[0].split("base config ")[1].strip()
    cfg = get_cfg()
    add_maskformer2_video_config(cfg)
    cfg.merge_from_file(str(REPO / recipe))
    cfg.merge_from_file(str(overrides))
    return cfg


def video_fixture_model() -> torch.nn.Module:
    """The video model of :func:`official_video_cfg` with the fixture's ``state_dict.pth`` loaded
    through detectron2's checkpointer, in eval mode."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    import mask2former  # noqa: F401  (registers the model)

    model = build_model(official_video_cfg())
    DetectionCheckpointer(model).load(str(VIDEO_FIXTURE / "state_dict.pth"))
    return model.eval()


def video_fixture_training_clip() -> Dict:
    """The fixture's training input: frames 0-1 with the 3 tracked instances of
    ``loss_targets.pth`` (``gt_ids`` -1 where absent), as the clip mapper gives it."""
    frames = torch.load(VIDEO_FIXTURE / "input.pth")["frames_uint8"]  # [3, 3, H, W]
    gt = torch.load(VIDEO_FIXTURE / "loss_targets.pth")
    size = tuple(frames.shape[-2:])
    instances = [
        Instances(
            size,
            gt_classes=gt["gt_classes"][t],
            gt_ids=gt["gt_ids"][t],
            gt_masks=gt["gt_masks"][t],
        )
        for t in range(2)
    ]
    return {"image": list(frames[:2]), "instances": instances}


def assert_matches_official(
    fixture_dir: Path, sem_seg: torch.Tensor, panoptic, instances: Instances
) -> None:
    """Compare post-processed results with ``postprocess.pth/json`` within the README tolerances.

    Args:
        fixture_dir: the fixture folder.
        sem_seg: [K, H, W] semantic scores; panoptic: (segment ids [H, W] int32, segments_info);
        instances: the instance results.
    """
    ref = torch.load(fixture_dir / "postprocess.pth")
    info = json.loads((fixture_dir / "postprocess.json").read_text())

    assert sem_seg.shape == tuple(info["sem_seg_shape"])
    strided = sem_seg[:, :: info["sem_seg_stride"], :: info["sem_seg_stride"]]
    scale = ref["sem_seg_strided"].abs().max()
    assert (strided - ref["sem_seg_strided"]).abs().max() <= 1e-5 * scale
    assert (sem_seg.argmax(0) != ref["sem_seg_argmax"].long()).sum() <= 5
    torch.testing.assert_close(
        sem_seg.double().sum((1, 2)), ref["sem_seg_class_sum"], rtol=1e-5, atol=1e-3
    )

    panoptic_seg, segments_info = panoptic
    assert panoptic_seg.dtype == torch.int32
    assert segments_info == info["segments_info"]
    assert (panoptic_seg != ref["panoptic_seg"]).sum() <= 5

    assert len(instances) == info["num_instances"]
    order = instances.scores.argsort(descending=True)
    ref_order = ref["instances_scores"].argsort(descending=True)
    assert torch.equal(instances.pred_classes[order], ref["instances_pred_classes"][ref_order])
    torch.testing.assert_close(
        instances.scores[order], ref["instances_scores"][ref_order], rtol=0, atol=1e-4
    )
    masks = instances.pred_masks[order].bool()
    assert (masks != ref["instances_pred_masks"][ref_order]).sum() <= 50
    # Real boxes: tight around each mask.
    torch.testing.assert_close(
        instances.pred_boxes.tensor,
        BitMasks(instances.pred_masks.bool()).get_bounding_boxes().tensor,
    )


def assert_losses_match(
    losses: Dict[str, torch.Tensor], reference: Dict, same_seed: bool = False
) -> None:
    """Each loss (and the total) within mean +- 3 std of the official ``loss.json``; with
    ``same_seed``, also equal to the official seed-0 value (same random draws in the same order).
    """
    assert set(losses) == set(reference["seed0"])
    for key, value in losses.items():
        mean, std = reference["mean"][key], reference["std"][key]
        assert abs(value.item() - mean) <= 3 * std + 1e-5 * abs(mean), (key, value.item(), mean)
    total = sum(v.item() for v in losses.values())
    assert abs(total - reference["total_mean"]) <= 3 * reference["total_std"] + 1e-4
    if same_seed:
        for key, value in losses.items():
            assert value.item() == pytest.approx(reference["seed0"][key], rel=1e-5), key
